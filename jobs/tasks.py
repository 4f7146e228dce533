"""The worker's entry points: RQ calls these (by the paths in `bot.contract.Task`) with the
worker's runtime first, then plain values from bot.dispatch.

Whatever happens, the thread (or the person) hears of it: every task catches what it raises and
posts what failed, never a stack trace; a job that dies with its worker or runs out of time is
reported by `report_failure`, RQ's failure callback (AbandonedJobError, timeouts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bot import postmortem
from bot.contract import IO_QUEUE, Action, Task, WorkItem
from bot.dispatch import queue_for
from bot.errors import NexyError
from bot.incidents import EventKind
from bot.wording import checklist as checklist_wording
from bot.wording import commands as command_wording
from bot.wording import errors as error_wording
from bot.wording import queue as queue_wording
from jobs import lifecycle
from jobs.context import Context
from jobs.operations import OperationStore
from jobs.progress import Progress
from jobs.runtime import Runtime
from jobs.thread import Thread
from jobs.worker import ABANDONED, JobAbandoned

log = logging.getLogger(__name__)


def run_request(runtime: Runtime, payload: dict[str, Any]) -> str:
    """Run one queued request and post its result in the incident thread; returns a short status.

    A read-only check may carry riders: identical requests that joined it while it waited
    (bot/vmqueue.py). They are taken (and the run closed to new ones) before the run-command; the
    check then answers each person in each incident once, its run-commands shared: one run on the VM."""
    item = WorkItem.from_payload(payload)
    registry = runtime.registry
    # A check's run takes the kernel's Context: mypy checks here that the engine's implements it.
    run: Callable[[Context], str]
    if item.command in registry.checks:
        run = registry.checks[item.command].run
    elif item.command in registry.commands and registry.fix_command(item.command):
        run = lifecycle.run_plan
    else:
        Context(runtime, item).thread.post(
            error_wording.job_failed(item.words, "this worker does not know that command; is it up to date?"),
            kind=EventKind.ERROR,
        )
        return "unknown"
    riders = _riders(runtime, item)
    shared: dict | None = {} if riders else None
    heads = _answer_once(item, riders)
    requests = (item, *riders)
    progresses = [_progress(runtime, request, silent=request not in heads) for request in requests]
    for progress in progresses:
        progress.started()
    statuses: dict[str, str] = {}
    try:
        for head in heads:
            statuses[head.id] = _run_check(run, Context(runtime, head, runs=shared))
    finally:
        for request, progress in zip(requests, progresses, strict=True):
            progress.finished(statuses.get(_head_of(request, heads).id, "failed"))
    return statuses.get(item.id, "failed")


def _run_check(run: Callable[[Context], str], ctx: Context) -> str:
    """One answer: the item's run, its error posted in its thread if it fails."""
    item = ctx.item
    try:
        return run(ctx) or "done"
    except Exception as exc:
        if not isinstance(exc, NexyError):
            log.exception("job %s failed", item.id)
        ctx.thread.post(
            error_wording.job_failed(item.words, error_wording.reason(exc)),
            kind=EventKind.ERROR,
            user=item.user,
            command=item.words,
        )
        return "failed"


def _riders(runtime: Runtime, item: WorkItem) -> tuple[WorkItem, ...]:
    """A check on the VM's queue: the requests that joined it, taken now (none may join any more)."""
    route = runtime.registry.commands[item.command].route
    if item.command not in runtime.registry.checks or queue_for(route, runtime.settings) == IO_QUEUE:
        return ()
    return runtime.dispatcher.admission(runtime.settings).close(item)


def _answer_once(item: WorkItem, riders: tuple[WorkItem, ...]) -> list[WorkItem]:
    """Whom the run answers: each person in each incident once (the same person asking again in the
    same thread gets one answer), the job's own request first."""
    heads: dict[tuple[str, str], WorkItem] = {}
    for request in (item, *riders):
        heads.setdefault((request.incident, request.user), request)
    return list(heads.values())


