"""The per-incident outbox: everything a job says in an incident's thread, kept in Redis until Slack
confirmed it, and delivered in the order it was said.

Each incident has one queue of entries: its parent message, posts in its thread, and edits of
messages posted before (a status message, a plan once decided, a conflict notice). A job writes
the entry first, then delivers the incident's queue from its head. A 429 (the client waits out one
`Retry-After`, then the outbox honours the next), a 5xx, a timeout or an outage leaves the head
where it is, due again after a backoff doubling up to `MAX_BACKOFF_S` (so what waits follows
within half a minute of Slack's return, plus a watchdog beat), for up to `GIVE_UP_AFTER_S`;
whatever was said after it waits behind it, so the thread never shows a result before the one that
came first, and the job goes on at once. The io worker's watchdog and every starting worker
deliver what is due.

Delivery is idempotent. A post carries its entry id in the message metadata, and a post whose
earlier try may have landed (the connection dropped after Slack stored it) is looked up first, never
posted a second time: in its thread (oldest first) or, for a parent, in the channel (newest first),
from a little before the entry was written, page by page with Slack's cursor, for at most
`slack_client.LOOKUP_PAGES` pages (5,000 messages; past that it is posted, as a copy shown twice is
better than a report lost); an edit (`chat.update`) is safe to repeat, and a newer
edit of the same message replaces one still waiting. A post delivered after a failed try (its own
or one ahead of it) says it was reported late. Slack refusing an entry outright (not_in_channel,
message_not_found...) drops it with a log line: no retry would change the answer.

What a delivered post becomes is kept under its `ref` (the ts of `plan:<id>`, `progress:<job>`,
`parent:<incident>`...), so an edit queued before the post was delivered finds its message, and
the plan's message and the incident's thread are recorded once Slack gave their ts.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from enum import Enum
from typing import Any

from redis.exceptions import LockError
from slack_sdk.errors import SlackApiError

from bot import render
from bot.contract import KEY_PREFIX, OUTBOX_DUE_KEY, RESULT_TTL_S, outbox_key
from bot.incidents import EventKind
from bot.redis_conn import text as as_text
from bot.wording import incident as incident_wording
from jobs.runtime import Runtime

log = logging.getLogger(__name__)

DUE = OUTBOX_DUE_KEY
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
GIVE_UP_AFTER_S = 24 * 3600.0
"""An entry Slack has not taken for a day is dropped (with an error in the log)."""
LOCK_WAIT_S = 20.0
"""How long a job waits for another delivery of the same incident before it leaves its entry to the
watchdog (the entry is in Redis already; nothing is lost by not waiting longer)."""
HOLD_S = 60.0
"""How long one delivery keeps going through an incident's queue before it lets others in."""
CLOCK_SKEW_S = 300.0
"""How far before an entry was written the lookup of its post starts: Slack's clock may be behind ours."""


class Kind(str, Enum):
    PARENT = "parent"  # the incident's parent message: the thread everything else goes in
    POST = "post"  # a message in the incident's thread
    UPDATE = "update"  # an edit of a message posted before (by its ts, or by its ref)


_PLAN_REF = "plan:"


def plan_ref(plan_id: str) -> str:
    """The ref a plan's message is posted under: its ts is recorded on the plan once Slack took it."""
    return f"{_PLAN_REF}{plan_id}"


def _box(incident: str) -> str:
    return outbox_key(incident)


def _order(incident: str) -> str:
    return f"{_box(incident)}:order"


def _late(incident: str) -> str:
    return f"{_box(incident)}:late"


def _ref(ref: str) -> str:
    return f"{KEY_PREFIX}:outbox-ref:{ref}"


def _pending_update(incident: str, target: str) -> str:
    return f"{_box(incident)}:update:{target}"


