"""What an incident's timeline says: one line per event, the last verify results, the final
checklist's state, and the whole story as a Markdown postmortem (`/nexy export`).

Pure functions over an `Incident` and its events: no Redis, no Slack.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from bot import learn, render
from bot.incidents import Event, EventKind, Incident
from bot.plans import ApplyOutcome
from bot.wording.apply import verify_lines

CHECKLIST: tuple[tuple[str, str], ...] = (
    ("root-cause", "Root cause fixed, not only the symptom"),
    ("minimal-fix", "Minimal, architecture-compatible fix applied"),
    ("verify", "Post-fix verify completed: health, status, updates/health"),
    ("runbook", "Runbook updated if a new edge case was found"),
    ("prevention", "Prevention gate added or updated against a recurrence"),
)
"""The runbook's final checklist (section 10), item by item: (value, text)."""

HEALTHY = {"health": "healthy", "status": "active"}
"""The status a verify check's job ends with when it passed (`run()`'s return value)."""

BOOKKEEPING = (EventKind.JOB_QUEUED, EventKind.JOB_STARTED, EventKind.THREAD)
"""Events a short summary leaves out: the steps of each job, not what happened."""

OUTPUT_CHARS = 1500
"""How much of each output and report (its end) the postmortem shows."""


@dataclass(frozen=True)
class VerifyResult:
    """One verify the timeline holds: a fix's own verify, or the last `health` / `status`."""

    what: str
    at: float
    ok: bool
    detail: str
    before_fix: bool = False  # a check older than the last fix's verify: shown, not counted


def last_verify(events: Sequence[Event]) -> tuple[VerifyResult, ...]:
    """The last fix verify, and the last `health` and `status` results, as the timeline recorded them."""
    results: list[VerifyResult] = []
    verify = next((e for e in reversed(events) if e.kind is EventKind.VERIFY), None)
    if verify is not None:
        outcome = _outcome(verify.get("outcome", ""))
        checks = "; ".join(line.split(" ", 1)[-1] for line in verify_lines(verify.get("facts") or {}, outcome))
        results.append(
            VerifyResult(
                f"`fix {verify.get('fix')}` (plan {verify.get('plan')})",
                verify.at,
                outcome is ApplyOutcome.VERIFIED,
                f"{outcome.value}" + (f": {checks}" if checks else ""),
            )
        )
    reports = {e.get("job"): e for e in events if e.kind is EventKind.CHECK}
    for command, healthy in HEALTHY.items():
        finished = next(
            (e for e in reversed(events) if e.kind is EventKind.JOB_FINISHED and e.get("command") == command), None
        )
        if finished is None:
            continue
        report = reports.get(finished.get("job"))
        first_line = (report.get("text", "") if report else "").strip().splitlines()[:1]
        detail = first_line[0] if first_line else str(finished.get("status"))
        before_fix = verify is not None and finished.at < verify.at
        results.append(VerifyResult(f"`{command}`", finished.at, finished.get("status") == healthy, detail, before_fix))
    return tuple(results)


def verified(results: Sequence[VerifyResult]) -> bool:
    """The post-fix verify passed: every result since the last fix passed (and there is one)."""
    counted = [r for r in results if not r.before_fix]
    return bool(counted) and all(r.ok for r in counted)


def checked(events: Sequence[Event]) -> tuple[str, ...]:
    """The checklist items ticked, as the last checklist event left them."""
    last = next((e for e in reversed(events) if e.kind is EventKind.CHECKLIST), None)
    return tuple(last.get("checked") or ()) if last else ()


