"""Answers to a typed command, given at once by the web process: help, a bad command, queued,
refused. The command table itself comes from the registry (passed in, never imported here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot import render
from bot.item import Scope
from bot.wording.refs import command

if TYPE_CHECKING:
    from bot.incidents import Incident
    from bot.registry import ParseError, Request, Section

HELP = command("help")
HISTORY = command("history")
INCIDENT_NEW = command("incident new <title>")


def help_message(lines: list[str], usage: tuple[str, str] | None = None) -> str:
    """The command list (one line each), or one command's usage and summary."""
    if usage:
        return f"`{usage[0]}`: {usage[1]}"
    text = ["*nexy* runs the deploy incident runbook. Commands:", *(f"• {line}" for line in lines)]
    text.append("In an incident thread, mention me instead: `@nexy status`.")
    return "\n".join(text)


def runbook_table(sections: list[Section]) -> str:
    """`/nexy runbook`: each section, the journal symptoms that point to it, its commands and where they run."""
    lines = ["*The runbook, as the bot runs it:*"]
    for s in sections:
        lines.append(f"*{s.section} {s.title}*")
        for symptom in s.symptoms:
            lines.append(f"  symptom: journal matches `{symptom.pattern}` → `/nexy {symptom.fix}`")
        for usage, where in s.commands:
            lines.append(f"  `{usage}`: {where}")
    return "\n".join(lines)


def parse_error(error: ParseError, lines: list[str]) -> str:
    text = [f":warning: {error.problem}"]
    if error.suggestion:
        text.append(f"Did you mean `{error.suggestion}`?")
    if error.usage == "/nexy help":
        text.append("")
        text.append(help_message(lines))
    elif error.usage:
        text.append(f"Usage: `{error.usage}`")
    if error.also:
        text.append("Also: " + ", ".join(f"`{usage}`" for usage in error.also))
    return "\n".join(text)


def queued(request: Request, incident: Incident | None, created: bool) -> str:
    if incident is None:
        return f":hourglass_flowing_sand: `{request.words}` is queued; the answer comes to you only."  # no free text
    if request.spec.scope is Scope.NEW:
        return f":rotating_light: {incident.id} is opened: {render.escape(incident.title)}. Its thread follows."
    if request.spec.scope is not Scope.CHANNEL:
        return f":hourglass_flowing_sand: `{request.command}` is queued for {incident.id}."
    where = "a new incident thread" if created else "the open incident's thread"
    return f":hourglass_flowing_sand: `{request.words}` is queued; the result goes to {where} ({incident.id})."


def no_incident(channel: str, named: str | None, *, in_thread: bool) -> str:
    """A command about an incident when there is none to work on."""
    if named:
        return f":grey_question: There is no incident {render.escape(named)}. {HISTORY} lists the incidents."
    if in_thread:
        return f":grey_question: This thread is not an incident's thread. {HISTORY} lists the incidents."
    return (
        f":grey_question: No incident is open in <#{channel}>. {INCIDENT_NEW} opens one; {HISTORY} lists the past ones."
    )


def not_here(reason: str) -> str:
    """A request from a channel the bot does not answer in (the policy's reason names where it does)."""
    return f":no_entry: {reason}."


def enqueue_failed() -> str:
    return ":x: I could not queue that: the job queue (Redis) is not reachable. Nothing was run; try again shortly."


def button_out_of_date() -> str:
    return ":warning: That button is out of date: type the command instead (`/nexy help` lists them)."


def form_out_of_date() -> str:
    return "This form is out of date: close it and type the command again."


def refused(words: str, reason: str, who: str) -> str:
    """A command the policy refused: why, and who may do it instead (when a role is what is missing)."""
    can = f" Who can: {who}." if who else ""
    return f":no_entry: `{render.escape(words)}` was not queued: {reason}.{can}"


def action_refused(reason: str, who: str) -> str:
    """A click the policy refused (a checklist box): nothing changed."""
    can = f" Who can: {who}." if who else ""
    return f":no_entry: That changed nothing: {reason}.{can}"


def which_vm(words: str, names: tuple[str, ...]) -> str:
    """Several VMs and no `--vm`: ask which, naming each."""
    options = ", ".join(f"`/nexy {render.escape(words)} --vm {name}`" for name in names)
    return f":question: Which VM? I serve {len(names)}: {options}."


def unknown_vm(name: str, names: tuple[str, ...]) -> str:
    known = ", ".join(f"`{n}`" for n in names)
    return f"I know no VM named `{render.escape(name)}`; the VMs are {known}."


def incident_limit(channel: str, limit: int, retry_at: float, now: float) -> str:
    """A command that would open an incident in a channel that opened its hourly share of them."""
    return (
        f":no_entry: No new incident in <#{channel}>: {limit} were opened there in the last hour "
        f"(NEXY_MAX_INCIDENTS_PER_HOUR), so nothing was queued. A new one can be opened from "
        f"{render.date(retry_at)} (in {render.duration(max(1.0, retry_at - now))})."
    )