def _head_of(request: WorkItem, heads: list[WorkItem]) -> WorkItem:
    return next(h for h in heads if (h.incident, h.user) == (request.incident, request.user))


def _progress(runtime: Runtime, item: WorkItem, *, silent: bool = False) -> Progress:
    route = runtime.registry.commands[item.command].route
    return Progress(runtime, item, on_vm=queue_for(route, runtime.settings) != IO_QUEUE, silent=silent)


def apply_plan(runtime: Runtime, *, plan_id: str) -> str:
    """Apply and verify an approved plan (VM queue); a failure marks the plan failed and says the VM
    state is unknown."""
    try:
        return lifecycle.run_apply(runtime, plan_id)
    except Exception as exc:
        log.exception("apply of %s failed", plan_id)
        lifecycle.interrupted(runtime, plan_id, error_wording.reason(exc))
        return "failed"


def decide(runtime: Runtime, **decision: Any) -> str:
    """An approval or rejection of a plan (from a reaction or a button)."""
    try:
        return lifecycle.decide(runtime, **decision)
    except Exception as exc:
        log.exception("decision %s failed", {k: v for k, v in decision.items() if k != "user"})
        channel = decision.get("channel")
        if channel:
            runtime.slack.ephemeral(channel, decision["user"], error_wording.decision_failed(error_wording.reason(exc)))
        return "failed"


def authorize(runtime: Runtime, payload: dict[str, Any]) -> str:
    """A request whose policy check (an operator's command) needs a user group resolved: resolve, then
    queue or refuse (the same check as the web side's, bot/policy.py)."""
    item = WorkItem.from_payload(payload)
    try:
        incident = runtime.store.get(item.incident) if item.incident else None
        decision = runtime.policy.for_command(
            runtime.registry.commands[item.command],
            item.user,
            item.channel,
            incident=incident.id if incident else "",
            incident_channel=incident.channel if incident else "",
        )
    except Exception as exc:
        log.exception("authorizing %s failed", item.id)
        runtime.slack.ephemeral(
            item.channel, item.user, error_wording.job_failed(item.words, error_wording.reason(exc))
        )
        return "failed"
    if not decision.allowed:
        runtime.slack.ephemeral(
            item.channel, item.user, command_wording.refused(item.words, decision.reason, decision.who)
        )
        runtime.store.record(item.incident, EventKind.REFUSED, item.user, command=item.words, reason=decision.reason)
        return "refused"
    submitted = runtime.dispatcher.submit(
        item, runtime.registry.commands[item.command].route, fix=runtime.registry.fix_command(item.command)
    )
    if submitted.refused:
        settings = runtime.settings.for_vm(item.vm) if item.vm else runtime.settings
        runtime.slack.ephemeral(
            item.channel,
            item.user,
            queue_wording.refused(item.words, settings.vm_name, settings.nexy_max_waiting_per_user, submitted.waiting),
        )
        return "refused"
    return "queued"


def expire_plan(runtime: Runtime, *, plan_id: str) -> str:
    """The end of a plan's approval window (scheduled when the plan is posted)."""
    return lifecycle.expire(runtime, plan_id)


def remind_plan(runtime: Runtime, *, plan_id: str) -> str:
    """Half-way through a plan's approval window (scheduled when the plan is posted)."""
    return lifecycle.remind(runtime, plan_id)


def notify(
    runtime: Runtime,
    *,
    channel: str,
    user: str,
    text: str,
    thread_ts: str | None = None,
    blocks: list[dict] | None = None,
) -> None:
    """Post an ephemeral notice to one user (in a thread when given)."""
    runtime.slack.ephemeral(channel, user, text, blocks, thread_ts=thread_ts)


def probe(runtime: Runtime, *, name: str) -> Any:
    """A declared probe (bot.item.probe), for a VM job that must not wait for it itself."""
    return runtime.registry.probes[name](runtime.settings)


def queued(runtime: Runtime, *, payload: dict[str, Any], position: int, running: str | None) -> None:
    """A job waits for the VM: post its status message with its position (unless it started already)."""
    item = WorkItem.from_payload(payload)
    fix = item.command in runtime.registry.commands and runtime.registry.fix_command(item.command)
    Progress(runtime, item, on_vm=True).queued(position, running, fix)


