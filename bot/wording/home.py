"""The App Home tab in words: open incidents, what runs on the VM now and what waits, and the
last incidents with their links. One view per user, published by a worker (`views.publish`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bot import render
from bot.wording import pending as pending_wording
from bot.wording.incident import card, headline
from bot.wording.pending import Pending
from bot.wording.refs import command

if TYPE_CHECKING:
    from bot.contract import WorkItem
    from bot.incidents import Incident

VMView = tuple[str, "dict[str, Any] | None", "Sequence[WorkItem]", "Sequence[Pending]"]
"""A VM on the Home tab: its name, what runs on it, what waits for it, the plans waiting for approvers."""

HISTORY = command("history all")
CHANNEL_HISTORY = command("history")
HEADER_TEXT = "nexy: incidents and the VMs"


def view(
    open_incidents: Sequence[Incident],
    recent: Sequence[Incident],
    links: dict[str, str],
    vms: Sequence[VMView],
    now: float,
) -> list[dict]:
    """The blocks of the Home tab (a `home` view; Slack allows 100 blocks)."""
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": HEADER_TEXT}},
        render.section(f"*Open incidents* ({len(open_incidents)})"),
    ]
    blocks += [render.section(card(i, links.get(i.id, ""))) for i in open_incidents]
    if not open_incidents:
        blocks.append(render.context("None open. The first command in a channel opens one."))
    # one section per VM of the inventory: what runs on it and what waits for it
    for vm, running, waiting, pending in vms:
        lines = f"{_vm_lines(running, waiting, now)}\n{pending_wording.section(pending, now)}"
        blocks += [{"type": "divider"}, render.section(f"*On the VM `{vm}`*\n{lines}")]
    blocks += [{"type": "divider"}, render.section("*Last incidents*")]
    blocks += [render.section(headline(i, links.get(i.id, "")) + _resolved(i)) for i in recent]
    if not recent:
        blocks.append(render.context("No incident yet."))
    blocks.append(render.context(f"As of {render.date(now)}. {HISTORY} (operators) lists more, with root causes."))
    return blocks


def limited_view(vms: Sequence[VMView], who: str, now: float) -> list[dict]:
    """The Home tab of someone who is neither operator nor approver: what runs on each VM and waits for it
    (VM commands carry no typed text), without incidents or people, and who may see the incidents."""
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": HEADER_TEXT}},
        render.section(f"Incidents are shown here to {who}. In an incident channel, {CHANNEL_HISTORY} lists its own."),
    ]
    for vm, running, waiting, pending in vms:
        lines = (
            f"{_vm_lines(running, waiting, now, details=False)}\n{pending_wording.section(pending, now, details=False)}"
        )
        blocks += [{"type": "divider"}, render.section(f"*On the VM `{vm}`*\n{lines}")]
    blocks.append(render.context(f"As of {render.date(now)}."))
    return blocks


def _vm_lines(running: dict[str, Any] | None, waiting: Sequence[WorkItem], now: float, *, details: bool = True) -> str:
    lines = []
    if running:
        since = max(0, int(now - running.get("since", now)))
        words = str(running.get("words") or "")
        whose = f" ({running.get('incident')}, <@{running.get('user')}>)" if details else ""
        lines.append(f":arrow_forward: running: `{words}`{whose} for {render.duration(since)}")
    else:
        lines.append(":white_circle: nothing running")
    for n, item in enumerate(waiting[:10], 1):
        whose = f" ({item.incident}, <@{item.user}>)" if details else ""
        lines.append(f"{n}. `{item.words}`{whose} waiting {render.duration(now - item.requested_at)}")
    if len(waiting) > 10:
        lines.append(f"… and {len(waiting) - 10} more")
    if not waiting:
        lines.append("nothing waiting")
    return "\n".join(lines)


def _resolved(incident: Incident) -> str:
    if incident.is_open:
        return f"\nopened {render.date(incident.opened_at)}"
    return (
        f"\nresolved {render.date(incident.closed_at)} after {render.duration(incident.duration_s or 0)}: "
        f"{render.escape(render.cut(incident.root_cause, 200))}"
    )
