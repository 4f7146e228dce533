"""Runbook 2, GitHub Actions Deploy Not Triggered.

Reads, on NEXY_SERVER_REPO: the deploy workflow (NEXY_DEPLOY_WORKFLOW) and its trigger config
from the workflow YAML, the latest commit on NEXY_DEPLOY_BRANCH with the files it changed, the
workflow's runs (for that commit, and the latest), and whether the `AZURE_CREDENTIALS` Actions
secret exists (by name: the API never returns values). Then it says whether the commit should
have started a deploy (branch and paths filters, `[skip ci]`) and whether it did.

The paths filter is judged the way GitHub judges a push: on every file the push changed, not on
its head commit alone (a push of a server change and then a docs-only commit does start the
workflow). A push is not visible afterwards, so the check judges all the changes since the last
deploy run: when the head has no run, it compares the commit of the latest run of the workflow on
the branch (whatever its conclusion: a run that failed was still triggered) with the head
(GET /repos/{owner}/{repo}/compare/{base}...{head}). A change under the paths since then with no
run for the head is "not triggered"; none is "correctly not deployed". Without a previous run, or
when GitHub no longer has that run's commit (a force-push), it falls back to the head commit's
own files and says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from bot import render
from bot.context import Context
from bot.errors import GitHubError, GitHubNotFound, GitHubPermissionError
from bot.item import Route, check
from bot.wording import errors as error_wording
from clients.github_client import COMPARE_FILE_LIMIT, CommitInfo, GitHubClient, RunInfo, WorkflowInfo

DEPLOY_SECRET = "AZURE_CREDENTIALS"
"""The Actions secret the deploy workflow logs in to Azure with (runbook 2, Fix)."""

SKIP_MARKERS = ("[skip ci]", "[ci skip]", "[no ci]", "[skip actions]", "[actions skip]")
"""A push whose head commit message holds one of these starts no push or pull_request workflow."""

FAILED_CONCLUSIONS = ("failure", "cancelled", "timed_out", "startup_failure", "action_required")


class Verdict(str, Enum):
    """What the deploy check concludes about the latest commit on the deploy branch."""

    DEPLOYED = "deployed"  # a run for the commit succeeded
    RUNNING = "running"  # a run for the commit is queued or in progress
    FAILED = "failed"  # a run for the commit ended in failure (or was cancelled, timed out)
    NOT_TRIGGERED = "not-triggered"  # the commit matches the trigger, but no run exists for it
    NOT_EXPECTED = "not-expected"  # the commit is outside the trigger: correctly not deployed
    DISABLED = "disabled"  # the workflow is disabled in Actions
    INVALID = "invalid"  # the workflow YAML cannot be read, or it has no push trigger


class SkipReason(str, Enum):
    """Why the latest commit does not start the workflow on push."""

    NO_PUSH = "no-push"
    TAGS_ONLY = "tags-only"
    BRANCH = "branch"
    PATHS = "paths"
    PATHS_IGNORE = "paths-ignore"
    SKIP_MARKER = "skip-marker"


@dataclass(frozen=True)
class PushTrigger:
    """The `on: push` filters of a workflow; None means no filter of that kind."""

    branches: tuple[str, ...] | None = None
    branches_ignore: tuple[str, ...] | None = None
    paths: tuple[str, ...] | None = None
    paths_ignore: tuple[str, ...] | None = None
    tags_only: bool = False


@dataclass(frozen=True)
class Triggers:
    """The events a workflow runs on, and its push filters."""

    events: tuple[str, ...]
    push: PushTrigger | None

    @property
    def dispatch(self) -> bool:
        return "workflow_dispatch" in self.events


class Basis(str, Enum):
    """Which files the paths filter was judged on."""

    SINCE_RUN = "since-run"  # every file changed on the branch since the last deploy run's commit
    HEAD_COMMIT = "head-commit"  # the latest commit's own files


@dataclass(frozen=True)
class Changes:
    """The files the paths filter is judged on, and where they come from."""

    basis: Basis
    files: tuple[str, ...]
    capped: bool = False  # GitHub lists no more than these (300 files): there may be more
    base_sha: str | None = None  # the commit of the last deploy run
    commits: int = 0  # commits on the branch since base_sha (since the merge base when diverged)
    dropped: int = 0  # commits of base_sha that are no longer on the branch (diverged: force-pushed)
    merge_base: str | None = None
    html_url: str = ""  # the comparison on github.com
    note: str = ""  # why the head commit's files were judged instead, or what the comparison found


@dataclass(frozen=True)
class DeployReport:
    """Everything the deploy check found, and its verdict."""

    repo: str
    branch: str
    workflow: WorkflowInfo
    triggers: Triggers | None
    yaml_error: str | None
    head: CommitInfo
    changes: Changes
    skip: SkipReason | None
    skip_detail: str
    matched_files: tuple[str, ...]
    run_for_head: RunInfo | None
    latest_run: RunInfo | None
    secret_present: bool | None  # None: the token may not list secrets
    secret_note: str
    verdict: Verdict

    @property
    def healthy(self) -> bool:
        return (
            self.verdict in (Verdict.DEPLOYED, Verdict.RUNNING, Verdict.NOT_EXPECTED)
            and self.secret_present is not False
        )


# -- the workflow's trigger config ---------------------------------------------------------------


def parse_triggers(text: str) -> Triggers:
    """The `on:` section of a workflow YAML; raises ValueError when it cannot be read."""
    import yaml  # where used: declaring the item loads no YAML parser

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ValueError(f"the workflow YAML does not parse{where}") from None
    if not isinstance(doc, dict):
        raise ValueError("the workflow YAML is not a mapping")
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True.
    on = doc.get("on", doc.get(True))
    if on is None:
        raise ValueError("the workflow has no `on:` section")
    if isinstance(on, str):
        return Triggers((on,), PushTrigger() if on == "push" else None)
    if isinstance(on, list):
        names = tuple(str(e) for e in on)
        return Triggers(names, PushTrigger() if "push" in names else None)
    if not isinstance(on, dict):
        raise ValueError("the workflow's `on:` is neither an event, a list nor a mapping")
    events = tuple(str(e) for e in on)
    if "push" not in on:
        return Triggers(events, None)
    push = on["push"] or {}
    if not isinstance(push, dict):
        raise ValueError("the workflow's `on: push` is not a mapping")
    has_branches = "branches" in push or "branches-ignore" in push
    has_tags = "tags" in push or "tags-ignore" in push
    return Triggers(
        events,
        PushTrigger(
            branches=_patterns(push, "branches"),
            branches_ignore=_patterns(push, "branches-ignore"),
            paths=_patterns(push, "paths"),
            paths_ignore=_patterns(push, "paths-ignore"),
            # GitHub: with only tag filters, a push to a branch does not start the workflow.
            tags_only=has_tags and not has_branches,
        ),
    )


def _patterns(push: dict, key: str) -> tuple[str, ...] | None:
    if key not in push:
        return None
    value = push[key]
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value or ())


def glob_regex(pattern: str) -> re.Pattern[str]:
    """GitHub's filter pattern as a regex: `*` stops at `/`, `**` does not, `?`/`+` repeat the previous character."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c in "?+":
            out.append(c)
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
                i += 1
            else:
                out.append(pattern[i : end + 1])
                i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z")


