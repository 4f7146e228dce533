"""The runbook's "all" row: every check in ONE run-command, the findings ranked by likelihood, and
the top finding's plan posted with the diagnosis, so that an approver can approve at once.

The run-command is `diagnose.sh` (service state, the journal since the last start filtered by
every declared signature) followed by every fix's plan script, batched: config.env's owner, mode
and readability for the service user, ExecStart, whether GEMINI_API_KEY is set and not a
placeholder (never its value), VERSION and the manifest, python and the packages. Meanwhile the
health probes and the expected version (GitHub's latest release when configured) run on the io
queue. The facts are kept a few minutes (bot/diagnoses.py), so a plan asked from another finding
needs no second run-command: from `diagnose` to a verified fix takes two run-commands in all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from rq.job import Job

from bot import render
from bot.context import Context
from bot.contract import WATCH_SOURCE, Action
from bot.incidents import EventKind
from bot.item import Route, Symptom, check, patterns_parameter, script
from bot.registry import Registry
from bot.settings import Settings
from bot.wording.refs import command
from clients.health import HealthReport
from runbook import deps as deps_item
from runbook.status import JOURNAL_SIGNALS
from runbook.version import normalize, probe_with_expected

SCRIPT = script(__file__, "diagnose")
VERSION = command("version")
STATUS = command("status")
HEALTH = command("health")

PROBE_WAIT_S = 60.0
"""How long the diagnosis waits for health probes an io worker has started, once the run-command is done."""

MAX_FINDINGS = 8
"""The most findings shown (each is a section with its button); the rest are counted."""


@dataclass(frozen=True)
class Finding:
    """One thing wrong, the runbook section it means, the evidence, and the command that fixes it."""

    section: str
    title: str
    fix: str | None  # command words the parser takes (`fix deps`, `fix version 2.4.0.240`, `restart`)
    evidence: tuple[str, ...]
    score: int  # likelihood: higher first


@dataclass(frozen=True)
class Diagnosis:
    service: str
    active: str
    since: str
    findings: tuple[Finding, ...]
    health: HealthReport
    facts: dict[str, str]

    @property
    def clear(self) -> bool:
        return not self.findings


def _journal(stdout: str) -> str:
    """The journal lines the script printed between its markers."""
    lines = stdout.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("--- journal since"))
    except StopIteration:
        return ""
    end = next((i for i, line in enumerate(lines) if line.startswith("--- end of journal")), len(lines))
    return "\n".join(lines[start + 1 : end])


def findings(
    facts: dict[str, str], journal: str, health: HealthReport, registry: Registry, settings: Settings
) -> tuple[Finding, ...]:
    """Every finding of the facts, merged per fix and ranked by likelihood."""
    found: list[Finding] = []
    failed = facts.get("active") != "active"
    for symptom, line in registry.fast_branching(journal):
        found.append(_from_symptom(symptom, line, failed))
    found.extend(_guardrails(facts, settings))
    deps = deps_item.read(facts)
    if deps.fingerprint and not deps.ok:
        found.append(
            Finding("3", "Dependency Mismatch After Deploy", "fix deps", tuple(deps_item.mismatch_lines(deps)), 80)
        )
    found.extend(_version(facts, health, registry))
    down = [e for e in health.endpoints if not e.up]
    if down and not failed:
        found.append(
            Finding(
                "5", "Service Failure", "restart", tuple(f"`{e.url}` does not answer ({e.error})" for e in down), 50
            )
        )
    if failed:
        state = f"`{settings.nexy_service}` is *{facts.get('active') or 'unknown'}*"
        if found:  # what explains the failure carries it: a restart alone would not help
            top = max(found, key=lambda f: f.score)
            found[found.index(top)] = replace(top, evidence=(*top.evidence, state))
        else:
            since = f" since {facts['since']}" if facts.get("since") else ""
            found.append(Finding("5", "Service Failure", "restart", (f"{state}{since}",), 40))
    return _ranked(found)


def _from_symptom(symptom: Symptom, line: str, failed: bool) -> Finding:
    return Finding(
        symptom.section, symptom.title, symptom.fix, (f"journal: `{render.cut(line, 300)}`",), 90 if failed else 55
    )


def _guardrails(facts: dict[str, str], settings: Settings) -> list[Finding]:
    cfg = f"`{settings.nexy_app_dir}/config.env`"
    found = []
    if facts.get("pf_config_exists") == "no":
        found.append(Finding("0.1", "Guardrail: config.env", None, (f"{cfg} does not exist: restore it first",), 95))
    elif facts.get("pf_config_readable") == "no":
        found.append(
            Finding(
                "6.1",
                "Config Permission Denied",
                "fix config-perms",
                (f"{cfg} is {facts.get('pf_config_stat', '?')}: `{settings.nexy_service_user}` cannot read it",),
                85,
            )
        )
    if facts.get("pf_execstart_ok") == "no":
        found.append(
            Finding(
                "6.2",
                "ExecStart Path Drift",
                "fix execstart",
                (f"the unit has `{facts.get('pf_execstart') or 'no ExecStart'}`",),
                85,
            )
        )
    key = facts.get("pf_api_key")
    if key in ("missing", "placeholder"):
        found.append(
            Finding(
                "6",
                "Gemini API Key",
                "fix api-key",
                (f"`GEMINI_API_KEY` is {'missing' if key == 'missing' else 'a placeholder'}",),
                85,
            )
        )
    return found


def _version(facts: dict[str, str], health: HealthReport, registry: Registry) -> list[Finding]:
    runtime = facts.get("runtime_version", "")
    manifest = f"{facts.get('manifest_version', '?')}.{facts.get('manifest_build', '?')}"
    seen = {"VERSION": normalize(runtime), "manifest.json": normalize(manifest)}
    for e in health.endpoints:
        if e.up and e.release:
            seen[f"`{e.url}`"] = normalize(e.release)
    expected = normalize(health.expected) if health.expected else None
    wrong = {place: v for place, v in seen.items() if v != expected} if expected else {}
    if expected and wrong:
        words = f"fix version {expected}"
        evidence = tuple(
            f"{place} says `{value}`, expected `{expected}` ({health.expected_source})"
            for place, value in wrong.items()
        )
        return [Finding("4", "Wrong Runtime Version", words if registry.accepts(words) else None, evidence, 70)]
    if not expected and len(set(seen.values())) > 1:
        evidence = tuple(f"{place} says `{value}`" for place, value in seen.items())
        return [
            Finding(
                "4",
                "Wrong Runtime Version",
                None,
                (*evidence, f"no expected version: {VERSION} with the version this VM should run"),
                60,
            )
        ]
    return []


def _ranked(found: list[Finding]) -> tuple[Finding, ...]:
    """One finding per fix (and per section without one), the evidence merged: agreeing evidence
    makes a finding more likely. Highest score first."""
    merged: dict[str, Finding] = {}
    for f in found:
        key = f.fix or f"section {f.section}"
        if key not in merged:
            merged[key] = f
            continue
        m = merged[key]
        sections = m.section if f.section in m.section.split(" / ") else f"{m.section} / {f.section}"
        titles = m.title if f.title in m.title else f"{m.title} / {f.title}"
        merged[key] = Finding(sections, titles, m.fix, (*m.evidence, *f.evidence), max(m.score, f.score) + 5)
    return tuple(sorted(merged.values(), key=lambda f: -f.score))


# -- rendering ---------------------------------------------------------------------------------


def _button_label(words: str, secret: bool) -> str:
    return "Enter the new key" if secret else f"Plan {words}"


def render_report(d: Diagnosis, registry: Registry, planned: str | None) -> tuple[str, list[dict]]:
    """The findings (each with its fix button), or an all-clear with the figures."""
    h = d.health
    up = sum(1 for e in h.endpoints if e.up)
    if d.clear:
        version = normalize(next(iter(h.releases), "no version"))
        expected = f", as expected ({h.expected_source})" if h.expected else ""
        deps = deps_item.read(d.facts)
        headline = (
            f":large_green_circle: *Diagnosis*: all clear. `{d.service}` is active since {d.since or '?'}; "
            f"{up} of {len(h.endpoints)} endpoints up, version `{version}`{expected}; the four 0.1 "
            f"guardrails pass; {deps.installed} packages satisfy the requirements ({deps.python})."
        )
        return headline.replace("*", ""), [render.section(headline)]
    top = d.findings[0]
    headline = (
        f":stethoscope: *Diagnosis*: {len(d.findings)} finding{'s' if len(d.findings) != 1 else ''}; "
        f"most likely *{top.section} {top.title}*."
    )
    blocks = [render.section(headline)]
    for n, f in enumerate(d.findings[:MAX_FINDINGS], 1):
        text = f"*{n}. {f.section} {f.title}*\n" + "\n".join(f"• {e}" for e in f.evidence[:4])
        accessory = None
        if f.fix:
            fix = registry.fix_for(f.fix.split()[0], tuple(f.fix.split()[1:]))
            if f.fix == planned:
                text += "\nIts plan is below: approve it there."
            else:
                text += f"\nFix: `/nexy {f.fix}`"
                accessory = render.button(_button_label(f.fix, fix.secret is not None), Action.PLAN_FIX, f.fix)
        else:
            text += f"\nNo fix command for this: see {STATUS} and the runbook's section {f.section}."
        blocks.append(render.section(text, accessory=accessory))
    if len(d.findings) > MAX_FINDINGS:
        blocks.append(render.context(f"… and {len(d.findings) - MAX_FINDINGS} more findings"))
    endpoints = ", ".join(f"{e.url} {'up' if e.up else 'down'}" for e in h.endpoints)
    blocks.append(render.context(f"`{d.service}` is {d.active}; {endpoints}. {HEALTH} probes them again."))
    return headline.replace("*", ""), blocks


# -- the job -------------------------------------------------------------------------------------


@check("diagnose", section="all", title="Every Check At Once", route=Route.VM, scripts=(SCRIPT,))
def diagnose(ctx: Context) -> str:
    """diagnose: every check in one run-command, the findings ranked, and the top fix's plan

    every VM check in ONE run-command (service state, the journal since the last start against every declared
    signature, config.env's owner/mode/readability for the service user, ExecStart, whether `GEMINI_API_KEY` is set
    and not a placeholder (never its value), VERSION and the manifest, python and the packages) while the health
    probes and the expected version run on the io queue; the findings ranked by likelihood with their section,
    evidence and a button for their fix, and the top finding's plan posted with it; a healthy VM gets an all-clear
    with the figures. A plan asked within `NEXY_DIAGNOSIS_REUSE_S` uses the diagnosis's facts: from `diagnose` to a
    verified fix in two run-commands
    """
    settings, registry = ctx.settings, ctx.registry
    probes = ctx.start_probe("health")  # on io, while the run-command runs
    plans = tuple(f.plan_script for f in registry.fixes.values())
    signatures = patterns_parameter((*registry.journal_patterns, *JOURNAL_SIGNALS))
    result = ctx.run(
        SCRIPT, ("NEXY_SIGNATURES", signatures), deps_item.pins_parameter(), includes=tuple(dict.fromkeys(plans))
    )
    health = _probe_result(probes, settings)
    if result.exit_code is None:
        return ctx.incomplete(result, kind="diagnosis")
    facts = result.facts
    ctx.remember_diagnosis(facts)
    found = findings(facts, _journal(result.stdout), health, registry, settings)
    report = Diagnosis(
        settings.nexy_service, facts.get("active", "unknown"), facts.get("since", ""), found, health, facts
    )
    top = next((f for f in found if f.fix), None)
    planned = _plannable(ctx, top.fix) if top and top.fix else None
    ctx.post(render_report(report, registry, planned), kind="diagnosis", duration_s=result.duration_s)
    if found:  # the incident's timeline names the section the diagnosis points to
        first = found[0]
        line = first.evidence[0] if first.evidence else ""
        ctx.record(EventKind.DIAGNOSIS, section=first.section, title=first.title, line=line, fix=first.fix)
    if planned:
        ctx.plan(planned, facts, source="from this diagnosis (no second run-command); the apply re-checks the state")
    return top.section if top else "clear"


def _plannable(ctx: Context, words: str) -> str | None:
    """The fix whose plan goes with the diagnosis: not one that needs a form, and only for an operator or
    the watch (the bot itself, set up by the operators: its plan's requester is the bot, so any approver
    may approve it)."""
    command, *args = words.split()
    fix = ctx.registry.fix_for(command, tuple(args))
    if fix.secret is not None:
        return None
    if ctx.item.source != WATCH_SOURCE and not ctx.may_request_fix():
        return None
    return words


def _probe_result(job: Job, settings: Settings) -> HealthReport:
    """The probes' result: the io job's if it ran, else run here (no io worker took it in time)."""
    deadline = time.monotonic() + PROBE_WAIT_S
    while True:
        status = job.get_status(refresh=True)
        if status == "finished":
            result = job.return_value(refresh=True)
            if isinstance(result, HealthReport):
                return result
            break
        if status != "started" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    job.cancel()
    return probe_with_expected(settings)
