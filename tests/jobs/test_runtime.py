"""TaskJob runs each task with its worker's runtime through RQ's public API only: these tests fail, with
what to revisit, the moment an RQ release in our range stops calling the job's `func` from `perform`."""

from __future__ import annotations

import pytest
from rq import Queue, Worker
from rq.scheduler import RQScheduler
from rq.job import Job, JobStatus

from jobs.runtime import Runtime, TaskJob
from jobs.worker import build_runtime, make_worker

REVISIT = ("RQ's Job.perform no longer calls the job's public `func` with the job's arguments: "
           "revisit jobs/runtime.py TaskJob (the pin of `rq` in pyproject.toml allows this RQ)")


def whose_runtime(runtime: Runtime, tag: str, *, suffix: str = "") -> str:
    """A task: the VM of the runtime it was given, and its own arguments."""
    return f"{runtime.settings.vm_name}/{runtime.settings.azure_vm_name}:{tag}{suffix}"


def test_a_worker_gives_each_task_the_runtime_of_its_vm(make_settings, redis, tmp_path, registry):
    """A real worker runs each job's task with the runtime of the VM the job names, its own VM's when the
    job names none or a VM gone from the inventory, followed by the job's own arguments."""
    inventory = tmp_path / "vms.toml"
    inventory.write_text('[vm.a]\nvm_name = "NexyA"\n\n[vm.b]\nvm_name = "NexyB"\n', encoding="utf-8")
    settings = make_settings(nexy_vms_file=str(inventory))
    queue = Queue("runtime-test", connection=redis)
    jobs = {
        "b": queue.enqueue(whose_runtime, "one", suffix="!", meta={"vm": "b"}),
        "none": queue.enqueue(whose_runtime, "two"),
        "gone": queue.enqueue(whose_runtime, "three", meta={"vm": "gone"}),
    }
    make_worker(build_runtime(settings, redis, registry), [queue.name]).work(burst=True)

    results = {}
    for name, job in jobs.items():
        job = Job.fetch(job.id, connection=redis)
        assert job.get_status() == JobStatus.FINISHED, f"{REVISIT}\n{job.latest_result().exc_string}"
        results[name] = job.return_value()
    assert results == {"b": "b/NexyB:one!", "none": "a/NexyA:two", "gone": "a/NexyA:three"}, REVISIT


def test_a_task_job_outside_a_worker_refuses_to_run(redis):
    """Performed without a worker's runtime (TaskJob unbound), a job fails with what is missing."""
    job = TaskJob.create(whose_runtime, args=("one",), connection=redis)
    with pytest.raises(RuntimeError, match=r"runs only in a nexy worker"):
        job.perform()


def test_task_job_overrides_no_private_part_of_rq():
    """TaskJob defines nothing private of RQ's Job (such as `_execute`), which a minor release may change."""
    private = [name for name in vars(TaskJob) if name.startswith("_") and not name.startswith("__")]
    assert private == [], f"TaskJob overrides RQ's private {private}: use RQ's public API (README, Architecture)"


def test_the_one_private_rq_hook_we_read_is_still_there(redis):
    """The scheduler watchdog (jobs/operations.py supervise_scheduler) reads RQScheduler's `_process`, the
    one private part of RQ we use: it fails here, naming what to revisit, the moment RQ renames it."""
    scheduler = RQScheduler([Queue("private-hook", connection=redis)], connection=redis)
    assert hasattr(scheduler, "_process") and scheduler._process is None, (
        "RQ's scheduler no longer keeps its process in `_process`: revisit jobs/operations.py supervise_scheduler"
    )
    overridden = [name for name in ("request_stop", "request_force_stop", "teardown", "unsubscribe")
                  if not callable(getattr(Worker, name, None))]
    assert overridden == [], f"RQ's Worker has no {overridden} any more: revisit jobs/worker.py Worker"
