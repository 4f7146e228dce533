"""The actions a job can run, by command name; each posts its own result in the thread."""
from __future__ import annotations

import time
from collections.abc import Callable

from bot import messages, render
from bot.dispatch import Dispatcher, WorkItem
from bot.plans import PlanStore
from jobs import external_checks, health, lifecycle, vm_checks
from jobs.runtime import Runtime
from jobs.thread import Thread

Action = Callable[[Runtime, Thread, WorkItem], "str | None"]


def run_health(runtime: Runtime, thread: Thread, item: WorkItem) -> str:
    """health: probe 8080 /health and 8081 /updates/health concurrently and post the comparison."""
    settings = runtime.settings
    report = health.probe(settings.nexy_health_urls, settings.nexy_health_timeout_s, settings.nexy_expected_version)
    text, blocks = messages.health_report(report)
    blocks.append(render.context(messages.requested_by(item.user, item.words)))
    thread.post(text, blocks, kind="health", user=item.user)
    return "healthy" if report.healthy else "unhealthy"


def run_queue(runtime: Runtime, thread: Thread, item: WorkItem) -> str:
    """queue: what runs on the VM now (since when) and what waits, in order."""
    settings = runtime.settings
    dispatcher = Dispatcher(settings, runtime.redis)
    waiting = [entry for job in dispatcher.queue(settings.vm_queue).get_jobs()
               if (entry := _waiting_item(job, PlanStore(runtime.redis))) is not None]
    text, blocks = messages.queue_listing(settings.azure_vm_name, dispatcher.running_on_vm(), waiting, time.time())
    thread.post(text, blocks, kind="queue", user=item.user)
    return f"{len(waiting)} waiting"


def _waiting_item(job, plans: PlanStore) -> WorkItem | None:
    """A queued VM job as a request: a command, or the apply of an approved plan."""
    if job.args:
        return WorkItem.from_payload(job.args[0])
    plan = plans.get(job.kwargs.get("plan_id", "")) if job.kwargs else None
    if plan is None:
        return None
    queued_at = job.enqueued_at.timestamp() if job.enqueued_at else time.time()
    return WorkItem(id=job.id, command="apply", args=(plan.fix, plan.id), user=plan.decided_by, channel=plan.channel,
                    incident=plan.incident, source="approval", requested_at=queued_at)


ACTIONS: dict[str, Action] = {
    "health": run_health,
    "status": vm_checks.run_status,
    "preflight": vm_checks.run_preflight,
    "queue": run_queue,
    "fix": lifecycle.run_plan,
    "restart": lifecycle.run_plan,
    "azure": external_checks.run_azure,
    "deploy": external_checks.run_deploy,
    "release": external_checks.run_release,
}
