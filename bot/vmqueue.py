"""The fair VM queue: who may add a read-only check to a VM's queue, and which waiting run answers it.

A VM has two queues served by its one worker, fixes first (bot/contract.py): plans and applies
go ahead of waiting read-only checks. Checks are admitted here, in one Redis script each way, so
that nothing races the worker taking a job:

- `admit`: a person's waiting checks on the VM are counted (joined ones too: each is a request
  to answer, a report to post); past NEXY_MAX_WAITING_PER_USER the request is refused. An
  identical check (same command words and arguments) that still waits (its RQ job is `queued`)
  is joined: the request rides on that run and is answered in its own thread; else it gets a
  job of its own.
- `close`: the worker, before the run-command, takes the riders and closes the run to new ones;
  a request that arrives afterwards finds no waiting run and gets a job of its own.

Keys (per VM): `nexy:vm:<rg>:<vm>:coalesce` (hash: command words → the waiting job), `...:waiting`
(hash: request id → who, which job answers it, since when, the words and incident), and
`nexy:job:<id>:riders` (list: the requests that joined job <id>, as WorkItem payloads).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import Enum

from redis import Redis

from bot.contract import KEY_PREFIX, WorkItem, vm_job_timeout
from bot.redis_conn import text

ADMIT_GRACE_S = 60.0
"""A request admitted this recently counts as waiting even before its job is in the queue (the web
process admits, then enqueues); an older one whose job no longer waits is forgotten (a job lost
before it ran must not hold a person's places forever)."""


class Admission(str, Enum):
    """What became of a read-only check asked for a VM."""

    NEW = "new"  # a job of its own
    JOINED = "joined"  # rides on an identical run that still waits
    REFUSED = "refused"  # the person has too many requests waiting for this VM


@dataclass(frozen=True)
class Waiting:
    """One request of a person that waits for the VM (for a refusal that names them)."""

    words: str
    incident: str
    since: float


@dataclass(frozen=True)
class Admitted:
    admission: Admission
    job: str = ""  # the job that answers the request (its own, or the one it joined)
    riders: int = 0  # joined: how many requests ride on that job now
    waiting: tuple[Waiting, ...] = ()  # refused: what of theirs waits


_ADMIT = """
local coalesce, waiting = KEYS[1], KEYS[2]
local key, id, user, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local now, grace, payload = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local job_prefix, riders_prefix, riders_ttl = ARGV[8], ARGV[9], tonumber(ARGV[10])
local words, incident = ARGV[11], ARGV[12]
local function waits(job) return redis.call('HGET', job_prefix .. job, 'status') == 'queued' end
if limit > 0 then
  local mine = {}
  local all = redis.call('HGETALL', waiting)
  for i = 1, #all, 2 do
    local entry = cjson.decode(all[i + 1])
    if entry.user == user then
      if waits(entry.job) or now - entry.at < grace then
        table.insert(mine, all[i + 1])
      else
        redis.call('HDEL', waiting, all[i])
      end
    end
  end
  if #mine >= limit then
    table.insert(mine, 1, 'refused')
    return mine
  end
end
local function entry(job)
  return cjson.encode({user = user, job = job, at = now, words = words, incident = incident})
end
if key ~= '' then
  local leader = redis.call('HGET', coalesce, key)
  if leader and waits(leader) then
    local riders = riders_prefix .. leader .. ':riders'
    local count = redis.call('RPUSH', riders, payload)
    redis.call('EXPIRE', riders, riders_ttl)
    redis.call('HSET', waiting, id, entry(leader))
    return {'joined', leader, tostring(count)}
  end
  redis.call('HSET', coalesce, key, id)
end
redis.call('HSET', waiting, id, entry(id))
return {'new', id, '0'}
"""

_CLOSE = """
local coalesce, waiting, riders = KEYS[1], KEYS[2], KEYS[3]
local key, job = ARGV[1], ARGV[2]
if key ~= '' and redis.call('HGET', coalesce, key) == job then
  redis.call('HDEL', coalesce, key)
end
redis.call('HDEL', waiting, job)
local joined = redis.call('LRANGE', riders, 0, -1)
for _, raw in ipairs(joined) do
  redis.call('HDEL', waiting, cjson.decode(raw).id)
end
return joined
"""


def coalesce_key(item: WorkItem) -> str:
    """What makes two checks identical on one VM: the command and its arguments (the VM is the key's)."""
    return " ".join((item.command, *item.args))


def riders_key(job: str) -> str:
    return f"{KEY_PREFIX}:job:{job}:riders"


class VMQueue:
    """The admission and coalescing state of one VM's queue."""

    def __init__(self, redis: Redis, resource_group: str, vm: str, conflict_max_wait_s: float):
        self.redis = redis
        base = f"{KEY_PREFIX}:vm:{resource_group}:{vm}"
        self.coalesce = f"{base}:coalesce"
        self.waiting = f"{base}:waiting"
        # A run's riders are kept as long as its job may run: RQ's failure callback tells them too.
        self.riders_ttl_s = vm_job_timeout(conflict_max_wait_s)
        self._admit = redis.register_script(_ADMIT)
        self._close = redis.register_script(_CLOSE)

    def admit(self, item: WorkItem, limit: int, *, coalesce: bool = True) -> Admitted:
        """Count, join or admit one read-only check (limit 0: not counted against anyone, the watch)."""
        reply = self._admit(
            keys=[self.coalesce, self.waiting],
            args=[
                coalesce_key(item) if coalesce else "",
                item.id,
                item.user,
                limit,
                time.time(),
                ADMIT_GRACE_S,
                json.dumps(item.payload()),
                "rq:job:",
                f"{KEY_PREFIX}:job:",
                self.riders_ttl_s,
                item.words,
                item.incident,
            ],
        )
        outcome, *rest = (text(part) for part in reply)
        if outcome == Admission.REFUSED.value:
            mine = sorted((json.loads(raw) for raw in rest), key=lambda e: e["at"])
            return Admitted(
                Admission.REFUSED,
                waiting=tuple(Waiting(e["words"], e["incident"], float(e["at"])) for e in mine),
            )
        return Admitted(Admission(outcome), job=rest[0], riders=int(rest[1]))

    def close(self, item: WorkItem) -> tuple[WorkItem, ...]:
        """The worker starts `item`'s job: the requests that joined it, and no more may join."""
        joined = self._close(
            keys=[self.coalesce, self.waiting, riders_key(item.id)], args=[coalesce_key(item), item.id]
        )
        return tuple(WorkItem.from_payload(json.loads(raw)) for raw in joined)

    def riders(self, job: str) -> tuple[WorkItem, ...]:
        """The requests that joined a run (while it waits, runs, or for RQ's failure callback)."""
        return tuple(WorkItem.from_payload(json.loads(raw)) for raw in self.redis.lrange(riders_key(job), 0, -1))

    def rider_count(self, job: str) -> int:
        return int(self.redis.llen(riders_key(job)))
