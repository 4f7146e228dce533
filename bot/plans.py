"""Fix plans and their approval, in Redis: a plan is decided exactly once.

A plan records what a fix will change (the state its plan run captured, and a fingerprint of
it), who asked, until when it may be approved, and how many distinct approvers it needs (the
fix's `approvals`, or NEXY_APPROVALS). `decide` is one atomic Redis script: each distinct approver
is counted once, the N-th distinct approval moves the plan to `approved`, one rejection rejects;
of any number of approvals, rejections and retries arriving at once, from any number of
processes, exactly one moves the plan out of `pending`; an approval after the expiry marks it
expired. The requester never counts toward a plan that needs several approvals.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from redis import Redis

from bot.redaction import redact_json
from bot.redis_conn import text

if TYPE_CHECKING:
    from bot.item import Fix
    from bot.settings import Settings

PLAN_KEY_PREFIX = "nexy:plan:"
"""A plan's hash is `nexy:plan:<id>` (the incident store's close expires pending plans by it)."""
PLAN_MESSAGE_KEY_PREFIX = "nexy:plan-message:"
"""`nexy:plan-message:<channel>:<ts>`: the plan a message shows (kept as long as its incident once resolved)."""


def incident_plans_key(incident_id: str) -> str:
    """The set of the plans made for an incident: closing the incident expires the pending ones."""
    return f"nexy:incident:{incident_id}:plans"


class PlanStatus(str, Enum):
    """Where a plan is in its life."""

    PENDING = "pending"  # posted, waiting for an approver
    APPROVED = "approved"  # approved; apply and verify are queued
    APPLYING = "applying"  # the apply run-command has started
    REJECTED = "rejected"  # an approver said no; nothing ran
    EXPIRED = "expired"  # nobody approved in time; nothing ran
    SUPERSEDED = "superseded"  # a newer plan for the same fix on the same VM replaced it; nothing ran
    APPLIED = "applied"  # applied and verified
    FAILED = "failed"  # apply refused (stale) or verify failed: see the thread


class ApplyOutcome(str, Enum):
    """What an apply-and-verify run-command ended in (the apply script's `outcome` fact)."""

    VERIFIED = "verified"  # changed, restarted under the preflight, every verify check passed
    STALE = "stale"  # refused: the VM changed since the plan; nothing was changed
    SMOKE_FAILED = "smoke_failed"  # refused: the new key failed its smoke test on the VM; nothing was changed
    PREFLIGHT_FAILED = "preflight_failed"  # changed, but not restarted: a 0.1 guardrail fails
    VERIFY_FAILED = "verify_failed"  # changed and restarted, but a verify check failed
    FAILED = "failed"  # a step failed; the steps before it ran
    UNKNOWN = "unknown"  # no result came back

    @classmethod
    def of(cls, facts: dict[str, str], exit_code: int | None) -> ApplyOutcome:
        """The outcome a run reported; a run with no outcome fact failed (or is unknown without an exit code)."""
        try:
            return cls(facts.get("outcome", ""))
        except ValueError:
            return cls.FAILED if exit_code is not None else cls.UNKNOWN


class Verdict(str, Enum):
    """What one approval or rejection did to a plan (`PlanStore.decide`)."""

    APPROVED = "approved"  # the N-th distinct approval: the plan is approved (exactly one call gets this)
    REJECTED = "rejected"  # a rejection: the plan is rejected (exactly one call gets this)
    COUNTED = "counted"  # an approval that counted; the plan waits for more
    REPEATED = "repeated"  # this approver had approved already: nothing changed
    REQUESTER = "requester"  # the requester's approval of a plan that needs several: never counted
    EXPIRED = "expired"  # it came after the expiry: this call marked the plan expired
    DECIDED = "decided"  # the plan was decided already (or is gone): nothing changed


@dataclass(frozen=True)
class Tally:
    """A decision's verdict, the plan's status after it, and its approvals so far and needed."""

    verdict: Verdict
    status: str  # 'missing' when there is no such plan
    approvers: tuple[str, ...] = ()
    needed: int = 1

    @property
    def counted(self) -> str:
        """`1 of 2`: the approvals so far, of those needed."""
        return f"{len(self.approvers)} of {self.needed}"


# One script for every decision: the distinct approvers are a JSON list in the plan's own hash, so
# adding one, counting them and approving at the N-th happen in one step no other call can split.
_DECIDE = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'decided', 'missing', '[]', '1'} end
local needed = tonumber(redis.call('HGET', KEYS[1], 'approvals_needed') or '1') or 1
local approvers = redis.call('HGET', KEYS[1], 'approved_by') or '[]'
if status ~= 'pending' then return {'decided', status, approvers, tostring(needed)} end
if tonumber(ARGV[3]) > tonumber(redis.call('HGET', KEYS[1], 'expires_at')) then
  redis.call('HSET', KEYS[1], 'status', 'expired', 'decided_at', ARGV[3])
  return {'expired', 'expired', approvers, tostring(needed)}
end
if ARGV[2] ~= 'approved' then
  redis.call('HSET', KEYS[1], 'status', ARGV[2], 'decided_by', ARGV[1], 'decided_at', ARGV[3])
  return {ARGV[2], ARGV[2], approvers, tostring(needed)}
