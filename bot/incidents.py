"""The incident record in Redis: incidents, their threads, and their typed, hash-chained timeline.

An incident is the unit of record: the first command in a channel opens one (or `incident new`),
later commands attach to it, `incident close` resolves it, and every command, job, run-command,
check, plan, decision, apply, verify and note is appended to its timeline as one typed `Event`
(who, when, redacted details). Each event carries a SHA-256 over its own canonical JSON and the
hash of the event before it, so `verify` finds the first event that was edited, reordered or
removed. Writes that race (two commands opening an incident at once, retried events, two workers
appending) are single atomic Redis calls.

Redis runs `noeviction`, so what is kept is bounded here (`Limits`): past NEXY_MAX_EVENTS_PER_INCIDENT
a routine event (a command, a job's steps, a report, a note...) is counted into the incident's
pending roll-up instead of appended, and the roll-up is chained as one `rollup` event ("12 more
commands (`health`)") right before the next event that is kept (a plan, an approval, an apply, a
verify, the close) or when the incident is exported; a channel opens at most
NEXY_MAX_INCIDENTS_PER_HOUR incidents an hour; a resolved incident is removed whole
NEXY_RETENTION_DAYS after it was resolved.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from redis import Redis
from redis.exceptions import WatchError

from bot.contract import KEY_PREFIX, apply_job_id
from bot.errors import IncidentLimitError
from bot.plans import PLAN_KEY_PREFIX, PLAN_MESSAGE_KEY_PREFIX, incident_plans_key
from bot.redaction import redact_json
from bot.redis_conn import text

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

_PREFIX = KEY_PREFIX
EVENT_DEDUPE_TTL_S = 24 * 3600
"""How long a delivered event id is remembered: Slack retries within minutes."""

MAX_DETAIL_CHARS = 6000
"""A text in an event's details is cut to this many characters (a run-command's output is at most 8 KB)."""

HOUR_S = 3600
"""The window of NEXY_MAX_INCIDENTS_PER_HOUR."""

REMOVAL_GRACE_S = 24 * 3600
"""A resolved incident's keys expire this long after its retention ends: the io worker's sweep removes
it (and its index entries) at the end of its retention; the TTLs remove it even when no worker runs."""

ROLLUP_GROUPS = 24
"""The most (kind, command) groups a pending roll-up counts apart; further ones are counted by kind alone."""

ROLLUP_LABEL_CHARS = 60
"""A roll-up group's label (the command, script or watch outcome) is cut to this."""


@dataclass(frozen=True)
class Limits:
    """How much of Redis incidents may take (0: unbounded). The defaults are the settings' defaults."""

    max_events: int = 1000  # NEXY_MAX_EVENTS_PER_INCIDENT: routine events past it are rolled up
    incidents_per_hour: int = 20  # NEXY_MAX_INCIDENTS_PER_HOUR: new incidents a channel may open an hour
    retention_s: int = 30 * 86400  # NEXY_RETENTION_DAYS: how long a resolved incident is kept

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            settings.nexy_max_events_per_incident,
            settings.nexy_max_incidents_per_hour,
            settings.nexy_retention_days * 86400,
        )


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
    ROLLUP = "rollup"  # routine events past NEXY_MAX_EVENTS_PER_INCIDENT, counted by kind and command


ROUTINE = frozenset(
    {
        EventKind.COMMAND,
        EventKind.REFUSED,
        EventKind.JOB_QUEUED,
        EventKind.JOB_STARTED,
        EventKind.JOB_FINISHED,
        EventKind.RUN_COMMAND,
        EventKind.CHECK,
        EventKind.DIAGNOSIS,
        EventKind.NOTE,
        EventKind.ERROR,
        EventKind.FILE,
        EventKind.IGNORED,
    }
)
"""The kinds that come again with every command, probe or click: past the cap they are counted, not kept."""


def routine(kind: EventKind, details: dict[str, Any]) -> bool:
    """Whether an event may be rolled up past the cap: a routine kind, and not part of an apply (its run
    and job steps stay next to its plan and verify) nor the symptoms proposed at close."""
    apply_job = str(details.get("job") or "").startswith(apply_job_id(""))
    return kind in ROUTINE and not apply_job and "learn" not in details


