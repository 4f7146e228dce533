"""The fix lifecycle: plan → approval → apply and verify, each step recorded in the incident.

- `run_plan` (VM queue): one run-command captures the state; a plan message shows the diff, the
  commands, who asked, who may approve and until when.
- `decide` (io queue): a reaction or button from someone; the policy and the plan's atomic
  decision make exactly one approval count, however many arrive.
- `run_apply` (VM queue): one run-command re-checks the captured state, applies, restarts only if
  the 0.1 preflight passes, and verifies; the thread shows the real diff and each check.
"""
from __future__ import annotations

import time
from datetime import timedelta

from bot import messages
from bot.dispatch import IO_QUEUE, Dispatcher, WorkItem
from bot.plans import Plan, PlanStatus, PlanStore
from bot.policy import GroupCache, Policy, describe
from jobs.catalogue import vm_parameters
from jobs.engine import run_on_vm
from jobs.fixes import FIXES, fix_for
from jobs.runcommand import Script
from jobs.runtime import Runtime, current
from jobs.thread import Thread


def policy(runtime: Runtime) -> Policy:
    """The access policy, resolving user groups through Slack (workers only)."""
    return Policy(runtime.settings, GroupCache(runtime.redis), resolve=runtime.slack.usergroup_members)


def run_plan(runtime: Runtime, thread: Thread, item: WorkItem) -> str:
    """fix / restart: capture the state in one run-command and post the plan for approval."""
    settings = runtime.settings
    fix = fix_for(item.command, item.args)
    result = run_on_vm(runtime, thread, item, Script(fix.plan_script, vm_parameters(settings)))
    if result.exit_code != 0:
        thread.post(*messages.script_incomplete(result), kind="plan", user=item.user)
        return "failed" if result.exit_code is not None else "incomplete"
    assessment = fix.assess(result.facts, settings)
    if assessment.blocked or not assessment.needed:
        text = messages.plan_blocked(fix, assessment.blocked) if assessment.blocked else messages.nothing_to_fix(fix)
        thread.post(text, kind="plan", user=item.user)
        runtime.store.record(item.incident, "plan", item.user, fix=fix.name, needed=False, reason=assessment.blocked)
        return "nothing to do"
    now = time.time()
    plan = Plan(id=PlanStore.new_id(), fix=fix.name, incident=item.incident, channel=item.channel,
                requester=item.user, created_at=now, expires_at=now + settings.nexy_approval_ttl_s,
                fingerprint=assessment.fingerprint, state=result.facts)
    plans = PlanStore(runtime.redis)
    plans.save(plan)
    text, blocks = messages.plan_message(plan, fix, assessment, fix.commands(settings),
                                         describe(settings.nexy_approvers), settings.nexy_allow_self_approval)
    plans.attach_message(plan, thread.post(text, blocks, kind="plan", user=item.user))
    previous = plans.supersede(plan, settings.vm_queue)
    if previous:
        _announce_superseded(runtime, plans.get(previous), plan)
    # When the approval window closes, say so in the thread (the io worker runs RQ's scheduler).
    Dispatcher(settings, runtime.redis).queue(IO_QUEUE).enqueue_in(
        timedelta(seconds=settings.nexy_approval_ttl_s + 1), "jobs.tasks.expire_plan", plan_id=plan.id)
    runtime.store.record(item.incident, "plan", item.user, plan=plan.id, fix=fix.name, diff=list(assessment.diff),
                         expires_at=plan.expires_at)
    return plan.id


def _announce_superseded(runtime: Runtime, old: Plan | None, new: Plan) -> None:
    if old is None:
        return
    fix = FIXES[old.fix]
    old_thread = Thread(runtime, old.incident)
    old_thread.update(old.message_ts, *messages.plan_decided(old, fix, fix.assess(old.state, runtime.settings).diff))
    old_thread.post(messages.plan_superseded(old, new, fix), kind="supersede")
    runtime.store.record(old.incident, "supersede", new.requester, plan=old.id, by=new.id)


