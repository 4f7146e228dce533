"""A job's progress: its timeline events (queued, started, finished with its duration) and one
status message in the incident's thread, edited in place as the job moves.

The status message is made when the job must wait for the VM (queued, with its position: an io
job posts it, since the web process does no Slack I/O) or once it has run for
NEXY_PROGRESS_EVERY_S; a quick job that did not wait gets none, its result is enough. The message
is then edited: running for N s (every NEXY_PROGRESS_EVERY_S), done in N s, or failed. Writers
(the io job, the worker, its ticker) take a per-job lock, and a state never goes backwards. The
message and its edits go through the incident's outbox, like every result.
"""

from __future__ import annotations

import logging
import threading
import time
from enum import Enum

from redis import Redis

from bot.contract import RESULT_TTL_S, WorkItem
from bot.incidents import EventKind
from bot.redis_conn import text
from bot.wording import progress as wording
from jobs.runtime import Runtime
from jobs.thread import Thread

log = logging.getLogger(__name__)

FAILED_STATUSES = ("failed", "incomplete", "unknown")
"""What a job's run returns when it did not do its work."""


class JobState(str, Enum):
    """Where a job is, as its status message shows it."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


_ORDER = {JobState.QUEUED: 0, JobState.RUNNING: 1, JobState.DONE: 2, JobState.FAILED: 2}


def progress_key(job_id: str) -> str:
    return f"nexy:job:{job_id}:progress"


class Progress:
    """One request's progress in its incident (nothing for a job with no incident: `history`)."""

    def __init__(self, runtime: Runtime, item: WorkItem, on_vm: bool, *, silent: bool = False):
        self.runtime = runtime
        self.item = item
        self.on_vm = on_vm
        # A request that joined a run answered in its thread for someone else's (the same person
        # asking again there): its events are recorded, but it has no status message of its own.
        self.silent = silent
        self.key = progress_key(item.id)
        self.started_at = 0.0
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    @property
    def redis(self) -> Redis:
        return self.runtime.redis

    def queued(self, position: int, running: str | None, fix: bool = False) -> None:
        """The job waits behind others: post its status message with its position (io job)."""
        self._show(JobState.QUEUED, create=True, message=wording.queued(self.item.words, position, running, fix))

    def started(self) -> None:
        """The worker starts it: record, show it running, and keep the message current meanwhile."""
        self.started_at = time.time()
        if not self.item.incident:
            return
        self._event(EventKind.JOB_STARTED)
        self._show(JobState.RUNNING, create=False, message=wording.running(self.item.words, 0, self.on_vm))
        self._ticker = threading.Thread(target=self._tick, name=f"progress-{self.item.id}", daemon=True)
        self._ticker.start()

    def finished(self, status: str, ok: bool | None = None) -> None:
        """The job ended with `status` (`ok`: whether it did its work; by default, unless the status
        says it failed): record how long it took, and say so in its message."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        if not self.item.incident:
            return
        now = time.time()
        elapsed = now - (self.started_at or now)
        state = JobState.DONE if (status not in FAILED_STATUSES if ok is None else ok) else JobState.FAILED
        self._event(
            EventKind.JOB_FINISHED, status=status, state=state.value, duration_s=round(elapsed, 3), on_vm=self.on_vm
        )
        waited = (self.started_at or now) - self.item.requested_at
        message = (
            wording.failed(self.item.words, elapsed)
            if state is JobState.FAILED
            else wording.done(self.item.words, elapsed, waited)
        )
        self._show(state, create=False, message=message)

    def _tick(self) -> None:
        every = self.runtime.settings.nexy_progress_every_s
        while not self._stop.wait(every):
            elapsed = time.time() - self.started_at
            try:
                self._show(JobState.RUNNING, create=True, message=wording.running(self.item.words, elapsed, self.on_vm))
            except Exception:  # progress is best effort: the job itself goes on
                log.warning("could not update the status message of %s", self.item.id, exc_info=True)

    def _event(self, kind: EventKind, **details: object) -> None:
        self.runtime.store.record(
            self.item.incident, kind, self.item.user, job=self.item.id, command=self.item.words, **details
        )

    def _show(self, state: JobState, *, create: bool, message: str) -> None:
        """Move the message to `state` (never back), posting it if `create` and there is none yet.
        The post and its edits go through the incident's outbox: a Slack fault delays them, in order,
        and the edits find the message by its ref once Slack took it."""
        if self.silent:
            return
        with self.redis.lock(f"{self.key}:lock", timeout=60, blocking_timeout=60):
            current = self.redis.hget(self.key, "state")
            if current is not None and _ORDER[JobState(text(current))] > _ORDER[state]:
                return
            self.redis.hset(self.key, "state", state.value)
            self.redis.expire(self.key, RESULT_TTL_S)
            thread = Thread(self.runtime, self.item.incident)
            if self.redis.hget(self.key, "posted") is not None:
                thread.update(self.ref, message)
            elif create:
                self.redis.hset(self.key, "posted", 1)
                thread.post(message, kind=None, ref=self.ref)

    @property
    def ref(self) -> str:
        """The ref the status message is posted under (jobs/outbox.py)."""
        return f"progress:{self.item.id}"
