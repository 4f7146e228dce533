"""The contract between the web side and the worker side: queue names, job ids, Redis keys,
timeouts and task paths. Both sides import this module and nothing private of each other.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

IO_QUEUE = "io"
"""The queue of HTTP and GitHub probes and of posting: it never waits behind a run-command."""

DECISIONS_QUEUE = "decisions"
"""Approvals, rejections, plan expiries and the operator check of a fix request: its own worker does
nothing else, so a decision never waits behind a probe or a GitHub read."""

IO_JOB_TIMEOUT_S = 180
"""An io job (probes, posting) is cut off after this long: each probe has its own, shorter timeout."""

AZURE_RUN_COMMAND_TIMEOUT_S = 90 * 60
"""Azure's own limit for one run-command."""

VM_LOCK_WAIT_S = 10 * 60
"""How long a VM job waits for the VM's lease held by another worker (only a second worker started by
mistake holds it) before it gives up naming the holder."""

RESULT_TTL_S = 24 * 3600
"""How long a finished job and its result are kept, for `/nexy queue` and debugging."""

NOTICE_RESULT_TTL_S = 600
"""How long a finished notice job (an ephemeral answer, a queue position) is kept."""

FAILURE_TTL_S = 7 * 24 * 3600
"""How long a failed job (and its redacted error) is kept."""

KEY_PREFIX = "nexy"
"""Every Redis key of the bot starts with this (RQ's own keys start with `rq:`)."""


class Task:
    """The dotted paths of the worker's entry points (jobs/tasks.py); RQ imports them by name."""

    RUN_REQUEST = "jobs.tasks.run_request"
    """Run one parsed command (a check, or the plan of a fix)."""
    AUTHORIZE = "jobs.tasks.authorize"
    """Resolve the operators' user groups for a fix request, then queue it or refuse it."""
    DECIDE = "jobs.tasks.decide"
    """An approval or rejection of a plan."""
    APPLY_PLAN = "jobs.tasks.apply_plan"
    """Apply and verify an approved plan (VM queue)."""
    EXPIRE_PLAN = "jobs.tasks.expire_plan"
    """The end of a plan's approval window (scheduled)."""
    REMIND_PLAN = "jobs.tasks.remind_plan"
    """Half-way through a plan's approval window: one reminder to the approvers (scheduled)."""
    NOTIFY = "jobs.tasks.notify"
    """An ephemeral notice to one person."""
    QUEUED = "jobs.tasks.queued"
    """A job that waits for the VM: its status message, with its position."""
    CHECKLIST = "jobs.tasks.checklist"
    """Someone ticked the final checklist: show it to everyone."""
    HOME = "jobs.tasks.publish_home"
    """Publish a user's App Home tab."""
    PROBE = "jobs.tasks.probe"
    """A declared read from outside the VM (health probes), for a job that must not do it itself."""
    REPORT_FAILURE = "jobs.tasks.report_failure"
    """RQ's failure callback: a job that died with its worker or ran out of time."""


def vm_queue_name(resource_group: str, vm_name: str) -> str:
    """`vm:<resource-group>:<vm>`, the per-VM queue (README, "Architecture"): exactly one worker serves it."""
    return f"vm:{resource_group}:{vm_name}"


def fixes_queue_name(vm_queue: str) -> str:
    """`vm:<resource-group>:<vm>:fixes`, the VM's plans and applies: the VM's one worker takes from it
    before the VM's queue of read-only checks, so a fix never waits behind checks asked before it."""
    return f"{vm_queue}:fixes"


def vm_job_timeout(conflict_max_wait_s: float) -> int:
    """A VM job outlives every wait it may do plus Azure's own limit: we never abandon a command still
    running on the VM (the lease would be released while Azure still runs it)."""
    return int(AZURE_RUN_COMMAND_TIMEOUT_S + conflict_max_wait_s + VM_LOCK_WAIT_S + 10 * 60)


def vm_lease_key(resource_group: str, vm: str) -> str:
    """The Redis lock a run-command holds on its VM."""
    return f"{KEY_PREFIX}:vm:{resource_group}:{vm}:lease"


