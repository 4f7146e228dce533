"""The fix lifecycle: plan → approval → apply and verify, each step recorded in the incident.

- `run_plan` (VM queue): one run-command captures the state; a plan message shows the diff, the
  commands, who asked, who may approve and until when.
- `decide` (decisions queue): a reaction or button from someone; the policy and the plan's atomic
  decision count each distinct approver once, and make exactly one approval (the N-th) approve,
  however many arrive; each approval that counts is recorded with "k of N", and the plan message
  shows the approvals so far.
- `run_apply` (VM queue): one run-command re-checks the captured state, applies, restarts only if
  the 0.1 preflight passes, and verifies; the thread shows the real diff and each check.
"""

from __future__ import annotations

import time
from dataclasses import replace

from bot import metrics, render
from bot.context import RunResult
from bot.contract import WorkItem, apply_job_id
from bot.incidents import EventKind
from bot.item import Assessment, Fix
from bot.pending import approver_mentions, plan_link
from bot.plans import ApplyOutcome, Plan, PlanStatus, Tally, Verdict, approvals_needed
from bot.policy import describe
from bot.wording import apply as apply_wording
from bot.wording import approval as approval_wording
from bot.wording import commands as commands_wording
from bot.wording import pending as pending_wording
from bot.wording import plan as plan_wording
from bot.wording.pending import Pending
from jobs.context import Context, verify_parameters
from jobs.outbox import plan_ref
from jobs.progress import Progress
from jobs.runtime import Runtime
from jobs.thread import Thread


def run_plan(ctx: Context) -> str:
    """fix / restart: capture the state in one run-command and post the plan for approval."""
    runtime, item = ctx.runtime, ctx.item
    fix = runtime.registry.fix_for(item.command, item.args)
    secrets: tuple[tuple[str, str], ...] = ()
    if fix.secret is not None:
        value = runtime.sealed.unseal(item.secret)
        if value is None:
            ctx.thread.post(
                plan_wording.secret_missing(fix, item.words),
                kind=EventKind.PLAN,
                user=item.user,
                fix=fix.name,
                command=item.words,
                needed=False,
                reason="the form's value is no longer held",
            )
            return "no secret"
        refusal = fix.check_secret(ctx.settings, value)
        if refusal:
            runtime.sealed.discard(item.secret)
            ctx.thread.post(
                plan_wording.blocked(fix, item.words, refusal),
                kind=EventKind.PLAN,
                user=item.user,
                fix=fix.name,
                command=item.words,
                section=fix.section,
                needed=False,
                reason=refusal,
            )
            return "refused"
        secrets = ((fix.secret.parameter, value),)
    recent = runtime.diagnoses.recent(item.incident, ctx.settings.nexy_diagnosis_reuse_s)
    if recent is not None:  # the diagnosis batched this plan script: no second run-command
        runtime.sealed.release(item.secret)
        facts, age = recent
        return propose(ctx, fix, facts, source=plan_wording.from_diagnosis(age))
    try:
        result = ctx.run(fix.plan_script, *fix.plan_parameters(), secrets=secrets)
    finally:  # the apply unseals it again: until then this process holds it no longer
        runtime.sealed.release(item.secret)
    if result.exit_code != 0:
        runtime.sealed.discard(item.secret)
        return ctx.incomplete(result, kind="plan")
    return propose(ctx, fix, result.facts)


