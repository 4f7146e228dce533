"""The incident store in Redis: one open incident per channel, its thread, and its audit log.

An incident is the unit of record: the first command in a channel opens one, later commands
attach to it, and every request, output and decision is appended to its log. All writes that
race (two commands opening an incident at once, retried events) are single atomic Redis calls.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from redis import Redis

from bot.redaction import redact_json
from bot.redis_conn import text

_PREFIX = "nexy"
EVENT_DEDUPE_TTL_S = 24 * 3600
"""How long a delivered event id is remembered: Slack retries within minutes."""

# Open the channel's incident, or return the one already open: atomically, so that two
# commands arriving together never open two incidents.
_OPEN_OR_ATTACH = """
local current = redis.call('GET', KEYS[1])
if current then return {current, 0} end
local id = 'INC-' .. redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], id)
redis.call('HSET', KEYS[3] .. id, 'id', id, 'channel', ARGV[1], 'opened_by', ARGV[2],
           'opened_at', ARGV[3], 'status', 'open', 'title', ARGV[4], 'thread_ts', ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[3], id)
if ARGV[5] ~= '' then redis.call('SET', KEYS[5], id) end
return {id, 1}
"""

# Close once, and free the channel only if it still points at this incident.
_CLOSE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'open' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'closed', 'closed_by', ARGV[2], 'closed_at', ARGV[3])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
"""


@dataclass(frozen=True)
class Incident:
    """One incident: a channel, the thread that records it, and who opened it when."""

    id: str
    channel: str
    opened_by: str
    opened_at: float
    status: str
    title: str
    thread_ts: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status == "open"


class IncidentStore:
    """Incidents, their threads and audit logs, kept in Redis."""

    def __init__(self, redis: Redis):
        self.redis = redis
        self._open_or_attach = redis.register_script(_OPEN_OR_ATTACH)
        self._close = redis.register_script(_CLOSE)

    # -- opening and finding -------------------------------------------------------------

    def open_or_attach(self, channel: str, user: str, title: str) -> tuple[Incident, bool]:
        """The channel's open incident, opened now if there is none; and whether it is new."""
        return self._run_open(_channel_key(channel), channel, user, title, thread_ts="")

    def for_thread(self, channel: str, thread_ts: str, user: str, title: str) -> tuple[Incident, bool]:
        """The incident recorded in this thread; a thread the bot does not know becomes one."""
        return self._run_open(_thread_key(channel, thread_ts), channel, user, title, thread_ts=thread_ts)

    def _run_open(self, key: str, channel: str, user: str, title: str, thread_ts: str) -> tuple[Incident, bool]:
        keys = [
            key,
            f"{_PREFIX}:incident:seq",
            f"{_PREFIX}:incident:",
            f"{_PREFIX}:incidents",
            _thread_key(channel, thread_ts),
        ]
        incident_id, created = self._open_or_attach(
            keys=keys, args=[channel, user, f"{time.time():.6f}", title, thread_ts]
        )
        incident_id = incident_id.decode() if isinstance(incident_id, bytes) else incident_id
        incident = self.get(incident_id)
        assert incident is not None
        return incident, bool(created)

    def get(self, incident_id: str) -> Incident | None:
        raw = self.redis.hgetall(f"{_PREFIX}:incident:{incident_id}")
        if not raw:
            return None
        data = {text(k): text(v) for k, v in raw.items()}
        return Incident(
            id=data["id"],
            channel=data["channel"],
            opened_by=data["opened_by"],
            opened_at=float(data["opened_at"]),
            status=data["status"],
            title=data["title"],
            thread_ts=data.get("thread_ts") or None,
        )

    def set_thread(self, incident: Incident, thread_ts: str) -> Incident:
        """Record the parent message that is the incident's thread."""
        pipe = self.redis.pipeline()
        pipe.hset(f"{_PREFIX}:incident:{incident.id}", "thread_ts", thread_ts)
        pipe.set(_thread_key(incident.channel, thread_ts), incident.id)
        pipe.execute()
        return Incident(**{**asdict(incident), "thread_ts": thread_ts})

    def thread_lock(self, incident_id: str):
        """A lock held while the parent message of an incident is posted, so it is posted once."""
        return self.redis.lock(f"{_PREFIX}:incident:{incident_id}:parent", timeout=60, blocking_timeout=60)

    def close(self, incident: Incident, user: str) -> bool:
        """Close the incident, so the channel's next command opens a new one; False if already closed."""
        closed = self._close(
            keys=[f"{_PREFIX}:incident:{incident.id}", _channel_key(incident.channel)],
            args=[incident.id, user, f"{time.time():.6f}"],
        )
        return bool(closed)

    def history(self, limit: int = 10) -> list[Incident]:
        """The most recent incidents, newest first."""
        ids = self.redis.zrevrange(f"{_PREFIX}:incidents", 0, limit - 1)
        return [incident for raw in ids if (incident := self.get(text(raw))) is not None]

    # -- audit ---------------------------------------------------------------------------

    def record(self, incident_id: str, kind: str, user: str | None = None, **details: Any) -> dict:
        """Append one audit entry (who, what, when) to the incident's log; values are redacted."""
        entry = {"at": round(time.time(), 3), "kind": kind, "user": user, **redact_json(details)}
        self.redis.rpush(f"{_PREFIX}:incident:{incident_id}:log", json.dumps(entry, default=str))
        return entry

    def log(self, incident_id: str) -> list[dict]:
        return [json.loads(raw) for raw in self.redis.lrange(f"{_PREFIX}:incident:{incident_id}:log", 0, -1)]

    # -- Slack delivery ------------------------------------------------------------------

    def first_delivery(self, event_id: str) -> bool:
        """True the first time an event id is seen: Slack retries events and Bolt does not dedupe."""
        return bool(self.redis.set(f"{_PREFIX}:event:{event_id}", 1, nx=True, ex=EVENT_DEDUPE_TTL_S))

    def forget_delivery(self, event_id: str) -> None:
        """Forget an event id whose handling failed, so that Slack's retry is handled."""
        self.redis.delete(f"{_PREFIX}:event:{event_id}")


def _channel_key(channel: str) -> str:
    return f"{_PREFIX}:channel:{channel}:open"


def _thread_key(channel: str, thread_ts: str) -> str:
    return f"{_PREFIX}:thread:{channel}:{thread_ts}"