def vm_running_key(resource_group: str, vm: str) -> str:
    """What runs on the VM now (JSON: job, words, incident, user, since), while it runs."""
    return f"{KEY_PREFIX}:vm:{resource_group}:{vm}:running"


OUTBOX_DUE_KEY = f"{KEY_PREFIX}:outbox-due"
"""A sorted set: each incident with outbox entries waiting, scored by when its head is next tried."""


def outbox_key(incident: str) -> str:
    """An incident's outbox (hash: entry id -> the entry as JSON, with `created`); `<key>:order` lists
    the entry ids in the order they were said (jobs/outbox.py; the metrics read its backlog)."""
    return f"{KEY_PREFIX}:outbox:{incident or 'none'}"


def request_job_id(incident: str, command: str, suffix: str) -> str:
    """The RQ job id of one request: only letters, digits, `_` and `-` (RQ's rule)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{incident}-{command}-{suffix}")


def apply_job_id(plan_id: str) -> str:
    """The one RQ job that applies a plan: queued with `unique=True`, so an approval counts once."""
    return f"apply-{plan_id}"


WATCH_SOURCE = "watch"
"""The `source` of what the watch asks for by itself (jobs/watch.py): its requester is the bot."""

APPROVE_REACTION = "white_check_mark"
"""The reaction that approves a plan (`:white_check_mark:`)."""
REJECT_REACTION = "x"
"""The reaction that rejects a plan (`:x:`)."""
APPROVE_REACTIONS = (APPROVE_REACTION, "heavy_check_mark")
REJECT_REACTIONS = (REJECT_REACTION,)


class Action:
    """The `action_id`s of the buttons and checkboxes the bot posts (handlers/ listens for exactly
    these), and the `callback_id` of its form."""

    APPROVE = "plan_approve"
    REJECT = "plan_reject"
    PLAN_FIX = "fix_plan"  # a diagnosis's finding: ask for its fix, as if typed in that thread
    OPEN_FORM = "form_open"  # opens the private form of a fix that needs a value (a new API key)
    CHECKLIST = "incident_checklist"  # the final checklist's checkboxes
    DECISIONS = (APPROVE, REJECT)
    ALL = (APPROVE, REJECT, PLAN_FIX, OPEN_FORM, CHECKLIST)
    SECRET_FORM = "secret_form"
    """The callback_id of the modal in which a value is typed (view_submission)."""


@dataclass(frozen=True)
class WorkItem:
    """The payload of a request job: what a worker needs to run it, all plain values, nothing secret."""

    id: str
    command: str
    args: tuple[str, ...]
    user: str
    channel: str
    incident: str
    source: str  # "slash" | "mention" | "button" | "reaction" | "approval" | "form" | WATCH_SOURCE
    requested_at: float
    secret: str = ""  # a reference to a sealed value (bot/sealed.py) typed in a form; never the value
    thread_ts: str | None = None  # the thread a mention came from: answers to the person go there
    vm: str = ""  # the inventory's name of the VM it concerns ("": the only VM)

    @property
    def words(self) -> str:
        return " ".join((self.command, *self.args, *(("--vm", self.vm) if self.vm else ())))

    @classmethod
    def new(
        cls,
        command: str,
        args: tuple[str, ...],
        *,
        user: str,
        channel: str,
        incident: str,
        source: str,
        secret: str = "",
        thread_ts: str | None = None,
        vm: str = "",
    ) -> WorkItem:
        """A fresh item for a request, with a job id RQ accepts."""
        return cls(
            id=request_job_id(incident or "none", command, uuid.uuid4().hex[:10]),
            command=command,
            args=args,
            user=user,
            channel=channel,
            incident=incident,
            source=source,
            requested_at=time.time(),
            secret=secret,
            thread_ts=thread_ts,
            vm=vm,
        )

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> WorkItem:
        """The item back from the plain dict a job carries."""
        return cls(**{**payload, "args": tuple(payload.get("args", ()))})

    def payload(self) -> dict[str, Any]:
        return asdict(self)