def propose(ctx: Context, fix: Fix, facts: dict[str, str], *, source: str = "") -> str:
    """Post the plan for facts already gathered (by the plan script, or by a diagnosis: `source`
    says so in the plan); returns the plan id, or what there was instead of a plan."""
    runtime, item, settings = ctx.runtime, ctx.item, ctx.settings
    args = fix_arguments(item)
    assessment = fix.assess(facts, settings, args)
    if assessment.blocked or not assessment.needed:
        runtime.sealed.discard(item.secret)
        text = (
            plan_wording.blocked(fix, item.words, assessment.blocked)
            if assessment.blocked
            else plan_wording.nothing_to_fix(fix, item.words)
        )
        ctx.thread.post(
            text,
            kind=EventKind.PLAN,
            user=item.user,
            fix=fix.name,
            command=item.words,
            section=fix.section,
            needed=False,
            reason=assessment.blocked,
        )
        return "nothing to do"
    now = time.time()
    plan = Plan(
        id=runtime.plans.new_id(),
        fix=fix.name,
        incident=item.incident,
        channel=item.channel,
        requester=item.user,
        created_at=now,
        expires_at=now + settings.nexy_approval_ttl_s,
        fingerprint=assessment.fingerprint,
        state=facts,
        args=args,
        words=item.words,
        secret=item.secret,
        vm=settings.vm_name,
        approvals_needed=approvals_needed(fix, settings),
        note=source,
    )
    runtime.plans.save(plan)
    message = _pending(runtime, plan, fix, assessment)
    # The plan's message is recorded on the plan once Slack took it (jobs/outbox.py, ref "plan:<id>").
    ctx.thread.post(
        *message,
        kind=EventKind.PLAN,
        ref=plan_ref(plan.id),
        user=item.user,
        plan=plan.id,
        fix=fix.name,
        command=item.words,
        section=fix.section,
        needed=True,
        diff=list(assessment.diff),
        expires_at=plan.expires_at,
        approvals_needed=plan.approvals_needed,
    )
    previous = runtime.plans.supersede(plan, settings.vm_queue)
    if previous:
        _announce_superseded(runtime, runtime.plans.get(previous), plan)
    # When the approval window closes, say so in the thread (the io worker runs RQ's scheduler).
    runtime.dispatcher.schedule_expiry(plan.id, settings.nexy_approval_ttl_s + 1)
    # Half-way through it, one reminder in the plan's thread names the approvers.
    runtime.dispatcher.schedule_reminder(plan.id, settings.nexy_approval_ttl_s / 2)
    return plan.id


def fix_arguments(item: WorkItem) -> tuple[str, ...]:
    """The fix's own arguments of a request: after the target for `fix <target> ...`, all for `restart`."""
    return item.args[1:] if item.command == "fix" else item.args


def _pending(runtime: Runtime, plan: Plan, fix: Fix, assessment: Assessment | None = None) -> tuple[str, list[dict]]:
    """The message of a plan waiting for approval (with its approvals so far), as its VM's settings say."""
    settings = runtime.for_vm(plan.vm).settings if plan.vm and runtime.settings.find_vm(plan.vm) else runtime.settings
    return plan_wording.message(
        plan,
        fix,
        assessment or fix.assess(plan.state, settings, plan.args),
        fix.commands(settings, plan.args),
        describe(settings.nexy_approvers),
        settings.nexy_allow_self_approval,
    )


def _decided(runtime: Runtime, thread: Thread, plan: Plan, fix: Fix) -> None:
    """Replace the plan message by its decided form (no buttons left)."""
    diff = fix.assess(plan.state, runtime.settings, plan.args).diff
    thread.update(plan_ref(plan.id), *plan_wording.decided(plan, fix, diff))


def _show_approvals(runtime: Runtime, thread: Thread, plan_id: str, fix: Fix) -> None:
    """Edit the plan message to show the plan as it is now (its approvals so far, or its decision). The
    plan is read again after each edit is queued, and edited again if it changed meanwhile: an edit
    queued late by a slower process is always followed by one showing the newer state."""
    shown: tuple | None = None
    for _ in range(10):
        plan = runtime.plans.get(plan_id)
        if plan is None:
            return
        seen = (plan.status, plan.approved_by, plan.decided_by)
        if seen == shown:
            return
        if plan.status is PlanStatus.PENDING:
            thread.update(plan_ref(plan.id), *_pending(runtime, plan, fix))
        else:
            _decided(runtime, thread, plan, fix)
        shown = seen


def _announce_superseded(runtime: Runtime, old: Plan | None, new: Plan) -> None:
    if old is None:
        return
    fix = runtime.registry.fixes[old.fix]
    runtime.sealed.discard(old.secret)
    old_thread = Thread(runtime, old.incident)
    _decided(runtime, old_thread, old, fix)
    old_thread.post(
        plan_wording.superseded(old, new, fix), kind=EventKind.SUPERSEDED, user=new.requester, plan=old.id, by=new.id
    )


