"""One RQ worker process, serving one queue with its runtime bound to every job.

`nexy worker` starts one of these for each VM (exactly one: run-commands never overlap; it takes
the VM's plans and applies before its read-only checks), one or more for `io`, so a health probe
never waits behind a run-command, and one for `decisions`, so an approval never waits behind a
probe; each in its own process. SimpleWorker runs jobs in-process: no fork per job (~1 ms instead
of ~6 ms).
"""

from __future__ import annotations

import logging
import threading
from types import FrameType
from typing import Any

from redis import Redis
from rq import SimpleWorker
from rq.worker import WorkerStatus

from bot.contract import DECISIONS_QUEUE, IO_QUEUE, fixes_queue_name
from bot.redaction import install_log_redaction
from bot.registry import Registry
from bot.settings import Settings
from jobs.operations import resume_orphans, watchdog
from jobs.outbox import Outbox
from jobs.runtime import Runtime, TaskJob

log = logging.getLogger(__name__)


def build_runtime(settings: Settings, redis: Redis, registry: Registry) -> Runtime:
    """The runtime of a worker, with the registry its process built once (`nexy.registry`)."""
    return Runtime(settings.for_vm(), redis, registry)


class JobAbandoned(BaseException):
    """Raised in the running job by a second stop signal (a second Ctrl-C): a BaseException, like
    RQ's own SystemExit, so that no `except Exception` in a job swallows it."""


ABANDONED = "the worker was stopped while it ran (a second Ctrl-C or stop abandoned it)"


class Worker(SimpleWorker):
    """RQ's SimpleWorker (jobs run in-process, no fork), whose cold shutdown says what happened:
    the job fails with JobAbandoned (its thread is told the VM state is unknown) instead of a bare
    SystemExit, and without RQ's traceback and warnings on the terminal."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Held while the watchdog restarts RQ's scheduler and while a stop begins: a scheduler is never
        # started once the worker stops (it would outlive the worker, holding RQ's scheduler lock).
        self.scheduler_guard = threading.RLock()
        self.stopping = False

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        with self.scheduler_guard:
            self.stopping = True
        super().request_stop(signum, frame)

    def teardown(self) -> None:
        with self.scheduler_guard:
            self.stopping = True
        super().teardown()

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        # The stop is already announced by our supervisor: RQ's "cold shut down" warning and the
        # failed job's traceback would only repeat it, at length.
        logging.getLogger("rq.worker").setLevel(logging.CRITICAL)
        if self.get_state() != WorkerStatus.BUSY:
            raise SystemExit(0)  # not running a job (still stopping): just go
        raise JobAbandoned(ABANDONED)

    def unsubscribe(self) -> None:
        # RQ unsubscribes first and stops its pubsub thread after: woken by the unsubscribe reply,
        # the thread often loops back to a 60 s wait before it sees the stop, and RQ's join then
        # waits its full second at every worker stop. Stopped first, the reply ends the thread.
        if self.pubsub_thread:
            self.pubsub_thread.stop()
        super().unsubscribe()


def make_worker(runtime: Runtime, queue_names: list[str], name: str | None = None) -> SimpleWorker:
    return Worker(queue_names, connection=runtime.redis, name=name, job_class=TaskJob.bound(runtime))


def served_queues(runtime: Runtime, queue_names: list[str]) -> list[str]:
    """The queues a worker listens to, in the order it takes from them: a VM's queue of checks is
    never served without its fixes queue, taken first (RQ takes from its queues in order)."""
    vm_queues = set(runtime.settings.vm_queues)
    served: list[str] = []
    for name in queue_names:
        if name in vm_queues and fixes_queue_name(name) not in queue_names:
            served.append(fixes_queue_name(name))
        served.append(name)
    return served


def serve(runtime: Runtime, queue_names: list[str], *, burst: bool = False, name: str | None = None) -> bool:
    """Work the queues until stopped (or, in burst mode, until they are empty). A worker of the io or
    the decisions queue also runs RQ's scheduler for its queues (one at a time per queue, by RQ's own
    lock): plan expiries are scheduled on decisions. The decisions worker does nothing else: no resume
    of run-commands, no outbox delivery (those may wait on Azure or Slack); its watchdog only keeps
    its scheduler alive."""
    install_log_redaction()
    queue_names = served_queues(runtime, queue_names)
    with_scheduler = IO_QUEUE in queue_names or DECISIONS_QUEUE in queue_names
    decisions_only = queue_names == [DECISIONS_QUEUE]
    # Before any new job: read the outcome of run-commands a dead worker left behind (never re-run them).
    try:
        if not decisions_only:
            resume_orphans(runtime)
        if IO_QUEUE in queue_names:
            Outbox(runtime).drain()
    except Exception:  # the worker still serves; the io watchdog tries again
        log.exception("could not resume the run-commands a stopped worker left, or deliver the outbox")
    stop = threading.Event()
    worker = make_worker(runtime, queue_names, name)
    if with_scheduler and not burst:
        watchdog(runtime, stop, worker, scheduler_only=IO_QUEUE not in queue_names)
    try:
        return worker.work(burst=burst, logging_level="WARNING", with_scheduler=with_scheduler)
    finally:
        stop.set()