def matches(value: str, patterns: tuple[str, ...]) -> bool:
    """Whether the value is selected by the patterns; a later `!pattern` takes a match back, as on GitHub."""
    selected = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if glob_regex(pattern[1:] if negated else pattern).match(value):
            selected = not negated
    return selected


def why_not_triggered(
    triggers: Triggers,
    branch: str,
    head: CommitInfo,
    files: tuple[str, ...] | None = None,
) -> tuple[SkipReason | None, str, tuple[str, ...]]:
    """(why a push of `head` to `branch` that changed `files` (default: the head commit's) starts no run, or None;
    a detail; the files that match the paths filter).

    As on GitHub, a paths or paths-ignore filter starts no run when no file changed at all."""
    push = triggers.push
    if push is None:
        return SkipReason.NO_PUSH, ", ".join(triggers.events), ()
    if push.tags_only:
        return SkipReason.TAGS_ONLY, "", ()
    if push.branches is not None and not matches(branch, push.branches):
        return SkipReason.BRANCH, ", ".join(push.branches), ()
    if push.branches_ignore is not None and matches(branch, push.branches_ignore):
        return SkipReason.BRANCH, "ignored: " + ", ".join(push.branches_ignore), ()
    lowered = head.message.lower()
    marker = next((m for m in SKIP_MARKERS if m in lowered), None)
    if marker:
        return SkipReason.SKIP_MARKER, marker, ()
    files = head.files if files is None else files
    if push.paths is not None:
        matched = tuple(f for f in files if matches(f, push.paths))
        if not matched:
            return SkipReason.PATHS, ", ".join(push.paths), ()
        return None, "", matched
    if push.paths_ignore is not None:
        kept = tuple(f for f in files if not matches(f, push.paths_ignore))
        if not kept:
            return SkipReason.PATHS_IGNORE, ", ".join(push.paths_ignore), ()
        return None, "", kept
    return None, "", tuple(files)


