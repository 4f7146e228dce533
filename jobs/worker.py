"""One RQ worker process, serving one queue with its runtime bound to every job.

`nexy worker` starts one of these for the VM queue (exactly one: run-commands never overlap)
and one or more for `io`, each in its own process, so a health probe never waits behind a
run-command. SimpleWorker runs jobs in-process: no fork per job (~1 ms instead of ~6 ms).
"""

from __future__ import annotations

from redis import Redis
from rq import SimpleWorker

from bot.contract import IO_QUEUE
from bot.redaction import install_log_redaction
from bot.settings import Settings
from jobs.runtime import Runtime, TaskJob


def build_runtime(settings: Settings, redis: Redis) -> Runtime:
    """The runtime of a worker: the registry is built once here, with every runbook item."""
    from runbook.registry import REGISTRY

    return Runtime(settings.for_vm(), redis, REGISTRY)


def make_worker(runtime: Runtime, queue_names: list[str], name: str | None = None) -> SimpleWorker:
    return SimpleWorker(queue_names, connection=runtime.redis, name=name, job_class=TaskJob.bound(runtime))


def serve(runtime: Runtime, queue_names: list[str], *, burst: bool = False, name: str | None = None) -> bool:
    """Work the queues until stopped (or, in burst mode, until they are empty). A worker of the io
    queue also runs RQ's scheduler (one at a time, by RQ's own lock): plan expiry notices."""
    install_log_redaction()
    with_scheduler = IO_QUEUE in queue_names
    return make_worker(runtime, queue_names, name).work(
        burst=burst, logging_level="WARNING", with_scheduler=with_scheduler
    )