def rollup_group(kind: EventKind, details: dict[str, Any]) -> str:
    """The roll-up field an event is counted under: its kind and what it was about."""
    label = details.get("command") or details.get("script") or details.get("watch") or details.get("report") or ""
    return f"{kind.value} {str(label)[:ROLLUP_LABEL_CHARS]}".strip()


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
    rolled_up: int = 0  # routine events counted into roll-ups (past the cap), chained or pending

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
# 'new' a new incident is opened whatever is open, and becomes the channel's. A channel that opened
# ARGV[7] incidents since ARGV[8] (an hour ago) opens none: {'', -1, when the oldest of them opened}.
_OPEN = """
local current = redis.call('GET', KEYS[1])
if current and ARGV[6] ~= 'new' then return {current, 0} end
local limit = tonumber(ARGV[7])
if limit > 0 and redis.call('ZCOUNT', KEYS[6], '(' .. ARGV[8], '+inf') >= limit then
  local oldest = redis.call('ZRANGEBYSCORE', KEYS[6], '(' .. ARGV[8], '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  return {'', -1, oldest[2]}
end
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

# Count a routine event into the incident's pending roll-up once its timeline holds ARGV[1] events
# (1), or not (0: the caller appends it); -1: no such incident. A new group past ARGV[4] groups is
# counted under its kind alone (ARGV[3]). One call: nothing can come in between the length and the count.
_ROLL = """
if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
if redis.call('LLEN', KEYS[1]) < tonumber(ARGV[1]) then return 0 end
local group = ARGV[2]
if redis.call('HEXISTS', KEYS[2], group) == 0 and redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[4]) + 2 then
  group = ARGV[3]
end
redis.call('HINCRBY', KEYS[2], group, 1)
redis.call('HSETNX', KEYS[2], '@first_at', ARGV[5])
redis.call('HSET', KEYS[2], '@last_at', ARGV[5])
redis.call('HINCRBY', KEYS[3], 'rolled_up', 1)
return 1
"""

# Resolve once; free the channel only if it still points at this incident; and expire the
# incident's pending plans in the same step, so that no approval can count after the close. With a
# retention (ARGV[6] s), everything of the incident gets a TTL (ARGV[7] s: the retention and a
# grace) and it is listed for removal at the end of its retention (KEYS[8], member 'id channel').
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
local keep = tonumber(ARGV[6])
if keep > 0 then
  local ttl = tonumber(ARGV[7])
  local channel = redis.call('HGET', KEYS[1], 'channel')
  local thread = redis.call('HGET', KEYS[1], 'thread_ts')
  for i = 4, 7 do redis.call('EXPIRE', KEYS[i], ttl) end
  redis.call('EXPIRE', KEYS[1], ttl)
  if thread and thread ~= '' then redis.call('EXPIRE', ARGV[9] .. channel .. ':' .. thread, ttl) end
  for _, plan in ipairs(redis.call('SMEMBERS', KEYS[4])) do
    local key = ARGV[5] .. plan
    redis.call('EXPIRE', key, ttl)
    local shown = redis.call('HMGET', key, 'channel', 'message_ts')
    if shown[1] and shown[2] and shown[2] ~= '' then
      redis.call('EXPIRE', ARGV[8] .. shown[1] .. ':' .. shown[2], ttl)
    end
  end
  redis.call('ZADD', KEYS[8], tonumber(ARGV[3]) + keep, ARGV[1] .. ' ' .. channel)
end
return result
"""


