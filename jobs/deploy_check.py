"""The deploy check (runbook 2, "GitHub Actions Deploy Not Triggered").

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

import yaml

from bot.errors import GitHubNotFound, GitHubPermissionError
from jobs.github_client import COMPARE_FILE_LIMIT, CommitInfo, GitHubClient, RunInfo, WorkflowInfo

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
        return self.verdict in (Verdict.DEPLOYED, Verdict.RUNNING, Verdict.NOT_EXPECTED) and self.secret_present is not False


# -- the workflow's trigger config ---------------------------------------------------------------

def parse_triggers(text: str) -> Triggers:
    """The `on:` section of a workflow YAML; raises ValueError when it cannot be read."""
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
    return Triggers(events, PushTrigger(
        branches=_patterns(push, "branches"),
        branches_ignore=_patterns(push, "branches-ignore"),
        paths=_patterns(push, "paths"),
        paths_ignore=_patterns(push, "paths-ignore"),
        # GitHub: with only tag filters, a push to a branch does not start the workflow.
        tags_only=has_tags and not has_branches,
    ))


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
                out.append(pattern[i:end + 1])
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


def why_not_triggered(triggers: Triggers, branch: str, head: CommitInfo, files: tuple[str, ...] | None = None,
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
    return (push is not None and (push.paths is not None or push.paths_ignore is not None)
            and skip in (None, SkipReason.PATHS, SkipReason.PATHS_IGNORE))


def changes_since(client: GitHubClient, repo: str, workflow: WorkflowInfo, branch: str, head: CommitInfo,
                  latest: RunInfo | None) -> Changes:
    """The files changed on `branch` since the commit of the latest deploy run, or the head commit's own (and why)."""
    file_name = workflow.path.rsplit("/", 1)[-1]
    own = "judged on the latest commit's own files"
    if latest is None:
        return Changes(Basis.HEAD_COMMIT, head.files,
                       note=(f"`{file_name}` has no run on `{branch}` yet, so there is no last deploy to compare "
                             f"with: {own}"))
    base = latest.head_sha
    try:
        diff = client.compare(repo, base, head.sha)
    except GitHubNotFound:
        return Changes(Basis.HEAD_COMMIT, head.files, base_sha=base,
                       note=(f"`{base[:7]}`, the commit of the last deploy run, is not on `{branch}` any more: "
                             "GitHub cannot compare it with the head (404; a force-push dropped it), so the changes "
                             f"since that run cannot be listed: {own}"))
    except GitHubPermissionError as exc:
        return Changes(Basis.HEAD_COMMIT, head.files, base_sha=base,
                       note=f"the changes since the last deploy run (`{base[:7]}`) could not be read ({exc}): {own}")
    if diff.status in ("behind", "identical"):
        return Changes(Basis.HEAD_COMMIT, head.files, base_sha=base,
                       note=(f"`{branch}` was moved back (force-pushed): its head is {diff.behind_by} commit(s) behind "
                             f"`{base[:7]}`, the commit of the last deploy run: {own}"))
    notes = []
    if diff.files_capped:
        notes.append(f"GitHub lists only the first {COMPARE_FILE_LIMIT} files a comparison changes, and judges a "
                     f"push's paths filter on its first {COMPARE_FILE_LIMIT} files only: a change under the trigger "
                     "paths beyond them is not shown here and starts no run; open the comparison to see them all")
    if diff.status == "diverged":
        notes.insert(0, f"`{base[:7]}`, the commit of the last deploy run, is no longer on `{branch}` (force-pushed: "
                        f"{diff.behind_by} commit(s) of that run are gone from it): judged on the {diff.ahead_by} "
                        f"commit(s) on `{branch}` since their common ancestor `{diff.merge_base[:7]}`, which that run "
                        "did not deploy")
    return Changes(Basis.SINCE_RUN, diff.files, capped=diff.files_capped, base_sha=base, commits=diff.ahead_by,
                   dropped=diff.behind_by, merge_base=diff.merge_base, html_url=diff.html_url, note=". ".join(notes))


# -- the check -------------------------------------------------------------------------------

def check(client: GitHubClient, repo: str, workflow_file: str, branch: str) -> DeployReport:
    """Run the deploy check; raises GitHubError only when nothing useful can be said."""
    workflow = client.workflow(repo, workflow_file)
    triggers, yaml_error = None, None
    try:
        triggers = parse_triggers(client.file_text(repo, workflow.path, branch))
    except ValueError as exc:
        yaml_error = str(exc)
    head = client.branch_head(repo, branch)

    latest = next(iter(client.runs(repo, workflow, branch=branch)), None)
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
    return DeployReport(repo, branch, workflow, triggers, yaml_error, head, changes, skip, skip_detail, matched,
                        for_head, latest, secret_present, secret_note, verdict)


def _secret(client: GitHubClient, repo: str) -> tuple[bool | None, str]:
    try:
        return DEPLOY_SECRET in client.secret_names(repo), ""
    except (GitHubPermissionError, GitHubNotFound) as exc:
        # the rest of the check still stands; a rejected token or a rate limit ends it (raised)
        return None, str(exc)


def _verdict(workflow: WorkflowInfo, triggers: Triggers | None, skip: SkipReason | None,
             for_head: RunInfo | None) -> Verdict:
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
