"""Handing work to the worker: the queues, the job payload, and enqueueing.

The web process does no Slack or VM I/O itself: it enqueues, and the worker posts. Run-commands
go to the VM's own queue (`vm:<resource-group>:<vm>`, one worker); probes go to `io`.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass

from redis import Redis
from redis.exceptions import RedisError
from rq import Callback, Queue
from rq.exceptions import DuplicateJobError
from rq.job import Job

from bot import messages
from bot.commands import Request, Route
from bot.settings import Settings, run_command_unavailable

log = logging.getLogger(__name__)

IO_QUEUE = "io"
"""The queue of HTTP and GitHub probes: they never wait behind a run-command."""

IO_JOB_TIMEOUT_S = 180
"""An io job (probes, posting) is cut off after this long: each probe has its own, shorter timeout."""

AZURE_RUN_COMMAND_TIMEOUT_S = 90 * 60
"""Azure's own limit for one run-command."""

VM_LOCK_WAIT_S = 10 * 60
"""How long a VM job waits for the VM's lease held by another worker (only a second worker started by
mistake holds it) before it gives up naming the holder."""

RESULT_TTL_S = 24 * 3600
"""How long a finished job and its result are kept, for `/nexy queue` and debugging."""

FAILURE_TTL_S = 7 * 24 * 3600
"""How long a failed job (and its redacted error) is kept."""

REPORT_FAILURE = Callback("jobs.tasks.report_failure")
"""RQ's failure callback: a job that dies with its worker or times out is reported in its thread."""


def vm_job_timeout(settings: Settings) -> int:
    """A VM job outlives every wait it may do plus Azure's own limit: we never abandon a command still
    running on the VM (the lease would be released while Azure still runs it)."""
    return int(AZURE_RUN_COMMAND_TIMEOUT_S + settings.nexy_conflict_max_wait_s + VM_LOCK_WAIT_S + 10 * 60)


@dataclass(frozen=True)
class WorkItem:
    """What a worker needs to run one request: all plain values, nothing secret."""

    id: str
    command: str
    args: tuple[str, ...]
    user: str
    channel: str
    incident: str
    source: str  # "slash" | "mention" | "button" | "reaction"
    requested_at: float

    @property
    def words(self) -> str:
        return " ".join((self.command, *self.args))

    @classmethod
    def new(cls, request: Request, *, user: str, channel: str, incident: str, source: str) -> "WorkItem":
        """A fresh item for a request, with a job id RQ accepts (letters, digits, _ and -)."""
        return cls(id=f"{incident}-{request.command}-{uuid.uuid4().hex[:10]}", command=request.command,
                   args=request.args, user=user, channel=channel, incident=incident, source=source,
                   requested_at=time.time())

    @classmethod
    def from_payload(cls, payload: dict) -> "WorkItem":
        """The item back from the plain dict a job carries."""
        return cls(**{**payload, "args": tuple(payload.get("args", ()))})



def vm_lease_key(resource_group: str, vm: str) -> str:
    """The Redis lock a run-command holds on its VM."""
    return f"nexy:vm:{resource_group}:{vm}:lease"


def vm_running_key(resource_group: str, vm: str) -> str:
    """What runs on the VM now (JSON: job, words, incident, user, since), while it runs."""
    return f"nexy:vm:{resource_group}:{vm}:running"


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
        self._queues: dict[str, Queue] = {}

    def queue(self, name: str) -> Queue:
        if name not in self._queues:
            self._queues[name] = Queue(name, connection=self.redis)
        return self._queues[name]

    def submit(self, request: Request, *, user: str, channel: str, incident: str, source: str) -> Job:
        """Enqueue a parsed request for its queue; returns the RQ job."""
        item = WorkItem.new(request, user=user, channel=channel, incident=incident, source=source)
        name = queue_for(request.spec.route, self.settings)
        timeout = vm_job_timeout(self.settings) if name != IO_QUEUE else IO_JOB_TIMEOUT_S
        job = self.queue(name).enqueue_call(
            "jobs.tasks.run_request",
            args=(asdict(item),),
            job_id=item.id,
            timeout=timeout,
            result_ttl=RESULT_TTL_S,
            failure_ttl=FAILURE_TTL_S,
            on_failure=REPORT_FAILURE,
            description=f"{item.words} ({item.incident}, <@{item.user}>)",
        )
        if name != IO_QUEUE:
            self._announce_wait(job, item)
        return job

    def submit_apply(self, plan_id: str, description: str) -> Job | None:
        """Queue apply-and-verify of an approved plan on the VM queue, once: a second call finds the job."""
        try:
            return self.queue(self.settings.vm_queue).enqueue_call(
                "jobs.tasks.apply_plan", kwargs={"plan_id": plan_id}, job_id=f"apply-{plan_id}", unique=True,
                timeout=vm_job_timeout(self.settings), result_ttl=RESULT_TTL_S, failure_ttl=FAILURE_TTL_S,
                on_failure=REPORT_FAILURE, description=description)
        except DuplicateJobError:
            return None

    def running_on_vm(self) -> dict | None:
        raw = self.redis.get(vm_running_key(self.settings.azure_resource_group, self.settings.azure_vm_name))
        return json.loads(raw) if raw else None

    def _announce_wait(self, job: Job, item: WorkItem) -> None:
        """If the job has to wait for the VM, say in the thread where it stands (through io). Best
        effort: the job is queued whatever happens here."""
        try:
            ahead = job.get_position() or 0
            running = self.running_on_vm()
            position = ahead + 1 + (1 if running else 0)
            if position > 1:
                text = messages.queue_position(item.words, position, running["words"] if running else None)
                self.queue(IO_QUEUE).enqueue_call("jobs.tasks.announce",
                                                  kwargs={"incident": item.incident, "text": text},
                                                  timeout=IO_JOB_TIMEOUT_S, result_ttl=600, failure_ttl=FAILURE_TTL_S)
        except RedisError:
            log.warning("could not announce the queue position of %s", item.id)

    def authorize(self, request: Request, *, user: str, channel: str, incident: str, source: str) -> Job:
        """Queue a fix request on io first: a worker resolves the operators' user groups, then queues
        it for the VM or refuses it."""
        item = WorkItem.new(request, user=user, channel=channel, incident=incident, source=source)
        return self.queue(IO_QUEUE).enqueue_call("jobs.tasks.authorize", args=(asdict(item),),
                                                 timeout=IO_JOB_TIMEOUT_S, result_ttl=RESULT_TTL_S,
                                                 failure_ttl=FAILURE_TTL_S)

    def decide(self, **decision: object) -> Job:
        """Queue an approval or rejection for a worker to check and decide."""
        return self.queue(IO_QUEUE).enqueue_call("jobs.tasks.decide", kwargs={**decision, "at": time.time()},
                                                 timeout=IO_JOB_TIMEOUT_S, result_ttl=RESULT_TTL_S,
                                                 failure_ttl=FAILURE_TTL_S)

    def notify(self, *, channel: str, user: str, text: str, thread_ts: str | None = None) -> Job:
        """Enqueue an ephemeral notice to one user (for answers the web cannot give in an ack)."""
        return self.queue(IO_QUEUE).enqueue_call(
            "jobs.tasks.notify",
            kwargs={"channel": channel, "user": user, "text": text, "thread_ts": thread_ts},
            timeout=IO_JOB_TIMEOUT_S,
            result_ttl=600,
            failure_ttl=FAILURE_TTL_S,
        )
