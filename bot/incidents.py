"""The incident record in Redis: incidents, their threads, and their typed, hash-chained timeline.

An incident is the unit of record: the first command in a channel opens one (or `incident new`),
later commands attach to it, `incident close` resolves it, and every command, job, run-command,
check, plan, decision, apply, verify and note is appended to its timeline as one typed `Event`
(who, when, redacted details). Each event carries a SHA-256 over its own canonical JSON and the
hash of the event before it, so `verify` finds the first event that was edited, reordered or
removed. Writes that race (two commands opening an incident at once, retried events, two workers
appending) are single atomic Redis calls.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

from redis import Redis
from redis.exceptions import WatchError

from bot.plans import PLAN_KEY_PREFIX, incident_plans_key
from bot.redaction import redact_json
from bot.redis_conn import text

_PREFIX = "nexy"
EVENT_DEDUPE_TTL_S = 24 * 3600
"""How long a delivered event id is remembered: Slack retries within minutes."""

MAX_DETAIL_CHARS = 6000
"""A text in an event's details is cut to this many characters (a run-command's output is at most 8 KB)."""


class IncidentStatus(str, Enum):
    """Where an incident is in its life."""

    OPEN = "open"  # commands in its channel (or its thread) attach to it
    RESOLVED = "resolved"  # closed with a root cause; the channel's next command opens a new one


class EventKind(str, Enum):
    """What one timeline event records."""

    OPENED = "opened"  # the incident was opened (title, by whom)
    THREAD = "thread"  # its parent message was posted
    COMMAND = "command"  # someone asked for a command
    REFUSED = "refused"  # a command that was not allowed (who may)
    JOB_QUEUED = "job-queued"  # a command's job was queued (queue, position)
    JOB_STARTED = "job-started"
    JOB_FINISHED = "job-finished"  # with its status and duration
    RUN_COMMAND = "run-command"  # one script on the VM: exit code, facts, the end of its output
    CHECK = "check"  # a check's report as posted
    DIAGNOSIS = "diagnosis"  # the runbook section a symptom points to (Fast Branching)
    PLAN = "plan"  # a fix's plan: the diff, or why there is none
    APPROVAL = "approval"
    REJECTION = "rejection"
    EXPIRY = "expiry"  # a plan nobody approved in time (or whose incident was resolved)
    SUPERSEDED = "superseded"  # a plan replaced by a newer one
    IGNORED = "ignored"  # a decision that did not count (not an approver, self-approval)
    APPLY = "apply"  # an approved plan's apply started
    VERIFY = "verify"  # the apply's outcome and verify checks
    APPLY_FAILED = "apply-failed"  # an apply that did not finish
    NOTE = "note"  # a notice in the thread
    ERROR = "error"  # a job that failed
    FILE = "file"  # a file attached to the thread
    CLOSED = "closed"  # resolved, with the root cause
    CHECKLIST = "checklist"  # the section 10 checklist: posted, or boxes ticked
    EXPORT = "export"  # a postmortem was exported


@dataclass(frozen=True)
class Event:
    """One timeline entry, chained: `hash` covers every other field, `prev` is the hash before it."""

    seq: int
    kind: EventKind
    at: float
    who: str | None
    details: dict[str, Any]
    prev: str
    hash: str

    def get(self, name: str, default: Any = None) -> Any:
        return self.details.get(name, default)

    @classmethod
    def parse(cls, raw: bytes | str) -> Event:
        data = json.loads(raw)
        return cls(
            seq=int(data["seq"]),
            kind=EventKind(data["kind"]),
            at=float(data["at"]),
            who=data.get("who"),
            details=dict(data.get("details") or {}),
            prev=str(data["prev"]),
            hash=str(data["hash"]),
        )


def genesis(incident_id: str) -> str:
    """The `prev` of an incident's first event: ties the chain to the incident's id."""
    return hashlib.sha256(f"nexy-incident:{incident_id}".encode()).hexdigest()


def event_hash(body: dict[str, Any]) -> str:
    """SHA-256 of an event's canonical JSON (sorted keys, no spaces) without its own hash."""
    fields = {key: body[key] for key in ("seq", "kind", "at", "who", "details", "prev")}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _plain(details: dict[str, Any]) -> dict[str, Any]:
    """Details as stored: redacted, long texts cut, and in JSON's own types (what is hashed is what is read)."""

    def clamp(value: Any) -> Any:
        if isinstance(value, str) and len(value) > MAX_DETAIL_CHARS:
            return value[:MAX_DETAIL_CHARS] + f"… (cut: {len(value) - MAX_DETAIL_CHARS} more characters)"
        if isinstance(value, list | tuple):
            return [clamp(item) for item in value]
        if isinstance(value, dict):
            return {str(k): clamp(v) for k, v in value.items()}
        return value

    return json.loads(json.dumps(clamp(redact_json(details)), default=str))


