"""Handing work to the worker: enqueueing on the right queue with the contract's ids and timeouts.

The web process does no Slack or VM I/O itself: it enqueues, and the worker posts. Run-commands
go to the VM's own queue (`vm:<resource-group>:<vm>`, one worker); probes go to `io`. Workers
enqueue through this module too (an approved plan's apply, an expiry, a notice).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

from redis import Redis
from rq import Callback, Queue
from rq.exceptions import DuplicateJobError
from rq.job import Job

from bot.contract import (
    FAILURE_TTL_S,
    IO_JOB_TIMEOUT_S,
    IO_QUEUE,
    NOTICE_RESULT_TTL_S,
    RESULT_TTL_S,
    Task,
    WorkItem,
    apply_job_id,
    vm_job_timeout,
    vm_running_key,
)
from bot.incidents import EventKind, IncidentStore, Limits
from bot.settings import Settings, run_command_unavailable
from runbook.item import Route

log = logging.getLogger(__name__)

REPORT_FAILURE = Callback(Task.REPORT_FAILURE)
"""RQ's failure callback: a job that dies with its worker or times out is reported in its thread."""


def queue_for(route: Route, settings: Settings) -> str:
    """The VM's queue for run-commands (and for a read that needs one, when scripts can reach the VM); else io."""
    if route is Route.VM or (route is Route.VM_IF_REACHABLE and run_command_unavailable(settings) is None):
        return settings.vm_queue
    return IO_QUEUE


