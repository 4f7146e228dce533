"""A local stand-in for the GitHub REST API (sandbox only, never used in production).

It serves the read-only endpoints the `deploy` (runbook section 2) and `release` (sections 7-9)
checks need, with GitHub's JSON shapes, so that the real PyGithub client can be pointed at it::

    with GitHubEmulator() as emu:
        emu.apply_scenario("deploy-not-triggered")
        gh = Github(auth=Auth.Token(emu.token), base_url=emu.url, retry=None)
        repo = gh.get_repo("Seregawpn/Nexy_server")

What it reproduces from the real API (checked against docs.github.com and PyGithub 2.10):

- ``Authorization: token X`` / ``Bearer X``; a wrong token answers 401 ``Bad credentials``,
  a missing one 401 ``Requires authentication``.
- unknown routes/objects answer 404 ``{"message": "Not Found", "documentation_url": ..., "status": "404"}``.
- every response carries ``x-ratelimit-limit/-remaining/-reset/-used/-resource``; each request
  spends one unit (``GET /rate_limit`` is free); at 0 the API answers the primary rate-limit 403
  (``API rate limit exceeded for user ID ...``) until the reset time.
- list endpoints paginate with ``per_page`` (default 30, max 100) / ``page`` and a
  ``Link: <...>; rel="next", <...>; rel="last"`` header; wrapped lists
  (``{"total_count": N, "workflows"|"workflow_runs"|"secrets": [...]}``) like GitHub.
- the secrets list answers 403 ``Resource not accessible by integration`` when the repository's
  ``secrets_readable`` is False (a token without the Secrets permission).
- ``GET /repos/{o}/{r}/compare/{base}...{head}`` is computed from the commit model (each commit's
  parents and changed files): ``status`` ahead/behind/identical/diverged, ``ahead_by``/``behind_by``,
  ``merge_base_commit``, the commits in chronological order (paginated with ``page``/``per_page``,
  the files only on page 1), and at most 300 files (the union of the files the head-side commits
  changed, in path order); an unknown ref or sha, or no common ancestor, answers 404. A commit a
  force-push dropped stays comparable (GitHub keeps it) until a test deletes it from ``commits``.

The data lives in :attr:`GitHubEmulator.state`, a plain dataclass model that tests may edit.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

__all__ = [
    "SCENARIOS",
    "DEFAULT_TOKEN",
    "DEPLOY_WORKFLOW_PATH",
    "DEPLOY_WORKFLOW_YAML",
    "MANIFEST_PATH",
    "RELEASE_TAG",
    "published_manifest",
    "GitHubEmulator",
    "GitHubState",
    "Repo",
    "Commit",
    "Workflow",
    "WorkflowRun",
    "Secret",
    "Release",
    "Asset",
]

SCENARIOS: dict[str, str] = {
    "healthy": (
        "Server repo main head touches server/ and has a successful 'Deploy to Azure VM' run; "
        "AZURE_CREDENTIALS is set; release 'Update' has Nexy.dmg and Nexy.pkg; manifest.json "
        "(2.4.0 / 240, url .../releases/download/Update/Nexy.pkg) matches the release."
    ),
    "deploy-not-triggered": (
        "A newer commit on main touches server/ (CI ran on it) but the deploy workflow has no run "
        "for its sha: the deploy did not start (runbook 2)."
    ),
    "missing-secret": (
        "The AZURE_CREDENTIALS Actions secret is absent; the latest deploy run failed at Azure "
        "login (runbook 2, Fix: verify AZURE_CREDENTIALS)."
    ),
    "release-missing-asset": (
        "Release 'Update' lacks the Nexy.pkg asset (only Nexy.dmg is uploaded); the manifest "
        "still points at .../Update/Nexy.pkg (runbook 7/8)."
    ),
    "manifest-mismatch": (
        "Release 'Update' holds 2.4.0 build 240, but manifest.json still describes the previous "
        "release: version 2.3.0, build 230, url .../releases/download/v2.3.0/Nexy.pkg and its "
        "size/sha256 (runbook 9)."
    ),
}

DEFAULT_TOKEN = "ghp_sandboxtoken000000000000000000000000"
DEPLOY_WORKFLOW_PATH = ".github/workflows/deploy.yml"
CI_WORKFLOW_PATH = ".github/workflows/ci.yml"
MANIFEST_PATH = "server/updates/manifests/manifest.json"
RELEASE_TAG = "Update"
API_VERSION = "2022-11-28"
USER_ID = 41872605  # the emulated token owner's user id (appears in rate-limit messages)

DEPLOY_WORKFLOW_YAML = """\
name: Deploy to Azure VM

on:
  push:
    branches: [main]
    paths: ['server/**', '.github/workflows/deploy.yml']
  workflow_dispatch:

concurrency:
  group: deploy-azure-vm
  cancel-in-progress: false

jobs:
  deploy:
    runs-on: ubuntu-latest
    timeout-minutes: 30
    steps:
      - name: Checkout
        uses: actions/checkout@v4

      - name: Azure login
        uses: azure/login@v2
        with:
          creds: ${{ secrets.AZURE_CREDENTIALS }}

      - name: Deploy to Azure VM
        uses: azure/cli@v2
        with:
          inlineScript: |
            az vm run-command invoke \\
              --resource-group NetworkWatcherRG \\
              --name Nexy \\
              --command-id RunShellScript \\
              --scripts "/home/azureuser/update-server.sh"
"""

CI_WORKFLOW_YAML = """\
name: CI

on:
  push:
    branches: [main, develop]
  pull_request:
    branches: [main]

jobs:
  quality:
    runs-on: ubuntu-latest
    timeout-minutes: 20
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.13"
      - run: python -m pip install -r server/requirements.txt
      - run: bash server/scripts/full_quality_scan.sh
