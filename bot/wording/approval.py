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


def approved(plan: Plan, fix: Fix) -> str:
    return (
        f":white_check_mark: Plan {plan.id} (`{plan.words}`) approved by <@{plan.decided_by}>: "
        "apply and verify are queued for the VM (one run-command)."
    )


def expired_by_close(plan: Plan, fix: Fix, incident: str) -> str:
    return (
        f":hourglass: Plan {plan.id} (`{fix.words}`) expired: {incident} was resolved before anyone approved it. "
        "Nothing ran on the VM."
    )


def rejected(plan: Plan, fix: Fix) -> str:
    return f":x: Plan {plan.id} (`{plan.words}`) rejected by <@{plan.decided_by}>. Nothing ran on the VM."


def expired(plan: Plan, fix: Fix) -> str:
    return (
        f":hourglass: Plan {plan.id} (`{plan.words}`) expired {when(plan.expires_at)} before anyone approved it. "
        f"Nothing ran on the VM. For a fresh plan: `/nexy {plan.words}`."
    )
