"""The worker's entry points: RQ calls these (by the paths in `bot.contract.Task`) with the
worker's runtime first, then plain values from bot.dispatch.

Whatever happens, the thread (or the person) hears of it: every task catches what it raises and
posts what failed, never a stack trace; a job that dies with its worker or runs out of time is
reported by `report_failure`, RQ's failure callback (AbandonedJobError, timeouts).
"""

from __future__ import annotations

import logging
from typing import Any

from bot.contract import IO_QUEUE, Action, Task, WorkItem
from bot.dispatch import queue_for
from bot.errors import NexyError
from bot.incidents import EventKind
from bot.wording import commands as command_wording
from bot.wording import errors as error_wording
from jobs import lifecycle
from jobs.context import Context
from jobs.operations import OperationStore
from jobs.progress import Progress
from jobs.runtime import Runtime
from jobs.thread import Thread
from jobs.worker import ABANDONED, JobAbandoned

log = logging.getLogger(__name__)


def run_request(runtime: Runtime, payload: dict[str, Any]) -> str:
    """Run one queued request and post its result in the incident thread; returns a short status."""
    item = WorkItem.from_payload(payload)
    ctx = Context(runtime, item)
    registry = runtime.registry
    if item.command in registry.checks:
        run = registry.checks[item.command].run
    elif item.command in registry.commands and registry.fix_command(item.command):
        run = lifecycle.run_plan
    else:
        ctx.thread.post(
            error_wording.job_failed(item.words, "this worker does not know that command; is it up to date?"),
            kind=EventKind.ERROR,
        )
        return "unknown"
    progress = _progress(runtime, item)
    progress.started()
    status = "failed"
    try:
        status = run(ctx) or "done"
    except Exception as exc:
        if not isinstance(exc, NexyError):
            log.exception("job %s failed", item.id)
        ctx.thread.post(
            error_wording.job_failed(item.words, error_wording.reason(exc)),
            kind=EventKind.ERROR,
            user=item.user,
            command=item.words,
        )
    finally:
        progress.finished(status)
    return status


def _progress(runtime: Runtime, item: WorkItem) -> Progress:
    route = runtime.registry.commands[item.command].route
    return Progress(runtime, item, on_vm=queue_for(route, runtime.settings) != IO_QUEUE)


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
    runtime.dispatcher.submit(item, runtime.registry.commands[item.command].route)
    return "queued"


def expire_plan(runtime: Runtime, *, plan_id: str) -> str:
    """The end of a plan's approval window (scheduled when the plan is posted)."""
    return lifecycle.expire(runtime, plan_id)


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
    """A declared probe (runbook.item.probe), for a VM job that must not wait for it itself."""
    return runtime.registry.probes[name](runtime.settings)


def queued(runtime: Runtime, *, payload: dict[str, Any], position: int, running: str | None) -> None:
    """A job waits for the VM: post its status message with its position (unless it started already)."""
    Progress(runtime, WorkItem.from_payload(payload), on_vm=True).queued(position, running)


def checklist(runtime: Runtime, *, incident: str, ts: str, user: str, checked: list[str] | None = None) -> str:
    """Someone ticked the final checklist: show its boxes to everyone. With `checked`, the web side could
    not tell yet whether they are an operator (a user group): check, record the ticks, then show them."""
    from runbook.incident import refresh_checklist  # the runbook imports jobs; not the other way at import

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
    return refresh_checklist(runtime, incident, ts, user)


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
            if item.incident:
                Thread(runtime, item.incident).post(
                    error_wording.job_interrupted(item.words, reason), kind=EventKind.ERROR, command=item.words
                )
                progress = _progress(runtime, item)
                progress.started_at = job.started_at.timestamp() if job.started_at else 0.0
                progress.finished("failed")
    except Exception:
        log.exception("could not report the failure of job %s", job.id)