class Dispatcher:
    """Enqueues requests and notices on the right queue."""

    def __init__(self, settings: Settings, redis: Redis):
        self.settings = settings
        self.redis = redis
        self.store = IncidentStore(redis, Limits.of(settings))
        self._queues: dict[str, Queue] = {}

    def queue(self, name: str) -> Queue:
        if name not in self._queues:
            self._queues[name] = Queue(name, connection=self.redis)
        return self._queues[name]

    def vm(self, name: str = "") -> Settings:
        """The settings of one VM of the inventory (of this dispatcher's own VM when no name is given)."""
        return self.settings.for_vm(name) if name else self.settings

    def _meta(self, vm: str = "") -> dict[str, str]:
        """What a job carries so that the worker runs it with its VM's settings (jobs.runtime.TaskJob)."""
        name = vm or self.settings.vm_name
        return {"vm": name}

    def _timeout(self, queue: str) -> int:
        return IO_JOB_TIMEOUT_S if queue == IO_QUEUE else vm_job_timeout(self.settings.nexy_conflict_max_wait_s)

    def submit(self, item: WorkItem, route: Route) -> Job:
        """Enqueue a request for its route's queue, recorded in its incident's timeline first (so the
        worker's `started` comes after it); a job that must wait for the VM gets a status message
        with its position (posted by an io job). Returns the RQ job."""
        settings = self.vm(item.vm)
        name = queue_for(route, settings)
        position = self._position(settings) if name != IO_QUEUE else None
        if item.incident:
            self.store.record(
                item.incident,
                EventKind.JOB_QUEUED,
                item.user,
                job=item.id,
                command=item.words,
                queue=name,
                position=position,
            )
        job = self.queue(name).enqueue_call(
            Task.RUN_REQUEST,
            args=(item.payload(),),
            job_id=item.id,
            timeout=self._timeout(name),
            result_ttl=RESULT_TTL_S,
            failure_ttl=FAILURE_TTL_S,
            on_failure=REPORT_FAILURE,
            description=f"{item.words} ({item.incident}, <@{item.user}>)",
            meta=self._meta(settings.vm_name),
        )
        if position is not None and position > 1 and item.incident:
            self._io_notice(
                Task.QUEUED,
                payload=item.payload(),
                position=position,
                running=self._running_words(settings),
                vm=settings.vm_name,
            )
        return job

    def submit_apply(self, plan_id: str, description: str, vm: str = "") -> Job | None:
        """Queue apply-and-verify of an approved plan on its VM's queue, once: a second call finds the job."""
        settings = self.vm(vm)
        queue = settings.vm_queue
        try:
            return self.queue(queue).enqueue_call(
                Task.APPLY_PLAN,
                kwargs={"plan_id": plan_id},
                job_id=apply_job_id(plan_id),
                unique=True,
                timeout=self._timeout(queue),
                result_ttl=RESULT_TTL_S,
                failure_ttl=FAILURE_TTL_S,
                on_failure=REPORT_FAILURE,
                description=description,
                meta=self._meta(settings.vm_name),
            )
        except DuplicateJobError:
            return None

    def schedule_expiry(self, plan_id: str, after_s: float) -> Job:
        """Look at a plan when its approval window closes (RQ's scheduler runs in an io worker)."""
        return self.queue(IO_QUEUE).enqueue_in(
            timedelta(seconds=after_s), Task.EXPIRE_PLAN, plan_id=plan_id, meta=self._meta()
        )

    def running_on_vm(self, settings: Settings | None = None) -> dict | None:
        """What runs on a VM now (this dispatcher's own by default), or None."""
        vm = settings or self.settings
        raw = self.redis.get(vm_running_key(vm.azure_resource_group, vm.azure_vm_name))
        return json.loads(raw) if raw else None

    def _position(self, settings: Settings) -> int:
        """Where a job queued now on the VM stands: 1 runs at once; 2 waits for one command, ..."""
        return self.queue(settings.vm_queue).count + 1 + (1 if self.running_on_vm(settings) else 0)

    def _running_words(self, settings: Settings) -> str | None:
        running = self.running_on_vm(settings)
        return running.get("words") if running else None

    def authorize(self, item: WorkItem) -> Job:
        """Queue a fix request on io first: a worker resolves the operators' user groups, then queues
        it for the VM or refuses it."""
        return self.queue(IO_QUEUE).enqueue_call(
            Task.AUTHORIZE,
            args=(item.payload(),),
            timeout=IO_JOB_TIMEOUT_S,
            result_ttl=RESULT_TTL_S,
            failure_ttl=FAILURE_TTL_S,
        )

    def decide(self, **decision: object) -> Job:
        """Queue an approval or rejection for a worker to check and decide."""
        return self.queue(IO_QUEUE).enqueue_call(
            Task.DECIDE,
            kwargs={**decision, "at": time.time()},
            timeout=IO_JOB_TIMEOUT_S,
            result_ttl=RESULT_TTL_S,
            failure_ttl=FAILURE_TTL_S,
        )

    def notify(
        self, *, channel: str, user: str, text: str, thread_ts: str | None = None, blocks: list[dict] | None = None
    ) -> Job:
        """Enqueue an ephemeral notice to one user (for answers the web cannot give in an ack)."""
        return self.queue(IO_QUEUE).enqueue_call(
            Task.NOTIFY,
            kwargs={"channel": channel, "user": user, "text": text, "thread_ts": thread_ts, "blocks": blocks},
            timeout=IO_JOB_TIMEOUT_S,
            result_ttl=NOTICE_RESULT_TTL_S,
            failure_ttl=FAILURE_TTL_S,
        )

    def probe(self, name: str) -> Job:
        """Run a declared probe on the io queue; its result is read back from the job."""
        return self.queue(IO_QUEUE).enqueue_call(
            Task.PROBE,
            kwargs={"name": name},
            meta=self._meta(),
            timeout=IO_JOB_TIMEOUT_S,
            result_ttl=NOTICE_RESULT_TTL_S,
            failure_ttl=FAILURE_TTL_S,
        )

    def checklist(self, *, incident: str, ts: str, user: str, checked: list[str] | None = None) -> Job:
        """Show a ticked checklist to everyone (the worker updates its message); with `checked`, the
        worker first checks that the ticker is an operator and records the ticks."""
        if checked is None:
            return self._io_notice(Task.CHECKLIST, incident=incident, ts=ts, user=user)
        return self._io_notice(Task.CHECKLIST, incident=incident, ts=ts, user=user, checked=checked)

    def publish_home(self, user: str) -> Job:
        """Publish a user's App Home tab (the worker gathers and posts it)."""
        return self._io_notice(Task.HOME, user=user)

    def _io_notice(self, task: str, *, vm: str = "", **kwargs: object) -> Job:
        return self.queue(IO_QUEUE).enqueue_call(
            task,
            kwargs=kwargs,
            timeout=IO_JOB_TIMEOUT_S,
            result_ttl=NOTICE_RESULT_TTL_S,
            failure_ttl=FAILURE_TTL_S,
            meta=self._meta(vm),
        )
