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
    from jobs.azure_check import AzureReport
    from jobs.deploy_check import DeployReport
    from jobs.health import HealthReport
    from jobs.release_check import ReleaseReport

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


# -- run-commands on the VM (runbook 0.1, 5, 6.4) ------------------------------------------

def ran_on_vm(user: str, words: str, duration_s: float) -> str:
    return f"<@{user}> asked for `{words}` · one run-command on the VM, {duration_s:.1f} s"


def conflict_waiting(script: str, delay_s: float, waited_s: float) -> str:
    return (f":hourglass: The VM is busy with another run-command (runbook 6.4: "
            f"_Run command extension execution is in progress_). `{script}` tries again in {delay_s:g} s"
            f" (waited {waited_s:g} s so far).")


def conflict_cleared(script: str, waited_s: float) -> str:
    return f":white_check_mark: The run-command channel is free again; `{script}` ran after waiting {waited_s:g} s (runbook 6.4)."


def conflict_gave_up(script: str, waited_s: float) -> str:
    return (f":x: The VM stayed busy with another run-command for {waited_s:g} s; `{script}` was not run. "
            "Nothing changed on the VM. Check who is running commands on it (Azure portal → VM → Run command), "
            "then try again.")


def script_incomplete(result) -> tuple[str, Blocks]:
    """A script that failed (a named step, exit code) or never reported (no result line)."""
    if result.exit_code is None:
        text = (f":warning: `{result.script}` did not report a result: the script was stopped or its output was lost. "
                "What it printed is below; treat the VM state as unknown and run `/nexy status`.")
    else:
        step = result.facts.get("failed_command", "a step")
        text = (f":x: `{result.script}` failed (exit {result.exit_code}) at `{step}`. "
                "Its output is below; nothing after that step ran.")
    return text, [render.section(text), render.section(render.code(render.tail(result.output, 2800)))]


def preflight_report(checks: list[tuple[str, bool, str]]) -> tuple[str, Blocks]:
    failed = [c for c in checks if not c[1]]
    if failed:
        headline = f":red_circle: *Preflight (runbook 0.1)*: {len(failed)} of {len(checks)} guardrails fail: no restart is allowed until they pass."
    else:
        headline = f":large_green_circle: *Preflight (runbook 0.1)*: all {len(checks)} guardrails pass; a restart is allowed."
    lines = []
    for description, passed, detail in checks:
        mark = ":white_check_mark:" if passed else ":x:"
        lines.append(f"{mark} {description}" + (f" ({detail})" if detail else ""))
    return headline.replace("*", ""), [render.section(headline), render.section("\n".join(lines))]


def status_report(service: str, active: str, since: str, symptoms: list[tuple[str, str, str, str]],
                  output: str) -> tuple[str, Blocks]:
    icon = ":large_green_circle:" if active == "active" else ":red_circle:"
    headline = f"{icon} *Status (runbook 5)*: `{service}` is *{active}*" + (f" since {since}" if since and active == "active" else "") + "."
    blocks = [render.section(headline)]
    if symptoms:
        section, title, line, next_step = symptoms[0]
        blocks.append(render.section(
            f":mag: *Fast Branching → {section} {title}*\n> {render.cut(line, 500)}\nNext: `{next_step}`"))
        for other in symptoms[1:]:
            blocks.append(render.context(f"Also seen: {other[0]} {other[1]}"))
    elif active != "active":
        blocks.append(render.section("No runbook signature in the journal: resolve the primary error below, then `/nexy restart`."))
    blocks.append(render.section(render.code(render.tail(output, 2800))))
    return headline.replace("*", ""), blocks


# -- the VM queue ---------------------------------------------------------------------------

def queue_position(words: str, position: int, running: str | None) -> str:
    ahead = f"`{running}` is running" if running else "a command is running"
    return (f":hourglass_flowing_sand: `{words}` waits for the VM: position {position} in its queue "
            f"({ahead}; run-commands run one at a time).")


def queue_listing(vm: str, running: dict | None, waiting: list, now: float) -> tuple[str, Blocks]:
    lines = [f"*Run-command queue for `{vm}`*"]
    if running:
        age = max(0, int(now - running.get("since", now)))
        lines.append(f":arrow_forward: running: `{running['words']}` ({running['incident']}, <@{running['user']}>) for {age} s")
    else:
        lines.append(":white_circle: nothing running")
    for n, item in enumerate(waiting, 1):
        age = max(0, int(now - item.requested_at))
        lines.append(f"{n}. `{item.words}` ({item.incident}, <@{item.user}>), waiting {age} s")
    if not waiting:
        lines.append("nothing waiting")
    text = "\n".join(lines)
    return text.replace("*", ""), [render.section(text)]