def checklist(runtime: Runtime, *, incident: str, ts: str, user: str, checked: list[str] | None = None) -> str:
    """Someone ticked the final checklist: show its boxes to everyone. With `checked`, the web side could
    not tell yet whether they are an operator (a user group): check, record the ticks, then show them."""
    if checked is not None:
        found = runtime.store.get(incident)
        if found is None:
            return "no such incident"
        decision = runtime.policy.for_action(
            Action.CHECKLIST, user, found.channel, incident=found.id, incident_channel=found.channel
        )
        if not decision.allowed:
            text = command_wording.action_refused(decision.reason, decision.who)
            runtime.slack.ephemeral(found.channel, user, text, thread_ts=found.thread_ts or None)
            return "refused"
        runtime.store.record(found.id, EventKind.CHECKLIST, user, checked=checked, ts=ts, source="tick")
    return _refresh_checklist(runtime, incident, ts, user)


def _refresh_checklist(runtime: Runtime, incident_id: str, ts: str, user: str) -> str:
    """Show the boxes as the timeline's last checklist event left them, to everyone."""
    incident = runtime.store.get(incident_id)
    if incident is None or not incident.closed_at:
        return "no such resolved incident"
    events = runtime.store.timeline(incident_id)
    posted = next((e for e in events if e.kind is EventKind.CHECKLIST and e.get("source") == "close"), None)
    if posted is None:
        return "no checklist"
    text, blocks = checklist_wording.message(
        incident,
        postmortem.last_verify(events[: posted.seq]),
        postmortem.checked(events),
        posted.get("head", ""),
        posted.seq,
        ticked_by=user,
    )
    runtime.slack.update(incident.channel, ts, text, blocks)
    return "shown"


def publish_home(runtime: Runtime, *, user: str) -> str:
    """Publish a user's App Home tab."""
    from jobs.home import publish

    return publish(runtime, user)


def report_failure(job: Any, connection: Any, exc_type: Any, exc_value: Any, traceback: Any) -> None:
    """RQ's failure callback: a job that died with its worker, or ran out of time, is reported in
    its thread (the tasks above report their own errors). The job is a `TaskJob` of the worker
    that found the failure, so it carries that worker's runtime."""
    runtime: Runtime | None = getattr(job, "runtime", None)
    if runtime is None:
        log.error("job %s failed outside a nexy worker; nothing was posted", job.id)
        return
    reason = (
        ABANDONED
        if exc_type is JobAbandoned
        else "the worker stopped while it ran"
        if exc_type is not None and exc_type.__name__ == "AbandonedJobError"
        else error_wording.reason(exc_value)
        if exc_value is not None
        else "it did not finish"
    )
    if OperationStore(runtime.redis).was_reported(job.id):
        return  # another worker read its run-command's outcome from Azure and reported that
    try:
        if job.func_name == Task.APPLY_PLAN:
            lifecycle.interrupted(runtime, job.kwargs["plan_id"], reason)
        elif job.func_name == Task.RUN_REQUEST and job.args:
            item = WorkItem.from_payload(job.args[0])
            vm = (job.meta or {}).get("vm", "")
            on_vm = runtime.for_vm(vm) if vm and runtime.settings.find_vm(vm) else runtime
            riders = on_vm.dispatcher.admission(on_vm.settings).riders(job.id)
            heads = _answer_once(item, riders)
            for request in (item, *riders):  # the requests that joined the run are told too
                if not request.incident:
                    continue
                if request in heads:
                    interrupted = error_wording.job_interrupted(request.words, reason)
                    Thread(runtime, request.incident).post(interrupted, kind=EventKind.ERROR, command=request.words)
                progress = _progress(runtime, request, silent=request not in heads)
                progress.started_at = job.started_at.timestamp() if job.started_at else 0.0
                progress.finished("failed")
    except Exception:
        log.exception("could not report the failure of job %s", job.id)