"""

_DOCS = "https://docs.github.com/rest"
_BASE_TIME = datetime(2026, 2, 10, 9, 0, 0, tzinfo=timezone.utc)


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _sha(*parts: Any) -> str:
    return hashlib.sha1(":".join(str(p) for p in parts).encode()).hexdigest()


def _node_id(kind: str, ident: Any) -> str:
    return base64.b64encode(f"0:{kind}{ident}".encode()).decode().rstrip("=")


# ---------------------------------------------------------------------------------------------
# Data model (edit freely in tests; the HTTP side renders it on every request)
# ---------------------------------------------------------------------------------------------


@dataclass
class Commit:
    sha: str
    message: str
    files: list[str] = field(default_factory=list)  # paths changed by this commit ("modified")
    date: str = ""  # ISO 8601 "Z"
    author_login: str = "Seregawpn"
    author_name: str = "Sergey"
    author_email: str = "seregawpn@users.noreply.github.com"
    parents: list[str] = field(default_factory=list)


@dataclass
class Workflow:
    id: int
    name: str
    path: str  # ".github/workflows/deploy.yml"; its file is served by the contents endpoint
    yaml: str
    state: str = "active"  # active | disabled_manually | disabled_inactivity
    created_at: str = ""
    updated_at: str = ""


@dataclass
class WorkflowRun:
    id: int
    workflow_id: int
    head_sha: str
    head_branch: str = "main"
    event: str = "push"
    status: str = "completed"  # queued | in_progress | completed | waiting | requested | pending
    conclusion: str | None = "success"  # success | failure | cancelled | skipped | timed_out | None
    run_number: int = 1
    run_attempt: int = 1
    created_at: str = ""
    updated_at: str = ""
    actor_login: str = "Seregawpn"
    display_title: str = ""


@dataclass
class Secret:
    name: str
    created_at: str = ""
    updated_at: str = ""


@dataclass
class Asset:
    id: int
    name: str
    size: int
    content_type: str = "application/octet-stream"
    state: str = "uploaded"  # uploaded | open
    label: str | None = None  # version hint, e.g. "Nexy 2.4.0 (240)"
    digest: str | None = None  # "sha256:<hex>"
    download_count: int = 0
    created_at: str = ""
    updated_at: str = ""


@dataclass
class Release:
    id: int
    tag_name: str
    name: str
    body: str
    target_commitish: str = "main"
    draft: bool = False
    prerelease: bool = False
    created_at: str = ""
    published_at: str | None = ""
    assets: list[Asset] = field(default_factory=list)

    def asset(self, name: str) -> Asset | None:
        return next((a for a in self.assets if a.name == name), None)


@dataclass
class Repo:
    owner: str
    name: str
    id: int
    description: str = ""
    private: bool = True
    default_branch: str = "main"
    created_at: str = ""
    commits: dict[str, Commit] = field(default_factory=dict)  # sha -> commit
    branches: dict[str, list[str]] = field(default_factory=dict)  # branch -> shas, newest first
    files: dict[str, str] = field(default_factory=dict)  # path -> text at the default branch head
    workflows: list[Workflow] = field(default_factory=list)
    runs: list[WorkflowRun] = field(default_factory=list)
    secrets: list[Secret] = field(default_factory=list)
    secrets_readable: bool = True  # False: the token lacks the Secrets permission -> 403
    releases: list[Release] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    # -- helpers for tests and scenarios -------------------------------------------------------
    def head(self, branch: str | None = None) -> Commit:
        return self.commits[self.branches[branch or self.default_branch][0]]

    def workflow(self, id_or_file: int | str) -> Workflow | None:
        for wf in self.workflows:
            if str(wf.id) == str(id_or_file) or wf.path.rsplit("/", 1)[-1] == str(id_or_file):
                return wf
        return None

    def release(self, tag: str) -> Release | None:
        return next((r for r in self.releases if r.tag_name == tag), None)

    def secret_names(self) -> list[str]:
        return [s.name for s in self.secrets]

    def remove_secret(self, name: str) -> None:
        self.secrets = [s for s in self.secrets if s.name != name]

    def force_push(self, branch: str, sha: str) -> list[str]:
        """Point ``branch`` at the existing commit ``sha`` (and its first-parent history), as a force-push does.

        The commits it drops stay in :attr:`commits` (GitHub keeps them and still compares them); delete
        them from there to model a garbage-collected commit. Returns the dropped shas, newest first.
        """
        if sha not in self.commits:
            raise KeyError(f"no commit {sha} in {self.full_name}")
        chain, current = [], sha
        while current in self.commits:
            chain.append(current)
            parents = self.commits[current].parents
            current = parents[0] if parents else ""
        old = self.branches.get(branch, [])
        self.branches[branch] = chain
        return [s for s in old if s not in set(chain)]

    def runs_for(self, sha: str, workflow_id: int | None = None) -> list[WorkflowRun]:
        return [
            r for r in self.runs if r.head_sha == sha and (workflow_id is None or r.workflow_id == workflow_id)
        ]

    def add_commit(
        self,
        message: str,
        files: list[str],
        *,
        branch: str | None = None,
        date: str | None = None,
        sha: str | None = None,
    ) -> Commit:
        """Put a new commit on top of ``branch`` (no workflow run is created: see add_run)."""
        branch = branch or self.default_branch
        shas = self.branches.setdefault(branch, [])
        parent = shas[0] if shas else None
        if date is None:
            last = _parse_iso(self.commits[parent].date) if parent else None
            date = _iso((last or _BASE_TIME) + timedelta(minutes=37))
        commit = Commit(
            sha=sha or _sha(self.full_name, branch, len(self.commits), message),
            message=message,
            files=list(files),
            date=date,
            parents=[parent] if parent else [],
        )
        self.commits[commit.sha] = commit
        shas.insert(0, commit.sha)
        return commit

    def add_run(
        self,
        workflow: int | str,
        head_sha: str,
        *,
        status: str = "completed",
        conclusion: str | None = "success",
        branch: str | None = None,
        event: str = "push",
    ) -> WorkflowRun:
        wf = self.workflow(workflow)
        if wf is None:
            raise KeyError(f"no workflow {workflow!r} in {self.full_name}")
        commit = self.commits.get(head_sha)
        created = _parse_iso(commit.date) if commit else None
        created = (created or datetime.now(timezone.utc)) + timedelta(seconds=4)
        duration = timedelta(minutes=3, seconds=12) if status == "completed" else timedelta(seconds=20)
        run = WorkflowRun(
            id=max([r.id for r in self.runs], default=9_100_000_000) + 7,
            workflow_id=wf.id,
            head_sha=head_sha,
            head_branch=branch or self.default_branch,
            event=event,
            status=status,
            conclusion=conclusion if status == "completed" else None,
            run_number=1 + sum(1 for r in self.runs if r.workflow_id == wf.id),
            created_at=_iso(created),
            updated_at=_iso(created + duration),
            display_title=(commit.message.splitlines()[0] if commit else ""),
        )
        self.runs.append(run)
        return run


@dataclass
class GitHubState:
    repos: dict[str, Repo] = field(default_factory=dict)  # "owner/name" -> Repo

    def repo(self, full_name: str) -> Repo | None:
        lc = full_name.lower()
        return next((r for k, r in self.repos.items() if k.lower() == lc), None)


# ---------------------------------------------------------------------------------------------
# Healthy data and scenarios
# ---------------------------------------------------------------------------------------------

_SERVER_FILES = [
    "server/main.py",
    "server/config/settings.py",
    "server/requirements.txt",
    "server/modules/text_processor.py",
    "server/updates/update_server.py",
]
_DOC_FILES = ["Docs/SERVER_DEPLOYMENT_GUIDE.md", "README.md", "Docs/RELEASE_AND_UPDATE_GUIDE.md"]


def _manifest(
    version: str, build: str, url: str, size: int, sha256: str, release_date: str, notes_url: str
) -> dict[str, Any]:
    return {
        "version": version,
        "build": build,
        "artifact": {
            "type": "pkg",
            "url": url,
            "version": version,
            "build": build,
            "size": size,
            "sha256": sha256,
            "arch": "universal2",
            "min_os": "11.0",
            "ed25519": "",
        },
        "critical": False,
        "auto_install": True,
        "notes_url": notes_url,
        "release_date": release_date,
    }


def _asset_bytes_meta(name: str, version: str) -> tuple[int, str]:
    """Deterministic (size, sha256 hex) for a fake artifact."""
    digest = hashlib.sha256(f"{name}:{version}".encode()).hexdigest()
    size = 300_000_000 + int(digest[:6], 16) % 20_000_000
    return size, digest


def published_manifest(version: str, build: str, *, releases_repo: str = "Seregawpn/Nexy_production",
                       release_date: str | None = None) -> dict[str, Any]:
    """manifest.json as the publish script writes it when release `Update` holds `version`/`build`:
    its artifact is that release's Nexy.pkg (url, size and sha256 as the emulator's asset has them).
    The healthy server repository holds it, and so does the simulated VM (`sandbox.vm`), as deployed."""
    size, hexdigest = _asset_bytes_meta("Nexy.pkg", version)
    return _manifest(
        version,
        build,
        f"https://github.com/{releases_repo}/releases/download/{RELEASE_TAG}/Nexy.pkg",
        size,
        hexdigest,
        release_date or _iso(datetime.now(timezone.utc)),
        f"https://github.com/{releases_repo}/releases/tag/{RELEASE_TAG}",
    )


def _build_release(rid: int, tag: str, version: str, build: str, when: datetime, asset_id0: int) -> Release:
    label = f"Nexy {version} ({build})"
    assets = []
    for i, (name, ctype) in enumerate(
        [("Nexy.dmg", "application/x-apple-diskimage"), ("Nexy.pkg", "application/octet-stream")]
    ):
        size, hexdigest = _asset_bytes_meta(name, version)
        assets.append(
            Asset(
                id=asset_id0 + i,
                name=name,
                size=size,
                content_type=ctype,
                label=label,
                digest=f"sha256:{hexdigest}",
                download_count=17 + 5 * i,
                created_at=_iso(when + timedelta(minutes=2 + i)),
                updated_at=_iso(when + timedelta(minutes=4 + i)),
            )
        )
    return Release(
        id=rid,
        tag_name=tag,
        name=label,
        body=(
            f"Nexy {version} build {build}\n\n"
            f"version: {version}\nbuild: {build}\n\n"
            "Assets: Nexy.dmg, Nexy.pkg (published by scripts/publish_assets_and_sync.py)"
        ),
        created_at=_iso(when),
        published_at=_iso(when + timedelta(minutes=1)),
        assets=assets,
    )


def _healthy_state(server_repo: str, releases_repo: str) -> GitHubState:
    s_owner, s_name = server_repo.split("/", 1)
    r_owner, r_name = releases_repo.split("/", 1)
    server = Repo(
        owner=s_owner,
        name=s_name,
        id=812_345_001,
        description="Nexy voice assistant server",
        created_at=_iso(_BASE_TIME - timedelta(days=300)),
    )
    deploy = Workflow(
        id=118_900_201,
        name="Deploy to Azure VM",
        path=DEPLOY_WORKFLOW_PATH,
        yaml=DEPLOY_WORKFLOW_YAML,
        created_at=_iso(_BASE_TIME - timedelta(days=120)),
        updated_at=_iso(_BASE_TIME - timedelta(days=3)),
    )
    ci = Workflow(
        id=118_900_202,
        name="CI",
        path=CI_WORKFLOW_PATH,
        yaml=CI_WORKFLOW_YAML,
        created_at=_iso(_BASE_TIME - timedelta(days=200)),
        updated_at=_iso(_BASE_TIME - timedelta(days=40)),
    )
    server.workflows = [deploy, ci]

    # 40 commits on main (more than one default page of 30), oldest first; every third one
    # only touches docs (the deploy's paths filter skips it), one older deploy failed.
    for i in range(40):
        if i % 3 == 1 and i != 39:
            files = [_DOC_FILES[i % len(_DOC_FILES)]]
            msg = f"docs: update deployment notes ({i})"
        else:
            files = [_SERVER_FILES[i % len(_SERVER_FILES)]]
            msg = f"server: change {files[0].rsplit('/', 1)[-1]} ({i})"
        if i == 39:
            msg = "server: release 2.4.0 build 240"
            files = ["server/main.py", "server/updates/manifests/manifest.json"]
        commit = server.add_commit(msg, files, date=_iso(_BASE_TIME + timedelta(hours=5 * i)))
        server.add_run(ci.id, commit.sha)
        if any(f.startswith("server/") or f == DEPLOY_WORKFLOW_PATH for f in files):
            server.add_run(deploy.id, commit.sha, conclusion="failure" if i == 20 else "success")
    server.branches["develop"] = list(server.branches["main"][:5])

    server.secrets = [
        Secret("AZURE_CREDENTIALS", _iso(_BASE_TIME - timedelta(days=120)), _iso(_BASE_TIME - timedelta(days=30))),
        Secret("AZURE_RESOURCE_GROUP", _iso(_BASE_TIME - timedelta(days=120)), _iso(_BASE_TIME - timedelta(days=120))),
        Secret("AZURE_VM_NAME", _iso(_BASE_TIME - timedelta(days=120)), _iso(_BASE_TIME - timedelta(days=120))),
    ]

    releases = Repo(
        owner=r_owner,
        name=r_name,
        id=812_345_002,
        description="Nexy macOS client releases",
        private=False,
        created_at=_iso(_BASE_TIME - timedelta(days=250)),
    )
    for i, msg in enumerate(["Initial commit", "Add README", "Update release notes"]):
        releases.add_commit(msg, ["README.md"], date=_iso(_BASE_TIME + timedelta(days=i)))
    releases.files["README.md"] = "# Nexy\n\nDownloads: see Releases -> Update.\n"
    current_time = _BASE_TIME + timedelta(hours=5 * 39, minutes=50)
    current = _build_release(99_000_240, RELEASE_TAG, "2.4.0", "240", current_time, 280_000_100)
    previous = _build_release(99_000_230, "v2.3.0", "2.3.0", "230", _BASE_TIME - timedelta(days=9), 280_000_010)
    releases.releases = [current, previous]

    pkg = current.asset("Nexy.pkg")
    assert pkg is not None and pkg.digest
    manifest = published_manifest("2.4.0", "240", releases_repo=releases_repo,
                                  release_date=_iso(current_time + timedelta(minutes=6)))
    assert (manifest["artifact"]["size"], manifest["artifact"]["sha256"]) == (pkg.size, pkg.digest.split(":", 1)[1])
    server.files = {
        "README.md": "# Nexy server\n",
        "server/main.py": "from server.app import run\n\nif __name__ == '__main__':\n    run()\n",
        "server/requirements.txt": "grpcio==1.71.0\naiohttp==3.11.18\ngoogle-genai==1.16.1\n",
        MANIFEST_PATH: json.dumps(manifest, indent=2) + "\n",
    }
    return GitHubState(repos={server.full_name: server, releases.full_name: releases})


def _scenario_deploy_not_triggered(emu: GitHubEmulator) -> None:
    server = emu.server
    commit = server.add_commit(
        "server: fix health version reporting", ["server/main.py", "server/config/settings.py"]
    )
    ci = server.workflow(CI_WORKFLOW_PATH.rsplit("/", 1)[-1])
    assert ci is not None
    server.add_run(ci.id, commit.sha)  # CI ran; the deploy did not


def _scenario_missing_secret(emu: GitHubEmulator) -> None:
    server = emu.server
    server.remove_secret("AZURE_CREDENTIALS")
    deploy = server.workflow("deploy.yml")
    assert deploy is not None
    latest = server.runs_for(server.head().sha, deploy.id)[0]
    latest.conclusion = "failure"


def _scenario_release_missing_asset(emu: GitHubEmulator) -> None:
    release = emu.releases.release(RELEASE_TAG)
    assert release is not None
    release.assets = [a for a in release.assets if a.name != "Nexy.pkg"]
    release.body = release.body.replace("Nexy.dmg, Nexy.pkg", "Nexy.dmg")


def _scenario_manifest_mismatch(emu: GitHubEmulator) -> None:
    previous = emu.releases.release("v2.3.0")
    assert previous is not None
    pkg = previous.asset("Nexy.pkg")
    assert pkg is not None and pkg.digest
    emu.set_manifest(
        "2.3.0",
        "230",
        f"https://github.com/{emu.releases.full_name}/releases/download/v2.3.0/Nexy.pkg",
        size=pkg.size,
        sha256=pkg.digest.split(":", 1)[1],
    )


_SCENARIO_APPLY: dict[str, Callable[[GitHubEmulator], None]] = {
    "healthy": lambda emu: None,
    "deploy-not-triggered": _scenario_deploy_not_triggered,
    "missing-secret": _scenario_missing_secret,
    "release-missing-asset": _scenario_release_missing_asset,
    "manifest-mismatch": _scenario_manifest_mismatch,
}


# ---------------------------------------------------------------------------------------------
# HTTP side
# ---------------------------------------------------------------------------------------------


class _HTTPError(Exception):
    def __init__(
        self, status: int, message: str, doc: str = _DOCS, headers: dict[str, str] | None = None, **extra: Any
    ):
        super().__init__(message)
        self.status = status
        self.body = {"message": message, "documentation_url": doc, "status": str(status), **extra}
        self.headers = headers or {}


class _NotFound(_HTTPError):
    def __init__(self, doc: str = _DOCS, message: str = "Not Found"):
        super().__init__(404, message, doc)


@dataclass
class _Failure:
    status: int
    times: int | None
    path_prefix: str
    rate_limit: bool
    secondary: bool
    message: str | None
    reset_in: int
    retry_after: int | None


class _Response:
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None):
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.raw = raw


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # keep-alive + small answers: no 40 ms delayed-ACK stalls
    timeout = 60  # an idle keep-alive connection is dropped after a minute
    server_version = "GitHub.com"
    sys_version = ""
    emulator: GitHubEmulator  # set on a per-emulator subclass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
        pass

    def setup(self) -> None:
        super().setup()
        with self.emulator._lock:
            self.emulator._connections.add(self.connection)

    def finish(self) -> None:
        with self.emulator._lock:
            self.emulator._connections.discard(self.connection)
        super().finish()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        resp = self.emulator._handle(self.command, self.path, dict(self.headers.items()))
        payload = resp.raw if resp.raw is not None else (
            b"" if resp.body is None else json.dumps(resp.body, indent=2).encode()
        )
        self.send_response(resp.status)
        headers = {"Content-Type": "application/json; charset=utf-8", **resp.headers}
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve


class GitHubEmulator:
    """Local GitHub REST API emulator; see the module docstring."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        server_repo: str = "Seregawpn/Nexy_server",
        releases_repo: str = "Seregawpn/Nexy_production",
        host: str = "127.0.0.1",
        port: int = 0,
        per_page_default: int = 30,
    ) -> None:
        self.token = token
        self.server_repo = server_repo
        self.releases_repo = releases_repo
        self.host = host
        self.port = port
        self.per_page_default = per_page_default
        self.requests: list[tuple[str, str]] = []  # (method, path without query)
        self.request_log: list[dict[str, Any]] = []  # method, path, query, status
        self.scenario = "healthy"
        self.rate_limit_limit = 5000
        self.rate_limit_remaining = 5000
        self.rate_limit_reset = int(time.time()) + 3600
        self._lock = threading.RLock()
        self._failures: list[_Failure] = []
        self._connections: set[socket.socket] = set()  # open keep-alive connections, closed by stop()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._request_counter = 0
        self.state: GitHubState = _healthy_state(server_repo, releases_repo)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> GitHubEmulator:
        if self._httpd is not None:
            return self
        handler = type("GitHubEmulatorHandler", (_Handler,), {"emulator": self})
        httpd = ThreadingHTTPServer((self.host, self.port), handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False  # idle keep-alive connections must not block stop()
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, name="github-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:  # a client's idle keep-alive connection must not outlive stop()
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> GitHubEmulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL (``GITHUB_API_URL`` / PyGithub ``base_url``), e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    # -- state helpers ---------------------------------------------------------------------------
    @property
    def server(self) -> Repo:
        repo = self.state.repo(self.server_repo)
        assert repo is not None
        return repo

    @property
    def releases(self) -> Repo:
        repo = self.state.repo(self.releases_repo)
        assert repo is not None
        return repo

    def reset(self) -> None:
        """Back to the healthy data; clears injected failures and the rate-limit budget."""
        with self._lock:
            self.state = _healthy_state(self.server_repo, self.releases_repo)
            self._failures.clear()
            self.rate_limit_remaining = self.rate_limit_limit
            self.rate_limit_reset = int(time.time()) + 3600
            self.scenario = "healthy"

    def apply_scenario(self, name: str) -> None:
        """Reset to healthy (data, failures, rate limit), then apply scenario ``name``."""
        if name not in _SCENARIO_APPLY:
            raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
        with self._lock:
            self.reset()
            _SCENARIO_APPLY[name](self)
            self.scenario = name

    def manifest(self) -> dict[str, Any]:
        """The parsed manifest.json of the server repo."""
        return json.loads(self.server.files[MANIFEST_PATH])

    def set_manifest(self, version: str, build: str, url: str, **artifact_fields: Any) -> None:
        """Rewrite manifest.json (top-level and artifact version/build, artifact url, extra artifact fields)."""
        with self._lock:
            data = self.manifest()
            data["version"] = version
            data["build"] = build
            data["artifact"].update({"url": url, "version": version, "build": build, **artifact_fields})
            self.server.files[MANIFEST_PATH] = json.dumps(data, indent=2) + "\n"

    def set_rate_limit(self, remaining: int, *, limit: int | None = None, reset_in: int = 3600) -> None:
        """Set the core rate-limit budget; at 0 every request answers the primary rate-limit 403."""
        with self._lock:
            if limit is not None:
                self.rate_limit_limit = limit
            self.rate_limit_remaining = remaining
            self.rate_limit_reset = int(time.time()) + reset_in

    def fail(
        self,
        status: int,
        times: int | None = 1,
        path_prefix: str = "",
        *,
        rate_limit: bool | None = None,
        secondary: bool = False,
        message: str | None = None,
        reset_in: int = 60,
        retry_after: int | None = None,
    ) -> None:
        """Make the next ``times`` requests whose path starts with ``path_prefix`` fail.

        - 401: ``Bad credentials``; 404: ``Not Found``; 403: ``Resource not accessible by
          integration`` unless ``rate_limit``; 5xx: ``Server Error``.
        - ``rate_limit=True`` (the default for 429): the primary rate-limit answer, i.e. message
          ``API rate limit exceeded for user ID ...``, ``x-ratelimit-remaining: 0`` and
          ``x-ratelimit-reset`` = now + ``reset_in``. ``secondary=True``: the secondary rate-limit
          message (``You have exceeded a secondary rate limit...``) with ``retry-after``
          (``retry_after`` or 60).
        - ``retry_after`` adds a ``retry-after`` header to any failure.
        - ``times=None``: until :meth:`clear_failures`.
        """
        if rate_limit is None:
            rate_limit = status == 429 or secondary
        with self._lock:
            self._failures.append(
                _Failure(status, times, path_prefix, rate_limit, secondary, message, reset_in, retry_after)
            )

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    # -- request handling -----------------------------------------------------------------------
    def _handle(self, method: str, target: str, headers: dict[str, str]) -> _Response:
        parsed = urllib.parse.urlsplit(target)
        path = parsed.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        lower_headers = {k.lower(): v for k, v in headers.items()}
        with self._lock:
            self._request_counter += 1
            request_id = f"E{self._request_counter:04X}:{self.port:X}:{self._request_counter * 7919:08X}"
            self.requests.append((method, path))
            try:
                resp = self._dispatch(method, path, query, lower_headers, request_id)
            except _HTTPError as err:
                resp = _Response(err.status, err.body, err.headers)
            except Exception as err:  # pragma: no cover - emulator bug: answer like GitHub would
                resp = _Response(500, {"message": f"Server Error: {err!r}", "documentation_url": _DOCS, "status": "500"})
            resp.headers = {**self._standard_headers(request_id), **resp.headers}
            self.request_log.append({"method": method, "path": path, "query": query, "status": resp.status})
            return resp

    def _standard_headers(self, request_id: str) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.rate_limit_limit),
            "x-ratelimit-remaining": str(self.rate_limit_remaining),
            "x-ratelimit-reset": str(self.rate_limit_reset),
            "x-ratelimit-used": str(self.rate_limit_limit - self.rate_limit_remaining),
            "x-ratelimit-resource": "core",
            "x-github-api-version-selected": API_VERSION,
            "x-github-media-type": "github.v3; format=json",
            "x-github-request-id": request_id,
            "x-oauth-scopes": "repo, workflow",
            "x-accepted-oauth-scopes": "repo",
        }

    def _rate_limited(self, request_id: str, reset: int, status: int = 403) -> _HTTPError:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return _HTTPError(
            status,
            f"API rate limit exceeded for user ID {USER_ID}. If you reach out to GitHub Support for help, "
            f"please include the request ID {request_id} and timestamp {now}.",
            "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
            headers={
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": str(reset),
                "x-ratelimit-used": str(self.rate_limit_limit),
            },
        )

    def _injected_failure(self, path: str, request_id: str) -> _HTTPError | None:
        for failure in self._failures:
            if not path.startswith(failure.path_prefix):
                continue
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
            extra_headers = {"retry-after": str(failure.retry_after)} if failure.retry_after is not None else {}
            if failure.secondary:
                err = _HTTPError(
                    failure.status,
                    failure.message
                    or "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
                    f"again. If you reach out to GitHub Support for help, please include the request ID {request_id}.",
                    "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api"
                    "#about-secondary-rate-limits",
                )
                extra_headers.setdefault("retry-after", "60")
            elif failure.rate_limit:
                # only this answer looks exhausted; the emulator's own budget is left alone
                err = self._rate_limited(request_id, int(time.time()) + failure.reset_in, failure.status)
                if failure.message:
                    err.body["message"] = failure.message
            elif failure.status == 401:
                err = _HTTPError(401, failure.message or "Bad credentials")
            elif failure.status == 403:
                err = _HTTPError(
                    403, failure.message or "Resource not accessible by integration", headers={}
                )
            elif failure.status == 404:
                err = _NotFound(message=failure.message or "Not Found")
            else:
                err = _HTTPError(failure.status, failure.message or "Server Error")
            err.headers.update(extra_headers)
            return err
        return None

    def _dispatch(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], request_id: str
    ) -> _Response:
        injected = self._injected_failure(path, request_id)
        if injected is not None:
            raise injected

        auth = headers.get("authorization", "")
        scheme, _, credential = auth.partition(" ")
        if not auth:
            raise _HTTPError(401, "Requires authentication")
        if scheme.lower() not in ("token", "bearer") or credential.strip() != self.token:
            raise _HTTPError(401, "Bad credentials")

        if path == "/rate_limit" and method == "GET":  # free, like GitHub
            return _Response(200, self._rate_limit_body())

        now = int(time.time())
        if now >= self.rate_limit_reset:
            self.rate_limit_remaining = self.rate_limit_limit
            self.rate_limit_reset = now + 3600
        if self.rate_limit_remaining <= 0:
            raise self._rate_limited(request_id, self.rate_limit_reset)
        self.rate_limit_remaining -= 1

        if method not in ("GET", "HEAD"):
            raise _NotFound()
        for pattern, fn in self._routes():
            m = pattern.fullmatch(path)
            if m:
                groups = [urllib.parse.unquote(g) for g in m.groups()]
                repo = self.state.repo(f"{groups[0]}/{groups[1]}")
                if repo is None:
                    raise _NotFound(f"{_DOCS}/repos/repos#get-a-repository")
                return fn(repo, *groups[2:], query=query, headers=headers, path=path)
        raise _NotFound()

    def _routes(self) -> list[tuple[re.Pattern[str], Callable[..., _Response]]]:
        seg = r"([^/]+)"
        base = rf"/repos/{seg}/{seg}"
        return [
            (re.compile(base), self._get_repo),
            (re.compile(base + r"/branches"), self._list_branches),
            (re.compile(base + rf"/branches/(.+)"), self._get_branch),
            (re.compile(base + r"/commits"), self._list_commits),
            (re.compile(base + rf"/commits/{seg}"), self._get_commit),
            (re.compile(base + r"/compare/(.+)"), self._compare),
            (re.compile(base + r"/contents"), self._get_contents),
            (re.compile(base + r"/contents/(.*)"), self._get_contents),
            (re.compile(base + r"/actions/workflows"), self._list_workflows),
            (re.compile(base + rf"/actions/workflows/{seg}"), self._get_workflow),
            (re.compile(base + rf"/actions/workflows/{seg}/runs"), self._list_workflow_runs),
            (re.compile(base + r"/actions/runs"), self._list_repo_runs),
            (re.compile(base + r"/actions/runs/(\d+)"), self._get_run),
            (re.compile(base + r"/actions/secrets"), self._list_secrets),
            (re.compile(base + rf"/actions/secrets/{seg}"), self._get_secret),
            (re.compile(base + r"/releases"), self._list_releases),
            (re.compile(base + r"/releases/latest"), self._get_latest_release),
            (re.compile(base + r"/releases/tags/(.+)"), self._get_release_by_tag),
            (re.compile(base + r"/releases/assets/(\d+)"), self._get_asset),
            (re.compile(base + r"/releases/(\d+)"), self._get_release),
            (re.compile(base + r"/releases/(\d+)/assets"), self._list_assets),
        ]

    # -- pagination ------------------------------------------------------------------------------
    def _paginate(self, items: list[Any], query: dict[str, str], path: str) -> tuple[list[Any], dict[str, str]]:
        try:
            per_page = int(query.get("per_page") or self.per_page_default)
            page = int(query.get("page") or 1)
        except ValueError:
            raise _HTTPError(422, "Validation Failed") from None
        per_page = max(1, min(per_page, 100))
        page = max(1, page)
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        links = []

        def link(p: int, rel: str) -> str:
            q = dict(query)
            q["page"] = str(p)
            if "per_page" in query:
                q["per_page"] = str(per_page)
            return f'<{self.url}{path}?{urllib.parse.urlencode(q)}>; rel="{rel}"'

        if page > 1:
            links.append(link(min(page - 1, last), "prev"))
        if page < last:
            links.append(link(page + 1, "next"))
            links.append(link(last, "last"))
        if page > 1:
            links.append(link(1, "first"))
        return chunk, ({"Link": ", ".join(links)} if links else {})

    # -- JSON renderers ----------------------------------------------------------------------------
    def _api(self, repo: Repo, suffix: str = "") -> str:
        return f"{self.url}/repos/{repo.full_name}{suffix}"

    def _user(self, login: str) -> dict[str, Any]:
        uid = USER_ID if login == "Seregawpn" else int(_sha(login)[:7], 16)
        return {
            "login": login,
            "id": uid,
            "node_id": _node_id("U", uid),
            "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4",
            "gravatar_id": "",
            "url": f"{self.url}/users/{login}",
            "html_url": f"https://github.com/{login}",
            "repos_url": f"{self.url}/users/{login}/repos",
            "type": "User",
            "user_view_type": "public",
            "site_admin": False,
        }

    def _repo_json(self, repo: Repo, minimal: bool = False) -> dict[str, Any]:
        api = self._api(repo)
        data: dict[str, Any] = {
            "id": repo.id,
            "node_id": _node_id("R", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "owner": self._user(repo.owner),
            "html_url": f"https://github.com/{repo.full_name}",
            "description": repo.description,
            "fork": False,
            "url": api,
            "branches_url": api + "/branches{/branch}",
            "commits_url": api + "/commits{/sha}",
            "contents_url": api + "/contents/{+path}",
            "releases_url": api + "/releases{/id}",
            "tags_url": api + "/tags",
            "git_url": f"git://github.com/{repo.full_name}.git",
            "clone_url": f"https://github.com/{repo.full_name}.git",
        }
        if minimal:
            return data
        pushed = max((c.date for c in repo.commits.values()), default=repo.created_at)
        data.update(
            {
                "created_at": repo.created_at,
                "updated_at": pushed,
                "pushed_at": pushed,
                "size": 4096,
                "stargazers_count": 0,
                "watchers_count": 0,
                "language": "Python",
                "has_issues": True,
                "forks_count": 0,
                "archived": False,
                "disabled": False,
                "open_issues_count": 0,
                "visibility": "private" if repo.private else "public",
                "default_branch": repo.default_branch,
                "permissions": {"admin": False, "maintain": False, "push": True, "triage": True, "pull": True},
            }
        )
        return data

    def _commit_json(self, repo: Repo, commit: Commit, detail: bool = False) -> dict[str, Any]:
        api = self._api(repo)
        person = {"name": commit.author_name, "email": commit.author_email, "date": commit.date}
        tree_sha = _sha("tree", commit.sha)
        data: dict[str, Any] = {
            "sha": commit.sha,
            "node_id": _node_id("C", commit.sha[:12]),
            "commit": {
                "author": dict(person),
                "committer": dict(person),
                "message": commit.message,
                "tree": {"sha": tree_sha, "url": f"{api}/git/trees/{tree_sha}"},
                "url": f"{api}/git/commits/{commit.sha}",
                "comment_count": 0,
                "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None},
            },
            "url": f"{api}/commits/{commit.sha}",
            "html_url": f"https://github.com/{repo.full_name}/commit/{commit.sha}",
            "comments_url": f"{api}/commits/{commit.sha}/comments",
            "author": self._user(commit.author_login),
            "committer": self._user(commit.author_login),
            "parents": [
                {"sha": p, "url": f"{api}/commits/{p}", "html_url": f"https://github.com/{repo.full_name}/commit/{p}"}
                for p in commit.parents
            ],
        }
        if detail:
            files = [self._file_json(repo, commit.sha, name, 3 + i) for i, name in enumerate(commit.files)]
            adds = sum(f["additions"] for f in files)
            dels = sum(f["deletions"] for f in files)
            data["stats"] = {"total": adds + dels, "additions": adds, "deletions": dels}
            data["files"] = files
        return data

    def _file_json(self, repo: Repo, ref: str, name: str, additions: int) -> dict[str, Any]:
        """A changed file (GitHub's diff-entry) as of commit ``ref``; every change is a modification here."""
        return {
            "sha": _sha("blob", ref, name),
            "filename": name,
            "status": "modified",
            "additions": additions,
            "deletions": 1,
            "changes": additions + 1,
            "blob_url": f"https://github.com/{repo.full_name}/blob/{ref}/{name}",
            "raw_url": f"https://github.com/{repo.full_name}/raw/{ref}/{name}",
            "contents_url": f"{self._api(repo)}/contents/{urllib.parse.quote(name)}?ref={ref}",
            "patch": "@@ -1,1 +1,3 @@\n-old\n+new\n+more\n+lines",
        }

    def _workflow_json(self, repo: Repo, wf: Workflow) -> dict[str, Any]:
        return {
            "id": wf.id,
            "node_id": _node_id("W", wf.id),
            "name": wf.name,
            "path": wf.path,
            "state": wf.state,
            "created_at": wf.created_at,
            "updated_at": wf.updated_at,
            "url": self._api(repo, f"/actions/workflows/{wf.id}"),
            "html_url": f"https://github.com/{repo.full_name}/blob/{repo.default_branch}/{wf.path}",
            "badge_url": f"https://github.com/{repo.full_name}/workflows/{urllib.parse.quote(wf.name)}/badge.svg",
        }

    def _run_json(self, repo: Repo, run: WorkflowRun) -> dict[str, Any]:
        api = self._api(repo)
        wf = repo.workflow(run.workflow_id)
        commit = repo.commits.get(run.head_sha)
        check_suite_id = 30_000_000_000 + run.id % 1_000_000_000
        return {
            "id": run.id,
            "name": wf.name if wf else "",
            "node_id": _node_id("WFR", run.id),
            "head_branch": run.head_branch,
            "head_sha": run.head_sha,
            "path": wf.path if wf else "",
            "display_title": run.display_title or (commit.message.splitlines()[0] if commit else ""),
            "run_number": run.run_number,
            "event": run.event,
            "status": run.status,
            "conclusion": run.conclusion,
            "workflow_id": run.workflow_id,
            "check_suite_id": check_suite_id,
            "check_suite_node_id": _node_id("CS", check_suite_id),
            "url": f"{api}/actions/runs/{run.id}",
            "html_url": f"https://github.com/{repo.full_name}/actions/runs/{run.id}",
            "pull_requests": [],
            "created_at": run.created_at,
            "updated_at": run.updated_at,
            "actor": self._user(run.actor_login),
            "triggering_actor": self._user(run.actor_login),
            "run_attempt": run.run_attempt,
            "referenced_workflows": [],
            "run_started_at": run.created_at,
            "jobs_url": f"{api}/actions/runs/{run.id}/jobs",
            "logs_url": f"{api}/actions/runs/{run.id}/logs",
            "check_suite_url": f"{api}/check-suites/{check_suite_id}",
            "artifacts_url": f"{api}/actions/runs/{run.id}/artifacts",
            "cancel_url": f"{api}/actions/runs/{run.id}/cancel",
            "rerun_url": f"{api}/actions/runs/{run.id}/rerun",
            "previous_attempt_url": None,
            "workflow_url": f"{api}/actions/workflows/{run.workflow_id}",
            "head_commit": (
                {
                    "id": commit.sha,
                    "tree_id": _sha("tree", commit.sha),
                    "message": commit.message,
                    "timestamp": commit.date,
                    "author": {"name": commit.author_name, "email": commit.author_email},
                    "committer": {"name": commit.author_name, "email": commit.author_email},
                }
                if commit
                else None
            ),
            "repository": self._repo_json(repo, minimal=True),
            "head_repository": self._repo_json(repo, minimal=True),
        }

    def _asset_json(self, repo: Repo, asset: Asset, release: Release) -> dict[str, Any]:
        return {
            "url": self._api(repo, f"/releases/assets/{asset.id}"),
            "id": asset.id,
            "node_id": _node_id("RA", asset.id),
            "name": asset.name,
            "label": asset.label,
            "uploader": self._user(repo.owner),
            "content_type": asset.content_type,
            "state": asset.state,
            "size": asset.size,
            "digest": asset.digest,
            "download_count": asset.download_count,
            "created_at": asset.created_at,
            "updated_at": asset.updated_at,
            "browser_download_url": (
                f"https://github.com/{repo.full_name}/releases/download/"
                f"{urllib.parse.quote(release.tag_name)}/{urllib.parse.quote(asset.name)}"
            ),
        }

    def _release_json(self, repo: Repo, rel: Release) -> dict[str, Any]:
        api = self._api(repo)
        return {
            "url": f"{api}/releases/{rel.id}",
            "assets_url": f"{api}/releases/{rel.id}/assets",
            "upload_url": f"https://uploads.github.com/repos/{repo.full_name}/releases/{rel.id}/assets{{?name,label}}",
            "html_url": f"https://github.com/{repo.full_name}/releases/tag/{urllib.parse.quote(rel.tag_name)}",
            "id": rel.id,
            "author": self._user(repo.owner),
            "node_id": _node_id("RE", rel.id),
            "tag_name": rel.tag_name,
            "target_commitish": rel.target_commitish,
            "name": rel.name,
            "draft": rel.draft,
            "immutable": False,
            "prerelease": rel.prerelease,
            "created_at": rel.created_at,
            "updated_at": max([rel.created_at] + [a.updated_at for a in rel.assets]),
            "published_at": rel.published_at,
            "assets": [self._asset_json(repo, a, rel) for a in rel.assets],
            "tarball_url": f"{api}/tarball/{urllib.parse.quote(rel.tag_name)}",
            "zipball_url": f"{api}/zipball/{urllib.parse.quote(rel.tag_name)}",
            "body": rel.body,
        }

    def _rate_limit_body(self) -> dict[str, Any]:
        core = {
            "limit": self.rate_limit_limit,
            "remaining": self.rate_limit_remaining,
            "reset": self.rate_limit_reset,
            "used": self.rate_limit_limit - self.rate_limit_remaining,
            "resource": "core",
        }
        search = {"limit": 30, "remaining": 30, "reset": int(time.time()) + 60, "used": 0, "resource": "search"}
        graphql = {"limit": 5000, "remaining": 5000, "reset": int(time.time()) + 3600, "used": 0, "resource": "graphql"}
        return {"resources": {"core": core, "search": search, "graphql": graphql}, "rate": core}

    # -- endpoint implementations ----------------------------------------------------------------
    def _resolve_ref(self, repo: Repo, ref: str) -> list[str] | None:
        """Commit shas reachable from ``ref`` (branch, tag of a release, or commit sha/prefix)."""
        if ref in repo.branches:
            return repo.branches[ref]
        rel = repo.release(ref)
        if rel is not None:
            ref = rel.target_commitish
            if ref in repo.branches:
                return repo.branches[ref]
        if len(ref) >= 7 and re.fullmatch(r"[0-9a-f]+", ref):
            for shas in repo.branches.values():
                for i, sha in enumerate(shas):
                    if sha.startswith(ref):
                        return shas[i:]
        return None

    def _get_repo(self, repo: Repo, **_: Any) -> _Response:
        return _Response(200, self._repo_json(repo))

    def _branch_json(self, repo: Repo, name: str) -> dict[str, Any]:
        head = repo.commits[repo.branches[name][0]]
        quoted = urllib.parse.quote(name, safe="")
        return {
            "name": name,
            "commit": self._commit_json(repo, head),
            "_links": {
                "self": self._api(repo, f"/branches/{quoted}"),
                "html": f"https://github.com/{repo.full_name}/tree/{name}",
            },
            "protected": False,
            "protection": {"enabled": False, "required_status_checks": {"enforcement_level": "off", "contexts": [], "checks": []}},
            "protection_url": self._api(repo, f"/branches/{quoted}/protection"),
        }

    def _list_branches(self, repo: Repo, *, query: dict[str, str], path: str, **_: Any) -> _Response:
        items = [
            {"name": b, "commit": {"sha": shas[0], "url": self._api(repo, f"/commits/{shas[0]}")}, "protected": False}
            for b, shas in sorted(repo.branches.items())
            if shas
        ]
        page, link = self._paginate(items, query, path)
        return _Response(200, page, link)

    def _get_branch(self, repo: Repo, name: str, **_: Any) -> _Response:
        if not repo.branches.get(name):
            raise _HTTPError(404, "Branch not found", f"{_DOCS}/branches/branches#get-a-branch")
        return _Response(200, self._branch_json(repo, name))

    def _list_commits(self, repo: Repo, *, query: dict[str, str], path: str, **_: Any) -> _Response:
        ref = query.get("sha") or repo.default_branch
        shas = self._resolve_ref(repo, ref)
        if shas is None:
            raise _NotFound(f"{_DOCS}/commits/commits#list-commits")
        commits = [repo.commits[s] for s in shas]
        if query.get("path"):
            p = query["path"].strip("/")
            commits = [c for c in commits if any(f == p or f.startswith(p + "/") for f in c.files)]
        if query.get("author"):
            a = query["author"].lower()
            commits = [c for c in commits if a in (c.author_login.lower(), c.author_email.lower())]
        since = _parse_iso(query["since"]) if query.get("since") else None
        until = _parse_iso(query["until"]) if query.get("until") else None
        if since:
            commits = [c for c in commits if _parse_iso(c.date) >= since]  # type: ignore[operator]
        if until:
            commits = [c for c in commits if _parse_iso(c.date) <= until]  # type: ignore[operator]
        page, link = self._paginate(commits, query, path)
        return _Response(200, [self._commit_json(repo, c) for c in page], link)

    def _get_commit(self, repo: Repo, ref: str, **_: Any) -> _Response:
        shas = self._resolve_ref(repo, ref)
        if not shas:
            raise _HTTPError(422, f"No commit found for SHA: {ref}", f"{_DOCS}/commits/commits#get-a-commit")
        return _Response(200, self._commit_json(repo, repo.commits[shas[0]], detail=True))

    def _commit_for(self, repo: Repo, ref: str) -> Commit | None:
        """The commit ``ref`` names: a branch, a release tag, or a sha (or a prefix of 7+ hex digits) the
        repository has, on a branch or not (GitHub keeps the commits a force-push dropped)."""
        owner, sep, rest = ref.partition(":")  # "owner:ref", GitHub's cross-fork form: this repo only
        if sep:
            if owner.lower() != repo.owner.lower():
                return None
            ref = rest
        if repo.branches.get(ref):
            return repo.commits[repo.branches[ref][0]]
        rel = repo.release(ref)
        if rel is not None and repo.branches.get(rel.target_commitish):
            return repo.commits[repo.branches[rel.target_commitish][0]]
        if ref in repo.commits:
            return repo.commits[ref]
        if len(ref) >= 7 and re.fullmatch(r"[0-9a-f]+", ref):
            found = [c for sha, c in repo.commits.items() if sha.startswith(ref)]
            if len(found) == 1:
                return found[0]
        return None

    def _history(self, repo: Repo, sha: str) -> list[str]:
        """``sha`` and every ancestor the repository has, nearest first (breadth-first over parents)."""
        seen, order, queue = {sha}, [sha], [sha]
        while queue:
            current = repo.commits.get(queue.pop(0))
            for parent in current.parents if current else []:
                if parent not in seen and parent in repo.commits:
                    seen.add(parent)
                    order.append(parent)
                    queue.append(parent)
        return order

    def _compare(self, repo: Repo, basehead: str, *, query: dict[str, str], path: str, **_: Any) -> _Response:
        doc = f"{_DOCS}/commits/commits#compare-two-commits"
        base_ref, sep, head_ref = basehead.partition("...")
        if not sep or not base_ref or not head_ref:
            raise _NotFound(doc)
        base, head = self._commit_for(repo, base_ref), self._commit_for(repo, head_ref)
        if base is None or head is None:
            raise _NotFound(doc)
        head_history, base_history = self._history(repo, head.sha), self._history(repo, base.sha)
        in_base = set(base_history)
        merge_base = next((s for s in head_history if s in in_base), None)
        if merge_base is None:
            raise _HTTPError(404, f"No common ancestor between {base_ref} and {head_ref}.", doc)
        ahead = [s for s in head_history if s not in in_base]
        in_head = set(head_history)
        behind = [s for s in base_history if s not in in_head]
        if base.sha == head.sha:
            status = "identical"
        elif not behind:
            status = "ahead"
        elif not ahead:
            status = "behind"
        else:
            status = "diverged"
        commits = [repo.commits[s] for s in reversed(ahead)]  # chronological, as the API returns them: oldest first

        # the diff merge-base...head: every file a head-side commit changed, in path order, at most 300
        touched: dict[str, int] = {}
        for c in commits:
            for name in c.files:
                touched[name] = touched.get(name, 0) + 3
        files = [self._file_json(repo, head.sha, name, adds) for name, adds in sorted(touched.items())][:300]

        paged = "page" in query or "per_page" in query
        if paged:  # PyGithub always sends page=1; pages are oldest first, the files come with page 1 only
            try:
                per_page = max(1, min(int(query.get("per_page") or 250), 1000))
                page = max(1, int(query.get("page") or 1))
            except ValueError:
                raise _HTTPError(422, "Validation Failed", doc) from None
            shown = commits[(page - 1) * per_page : page * per_page]
            last = max(1, -(-len(commits) // per_page))
            links = []

            def link(p: int, rel: str) -> str:
                q = {**query, "page": str(p)}
                return f'<{self.url}{path}?{urllib.parse.urlencode(q)}>; rel="{rel}"'

            if page > 1:
                links.append(link(min(page - 1, last), "prev"))
            if page < last:
                links += [link(page + 1, "next"), link(last, "last")]
            if page > 1:
                links.append(link(1, "first"))
            headers = {"Link": ", ".join(links)} if links else {}
        else:  # without paging: the 250 most recent commits
            page, shown, headers = 1, commits[-250:], {}

        quoted = urllib.parse.quote(basehead, safe="/:.")
        web = f"https://github.com/{repo.full_name}/compare"
        body: dict[str, Any] = {
            "url": self._api(repo, f"/compare/{quoted}"),
            "html_url": f"{web}/{quoted}",
            "permalink_url": f"{web}/{repo.owner}:{base.sha}...{repo.owner}:{head.sha}",
            "diff_url": f"{web}/{quoted}.diff",
            "patch_url": f"{web}/{quoted}.patch",
            "base_commit": self._commit_json(repo, base),
            "merge_base_commit": self._commit_json(repo, repo.commits[merge_base]),
            "status": status,
            "ahead_by": len(ahead),
            "behind_by": len(behind),
            "total_commits": len(ahead),
            "commits": [self._commit_json(repo, c) for c in shown],
        }
        if page == 1:
            body["files"] = files
        return _Response(200, body, headers)

    def _repo_files(self, repo: Repo) -> dict[str, str]:
        files = dict(repo.files)
        for wf in repo.workflows:
            files[wf.path] = wf.yaml
        return files

    def _get_contents(
        self, repo: Repo, file_path: str = "", *, query: dict[str, str], headers: dict[str, str], **_: Any
    ) -> _Response:
        ref = query.get("ref") or repo.default_branch
        shas = self._resolve_ref(repo, ref)
        if shas is None:
            raise _NotFound(f"{_DOCS}/repos/contents#get-repository-content", f"No commit found for the ref {ref}")
        file_path = file_path.strip("/")
        files = self._repo_files(repo)
        api = self._api(repo)
        ref_q = urllib.parse.quote(ref, safe="")

        def entry(p: str, kind: str) -> dict[str, Any]:
            text = files.get(p, "")
            sha = _sha("blob", repo.full_name, p, text) if kind == "file" else _sha("tree", repo.full_name, p)
            quoted = urllib.parse.quote(p)
            data = {
                "name": p.rsplit("/", 1)[-1],
                "path": p,
                "sha": sha,
                "size": len(text.encode()) if kind == "file" else 0,
                "url": f"{api}/contents/{quoted}?ref={ref_q}",
                "html_url": f"https://github.com/{repo.full_name}/{'blob' if kind == 'file' else 'tree'}/{ref}/{p}",
                "git_url": f"{api}/git/{'blobs' if kind == 'file' else 'trees'}/{sha}",
                "download_url": (
                    f"https://raw.githubusercontent.com/{repo.full_name}/{ref}/{quoted}" if kind == "file" else None
                ),
                "type": kind,
            }
            data["_links"] = {"self": data["url"], "git": data["git_url"], "html": data["html_url"]}
            return data

        if file_path in files:
            text = files[file_path]
            accept = headers.get("accept", "")
            if "application/vnd.github.raw" in accept:
                return _Response(200, None, {"Content-Type": "text/plain; charset=utf-8"}, raw=text.encode())
            data = entry(file_path, "file")
            data["content"] = base64.encodebytes(text.encode()).decode()
            data["encoding"] = "base64"
            return _Response(200, data)
        prefix = file_path + "/" if file_path else ""
        children: dict[str, str] = {}
        for p in files:
            if p.startswith(prefix):
                rest = p[len(prefix) :]
                child = rest.split("/", 1)[0]
                children[prefix + child] = "dir" if "/" in rest else "file"
        if not children:
            raise _NotFound(f"{_DOCS}/repos/contents#get-repository-content")
        return _Response(200, [entry(p, kind) for p, kind in sorted(children.items())])

    def _list_workflows(self, repo: Repo, *, query: dict[str, str], path: str, **_: Any) -> _Response:
        page, link = self._paginate(repo.workflows, query, path)
        return _Response(
            200, {"total_count": len(repo.workflows), "workflows": [self._workflow_json(repo, w) for w in page]}, link
        )

    def _find_workflow(self, repo: Repo, ident: str) -> Workflow:
        wf = repo.workflow(ident)
        if wf is None:
            raise _NotFound(f"{_DOCS}/actions/workflows#get-a-workflow")
        return wf

    def _get_workflow(self, repo: Repo, ident: str, **_: Any) -> _Response:
        return _Response(200, self._workflow_json(repo, self._find_workflow(repo, ident)))

    def _filter_runs(self, runs: list[WorkflowRun], query: dict[str, str]) -> list[WorkflowRun]:
        if query.get("branch"):
            runs = [r for r in runs if r.head_branch == query["branch"]]
        if query.get("event"):
            runs = [r for r in runs if r.event == query["event"]]
        if query.get("head_sha"):
            runs = [r for r in runs if r.head_sha == query["head_sha"]]
        if query.get("actor"):
            runs = [r for r in runs if r.actor_login.lower() == query["actor"].lower()]
        if query.get("status"):  # GitHub accepts a status or a conclusion here
            st = query["status"]
            runs = [r for r in runs if r.status == st or r.conclusion == st]
        return sorted(runs, key=lambda r: (r.created_at, r.id), reverse=True)

    def _runs_response(
        self, repo: Repo, runs: list[WorkflowRun], query: dict[str, str], path: str
    ) -> _Response:
        runs = self._filter_runs(runs, query)
        page, link = self._paginate(runs, query, path)
        return _Response(
            200, {"total_count": len(runs), "workflow_runs": [self._run_json(repo, r) for r in page]}, link
        )

    def _list_workflow_runs(self, repo: Repo, ident: str, *, query: dict[str, str], path: str, **_: Any) -> _Response:
        wf = self._find_workflow(repo, ident)
        return self._runs_response(repo, [r for r in repo.runs if r.workflow_id == wf.id], query, path)

    def _list_repo_runs(self, repo: Repo, *, query: dict[str, str], path: str, **_: Any) -> _Response:
        return self._runs_response(repo, list(repo.runs), query, path)

    def _get_run(self, repo: Repo, run_id: str, **_: Any) -> _Response:
        run = next((r for r in repo.runs if str(r.id) == run_id), None)
        if run is None:
            raise _NotFound(f"{_DOCS}/actions/workflow-runs#get-a-workflow-run")
        return _Response(200, self._run_json(repo, run))

    def _check_secrets_access(self, repo: Repo, doc: str) -> None:
        if not repo.secrets_readable:
            raise _HTTPError(
                403,
                "Resource not accessible by integration",
                doc,
                headers={"x-accepted-github-permissions": "secrets=read"},
            )

    def _list_secrets(self, repo: Repo, *, query: dict[str, str], path: str, **_: Any) -> _Response:
        self._check_secrets_access(repo, f"{_DOCS}/actions/secrets#list-repository-secrets")
        secrets = sorted(repo.secrets, key=lambda s: s.name)
        page, link = self._paginate(secrets, query, path)
        body = {
            "total_count": len(secrets),
            "secrets": [{"name": s.name, "created_at": s.created_at, "updated_at": s.updated_at} for s in page],
        }
        return _Response(200, body, link)

    def _get_secret(self, repo: Repo, name: str, **_: Any) -> _Response:
        self._check_secrets_access(repo, f"{_DOCS}/actions/secrets#get-a-repository-secret")
        secret = next((s for s in repo.secrets if s.name == name), None)
        if secret is None:
            raise _NotFound(f"{_DOCS}/actions/secrets#get-a-repository-secret")
        return _Response(200, {"name": secret.name, "created_at": secret.created_at, "updated_at": secret.updated_at})

    def _sorted_releases(self, repo: Repo) -> list[Release]:
        return sorted(repo.releases, key=lambda r: (r.created_at, r.id), reverse=True)

    def _list_releases(self, repo: Repo, *, query: dict[str, str], path: str, **_: Any) -> _Response:
        page, link = self._paginate(self._sorted_releases(repo), query, path)
        return _Response(200, [self._release_json(repo, r) for r in page], link)

    def _get_latest_release(self, repo: Repo, **_: Any) -> _Response:
        for rel in self._sorted_releases(repo):
            if not rel.draft and not rel.prerelease:
                return _Response(200, self._release_json(repo, rel))
        raise _NotFound(f"{_DOCS}/releases/releases#get-the-latest-release")

    def _get_release_by_tag(self, repo: Repo, tag: str, **_: Any) -> _Response:
        rel = repo.release(tag)
        if rel is None or rel.draft:
            raise _NotFound(f"{_DOCS}/releases/releases#get-a-release-by-tag-name")
        return _Response(200, self._release_json(repo, rel))

    def _find_release(self, repo: Repo, rid: str) -> Release:
        rel = next((r for r in repo.releases if str(r.id) == rid), None)
        if rel is None:
            raise _NotFound(f"{_DOCS}/releases/releases#get-a-release")
        return rel

    def _get_release(self, repo: Repo, rid: str, **_: Any) -> _Response:
        return _Response(200, self._release_json(repo, self._find_release(repo, rid)))

    def _list_assets(self, repo: Repo, rid: str, *, query: dict[str, str], path: str, **_: Any) -> _Response:
        rel = self._find_release(repo, rid)
        page, link = self._paginate(rel.assets, query, path)
        return _Response(200, [self._asset_json(repo, a, rel) for a in page], link)

    def _get_asset(self, repo: Repo, aid: str, **_: Any) -> _Response:
        for rel in repo.releases:
            for asset in rel.assets:
                if str(asset.id) == aid:
                    return _Response(200, self._asset_json(repo, asset, rel))
        raise _NotFound(f"{_DOCS}/releases/assets#get-a-release-asset")


def main() -> None:  # pragma: no cover - manual use: python -m sandbox.github_emulator [scenario]
    import sys

    emu = GitHubEmulator(port=int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    if len(sys.argv) > 1:
        emu.apply_scenario(sys.argv[1])
    emu.start()
    print(f"GITHUB_API_URL={emu.url}\nGITHUB_TOKEN={emu.token}\nscenario={emu.scenario}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        emu.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