def line(event: Event) -> str:
    """One event in a few words (no who or when: the caller shows them its own way)."""
    d, kind = event.details, event.kind
    words = {
        EventKind.OPENED: lambda: f"opened: {d.get('title')}",
        EventKind.THREAD: lambda: "thread posted",
        EventKind.COMMAND: lambda: f"asked for `{d.get('command')}` ({d.get('source')})",
        EventKind.REFUSED: lambda: f"`{d.get('command')}` refused: {d.get('reason')}",
        EventKind.JOB_QUEUED: lambda: (
            f"`{d.get('command')}` queued" + (f", position {d['position']}" if d.get("position") else "")
        ),
        EventKind.JOB_STARTED: lambda: f"`{d.get('command')}` started",
        EventKind.JOB_FINISHED: lambda: (
            f"`{d.get('command')}` {d.get('state')} in {d.get('duration_s', 0):.1f} s: {d.get('status')}"
        ),
        EventKind.RUN_COMMAND: lambda: (
            f"run-command `{d.get('script')}`: exit {d.get('exit_code')}, {d.get('duration_s', 0):.1f} s"
        ),
        EventKind.DIAGNOSIS: lambda: f"Fast Branching → {d.get('section')} {d.get('title')}",
        EventKind.PLAN: lambda: (
            f"plan {d['plan']} for `fix {d.get('fix')}`"
            if d.get("plan")
            else f"`{d.get('fix')}`: no plan ({d.get('reason') or 'nothing to fix'})"
        ),
        EventKind.APPROVAL: lambda: f"approved plan {d.get('plan')} ({d.get('source')})" + _counted(d),
        EventKind.REJECTION: lambda: f"rejected plan {d.get('plan')} ({d.get('source')})",
        EventKind.EXPIRY: lambda: f"plan {d.get('plan')} expired ({d.get('source')})",
        EventKind.SUPERSEDED: lambda: f"plan {d.get('plan')} superseded by {d.get('by')}",
        EventKind.IGNORED: lambda: f"a decision on plan {d.get('plan')} did not count",
        EventKind.APPLY: lambda: f"apply of plan {d.get('plan')} (`{d.get('fix')}`) started",
        EventKind.VERIFY: lambda: f"apply of plan {d.get('plan')}: {d.get('outcome')}",
        EventKind.APPLY_FAILED: lambda: f"apply of plan {d.get('plan')} did not finish: {d.get('reason')}",
        EventKind.FILE: lambda: f"file {d.get('filename')} ({d.get('chars')} characters)",
        EventKind.CLOSED: lambda: f"resolved; root cause: {d.get('root_cause')}",
        EventKind.CHECKLIST: lambda: f"checklist: {len(d.get('checked') or ())} of {len(CHECKLIST)} ticked",
        EventKind.EXPORT: lambda: f"postmortem exported (chain head {str(d.get('head'))[:12]}…)",
        EventKind.ROLLUP: lambda: rolled_up(d),
    }.get(kind)
    if words is not None:
        return words()
    first = str(d.get("text", "")).strip().splitlines()[:1]  # a report, a note, an error: its first line
    return render.cut(first[0], 200) if first else kind.value


def _counted(details: dict) -> str:
    """`: 1 of 2 approvals, waits for more` for a plan that needs several approvers ('' for one)."""
    needed = int(details.get("needed") or 1)
    if needed <= 1:
        return ""
    done = "approved" if int(details.get("approvals") or 0) >= needed else "waits for more"
    return f": {details.get('counted')} approvals, {done}"


ROLLED_UP_NOUNS = {
    "command": "commands",
    "refused": "refusals",
    "job-queued": "jobs queued",
    "job-started": "jobs started",
    "job-finished": "jobs finished",
    "run-command": "run-commands",
    "check": "reports",
    "diagnosis": "diagnoses",
    "note": "notes",
    "error": "errors",
    "file": "files",
    "ignored": "ignored decisions",
}
"""How a roll-up names the events it counted, by kind."""


def rolled_up(details: dict) -> str:
    """A roll-up event: `12 more commands (`health`), 12 more reports (`health`)`."""
    parts = [
        f"{c.get('count')} more {ROLLED_UP_NOUNS.get(c.get('kind'), c.get('kind'))}"
        + (f" (`{c['what']}`)" if c.get("what") else "")
        for c in details.get("counts") or ()
    ]
    return f"past the cap, counted not kept: {', '.join(parts) or 'none'}"


