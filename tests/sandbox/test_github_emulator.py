"""The GitHub emulator, driven by the real PyGithub client over real HTTP (no mocks).

PyGithub is built with ``retry=None`` (no urllib3 retries) and ``seconds_between_requests=0``
(PyGithub otherwise sleeps 0.25 s before every request) so that every test stays fast and every
error surfaces as the exception PyGithub itself raises.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from github import Auth, Github
from github.GithubException import (
    BadCredentialsException,
    GithubException,
    RateLimitExceededException,
    UnknownObjectException,
)
from urllib3.util import Retry

from sandbox.github_emulator import (
    DEPLOY_WORKFLOW_PATH,
    MANIFEST_PATH,
    RELEASE_TAG,
    SCENARIOS,
    GitHubEmulator,
)

SERVER = "Seregawpn/Nexy_server"
RELEASES = "Seregawpn/Nexy_production"


@pytest.fixture(scope="module")
def _running() -> Iterator[GitHubEmulator]:
    with GitHubEmulator() as emulator:
        yield emulator


@pytest.fixture
def emu(_running: GitHubEmulator) -> GitHubEmulator:
    _running.reset()
    _running.token = "ghp_sandboxtoken000000000000000000000000"
    _running.requests.clear()
    _running.request_log.clear()
    return _running


def make_client(emu: GitHubEmulator, token: str | None = None, **kwargs: Any) -> Github:
    options: dict[str, Any] = {"retry": None, "seconds_between_requests": 0, "timeout": 5}
    options.update(kwargs)
    return Github(auth=Auth.Token(token or emu.token), base_url=emu.url, **options)


@pytest.fixture
def gh(emu: GitHubEmulator) -> Iterator[Github]:
    client = make_client(emu)
    yield client
    client.close()


def raw_get(emu: GitHubEmulator, path: str, auth: str | None = "token") -> tuple[int, dict[str, str], Any]:
    """One plain HTTP GET (stdlib) to see exactly what goes over the wire."""
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    headers = {"Accept": "application/vnd.github+json"}
    if auth:
        headers["Authorization"] = f"{auth} {emu.token}"
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(body) if body else None


def snapshot(gh: Github) -> dict[str, Any]:
    """What the runbook's `deploy` and `release` checks would read, through PyGithub only."""
    server = gh.get_repo(SERVER)
    head = server.get_branch(server.default_branch).commit.sha
    deploy = server.get_workflow("deploy.yml")
    runs = deploy.get_runs(branch="main")
    latest = runs[0]
    manifest = json.loads(server.get_contents(MANIFEST_PATH).decoded_content)
    release = gh.get_repo(RELEASES).get_release(RELEASE_TAG)
    assets = {a.name: a for a in release.get_assets()}
    pkg = assets.get("Nexy.pkg")
    return {
        "head": head,
        "deploy_run_for_head": deploy.get_runs(head_sha=head).totalCount > 0,
        "latest_deploy": (latest.head_sha, latest.status, latest.conclusion),
        "secrets": sorted(s.name for s in server.get_secrets()),
        "assets": sorted(assets),
        "manifest": (manifest["version"], manifest["build"], manifest["artifact"]["url"]),
        "manifest_matches_release": pkg is not None
        and manifest["artifact"]["url"] == pkg.browser_download_url
        and f"{manifest['version']} ({manifest['build']})" in (pkg.label or ""),
    }


# --- repository, branch, commits ------------------------------------------------------------


def test_get_repo_and_branch(emu: GitHubEmulator, gh: Github) -> None:
    """get_repo and get_branch return the server repo's default branch and its head commit."""
    repo = gh.get_repo(SERVER)
    assert repo.full_name == SERVER
    assert repo.default_branch == "main"
    assert repo.url.startswith(emu.url)
    branch = repo.get_branch("main")
    assert branch.name == "main"
    assert branch.commit.sha == emu.server.head().sha
    assert ("GET", f"/repos/{SERVER}/branches/main") in emu.requests


def test_get_commits_follows_link_pagination(emu: GitHubEmulator, gh: Github) -> None:
    """get_commits walks more than one 30-item page through the Link header, newest first."""
    commits = list(gh.get_repo(SERVER).get_commits(sha="main"))
    assert len(commits) == 40
    assert commits[0].sha == emu.server.head().sha
    assert [c.sha for c in commits] == emu.server.branches["main"]
    pages = [entry for entry in emu.request_log if entry["path"] == f"/repos/{SERVER}/commits"]
    assert len(pages) == 2 and pages[1]["query"].get("page") == "2"