def _judged_on_paths(triggers: Triggers, skip: SkipReason | None) -> bool:
    """Whether the verdict turns on which files changed: a paths filter, and no earlier reason to skip."""
    push = triggers.push
    return (
        push is not None
        and (push.paths is not None or push.paths_ignore is not None)
        and skip in (None, SkipReason.PATHS, SkipReason.PATHS_IGNORE)
    )


def changes_since(
    client: GitHubClient, repo: str, workflow: WorkflowInfo, branch: str, head: CommitInfo, latest: RunInfo | None
) -> Changes:
    """The files changed on `branch` since the commit of the latest deploy run, or the head commit's own (and why)."""
    file_name = workflow.path.rsplit("/", 1)[-1]
    own = "judged on the latest commit's own files"
    if latest is None:
        return Changes(
            Basis.HEAD_COMMIT,
            head.files,
            note=(f"`{file_name}` has no run on `{branch}` yet, so there is no last deploy to compare with: {own}"),
        )
    base = latest.head_sha
    try:
        diff = client.compare(repo, base, head.sha)
    except GitHubNotFound:
        return Changes(
            Basis.HEAD_COMMIT,
            head.files,
            base_sha=base,
            note=(
                f"`{base[:7]}`, the commit of the last deploy run, is not on `{branch}` any more: "
                "GitHub cannot compare it with the head (404; a force-push dropped it), so the changes "
                f"since that run cannot be listed: {own}"
            ),
        )
    except GitHubPermissionError as exc:
        return Changes(
            Basis.HEAD_COMMIT,
            head.files,
            base_sha=base,
            note=(
                f"the changes since the last deploy run (`{base[:7]}`) could not be read "
                f"({error_wording.github(exc)}): {own}"
            ),
        )
    if diff.status in ("behind", "identical"):
        return Changes(
            Basis.HEAD_COMMIT,
            head.files,
            base_sha=base,
            note=(
                f"`{branch}` was moved back (force-pushed): its head is {diff.behind_by} commit(s) behind "
                f"`{base[:7]}`, the commit of the last deploy run: {own}"
            ),
        )
    notes = []
    if diff.files_capped:
        notes.append(
            f"GitHub lists only the first {COMPARE_FILE_LIMIT} files a comparison changes, and judges a "
            f"push's paths filter on its first {COMPARE_FILE_LIMIT} files only: a change under the trigger "
            "paths beyond them is not shown here and starts no run; open the comparison to see them all"
        )
    if diff.status == "diverged":
        notes.insert(
            0,
            f"`{base[:7]}`, the commit of the last deploy run, is no longer on `{branch}` (force-pushed: "
            f"{diff.behind_by} commit(s) of that run are gone from it): judged on the {diff.ahead_by} "
            f"commit(s) on `{branch}` since their common ancestor `{diff.merge_base[:7]}`, which that run "
            "did not deploy",
        )
    return Changes(
        Basis.SINCE_RUN,
        diff.files,
        capped=diff.files_capped,
        base_sha=base,
        commits=diff.ahead_by,
        dropped=diff.behind_by,
        merge_base=diff.merge_base,
        html_url=diff.html_url,
        note=". ".join(notes),
    )