# -- checks outside the VM: Azure access (runbook 1), deploy (2), release (7-9) -----------------
# The reports come from jobs/azure_check.py, jobs/deploy_check.py and jobs/release_check.py.
# Careful with wording: `NAME: value` where NAME looks secret (…_CREDENTIALS, …TOKEN, Secret) is
# redacted on the way out, so those names are never followed by a colon here.

_RUN_COMMAND_ROLE = ("*Virtual Machine Contributor* on the VM, or a custom role with "
                     "`Microsoft.Compute/virtualMachines/runCommand/action`")


def _utc_time(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "unknown time"


def _link(url: str | None, label: str) -> str:
    return f"<{url}|{label}>" if url else label


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 100_000 else f"{n:,} bytes"


def _listed(items, limit: int = 6) -> str:
    items = list(items)
    shown = ", ".join(f"`{i}`" for i in items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def github_check_failed(title: str, section: str, reason: str) -> tuple[str, Blocks]:
    headline = f":x: *{title} (runbook {section})* could not finish. {reason}"
    return headline.replace("*", ""), [render.section(headline)]


def _run_label(run) -> str:
    return _link(run.html_url, f"run #{run.run_number}")


def _skip_reason(r: DeployReport) -> str:
    reason, detail = r.skip, r.skip_detail
    push = r.triggers.push if r.triggers else None
    if reason in ("paths", "paths-ignore") and push is not None and r.changes.basis == "since-run":
        since = f"no change under the trigger paths since the last deploy run (`{r.changes.base_sha[:7]}`): "
        if reason == "paths":
            return since + f"{_changed_since(r.changes)}, none matching the paths filter {_listed(push.paths or ())}"
        return since + f"{_changed_since(r.changes)}, all under paths-ignore {_listed(push.paths_ignore or ())}"
    if reason == "paths" and push is not None:
        if not r.head.files:
            return f"it changes no file, so nothing matches the paths filter {_listed(push.paths or ())}"
        return f"it changes only {_listed(r.head.files)}, none matching the paths filter {_listed(push.paths or ())}"
    if reason == "paths-ignore" and push is not None:
        return f"every file it changes is under paths-ignore {_listed(push.paths_ignore or ())}"
    if reason == "branch" and push is not None:
        if push.branches is not None:
            return f"branch `{r.branch}` is not in the push filter {_listed(push.branches)}"
        return f"branch `{r.branch}` is in branches-ignore {_listed(push.branches_ignore or ())}"
    if reason == "skip-marker":
        return f"its message holds `{detail}`, which skips push workflows"
    if reason == "tags-only":
        return "the workflow runs on tag pushes only"
    return f"the workflow has no push trigger (it runs on {detail or 'nothing'})"


def _commits(n: int) -> str:
    """`1 commit changes` / `2 commits change`: the subject and its verb."""
    return f"{n} commit changes" if n == 1 else f"{n} commits change"


def _changed_since(c) -> str:
    """What the commits since the last deploy run changed: `the 2 commits since change only `a`, `b``."""
    n, verb = _commits(c.commits).rsplit(" ", 1)
    if not c.files:
        return f"the {n} since {verb} no file"
    if c.capped:
        return f"the {n} since {verb} at least {len(c.files)} files (GitHub lists no more): {_listed(c.files)}"
    return f"the {n} since {verb} only {_listed(c.files)}"


def _since_run_line(r: DeployReport) -> str:
    """The detail line for the changes since the last deploy run, with those the paths filter selects."""
    c, least = r.changes, ("at least " if r.changes.capped else "")
    line = (f"*Since the last deploy run* ({_link(c.html_url, f'{c.base_sha[:7]}...{r.head.sha[:7]}')}) "
            f"{c.commits} commit{'' if c.commits == 1 else 's'} changed {least}{len(c.files)} "
            f"file{'' if len(c.files) == 1 else 's'}: "
            f"{_listed(c.files) or 'none'}")
    if r.matched_files and r.triggers and r.triggers.push and r.triggers.push.paths is not None:
        line += f"; matching the paths filter: {least}{_listed(r.matched_files)}"
    return line


def deploy_report(r: DeployReport) -> tuple[str, Blocks]:
    file_name = r.workflow.path.rsplit("/", 1)[-1]
    sha = f"`{r.head.sha[:7]}`"
    run = r.run_for_head
    verdict = r.verdict
    if verdict == "deployed":
        icon, line = ":large_green_circle:", f"{sha} on `{r.branch}` is deployed: {_run_label(run)} succeeded."
    elif verdict == "running":
        icon, line = ":large_blue_circle:", f"the deploy of {sha} is *{run.status}*: {_run_label(run)}."
    elif verdict == "failed":
        icon, line = ":red_circle:", f"the deploy of {sha} ended in *{run.conclusion}*: {_run_label(run)}."
    elif verdict == "not-triggered":
        since = ""
        if r.changes.basis == "since-run" and r.matched_files:
            n, verb = _commits(r.changes.commits).rsplit(" ", 1)
            since = (f" (the {n} since the last deploy run (`{r.changes.base_sha[:7]}`) {verb} "
                     f"{'at least ' if r.changes.capped else ''}{_listed(r.matched_files)} under the trigger paths)")
        icon, line = ":red_circle:", (f"*not triggered*: {sha} on `{r.branch}` matches the workflow's trigger{since}, "
                                      f"but `{file_name}` has no run for it.")
    elif verdict == "not-expected":
        if r.changes.basis == "since-run" and r.skip in ("paths", "paths-ignore"):
            icon, line = ":white_circle:", f"{sha} on `{r.branch}`: correctly not deployed: {_skip_reason(r)}."
        else:
            icon, line = ":white_circle:", (f"{sha} on `{r.branch}` is outside the workflow's trigger "
                                            f"({_skip_reason(r)}): correctly not deployed.")
        if r.latest_run:
            last = r.latest_run
            icon = ":large_green_circle:" if last.conclusion == "success" else ":large_orange_circle:"
            line += (f" The last deploy, {_run_label(last)} of `{last.head_sha[:7]}`, "
                     f"{'succeeded' if last.conclusion == 'success' else 'is ' + (last.conclusion or last.status)}.")
    elif verdict == "disabled":
        icon, line = ":red_circle:", f"`{file_name}` is *disabled* ({r.workflow.state}): no push deploys."
    else:
        problem = r.yaml_error or _skip_reason(r)
        icon, line = ":red_circle:", f"`{file_name}` cannot start a deploy on push: {problem}."
    if r.secret_present is False:
        icon = ":red_circle:"
        line += " The `AZURE_CREDENTIALS` secret is *missing*."
    headline = f"{icon} *Deploy (runbook 2)*: {line}"

    details = [f"*Workflow* {_link(r.workflow.html_url, r.workflow.name)} (`{r.workflow.path}` in `{r.repo}`), "
               f"{r.workflow.state}"]
    if r.triggers is not None and r.triggers.push is not None:
        push = r.triggers.push
        parts = [f"push to {_listed(push.branches) if push.branches is not None else 'any branch'}"]
        if push.branches_ignore:
            parts.append(f"except branches {_listed(push.branches_ignore)}")
        if push.paths is not None:
            parts.append(f"paths {_listed(push.paths)}")
        if push.paths_ignore:
            parts.append(f"ignoring paths {_listed(push.paths_ignore)}")
        others = [e for e in r.triggers.events if e != "push"]
        if others:
            parts.append("also " + _listed(others))
        details.append("*Triggers* " + " · ".join(parts))
    elif r.triggers is not None:
        details.append("*Triggers* " + _listed(r.triggers.events) + " (no push)")
    else:
        details.append(f"*Triggers* unreadable: {r.yaml_error}")
    head = r.head
    commit_line = (f"*Latest commit on `{r.branch}`* {_link(head.html_url, head.sha[:7])} "
                   f"“{render.cut(head.title, 120)}” by {head.author}, {_utc_time(head.date)}\n"
                   f"changes {_listed(head.files) or 'no files'}")
    if r.changes.basis == "since-run":
        details.append(commit_line)
        details.append(_since_run_line(r))
    else:
        if r.matched_files and r.triggers and r.triggers.push and r.triggers.push.paths is not None:
            commit_line += f"; matching the paths filter: {_listed(r.matched_files)}"
        details.append(commit_line)
    if r.changes.note:
        details.append(f":information_source: {r.changes.note}.")
    if r.latest_run is None:
        details.append(f"*Latest deploy run on `{r.branch}`* none")
    else:
        last = r.latest_run
        state = last.status if last.status != "completed" else f"completed, {last.conclusion}"
        suffix = "" if last.head_sha == head.sha else " (not the latest commit)"
        details.append(f"*Latest deploy run on `{r.branch}`* {_run_label(last)} for `{last.head_sha[:7]}`{suffix}: "
                       f"{state} ({last.event}, {_utc_time(last.created_at)})")
    if r.secret_present is True:
        details.append(":white_check_mark: The `AZURE_CREDENTIALS` secret exists (checked by name; values are never readable).")
    elif r.secret_present is False:
        details.append(f":x: The `AZURE_CREDENTIALS` secret is not among the Actions secrets of `{r.repo}`.")
    else:
        details.append(f":grey_question: Could not check the `AZURE_CREDENTIALS` secret. {r.secret_note}")

    fixes = _deploy_fixes(r, file_name)
    blocks = [render.section(headline), render.section("\n".join(details))]
    if fixes:
        blocks.append(render.section("*Fix (runbook 2)*\n" + "\n".join(fixes)))
    if verdict != "deployed" or r.secret_present is False:
        blocks.append(render.context("Verify (runbook 2): the workflow goes to `in_progress`/`success`; "
                                     "`/nexy deploy` shows it."))
    return headline.replace("*", ""), blocks


def _deploy_fixes(r: DeployReport, file_name: str) -> list[str]:
    fixes = []
    dispatch = r.triggers is not None and r.triggers.dispatch
    run_by_hand = f"`gh workflow run {file_name} -R {r.repo} --ref {r.branch}`"
    if r.secret_present is False:
        fixes.append(f"• *Verify AZURE_CREDENTIALS secret*: add the service principal JSON as an Actions secret "
                     f"(`gh secret set AZURE_CREDENTIALS -R {r.repo} < sp.json`), then re-run the deploy.")
    verdict = r.verdict
    if verdict == "not-triggered":
        qualifies = ("the changes since the last deploy run qualify" if r.changes.basis == "since-run"
                     else "the commit qualifies")
        line = (f"• *Push changes to target branch/path*: {qualifies}, so GitHub did not start the run: "
                f"check that Actions is enabled for `{r.repo}` and `{r.workflow.path}` is valid on `{r.branch}`, "
                "then push again")
        fixes.append(line + (f", or start it now: {run_by_hand}." if dispatch else "."))
    elif verdict == "not-expected":
        line = f"• Nothing to fix if `{r.head.sha[:7]}` should not deploy. To deploy: *Push changes to target branch/path*"
        push = r.triggers.push if r.triggers else None
        if r.skip == "paths" and push is not None and push.paths:
            line += f" (a change matching {_listed(push.paths)} on `{r.branch}`)"
        elif r.skip == "skip-marker":
            line += f" (a commit without `{r.skip_detail}`)"
        fixes.append(line + (f", or {run_by_hand}." if dispatch else "."))
    elif verdict == "failed":
        fixes.append(f"• Open {_run_label(r.run_for_head)} and read the first failing step.")
        if r.secret_present is not False:
            fixes.append("• If it failed at `Azure login`: *Verify AZURE_CREDENTIALS secret* "
                         "(the service principal's client secret may have expired).")
    elif verdict == "disabled":
        fixes.append(f"• Enable it: `gh workflow enable {file_name} -R {r.repo}`, then push or {run_by_hand}.")
    elif verdict == "invalid":
        fixes.append(f"• Verify trigger config in workflow: `{r.workflow.path}` needs `on: push` with "
                     f"`branches: [{r.branch}]` (and the paths that should deploy).")
    return fixes


def release_report(r: ReleaseReport) -> tuple[str, Blocks]:
    problems = []
    if r.release is None:
        problems.append(f"release `{r.tag}` is not on `{r.repo}`")
    if r.release is not None and r.missing_assets:
        problems.append(f"`{r.tag}` lacks {_listed(r.missing_assets)}")
    if r.unfinished_assets:
        problems.append(f"the upload of {_listed(r.unfinished_assets)} did not finish")
    if r.mismatched:
        problems.append(f"manifest.json {r.manifest_where} does not match the release: "
                        + _listed((f.field for f in r.mismatched), 10)
                        + (" differ" if len(r.mismatched) > 1 else " differs"))
    if r.manifest_error:
        problems.append(f"manifest.json {r.manifest_where} could not be read ({r.manifest_error})")
    release_name = (f" ({r.release_version} build {r.release_build})"
                    if r.release_version and r.release_build else "")
    if problems:
        icon = ":red_circle:" if r.release is None or r.missing_assets or r.mismatched else ":large_orange_circle:"
        headline = f"{icon} *Release (runbook 7-9)*: " + "; ".join(problems) + "."
    else:
        compared = ", ".join(f"`{f.field}`" for f in r.fields if f.ok)
        headline = (f":large_green_circle: *Release (runbook 7-9)*: `{r.tag}`{release_name} has "
                    f"{_listed(a.name for a in r.release.assets)}, and manifest.json {r.manifest_where} matches it ({compared}).")

    details = []
    if r.release is not None:
        rel = r.release
        states = (f"states {r.release_version or 'no version'} build {r.release_build or '?'}"
                  if r.release_version or r.release_build else "states no version or build")
        details.append(f"*Release* {_link(rel.html_url, rel.tag)} “{rel.name}” on `{r.repo}`, "
                       f"published {_utc_time(rel.published_at)}; {states}")
        lines = []
        for asset in rel.assets:
            mark = ":white_check_mark:" if asset.state == "uploaded" else ":warning:"
            state = "" if asset.state == "uploaded" else f", upload *{asset.state}* (unfinished)"
            lines.append(f"{mark} `{asset.name}` {_size(asset.size)}, updated {_utc_time(asset.updated_at)}{state}")
        for name in r.missing_assets:
            lines.append(f":x: `{name}` missing")
        details.append("*Assets*\n" + ("\n".join(lines) or "none"))
    else:
        details.append(f"*Release* {r.release_missing}")
    if r.manifest_error:
        details.append(f"*manifest.json* {r.manifest_source}: {r.manifest_error}")
    elif r.fields:
        rows = []
        for f in r.fields:
            if f.ok:
                rows.append(f":white_check_mark: `{f.field}` {render.cut(f.manifest or '', 200)}")
            elif f.ok is None:
                rows.append(f":grey_question: `{f.field}` manifest {f.manifest}; the release states none")
            elif f.release is None:
                rows.append(f":x: `{f.field}` manifest `{f.manifest}`; the release has no such asset")
            else:
                rows.append(f":x: `{f.field}` manifest `{f.manifest}`, release `{f.release}`")
        details.append(f"*manifest.json* {r.manifest_source}, field by field\n" + "\n".join(rows))
    if r.manifest_fallback:
        details.append(f":warning: This is the server repository's copy, not the one deployed on the VM: "
                       f"{r.manifest_fallback}.")
    blocks = [render.section(headline), render.section("\n\n".join(details))]

    if r.release is None or r.missing_assets or r.unfinished_assets:
        blocks.append(render.section(
            "*Fix (runbook 7, 8)*, on the release machine (the publish script does not run in the bot): put "
            "`Nexy.dmg` and/or `Nexy.pkg` in `release_inbox`, try it, publish, and check:\n"
            + render.code(_publish_commands(r, inbox=True))
            + "\nIf the upload fails with 401/403: `gh auth status`, then `gh auth login` (runbook 8)."))
    elif r.mismatched or r.manifest_error:
        blocks.append(render.section(
            "*Fix (runbook 9)*, on the release machine (the publish script does not run in the bot): "
            "publish again so that manifest.json is rewritten from the release assets:\n"
            + render.code(_publish_commands(r, inbox=False))
            + (_vm_behind_hint(r) if r.manifest_on_vm and r.mismatched else "")))
    if problems:
        blocks.append(render.context("Verify (runbook 9): `artifact.url`/`version`/`build` in manifest.json match "
                                     "the release assets; `/nexy release` shows it."))
    return headline.replace("*", ""), blocks


def _vm_behind_hint(r: ReleaseReport) -> str:
    """When only the VM's copy is behind: the deploy (runbook 2) or the runtime version (runbook 4) is the fix."""
    target = f"{r.release_version}.{r.release_build}" if r.release_version and r.release_build else "X.Y.Z.Build"
    return ("\nIf the server repository's manifest.json already matches the release, the VM is behind it: "
            "check the deploy with `/nexy deploy` (runbook 2), or set the runtime version on the VM (runbook 4): "
            f"`bash scripts/update_server_version.sh {target}`.")


def _publish_commands(r: ReleaseReport, *, inbox: bool) -> str:
    lines = ["test -d release_inbox && ls -la release_inbox"] if inbox else []
    lines += ["python3 scripts/publish_assets_and_sync.py --dry-run",
              "python3 scripts/publish_assets_and_sync.py",
              f"gh release view {r.tag} -R {r.repo}"]
    return "\n".join(lines)


def azure_report(r: AzureReport) -> tuple[str, Blocks]:
    target = f"`{r.resource_group}/{r.vm_name}`"
    failure = r.failure
    if failure is None:
        state = f"the VM is *{r.power_state or 'in an unknown power state'}*, provisioning *{r.provisioning_state or 'unknown'}*"
        if r.healthy:
            headline = f":large_green_circle: *Azure access (runbook 1)*: {target} is readable; {state}."
        else:
            icon = ":red_circle:" if r.run_command is False else ":large_orange_circle:"
            headline = f"{icon} *Azure access (runbook 1)*: {target} is readable; {state}."
            if r.run_command is False:
                headline += " The identity may *not* run commands on it."
    else:
        reason = {
            "settings": "the bot cannot reach Azure as configured",
            "auth": "Azure refused the credential (401)",
            "forbidden": f"the identity may not read {target} (403)",
            "subscription": f"subscription `{r.subscription}` is not visible to this identity (404)",
            "resource-group": f"resource group `{r.resource_group}` is not in the subscription (404)",
            "vm": f"there is no VM {target} (404)",
            "unreachable": f"Azure Resource Manager did not answer at `{r.arm_url}`",
        }.get(failure.value, "Azure answered with an error")
        headline = f":red_circle: *Azure access (runbook 1)*: {reason}."

    accepted = {None: "accepted", "auth": "refused", "settings": "not tried"}.get(failure.value if failure else None,
                                                                                 "accepted")
    details = [f"*Credential type* {r.credential} · {accepted}",
               f"*Subscription* `{r.subscription or 'not set (AZURE_SUBSCRIPTION_ID)'}`",
               f"*VM* {target}" + (f" in {r.location}, {r.vm_size}" if r.location else "")]
    if failure is None:
        details.append(f"*Power state* {r.power_state or 'unknown'} · *Provisioning* {r.provisioning_state or 'unknown'}"
                       f" · *VM agent* {r.agent_status or 'not reported (Run Command needs it Ready)'}")
        if r.run_command is True:
            details.append(":white_check_mark: The identity holds `Microsoft.Compute/virtualMachines/runCommand/action` "
                           "on the VM: it may run commands.")
        elif r.run_command is False:
            details.append(f":x: The identity lacks `Microsoft.Compute/virtualMachines/runCommand/action`: it needs "
                           f"{_RUN_COMMAND_ROLE}.")
        else:
            details.append(f":grey_question: Run-command permission not verified ({r.permission_detail}). "
                           f"Run Command needs {_RUN_COMMAND_ROLE}; the first `/nexy status` proves it.")
    else:
        details.append(("*Configuration* " if failure.value == "settings" else "*Azure said* ") + r.detail)
    blocks = [render.section(headline), render.section("\n".join(details))]
    fix = _azure_fix(r)
    if fix:
        blocks.append(render.section("*Fix (runbook 1)*\n" + fix))
        blocks.append(render.context(f"Verify (runbook 1): `az vm show --resource-group {r.resource_group} "
                                     f"--name {r.vm_name} -o table` works; `/nexy azure` shows it."))
    return headline.replace("*", ""), blocks


def _azure_fix(r: AzureReport) -> str:
    failure = r.failure.value if r.failure else None
    assign = (f"`az role assignment create --assignee <principal-id> --role \"Virtual Machine Contributor\" "
              f"--scope <the VM's resource id>`")
    if failure == "auth":
        return ("• `az login`, then `az account set --subscription <SUBSCRIPTION_ID>`.\n"
                "• With AZURE_ACCESS_TOKEN set, get a fresh one (it lasts about an hour): "
                "`az account get-access-token --query accessToken -o tsv`.\n"
                "• Else DefaultAzureCredential: check AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET, "
                "or the host's managed identity.\n"
                f"• Once signed in, the identity needs {_RUN_COMMAND_ROLE}.")
    if failure == "forbidden" or (failure is None and r.run_command is False):
        return f"• Give the identity {_RUN_COMMAND_ROLE}: {assign}."
    if failure == "subscription":
        return ("• `az account list -o table`, then `az account set --subscription <SUBSCRIPTION_ID>`, "
                "and set AZURE_SUBSCRIPTION_ID to it.")
    if failure in ("resource-group", "vm"):
        return "• `az vm list -o table`: set AZURE_RESOURCE_GROUP and AZURE_VM_NAME to the Nexy VM."
    if failure == "settings":
        return "• Set what is named above (`.env.example` explains each variable), then restart the worker."
    if failure == "unreachable":
        return "• Check AZURE_ARM_URL and the worker's network access to it, then try again."
    return ""


# -- fixes: plan, approval, apply and verify (runbook 5, 6.1, 6.2) ----------------------------

APPROVE_REACTION = "white_check_mark"
REJECT_REACTION = "x"
APPROVE_REACTIONS = (APPROVE_REACTION, "heavy_check_mark")
REJECT_REACTIONS = (REJECT_REACTION,)


def _when(ts: float) -> str:
    """A Slack date token: each reader sees their own local time."""
    fallback = time.strftime("%H:%M UTC", time.gmtime(ts))
    return f"<!date^{int(ts)}^{{time}}|{fallback}>"


def fix_refused(words: str, reason: str, who: str) -> str:
    return f":no_entry: `{words}` was not queued: {reason}. Who can: {who} (NEXY_OPERATORS)."


def nothing_to_fix(fix) -> str:
    return (f":white_check_mark: *{fix.words}* (runbook {fix.section} {fix.title}): nothing to fix, the VM "
            "already has the wanted state. No approval needed.")


def plan_blocked(fix, reason: str) -> str:
    return f":no_entry: *{fix.words}* (runbook {fix.section} {fix.title}): no plan: {reason}"


def plan_message(plan, fix, assessment, commands: list[str], approvers: str, self_ok: bool) -> tuple[str, Blocks]:
    text = f":clipboard: Plan {plan.id}: {fix.words} (runbook {fix.section} {fix.title}) waits for approval"
    diff = "\n".join(assessment.diff)
    lines = [f":clipboard: *Plan {plan.id}: `{fix.words}`* (runbook {fix.section} {fix.title})",
             "*What will change*", render.code(diff)]
    lines.extend(f"_{note}_" for note in assessment.notes)
    blocks = [
        render.section("\n".join(lines)),
        render.section("*Commands, in one run-command*\n" + render.code("\n".join(commands))),
        render.context(
            f"Asked by <@{plan.requester}>. Approvers: {approvers}"
            + ("" if self_ok else " (not the requester)")
            + f". Expires {_when(plan.expires_at)}."),
        render.section(f"React with :{APPROVE_REACTION}: to approve or :{REJECT_REACTION}: to reject, or use the buttons."),
        render.actions(render.button("Approve", "plan_approve", plan.id, "primary"),
                       render.button("Reject", "plan_reject", plan.id, "danger"), block_id=f"plan-{plan.id}"),
    ]
    return text, blocks


def plan_decided(plan, fix, diff_lines: tuple[str, ...]) -> tuple[str, Blocks]:
    """The plan message after its decision: what it was, and who decided; no buttons left."""
    word = {"approved": ":white_check_mark: approved", "rejected": ":x: rejected",
            "expired": ":hourglass: expired", "superseded": ":leftwards_arrow_with_hook: superseded"}.get(
        plan.status, plan.status)
    by = f" by <@{plan.decided_by}>" if plan.decided_by and plan.status in ("approved", "rejected") else ""
    text = f"Plan {plan.id}: {fix.words}: {plan.status}{by}"
    diff = "\n".join(diff_lines)
    return text, [render.section(f":clipboard: *Plan {plan.id}: `{fix.words}`* (runbook {fix.section} {fix.title})"
                                 f" {word}{by} {_when(plan.decided_at or time.time())}\n{render.code(diff)}")]


def approval_refused(plan, reason: str, who: str) -> str:
    return (f":no_entry: Your reaction on plan {plan.id} does not count: {reason}. "
            f"Approvers: {who} (NEXY_APPROVERS).")


def plan_already(plan, status: str) -> str:
    by = f" by <@{plan.decided_by}>" if plan.decided_by else ""
    return f"Plan {plan.id} is already {status}{by}: nothing more to decide."


def plan_approved(plan, fix) -> str:
    return (f":white_check_mark: Plan {plan.id} (`{fix.words}`) approved by <@{plan.decided_by}>: "
            "apply and verify are queued for the VM (one run-command).")


def plan_rejected(plan, fix) -> str:
    return f":x: Plan {plan.id} (`{fix.words}`) rejected by <@{plan.decided_by}>. Nothing ran on the VM."


def plan_superseded(old, new, fix) -> str:
    return (f":leftwards_arrow_with_hook: Plan {old.id} (`{fix.words}`) is superseded by plan {new.id}, asked by "
            f"<@{new.requester}>: only the newest plan of a fix can be approved. Nothing ran for {old.id}.")


def plan_expired(plan, fix) -> str:
    return (f":hourglass: Plan {plan.id} (`{fix.words}`) expired {_when(plan.expires_at)} before anyone approved it. "
            f"Nothing ran on the VM. For a fresh plan: `/nexy {fix.words}`.")


_OUTCOMES = {
    "verified": ":large_green_circle: *Fixed and verified*",
    "stale": ":no_entry: *Refused: the VM changed since the plan*",
    "preflight_failed": ":red_circle: *Applied, but not restarted: the 0.1 preflight fails*",
    "verify_failed": ":red_circle: *Applied and restarted, but verify failed*",
    "failed": ":x: *A step of the apply failed*",
    "unknown": ":warning: *Result unknown*",
}


def apply_report(plan, fix, result, outcome: str, commands: list[str], settings) -> tuple[str, Blocks]:
    facts = result.facts
    headline = (f"{_OUTCOMES.get(outcome, _OUTCOMES['unknown'])}: plan {plan.id} `{fix.words}` "
                f"(runbook {fix.section}), approved by <@{plan.decided_by}>")
    blocks = [render.section(headline)]
    if outcome == "stale":
        blocks.append(render.section(
            f"The plan captured `{plan.fingerprint}`; the VM now has `{facts.get('before') or facts.get('before_sha') or 'something else'}`. "
            f"Nothing was changed. For a fresh plan: `/nexy {fix.words}`."))
    elif outcome == "unknown":
        blocks.append(render.section(
            "The apply script did not report a result (stopped, or its output was lost). "
            "Treat the VM state as unknown: run `/nexy status` and `/nexy preflight` before anything else."))
    elif outcome == "failed":
        blocks.append(render.section(
            f"`{facts.get('failed_command', 'a step')}` failed (exit {result.exit_code}); nothing after it ran.\n"
            + render.code(render.tail(result.output, 2500))))
    else:
        blocks.append(render.section("*What ran*\n" + render.code(result.stdout.strip() or "\n".join(commands))))
        after = facts.get("after")
        if after:
            before = plan.state.get("stat") or plan.state.get("execstart") or ""
            diff = f"- {_state_text(before)}\n+ {_state_text(after)}"
            blocks.append(render.section("*Diff on the VM* (read back after the change)\n" + render.code(diff)))
        checks = _verify_lines(facts, outcome)
        if checks:
            blocks.append(render.section("*Verify*\n" + "\n".join(checks)))
    blocks.append(render.section(_final_state(facts, outcome, fix, settings)))
    blocks.append(render.context(f"one run-command, {result.duration_s:.1f} s; exit code {result.exit_code}"))
    return headline.replace("*", ""), blocks


def _state_text(state: str) -> str:
    """`root:azureuser:640` (owner, group, mode as the scripts record them) as `owner root:azureuser  mode 640`."""
    parts = state.split(":")
    if len(parts) == 3 and parts[2].isdigit():
        return f"owner {parts[0]}:{parts[1]}  mode {parts[2]}"
    return state


def _verify_lines(facts: dict, outcome: str) -> list[str]:
    lines = []
    if outcome == "preflight_failed":
        failed = facts.get("pf_failed", "")
        lines.append(f":x: preflight guardrail `{failed}` fails: the service was not restarted")
        return lines
    if "verify_active" in facts:
        ok = facts["verify_active"] == "active"
        lines.append(f"{':white_check_mark:' if ok else ':x:'} `systemctl is-active`: {facts['verify_active']}")
    for key in sorted(k for k in facts if k.startswith("verify_health_")):
        state, _, url = facts[key].partition(" ")
        lines.append(f"{':white_check_mark:' if state == 'ok' else ':x:'} `curl {url}`: {state}")
    if "verify_journal" in facts:
        ok = facts["verify_journal"] == "clean"
        lines.append(f"{':white_check_mark:' if ok else ':x:'} journal since the restart: {facts['verify_journal']}")
    return lines


def _final_state(facts: dict, outcome: str, fix, settings) -> str:
    service = settings.nexy_service
    if outcome == "verified":
        return (f"*State*: `{service}` is active, every health endpoint answers, and the journal since the restart "
                "is free of the symptom. `/nexy health` checks it from outside.")
    if outcome == "stale":
        return "*State*: unchanged by this plan."
    if outcome == "preflight_failed":
        return (f"*State*: the change is applied (`{facts.get('after', '?')}`), `{service}` was *not* restarted "
                f"and is as it was. Next: `/nexy preflight` to see the failing guardrail, fix it, then `/nexy restart`.")
    if outcome == "failed":
        return ("*State*: partly changed: the steps before the failing one ran (see above). "
                "Next: `/nexy status` and `/nexy preflight`, then a fresh plan.")
    if outcome == "verify_failed":
        return (f"*State*: the change is applied (`{facts.get('after', 'see above')}`) and `{service}` was restarted, "
                f"but it is `{facts.get('verify_active', 'unknown')}`. Next: `/nexy status` for the journal, "
                "then the section it names.")
    return "*State*: unknown. Next: `/nexy status`, then `/nexy preflight`."


# -- failures of the work itself --------------------------------------------------------------

def job_interrupted(words: str, reason: str) -> str:
    return (f":warning: `{words}` did not finish: {reason}. If it was a run-command, it may still have run "
            "on the VM: treat the VM state as unknown and run `/nexy status`.")


def apply_interrupted(plan, reason: str) -> str:
    return (f":warning: The apply of plan {plan.id} (`{plan.fix}`) did not finish: {reason}. It may have run on "
            "the VM in part, so the VM state is unknown. Next: `/nexy status` and `/nexy preflight`, then a fresh "
            "plan if still needed.")


def decision_failed(reason: str) -> str:
    return f":warning: Your approval or rejection could not be processed: {reason}. Please react again."