def test_get_commits_total_count_and_per_page(emu: GitHubEmulator) -> None:
    """totalCount is read from the rel="last" link, and a client per_page gives more pages."""
    client = make_client(emu, per_page=10)
    commits = client.get_repo(SERVER).get_commits()
    assert commits.totalCount == 40
    assert len(list(commits)) == 40
    pages = [e for e in emu.request_log if e["path"] == f"/repos/{SERVER}/commits" and e["query"].get("per_page") == "10"]
    assert len(pages) == 4


def test_link_header_and_error_body_on_the_wire(emu: GitHubEmulator) -> None:
    """The raw answers carry GitHub's Link format, rate-limit headers and error body shape."""
    status, headers, body = raw_get(emu, f"/repos/{SERVER}/commits?per_page=30&page=2")
    assert status == 200 and len(body) == 10
    assert headers["link"] == (
        f'<{emu.url}/repos/{SERVER}/commits?per_page=30&page=1>; rel="prev", '
        f'<{emu.url}/repos/{SERVER}/commits?per_page=30&page=1>; rel="first"'
    )
    for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "x-ratelimit-used"):
        assert headers[name].isdigit()
    status, headers, body = raw_get(emu, f"/repos/{SERVER}/nothing-here")
    assert status == 404
    assert body["message"] == "Not Found" and body["status"] == "404" and "documentation_url" in body
    assert headers["x-ratelimit-remaining"].isdigit()


def test_get_commit_lists_changed_files(emu: GitHubEmulator, gh: Github) -> None:
    """get_commit returns the files a commit touched, so a paths filter can be evaluated."""
    commit = gh.get_repo(SERVER).get_commit(emu.server.head().sha)
    assert [f.filename for f in commit.files] == ["server/main.py", MANIFEST_PATH]
    assert commit.commit.message.startswith("server: release 2.4.0")


# --- compare two commits --------------------------------------------------------------------

COMPARISON_KEYS = {
    "url", "html_url", "permalink_url", "diff_url", "patch_url", "base_commit", "merge_base_commit",
    "status", "ahead_by", "behind_by", "total_commits", "commits", "files",
}
"""GitHub's commit-comparison object (docs.github.com, Compare two commits)."""


def test_compare_a_push_of_two_commits(emu: GitHubEmulator, gh: Github) -> None:
    """repo.compare(base, head): status ahead, the commits oldest first, every file either commit changed."""
    repo = gh.get_repo(SERVER)
    base = emu.server.head().sha
    first = emu.server.add_commit("server: fix", ["server/main.py"])
    head = emu.server.add_commit("docs: explain", ["Docs/SERVER_DEPLOYMENT_GUIDE.md", "server/main.py"])
    comparison = repo.compare(base, head.sha)
    assert (comparison.status, comparison.ahead_by, comparison.behind_by, comparison.total_commits) == ("ahead", 2, 0, 2)
    assert [c.sha for c in comparison.commits] == [first.sha, head.sha]
    assert comparison.base_commit.sha == comparison.merge_base_commit.sha == base
    files = {f.filename: f for f in comparison.files}
    assert list(files) == ["Docs/SERVER_DEPLOYMENT_GUIDE.md", "server/main.py"]  # path order, each file once
    assert files["server/main.py"].status == "modified" and files["server/main.py"].additions == 6
    assert files["server/main.py"].blob_url == f"https://github.com/{SERVER}/blob/{head.sha}/server/main.py"
    assert comparison.html_url == f"https://github.com/{SERVER}/compare/{base}...{head.sha}"
    assert comparison.permalink_url == f"https://github.com/{SERVER}/compare/Seregawpn:{base}...Seregawpn:{head.sha}"
    assert comparison.diff_url.endswith(f"/compare/{base}...{head.sha}.diff")
    entry = emu.request_log[-1]
    assert entry["path"] == f"/repos/{SERVER}/compare/{base}...{head.sha}" and entry["status"] == 200


