"""Every user-facing message, in one place, so wording is reviewed together.

Each function returns plain text, or `(text, blocks)` where the text is the notification
fallback Slack shows when blocks cannot be.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bot import render
from bot.commands import COMMANDS, ParseError, Request, help_lines

if TYPE_CHECKING:
    from bot.incidents import Incident
    from jobs.health import HealthReport

Blocks = list[dict]


# -- commands --------------------------------------------------------------------------

def help_message(name: str | None = None) -> str:
    if name and name in COMMANDS:
        command = COMMANDS[name]
        return f"`{command.usage}`: {command.summary}"
    lines = ["*nexy* runs the deploy incident runbook. Commands:", *(f"• {line}" for line in help_lines())]
    lines.append("In an incident thread, mention me instead: `@nexy status`.")
    return "\n".join(lines)


def parse_error(error: ParseError) -> str:
    lines = [f":warning: {error.problem}"]
    if error.suggestion:
        lines.append(f"Did you mean `{error.suggestion}`?")
    if error.usage == "/nexy help":
        lines.append("")
        lines.append(help_message())
    elif error.usage:
        lines.append(f"Usage: `{error.usage}`")
    return "\n".join(lines)


def queued(request: Request, incident: Incident, created: bool) -> str:
    where = "a new incident thread" if created else "the open incident's thread"
    return f":hourglass_flowing_sand: `{request.words}` is queued; the result goes to {where} ({incident.id})."


def channel_not_allowed(allowed: tuple[str, ...]) -> str:
    channels = ", ".join(f"<#{c}>" for c in allowed)
    return f":no_entry: I answer only in {channels}."


def enqueue_failed() -> str:
    return ":x: I could not queue that: the job queue (Redis) is not reachable. Nothing was run; try again shortly."


def job_failed(request_words: str, reason: str) -> str:
    return f":x: `{request_words}` failed before it could report: {reason}"


# -- incident thread -------------------------------------------------------------------

def incident_parent(incident: Incident) -> tuple[str, Blocks]:
    opened = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(incident.opened_at))
    text = f":rotating_light: Incident {incident.id}: {incident.title}"
    blocks = [
        render.section(f":rotating_light: *Incident {incident.id}*: `{incident.title}`"),
        render.context(f"Opened by <@{incident.opened_by}> at {opened}. "
                       "Every check, plan, approval and result for this incident is recorded in this thread."),
    ]
    return text, blocks


def requested_by(user: str, words: str) -> str:
    return f"<@{user}> asked for `{words}`"


# -- health (runbook 4 verify) -----------------------------------------------------------

def health_report(report: HealthReport) -> tuple[str, Blocks]:
    up = sum(1 for e in report.endpoints if e.up)
    total = len(report.endpoints)
    if report.healthy:
        icon, verdict = ":large_green_circle:", f"all {total} endpoints up"
    elif up == 0:
        icon, verdict = ":red_circle:", f"all {total} endpoints down"
    else:
        icon, verdict = ":large_orange_circle:", f"{up} of {total} endpoints up"
    releases = sorted(report.releases)
    if not releases:
        version_line = "no version reported"
    elif report.agree:
        version_line = f"version {releases[0]}, the same on every endpoint that answered"
    else:
        version_line = "versions disagree: " + " vs ".join(releases)
    if report.matches_expected is True:
        version_line += f"; expected {report.expected}: matches"
    elif report.matches_expected is False:
        version_line += f"; expected {report.expected}: *does not match* (runbook 4)"
    headline = f"{icon} *Health*: {verdict}; {version_line}."
    fields = []
    for e in report.endpoints:
        state = ":white_check_mark: up" if e.up else ":x: down"
        detail = f"HTTP {e.status}" if e.status is not None else e.error
        release = e.release or "no version"
        line = f"*{e.url}*\n{state} · {detail} · {e.latency_ms:g} ms · {release}"
        if e.error and e.status is not None:
            line += f" · {e.error}"
        fields.append(line)
    blocks = [render.section(headline)] + [render.section(f) for f in fields]
    return headline.replace("*", ""), blocks