end
if needed > 1 and ARGV[1] == redis.call('HGET', KEYS[1], 'requester') then
  return {'requester', status, approvers, tostring(needed)}
end
local list = cjson.decode(approvers)
for _, approver in ipairs(list) do
  if approver == ARGV[1] then return {'repeated', status, approvers, tostring(needed)} end
end
table.insert(list, ARGV[1])
approvers = cjson.encode(list)
redis.call('HSET', KEYS[1], 'approved_by', approvers)
if #list < needed then return {'counted', status, approvers, tostring(needed)} end
redis.call('HSET', KEYS[1], 'status', 'approved', 'decided_by', ARGV[1], 'decided_at', ARGV[3])
return {'approved', 'approved', approvers, tostring(needed)}
"""

_EXPIRE_IF_DUE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'pending' then return 0 end
if tonumber(ARGV[1]) <= tonumber(redis.call('HGET', KEYS[1], 'expires_at')) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'expired', 'decided_at', ARGV[1])
return 1
"""

_START_APPLY = """
if redis.call('HGET', KEYS[1], 'status') ~= 'approved' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'applying')
return 1
"""

# One pending plan per fix and VM: a newer plan supersedes the pending one, so that two approvals
# can never run the same fix twice.
_SUPERSEDE = """
local previous = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'EX', 2592000)
if previous and previous ~= ARGV[1] and redis.call('HGET', ARGV[2] .. previous, 'status') == 'pending' then
  redis.call('HSET', ARGV[2] .. previous, 'status', 'superseded', 'decided_at', ARGV[3])
  return previous
end
return false
"""


@dataclass
class Plan:
    """One fix plan: what, for which incident, who asked, the captured state, and its status."""

    id: str
    fix: str
    incident: str
    channel: str
    requester: str
    created_at: float
    expires_at: float
    fingerprint: str
    state: dict = field(default_factory=dict)
    args: tuple[str, ...] = ()  # the fix's own arguments (`2.4.0.240` for `fix version`)
    words: str = ""  # the command as asked: `fix version 2.4.0.240`
    secret: str = ""  # the reference of a sealed value the apply needs (bot/sealed.py), never the value
    vm: str = ""  # the inventory's name of the VM it changes: its apply goes to that VM's queue
    status: PlanStatus = PlanStatus.PENDING
    message_ts: str = ""
    decided_by: str = ""  # who decided it: the rejecter, or the approver whose approval was the N-th
    decided_at: float = 0.0
    approvals_needed: int = 1  # distinct approvers it needs (never the requester when more than one)
    approved_by: tuple[str, ...] = ()  # who approved it so far, in order
    note: str = ""  # a note the plan message carries (made from a diagnosis's facts)

    @property
    def approvers(self) -> tuple[str, ...]:
        """Who approved it: everyone counted, or (a plan approved before approvals were counted) its decider."""
        approved = self.status in (PlanStatus.APPROVED, PlanStatus.APPLYING, PlanStatus.APPLIED, PlanStatus.FAILED)
        return self.approved_by or ((self.decided_by,) if approved and self.decided_by else ())