def test_compare_json_shape_on_the_wire(emu: GitHubEmulator) -> None:
    """The raw answer has GitHub's keys; without paging parameters it lists the commits and the files."""
    base = emu.server.head().sha
    head = emu.server.add_commit("server: fix", ["server/main.py"]).sha
    status, _, body = raw_get(emu, f"/repos/{SERVER}/compare/{base}...{head}")
    assert status == 200 and set(body) == COMPARISON_KEYS
    assert body["url"] == f"{emu.url}/repos/{SERVER}/compare/{base}...{head}"
    assert body["commits"][0]["sha"] == head and body["commits"][0]["commit"]["message"] == "server: fix"
    assert set(body["files"][0]) >= {"sha", "filename", "status", "additions", "deletions", "changes", "blob_url",
                                     "raw_url", "contents_url", "patch"}


def test_compare_by_branch_and_short_sha_and_the_other_statuses(emu: GitHubEmulator, gh: Github) -> None:
    """Refs may be branches or short shas; identical, behind and (after a force-push) diverged are told apart."""
    repo = gh.get_repo(SERVER)
    shas = emu.server.branches["main"]
    assert repo.compare("develop", "main").status == "identical"
    assert repo.compare(shas[0][:7], shas[3][:7]).status == "behind"
    behind = repo.compare(shas[0], shas[3])
    assert (behind.ahead_by, behind.behind_by, behind.files) == (0, 3, [])
    dropped = emu.server.force_push("main", shas[1])
    assert dropped == [shas[0]] and emu.server.head().sha == shas[1]
    rewritten = emu.server.add_commit("server: redo", ["server/requirements.txt"])
    diverged = repo.compare(shas[0], "main")
    assert (diverged.status, diverged.ahead_by, diverged.behind_by) == ("diverged", 1, 1)
    assert diverged.merge_base_commit.sha == shas[1]
    assert [f.filename for f in diverged.files] == ["server/requirements.txt"]
    assert [c.sha for c in diverged.commits] == [rewritten.sha]


def test_compare_unknown_or_garbage_collected_commit_is_a_404(emu: GitHubEmulator, gh: Github) -> None:
    """A sha GitHub does not have (never pushed, or dropped by a force-push and collected) answers 404."""
    repo = gh.get_repo(SERVER)
    head = emu.server.head()
    with pytest.raises(UnknownObjectException) as info:
        repo.compare("0" * 40, head.sha)
    assert info.value.data["message"] == "Not Found"
    assert info.value.data["documentation_url"].endswith("#compare-two-commits")
    emu.server.force_push("main", head.parents[0])
    assert repo.compare(head.sha, "main").status == "behind"  # still kept by GitHub
    del emu.server.commits[head.sha]
    with pytest.raises(UnknownObjectException):
        repo.compare(head.sha, "main")
    assert raw_get(emu, f"/repos/{SERVER}/compare/main..develop")[0] == 404  # the basehead needs `...`


def test_compare_lists_at_most_300_files(emu: GitHubEmulator, gh: Github) -> None:
    """GitHub lists the first 300 changed files, and no count of the others."""
    base = emu.server.head().sha
    emu.server.add_commit("server: generated", [f"server/gen/m{i:03}.py" for i in range(320)])
    files = gh.get_repo(SERVER).compare(base, "main").files
    assert len(files) == 300 and files[-1].filename == "server/gen/m299.py"


def test_compare_paginates_the_commits_and_gives_the_files_on_page_one(emu: GitHubEmulator, gh: Github) -> None:
    """With per_page the commits come in pages (oldest first, Link header); the files only on the first page."""
    base = emu.server.head().sha
    added = [emu.server.add_commit(f"server: step {i}", [f"server/step_{i}.py"]).sha for i in range(5)]
    comparison = gh.get_repo(SERVER).compare(base, "main", comparison_commits_per_page=2)
    assert [c.sha for c in comparison.commits] == added
    assert len(comparison.files) == 5
    pages = [e for e in emu.request_log if e["path"].endswith(f"/compare/{base}...main")]
    assert [e["query"].get("page") for e in pages] == ["1", "2", "3"]
    status, headers, body = raw_get(emu, f"/repos/{SERVER}/compare/{base}...main?per_page=2&page=2")
    assert status == 200 and "files" not in body and [c["sha"] for c in body["commits"]] == added[2:4]
    assert 'rel="next"' in headers["link"] and 'rel="first"' in headers["link"]


# --- workflows and runs ---------------------------------------------------------------------