class IncidentStore:
    """Incidents, their threads and timelines, kept in Redis."""

    def __init__(self, redis: Redis, limits: Limits | None = None):
        self.redis = redis
        self.limits = limits or Limits()
        self._open = redis.register_script(_OPEN)
        self._close = redis.register_script(_CLOSE)
        self._roll = redis.register_script(_ROLL)

    # -- opening and finding -------------------------------------------------------------

    def open_or_attach(self, channel: str, user: str, title: str) -> tuple[Incident, bool]:
        """The channel's open incident, opened now if there is none; and whether it is new. Opening one
        past the channel's hourly limit raises IncidentLimitError (as do `open_new` and `for_thread`)."""
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
            _INDEX,
            _thread_key(channel, thread_ts),
            _channel_index(channel),
            _OPEN_SET,
        ]
        at = time.time()
        limit = self.limits.incidents_per_hour
        mode = "new" if new else "attach"
        incident_id, created, *oldest = self._open(
            keys=keys, args=[channel, user, f"{at:.6f}", title, thread_ts, mode, limit, f"{at - HOUR_S:.6f}"]
        )
        if created == -1:
            raise IncidentLimitError(channel, limit, float(text(oldest[0])) + HOUR_S)
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
            rolled_up=int(data.get("rolled_up") or 0),
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
        keep = self.limits.retention_s
        (won, *expired) = self._close(
            keys=[
                _key(incident.id),
                _channel_key(incident.channel),
                _OPEN_SET,
                incident_plans_key(incident.id),
                _log_key(incident.id),
                _sections_key(incident.id),
                _rollup_key(incident.id),
                _REMOVALS,
            ],
            args=[
                incident.id,
                user,
                f"{time.time():.6f}",
                _plain({"r": root_cause})["r"],
                PLAN_KEY_PREFIX,
                keep,
                keep + REMOVAL_GRACE_S,
                PLAN_MESSAGE_KEY_PREFIX,
                _THREAD_PREFIX,
            ],
        )
        return Closing(bool(won), tuple(text(plan) for plan in expired))

    def history(self, channel: str | None = None, limit: int = 10) -> list[Incident]:
        """The most recent incidents of a channel (of every channel without one), newest first. An id
        whose incident was removed (its retention ended) is taken out of the index on the way."""
        index = _channel_index(channel) if channel else _INDEX
        found: list[Incident] = []
        gone: list[Any] = []
        start = 0
        while len(found) < limit:
            ids = self.redis.zrevrange(index, start, start + limit - len(found) - 1)
            if not ids:
                break
            start += len(ids)
            for raw in ids:
                incident = self.get(text(raw))
                if incident is None:
                    gone.append(raw)
                else:
                    found.append(incident)
        if gone:
            self.redis.zrem(index, *gone)
        return found

    def open_incidents(self) -> list[Incident]:
        """Every open incident, newest first."""
        found = [incident for raw in self.redis.smembers(_OPEN_SET) if (incident := self.get(text(raw)))]
        return sorted(found, key=lambda i: i.opened_at, reverse=True)

    def open_count(self) -> int:
        """How many incidents are open (one Redis read: the metrics' scrape)."""
        return int(self.redis.scard(_OPEN_SET))

    # -- retention -----------------------------------------------------------------------

    def remove_expired(self, now: float | None = None, batch: int = 100) -> list[str]:
        """Remove the resolved incidents whose retention ended by `now`: the record, timeline,
        sections, pending roll-up, thread key, plans (and their message keys) and every index entry.
        Returns their ids (what other modules keep per incident, the outbox, is theirs to drop)."""
        due = self.redis.zrangebyscore(_REMOVALS, "-inf", time.time() if now is None else now, start=0, num=batch)
        removed = []
        for raw in due:
            member = text(raw)
            incident_id, _, channel = member.partition(" ")
            self._remove(incident_id, channel, member)
            removed.append(incident_id)
        return removed

    def _remove(self, incident_id: str, channel: str, member: str) -> None:
        thread_ts = self.redis.hget(_key(incident_id), "thread_ts")
        plans = [text(p) for p in self.redis.smembers(incident_plans_key(incident_id))]
        keys = [_key(incident_id), _log_key(incident_id), _sections_key(incident_id), _rollup_key(incident_id)]
        keys += [f"{_key(incident_id)}:parent", f"{_key(incident_id)}:parent-queued"]  # the parent's lock and flag
        keys += [incident_plans_key(incident_id), *(PLAN_KEY_PREFIX + plan for plan in plans)]
        for plan in plans:
            shown_in, ts = self.redis.hmget(PLAN_KEY_PREFIX + plan, "channel", "message_ts")
            if shown_in and ts:
                keys.append(f"{PLAN_MESSAGE_KEY_PREFIX}{text(shown_in)}:{text(ts)}")
        if thread_ts:
            keys.append(_thread_key(channel, text(thread_ts)))
        pipe = self.redis.pipeline()
        pipe.delete(*keys)
        pipe.zrem(_INDEX, incident_id)
        pipe.zrem(_channel_index(channel), incident_id)
        pipe.srem(_OPEN_SET, incident_id)
        pipe.zrem(_REMOVALS, member)
        pipe.execute()

    # -- the timeline --------------------------------------------------------------------

    def record(self, incident_id: str, kind: EventKind, who: str | None = None, **details: Any) -> Event | None:
        """Append one event (redacted) to the incident's timeline, chained to the one before it. A
        `section` detail adds a runbook section to the incident's. Concurrent appends from any
        number of processes keep one chain: the append is retried if another came in between.

        Past the cap (`Limits.max_events`) a routine event is counted into the incident's pending
        roll-up instead (None is returned); the next event that is kept is chained after one `rollup`
        event holding those counts. An event for an incident that is not recorded (or was removed) is
        dropped: None."""
        return self._append(incident_id, kind, who, _plain(details))

    def settle(self, incident_id: str) -> Event | None:
        """Chain the incident's pending roll-up now, if it has one (an export shows every count)."""
        return self._append(incident_id, None, None, {})

    def _append(
        self, incident_id: str, kind: EventKind | None, who: str | None, details: dict[str, Any]
    ) -> Event | None:
        cap = self.limits.max_events
        log_key, rollup_key = _log_key(incident_id), _rollup_key(incident_id)
        if kind is not None and cap and routine(kind, details):
            group = rollup_group(kind, details)
            counted = self._roll(
                keys=[log_key, rollup_key, _key(incident_id)],
                args=[cap, group, kind.value, ROLLUP_GROUPS, round(time.time(), 3)],
            )
            if counted == 1:
                return None
            if counted == -1:
                log.warning("an event for %s, which is not recorded, was dropped", incident_id)
                return None
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(log_key, rollup_key)
                    # One round trip for the reads, on another connection: the WATCH above still
                    # fails the transaction if either key changed since.
                    reads = self.redis.pipeline(transaction=False)
                    reads.lrange(log_key, -1, -1)
                    reads.hgetall(rollup_key)
                    reads.exists(_key(incident_id))
                    last, raw_pending, recorded = reads.execute()
                    if not recorded:
                        pipe.unwatch()
                        log.warning("an event for %s, which is not recorded, was dropped", incident_id)
                        return None
                    before = Event.parse(last[0]) if last else None
                    count = before.seq + 1 if before else 0
                    at = round(time.time(), 3)
                    pending = {text(k): text(v) for k, v in raw_pending.items()}
                    bodies: list[dict[str, Any]] = []
                    prev = before.hash if before else genesis(incident_id)
                    if pending:
                        bodies.append(_chained(count, EventKind.ROLLUP, at, None, _rollup_details(pending), prev))
                    if kind is not None:
                        seq = count + len(bodies)
                        prev = bodies[-1]["hash"] if bodies else prev
                        bodies.append(_chained(seq, kind, at, who, details, prev))
                    if not bodies:
                        pipe.unwatch()
                        return None
                    pipe.multi()
                    pipe.rpush(log_key, *(json.dumps(body, ensure_ascii=False) for body in bodies))
                    pipe.delete(rollup_key)
                    pipe.hset(_key(incident_id), mapping={"head": bodies[-1]["hash"], "events": bodies[-1]["seq"] + 1})
                    if details.get("section") and kind is not None:
                        pipe.sadd(_sections_key(incident_id), str(details["section"]))
                    pipe.execute()
                    return Event.parse(json.dumps(bodies[-1]))
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


