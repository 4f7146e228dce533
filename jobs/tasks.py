"""The worker's entry points: RQ calls these with plain dicts from bot.dispatch.

Each request runs its command's action and posts into the incident thread. Whatever happens,
the thread says so: a failed job posts what failed, not a stack trace.
"""
from __future__ import annotations

import logging

from bot import messages
from bot.commands import Request
from bot.dispatch import Dispatcher, WorkItem
from bot.errors import NexyError
from bot.redaction import redact
from jobs import actions, lifecycle
from jobs.runtime import current
from jobs.thread import Thread

log = logging.getLogger(__name__)


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
    except NexyError as exc:
        thread.post(messages.job_failed(item.words, redact(str(exc))), kind="error", user=item.user)
        return "failed"
    except Exception as exc:
        log.exception("job %s failed", item.id)
        thread.post(messages.job_failed(item.words, redact(f"{type(exc).__name__}: {exc}")[:500]),
                    kind="error", user=item.user)
        raise


def notify(*, channel: str, user: str, text: str, thread_ts: str | None = None) -> None:
    """Post an ephemeral notice to one user (in a thread when given)."""
    current().slack.ephemeral(channel, user, text, thread_ts=thread_ts)


def announce(*, incident: str, text: str) -> None:
    """Post a notice in an incident's thread (queue position, for example)."""
    Thread(current(), incident).post(text, kind="notice")


def decide(**kwargs) -> str:
    """An approval or rejection of a plan (from a reaction or a button)."""
    return lifecycle.decide(**kwargs)


def expire_plan(*, plan_id: str) -> str:
    """The end of a plan's approval window (scheduled when the plan is posted)."""
    return lifecycle.expire(plan_id)


def apply_plan(*, plan_id: str) -> str:
    """Apply and verify an approved plan (VM queue)."""
    return lifecycle.run_apply(plan_id)


def authorize(payload: dict) -> str:
    """A fix request whose operator check needs a user group resolved: resolve, then queue or refuse."""
    runtime = current()
    item = WorkItem.from_payload(payload)
    decision = lifecycle.policy(runtime).can_request_fix(item.user)
    if not decision.allowed:
        runtime.slack.ephemeral(item.channel, item.user, messages.fix_refused(item.words, decision.reason, decision.who))
        runtime.store.record(item.incident, "refusal", item.user, command=item.words, reason=decision.reason)
        return "refused"
    Dispatcher(runtime.settings, runtime.redis).submit(Request(item.command, item.args), user=item.user,
                                                       channel=item.channel, incident=item.incident, source=item.source)
    return "queued"
