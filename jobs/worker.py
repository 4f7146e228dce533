"""One RQ worker process, serving one queue with its runtime bound to every job.

`nexy worker` starts one of these for the VM queue (exactly one: run-commands never overlap)
and one or more for `io`, each in its own process, so a health probe never waits behind a
run-command. SimpleWorker runs jobs in-process: no fork per job (~1 ms instead of ~6 ms).
"""

from __future__ import annotations

import logging
import threading

from redis import Redis
from rq import SimpleWorker

from bot.contract import IO_QUEUE
from bot.redaction import install_log_redaction
from bot.settings import Settings
from jobs.operations import resume_orphans, watchdog
from jobs.outbox import Outbox
from jobs.runtime import Runtime, TaskJob

log = logging.getLogger(__name__)


def build_runtime(settings: Settings, redis: Redis) -> Runtime:
    """The runtime of a worker: the registry is built once here, with every runbook item."""
    from runbook.registry import REGISTRY

    return Runtime(settings, redis, REGISTRY)


def make_worker(runtime: Runtime, queue_names: list[str], name: str | None = None) -> SimpleWorker:
    return SimpleWorker(queue_names, connection=runtime.redis, name=name, job_class=TaskJob.bound(runtime))


def serve(runtime: Runtime, queue_names: list[str], *, burst: bool = False, name: str | None = None) -> bool:
    """Work the queues until stopped (or, in burst mode, until they are empty). A worker of the io
    queue also runs RQ's scheduler (one at a time, by RQ's own lock): plan expiry notices."""
    install_log_redaction()
    with_scheduler = IO_QUEUE in queue_names
    # Before any new job: read the outcome of run-commands a dead worker left behind (never re-run them).
    try:
        resume_orphans(runtime)
        if IO_QUEUE in queue_names:
            Outbox(runtime.redis, runtime.slack).drain()
    except Exception:  # the worker still serves; the io watchdog tries again
        log.exception("could not resume the run-commands a stopped worker left, or deliver the outbox")
    stop = threading.Event()
    worker = make_worker(runtime, queue_names, name)
    if IO_QUEUE in queue_names and not burst:
        watchdog(runtime, stop, worker)
    try:
        return worker.work(burst=burst, logging_level="WARNING", with_scheduler=with_scheduler)
    finally:
        stop.set()