_FIRST_AT, _LAST_AT = "@first_at", "@last_at"
"""The pending roll-up's own fields (a group's name never starts with `@`; `_ROLL` writes them)."""


def _chained(seq: int, kind: EventKind, at: float, who: str | None, details: dict[str, Any], prev: str) -> dict:
    body: dict[str, Any] = {"seq": seq, "kind": kind.value, "at": at, "who": who, "details": details, "prev": prev}
    body["hash"] = event_hash(body)
    return body


def _rollup_details(pending: dict[str, str]) -> dict[str, Any]:
    """A roll-up event's details: each group's count (most first), their total, and the time span."""
    counts = sorted(
        ((group, int(n)) for group, n in pending.items() if not group.startswith("@")), key=lambda g: (-g[1], g[0])
    )
    return {
        "counts": [{"kind": g.split(" ", 1)[0], "what": g.partition(" ")[2], "count": n} for g, n in counts],
        "total": sum(n for _, n in counts),
        "first_at": float(pending.get(_FIRST_AT) or 0),
        "last_at": float(pending.get(_LAST_AT) or 0),
    }


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
_INDEX = f"{_PREFIX}:incidents"
_REMOVALS = f"{_PREFIX}:incidents:removals"
"""Resolved incidents to remove, member `<id> <channel>`, scored by the end of their retention."""
_THREAD_PREFIX = f"{_PREFIX}:thread:"


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
    return f"{_THREAD_PREFIX}{channel}:{thread_ts}"


def _rollup_key(incident_id: str) -> str:
    return f"{_PREFIX}:incident:{incident_id}:rollup"
