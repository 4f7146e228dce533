"""N-of-M approvals in the kernel: the plan's atomic count against a real Redis, the policy, the
NEXY_APPROVALS setting and the fixes that need two approvers."""
from __future__ import annotations

import threading
import time

import pytest

from bot.errors import SettingsError
from bot.plans import Plan, PlanStatus, PlanStore, Tally, Verdict, approvals_needed, approvals_problem
from bot.policy import GroupCache, Policy
from jobs.worker import build_runtime

REQUESTER = "U0ALICE"


def _plan(store: PlanStore, needed: int, ttl: float = 60) -> Plan:
    now = time.time()
    return store.save(Plan(id=store.new_id(), fix="deps", incident="INC-1", channel="C0OPS", requester=REQUESTER,
                           created_at=now, expires_at=now + ttl, fingerprint="f", approvals_needed=needed))


def test_two_of_three_under_sixty_concurrent_approvals_approve_once_after_two_people(redis):
    """Sixty threads, three approvers approving again and again at once: one call approves, at the second person."""
    store = PlanStore(redis)
    plan = _plan(store, needed=2)
    results: list[Tally] = []
    barrier = threading.Barrier(60)

    def approve(n: int) -> None:
        barrier.wait()
        results.append(store.decide(plan.id, ("U0BOB", "U0CAROL", "U0DAVE")[n % 3], PlanStatus.APPROVED))

    threads = [threading.Thread(target=approve, args=(n,)) for n in range(60)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    verdicts = [tally.verdict for tally in results]
    assert verdicts.count(Verdict.APPROVED) == 1 and verdicts.count(Verdict.COUNTED) == 1, verdicts
    approved = next(tally for tally in results if tally.verdict is Verdict.APPROVED)
    stored = store.get(plan.id)
    assert stored.status is PlanStatus.APPROVED and len(set(stored.approved_by)) == 2 == len(stored.approved_by)
    assert approved.approvers == stored.approved_by and approved.counted == "2 of 2"
    assert stored.decided_by == stored.approved_by[1]


def test_a_repeat_approval_by_one_approver_counts_once(redis):
    """The same approver approving twice leaves the plan at 1 of 2; a second person approves it."""
    store = PlanStore(redis)
    plan = _plan(store, needed=2)
    first = store.decide(plan.id, "U0BOB", PlanStatus.APPROVED)
    again = store.decide(plan.id, "U0BOB", PlanStatus.APPROVED)
    assert (first.verdict, first.counted) == (Verdict.COUNTED, "1 of 2")
    assert (again.verdict, again.counted) == (Verdict.REPEATED, "1 of 2")
    assert store.get(plan.id).status is PlanStatus.PENDING
    assert store.decide(plan.id, "U0CAROL", PlanStatus.APPROVED).verdict is Verdict.APPROVED


def test_the_requester_never_counts_toward_several_approvals(redis):
    """The requester's approval of a plan needing two changes nothing; of a plan needing one, it counts as today
    (whether it may is the policy's: NEXY_ALLOW_SELF_APPROVAL)."""
    store = PlanStore(redis)
    two, one = _plan(store, needed=2), _plan(store, needed=1)
    assert store.decide(two.id, REQUESTER, PlanStatus.APPROVED).verdict is Verdict.REQUESTER
    assert store.get(two.id).approved_by == () and store.get(two.id).status is PlanStatus.PENDING
    assert store.decide(one.id, REQUESTER, PlanStatus.APPROVED).verdict is Verdict.APPROVED


def test_one_rejection_after_an_approval_rejects(redis):
    """1 of 2 approvals, then one rejection: rejected; a later approval changes nothing."""
    store = PlanStore(redis)
    plan = _plan(store, needed=2)
    store.decide(plan.id, "U0BOB", PlanStatus.APPROVED)
    assert store.decide(plan.id, "U0CAROL", PlanStatus.REJECTED).verdict is Verdict.REJECTED
    late = store.decide(plan.id, "U0DAVE", PlanStatus.APPROVED)
    assert (late.verdict, late.status) == (Verdict.DECIDED, "rejected")
    assert store.get(plan.id).status is PlanStatus.REJECTED


def test_an_approval_after_the_expiry_expires_a_partly_approved_plan(redis):
    """1 of 2 approvals, then the window closes: the next approval marks it expired, nothing approves it."""
    store = PlanStore(redis)
    plan = _plan(store, needed=2)
    store.decide(plan.id, "U0BOB", PlanStatus.APPROVED)
    assert store.decide(plan.id, "U0CAROL", PlanStatus.APPROVED, at=time.time() + 120).verdict is Verdict.EXPIRED
    assert store.get(plan.id).status is PlanStatus.EXPIRED


def test_policy_refuses_the_requester_of_a_plan_needing_several_even_with_self_approval(make_settings, redis):
    """NEXY_ALLOW_SELF_APPROVAL lets the requester approve a one-approval plan only."""
    settings = make_settings(nexy_approvers=f"{REQUESTER},U0BOB", nexy_allow_self_approval=True)
    policy = Policy(settings, GroupCache(redis))
    assert policy.can_approve(REQUESTER, REQUESTER, 1).allowed is True
    refused = policy.can_approve(REQUESTER, REQUESTER, 2)
    assert refused.allowed is False and "2 approvals from other people" in refused.reason
    assert policy.can_approve("U0BOB", REQUESTER, 2).allowed is True


def test_deps_and_api_key_need_two_approvers_the_others_one(make_settings, registry):
    """The fixes that restart with new packages or a new key need two approvers; NEXY_APPROVALS overrides per fix."""
    needed = {name: approvals_needed(fix, make_settings()) for name, fix in registry.fixes.items()}
    assert needed == {name: 2 if name in ("deps", "api-key") else 1 for name in registry.fixes}
    overridden = make_settings(nexy_approvals="api-key=3,deps=1")
    assert approvals_needed(registry.fixes["api-key"], overridden) == 3
    assert approvals_needed(registry.fixes["deps"], overridden) == 1
    assert approvals_needed(registry.fixes["config-perms"], overridden) == 1


@pytest.mark.parametrize("value, says", [
    ("deps=0", "NEXY_APPROVALS: deps=0: a fix needs at least 1 approval"),
    ("deps=-1", "NEXY_APPROVALS: deps=-1: a fix needs at least 1 approval"),
    ("deps", "NEXY_APPROVALS: 'deps' is not FIX=N (e.g. api-key=2,deps=1"),
    ("deps=two", "NEXY_APPROVALS: 'deps=two' is not FIX=N"),
    ("deps=2,deps=1", "NEXY_APPROVALS: deps is named twice"),
])
def test_a_malformed_approvals_setting_is_refused_in_one_line(make_settings, value, says):
    """A value below 1, a missing number or a fix named twice stops the settings with one line naming it."""
    with pytest.raises(SettingsError) as refused:
        make_settings(nexy_approvals=value)
    assert says in str(refused.value)


def test_an_unknown_fix_in_the_approvals_setting_stops_the_worker_naming_the_fixes(make_settings, redis, registry):
    """NEXY_APPROVALS naming no fix: the worker refuses to start, listing the fixes there are."""
    with pytest.raises(SettingsError) as refused:
        build_runtime(make_settings(nexy_approvals="api-key=2,dep=2"), redis, registry)
    assert "NEXY_APPROVALS: no fix named 'dep'; the fixes are api-key, config-perms, deps" in str(refused.value)
    assert approvals_problem(make_settings(nexy_approvals="deps=3"), registry.fixes) is None
