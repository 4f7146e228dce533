"""The GitHub client: the only module that talks to GitHub (PyGithub), read-only.

It hands back plain dataclasses, never PyGithub objects, and turns every failure into a
`GitHubError` with a code and the facts that explain it (a rejected GITHUB_TOKEN, the token
permission that is missing, the object that is not there, when the rate limit resets, that
GitHub did not answer in time); `bot.wording.errors` says what to do. It never sleeps on a
rate limit: the io worker must not stall behind GitHub.

Each request is bounded by NEXY_GITHUB_TIMEOUT_S; a GET that meets a 5xx or a dropped connection
is retried twice (0.5 s, 1 s backoff), so one read costs at most about 3 x the timeout + 1.5 s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from bot.errors import GitHubError, GitHubFailure, GitHubNotFound, GitHubPermissionError
from bot.redaction import redact
from bot.settings import Settings

if TYPE_CHECKING:  # PyGithub and requests are imported where used: importing this module loads neither
    import urllib3
    from github.GithubException import GithubException

T = TypeVar("T")


def _retry() -> urllib3.util.Retry:
    """Ride out one GitHub hiccup (5xx, reset connection); never a rate limit (403/429 are not listed)."""
    import urllib3

    return urllib3.util.Retry(
        total=2,
        backoff_factor=0.5,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=False,  # a rate limit is reported, never waited out in the worker
        raise_on_status=False,
    )


PERMISSION_NAMES = {
    "actions": "Actions",
    "contents": "Contents",
    "secrets": "Secrets",
    "metadata": "Metadata",
}
"""GitHub's permission keys (x-accepted-github-permissions) as its token settings page names them."""

_REPO_HINT = "NEXY_SERVER_REPO and NEXY_RELEASES_REPO name the repositories as owner/name"


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    message: str
    author: str
    date: datetime | None
    html_url: str
    files: tuple[str, ...]

    @property
    def title(self) -> str:
        return self.message.splitlines()[0] if self.message else ""


COMPARE_FILE_LIMIT = 300
"""GitHub's compare lists at most this many changed files (and does not say how many it left out)."""


@dataclass(frozen=True)
class CompareInfo:
    """GET /repos/{owner}/{repo}/compare/{base}...{head}: what `head` has that `base` has not."""

    base: str
    head: str
    status: str  # ahead | behind | identical | diverged
    ahead_by: int  # commits on head since the merge base
    behind_by: int  # commits on base since the merge base
    merge_base: str
    files: tuple[str, ...]  # changed between the merge base and head, as GitHub lists them (<= 300)
    html_url: str

    @property
    def files_capped(self) -> bool:
        """GitHub stopped listing files: there may be more than these."""
        return len(self.files) >= COMPARE_FILE_LIMIT


@dataclass(frozen=True)
class WorkflowInfo:
    id: int
    name: str
    path: str
    state: str
    html_url: str


@dataclass(frozen=True)
class RunInfo:
    id: int
    run_number: int
    head_sha: str
    head_branch: str
    event: str
    status: str
    conclusion: str | None
    html_url: str
    created_at: datetime | None


@dataclass(frozen=True)
class AssetInfo:
    name: str
    size: int
    state: str
    updated_at: datetime | None
    download_url: str
    label: str
    digest: str | None


@dataclass(frozen=True)
class ReleaseInfo:
    repo: str
    tag: str
    name: str
    body: str
    html_url: str
    published_at: datetime | None
    draft: bool
    prerelease: bool
    assets: tuple[AssetInfo, ...]

    def asset(self, name: str) -> AssetInfo | None:
        return next((a for a in self.assets if a.name == name), None)


