"""Access policy and plan decisions against a real Redis."""
from __future__ import annotations

import threading
import time

from bot.plans import Plan, PlanStatus, PlanStore, Tally, Verdict
from bot.policy import GroupCache, Policy


def _plan(store: PlanStore, ttl: float = 60) -> Plan:
    now = time.time()
    return store.save(Plan(id=store.new_id(), fix="config-perms", incident="INC-1", channel="C0OPS",
                           requester="U0ALICE", created_at=now, expires_at=now + ttl, fingerprint="root:root:600"))


def test_exactly_one_of_many_concurrent_decisions_counts(redis):
    """Fifty threads approving and rejecting at once: exactly one decision wins."""
    store = PlanStore(redis)
    plan = _plan(store)
    results: list[Tally] = []
    barrier = threading.Barrier(50)

    def decide(n: int) -> None:
        barrier.wait()
        results.append(store.decide(plan.id, f"U{n:04d}", PlanStatus.APPROVED if n % 2 else PlanStatus.REJECTED))

    threads = [threading.Thread(target=decide, args=(n,)) for n in range(50)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sum(1 for tally in results if tally.verdict in (Verdict.APPROVED, Verdict.REJECTED)) == 1
    assert store.get(plan.id).status in ("approved", "rejected")


def test_late_approval_expires_the_plan(redis):
    """An approval after the expiry marks the plan expired, once; later ones see it expired."""
    store = PlanStore(redis)
    plan = _plan(store, ttl=-1)
    assert store.decide(plan.id, "U0BOB", PlanStatus.APPROVED).verdict is Verdict.EXPIRED
    later = store.decide(plan.id, "U0BOB", PlanStatus.APPROVED)
    assert (later.verdict, later.status) == (Verdict.DECIDED, "expired")


def test_plan_found_by_its_message(redis):
    """A reaction's (channel, ts) finds the plan shown in that message."""
    store = PlanStore(redis)
    plan = _plan(store)
    store.attach_message(plan, "1700000000.000100")
    assert store.by_message("C0OPS", "1700000000.000100").id == plan.id
    assert store.by_message("C0OPS", "1700000000.000999") is None


def test_policy_user_ids_and_self_approval(make_settings, redis):
    """Operators and approvers by user id; the requester cannot approve their own plan by default."""
    policy = Policy(make_settings(nexy_operators="U0ALICE", nexy_approvers="U0ALICE,U0BOB"), GroupCache(redis))
    assert policy.can_request_fix("U0ALICE").allowed is True
    refused = policy.can_request_fix("U0CAROL")
    assert refused.allowed is False and "<@U0ALICE>" in refused.who
    assert policy.can_approve("U0BOB", "U0ALICE").allowed is True
    assert policy.can_approve("U0ALICE", "U0ALICE").allowed is False


def test_policy_empty_lists_mean_nobody(make_settings, redis):
    """With no operators configured, nobody may request a fix, and the refusal says the list is empty."""
    decision = Policy(make_settings(), GroupCache(redis)).can_request_fix("U0ALICE")
    assert decision.allowed is False and "nobody" in decision.who


def test_policy_group_unknown_until_resolved(make_settings, redis):
    """A group handle is 'unknown' to the web (cache only) and decided once a worker resolves it."""
    settings = make_settings(nexy_operators="@oncall")
    cache = GroupCache(redis)
    assert Policy(settings, cache).can_request_fix("U0ALICE").allowed is None
    resolved = Policy(settings, cache, resolve=lambda handle: ["U0ALICE"])
    assert resolved.can_request_fix("U0ALICE").allowed is True
    assert Policy(settings, cache).can_request_fix("U0BOB").allowed is False  # now cached
