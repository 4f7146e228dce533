"""Handing work to the worker: enqueueing on the right queue with the contract's ids and timeouts.

The web process does no Slack or VM I/O itself: it enqueues, and the worker posts. Run-commands
go to the VM's queues, served by its one worker: plans and applies on `vm:<rg>:<vm>:fixes`, taken
first; read-only checks on `vm:<resource-group>:<vm>`, admitted by bot/vmqueue.py (an identical
waiting check is joined; a person has at most NEXY_MAX_WAITING_PER_USER waiting). Probes go to
`io`; approvals, rejections, expiries and a fix request's operator check to `decisions`. Workers
enqueue through this module too (an approved plan's apply, an expiry, a notice).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from redis import Redis
from redis.exceptions import ResponseError
from rq import Callback, Queue
from rq.exceptions import DuplicateJobError
from rq.job import Job

from bot.contract import (
    DECISIONS_QUEUE,
    FAILURE_TTL_S,
    IO_JOB_TIMEOUT_S,
    IO_QUEUE,
    NOTICE_RESULT_TTL_S,
    RESULT_TTL_S,
    WATCH_SOURCE,
    Task,
    WorkItem,
    apply_job_id,
    fixes_queue_name,
    vm_job_timeout,
    vm_running_key,
)
from bot.incidents import EventKind, IncidentStore, Limits
from bot.item import Route
from bot.settings import Settings, run_command_unavailable
from bot.vmqueue import Admission, VMQueue, Waiting

log = logging.getLogger(__name__)

REPORT_FAILURE = Callback(Task.REPORT_FAILURE)
"""RQ's failure callback: a job that dies with its worker or times out is reported in its thread."""