class GitHubClient:
    """Read-only access to the repositories the deploy and release checks look at."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.timeout_s = settings.nexy_github_timeout_s
        token = settings.github_token
        from github import Auth, Github

        self._gh = Github(
            auth=Auth.Token(token) if token else None,
            base_url=settings.github_api_url,
            timeout=self.timeout_s,
            seconds_between_requests=0,  # PyGithub otherwise waits 0.25 s before every request
            retry=_retry(),
        )
        self._repos: dict[str, object] = {}

    def close(self) -> None:
        self._gh.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads -------------------------------------------------------------------------------

    def _repo(self, name: str):
        if name not in self._repos:
            self._repos[name] = self._call(
                lambda: self._gh.get_repo(name),
                what=f"repository `{name}`",
                permission="Metadata: read",
                hint=_REPO_HINT,
            )
        return self._repos[name]

    def workflow(self, repo: str, file_name: str) -> WorkflowInfo:
        """The workflow `.github/workflows/<file_name>` of `repo`."""
        r = self._repo(repo)

        def read() -> WorkflowInfo:
            w = r.get_workflow(file_name)
            return WorkflowInfo(w.id, w.name, w.path, w.state, w.html_url)

        return self._call(
            read,
            what=f"workflow `{file_name}` in `{repo}`",
            permission="Actions: read",
            hint="NEXY_DEPLOY_WORKFLOW names the workflow file under .github/workflows",
        )

    def file_text(self, repo: str, path: str, ref: str) -> str:
        """A file's text at `ref`."""
        r = self._repo(repo)
        return self._call(
            lambda: r.get_contents(path, ref=ref).decoded_content.decode("utf-8", "replace"),
            what=f"file `{path}` at `{ref}` in `{repo}`",
            permission="Contents: read",
        )

    def branch_head(self, repo: str, branch: str) -> CommitInfo:
        """The latest commit on `branch`, with the files it changed."""
        r = self._repo(repo)

        def read() -> CommitInfo:
            sha = r.get_branch(branch).commit.sha
            c = r.get_commit(sha)
            author = (c.author.login if c.author else None) or c.commit.author.name
            return CommitInfo(
                c.sha,
                c.commit.message,
                author,
                _utc(c.commit.author.date),
                c.html_url,
                tuple(f.filename for f in c.files),
            )

        return self._call(
            read,
            what=f"branch `{branch}` in `{repo}`",
            permission="Contents: read",
            hint="NEXY_DEPLOY_BRANCH names the branch that deploys",
        )

    def compare(self, repo: str, base: str, head: str) -> CompareInfo:
        """The commits and files `head` has since its merge base with `base` (one request; files capped at 300).

        Raises GitHubNotFound when GitHub does not know `base` or `head` any more (e.g. a force-push
        dropped the commit and it was garbage-collected) or they have no common ancestor.
        """
        r = self._repo(repo)

        def read() -> CompareInfo:
            c = r.compare(base, head)
            return CompareInfo(
                base,
                head,
                c.status,
                c.ahead_by,
                c.behind_by,
                c.merge_base_commit.sha,
                tuple(f.filename for f in c.files),
                c.html_url,
            )

        return self._call(
            read, what=f"the comparison `{base[:7]}...{head[:7]}` in `{repo}`", permission="Contents: read"
        )

    def runs(
        self,
        repo: str,
        workflow: WorkflowInfo,
        *,
        branch: str | None = None,
        head_sha: str | None = None,
        limit: int = 1,
    ) -> list[RunInfo]:
        """The newest runs of a workflow (first page only), optionally for one branch or commit."""
        r = self._repo(repo)

        def read() -> list[RunInfo]:
            filters = {k: v for k, v in (("branch", branch), ("head_sha", head_sha)) if v}
            found = r.get_workflow(workflow.id).get_runs(**filters)
            runs = []
            for run in found:
                runs.append(
                    RunInfo(
                        run.id,
                        run.run_number,
                        run.head_sha,
                        run.head_branch,
                        run.event,
                        run.status,
                        run.conclusion,
                        run.html_url,
                        _utc(run.created_at),
                    )
                )
                if len(runs) >= limit:
                    break
            return runs

        return self._call(read, what=f"runs of `{workflow.path}` in `{repo}`", permission="Actions: read")

    def secret_names(self, repo: str) -> list[str]:
        """The names (never values: the API has none) of the repository's Actions secrets."""
        r = self._repo(repo)
        return self._call(
            lambda: [s.name for s in r.get_secrets()], what=f"Actions secrets of `{repo}`", permission="Secrets: read"
        )

    def release(self, repo: str, tag: str) -> ReleaseInfo:
        """The release with tag `tag`, with its assets."""
        r = self._repo(repo)

        def read() -> ReleaseInfo:
            rel = r.get_release(tag)
            assets = tuple(
                AssetInfo(a.name, a.size, a.state, _utc(a.updated_at), a.browser_download_url, a.label or "", a.digest)
                for a in rel.get_assets()
            )
            return ReleaseInfo(
                repo,
                rel.tag_name,
                rel.name or "",
                rel.body or "",
                rel.html_url,
                _utc(rel.published_at),
                rel.draft,
                rel.prerelease,
                assets,
            )

        return self._call(read, what=f"release `{tag}` in `{repo}`", permission="Contents: read")

    # -- failures ----------------------------------------------------------------------------

    def _call(self, read: Callable[[], T], *, what: str, permission: str, hint: str = "") -> T:
        import requests
        from github.GithubException import GithubException

        try:
            return read()
        except GithubException as exc:
            raise self._explain(exc, what, permission, hint) from None
        except (requests.Timeout, requests.ConnectionError) as exc:
            timed_out = isinstance(exc, requests.Timeout) or "timed out" in str(exc).lower()
            raise GitHubError(
                GitHubFailure.TIMEOUT if timed_out else GitHubFailure.UNREACHABLE,
                what,
                timeout_s=self.timeout_s,
                api_url=self.settings.github_api_url,
            ) from None

    def _explain(self, exc: GithubException, what: str, permission: str, hint: str) -> GitHubError:
        from github.GithubException import BadCredentialsException, RateLimitExceededException, UnknownObjectException

        headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
        data = exc.data if isinstance(exc.data, dict) else {}
        message = redact(str(data.get("message") or exc.message or ""))[:200]
        if (
            isinstance(exc, RateLimitExceededException)
            or exc.status == 429
            or headers.get("x-ratelimit-remaining") == "0"
            or "rate limit" in message.lower()
        ):
            retry_after = headers.get("retry-after", "")
            reset = headers.get("x-ratelimit-reset", "")
            return GitHubError(
                GitHubFailure.RATE_LIMITED,
                what,
                status=exc.status,
                retry_after_s=int(retry_after) if retry_after.isdigit() else None,
                reset_at=float(reset) if reset.isdigit() else None,
            )
        if isinstance(exc, BadCredentialsException) or exc.status == 401:
            code = GitHubFailure.BAD_TOKEN if self.settings.github_token else GitHubFailure.NO_TOKEN
            return GitHubError(code, what, status=401, message=message)
        if isinstance(exc, UnknownObjectException) or exc.status == 404:
            return GitHubNotFound(GitHubFailure.NOT_FOUND, what, status=404, hint=hint)
        if exc.status == 403:
            return GitHubPermissionError(
                GitHubFailure.FORBIDDEN,
                what,
                status=403,
                message=message,
                permission=_accepted_permission(headers) or permission,
            )
        return GitHubError(GitHubFailure.HTTP, what, status=exc.status, message=message)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _accepted_permission(headers: dict[str, str]) -> str | None:
    """`secrets=read` (GitHub's x-accepted-github-permissions) as `Secrets: read`."""
    raw = headers.get("x-accepted-github-permissions", "")
    first = raw.replace(",", ";").split(";")[0].strip()
    if "=" not in first:
        return None
    key, _, level = first.partition("=")
    return f"{PERMISSION_NAMES.get(key.strip(), key.strip().replace('_', ' ').capitalize())}: {level.strip()}"
