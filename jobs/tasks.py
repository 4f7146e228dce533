"""The worker's entry points: RQ calls these (by the paths in `bot.contract.Task`) with the
worker's runtime first, then plain values from bot.dispatch.

Whatever happens, the thread (or the person) hears of it: every task catches what it raises and
posts what failed, never a stack trace; a job that dies with its worker or runs out of time is
reported by `report_failure`, RQ's failure callback (AbandonedJobError, timeouts).
"""

from __future__ import annotations

import logging
from typing import Any

from bot.contract import Task, WorkItem
from bot.errors import NexyError
from bot.wording import commands as command_wording
from bot.wording import errors as error_wording
from jobs import lifecycle
from jobs.context import Context
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
            error_wording.job_failed(item.words, "this worker does not know that command; is it up to date?")
        )
        return "unknown"
    try:
        return run(ctx) or "done"
    except Exception as exc:
        if not isinstance(exc, NexyError):
            log.exception("job %s failed", item.id)
        ctx.thread.post(error_wording.job_failed(item.words, error_wording.reason(exc)), kind="error", user=item.user)
        return "failed"


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
    """A fix request whose operator check needs a user group resolved: resolve, then queue or refuse."""
    item = WorkItem.from_payload(payload)
    try:
        decision = runtime.policy.can_request_fix(item.user)
    except Exception as exc:
        log.exception("authorizing %s failed", item.id)
        runtime.slack.ephemeral(
            item.channel, item.user, error_wording.job_failed(item.words, error_wording.reason(exc))
        )
        return "failed"
    if not decision.allowed:
        runtime.slack.ephemeral(
            item.channel, item.user, command_wording.fix_refused(item.words, decision.reason, decision.who)
        )
        runtime.store.record(item.incident, "refusal", item.user, command=item.words, reason=decision.reason)
        return "refused"
    runtime.dispatcher.submit(item, runtime.registry.commands[item.command].route)
    return "queued"


def expire_plan(runtime: Runtime, *, plan_id: str) -> str:
    """The end of a plan's approval window (scheduled when the plan is posted)."""
    return lifecycle.expire(runtime, plan_id)


def notify(runtime: Runtime, *, channel: str, user: str, text: str, thread_ts: str | None = None) -> None:
    """Post an ephemeral notice to one user (in a thread when given)."""
    runtime.slack.ephemeral(channel, user, text, thread_ts=thread_ts)


def announce(runtime: Runtime, *, incident: str, text: str) -> None:
    """Post a notice in an incident's thread (queue position, for example)."""
    Thread(runtime, incident).post(text, kind="notice")


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
    try:
        if job.func_name == Task.APPLY_PLAN:
            lifecycle.interrupted(runtime, job.kwargs["plan_id"], reason)
        elif job.func_name == Task.RUN_REQUEST and job.args:
            item = WorkItem.from_payload(job.args[0])
            Thread(runtime, item.incident).post(error_wording.job_interrupted(item.words, reason), kind="error")
    except Exception:
        log.exception("could not report the failure of job %s", job.id)