def test_get_workflow_by_file_name_and_its_runs(emu: GitHubEmulator, gh: Github) -> None:
    """get_workflow('deploy.yml').get_runs(branch='main') shows a successful run for the head sha."""
    repo = gh.get_repo(SERVER)
    workflow = repo.get_workflow("deploy.yml")
    assert workflow.name == "Deploy to Azure VM"
    assert workflow.path == DEPLOY_WORKFLOW_PATH
    assert workflow.state == "active"
    runs = workflow.get_runs(branch="main")
    latest = runs[0]
    assert latest.head_sha == repo.get_branch("main").commit.sha
    assert (latest.status, latest.conclusion, latest.event) == ("completed", "success", "push")
    assert latest.html_url == f"https://github.com/{SERVER}/actions/runs/{latest.id}"
    assert runs.totalCount == len([r for r in emu.server.runs if r.workflow_id == workflow.id])
    assert len(list(runs)) == runs.totalCount > 0
    assert repo.get_workflow(workflow.id).name == workflow.name
    assert repo.get_workflow_run(latest.id).conclusion == "success"
    assert sorted(w.name for w in repo.get_workflows()) == ["CI", "Deploy to Azure VM"]


def test_workflow_yaml_has_the_trigger_config(gh: Github) -> None:
    """get_contents of deploy.yml returns the base64-decoded YAML with the push branch and paths filter."""
    content = gh.get_repo(SERVER).get_contents(DEPLOY_WORKFLOW_PATH, ref="main")
    assert content.encoding == "base64" and content.type == "file"
    text = content.decoded_content.decode()
    assert "branches: [main]" in text
    assert "paths: ['server/**', '.github/workflows/deploy.yml']" in text
    assert "secrets.AZURE_CREDENTIALS" in text


def test_run_states_edited_in_the_model_are_visible(emu: GitHubEmulator, gh: Github) -> None:
    """A run added to the state as in_progress is what PyGithub reports for a new commit."""
    commit = emu.server.add_commit("server: tweak", ["server/main.py"])
    emu.server.add_run("deploy.yml", commit.sha, status="in_progress")
    latest = gh.get_repo(SERVER).get_workflow("deploy.yml").get_runs(branch="main")[0]
    assert (latest.head_sha, latest.status, latest.conclusion) == (commit.sha, "in_progress", None)


# --- secrets ---------------------------------------------------------------------------------


def test_get_secrets_lists_names(gh: Github) -> None:
    """repo.get_secrets() lists secret names (no values), AZURE_CREDENTIALS included."""
    secrets = gh.get_repo(SERVER).get_secrets()
    assert [s.name for s in secrets] == ["AZURE_CREDENTIALS", "AZURE_RESOURCE_GROUP", "AZURE_VM_NAME"]
    assert secrets.totalCount == 3


def test_get_secrets_paginates(emu: GitHubEmulator) -> None:
    """The secrets list is paginated like every wrapped GitHub list."""
    names = [s.name for s in make_client(emu, per_page=2).get_repo(SERVER).get_secrets()]
    assert names == ["AZURE_CREDENTIALS", "AZURE_RESOURCE_GROUP", "AZURE_VM_NAME"]
    assert sum(1 for e in emu.request_log if e["path"] == f"/repos/{SERVER}/actions/secrets") == 2


def test_secrets_without_permission_is_a_403(emu: GitHubEmulator, gh: Github) -> None:
    """A token without the Secrets permission gets 403 'Resource not accessible by integration'."""
    emu.server.secrets_readable = False
    with pytest.raises(GithubException) as info:
        list(gh.get_repo(SERVER).get_secrets())
    err = info.value
    assert type(err) is GithubException
    assert err.status == 403
    assert err.data["message"] == "Resource not accessible by integration"
    assert err.headers["x-accepted-github-permissions"] == "secrets=read"


# --- releases and manifest -----------------------------------------------------------------


def test_release_update_assets(gh: Github) -> None:
    """get_release('Update').get_assets() lists Nexy.dmg and Nexy.pkg with size, state and URL."""
    release = gh.get_repo(RELEASES).get_release(RELEASE_TAG)
    assert release.tag_name == RELEASE_TAG
    assert release.name == "Nexy 2.4.0 (240)" and "build: 240" in release.body
    assets = {a.name: a for a in release.get_assets()}
    assert sorted(assets) == ["Nexy.dmg", "Nexy.pkg"]
    pkg = assets["Nexy.pkg"]
    assert pkg.state == "uploaded" and pkg.size > 0 and pkg.updated_at is not None
    assert pkg.content_type == "application/octet-stream"
    assert pkg.browser_download_url == f"https://github.com/{RELEASES}/releases/download/Update/Nexy.pkg"
    assert pkg.label == "Nexy 2.4.0 (240)"
    assert [a.name for a in release.assets] == ["Nexy.dmg", "Nexy.pkg"]


