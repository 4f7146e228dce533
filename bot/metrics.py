"""The bot's Prometheus families, and the one-line calls the web side and the engine feed them with.

Counted where it happens, in the process it happens in (prometheus-client's multiprocess mode: each
process writes its own files under PROMETHEUS_MULTIPROC_DIR, a scrape adds them up; nexy/metrics.py
owns that directory and the endpoints). What is a state rather than an event (queue depth, the
outbox's backlog, open incidents) is not counted here: it is read from Redis at scrape time, so no
gauge drifts when a process dies.

Off, and prometheus-client not even imported, unless the composition root set PROMETHEUS_MULTIPROC_DIR
for this process (NEXY_METRICS, on by default): a call is then one dictionary lookup.

No label carries user text. Every label value comes from a closed set: a registry command name (or
`unknown`), an outcome below, a VM's inventory name, a script's name, a queue's name.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar, cast

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Where prometheus-client's multiprocess mode keeps each process's files (set by nexy/metrics.py)."""

UNKNOWN_COMMAND = "unknown"
"""The command label of input that did not parse as a command: never the words typed."""


class Outcome(str, Enum):
    """What became of a command a person sent (`nexy_commands_received_total{outcome}`)."""

    QUEUED = "queued"  # its work was queued (or it joined a waiting identical check)
    FORM = "form"  # a private form opened first (a secret to type)
    REFUSED = "refused"  # not queued: the policy, a limit, no incident to work on, Redis failing
    ANSWERED = "answered"  # answered at once, nothing to queue (help)
    INVALID = "invalid"  # not a valid command: help and a suggestion


class Decision(str, Enum):
    """How a plan's approval ended (`nexy_approvals_total{outcome}`)."""

    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


FAMILIES: dict[str, str] = {
    "nexy_commands_received_total": "commands received, by command and outcome (web)",
    "nexy_ack_seconds": "time from a Slack request's arrival to its answer (web)",
    "nexy_run_command_seconds": "a run-command's duration, by VM and script (worker)",
    "nexy_queue_depth": "jobs waiting in each queue (read from Redis at scrape)",
    "nexy_queue_oldest_waiting_seconds": "age of the job that waited longest in each queue, 0 when empty (Redis)",
    "nexy_approvals_total": "plans decided, by outcome (approved, rejected, expired)",
    "nexy_approval_decision_seconds": "time from a plan to its decision, by outcome",
    "nexy_outbox_backlog": "messages written to the outbox and not yet delivered to Slack (Redis)",
    "nexy_outbox_oldest_seconds": "age of the oldest undelivered outbox message, 0 when none (Redis)",
    "nexy_watch_probes_total": "the watch's health probes of each VM",
    "nexy_watch_probe_failures_total": "the watch's probes of each VM that failed",
    "nexy_incidents_open": "incidents open now (Redis)",
    "nexy_redis_up": "whether the scrape could read Redis (1) or not (0): the (Redis) families are left out when not",
}
"""Every family the bot exposes, as scraped (a counter with its `_total`), and what it means: the
dashboard and the alert rules in deploy/ may name only these (tests/test_deploy.py)."""

ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0)
RUN_COMMAND_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 5400.0)
DECISION_BUCKETS = (10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0)

_families: dict[str, Any] | None = None


def enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def _get() -> dict[str, Any] | None:
    """The families, made on first use (after the composition root chose the directory); None when off."""
    global _families
    if _families is None:
        if not enabled():
            return None
        from prometheus_client import Counter, Histogram

        _families = {
            "commands": Counter(
                "nexy_commands_received", FAMILIES["nexy_commands_received_total"], ["command", "outcome"]
            ),
            "ack": Histogram("nexy_ack_seconds", FAMILIES["nexy_ack_seconds"], buckets=ACK_BUCKETS),
            "run_command": Histogram(
                "nexy_run_command_seconds",
                FAMILIES["nexy_run_command_seconds"],
                ["vm", "script"],
                buckets=RUN_COMMAND_BUCKETS,
            ),
            "approvals": Counter("nexy_approvals", FAMILIES["nexy_approvals_total"], ["outcome"]),
            "decision": Histogram(
                "nexy_approval_decision_seconds",
                FAMILIES["nexy_approval_decision_seconds"],
                ["outcome"],
                buckets=DECISION_BUCKETS,
            ),
            "probes": Counter("nexy_watch_probes", FAMILIES["nexy_watch_probes_total"], ["vm"]),
            "failures": Counter("nexy_watch_probe_failures", FAMILIES["nexy_watch_probe_failures_total"], ["vm"]),
        }
    return _families


def command_received(command: str, outcome: Outcome) -> None:
    families = _get()
    if families is not None:
        families["commands"].labels(command=command, outcome=outcome.value).inc()


def outcome_of(reply: Any) -> Outcome:
    """A request's outcome from what the web side answers it with (handlers/intake.Reply)."""
    if getattr(reply, "queued", False):
        return Outcome.QUEUED
    if getattr(reply, "modal", None):
        return Outcome.FORM
    return Outcome.REFUSED


_Request = TypeVar("_Request", bound=Callable[..., Any])


def counted(request: _Request) -> _Request:
    """Count each valid request a method takes (its second argument, a parsed command with a registry
    `command` name) by the outcome of the reply it returns; a failure counts as refused."""

    @functools.wraps(request)
    def wrapper(self: Any, parsed: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            reply = request(self, parsed, *args, **kwargs)
        except BaseException:
            command_received(parsed.command, Outcome.REFUSED)
            raise
        command_received(parsed.command, outcome_of(reply))
        return reply

    return cast(_Request, wrapper)


def not_queued(parsed: Any, answered: bool) -> None:
    """A command answered before any request was made: help (its registry name), or input that did not
    parse (`unknown`, whatever was typed)."""
    command = getattr(parsed, "command", "") if answered else ""
    command_received(command or UNKNOWN_COMMAND, Outcome.ANSWERED if answered else Outcome.INVALID)


def acked(seconds: float) -> None:
    families = _get()
    if families is not None:
        families["ack"].observe(seconds)


def run_command(vm: str, script: str, seconds: float) -> None:
    families = _get()
    if families is not None:
        families["run_command"].labels(vm=vm, script=script).observe(seconds)


_BY_EVENT = {"approval": Decision.APPROVED, "rejection": Decision.REJECTED, "expiry": Decision.EXPIRED}
"""A decision by the timeline event that records it (bot/incidents.EventKind's values)."""


def approval_decided(event: str, waited_s: float) -> None:
    """A plan approved, rejected or expired (by the timeline event that records it: `approval`,
    `rejection`, `expiry`), `waited_s` after it was made."""
    families = _get()
    if families is not None:
        value = _BY_EVENT[event].value
        families["approvals"].labels(outcome=value).inc()
        families["decision"].labels(outcome=value).observe(max(0.0, waited_s))


def watch_probe(vm: str, failed: bool) -> None:
    families = _get()
    if families is not None:
        families["probes"].labels(vm=vm).inc()
        if failed:
            families["failures"].labels(vm=vm).inc()
