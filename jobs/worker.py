"""One RQ worker process, serving one queue with its runtime installed.

`nexy worker` starts one of these for the VM queue (exactly one: run-commands never overlap)
and one or more for `io`, each in its own process, so a health probe never waits behind a
run-command. SimpleWorker runs jobs in-process: no fork per job (~1 ms instead of ~6 ms).
"""
from __future__ import annotations

from rq import SimpleWorker

from bot.dispatch import IO_QUEUE
from bot.redaction import install_log_redaction
from jobs.runtime import Runtime, install


def make_worker(runtime: Runtime, queue_names: list[str], name: str | None = None) -> SimpleWorker:
    install(runtime)
    return SimpleWorker(queue_names, connection=runtime.redis, name=name)


def serve(runtime: Runtime, queue_names: list[str], *, burst: bool = False, name: str | None = None) -> bool:
    """Work the queues until stopped (or, in burst mode, until they are empty). A worker of the io
    queue also runs RQ's scheduler (one at a time, by RQ's own lock): plan expiry notices."""
    install_log_redaction()
    with_scheduler = IO_QUEUE in queue_names
    return make_worker(runtime, queue_names, name).work(burst=burst, logging_level="WARNING",
                                                         with_scheduler=with_scheduler)
