"""What waits for a VM, in the order it will run: plans and applies first (the VM's fixes queue, which
its worker serves first), then read-only checks, each with the requests that joined it. Read by
`/nexy queue` and the App Home tab."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis import Redis

from bot.contract import WorkItem, fixes_queue_name
from bot.dispatch import Dispatcher
from bot.plans import PlanStore
from bot.settings import Settings


@dataclass(frozen=True)
class Waiting:
    """One job waiting for the VM: its request, whether it is a fix, and the requests that joined it."""

    item: WorkItem
    fix: bool
    riders: tuple[WorkItem, ...] = ()


def waiting_runs(redis: Redis, settings: Settings, plans: PlanStore) -> tuple[Waiting, ...]:
    """What waits for the VM of `settings`, in the order it will run: the fixes queue (plans, applies),
    then checks."""
    dispatcher = Dispatcher(settings, redis)
    admission = dispatcher.admission(settings)
    found = []
    for name, fix in ((fixes_queue_name(settings.vm_queue), True), (settings.vm_queue, False)):
        for job in dispatcher.queue(name).get_jobs():
            item = _waiting(job, plans)
            if item is not None:
                found.append(Waiting(item, fix, () if fix else admission.riders(job.id)))
    return tuple(found)


def waiting(redis: Redis, settings: Settings, plans: PlanStore) -> tuple[WorkItem, ...]:
    """What waits for the VM, in the order it will run: plans and applies, then checks."""
    return tuple(entry.item for entry in waiting_runs(redis, settings, plans))


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
