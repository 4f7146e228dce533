"""A fix's plan in words: what will change, the commands, who may approve and until when; and the
plan message once it is decided. `fix` is a runbook `Fix` (words, section, title)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bot import render
from bot.contract import APPROVE_REACTION, REJECT_REACTION, Action
from bot.wording.refs import command

if TYPE_CHECKING:
    from bot.item import Assessment, Fix
    from bot.plans import Plan

PREFLIGHT = command("preflight")


def when(ts: float) -> str:
    """A Slack date token: each reader sees their own local time."""
    fallback = time.strftime("%H:%M UTC", time.gmtime(ts))
    return f"<!date^{int(ts)}^{{time}}|{fallback}>"


def _title(fix: Fix) -> str:
    return f"(runbook {fix.section} {fix.title})"


def nothing_to_fix(fix: Fix, words: str) -> str:
    return (
        f":white_check_mark: *{words}* {_title(fix)}: nothing to fix, the VM "
        "already has the wanted state. No approval needed."
    )


def from_diagnosis(age_s: float) -> str:
    """The note on a plan made from a diagnosis's facts instead of its own run-command."""
    return (
        f"state as the diagnosis read it {age_s:.0f} s ago (no second run-command); the apply re-checks it "
        "and refuses if it changed"
    )


def secret_missing(fix: Fix, words: str) -> str:
    return (
        f":no_entry: *{words}* {_title(fix)}: no plan: the value it needs is typed in a private form, "
        f"and none is held (it is kept for the approval window only). Type `/nexy {words}` to open the form."
    )


def blocked(fix: Fix, words: str, reason: str) -> str:
    return f":no_entry: *{words}* {_title(fix)}: no plan: {reason}"


def approvals(plan: Plan) -> str:
    """`Approvals: 1 of 2 (<@U0BOB>)`: how many distinct approvers approved so far, of those needed, and who."""
    who = ", ".join(f"<@{user}>" for user in plan.approvers)
    return f"Approvals: {len(plan.approvers)} of {plan.approvals_needed}" + (f" ({who})" if who else "")


def message(
    plan: Plan, fix: Fix, assessment: Assessment, commands: list[str], approvers: str, self_ok: bool
) -> tuple[str, list[dict]]:
    """The plan waiting for approval: the diff, the commands, who asked, who may approve, until when; for a
    plan that needs several approvers, how many approved so far and who (the message is edited at each)."""
    several = plan.approvals_needed > 1
    waits = f"waits for {plan.approvals_needed} approvals" if several else "waits for approval"
    text = f":clipboard: Plan {plan.id}: {plan.words} {_title(fix)} {waits}"
    if several:
        text += f" ({len(plan.approvers)} of {plan.approvals_needed})"
    lines = [
        f":clipboard: *Plan {plan.id}: `{plan.words}`* {_title(fix)}",
        "*What will change*",
        render.code("\n".join(assessment.diff)),
    ]
    lines.extend(f"_{note}_" for note in (*assessment.notes, *([plan.note] if plan.note else [])))
    blocks = [
        render.section("\n".join(lines)),
        render.section("*Commands, in one run-command*\n" + render.code("\n".join(commands))),
        render.context(
            f"Asked by <@{plan.requester}>. Approvers: {approvers}"
            + ("" if self_ok and not several else " (not the requester)")
            + (f". *{approvals(plan)}*: {plan.approvals_needed} distinct approvers needed" if several else "")
            + f". Expires {when(plan.expires_at)}."
        ),
        render.section(
            f"React with :{APPROVE_REACTION}: to approve or :{REJECT_REACTION}: to reject, or use the buttons."
        ),
        render.actions(
            render.button("Approve", Action.APPROVE, plan.id, "primary"),
            render.button("Reject", Action.REJECT, plan.id, "danger"),
            block_id=f"plan-{plan.id}",
        ),
    ]
    return text, blocks


def decided(plan: Plan, fix: Fix, diff_lines: tuple[str, ...]) -> tuple[str, list[dict]]:
    """The plan message after its decision: what it was, and who decided; no buttons left. A plan already
    applying or applied shows as approved (its apply reports the rest)."""
    status = plan.status.value
    if status in ("applying", "applied", "failed"):
        status = "approved"
    word = {
        "approved": ":white_check_mark: approved",
        "rejected": ":x: rejected",
        "expired": ":hourglass: expired",
        "superseded": ":leftwards_arrow_with_hook: superseded",
    }.get(status, status)
    by = f" by <@{plan.decided_by}>" if plan.decided_by and status == "rejected" else ""
    if status == "approved" and plan.approvers:
        by = " by " + ", ".join(f"<@{user}>" for user in plan.approvers)
    if plan.approvals_needed > 1 and status != "superseded":
        by += f" ({approvals(plan)})"
    text = f"Plan {plan.id}: {plan.words}: {status}{by}"
    diff = "\n".join(diff_lines)
    return text, [
        render.section(
            f":clipboard: *Plan {plan.id}: `{plan.words}`* {_title(fix)}"
            f" {word}{by} {when(plan.decided_at or time.time())}\n{render.code(diff)}"
        )
    ]


def superseded(old: Plan, new: Plan, fix: Fix) -> str:
    return (
        f":leftwards_arrow_with_hook: Plan {old.id} (`{old.words}`) is superseded by plan {new.id}, asked by "
        f"<@{new.requester}>: only the newest plan of a fix can be approved. Nothing ran for {old.id}."
    )
