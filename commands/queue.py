"""The run-command queue of the VM: what runs now (since when) and what waits, in the order it will
run: plans and applies first (the VM's fixes queue, which its worker serves first), then read-only
checks; a check that others joined shows how many requests it answers. Run-commands run one at a
time (runbook 6.4); this shows why a request waits."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bot import render
from bot.contract import WorkItem, fixes_queue_name
from bot.incidents import EventKind
from bot.item import Route, check
from bot.pending import waiting_plans
from bot.plans import PlanStore
from bot.wording import pending as pending_wording
from bot.wording.pending import Pending
from jobs.context import Context
from jobs.runtime import Runtime


@dataclass(frozen=True)
class Waiting:
    """One job waiting for the VM: its request, whether it is a fix, and the requests that joined it."""

    item: WorkItem
    fix: bool
    riders: tuple[WorkItem, ...] = ()


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


def waiting_runs(runtime: Runtime) -> tuple[Waiting, ...]:
    """What waits for the VM, in the order it will run: the fixes queue (plans, applies), then checks."""
    settings = runtime.settings
    admission = runtime.dispatcher.admission(settings)
    found = []
    for name, fix in ((fixes_queue_name(settings.vm_queue), True), (settings.vm_queue, False)):
        for job in runtime.dispatcher.queue(name).get_jobs():
            item = _waiting(job, runtime.plans)
            if item is not None:
                found.append(Waiting(item, fix, () if fix else admission.riders(job.id)))
    return tuple(found)


def waiting(runtime: Runtime) -> tuple[WorkItem, ...]:
    """What waits for the VM, in the order it will run: plans and applies, then checks."""
    return tuple(entry.item for entry in waiting_runs(runtime))


def _waiting(job: Any, plans: PlanStore) -> WorkItem | None:
    """A queued VM job as a request: a command, or the apply of an approved plan."""
    if job.args:
        return WorkItem.from_payload(job.args[0])
    plan = plans.get(job.kwargs.get("plan_id", "")) if job.kwargs else None
    if plan is None:
        return None
    queued_at = job.enqueued_at.timestamp() if job.enqueued_at else time.time()
    return WorkItem(
        id=job.id,
        command="apply",
        args=(plan.fix, plan.id),
        user=plan.decided_by,
        channel=plan.channel,
        incident=plan.incident,
        source="approval",
        requested_at=queued_at,
    )


@check("queue", route=Route.IO)
def queue(ctx: Context) -> str:
    """queue: what runs on the VM now, since when, and what waits, in the order it will run

    what runs on the VM now (which command, which incident, who asked, since when) and what waits in the order it
    will run: plans and applies first, then read-only checks; each with its command, incident, who asked, how many
    identical requests joined it (`+2 joined`, and their incidents) and how long it has waited (runbook 6.4: why a
    request waits); then the plans waiting for approvers: each fix with its incident and a link to the plan, who
    asked, approvals so far and needed, its age and the time left (App Home lists them too)
    """
    runtime = ctx.runtime
    queued = waiting_runs(runtime)
    running = runtime.dispatcher.running_on_vm()
    riders = runtime.dispatcher.admission(ctx.settings).rider_count(running["job"]) if running else 0
    now = time.time()
    pending = waiting_plans(runtime.plans, ctx.settings, runtime.registry.fixes, runtime.slack, now)
    report = QueueReport(ctx.settings.vm_name, running, riders, queued, now, tuple(pending))
    ctx.thread.post(*render_report(report), kind=EventKind.CHECK, user=ctx.item.user, report="queue")
    return f"{len(queued)} waiting"
