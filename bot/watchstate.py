"""The watch's state in Redis, which the watch (jobs/watch.py) keeps and `/nexy watch` reads and changes:
each VM's probe state, and the pause for planned maintenance with the log its budget is counted from."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from redis import Redis

from bot.contract import KEY_PREFIX

PAUSE_KEY = f"{KEY_PREFIX}:watch:pause"
"""JSON {until, by, since, channel} while the watch is paused; expires by itself when the pause ends."""

PAUSE_LOG_KEY = f"{KEY_PREFIX}:watch:pauses"
"""Every pause of the last day (sorted set, member JSON {since, until, by}, score its end): the budget."""

PAUSE_WINDOW_S = 24 * 3600
"""The rolling window over which NEXY_WATCH_PAUSE_BUDGET_S caps the watch's paused time."""


def state_key(vm: str) -> str:
    return f"{KEY_PREFIX}:watch:vm:{vm}"


@dataclass
class VMWatch:
    """One VM's watch state (kept in Redis as JSON)."""

    vm: str
    last_probe_at: float = 0.0
    last_ok: bool | None = None
    failures: int = 0  # in a row
    problem: str = ""
    incident: str = ""  # the open watch incident, if any
    failing_since: float = 0.0  # the first failure of the episode the incident is about
    recovered_at: float = 0.0  # when it answered again while the incident is open (0: it has not)
    flapping_said: bool = False

    @classmethod
    def load(cls, redis: Redis, vm: str) -> VMWatch:
        raw = redis.get(state_key(vm))
        if not raw:
            return cls(vm)
        data = json.loads(raw)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def save(self, redis: Redis) -> None:
        redis.set(state_key(self.vm), json.dumps(asdict(self)))


def paused(redis: Redis) -> dict | None:
    """The pause in force ({until, by}), or None."""
    raw = redis.get(PAUSE_KEY)
    return json.loads(raw) if raw else None


def paused_time(redis: Redis, now: float) -> float:
    """Seconds the watch is or will be paused within the rolling window that ends now (a pause in force
    counts until its end): what the budget has spent."""
    redis.zremrangebyscore(PAUSE_LOG_KEY, "-inf", now - PAUSE_WINDOW_S)
    total = 0.0
    entries: list = redis.zrange(PAUSE_LOG_KEY, 0, -1)
    for raw in entries:
        entry = json.loads(raw)
        total += max(0.0, entry["until"] - max(entry["since"], now - PAUSE_WINDOW_S))
    return total


def pause(redis: Redis, seconds: float, by: str, channel: str = "") -> float:
    """Pause the watch for `seconds` (a pause in force ends now and is replaced); returns when it ends."""
    now = time.time()
    _end_logged(redis, now)
    until = now + seconds
    entry = {"since": now, "until": until, "by": by}
    redis.zadd(PAUSE_LOG_KEY, {json.dumps(entry, sort_keys=True): until})
    redis.expire(PAUSE_LOG_KEY, int(PAUSE_WINDOW_S + seconds) + 60)
    redis.set(PAUSE_KEY, json.dumps({**entry, "channel": channel}), px=int(seconds * 1000))
    return until


def resume(redis: Redis) -> bool:
    """End a pause; whether there was one. Its log entry ends now: the time not paused is not spent."""
    _end_logged(redis, time.time())
    return bool(redis.delete(PAUSE_KEY))


def _end_logged(redis: Redis, now: float) -> None:
    """The pause in force, if any, ends now in the log."""
    current = paused(redis)
    if not current or "since" not in current:
        return
    old = {"since": current["since"], "until": current["until"], "by": current["by"]}
    if redis.zrem(PAUSE_LOG_KEY, json.dumps(old, sort_keys=True)):
        redis.zadd(PAUSE_LOG_KEY, {json.dumps({**old, "until": min(old["until"], now)}, sort_keys=True): now})