# -- the check -------------------------------------------------------------------------------


def read(client: GitHubClient, repo: str, workflow_file: str, branch: str) -> DeployReport:
    """Run the deploy check; raises GitHubError only when nothing useful can be said."""
    workflow = client.workflow(repo, workflow_file)
    triggers, yaml_error = None, None
    try:
        triggers = parse_triggers(client.file_text(repo, workflow.path, branch))
    except ValueError as exc:
        yaml_error = str(exc)
    head = client.branch_head(repo, branch)

    latest = next(iter(client.runs(repo, workflow, branch=branch)), None)
    for_head: RunInfo | None
    if latest is not None and latest.head_sha == head.sha:
        for_head = latest
    else:
        for_head = next(iter(client.runs(repo, workflow, head_sha=head.sha)), None)
    changes = Changes(Basis.HEAD_COMMIT, head.files)
    if triggers is not None:
        skip, skip_detail, matched = why_not_triggered(triggers, branch, head)
        if for_head is None and _judged_on_paths(triggers, skip):
            # GitHub judges a push on all the files it changed: judge everything since the last deploy run
            changes = changes_since(client, repo, workflow, branch, head, latest)
            skip, skip_detail, matched = why_not_triggered(triggers, branch, head, changes.files)
    else:
        skip, skip_detail, matched = None, "", ()

    secret_present, secret_note = _secret(client, repo)
    verdict = _verdict(workflow, triggers, skip, for_head)
    return DeployReport(
        repo,
        branch,
        workflow,
        triggers,
        yaml_error,
        head,
        changes,
        skip,
        skip_detail,
        matched,
        for_head,
        latest,
        secret_present,
        secret_note,
        verdict,
    )


def _secret(client: GitHubClient, repo: str) -> tuple[bool | None, str]:
    try:
        return DEPLOY_SECRET in client.secret_names(repo), ""
    except (GitHubPermissionError, GitHubNotFound) as exc:
        # the rest of the check still stands; a rejected token or a rate limit ends it (raised)
        return None, error_wording.github(exc)


def _verdict(
    workflow: WorkflowInfo, triggers: Triggers | None, skip: SkipReason | None, for_head: RunInfo | None
) -> Verdict:
    if workflow.state != "active":
        return Verdict.DISABLED
    if for_head is not None:
        if for_head.status != "completed":
            return Verdict.RUNNING
        if for_head.conclusion in FAILED_CONCLUSIONS:
            return Verdict.FAILED
        return Verdict.DEPLOYED
    if triggers is None or skip is SkipReason.NO_PUSH:
        return Verdict.INVALID
    if skip is not None:
        return Verdict.NOT_EXPECTED
    return Verdict.NOT_TRIGGERED


# -- the report -----------------------------------------------------------------------------


def _run_label(run) -> str:
    return render.link(run.html_url, f"run #{run.run_number}")