@dataclass(frozen=True)
class Submitted:
    """What became of a request: queued as its own job, joined to an identical waiting run, or refused
    (the person's limit on waiting checks; `waiting` names theirs)."""

    admission: Admission
    job: str  # the job that answers it
    position: int | None  # on a VM: 1 runs at once, 2 waits for one command, ...; None on io
    riders: int = 0  # joined: how many requests ride on that run now
    waiting: tuple[Waiting, ...] = ()

    @property
    def refused(self) -> bool:
        return self.admission is Admission.REFUSED

    @property
    def joined(self) -> bool:
        return self.admission is Admission.JOINED


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
        self._admissions: dict[str, VMQueue] = {}

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

    def admission(self, settings: Settings) -> VMQueue:
        """The admission state of a VM's queue of checks (bot/vmqueue.py)."""
        if settings.vm_queue not in self._admissions:
            self._admissions[settings.vm_queue] = VMQueue(
                self.redis, settings.azure_resource_group, settings.azure_vm_name, settings.nexy_conflict_max_wait_s
            )
        return self._admissions[settings.vm_queue]

    def submit(self, item: WorkItem, route: Route, *, fix: bool) -> Submitted:
        """Queue a request for its route: `fix` (a plan: it changes the VM) on the VM's fixes queue,
        a read-only check on the VM's queue of checks once admitted (joined to an identical waiting
        run, or refused past the person's limit), the rest on io. Recorded in its incident's timeline
        first (so the worker's `started` comes after it); a job that must wait for the VM gets a
        status message with its position (posted by an io job)."""
        settings = self.vm(item.vm)
        name = queue_for(route, settings)
        if name != IO_QUEUE and fix:
            name = fixes_queue_name(name)
        elif name != IO_QUEUE:
            limit = 0 if item.source == WATCH_SOURCE else settings.nexy_max_waiting_per_user
            admitted = self.admission(settings).admit(item, limit)
            if admitted.admission is Admission.REFUSED:
                if item.incident:
                    self.store.record(
                        item.incident,
                        EventKind.REFUSED,
                        item.user,
                        command=item.words,
                        reason=f"{len(admitted.waiting)} requests of theirs wait for the VM",
                    )
                return Submitted(Admission.REFUSED, item.id, None, waiting=admitted.waiting)
            if admitted.admission is Admission.JOINED:
                position = self._position_of(settings, admitted.job)
                self._record_queued(item, name, position, joined=admitted.job)
                return Submitted(Admission.JOINED, admitted.job, position, riders=admitted.riders)
        position = self._position(settings, fixes=name != settings.vm_queue) if name != IO_QUEUE else None
        self._record_queued(item, name, position)
        self.queue(name).enqueue_call(
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
        return Submitted(Admission.NEW, item.id, position)

    def _record_queued(self, item: WorkItem, queue: str, position: int | None, **joined: str) -> None:
        """The request's `job_queued` event in its incident's timeline (`joined`: the run it rides on)."""
        if item.incident:
            self.store.record(
                item.incident,
                EventKind.JOB_QUEUED,
                item.user,
                job=item.id,
                command=item.words,
                queue=queue,
                position=position,
                **joined,
            )

    def submit_apply(self, plan_id: str, description: str, vm: str = "") -> Job | None:
        """Queue apply-and-verify of an approved plan on its VM's fixes queue, once: a second call finds the job."""
        settings = self.vm(vm)
        queue = fixes_queue_name(settings.vm_queue)
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
        """Look at a plan when its approval window closes (RQ's scheduler runs in the decisions worker)."""
        return self.queue(DECISIONS_QUEUE).enqueue_in(
            timedelta(seconds=after_s), Task.EXPIRE_PLAN, plan_id=plan_id, meta=self._meta()
        )

    def schedule_reminder(self, plan_id: str, after_s: float) -> Job:
        """Remind the approvers of a plan still pending half-way through its window (decisions worker)."""
        return self.queue(DECISIONS_QUEUE).enqueue_in(
            timedelta(seconds=after_s), Task.REMIND_PLAN, plan_id=plan_id, meta=self._meta()
        )

    def running_on_vm(self, settings: Settings | None = None) -> dict | None:
        """What runs on a VM now (this dispatcher's own by default), or None."""
        vm = settings or self.settings
        raw = self.redis.get(vm_running_key(vm.azure_resource_group, vm.azure_vm_name))
        return json.loads(raw) if raw else None

    def _position(self, settings: Settings, *, fixes: bool) -> int:
        """Where a job queued now on the VM stands: 1 runs at once; 2 waits for one command, ... A fix
        waits only for the fixes ahead of it; a check for every fix and every check ahead of it."""
        ahead = self.queue(fixes_queue_name(settings.vm_queue)).count
        if not fixes:
            ahead += self.queue(settings.vm_queue).count
        return ahead + 1 + (1 if self.running_on_vm(settings) else 0)

    def _position_of(self, settings: Settings, job: str) -> int | None:
        """Where a waiting check's job stands now (None once it left the queue)."""
        try:
            index = self.redis.lpos(self.queue(settings.vm_queue).key, job)
        except ResponseError:  # LPOS needs Redis 6.0.6: the position is then not told
            return None
        if not isinstance(index, int):
            return None
        ahead = self.queue(fixes_queue_name(settings.vm_queue)).count + index
        return ahead + 1 + (1 if self.running_on_vm(settings) else 0)

    def _running_words(self, settings: Settings) -> str | None:
        running = self.running_on_vm(settings)
        return running.get("words") if running else None

    def authorize(self, item: WorkItem) -> Job:
        """Queue a fix request on decisions first: a worker resolves the operators' user groups, then
        queues it for the VM or refuses it."""
        return self.queue(DECISIONS_QUEUE).enqueue_call(
            Task.AUTHORIZE,
            args=(item.payload(),),
            timeout=IO_JOB_TIMEOUT_S,
            result_ttl=RESULT_TTL_S,
            failure_ttl=FAILURE_TTL_S,
        )

    def decide(self, **decision: object) -> Job:
        """Queue an approval or rejection for a worker to check and decide (never behind a probe)."""
        return self.queue(DECISIONS_QUEUE).enqueue_call(
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
