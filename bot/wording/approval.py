"""A plan's decision in words: approved, rejected, expired, refused, already decided."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.wording.plan import when

if TYPE_CHECKING:
    from bot.item import Fix
    from bot.plans import Plan


def refused(plan: Plan, reason: str, who: str) -> str:
    approvers = f" Approvers: {who}." if who else ""
    return f":no_entry: Your reaction on plan {plan.id} does not count: {reason}.{approvers}"


def already(plan: Plan, status: str) -> str:
    by = f" by <@{plan.decided_by}>" if plan.decided_by else ""
    return f"Plan {plan.id} is already {status}{by}: nothing more to decide."


def _who(plan: Plan) -> str:
    return " and ".join(f"<@{user}>" for user in plan.approvers) or f"<@{plan.decided_by}>"


def approved(plan: Plan, fix: Fix) -> str:
    counted = f" ({plan.approvals_needed} of {plan.approvals_needed} approvals)" if plan.approvals_needed > 1 else ""
    return (
        f":white_check_mark: Plan {plan.id} (`{plan.words}`) approved by {_who(plan)}{counted}: "
        "apply and verify are queued for the VM (one run-command)."
    )


def counted(plan: Plan, fix: Fix) -> str:
    """To the approver whose approval counted, while the plan waits for more."""
    more = plan.approvals_needed - len(plan.approvers)
    return (
        f":white_check_mark: Your approval of plan {plan.id} (`{plan.words}`) counts: "
        f"{len(plan.approvers)} of {plan.approvals_needed}. It waits for {more} more approver{'s' if more > 1 else ''} "
        "(not the requester) before anything runs."
    )


def repeated(plan: Plan, fix: Fix) -> str:
    """To an approver who approved the same plan again."""
    return (
        f"You approved plan {plan.id} already ({len(plan.approvers)} of {plan.approvals_needed}): "
        "an approver counts once; it waits for another approver."
    )


def expired_by_close(plan: Plan, fix: Fix, incident: str) -> str:
    return (
        f":hourglass: Plan {plan.id} (`{fix.words}`) expired: {incident} was resolved before anyone approved it. "
        "Nothing ran on the VM."
    )


def rejected(plan: Plan, fix: Fix) -> str:
    return f":x: Plan {plan.id} (`{plan.words}`) rejected by <@{plan.decided_by}>. Nothing ran on the VM."


def expired(plan: Plan, fix: Fix) -> str:
    before = (
        f"with {len(plan.approved_by)} of {plan.approvals_needed} approvals"
        if plan.approved_by
        else "before anyone approved it"
    )
    return (
        f":hourglass: Plan {plan.id} (`{plan.words}`) expired {when(plan.expires_at)} {before}. "
        f"Nothing ran on the VM. For a fresh plan: `/nexy {plan.words}`."
    )