def _skip_reason(r: DeployReport) -> str:
    reason, detail = r.skip, r.skip_detail
    push = r.triggers.push if r.triggers else None
    if reason in ("paths", "paths-ignore") and push is not None and r.changes.basis == "since-run":
        since = f"no change under the trigger paths since the last deploy run (`{(r.changes.base_sha or '')[:7]}`): "
        if reason == "paths":
            return (
                since + f"{_changed_since(r.changes)}, none matching the paths filter {render.listed(push.paths or ())}"
            )
        return since + f"{_changed_since(r.changes)}, all under paths-ignore {render.listed(push.paths_ignore or ())}"
    if reason == "paths" and push is not None:
        if not r.head.files:
            return f"it changes no file, so nothing matches the paths filter {render.listed(push.paths or ())}"
        paths = render.listed(push.paths or ())
        return f"it changes only {render.listed(r.head.files)}, none matching the paths filter {paths}"
    if reason == "paths-ignore" and push is not None:
        return f"every file it changes is under paths-ignore {render.listed(push.paths_ignore or ())}"
    if reason == "branch" and push is not None:
        if push.branches is not None:
            return f"branch `{r.branch}` is not in the push filter {render.listed(push.branches)}"
        return f"branch `{r.branch}` is in branches-ignore {render.listed(push.branches_ignore or ())}"
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
        return f"the {n} since {verb} at least {len(c.files)} files (GitHub lists no more): {render.listed(c.files)}"
    return f"the {n} since {verb} only {render.listed(c.files)}"


def _since_run_line(r: DeployReport) -> str:
    """The detail line for the changes since the last deploy run, with those the paths filter selects."""
    c, least = r.changes, ("at least " if r.changes.capped else "")
    base = (c.base_sha or "")[:7]
    line = (
        f"*Since the last deploy run* ({render.link(c.html_url, f'{base}...{r.head.sha[:7]}')}) "
        f"{c.commits} commit{'' if c.commits == 1 else 's'} changed {least}{len(c.files)} "
        f"file{'' if len(c.files) == 1 else 's'}: "
        f"{render.listed(c.files) or 'none'}"
    )
    if r.matched_files and r.triggers and r.triggers.push and r.triggers.push.paths is not None:
        line += f"; matching the paths filter: {least}{render.listed(r.matched_files)}"
    return line