@dataclass(frozen=True)
class Incident:
    """One incident: its channel and thread, who opened it when, and how it ended."""

    id: str
    channel: str
    opened_by: str
    opened_at: float
    status: IncidentStatus
    title: str
    thread_ts: str | None = None
    permalink: str = ""
    root_cause: str = ""
    closed_by: str = ""
    closed_at: float = 0.0
    events: int = 0
    head: str = ""
    sections: tuple[str, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.status is IncidentStatus.OPEN

    @property
    def duration_s(self) -> float | None:
        """How long it was open (None while it is)."""
        return self.closed_at - self.opened_at if self.closed_at else None


@dataclass(frozen=True)
class Closing:
    """What `close` did: whether this call resolved it, and the pending plans that expired with it."""

    closed: bool
    expired_plans: tuple[str, ...] = ()


# Open the incident a key (the channel's open incident, or a thread) points to, or a new one:
# atomically, so that two commands arriving together never open two incidents. With ARGV[6]
# 'new' a new incident is opened whatever is open, and becomes the channel's.
_OPEN = """
local current = redis.call('GET', KEYS[1])
if current and ARGV[6] ~= 'new' then return {current, 0} end
local id = 'INC-' .. redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[3] .. id, 'id', id, 'channel', ARGV[1], 'opened_by', ARGV[2],
           'opened_at', ARGV[3], 'status', 'open', 'title', ARGV[4], 'thread_ts', ARGV[5])
redis.call('SET', KEYS[1], id)
redis.call('ZADD', KEYS[4], ARGV[3], id)
redis.call('ZADD', KEYS[6], ARGV[3], id)
redis.call('SADD', KEYS[7], id)
if ARGV[5] ~= '' then redis.call('SET', KEYS[5], id) end
return {id, 1}
"""

# Resolve once; free the channel only if it still points at this incident; and expire the
# incident's pending plans in the same step, so that no approval can count after the close.
_CLOSE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'open' then return {0} end
redis.call('HSET', KEYS[1], 'status', 'resolved', 'closed_by', ARGV[2], 'closed_at', ARGV[3], 'root_cause', ARGV[4])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
redis.call('SREM', KEYS[3], ARGV[1])
local result = {1}
for _, plan in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  local key = ARGV[5] .. plan
  if redis.call('HGET', key, 'status') == 'pending' then
    redis.call('HSET', key, 'status', 'expired', 'decided_at', ARGV[3])
    table.insert(result, plan)
  end
end
return result
"""


class IncidentStore:
    """Incidents, their threads and timelines, kept in Redis."""

    def __init__(self, redis: Redis):
        self.redis = redis
        self._open = redis.register_script(_OPEN)
        self._close = redis.register_script(_CLOSE)

    # -- opening and finding -------------------------------------------------------------

    def open_or_attach(self, channel: str, user: str, title: str) -> tuple[Incident, bool]:
        """The channel's open incident, opened now if there is none; and whether it is new."""
        return self._run_open(_channel_key(channel), channel, user, title, thread_ts="")

    def open_new(self, channel: str, user: str, title: str) -> Incident:
        """A new incident that becomes the channel's open one, even while another is open (that one
        stays open, reachable in its own thread)."""
        incident, _ = self._run_open(_channel_key(channel), channel, user, title, thread_ts="", new=True)
        return incident

    def for_thread(self, channel: str, thread_ts: str, user: str, title: str) -> tuple[Incident, bool]:
        """The incident recorded in this thread; a thread the bot does not know becomes one. In the
        thread of a resolved incident, the channel's open incident (opened now if there is none)."""
        incident = self.find_thread(channel, thread_ts)
        if incident is not None and not incident.is_open:
            return self.open_or_attach(channel, user, title)
        return self._run_open(_thread_key(channel, thread_ts), channel, user, title, thread_ts=thread_ts)

    def _run_open(
        self, key: str, channel: str, user: str, title: str, thread_ts: str, new: bool = False
    ) -> tuple[Incident, bool]:
        keys = [
            key,
            f"{_PREFIX}:incident:seq",
            f"{_PREFIX}:incident:",
            f"{_PREFIX}:incidents",
            _thread_key(channel, thread_ts),
            _channel_index(channel),
            _OPEN_SET,
        ]
        at = time.time()
        incident_id, created = self._open(
            keys=keys, args=[channel, user, f"{at:.6f}", title, thread_ts, "new" if new else "attach"]
        )
        incident_id = text(incident_id)
        if created:
            self.record(incident_id, EventKind.OPENED, user, title=title, channel=channel)
        incident = self.get(incident_id)
        assert incident is not None
        return incident, bool(created)

    def get(self, incident_id: str) -> Incident | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(_key(incident_id))
        pipe.smembers(_sections_key(incident_id))
        raw, sections = pipe.execute()
        if not raw:
            return None
        data = {text(k): text(v) for k, v in raw.items()}
        return Incident(
            id=data["id"],
            channel=data["channel"],
            opened_by=data["opened_by"],
            opened_at=float(data["opened_at"]),
            status=IncidentStatus(data["status"]),
            title=data["title"],
            thread_ts=data.get("thread_ts") or None,
            permalink=data.get("permalink", ""),
            root_cause=data.get("root_cause", ""),
            closed_by=data.get("closed_by", ""),
            closed_at=float(data.get("closed_at") or 0),
            events=int(data.get("events") or 0),
            head=data.get("head", ""),
            sections=tuple(sorted((text(s) for s in sections), key=section_order)),
        )

    def current(self, channel: str) -> Incident | None:
        """The channel's open incident, if any (never opens one)."""
        incident_id = self.redis.get(_channel_key(channel))
        return self.get(text(incident_id)) if incident_id else None

    def find_thread(self, channel: str, thread_ts: str) -> Incident | None:
        """The incident recorded in this thread, if any (never opens one)."""
        incident_id = self.redis.get(_thread_key(channel, thread_ts))
        return self.get(text(incident_id)) if incident_id else None

    def set_thread(self, incident: Incident, thread_ts: str, permalink: str = "") -> Incident:
        """Record the parent message that is the incident's thread (and its permalink)."""
        pipe = self.redis.pipeline()
        pipe.hset(_key(incident.id), mapping={"thread_ts": thread_ts, "permalink": permalink})
        pipe.set(_thread_key(incident.channel, thread_ts), incident.id)
        pipe.execute()
        return Incident(**{**asdict(incident), "thread_ts": thread_ts, "permalink": permalink})

    def set_permalink(self, incident_id: str, permalink: str) -> None:
        self.redis.hset(_key(incident_id), "permalink", permalink)

    def thread_lock(self, incident_id: str):
        """A lock held while the parent message of an incident is posted, so it is posted once."""
        return self.redis.lock(f"{_PREFIX}:incident:{incident_id}:parent", timeout=60, blocking_timeout=60)

    def close(self, incident: Incident, user: str, root_cause: str) -> Closing:
        """Resolve the incident with its root cause (redacted), so the channel's next command opens a
        new one, and expire its pending plans; `closed` is False if it was already resolved."""
        (won, *expired) = self._close(
            keys=[_key(incident.id), _channel_key(incident.channel), _OPEN_SET, incident_plans_key(incident.id)],
            args=[incident.id, user, f"{time.time():.6f}", _plain({"r": root_cause})["r"], PLAN_KEY_PREFIX],
        )
        return Closing(bool(won), tuple(text(plan) for plan in expired))

    def history(self, channel: str | None = None, limit: int = 10) -> list[Incident]:
        """The most recent incidents of a channel (of every channel without one), newest first."""
        index = _channel_index(channel) if channel else f"{_PREFIX}:incidents"
        ids = self.redis.zrevrange(index, 0, limit - 1)
        return [incident for raw in ids if (incident := self.get(text(raw))) is not None]

    def open_incidents(self) -> list[Incident]:
        """Every open incident, newest first."""
        found = [incident for raw in self.redis.smembers(_OPEN_SET) if (incident := self.get(text(raw)))]
        return sorted(found, key=lambda i: i.opened_at, reverse=True)

    # -- the timeline --------------------------------------------------------------------

    def record(self, incident_id: str, kind: EventKind, who: str | None = None, **details: Any) -> Event:
        """Append one event (redacted) to the incident's timeline, chained to the one before it. A
        `section` detail adds a runbook section to the incident's. Concurrent appends from any
        number of processes keep one chain: the append is retried if another came in between."""
        body_details = _plain(details)
        log_key = _log_key(incident_id)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(log_key)
                    last = pipe.lrange(log_key, -1, -1)
                    before = Event.parse(last[0]) if last else None
                    body: dict[str, Any] = {
                        "seq": before.seq + 1 if before else 0,
                        "kind": kind.value,
                        "at": round(time.time(), 3),
                        "who": who,
                        "details": body_details,
                        "prev": before.hash if before else genesis(incident_id),
                    }
                    body["hash"] = event_hash(body)
                    pipe.multi()
                    pipe.rpush(log_key, json.dumps(body, ensure_ascii=False))
                    pipe.hset(_key(incident_id), mapping={"head": body["hash"], "events": body["seq"] + 1})
                    if body_details.get("section"):
                        pipe.sadd(_sections_key(incident_id), str(body_details["section"]))
                    pipe.execute()
                    return Event.parse(json.dumps(body))
                except WatchError:
                    continue

    def timeline(self, incident_id: str) -> list[Event]:
        """Every event of the incident, in order."""
        return [Event.parse(raw) for raw in self.redis.lrange(_log_key(incident_id), 0, -1)]

    def verify(self, incident_id: str, expected_head: str = "") -> ChainCheck:
        """Recompute the incident's chain: the first event edited, reordered or removed, if any. An
        `expected_head` (from an export or the closing checklist) must be the hash of an event in
        the chain: that catches a timeline rewritten whole after it was exported."""
        raw = self.redis.hgetall(_key(incident_id))
        if not raw:
            raise LookupError(f"no incident {incident_id}")
        data = {text(k): text(v) for k, v in raw.items()}
        return verify_chain(
            incident_id,
            self.redis.lrange(_log_key(incident_id), 0, -1),
            recorded_events=int(data.get("events") or 0),
            recorded_head=data.get("head", ""),
            expected_head=expected_head,
        )


# -- tamper evidence ---------------------------------------------------------------------------


class Tamper(str, Enum):
    """How a timeline was changed after it was recorded."""

    EDITED = "edited"  # an event's content no longer matches its hash, or an event was replaced
    REORDERED = "reordered"  # events are out of their recorded order
    REMOVED = "removed"  # an event is missing (in the middle, or at the end)
    REWRITTEN = "rewritten"  # the chain no longer holds a head given from outside (an export)


@dataclass(frozen=True)
class ChainCheck:
    """The result of recomputing an incident's chain."""

    incident: str
    events: int
    head: str
    tamper: Tamper | None = None
    seq: int | None = None  # the first event found wrong
    detail: str = ""

    @property
    def intact(self) -> bool:
        return self.tamper is None


def verify_chain(
    incident_id: str,
    raws: Sequence[bytes | str],
    *,
    recorded_events: int,
    recorded_head: str,
    expected_head: str = "",
) -> ChainCheck:
    """Walk the chain from its genesis: the first event whose position, content or link is wrong."""
    events: list[dict[str, Any]] = []
    for n, raw in enumerate(raws):
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or not {"seq", "kind", "at", "who", "details", "prev", "hash"} <= set(data):
                raise ValueError
        except ValueError:
            return ChainCheck(incident_id, len(raws), "", Tamper.EDITED, n, f"position {n} is not a timeline event")
        events.append(data)

    def wrong(tamper: Tamper, seq: int, detail: str) -> ChainCheck:
        return ChainCheck(incident_id, len(events), "", tamper, seq, detail)

    seqs = [e["seq"] for e in events]
    prev = genesis(incident_id)
    for n, event in enumerate(events):
        name = f"event #{n} ({event['kind']})"
        if event["seq"] != n:
            if n in seqs[n + 1 :]:
                return wrong(Tamper.REORDERED, n, f"event #{n} is at position {seqs.index(n, n + 1)}, not {n}")
            return wrong(Tamper.REMOVED, n, f"event #{n} is missing: position {n} holds event #{event['seq']}")
        if event_hash(event) != event["hash"]:
            return wrong(Tamper.EDITED, n, f"{name} was changed after it was recorded: its hash does not match")
        if event["prev"] != prev:
            return wrong(Tamper.EDITED, n - 1, f"event #{n - 1} was replaced: {name} links to another event")
        prev = event["hash"]
    if recorded_events > len(events):
        missing = recorded_events - len(events)
        return wrong(Tamper.REMOVED, len(events), f"the last {missing} of {recorded_events} events are missing")
    if events and recorded_head != prev:
        return wrong(Tamper.EDITED, len(events) - 1, "the chain's last hash is not the incident's recorded head")
    if expected_head and expected_head not in {e["hash"] for e in events}:
        return wrong(Tamper.REWRITTEN, 0, f"no event has the hash {expected_head[:16]}…: the timeline was rewritten")
    return ChainCheck(incident_id, len(events), prev)


def section_order(section: str) -> tuple[float, ...]:
    """`0.1` < `1` < `5` < `6.2` < `7-9` < `10`."""
    try:
        return tuple(float(part) for part in section.split("-")[0].split("."))
    except ValueError:
        return (float("inf"),)


_OPEN_SET = f"{_PREFIX}:incidents:open"


def _key(incident_id: str) -> str:
    return f"{_PREFIX}:incident:{incident_id}"


def _log_key(incident_id: str) -> str:
    return f"{_PREFIX}:incident:{incident_id}:log"


def _sections_key(incident_id: str) -> str:
    return f"{_PREFIX}:incident:{incident_id}:sections"


def _channel_key(channel: str) -> str:
    return f"{_PREFIX}:channel:{channel}:open"


def _channel_index(channel: str) -> str:
    return f"{_PREFIX}:channel:{channel}:incidents"


def _thread_key(channel: str, thread_ts: str) -> str:
    return f"{_PREFIX}:thread:{channel}:{thread_ts}"