def test_manifest_matches_release_when_healthy(gh: Github) -> None:
    """manifest.json's artifact url/version/build/size/sha256 agree with the Update release's Nexy.pkg."""
    manifest = json.loads(gh.get_repo(SERVER).get_contents(MANIFEST_PATH).decoded_content)
    pkg = next(a for a in gh.get_repo(RELEASES).get_release(RELEASE_TAG).get_assets() if a.name == "Nexy.pkg")
    artifact = manifest["artifact"]
    assert (manifest["version"], manifest["build"]) == ("2.4.0", "240")
    assert (artifact["version"], artifact["build"]) == ("2.4.0", "240")
    assert artifact["url"] == pkg.browser_download_url
    assert artifact["size"] == pkg.size
    assert f"sha256:{artifact['sha256']}" == pkg.digest


def test_set_manifest_changes_what_get_contents_returns(emu: GitHubEmulator, gh: Github) -> None:
    """set_manifest rewrites manifest.json's version, build and artifact url."""
    emu.set_manifest("2.5.0", "250", "https://example.invalid/Nexy.pkg")
    manifest = json.loads(gh.get_repo(SERVER).get_contents(MANIFEST_PATH, ref="main").decoded_content)
    assert (manifest["version"], manifest["build"]) == ("2.5.0", "250")
    assert manifest["artifact"]["url"] == "https://example.invalid/Nexy.pkg"
    assert manifest["artifact"]["version"] == "2.5.0"


# --- errors --------------------------------------------------------------------------------


def test_wrong_token_raises_bad_credentials(emu: GitHubEmulator) -> None:
    """A token the emulator does not know answers 401 Bad credentials -> BadCredentialsException."""
    with pytest.raises(BadCredentialsException) as info:
        make_client(emu, token="ghp_wrong").get_repo(SERVER)
    assert info.value.status == 401
    assert info.value.data["message"] == "Bad credentials"


def test_bearer_scheme_is_accepted_and_missing_auth_is_401(emu: GitHubEmulator) -> None:
    """'Bearer X' works like 'token X'; no Authorization header answers 401 Requires authentication."""
    assert raw_get(emu, f"/repos/{SERVER}", auth="Bearer")[0] == 200
    status, _, body = raw_get(emu, f"/repos/{SERVER}", auth=None)
    assert status == 401 and body["message"] == "Requires authentication"


def test_injected_401(emu: GitHubEmulator, gh: Github) -> None:
    """fail(401) makes the next request raise BadCredentialsException, the one after succeeds."""
    emu.fail(401)
    with pytest.raises(BadCredentialsException):
        gh.get_repo(SERVER)
    assert gh.get_repo(SERVER).name == "Nexy_server"


def test_injected_403_is_a_plain_github_exception(emu: GitHubEmulator, gh: Github) -> None:
    """fail(403) answers 'Resource not accessible by integration' -> GithubException 403, not a rate limit."""
    emu.fail(403)
    with pytest.raises(GithubException) as info:
        gh.get_repo(SERVER)
    assert type(info.value) is GithubException
    assert info.value.status == 403
    assert info.value.message == "Resource not accessible by integration"


def test_not_found_raises_unknown_object(emu: GitHubEmulator, gh: Github) -> None:
    """Unknown repos, branches, tags, workflows and injected 404s raise UnknownObjectException."""
    with pytest.raises(UnknownObjectException):
        gh.get_repo("Seregawpn/nope")
    repo = gh.get_repo(SERVER)
    with pytest.raises(UnknownObjectException):
        repo.get_branch("nope")
    with pytest.raises(UnknownObjectException):
        repo.get_workflow("nope.yml").name  # lazy object: the GET happens on attribute access
    with pytest.raises(UnknownObjectException):
        repo.get_contents("server/nope.txt")
    with pytest.raises(UnknownObjectException):
        gh.get_repo(RELEASES).get_release("nope")
    emu.fail(404)
    with pytest.raises(UnknownObjectException):
        repo.get_branch("main")