def render_report(r: DeployReport) -> tuple[str, list[dict]]:
    file_name = r.workflow.path.rsplit("/", 1)[-1]
    sha = f"`{r.head.sha[:7]}`"
    run = r.run_for_head
    verdict = r.verdict
    # deployed, running and failed are verdicts on the head's own run: it is there
    if verdict == "deployed" and run is not None:
        icon, line = ":large_green_circle:", f"{sha} on `{r.branch}` is deployed: {_run_label(run)} succeeded."
    elif verdict == "running" and run is not None:
        icon, line = ":large_blue_circle:", f"the deploy of {sha} is *{run.status}*: {_run_label(run)}."
    elif verdict == "failed" and run is not None:
        icon, line = ":red_circle:", f"the deploy of {sha} ended in *{run.conclusion}*: {_run_label(run)}."
    elif verdict == "not-triggered":
        since = ""
        if r.changes.basis == "since-run" and r.matched_files:
            n, verb = _commits(r.changes.commits).rsplit(" ", 1)
            since = (
                f" (the {n} since the last deploy run (`{(r.changes.base_sha or '')[:7]}`) {verb} "
                f"{'at least ' if r.changes.capped else ''}{render.listed(r.matched_files)} under the trigger paths)"
            )
        icon, line = (
            ":red_circle:",
            (
                f"*not triggered*: {sha} on `{r.branch}` matches the workflow's trigger{since}, "
                f"but `{file_name}` has no run for it."
            ),
        )
    elif verdict == "not-expected":
        if r.changes.basis == "since-run" and r.skip in ("paths", "paths-ignore"):
            icon, line = ":white_circle:", f"{sha} on `{r.branch}`: correctly not deployed: {_skip_reason(r)}."
        else:
            icon, line = (
                ":white_circle:",
                (
                    f"{sha} on `{r.branch}` is outside the workflow's trigger "
                    f"({_skip_reason(r)}): correctly not deployed."
                ),
            )
        if r.latest_run:
            last = r.latest_run
            icon = ":large_green_circle:" if last.conclusion == "success" else ":large_orange_circle:"
            line += (
                f" The last deploy, {_run_label(last)} of `{last.head_sha[:7]}`, "
                f"{'succeeded' if last.conclusion == 'success' else 'is ' + (last.conclusion or last.status)}."
            )
    elif verdict == "disabled":
        icon, line = ":red_circle:", f"`{file_name}` is *disabled* ({r.workflow.state}): no push deploys."
    else:
        problem = r.yaml_error or _skip_reason(r)
        icon, line = ":red_circle:", f"`{file_name}` cannot start a deploy on push: {problem}."
    if r.secret_present is False:
        icon = ":red_circle:"
        line += " The `AZURE_CREDENTIALS` secret is *missing*."
    headline = f"{icon} *Deploy (runbook 2)*: {line}"

    details = [
        f"*Workflow* {render.link(r.workflow.html_url, r.workflow.name)} (`{r.workflow.path}` in `{r.repo}`), "
        f"{r.workflow.state}"
    ]
    if r.triggers is not None and r.triggers.push is not None:
        push = r.triggers.push
        parts = [f"push to {render.listed(push.branches) if push.branches is not None else 'any branch'}"]
        if push.branches_ignore:
            parts.append(f"except branches {render.listed(push.branches_ignore)}")
        if push.paths is not None:
            parts.append(f"paths {render.listed(push.paths)}")
        if push.paths_ignore:
            parts.append(f"ignoring paths {render.listed(push.paths_ignore)}")
        others = [e for e in r.triggers.events if e != "push"]
        if others:
            parts.append("also " + render.listed(others))
        details.append("*Triggers* " + " · ".join(parts))
    elif r.triggers is not None:
        details.append("*Triggers* " + render.listed(r.triggers.events) + " (no push)")
    else:
        details.append(f"*Triggers* unreadable: {r.yaml_error}")
    head = r.head
    commit_line = (
        f"*Latest commit on `{r.branch}`* {render.link(head.html_url, head.sha[:7])} "
        f"“{render.cut(head.title, 120)}” by {head.author}, {render.utc_time(head.date)}\n"
        f"changes {render.listed(head.files) or 'no files'}"
    )
    if r.changes.basis == "since-run":
        details.append(commit_line)
        details.append(_since_run_line(r))
    else:
        if r.matched_files and r.triggers and r.triggers.push and r.triggers.push.paths is not None:
            commit_line += f"; matching the paths filter: {render.listed(r.matched_files)}"
        details.append(commit_line)
    if r.changes.note:
        details.append(f":information_source: {r.changes.note}.")
    if r.latest_run is None:
        details.append(f"*Latest deploy run on `{r.branch}`* none")
    else:
        last = r.latest_run
        state = last.status if last.status != "completed" else f"completed, {last.conclusion}"
        suffix = "" if last.head_sha == head.sha else " (not the latest commit)"
        details.append(
            f"*Latest deploy run on `{r.branch}`* {_run_label(last)} for `{last.head_sha[:7]}`{suffix}: "
            f"{state} ({last.event}, {render.utc_time(last.created_at)})"
        )
    if r.secret_present is True:
        details.append(
            ":white_check_mark: The `AZURE_CREDENTIALS` secret exists (checked by name; values are never readable)."
        )
    elif r.secret_present is False:
        details.append(f":x: The `AZURE_CREDENTIALS` secret is not among the Actions secrets of `{r.repo}`.")
    else:
        details.append(f":grey_question: Could not check the `AZURE_CREDENTIALS` secret. {r.secret_note}")

    fixes = _deploy_fixes(r, file_name)
    blocks = [render.section(headline), render.section("\n".join(details))]
    if fixes:
        blocks.append(render.section("*Fix (runbook 2)*\n" + "\n".join(fixes)))
    if verdict != "deployed" or r.secret_present is False:
        blocks.append(
            render.context("Verify (runbook 2): the workflow goes to `in_progress`/`success`; `/nexy deploy` shows it.")
        )
    return headline.replace("*", ""), blocks


