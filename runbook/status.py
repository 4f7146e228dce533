"""Runbook 5, service failure: the service's state, the journal lines that matter since its last
start, and Fast Branching to the section whose symptom shows (6.1, 6.2, 6.3, ...)."""

from __future__ import annotations

from dataclasses import dataclass

from bot import render
from bot.context import Context, output_excerpt
from bot.incidents import EventKind
from bot.item import Route, Symptom, check, patterns_parameter, script
from bot.learn import CONTEXT_LINES
from bot.wording.refs import command

SCRIPT = script(__file__, "status")
RESTART = command("restart")


UNKNOWN_ERRORS = r"[A-Za-z]+(Error|Exception)|Traceback|CRITICAL|FATAL"
"""Error lines of no declared symptom, shown too: what the runbook may learn at the incident's close."""

JOURNAL_SIGNALS = (*CONTEXT_LINES, UNKNOWN_ERRORS)
"""Every journal line the VM scripts keep beside the declared symptoms."""


@dataclass(frozen=True)
class StatusReport:
    service: str
    active: str
    since: str
    symptoms: tuple[tuple[Symptom, str], ...]  # (symptom, the line that shows it), Fast Branching order
    output: str


def render_report(r: StatusReport) -> tuple[str, list[dict]]:
    icon = ":large_green_circle:" if r.active == "active" else ":red_circle:"
    since = f" since {r.since}" if r.since and r.active == "active" else ""
    headline = f"{icon} *Status (runbook 5)*: `{r.service}` is *{r.active}*{since}."
    blocks = [render.section(headline)]
    if r.symptoms:
        symptom, line = r.symptoms[0]
        blocks.append(
            render.section(
                f":mag: *Fast Branching → {symptom.section} {symptom.title}*\n"
                f"> {render.cut(line, 500)}\n{next_step(symptom)}"
            )
        )
        for other, _ in r.symptoms[1:]:
            blocks.append(render.context(f"Also seen: {other.section} {other.title}"))
    elif r.active != "active":
        blocks.append(
            render.section(f"No runbook signature in the journal: resolve the primary error below, then {RESTART}.")
        )
    blocks.append(render.section(output_excerpt(r.output)))
    return headline.replace("*", ""), blocks


def next_step(symptom: Symptom) -> str:
    """What to do about a symptom: its fix command."""
    return f"Next: `/nexy {symptom.fix}`"


@check("status", section="5", title="Service Restart / systemd Failure", route=Route.VM, scripts=(SCRIPT,))
def status(ctx: Context) -> str:
    """status: service state, the journal lines that matter, and where the runbook branches

    one run-command: `systemctl` state and the journal lines since the last start that match the runbook's
    signatures (and error lines that match none: what the runbook may learn at close); names the Fast Branching
    section (6.1 `PermissionError`, 6.2 `can't open file`, 6.3 `TextProcessor`, 6 API key, 3 imports) and the fix
    command to run next (`fix config-perms`, `fix execstart`, `fix api-key`, `fix deps`)
    """
    registry = ctx.registry
    signatures = patterns_parameter((*registry.journal_patterns, *JOURNAL_SIGNALS))
    result = ctx.run(SCRIPT, ("NEXY_SIGNATURES", signatures))
    if result.exit_code is None:
        return ctx.incomplete(result, kind="status")
    active = result.facts.get("active", "unknown")
    report = StatusReport(
        ctx.settings.nexy_service,
        active,
        result.facts.get("since", ""),
        tuple(registry.fast_branching(result.stdout)),
        result.output,
    )
    ctx.post(render_report(report), kind="status", duration_s=result.duration_s, output=result.output)
    if report.symptoms:
        symptom, line = report.symptoms[0]
        ctx.record(EventKind.DIAGNOSIS, section=symptom.section, title=symptom.title, line=line, fix=symptom.fix)
    return active
