"""The worker's entry points: RQ calls these with plain values from bot.dispatch.

Whatever happens, the thread (or the person) hears of it: every task catches what it raises and
posts what failed, never a stack trace; a job that dies with its worker or runs out of time is
reported by `report_failure`, RQ's failure callback (AbandonedJobError, timeouts).
"""
from __future__ import annotations

import logging

from bot import messages
from bot.commands import Request
from bot.dispatch import Dispatcher, WorkItem
from bot.errors import NexyError
from bot.plans import PlanStatus, PlanStore
from bot.redaction import redact
from jobs import actions, lifecycle
from jobs.runtime import current
from jobs.thread import Thread

log = logging.getLogger(__name__)


def _reason(exc: BaseException) -> str:
    """What to say about an error: our own errors as they are, others by type and text; redacted."""
    text = str(exc) if isinstance(exc, NexyError) else f"{type(exc).__name__}: {exc}"
    return redact(text)[:500]


def run_request(payload: dict) -> str:
    """Run one queued request and post its result in the incident thread; returns a short status."""
    item = WorkItem.from_payload(payload)
    runtime = current()
    thread = Thread(runtime, item.incident)
    action = actions.ACTIONS.get(item.command)
    if action is None:
        thread.post(messages.job_failed(item.words, "this worker does not know that command; is it up to date?"))
        return "unknown"
    try:
        return action(runtime, thread, item) or "done"
    except Exception as exc:
        if not isinstance(exc, NexyError):
            log.exception("job %s failed", item.id)
        thread.post(messages.job_failed(item.words, _reason(exc)), kind="error", user=item.user)
        return "failed"


def apply_plan(*, plan_id: str) -> str:
    """Apply and verify an approved plan (VM queue); a failure marks the plan failed and says the VM
    state is unknown."""
    try:
        return lifecycle.run_apply(plan_id)
    except Exception as exc:
        log.exception("apply of %s failed", plan_id)
        _apply_interrupted(plan_id, _reason(exc))
        return "failed"


def _apply_interrupted(plan_id: str, reason: str) -> None:
    runtime = current()
    plans = PlanStore(runtime.redis)
    plan = plans.get(plan_id)
    if plan is None:
        return
    plans.finish(plan_id, PlanStatus.FAILED)
    runtime.store.record(plan.incident, "apply-failed", plan.decided_by, plan=plan_id, reason=reason)
    Thread(runtime, plan.incident).post(messages.apply_interrupted(plan, reason), kind="error")


def decide(**decision) -> str:
    """An approval or rejection of a plan (from a reaction or a button)."""
    try:
        return lifecycle.decide(**decision)
    except Exception as exc:
        log.exception("decision %s failed", {k: v for k, v in decision.items() if k != "user"})
        runtime = current()
        channel = decision.get("channel")
        if channel:
            runtime.slack.ephemeral(channel, decision["user"], messages.decision_failed(_reason(exc)))
        return "failed"


def authorize(payload: dict) -> str:
    """A fix request whose operator check needs a user group resolved: resolve, then queue or refuse."""
    runtime = current()
    item = WorkItem.from_payload(payload)
    try:
        decision = lifecycle.policy(runtime).can_request_fix(item.user)
    except Exception as exc:
        log.exception("authorizing %s failed", item.id)
        runtime.slack.ephemeral(item.channel, item.user, messages.job_failed(item.words, _reason(exc)))
        return "failed"
    if not decision.allowed:
        runtime.slack.ephemeral(item.channel, item.user, messages.fix_refused(item.words, decision.reason, decision.who))
        runtime.store.record(item.incident, "refusal", item.user, command=item.words, reason=decision.reason)
        return "refused"
    Dispatcher(runtime.settings, runtime.redis).submit(Request(item.command, item.args), user=item.user,
                                                       channel=item.channel, incident=item.incident, source=item.source)
    return "queued"


def expire_plan(*, plan_id: str) -> str:
    """The end of a plan's approval window (scheduled when the plan is posted)."""
    return lifecycle.expire(plan_id)


def notify(*, channel: str, user: str, text: str, thread_ts: str | None = None) -> None:
    """Post an ephemeral notice to one user (in a thread when given)."""
    current().slack.ephemeral(channel, user, text, thread_ts=thread_ts)


def announce(*, incident: str, text: str) -> None:
    """Post a notice in an incident's thread (queue position, for example)."""
    Thread(current(), incident).post(text, kind="notice")


def report_failure(job, connection, exc_type, exc_value, traceback) -> None:
    """RQ's failure callback: a job that died with its worker, or ran out of time, is reported in
    its thread (the tasks above report their own errors)."""
    reason = "the worker stopped while it ran" if exc_type is not None and exc_type.__name__ == "AbandonedJobError" \
        else _reason(exc_value) if exc_value is not None else "it did not finish"
    try:
        if job.func_name == "jobs.tasks.apply_plan":
            _apply_interrupted(job.kwargs["plan_id"], reason)
        elif job.func_name == "jobs.tasks.run_request" and job.args:
            item = WorkItem.from_payload(job.args[0])
            Thread(current(), item.incident).post(messages.job_interrupted(item.words, reason), kind="error")
    except Exception:
        log.exception("could not report the failure of job %s", job.id)
