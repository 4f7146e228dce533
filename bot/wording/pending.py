"""Plans waiting for a person, in words: listed per VM in `/nexy queue` and App Home, and the one
reminder in a plan's thread half-way through its approval window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot import render
from bot.contract import APPROVE_REACTION, REJECT_REACTION

if TYPE_CHECKING:
    from bot.plans import Plan


@dataclass(frozen=True)
class Pending:
    """A plan waiting for approvers, with what the list shows about it."""

    plan: Plan
    needed: int  # distinct approvals it needs
    approved_by: tuple[str, ...] = ()  # who approved it so far
    link: str = ""  # the plan message's permalink


def approvals(needed: int, approved_by: Sequence[str]) -> str:
    """`0 of 1 approvals`, `1 of 2 approvals (<@U2>)`."""
    who = f" ({', '.join(f'<@{u}>' for u in approved_by)})" if approved_by else ""
    return f"{len(approved_by)} of {needed} approval{'s' if needed != 1 else ''}{who}"


def line(entry: Pending, now: float, *, details: bool = True) -> str:
    """One waiting plan: the fix, the incident and a link, who asked, approvals so far and needed, its
    age and the time left. Without details (someone who may not see incidents): the fix and the times."""
    plan = entry.plan
    age = render.duration(now - plan.created_at)
    left = render.duration(plan.expires_at - now)
    if not details:
        return f":hourglass_flowing_sand: `{plan.words}` waits for approval: {age} old, {left} left"
    where = render.link(entry.link, f"plan {plan.id}")
    return (
        f":hourglass_flowing_sand: `{plan.words}` ({plan.incident}, {where}) asked by <@{plan.requester}>: "
        f"{approvals(entry.needed, entry.approved_by)}, {age} old, {left} left"
    )


def section(entries: Sequence[Pending], now: float, *, details: bool = True) -> str:
    """The lines under a VM: its pending plans, oldest first."""
    if not entries:
        return "no plan waits for approval"
    return "\n".join(line(entry, now, details=details) for entry in entries)


def reminder(entry: Pending, approvers: str, now: float) -> str:
    """Half-way through the approval window, in the plan's thread: who may approve, and how long is left."""
    plan = entry.plan
    return (
        f":bell: Plan {plan.id} (`{plan.words}`) still waits for approval: "
        f"{approvals(entry.needed, entry.approved_by)} so far, {render.duration(plan.expires_at - now)} left. "
        f"{approvers}: react :{APPROVE_REACTION}: on the plan to approve, or :{REJECT_REACTION}: to reject."
    )