def test_fail_honours_times_and_path_prefix(emu: GitHubEmulator, gh: Github) -> None:
    """fail(times=2, path_prefix=...) hits only matching paths, exactly twice."""
    emu.fail(404, times=2, path_prefix=f"/repos/{RELEASES}")
    assert gh.get_repo(SERVER).name == "Nexy_server"
    for _ in range(2):
        with pytest.raises(UnknownObjectException):
            gh.get_repo(RELEASES)
    assert gh.get_repo(RELEASES).name == "Nexy_production"


def test_primary_rate_limit_403(emu: GitHubEmulator, gh: Github) -> None:
    """A primary rate-limit 403 raises RateLimitExceededException with remaining 0 and a future reset."""
    emu.fail(403, rate_limit=True, reset_in=120)
    with pytest.raises(RateLimitExceededException) as info:
        gh.get_repo(SERVER)
    err = info.value
    assert err.status == 403
    assert err.data["message"].startswith("API rate limit exceeded for user ID")  # .message is None here
    assert err.headers["x-ratelimit-remaining"] == "0"
    assert int(err.headers["x-ratelimit-reset"]) >= int(time.time()) + 100
    assert gh.get_repo(SERVER).name == "Nexy_server"  # only `times` answers were limited


def test_rate_limit_429_is_a_plain_github_exception(emu: GitHubEmulator, gh: Github) -> None:
    """PyGithub maps only 403 to RateLimitExceededException: a 429 is GithubException(429) with remaining 0."""
    emu.fail(429)
    with pytest.raises(GithubException) as info:
        gh.get_repo(SERVER)
    err = info.value
    assert not isinstance(err, RateLimitExceededException)
    assert err.status == 429
    assert err.headers["x-ratelimit-remaining"] == "0"
    assert err.message.startswith("API rate limit exceeded")


def test_secondary_rate_limit(emu: GitHubEmulator, gh: Github) -> None:
    """A secondary rate-limit 403 raises RateLimitExceededException and carries retry-after."""
    emu.fail(403, secondary=True, retry_after=30)
    with pytest.raises(RateLimitExceededException) as info:
        gh.get_repo(SERVER)
    assert info.value.data["message"].startswith("You have exceeded a secondary rate limit")
    assert info.value.headers["retry-after"] == "30"


def test_exhausted_budget_rate_limits_every_request(emu: GitHubEmulator, gh: Github) -> None:
    """With the budget set to 2, two requests pass, the third is rate limited, and /rate_limit is free."""
    emu.set_rate_limit(2, reset_in=600)
    repo = gh.get_repo(SERVER)
    assert gh.rate_limiting == (1, 5000)
    repo.get_branch("main")
    assert gh.rate_limiting == (0, 5000)
    assert gh.rate_limiting_resettime == emu.rate_limit_reset
    with pytest.raises(RateLimitExceededException):
        repo.get_branch("main")
    core = gh.get_rate_limit().resources.core
    assert (core.remaining, core.limit) == (0, 5000)


def test_product_retry_policy(emu: GitHubEmulator) -> None:
    """A urllib3 Retry on 5xx only rides out one 502, fails fast on a persistent 500, never waits on a rate limit."""
    retry = Retry(
        total=2,
        backoff_factor=0.05,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=False,
        raise_on_status=False,
    )
    client = make_client(emu, retry=retry)
    emu.fail(502, times=1)
    assert client.get_repo(SERVER).name == "Nexy_server"
    emu.fail(500, times=None)
    started = time.monotonic()
    with pytest.raises(GithubException) as info:
        client.get_repo(SERVER)
    assert info.value.status == 500
    emu.clear_failures()
    emu.fail(403, rate_limit=True, reset_in=3600)
    with pytest.raises(RateLimitExceededException):
        client.get_repo(SERVER)
    assert time.monotonic() - started < 2


# --- scenarios -----------------------------------------------------------------------------


def test_scenarios_are_described() -> None:
    """SCENARIOS names every supported scenario with a description."""
    assert set(SCENARIOS) == {
        "healthy",
        "deploy-not-triggered",
        "missing-secret",
        "release-missing-asset",
        "manifest-mismatch",
    }
    assert all(isinstance(text, str) and text for text in SCENARIOS.values())


def test_healthy_snapshot(emu: GitHubEmulator, gh: Github) -> None:
    """In the healthy data every deploy and release check passes."""
    snap = snapshot(gh)
    assert snap["deploy_run_for_head"]
    assert snap["latest_deploy"] == (snap["head"], "completed", "success")
    assert "AZURE_CREDENTIALS" in snap["secrets"]
    assert snap["assets"] == ["Nexy.dmg", "Nexy.pkg"]
    assert snap["manifest"] == ("2.4.0", "240", f"https://github.com/{RELEASES}/releases/download/Update/Nexy.pkg")
    assert snap["manifest_matches_release"]