def decide(
    runtime: Runtime,
    *,
    user: str,
    approve: bool,
    source: str,
    plan_id: str | None = None,
    channel: str | None = None,
    ts: str | None = None,
    at: float | None = None,
) -> str:
    """An approval or rejection from a reaction or a button: checked, then decided exactly once.
    `at` is when Slack delivered it: a decision that waited in the queue is judged by that time."""
    plans = runtime.plans
    plan = plans.get(plan_id) if plan_id else plans.by_message(channel or "", ts or "")
    if plan is None:
        return "not a plan"
    if plan_id and (plan.channel != channel or plan.message_ts != ts):
        # A button names its plan in its value: only a click on that plan's own message counts.
        reason = "the click was not on this plan's message"
        runtime.store.record(plan.incident, EventKind.IGNORED, user, plan=plan.id, source=source, reason=reason)
        if channel:
            runtime.slack.ephemeral(channel, user, commands_wording.button_out_of_date())
        return "not the plan's message"
    thread = Thread(runtime, plan.incident)
    refusal = _refusal(runtime, plan, user, approve)
    if refusal:
        runtime.slack.ephemeral(plan.channel, user, refusal, thread_ts=thread.ensure())
        runtime.store.record(plan.incident, EventKind.IGNORED, user, plan=plan.id, source=source, reason=refusal)
        return "ignored"
    tally = plans.decide(plan.id, user, PlanStatus.APPROVED if approve else PlanStatus.REJECTED, at)
    plan = plans.get(plan.id) or plan
    fix = runtime.registry.fixes[plan.fix]
    if tally.verdict is Verdict.DECIDED:
        text = approval_wording.already(plan, tally.status)
        runtime.slack.ephemeral(plan.channel, user, text, thread_ts=thread.ensure())
        return f"already {tally.status}"
    if tally.verdict is Verdict.REPEATED:
        runtime.slack.ephemeral(plan.channel, user, approval_wording.repeated(plan, fix), thread_ts=thread.ensure())
        return "approved already by this approver"
    if tally.verdict is Verdict.REQUESTER:  # the policy refuses it first; the script never counts it either
        refusal = approval_wording.refused(plan, _REQUESTER_NEVER_COUNTS, "")
        runtime.store.record(plan.incident, EventKind.IGNORED, user, plan=plan.id, source=source, reason=refusal)
        runtime.slack.ephemeral(plan.channel, user, refusal, thread_ts=thread.ensure())
        return "ignored"
    kind = {
        Verdict.APPROVED: EventKind.APPROVAL,
        Verdict.COUNTED: EventKind.APPROVAL,
        Verdict.REJECTED: EventKind.REJECTION,
        Verdict.EXPIRED: EventKind.EXPIRY,
    }[tally.verdict]
    # The decision is recorded, and an apply queued, before any Slack call: no Slack error can lose them.
    runtime.store.record(plan.incident, kind, user, plan=plan.id, fix=fix.name, source=source, **_counted(tally))
    if tally.verdict is Verdict.COUNTED:
        _show_approvals(runtime, thread, plan.id, fix)
        counted = replace(plan, approved_by=tally.approvers, approvals_needed=tally.needed)  # as this approval left it
        runtime.slack.ephemeral(plan.channel, user, approval_wording.counted(counted, fix), thread_ts=thread.ensure())
        return f"approved {tally.counted}"
    metrics.approval_decided(kind.value, (at or time.time()) - plan.created_at)
    if kind is EventKind.APPROVAL:
        runtime.dispatcher.submit_apply(plan.id, f"apply {plan.words} ({plan.incident}, {plan.id})", plan.vm)
    else:
        runtime.sealed.discard(plan.secret)
    _decided(runtime, thread, plan, fix)
    text = {
        EventKind.APPROVAL: approval_wording.approved,
        EventKind.REJECTION: approval_wording.rejected,
        EventKind.EXPIRY: approval_wording.expired,
    }[kind](plan, fix)
    thread.post(text, kind=None)
    return plan.status.value


_REQUESTER_NEVER_COUNTS = "you asked for this fix, and the requester never counts toward several approvals"