def decide(*, user: str, approve: bool, source: str, plan_id: str | None = None,
           channel: str | None = None, ts: str | None = None, at: float | None = None) -> str:
    """An approval or rejection from a reaction or a button: checked, then decided exactly once.
    `at` is when Slack delivered it: a decision that waited in the queue is judged by that time."""
    runtime = current()
    plans = PlanStore(runtime.redis)
    plan = plans.get(plan_id) if plan_id else plans.by_message(channel or "", ts or "")
    if plan is None:
        return "not a plan"
    thread = Thread(runtime, plan.incident)
    refusal = _refusal(runtime, plan, user, approve)
    if refusal:
        runtime.slack.ephemeral(plan.channel, user, refusal, thread_ts=thread.ensure())
        runtime.store.record(plan.incident, "approval-ignored", user, plan=plan.id, source=source, reason=refusal)
        return "ignored"
    won, status = plans.decide(plan.id, user, PlanStatus.APPROVED if approve else PlanStatus.REJECTED, at)
    plan = plans.get(plan.id) or plan
    fix = FIXES[plan.fix]
    if won == 0:
        runtime.slack.ephemeral(plan.channel, user, messages.plan_already(plan, status), thread_ts=thread.ensure())
        return f"already {status}"
    kind = "approval" if won == 1 and approve else "rejection" if won == 1 else "expiry"
    runtime.store.record(plan.incident, kind, user, plan=plan.id, source=source)
    if kind == "approval":  # first the apply, so that no Slack error below can lose it
        Dispatcher(runtime.settings, runtime.redis).submit_apply(plan.id, f"apply {fix.words} ({plan.incident}, {plan.id})")
    thread.update(plan.message_ts, *messages.plan_decided(plan, fix, fix.assess(plan.state, runtime.settings).diff))
    text = {"approval": messages.plan_approved, "rejection": messages.plan_rejected,
            "expiry": messages.plan_expired}[kind](plan, fix)
    thread.post(text, kind=kind, user=user)
    return {"approval": "approved", "rejection": "rejected", "expiry": "expired"}[kind]


def _refusal(runtime: Runtime, plan: Plan, user: str, approve: bool) -> str:
    """Why this user's decision does not count ('' if it does). The requester may withdraw a plan."""
    if not approve and user == plan.requester:
        return ""
    decision = policy(runtime).can_approve(user, plan.requester)
    return "" if decision.allowed else messages.approval_refused(plan, decision.reason, decision.who)


def expire(plan_id: str) -> str:
    """At the end of its approval window: a plan nobody decided is marked expired, and the thread says so."""
    runtime = current()
    plans = PlanStore(runtime.redis)
    if not plans.expire_if_due(plan_id):
        plan = plans.get(plan_id)
        if plan and plan.status == PlanStatus.PENDING.value:  # early (clocks differ): look again when due
            Dispatcher(runtime.settings, runtime.redis).queue(IO_QUEUE).enqueue_in(
                timedelta(seconds=max(1.0, plan.expires_at - time.time()) + 1), "jobs.tasks.expire_plan",
                plan_id=plan_id)
        return "decided or not due"
    plan = plans.get(plan_id)
    fix = FIXES[plan.fix]
    thread = Thread(runtime, plan.incident)
    thread.update(plan.message_ts, *messages.plan_decided(plan, fix, fix.assess(plan.state, runtime.settings).diff))
    thread.post(messages.plan_expired(plan, fix), kind="expiry")
    runtime.store.record(plan.incident, "expiry", None, plan=plan.id, source="timer")
    return "expired"


def run_apply(plan_id: str) -> str:
    """Apply and verify an approved plan in one run-command; the thread shows what ran and the result."""
    runtime = current()
    plans = PlanStore(runtime.redis)
    plan = plans.get(plan_id)
    if plan is None or not plans.start_apply(plan_id):
        return "not approved, or already applying"
    settings = runtime.settings
    fix = FIXES[plan.fix]
    thread = Thread(runtime, plan.incident)
    item = WorkItem(id=f"apply-{plan.id}", command="apply", args=(fix.name,), user=plan.decided_by,
                    channel=plan.channel, incident=plan.incident, source="approval", requested_at=time.time())
    parameters = (*vm_parameters(settings), ("NEXY_EXPECT", plan.fingerprint),
                  ("NEXY_VERIFY_URLS", ",".join(settings.nexy_vm_health_urls)),
                  ("NEXY_VERIFY_WAIT_S", str(settings.nexy_verify_wait_s)))
    runtime.store.record(plan.incident, "apply", plan.decided_by, plan=plan.id, fix=fix.name)
    result = run_on_vm(runtime, thread, item, Script(fix.apply_script, parameters))
    outcome = result.facts.get("outcome") or ("failed" if result.exit_code is not None else "unknown")
    plans.finish(plan.id, PlanStatus.APPLIED if outcome == "verified" else PlanStatus.FAILED)
    text, blocks = messages.apply_report(plan, fix, result, outcome, fix.commands(settings), settings)
    thread.post(text, blocks, kind="verify", user=plan.decided_by)
    runtime.store.record(plan.incident, "verify", plan.decided_by, plan=plan.id, outcome=outcome,
                         exit_code=result.exit_code, facts=result.facts)
    return outcome