@pytest.mark.parametrize(
    ("scenario", "changed"),
    [
        ("deploy-not-triggered", {"head", "deploy_run_for_head"}),
        ("missing-secret", {"secrets", "latest_deploy"}),
        ("release-missing-asset", {"assets", "manifest_matches_release"}),
        ("manifest-mismatch", {"manifest", "manifest_matches_release"}),
    ],
)
def test_each_scenario_changes_what_pygithub_returns(
    emu: GitHubEmulator, gh: Github, scenario: str, changed: set[str]
) -> None:
    """Each scenario changes exactly the facts its runbook check looks at, as seen through PyGithub."""
    healthy = snapshot(gh)
    emu.apply_scenario(scenario)
    assert emu.scenario == scenario
    faulty = snapshot(gh)
    assert {key for key in healthy if healthy[key] != faulty[key]} == changed


def test_deploy_not_triggered_details(emu: GitHubEmulator, gh: Github) -> None:
    """The new head touches server/ and has a CI run but no deploy run; the last deploy is for the old head."""
    old_head = emu.server.head().sha
    emu.apply_scenario("deploy-not-triggered")
    repo = gh.get_repo(SERVER)
    head = repo.get_branch("main").commit.sha
    assert head != old_head
    assert any(f.filename.startswith("server/") for f in repo.get_commit(head).files)
    assert repo.get_workflow("deploy.yml").get_runs(branch="main")[0].head_sha == old_head
    assert [r.name for r in repo.get_workflow_runs(head_sha=head)] == ["CI"]


def test_missing_secret_details(emu: GitHubEmulator, gh: Github) -> None:
    """AZURE_CREDENTIALS is gone from the secrets list and the latest deploy run failed."""
    emu.apply_scenario("missing-secret")
    repo = gh.get_repo(SERVER)
    assert "AZURE_CREDENTIALS" not in [s.name for s in repo.get_secrets()]
    assert repo.get_workflow("deploy.yml").get_runs(branch="main")[0].conclusion == "failure"


def test_release_missing_asset_details(emu: GitHubEmulator, gh: Github) -> None:
    """The Update release holds only Nexy.dmg."""
    emu.apply_scenario("release-missing-asset")
    assert [a.name for a in gh.get_repo(RELEASES).get_release(RELEASE_TAG).get_assets()] == ["Nexy.dmg"]


def test_manifest_mismatch_details(emu: GitHubEmulator, gh: Github) -> None:
    """The manifest's version, build and url point at the previous release, field by field unequal to Update."""
    emu.apply_scenario("manifest-mismatch")
    manifest = json.loads(gh.get_repo(SERVER).get_contents(MANIFEST_PATH).decoded_content)
    releases = gh.get_repo(RELEASES)
    pkg = next(a for a in releases.get_release(RELEASE_TAG).get_assets() if a.name == "Nexy.pkg")
    assert (manifest["version"], manifest["build"]) == ("2.3.0", "230")
    assert manifest["artifact"]["url"] != pkg.browser_download_url
    assert manifest["artifact"]["size"] != pkg.size
    old = next(a for a in releases.get_release("v2.3.0").get_assets() if a.name == "Nexy.pkg")
    assert manifest["artifact"]["url"] == old.browser_download_url


def test_apply_scenario_resets_first(emu: GitHubEmulator, gh: Github) -> None:
    """apply_scenario starts from healthy data, and an unknown name is a ValueError."""
    emu.apply_scenario("missing-secret")
    emu.apply_scenario("release-missing-asset")
    assert "AZURE_CREDENTIALS" in [s.name for s in gh.get_repo(SERVER).get_secrets()]
    with pytest.raises(ValueError, match="unknown scenario"):
        emu.apply_scenario("nope")


def test_start_stop_as_context_manager() -> None:
    """A second emulator starts on its own free port and stops cleanly on context exit."""
    with GitHubEmulator() as other:
        assert other.url.startswith("http://127.0.0.1:") and other.port > 0
        client = Github(auth=Auth.Token(other.token), base_url=other.url, retry=None, seconds_between_requests=0)
        assert client.get_repo(SERVER).id > 0
        client.close()
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", other.port, timeout=1).request("GET", "/")