class PlanStore:
    """Plans by id, and by the Slack message that shows them."""

    def __init__(self, redis: Redis):
        self.redis = redis
        self._decide = redis.register_script(_DECIDE)
        self._expire_if_due = redis.register_script(_EXPIRE_IF_DUE)
        self._start_apply = redis.register_script(_START_APPLY)
        self._supersede = redis.register_script(_SUPERSEDE)

    @staticmethod
    def new_id() -> str:
        return "P-" + secrets.token_hex(4)

    def save(self, plan: Plan) -> Plan:
        data = asdict(plan)
        data["state"] = json.dumps(redact_json(plan.state))
        data["status"] = plan.status.value
        data["args"] = json.dumps(list(plan.args))
        data["approved_by"] = json.dumps(list(plan.approved_by))
        pipe = self.redis.pipeline()
        pipe.hset(_key(plan.id), mapping={k: str(v) for k, v in data.items()})
        pipe.expire(_key(plan.id), 30 * 24 * 3600)
        pipe.sadd(incident_plans_key(plan.incident), plan.id)
        pipe.execute()
        return plan

    def get(self, plan_id: str) -> Plan | None:
        raw = self.redis.hgetall(_key(plan_id))
        if not raw:
            return None
        data = {text(k): text(v) for k, v in raw.items()}
        return Plan(
            id=data["id"],
            fix=data["fix"],
            incident=data["incident"],
            channel=data["channel"],
            requester=data["requester"],
            created_at=float(data["created_at"]),
            expires_at=float(data["expires_at"]),
            fingerprint=data["fingerprint"],
            state=json.loads(data.get("state") or "{}"),
            status=PlanStatus(data["status"]),
            args=tuple(json.loads(data.get("args") or "[]")),
            words=data.get("words", ""),
            secret=data.get("secret", ""),
            vm=data.get("vm", ""),
            message_ts=data.get("message_ts", ""),
            decided_by=data.get("decided_by", ""),
            decided_at=float(data.get("decided_at") or 0),
            approvals_needed=int(data.get("approvals_needed") or 1),
            approved_by=tuple(json.loads(data.get("approved_by") or "[]")),
            note=data.get("note", ""),
        )

    def attach_message(self, plan: Plan, ts: str) -> None:
        """Remember the message that shows the plan, so reactions and buttons on it find it."""
        plan.message_ts = ts
        self.redis.hset(_key(plan.id), "message_ts", ts)
        self.redis.set(_message_key(plan.channel, ts), plan.id, ex=30 * 24 * 3600)

    def by_message(self, channel: str, ts: str) -> Plan | None:
        plan_id = self.redis.get(_message_key(channel, ts))
        return self.get(text(plan_id)) if plan_id else None

    def decide(self, plan_id: str, user: str, status: PlanStatus, at: float | None = None) -> Tally:
        """Count one approval (`APPROVED`) or rejection (`REJECTED`) of a pending plan, atomically: the
        N-th distinct approver approves it, one rejection rejects it (each verdict to exactly one call),
        an approver counts once, the requester never toward several; a plan past its expiry at `at`
        (when Slack delivered the decision; now by default) is marked expired instead."""
        when = at if at is not None else time.time()
        verdict, current, approvers, needed = (
            text(value) for value in self._decide(keys=[_key(plan_id)], args=[user, status.value, f"{when:.6f}"])
        )
        return Tally(Verdict(verdict), current, tuple(json.loads(approvers)), int(needed))

    def expire_if_due(self, plan_id: str) -> bool:
        """Mark a still-pending plan expired once its time is up; True only for the call that did."""
        return bool(self._expire_if_due(keys=[_key(plan_id)], args=[f"{time.time():.6f}"]))

    def supersede(self, plan: Plan, scope: str) -> str | None:
        """Make `plan` the one pending plan of its fix in `scope` (the VM); returns the id of the pending
        plan it superseded, if any."""
        previous = self._supersede(
            keys=[f"nexy:plan-current:{scope}:{plan.fix}"], args=[plan.id, PLAN_KEY_PREFIX, f"{time.time():.6f}"]
        )
        return previous.decode() if isinstance(previous, bytes) else previous

    def start_apply(self, plan_id: str) -> bool:
        """approved → applying, atomically: True for the one apply that may run (a replayed or
        duplicated apply job finds the plan applying, and runs nothing)."""
        return bool(self._start_apply(keys=[_key(plan_id)]))

    def finish(self, plan_id: str, status: PlanStatus) -> None:
        self.redis.hset(_key(plan_id), "status", status.value)

    def pending(self, scope: str, fixes: Iterable[str], now: float | None = None) -> list[Plan]:
        """The plans waiting for an approver in `scope` (a VM), oldest first: at most one a fix, the one
        `supersede` made current, while it is pending and its window is open."""
        names = list(fixes)
        if not names:
            return []
        ids = self.redis.mget([f"nexy:plan-current:{scope}:{name}" for name in names])
        found = [self.get(text(plan_id)) for plan_id in ids if plan_id]
        when = now if now is not None else time.time()
        waiting = [p for p in found if p and p.status is PlanStatus.PENDING and p.expires_at >= when]
        return sorted(waiting, key=lambda plan: plan.created_at)

    def mark_reminded(self, plan_id: str) -> bool:
        """True for the one call that may send a pending plan's reminder (a retried job sends none)."""
        return bool(self.redis.hsetnx(_key(plan_id), "reminded_at", f"{time.time():.6f}"))

    def link(self, plan_id: str) -> str:
        """The plan message's permalink, once a worker stored it ('' before)."""
        return text(self.redis.hget(_key(plan_id), "permalink") or b"")

    def remember_link(self, plan_id: str, link: str) -> None:
        self.redis.hset(_key(plan_id), "permalink", link)


def approvals_needed(fix: Fix, settings: Settings) -> int:
    """How many distinct approvers a plan of this fix needs: NEXY_APPROVALS's, else the fix's own."""
    return settings.nexy_approvals.get(fix.name, fix.approvals)


def approvals_problem(settings: Settings, fixes: dict[str, Fix]) -> str | None:
    """What is wrong with NEXY_APPROVALS or a fix's `approvals` for these fixes (by name), or None."""
    unknown = sorted(set(settings.nexy_approvals) - set(fixes))
    if unknown:
        return (
            f"NEXY_APPROVALS: no fix named {', '.join(repr(name) for name in unknown)}; "
            f"the fixes are {', '.join(sorted(fixes))} (e.g. api-key=2,deps=1)"
        )
    for name, fix in sorted(fixes.items()):
        if not isinstance(fix.approvals, int) or fix.approvals < 1:
            return f"fix {name}: approvals = {fix.approvals!r}; a fix needs at least 1 approval"
    return None


def _key(plan_id: str) -> str:
    return f"{PLAN_KEY_PREFIX}{plan_id}"


def _message_key(channel: str, ts: str) -> str:
    return f"{PLAN_MESSAGE_KEY_PREFIX}{channel}:{ts}"