def markdown(incident: Incident, events: Sequence[Event], permalink: str) -> str:
    """The postmortem: summary, timeline, commands, what the VM said, plans and diffs, verify
    results, checklist and root cause; it ends with the chain head it was made from."""
    out = [f"# {incident.id}: {incident.title}", ""]
    out += ["| | |", "|---|---|"]
    rows = [
        ("Status", incident.status.value),
        ("Channel", incident.channel),
        ("Thread", permalink or "(no link)"),
        ("Opened", f"{_utc(incident.opened_at)} by {incident.opened_by}"),
    ]
    if incident.closed_at:
        rows.append(("Resolved", f"{_utc(incident.closed_at)} by {incident.closed_by}"))
        rows.append(("Duration", render.duration(incident.duration_s or 0)))
    rows.append(("Runbook sections", ", ".join(incident.sections) or "none"))
    rows.append(("Root cause", incident.root_cause or "(open)"))
    out += [f"| {name} | {_cell(value)} |" for name, value in rows]

    out += ["", "## Timeline", "", "| # | time (UTC) | who | event |", "|---|---|---|---|"]
    out += [f"| {e.seq} | {_utc(e.at, seconds=True)} | {e.who or 'nexy'} | {_cell(line(e))} |" for e in events]

    out += ["", "## Commands", ""]
    finished = {e.get("job"): e for e in events if e.kind is EventKind.JOB_FINISHED}
    for e in events:
        if e.kind is EventKind.COMMAND:
            out.append(f"- {_utc(e.at, seconds=True)} {e.who}: `{e.get('command')}` ({e.get('source')})")
    if finished:
        out += ["", "Jobs:", ""]
        out += [f"- {_utc(e.at, seconds=True)} {line(e)}" for e in finished.values()]

    out += ["", "## What the VM said (run-commands, the end of each output)", ""]
    runs = [e for e in events if e.kind is EventKind.RUN_COMMAND]
    for e in runs:
        out += [
            f"### {_utc(e.at, seconds=True)} `{e.get('script')}` (exit {e.get('exit_code')}, "
            f"{e.get('duration_s', 0):.1f} s, {e.get('executor')})",
            "",
        ]
        out += _block(str(e.get("output") or ""), "text")
    if not runs:
        out.append("No run-command ran for this incident.")

    out += ["", "## Reports", ""]
    for e in events:
        if e.kind in (EventKind.CHECK, EventKind.DIAGNOSIS, EventKind.ERROR):
            out += [f"### {_utc(e.at, seconds=True)} {e.kind.value}: {e.get('command') or line(e)}", ""]
            out += _block(str(e.get("text") or line(e)), "text")

    out += ["", "## Plans and diffs", ""]
    plans = [e for e in events if e.kind is EventKind.PLAN]
    for e in plans:
        out += [f"### {_utc(e.at, seconds=True)} {line(e)} (asked by {e.who})", ""]
        if e.get("diff"):
            out += _block("\n".join(e.get("diff")), "diff")
        decisions = [d for d in events if d.get("plan") == e.get("plan") and d.kind is not EventKind.PLAN]
        out += [f"- {_utc(d.at, seconds=True)} {d.who or 'nexy'}: {line(d)}" for d in decisions if e.get("plan")]
        out.append("")
    if not plans:
        out.append("No fix was planned.")

    out += ["", "## Verify results", ""]
    for e in events:
        if e.kind is EventKind.VERIFY:
            out += [f"### {_utc(e.at, seconds=True)} {line(e)}", ""]
            out += _block(str(e.get("text") or ""), "text")
    results = last_verify(events)
    out += ["Last verify results:", ""]
    out += [
        f"- {'passed' if r.ok else 'FAILED'}: {r.what} at {_utc(r.at)}: {r.detail}"
        + (" (before the fix: not counted)" if r.before_fix else "")
        for r in results
    ]
    if not results:
        out.append("- none recorded")

    ticked = checked(events)
    out += ["", "## Final checklist (runbook 10)", ""]
    out += [f"- [{'x' if value in ticked else ' '}] {text}" for value, text in CHECKLIST]

    out += _learned(incident, events)

    out += ["", "## Root cause", "", incident.root_cause or "Not yet named: the incident is open.", ""]
    head = events[-1].hash if events else ""
    out += [
        "---",
        f"Timeline: {len(events)} events, hash-chained (SHA-256). Chain head: `{head}`",
        f"Check it: `nexy audit verify {incident.id} --head {head}`",
        "",
    ]
    return "\n".join(out)


def _outcome(value: str) -> ApplyOutcome:
    try:
        return ApplyOutcome(value)
    except ValueError:
        return ApplyOutcome.UNKNOWN


def _utc(ts: float, seconds: bool = False) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _block(text: str, language: str) -> list[str]:
    body = render.tail(text.strip(), OUTPUT_CHARS).replace("```", "ˋˋˋ") or "(empty)"
    return [f"```{language}", body, "```", ""]


def _learned(incident: Incident, events: Sequence[Event]) -> list[str]:
    """Runbook 10, "runbook updated": each symptom proposed at close as a runbook item stub and its test."""
    offered = next((e for e in reversed(events) if e.kind is EventKind.NOTE and e.get("learn")), None)
    if offered is None:
        return []
    out = ["", "## Runbook updated: proposed symptoms", ""]
    out.append("Journal lines that matched no declared symptom. Choose each one's section, title and fix, then commit:")
    for raw in offered.get("learn"):
        proposal = learn.Proposal(str(raw.get("line", "")), str(raw.get("pattern", "")))
        name = learn.module_name(proposal.pattern)
        out += ["", f"### `{proposal.pattern}`", "", f"`runbook/{name}.py`:", ""]
        out += _block(learn.item_stub(proposal, incident.id, offered.get("sections") or ()), "python")
        out += [f"`tests/runbook/test_{name}.py`:", ""]
        out += _block(learn.stub_test(proposal, incident.id), "python")
    return out
