"""The run-command queue of the VM: what runs now (since when) and what waits, in order.
Run-commands run one at a time (runbook 6.4); this shows why a request waits."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bot import render
from bot.contract import WorkItem
from bot.incidents import EventKind
from bot.plans import PlanStore
from jobs.context import Context
from jobs.runtime import Runtime
from runbook.item import Route, check


@dataclass(frozen=True)
class QueueReport:
    vm: str
    running: dict[str, Any] | None
    waiting: tuple[WorkItem, ...]
    now: float


def render_report(r: QueueReport) -> tuple[str, list[dict]]:
    lines = [f"*Run-command queue for `{r.vm}`*"]
    if r.running:
        age = max(0, int(r.now - r.running.get("since", r.now)))
        lines.append(
            f":arrow_forward: running: `{r.running['words']}` ({r.running['incident']}, "
            f"<@{r.running['user']}>) for {age} s"
        )
    else:
        lines.append(":white_circle: nothing running")
    for n, item in enumerate(r.waiting, 1):
        lines.append(
            f"{n}. `{item.words}` ({item.incident}, <@{item.user}>), waiting {max(0, int(r.now - item.requested_at))} s"
        )
    if not r.waiting:
        lines.append("nothing waiting")
    text = "\n".join(lines)
    return text.replace("*", ""), [render.section(text)]


def waiting(runtime: Runtime) -> tuple[WorkItem, ...]:
    """What waits for the VM, in order: commands, and the applies of approved plans."""
    jobs = runtime.dispatcher.queue(runtime.settings.vm_queue).get_jobs()
    return tuple(item for job in jobs if (item := _waiting(job, runtime.plans)) is not None)


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
    """queue: what runs on the VM now, since when, and what waits"""
    runtime = ctx.runtime
    queued = waiting(runtime)
    report = QueueReport(ctx.settings.vm_name, runtime.dispatcher.running_on_vm(), queued, time.time())
    ctx.thread.post(*render_report(report), kind=EventKind.CHECK, user=ctx.item.user, report="queue")
    return f"{len(queued)} waiting"