def _deploy_fixes(r: DeployReport, file_name: str) -> list[str]:
    fixes = []
    dispatch = r.triggers is not None and r.triggers.dispatch
    run_by_hand = f"`gh workflow run {file_name} -R {r.repo} --ref {r.branch}`"
    if r.secret_present is False:
        fixes.append(
            f"• *Verify AZURE_CREDENTIALS secret*: add the service principal JSON as an Actions secret "
            f"(`gh secret set AZURE_CREDENTIALS -R {r.repo} < sp.json`), then re-run the deploy."
        )
    verdict = r.verdict
    if verdict == "not-triggered":
        qualifies = (
            "the changes since the last deploy run qualify"
            if r.changes.basis == "since-run"
            else "the commit qualifies"
        )
        line = (
            f"• *Push changes to target branch/path*: {qualifies}, so GitHub did not start the run: "
            f"check that Actions is enabled for `{r.repo}` and `{r.workflow.path}` is valid on `{r.branch}`, "
            "then push again"
        )
        fixes.append(line + (f", or start it now: {run_by_hand}." if dispatch else "."))
    elif verdict == "not-expected":
        line = (
            f"• Nothing to fix if `{r.head.sha[:7]}` should not deploy. To deploy: *Push changes to target branch/path*"
        )
        push = r.triggers.push if r.triggers else None
        if r.skip == "paths" and push is not None and push.paths:
            line += f" (a change matching {render.listed(push.paths)} on `{r.branch}`)"
        elif r.skip == "skip-marker":
            line += f" (a commit without `{r.skip_detail}`)"
        fixes.append(line + (f", or {run_by_hand}." if dispatch else "."))
    elif verdict == "failed":
        fixes.append(f"• Open {_run_label(r.run_for_head)} and read the first failing step.")
        if r.secret_present is not False:
            fixes.append(
                "• If it failed at `Azure login`: *Verify AZURE_CREDENTIALS secret* "
                "(the service principal's client secret may have expired)."
            )
    elif verdict == "disabled":
        fixes.append(f"• Enable it: `gh workflow enable {file_name} -R {r.repo}`, then push or {run_by_hand}.")
    elif verdict == "invalid":
        fixes.append(
            f"• Verify trigger config in workflow: `{r.workflow.path}` needs `on: push` with "
            f"`branches: [{r.branch}]` (and the paths that should deploy)."
        )
    return fixes


@check("deploy", section="2", title="GitHub Actions Deploy Not Triggered", route=Route.IO)
def deploy(ctx: Context) -> str:
    """deploy: the deploy workflow: triggers, the latest commit against its runs, the AZURE_CREDENTIALS secret

    the deploy workflow (`NEXY_DEPLOY_WORKFLOW`) on `NEXY_SERVER_REPO`: its push triggers (branches, paths, from the
    YAML), the latest commit on `NEXY_DEPLOY_BRANCH`, the run for that commit (status, conclusion, link) or why
    there is none: the changes since the last deploy run (GitHub's compare, as GitHub judges a push's paths filter)
    either touch the trigger paths (not triggered) or not (correctly not deployed), whether the `AZURE_CREDENTIALS`
    secret exists (by name); then the runbook's fix
    """
    settings = ctx.settings
    try:
        with GitHubClient(settings) as client:
            report = read(client, settings.nexy_server_repo, settings.nexy_deploy_workflow, settings.nexy_deploy_branch)
    except GitHubError as exc:
        ctx.post(error_wording.check_failed("Deploy", "2", error_wording.github(exc)), kind="deploy")
        return "failed"
    ctx.post(render_report(report), kind="deploy")
    return report.verdict.value