class Outbox:
    """The incidents' queues of what is to be said, and their delivery."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.redis = runtime.redis
        self.slack = runtime.slack

    def send(
        self,
        incident: str,
        channel: str,
        kind: Kind,
        text: str,
        blocks: list | None = None,
        *,
        ref: str = "",
        target: str = "",
    ) -> str | None:
        """Queue what is to be said, then deliver the incident's queue; the ts it got, or None while it
        waits (for a retry, or behind an entry that does). `ref` names a post (its ts is kept under it);
        `target` is what an update edits: a ts, or the ref of a post."""
        entry: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "incident": incident,
            "kind": kind.value,
            "channel": channel,
            "text": text,
            "blocks": blocks,
            "ref": ref,
            "target": target,
            "attempts": 0,
            "created": time.time(),
        }
        lock = self._lock(incident)
        held = lock.acquire(blocking_timeout=LOCK_WAIT_S)
        try:
            if not self._replaces_waiting_update(entry, held):
                pipe = self.redis.pipeline()
                pipe.hset(_box(incident), entry["id"], json.dumps(entry))
                pipe.rpush(_order(incident), entry["id"])
                pipe.zadd(DUE, {incident: time.time()}, nx=True)
                if kind is Kind.UPDATE:
                    pipe.set(_pending_update(incident, target), entry["id"], ex=RESULT_TTL_S)
                pipe.execute()
            if not held:
                log.warning("outbox of %s is busy; its watchdog delivers entry %s", incident, entry["id"])
                return None
            return self._deliver(incident).get(entry["id"])
        finally:
            if held:
                _release(lock)

    def ts_of(self, ref: str) -> str | None:
        """The ts of the post delivered under `ref`, if it was (a plan keeps its own for longer)."""
        value = self.redis.get(_ref(ref))
        if value:
            return as_text(value)
        if ref.startswith(_PLAN_REF):
            plan = self.runtime.plans.get(ref.removeprefix(_PLAN_REF))
            return plan.message_ts or None if plan else None
        return None

    def drain(self) -> int:
        """Deliver every incident's queue that is due (skipping one another process delivers now);
        how many entries were delivered."""
        delivered = 0
        for member in list(self.redis.zrangebyscore(DUE, 0, time.time())):
            incident = as_text(member)
            lock = self._lock(incident)
            if not lock.acquire(blocking=False):
                continue
            try:
                delivered += len(self._deliver(incident))
            finally:
                _release(lock)
        return delivered

    def pending(self, incident: str) -> int:
        return int(self.redis.llen(_order(incident)))

    # ------------------------------------------------------------------ delivery (under the lock)

    def _deliver(self, incident: str) -> dict[str, str]:
        """Deliver the queue from its head until it is empty, a try fails, or HOLD_S passed; the ts
        of each entry delivered, by id."""
        delivered: dict[str, str] = {}
        started = time.monotonic()
        while time.monotonic() - started < HOLD_S:
            head = self.redis.lindex(_order(incident), 0)
            if head is None:
                pipe = self.redis.pipeline()
                pipe.zrem(DUE, incident)
                pipe.delete(_late(incident))
                pipe.execute()
                return delivered
            entry_id = as_text(head)
            raw = self.redis.hget(_box(incident), entry_id)
            if raw is None:  # removed by a delivery that was cut short between its two steps
                self.redis.lpop(_order(incident))
                continue
            entry = json.loads(raw)
            if entry.get("due", 0) > time.time():
                self.redis.zadd(DUE, {incident: entry["due"]})
                return delivered
            outcome = self._attempt(entry)
            if outcome is _RETRY:
                self._retry_later(entry)
                return delivered
            self._remove(entry)
            if outcome is not _DROPPED:
                delivered[entry_id] = str(outcome)
        self.redis.zadd(DUE, {incident: time.time()})  # more to do: the next drain goes on
        return delivered

    def _attempt(self, entry: dict[str, Any]) -> object:
        """Try one entry: its ts, `_RETRY`, or `_DROPPED` (Slack refused it, or it is too old)."""
        kind = Kind(entry["kind"])
        try:
            ts = self._update(entry) if kind is Kind.UPDATE else self._post(entry, kind)
        except (SlackApiError, OSError) as exc:  # 429 after its retries, 5xx, timeouts, outages
            if isinstance(exc, SlackApiError) and exc.response.status_code == 200 and exc.response.get("error"):
                log.error("Slack refused outbox entry %s (%s): %s", entry["id"], kind.value, exc.response.get("error"))
                return _DROPPED
            reason = exc.response.status_code if isinstance(exc, SlackApiError) else type(exc).__name__
            log.warning("outbox entry %s not delivered (%s); tried again later", entry["id"], reason)
            if isinstance(exc, SlackApiError) and exc.response.status_code == 429:
                entry["retry_after"] = _retry_after(exc)
        except Exception:  # a defect must not stop the queue for good: retried, then given up
            log.exception("outbox entry %s failed", entry["id"])
        else:
            if ts is None:
                return _DROPPED
            self._delivered(entry, kind, ts)
            return ts
        if time.time() - entry["created"] > GIVE_UP_AFTER_S:
            log.error("outbox entry %s given up after %d tries", entry["id"], entry["attempts"] + 1)
            return _DROPPED
        return _RETRY

    def _post(self, entry: dict[str, Any], kind: Kind) -> str:
        thread_ts = None
        if kind is Kind.POST:
            incident = self.runtime.store.get(entry["incident"])
            thread_ts = incident.thread_ts if incident else None
        ts = None
        if entry["attempts"]:  # an earlier try may have landed: look before posting
            ts = self._find(entry, thread_ts)
        if ts is None:
            text, blocks = entry["text"], entry["blocks"]
            if kind is Kind.POST and (entry["attempts"] or self.redis.exists(_late(entry["incident"]))):
                text, blocks = render.noted(incident_wording.reported_late(), text, blocks)
            ts = self.slack.post_tagged(entry["channel"], text, blocks, thread_ts, entry["id"])
        return ts

    def _find(self, entry: dict[str, Any], thread_ts: str | None) -> str | None:
        try:
            return self.slack.find_tagged(entry["channel"], thread_ts, entry["id"], entry["created"] - CLOCK_SKEW_S)
        except SlackApiError as exc:
            if exc.response.status_code != 200:
                raise
            # Slack refused the lookup (a private channel without groups:history): post.
            log.warning("outbox lookup refused: %s", exc.response.get("error"))
            return None

    def _update(self, entry: dict[str, Any]) -> str | None:
        target = entry["target"]
        ts = target if _is_ts(target) else self.ts_of(target)
        if ts is None:  # its post was dropped: nothing to edit
            log.warning("outbox entry %s edits %s, which was never posted", entry["id"], target)
            return None
        self.slack.update(entry["channel"], ts, entry["text"], entry["blocks"])
        return ts

    def _delivered(self, entry: dict[str, Any], kind: Kind, ts: str) -> None:
        """Keep the ts under the entry's ref, and record what it is: the thread, or a plan's message."""
        ref = entry["ref"]
        if not ref:
            return
        self.redis.set(_ref(ref), ts, ex=RESULT_TTL_S)
        if kind is Kind.PARENT:
            incident = self.runtime.store.get(entry["incident"])
            if incident is not None and not incident.thread_ts:
                self.runtime.store.set_thread(incident, ts)
                self.runtime.store.record(incident.id, EventKind.THREAD, None, ts=ts)
        elif ref.startswith(_PLAN_REF):
            plan = self.runtime.plans.get(ref.removeprefix(_PLAN_REF))
            if plan is not None:
                self.runtime.plans.attach_message(plan, ts)

    def _replaces_waiting_update(self, entry: dict[str, Any], held: bool) -> bool:
        """A newer edit of a message whose earlier edit still waits (untried) takes its place."""
        if entry["kind"] != Kind.UPDATE.value or not held:
            return False
        key = _pending_update(entry["incident"], entry["target"])
        waiting_id = self.redis.get(key)
        if waiting_id is None:
            return False
        raw = self.redis.hget(_box(entry["incident"]), as_text(waiting_id))
        if raw is None:
            return False
        waiting = json.loads(raw)
        if waiting["attempts"]:
            return False
        waiting.update(text=entry["text"], blocks=entry["blocks"])
        self.redis.hset(_box(entry["incident"]), waiting["id"], json.dumps(waiting))
        entry["id"] = waiting["id"]
        return True

    def _remove(self, entry: dict[str, Any]) -> None:
        pipe = self.redis.pipeline()
        pipe.lpop(_order(entry["incident"]))
        pipe.hdel(_box(entry["incident"]), entry["id"])
        pipe.execute()

    def _retry_later(self, entry: dict[str, Any]) -> None:
        entry["attempts"] += 1
        delay = min(FIRST_BACKOFF_S * 2 ** (entry["attempts"] - 1), MAX_BACKOFF_S)
        delay = max(delay, float(entry.pop("retry_after", 0)))  # a 429 says when to come back
        entry["due"] = time.time() + delay
        pipe = self.redis.pipeline()
        pipe.hset(_box(entry["incident"]), entry["id"], json.dumps(entry))
        pipe.zadd(DUE, {entry["incident"]: entry["due"]})
        pipe.set(_late(entry["incident"]), 1, ex=int(GIVE_UP_AFTER_S) * 2)
        pipe.execute()

    def _lock(self, incident: str):
        return self.redis.lock(f"{_box(incident)}:lock", timeout=HOLD_S + 120)


def forget(redis: Any, incident: str) -> None:
    """Drop whatever an incident's outbox still holds: the incident itself was removed (its retention ended)."""
    pipe = redis.pipeline()
    pipe.delete(_box(incident), _order(incident), _late(incident))
    pipe.zrem(DUE, incident)
    pipe.execute()


_RETRY = object()
_DROPPED = object()


def _is_ts(value: str) -> bool:
    """A Slack message ts ("1700000000.000100"), as opposed to a ref ("plan:...")."""
    return ":" not in value


def _retry_after(exc: SlackApiError) -> float:
    """The seconds a 429 asks to wait (`Retry-After`), bounded; 1 when it does not say."""
    headers = getattr(exc.response, "headers", None) or {}
    value = headers.get("retry-after") or headers.get("Retry-After")
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return min(float(value), MAX_BACKOFF_S) if value is not None else 1.0
    except ValueError:
        return 1.0


def _release(lock: Any) -> None:
    try:
        lock.release()
    except LockError:  # it expired while Slack was slow; the next delivery goes on from the head
        log.warning("the outbox lock expired during a delivery")