def _counted(tally: Tally) -> dict[str, object]:
    """An approval's count for the timeline: `approvals` so far, `needed`, and `counted` ("1 of 2")."""
    if tally.verdict not in (Verdict.APPROVED, Verdict.COUNTED):
        return {}
    return {"approvals": len(tally.approvers), "needed": tally.needed, "counted": tally.counted}


def _refusal(runtime: Runtime, plan: Plan, user: str, approve: bool) -> str:
    """Why this user's decision does not count ('' if it does): the same check as the web side's
    (bot/policy.py), now with user groups resolved. The requester may withdraw a plan."""
    decision = runtime.policy.for_decision(plan, user, approve)
    return "" if decision.allowed else approval_wording.refused(plan, decision.reason, decision.who)


def expire(runtime: Runtime, plan_id: str) -> str:
    """At the end of its approval window: a plan nobody decided is marked expired, and the thread says so."""
    plans = runtime.plans
    if not plans.expire_if_due(plan_id):
        pending = plans.get(plan_id)
        if pending and pending.status is PlanStatus.PENDING:  # early (clocks differ): look again when due
            runtime.dispatcher.schedule_expiry(plan_id, max(1.0, pending.expires_at - time.time()) + 1)
        return "decided or not due"
    plan = plans.get(plan_id)
    if plan is None:
        return "gone"
    fix = runtime.registry.fixes[plan.fix]
    runtime.sealed.discard(plan.secret)
    runtime.store.record(plan.incident, EventKind.EXPIRY, None, plan=plan.id, fix=fix.name, source="timer")
    metrics.approval_decided(EventKind.EXPIRY.value, time.time() - plan.created_at)
    thread = Thread(runtime, plan.incident)
    _decided(runtime, thread, plan, fix)
    thread.post(approval_wording.expired(plan, fix), kind=None)
    return "expired"


def remind(runtime: Runtime, plan_id: str) -> str:
    """Half-way through a plan's approval window: if nobody decided yet, one reminder in its thread names
    the approvers (a user group by its mention) with the approvals so far and the time left."""
    plan = runtime.plans.get(plan_id)
    now = time.time()
    if plan is None or plan.status is not PlanStatus.PENDING or plan.expires_at < now:
        return "decided or expired"
    fix = runtime.registry.fixes.get(plan.fix)
    if fix is None or not runtime.plans.mark_reminded(plan.id):
        return "already reminded"
    entry = Pending(plan, plan.approvals_needed, plan.approved_by, plan_link(runtime.plans, runtime.slack, plan))
    mentions = approver_mentions(runtime.settings.nexy_approvers, runtime.slack)
    Thread(runtime, plan.incident).post(pending_wording.reminder(entry, mentions, now), kind=None)
    return "reminded"


def expired_by_close(runtime: Runtime, thread: Thread, plan_id: str) -> None:
    """A pending plan that expired because its incident was resolved: the plan message loses its
    buttons and the thread says so (the close recorded it)."""
    plan = runtime.plans.get(plan_id)
    if plan is None:
        return
    fix = runtime.registry.fixes[plan.fix]
    runtime.store.record(plan.incident, EventKind.EXPIRY, None, plan=plan.id, fix=fix.name, source="close")
    _decided(runtime, thread, plan, fix)
    thread.post(approval_wording.expired_by_close(plan, fix, thread.incident.id), kind=None)


def run_apply(runtime: Runtime, plan_id: str) -> str:
    """Apply and verify an approved plan in one run-command; the thread shows what ran and the result."""
    plans = runtime.plans
    plan = plans.get(plan_id)
    if plan is None or not plans.start_apply(plan_id):
        return "not approved, or already applying"
    fix = runtime.registry.fixes[plan.fix]
    item = _apply_item(plan, fix)
    ctx = Context(runtime, item)
    runtime.diagnoses.forget(plan.incident)  # the VM is about to change: no later plan may reuse it
    runtime.store.record(
        plan.incident,
        EventKind.APPLY,
        plan.decided_by,
        plan=plan.id,
        fix=fix.name,
        command=plan.words,
        section=fix.section,
    )
    progress = Progress(runtime, item, on_vm=True)
    progress.started()
    try:
        outcome = _apply(ctx, plan, fix)
    except Exception:
        progress.finished("failed")
        raise
    progress.finished(outcome.value, ok=outcome is ApplyOutcome.VERIFIED)
    return outcome.value


