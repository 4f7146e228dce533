"""The run-command queue of the VM: what runs now (since when) and what waits, in the order it will
run: plans and applies first (the VM's fixes queue, which its worker serves first), then read-only
checks; a check that others joined shows how many requests it answers. Run-commands run one at a
time (runbook 6.4); this shows why a request waits."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bot import render
from bot.context import Context
from bot.contract import WorkItem
from bot.dispatch import Dispatcher
from bot.incidents import EventKind
from bot.item import Route, check
from bot.pending import waiting_plans
from bot.waiting import Waiting, waiting_runs
from bot.wording import pending as pending_wording
from bot.wording.pending import Pending


@dataclass(frozen=True)
class QueueReport:
    vm: str
    running: dict[str, Any] | None
    running_riders: int
    waiting: tuple[Waiting, ...]
    now: float
    pending: tuple[Pending, ...] = ()  # plans waiting for approvers (they run only once approved)


def _asked(item: WorkItem, riders: tuple[WorkItem, ...]) -> str:
    """Who asked, and how many requests share the run (in which incidents)."""
    if not riders:
        return f"{item.incident or 'no incident'}, <@{item.user}>"
    incidents = sorted({r.incident for r in riders if r.incident and r.incident != item.incident})
    elsewhere = f", also for {', '.join(incidents)}" if incidents else ""
    return f"{item.incident or 'no incident'}, <@{item.user}>; +{len(riders)} joined{elsewhere}"


def render_report(r: QueueReport) -> tuple[str, list[dict]]:
    lines = [f"*Run-command queue for `{r.vm}`*"]
    if r.running:
        age = max(0, int(r.now - r.running.get("since", r.now)))
        shared = f"; +{r.running_riders} joined" if r.running_riders else ""
        lines.append(
            f":arrow_forward: running: `{r.running['words']}` ({r.running['incident']}, "
            f"<@{r.running['user']}>{shared}) for {age} s"
        )
    else:
        lines.append(":white_circle: nothing running")
    for n, entry in enumerate(r.waiting, 1):
        item = entry.item
        kind = " · fix: goes first" if entry.fix else ""
        lines.append(
            f"{n}. `{item.words}` ({_asked(item, entry.riders)}), "
            f"waiting {max(0, int(r.now - item.requested_at))} s{kind}"
        )
    if not r.waiting:
        lines.append("nothing waiting")
    elif any(e.fix for e in r.waiting) or len(r.waiting) > 1:
        lines.append("In the order they will run: plans and applies go ahead of waiting checks.")
    lines.append(f"*Waiting for approval* ({len(r.pending)})")
    lines.append(pending_wording.section(r.pending, r.now))
    text = "\n".join(lines)
    return text.replace("*", ""), [render.section(text)]


@check("queue", route=Route.IO)
def queue(ctx: Context) -> str:
    """queue: what runs on the VM now, since when, and what waits, in the order it will run

    what runs on the VM now (which command, which incident, who asked, since when) and what waits in the order it
    will run: plans and applies first, then read-only checks; each with its command, incident, who asked, how many
    identical requests joined it (`+2 joined`, and their incidents) and how long it has waited (runbook 6.4: why a
    request waits); then the plans waiting for approvers: each fix with its incident and a link to the plan, who
    asked, approvals so far and needed, its age and the time left (App Home lists them too)
    """
    dispatcher = Dispatcher(ctx.settings, ctx.redis)
    queued = waiting_runs(ctx.redis, ctx.settings, ctx.plans)
    running = dispatcher.running_on_vm()
    riders = dispatcher.admission(ctx.settings).rider_count(running["job"]) if running else 0
    now = time.time()
    pending = waiting_plans(ctx.plans, ctx.settings, ctx.registry.fixes, ctx.plan_link, now)
    report = QueueReport(ctx.settings.vm_name, running, riders, queued, now, tuple(pending))
    ctx.thread.post(*render_report(report), kind=EventKind.CHECK, user=ctx.item.user, report="queue")
    return f"{len(queued)} waiting"
