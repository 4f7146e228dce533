"""Run-commands Azure accepted, kept in Redis until their result is read.

When Azure accepts a run-command the worker records its operation (the poller's continuation
token) with the job, the incident and the plan, and keeps a short heartbeat of its own while it
polls (`NEXY_HEARTBEAT_S`; RQ's own lives for the whole job timeout, two hours). A worker that
died leaves a record without a heartbeat: the next worker to start (and the io worker's watchdog)
resumes polling that operation and reports its real outcome. Nothing is sent to the VM again: a
killed apply is never re-run by itself.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from bot.contract import KEY_PREFIX, WorkItem
from bot.errors import ExecutorError
from bot.incidents import EventKind
from bot.wording import errors as error_wording
from bot.wording import vm as vm_wording
from jobs import outbox
from jobs.outbox import Outbox
from jobs.runtime import Runtime
from jobs.thread import Thread

log = logging.getLogger(__name__)

_RECORDS = f"{KEY_PREFIX}:operations"
_ALIVE = f"{KEY_PREFIX}:operation-alive:"
_CLAIM = f"{KEY_PREFIX}:operation-claim:"
_REPORTED = f"{KEY_PREFIX}:operation-reported:"
REPORTED_TTL_S = 3 * 24 * 3600
"""How long a resumed job stays marked reported: longer than RQ takes to notice it was abandoned."""


class OperationStore:
    """Accepted run-commands by job id (one Redis hash), each with a heartbeat key of its own."""

    def __init__(self, redis: Redis):
        self.redis = redis

    def record(self, job_id: str, record: dict[str, Any], heartbeat_s: float) -> None:
        pipe = self.redis.pipeline()
        pipe.hset(_RECORDS, job_id, json.dumps({**record, "accepted_at": time.time()}))
        pipe.set(_ALIVE + job_id, "1", px=int(heartbeat_s * 1000))
        pipe.execute()

    def beat(self, job_id: str, heartbeat_s: float) -> None:
        self.redis.set(_ALIVE + job_id, "1", px=int(heartbeat_s * 1000))

    def finish(self, job_id: str) -> None:
        self.redis.hdel(_RECORDS, job_id)
        self.redis.delete(_ALIVE + job_id)

    def orphans(self) -> list[tuple[str, dict[str, Any]]]:
        """Records whose worker stopped beating."""
        found = []
        for job_id, raw in self.redis.hgetall(_RECORDS).items():
            job = job_id.decode() if isinstance(job_id, bytes) else job_id
            if not self.redis.exists(_ALIVE + job):
                found.append((job, json.loads(raw)))
        return found

    def claim(self, job_id: str, for_s: float) -> bool:
        """One resumer per operation, even with several workers starting at once."""
        return bool(self.redis.set(_CLAIM + job_id, "1", nx=True, px=int(for_s * 1000)))

    def mark_reported(self, job_id: str) -> None:
        self.redis.set(_REPORTED + job_id, "1", ex=REPORTED_TTL_S)

    def was_reported(self, job_id: str) -> bool:
        """True when a resumer already said what this job's run-command did (RQ's late failure
        callback then has nothing true to add)."""
        return bool(self.redis.exists(_REPORTED + job_id))


class OperationWatch:
    """Follows one accepted run-command for the engine: records it, beats, says when it runs long."""

    def __init__(self, runtime: Runtime, thread: Thread, item: WorkItem, script: str, plan: str = ""):
        self.runtime = runtime
        self.store = OperationStore(runtime.redis)
        self.thread = thread
        self.item = item
        self.script = script
        self.plan = plan
        self.told_slow = False
        self.recorded = False

    def accepted(self, token: str) -> None:
        record = {"token": token, "script": self.script, "plan": self.plan, "item": self.item.payload()}
        try:
            self.store.record(self.item.id, record, self.runtime.settings.nexy_heartbeat_s)
            self.recorded = True
        except RedisError:  # the run goes on; only a resume after a crash is lost
            log.warning("could not record the operation of job %s", self.item.id)

    def polling(self, elapsed_s: float) -> None:
        settings = self.runtime.settings
        if self.recorded:
            try:
                self.store.beat(self.item.id, settings.nexy_heartbeat_s)
            except RedisError:
                log.warning("heartbeat of job %s missed", self.item.id)
        if not self.told_slow and elapsed_s >= settings.nexy_runcommand_slow_s:
            self.told_slow = True
            try:
                self.thread.post(vm_wording.still_running(self.script, elapsed_s), kind=EventKind.NOTE)
            except Exception:  # a notice must never stop the polling of a command that runs
                log.warning("could not post the still-running notice of job %s", self.item.id)

    def done(self) -> None:
        if self.recorded:
            try:
                self.store.finish(self.item.id)
            except RedisError:
                log.warning("could not clear the operation of job %s", self.item.id)


def resume_orphans(runtime: Runtime) -> int:
    """Read the outcome of every run-command whose worker died, and report it; how many were resumed."""
    from jobs import lifecycle

    store = OperationStore(runtime.redis)
    orphans = store.orphans()
    if not orphans:
        return 0
    resume = getattr(runtime.executor, "resume", None)
    if resume is None:  # the local executor's script died with its worker: RQ reports that
        return 0
    count = 0
    for job_id, record in orphans:
        if not store.claim(job_id, runtime.settings.nexy_runcommand_timeout_s):
            continue
        item = WorkItem.from_payload(record["item"])
        thread = Thread(runtime, item.incident)
        watch = OperationWatch(runtime, thread, item, record["script"], record.get("plan", ""))
        watch.recorded = True  # beat on the same record while this worker polls
        try:
            result = resume(record["script"], record["token"], watch)
        except ExecutorError as exc:
            store.mark_reported(job_id)
            store.finish(job_id)
            if record.get("plan"):
                lifecycle.interrupted(runtime, record["plan"], error_wording.reason(exc))
            else:
                thread.post(error_wording.job_interrupted(item.words, error_wording.reason(exc)), kind=EventKind.ERROR)
            count += 1
            continue
        store.mark_reported(job_id)
        if record.get("plan"):
            lifecycle.report_resumed_apply(runtime, record["plan"], result, record.get("accepted_at", 0.0))
        else:
            thread.post(vm_wording.resumed_result(item.words, result), kind=EventKind.NOTE, command=item.words)
        store.finish(job_id)
        count += 1
    return count


def watchdog(
    runtime: Runtime, stop: threading.Event, worker: Any = None, *, scheduler_only: bool = False
) -> threading.Thread:
    """The io worker's watchdog: every heartbeat, resume what a dead worker left, deliver the
    outbox entries that are due, restart RQ's scheduler if it died, and remove the resolved
    incidents whose retention ended (in a thread of its own). The decisions worker's
    (`scheduler_only`) only restarts its scheduler: plan expiries."""

    def loop() -> None:
        while not stop.wait(runtime.settings.nexy_heartbeat_s):
            try:
                supervise_scheduler(worker)
                if scheduler_only:
                    continue
                resume_orphans(runtime)
                Outbox(runtime).drain()
                remove_expired(runtime)
            except Exception:
                log.exception("the operation watchdog failed; it tries again")

    thread = threading.Thread(target=loop, name="operation-watchdog", daemon=True)
    thread.start()
    return thread


def remove_expired(runtime: Runtime, now: float | None = None) -> list[str]:
    """Remove the resolved incidents past NEXY_RETENTION_DAYS (by `now`), and what their outbox still holds."""
    removed = runtime.store.remove_expired(now)
    for incident in removed:
        outbox.forget(runtime.redis, incident)
    if removed:
        log.info("removed %d incidents past their retention: %s", len(removed), ", ".join(removed))
    return removed


def supervise_scheduler(worker: Any) -> None:
    """RQ's scheduler process exits on a Redis error, and RQ itself restarts it only with its
    10-minute maintenance: plan expiries due meanwhile would wait. Restart it as soon as Redis
    answers (it takes the scheduler lock again, so one scheduler runs at a time)."""
    guard = getattr(worker, "scheduler_guard", None)
    if guard is None:
        return
    with guard:  # a stop that begins waits for this restart, and its teardown then stops what started
        scheduler = getattr(worker, "scheduler", None)
        if scheduler is None or worker.stopping:
            return
        process = scheduler._process  # RQ keeps the scheduler's process here; None until it ran once
        if process is not None and process.is_alive():
            return
        scheduler.acquire_locks(auto_start=True)