def _apply(ctx: Context, plan: Plan, fix: Fix) -> ApplyOutcome:
    runtime, settings, plans = ctx.runtime, ctx.settings, ctx.runtime.plans
    secrets: tuple[tuple[str, str], ...] = ()
    if fix.secret is not None:
        value = runtime.sealed.unseal(plan.secret)
        if value is None:  # held for the approval window only: nothing ran
            plans.finish(plan.id, PlanStatus.FAILED)
            ctx.thread.post(
                apply_wording.secret_missing(plan),
                kind=EventKind.VERIFY,
                user=plan.decided_by,
                plan=plan.id,
                fix=fix.name,
                command=plan.words,
                outcome=ApplyOutcome.STALE.value,
            )
            return ApplyOutcome.STALE
        secrets = ((fix.secret.parameter, value),)
    try:
        result = ctx.run(
            fix.apply_script,
            ("NEXY_EXPECT", plan.fingerprint),
            *fix.apply_parameters(settings, plan.args),
            *verify_parameters(settings, fix.verify_patterns(runtime.registry)),
            secrets=secrets,
        )
    finally:
        runtime.sealed.discard(plan.secret)
    return _report_apply(runtime, ctx.thread, plan, fix, result)


def _report_apply(runtime: Runtime, thread: Thread, plan: Plan, fix: Fix, result: RunResult, *, late: bool = False):
    """The plan's state follows what the VM said; then the report (marked late when it is)."""
    settings, plans = runtime.settings, runtime.plans
    outcome = ApplyOutcome.of(result.facts, result.exit_code)
    plans.finish(plan.id, PlanStatus.APPLIED if outcome is ApplyOutcome.VERIFIED else PlanStatus.FAILED)
    commands = fix.commands(settings, plan.args)
    message: tuple[str, list | None] = apply_wording.report(plan, fix, result, outcome, commands, settings.nexy_service)
    if late:
        message = render.noted(apply_wording.reported_late(), *message)
    text, blocks = message
    runtime.store.record(
        plan.incident,
        EventKind.VERIFY,
        plan.decided_by,
        plan=plan.id,
        fix=fix.name,
        command=plan.words,
        outcome=outcome.value,
        exit_code=result.exit_code,
        facts=result.facts,
        text=render.plain(blocks),
    )
    thread.post(text, blocks, kind=None)
    return outcome


def _apply_item(plan: Plan, fix: Fix) -> WorkItem:
    """The request an apply runs as: the approver's, in the plan's incident."""
    return WorkItem(
        id=apply_job_id(plan.id),
        command="apply",
        args=(fix.name,),
        user=plan.decided_by,
        channel=plan.channel,
        incident=plan.incident,
        source="approval",
        requested_at=time.time(),
    )


def report_resumed_apply(runtime: Runtime, plan_id: str, result: RunResult, started_at: float) -> None:
    """The apply whose worker died, read back from Azure by another worker: reported as it went."""
    plan = runtime.plans.get(plan_id)
    if plan is None:
        return
    fix = runtime.registry.fixes[plan.fix]
    thread = Thread(runtime, plan.incident)
    outcome = _report_apply(runtime, thread, plan, fix, result, late=True)
    item = _apply_item(plan, fix)
    progress = Progress(runtime, item, on_vm=True)
    progress.started_at = started_at
    progress.finished(outcome.value, ok=outcome is ApplyOutcome.VERIFIED)


def interrupted(runtime: Runtime, plan_id: str, reason: str) -> None:
    """An apply that did not finish (its job failed or died): the plan is failed, the VM state unknown.
    A plan no longer `applying` was already reported with the VM's outcome: nothing true to add."""
    plan = runtime.plans.get(plan_id)
    if plan is None or plan.status is not PlanStatus.APPLYING:
        return
    runtime.plans.finish(plan_id, PlanStatus.FAILED)
    runtime.store.record(plan.incident, EventKind.APPLY_FAILED, plan.decided_by, plan=plan_id, reason=reason)
    Thread(runtime, plan.incident).post(apply_wording.interrupted(plan, reason), kind=None)
