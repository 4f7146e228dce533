"""End to end: /nexy deploy and /nexy release through signed requests, the worker, the real PyGithub
client and the GitHub emulator, for the healthy case, each GitHub scenario and each failure; and
/nexy release against manifest.json as deployed on the simulated VM, read by one run-command through
the Azure emulator, or from the server repository when run-commands cannot reach the VM."""
from __future__ import annotations

import socket
import threading
import time
from datetime import datetime, timezone

import pytest
from rq import Queue

from bot import render
from bot.contract import IO_QUEUE
from bot.dispatch import queue_for
from bot.item import Route
from clients.runcommand import RunResult
from runbook.deploy import matches, parse_triggers
from runbook.release import vm_manifest
from sandbox.github_emulator import DEFAULT_TOKEN, DEPLOY_WORKFLOW_YAML

SERVER = "Seregawpn/Nexy_server"
RELEASES = "Seregawpn/Nexy_production"
REPO_MANIFEST = f"/repos/{SERVER}/contents/server/updates/manifests/manifest.json"
NO_SUBSCRIPTION = ("This is the server repository's copy, not the one deployed on the VM: the VM cannot be "
                   "reached by run-command (AZURE_SUBSCRIPTION_ID is required to reach the VM through Azure)")


@pytest.fixture
def github_bot(serve_bot, make_settings, github):
    settings = make_settings()
    serve_bot(settings)
    return settings


def _ask(slack, work, settings, words):
    """Send `/nexy <words>`, run the worker, and return the bot's last thread reply as plain text."""
    assert "queued" in slack.slash_command(words).json()["text"]
    work(settings)
    return _last_reply(slack)


def _last_reply(slack):
    replies = [m for m in slack.messages("C0OPS") if m.thread_ts and m.thread_ts != m.ts and not m.ephemeral_to]
    reply = replies[-1]
    return reply.text + "\n" + render.plain(reply.blocks)


def _paths(github):
    return [path for _, path in github.requests]


# -- /nexy deploy (runbook 2) ----------------------------------------------------------------

def test_deploy_healthy(github_bot, slack, work, github):
    """On the healthy repo, deploy says the head commit is deployed, shows the triggers and finds the secret."""
    head = github.server.head().sha
    report = _ask(slack, work, github_bot, "deploy")
    assert f"`{head[:7]}` on `main` is deployed" in report
    assert "succeeded" in report and "`server/**`" in report and "`workflow_dispatch`" in report
    assert "The `AZURE_CREDENTIALS` secret exists" in report
    assert "Fix (runbook 2)" not in report
    paths = _paths(github)
    assert f"/repos/{SERVER}/actions/workflows/deploy.yml" in paths
    assert f"/repos/{SERVER}/contents/.github/workflows/deploy.yml" in paths
    assert f"/repos/{SERVER}/actions/secrets" in paths
    assert len(paths) <= 10


def test_deploy_not_triggered(github_bot, slack, work, github):
    """A head commit under server/ with no deploy run is reported not triggered, with the runbook fix."""
    github.apply_scenario("deploy-not-triggered")
    head = github.server.head().sha
    report = _ask(slack, work, github_bot, "deploy")
    assert "not triggered" in report and f"`{head[:7]}`" in report
    assert "matching the paths filter: `server/config/settings.py`, `server/main.py`" in report
    assert "Push changes to target branch/path" in report
    assert f"gh workflow run deploy.yml -R {SERVER} --ref main" in report
    assert "(not the latest commit)" in report
    assert "/runs" in " ".join(_paths(github)) and any(
        e["query"].get("head_sha") == head for e in github.request_log)


def test_deploy_docs_only_commit_is_correctly_not_deployed(github_bot, slack, work, github):
    """A docs-only head commit is outside the paths filter: correctly not deployed, last deploy shown."""
    github.server.add_commit("docs: clarify rollback", ["Docs/SERVER_DEPLOYMENT_GUIDE.md"])
    report = _ask(slack, work, github_bot, "deploy")
    assert "correctly not deployed" in report
    assert "none matching the paths filter `server/**`" in report
    assert "The last deploy" in report and "Nothing to fix" in report


def _deploy_workflow(github):
    return github.server.workflow("deploy.yml")


def test_deploy_push_of_a_server_change_then_a_docs_only_head_is_not_triggered(github_bot, slack, work, github):
    """GitHub judges a push on all the files it changed: a server change under a docs-only head needed a run."""
    server = github.server
    deployed = server.head().sha  # the last deploy run is for this commit
    server.add_commit("server: fix the health version", ["server/main.py"])
    head = server.add_commit("docs: explain the fix", ["Docs/SERVER_DEPLOYMENT_GUIDE.md"]).sha
    report = _ask(slack, work, github_bot, "deploy")
    assert (f"not triggered: `{head[:7]}` on `main` matches the workflow's trigger (the 2 commits since the last "
            f"deploy run (`{deployed[:7]}`) change `server/main.py` under the trigger paths), but `deploy.yml` has "
            "no run for it.") in report
    assert "*Since the last deploy run* (<https://github.com/" in report
    assert (f"|{deployed[:7]}...{head[:7]}>) 2 commits changed 2 files: "
            "`Docs/SERVER_DEPLOYMENT_GUIDE.md`, `server/main.py`; matching the paths filter: `server/main.py`") in report
    assert "the changes since the last deploy run qualify, so GitHub did not start the run" in report
    assert "correctly not deployed" not in report
    assert f"/repos/{SERVER}/compare/{deployed}...{head}" in _paths(github)


def test_deploy_docs_only_changes_since_the_last_run_are_correctly_not_deployed(github_bot, slack, work, github):
    """Several docs-only commits since the last deploy run: nothing under the paths changed, nothing to deploy."""
    server = github.server
    deployed = server.head().sha
    server.add_commit("docs: rollback notes", ["Docs/SERVER_DEPLOYMENT_GUIDE.md"])
    head = server.add_commit("docs: readme", ["README.md"]).sha
    report = _ask(slack, work, github_bot, "deploy")
    assert (f"`{head[:7]}` on `main`: correctly not deployed: no change under the trigger paths since the last "
            f"deploy run (`{deployed[:7]}`): the 2 commits since change only `Docs/SERVER_DEPLOYMENT_GUIDE.md`, "
            "`README.md`, none matching the paths filter `server/**`, `.github/workflows/deploy.yml`.") in report
    assert "The last deploy, " in report and f"of `{deployed[:7]}`, succeeded" in report
    assert "Nothing to fix" in report and "not triggered" not in report


def test_deploy_without_any_previous_run_falls_back_to_the_head_commit(github_bot, slack, work, github):
    """No deploy run on the branch yet: the head commit's own files are judged, and the report says so."""
    server = github.server
    workflow = _deploy_workflow(github)
    server.runs = [r for r in server.runs if r.workflow_id != workflow.id]
    head = server.head().sha
    report = _ask(slack, work, github_bot, "deploy")
    assert f"not triggered: `{head[:7]}` on `main` matches the workflow's trigger, but `deploy.yml` has no run" in report
    assert ("`deploy.yml` has no run on `main` yet, so there is no last deploy to compare with: judged on the "
            "latest commit's own files.") in report
    assert "matching the paths filter: `server/main.py`, `server/updates/manifests/manifest.json`" in report
    assert "*Latest deploy run on `main`* none" in report
    assert not any("/compare/" in path for path in _paths(github))


def test_deploy_without_any_previous_run_and_a_docs_only_head(github_bot, slack, work, github):
    """With no run to compare with, a docs-only head commit is still correctly not deployed (on its own files)."""
    server = github.server
    workflow = _deploy_workflow(github)
    server.runs = [r for r in server.runs if r.workflow_id != workflow.id]
    server.add_commit("docs: clarify rollback", ["Docs/SERVER_DEPLOYMENT_GUIDE.md"])
    report = _ask(slack, work, github_bot, "deploy")
    assert "it changes only `Docs/SERVER_DEPLOYMENT_GUIDE.md`, none matching the paths filter" in report
    assert "correctly not deployed" in report and "has no run on `main` yet" in report


def test_deploy_after_a_force_push_github_no_longer_has_the_deployed_commit(github_bot, slack, work, github):
    """The last run's commit was force-pushed away and is gone (compare 404): said, and the head commit judged."""
    server = github.server
    deployed = server.head()
    server.force_push("main", deployed.parents[0])
    del server.commits[deployed.sha]  # garbage-collected: GitHub answers 404 for it
    head = server.add_commit("docs: rewrite the release notes", ["Docs/RELEASE_AND_UPDATE_GUIDE.md"]).sha
    report = _ask(slack, work, github_bot, "deploy")
    assert (f"`{deployed.sha[:7]}`, the commit of the last deploy run, is not on `main` any more: GitHub cannot "
            "compare it with the head (404; a force-push dropped it)") in report
    assert "judged on the latest commit's own files" in report
    assert f"`{head[:7]}` on `main` is outside the workflow's trigger (it changes only " in report
    assert "correctly not deployed" in report
    assert f"/repos/{SERVER}/compare/{deployed.sha}...{head}" in _paths(github)


def test_deploy_after_a_force_push_judges_the_commits_since_the_common_ancestor(github_bot, slack, work, github):
    """A force-pushed branch (compare: diverged) is judged on what the deployed commit does not have."""
    server = github.server
    deployed = server.head()
    server.force_push("main", deployed.parents[0])
    server.add_commit("server: redo the release", ["server/updates/update_server.py"])
    head = server.add_commit("docs: notes", ["README.md"]).sha
    report = _ask(slack, work, github_bot, "deploy")
    assert (f"`{deployed.sha[:7]}`, the commit of the last deploy run, is no longer on `main` (force-pushed: "
            f"1 commit(s) of that run are gone from it): judged on the 2 commit(s) on `main` since their common "
            f"ancestor `{deployed.parents[0][:7]}`, which that run did not deploy") in report
    assert "not triggered" in report and "`server/updates/update_server.py` under the trigger paths" in report
    assert f"`{head[:7]}`" in report


def test_deploy_more_changed_files_than_github_lists_says_at_least(github_bot, slack, work, github):
    """The compare lists at most 300 files: the report says 'at least'."""
    server = github.server
    server.add_commit("server: generated clients", [f"server/gen/client_{i:03}.py" for i in range(320)])
    server.add_commit("docs: generated clients", ["Docs/CLIENTS.md"])
    report = _ask(slack, work, github_bot, "deploy")
    assert "not triggered" in report
    assert "2 commits changed at least 300 files" in report
    assert "matching the paths filter: at least `server/gen/client_000.py`" in report
    assert "change at least `server/gen/client_000.py`" in report


def test_deploy_missing_secret(github_bot, slack, work, github):
    """Without AZURE_CREDENTIALS the failed deploy is reported with 'Verify AZURE_CREDENTIALS secret'."""
    github.apply_scenario("missing-secret")
    report = _ask(slack, work, github_bot, "deploy")
    assert "ended in failure" in report
    assert "The `AZURE_CREDENTIALS` secret is missing" in report
    assert "Verify AZURE_CREDENTIALS secret" in report
    assert f"gh secret set AZURE_CREDENTIALS -R {SERVER}" in report


def test_deploy_secrets_not_readable_names_the_permission(github_bot, slack, work, github):
    """A token without Secrets: read still gets the rest of the report, and is told which permission is missing."""
    github.server.secrets_readable = False
    report = _ask(slack, work, github_bot, "deploy")
    assert "is deployed" in report
    assert "Could not check the `AZURE_CREDENTIALS` secret" in report
    assert "403 Resource not accessible by integration" in report and "Secrets: read" in report


def test_deploy_disabled_workflow(github_bot, slack, work, github):
    """A disabled deploy workflow is reported with the command that enables it."""
    github.server.workflow("deploy.yml").state = "disabled_manually"
    report = _ask(slack, work, github_bot, "deploy")
    assert "is disabled (disabled_manually)" in report
    assert f"gh workflow enable deploy.yml -R {SERVER}" in report


def test_deploy_wrong_workflow_name_is_a_clear_404(serve_bot, make_settings, slack, work, github):
    """A workflow file that is not in the repo says so, and which setting names it."""
    settings = make_settings(nexy_deploy_workflow="deploy-prod.yml")
    serve_bot(settings)
    report = _ask(slack, work, settings, "deploy")
    assert "Not found on GitHub (404): workflow `deploy-prod.yml`" in report
    assert "NEXY_DEPLOY_WORKFLOW" in report


def test_deploy_bad_token(serve_bot, make_settings, slack, work, github):
    """A rejected GITHUB_TOKEN (401) is said plainly; the token never reaches Slack."""
    wrong = "ghp_wrongtoken000000000000000000000000000"
    settings = make_settings(github_token=wrong)
    serve_bot(settings)
    report = _ask(slack, work, settings, "deploy")
    assert "GitHub rejected GITHUB_TOKEN (401 Bad credentials)" in report
    assert "Traceback" not in report
    assert all(wrong not in str(call) for call in slack.calls_to("chat.postMessage"))
    assert len(github.requests) == 1  # nothing more is tried with a rejected token


def test_deploy_rate_limited(github_bot, slack, work, github):
    """A spent rate limit says until when (UTC), and the worker neither retries nor waits."""
    github.set_rate_limit(0, reset_in=1800)
    reset = datetime.fromtimestamp(github.rate_limit_reset, timezone.utc)
    started = time.monotonic()
    report = _ask(slack, work, github_bot, "deploy")
    assert f"GitHub rate-limited until {reset:%H:%M} UTC" in report
    assert time.monotonic() - started < 10
    assert len(github.requests) == 1


def test_deploy_secondary_rate_limit_429(github_bot, slack, work, github):
    """A 429 from GitHub is reported as a rate limit, not as an unknown error."""
    github.fail(429, times=None, reset_in=300)
    report = _ask(slack, work, github_bot, "deploy")
    assert "GitHub rate-limited until" in report


def test_github_timeout_is_bounded(serve_bot, make_settings, slack, work, github):
    """A GitHub that accepts connections but never answers costs a bounded time and a clear message."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])
            except OSError:
                pass

    threading.Thread(target=accept, daemon=True).start()
    try:
        settings = make_settings(github_api_url=f"http://127.0.0.1:{silent.getsockname()[1]}",
                                 nexy_github_timeout_s=1)
        serve_bot(settings)
        started = time.monotonic()
        report = _ask(slack, work, settings, "deploy")
        assert time.monotonic() - started < 10
        assert "GitHub did not answer within 1 s" in report
    finally:
        stop.set()
        for conn in held:
            conn.close()
        silent.close()


# -- /nexy release (runbook 7-9) ---------------------------------------------------------------

def test_release_healthy(github_bot, slack, work, github):
    """Without a way to the VM, the healthy release matches the server repository's manifest, and it says so."""
    report = _ask(slack, work, github_bot, "release")
    assert ("`Update` (2.4.0 build 240) has `Nexy.dmg`, `Nexy.pkg`, and manifest.json in the server repository "
            "matches it") in report
    assert "`version`, `build`, `artifact.url`" in report
    assert " MB, updated " in report
    assert "publish_assets_and_sync.py" not in report
    assert f"*manifest.json* from the server repository (`{SERVER}` `server/updates/manifests/manifest.json` at `main`)" in report
    assert NO_SUBSCRIPTION in report
    paths = _paths(github)
    assert f"/repos/{RELEASES}/releases/tags/Update" in paths
    assert REPO_MANIFEST in paths


def test_release_missing_asset(github_bot, slack, work, github):
    """Without Nexy.pkg the release is reported incomplete with the runbook 7 publish commands."""
    github.apply_scenario("release-missing-asset")
    report = _ask(slack, work, github_bot, "release")
    assert "`Update` lacks `Nexy.pkg`" in report
    assert ":x: `Nexy.pkg` missing" in report
    assert "`artifact.url` manifest" in report and "the release has no such asset" in report
    assert "python3 scripts/publish_assets_and_sync.py --dry-run" in report
    assert f"gh release view Update -R {RELEASES}" in report
    assert "gh auth login" in report


def test_release_manifest_mismatch(github_bot, slack, work, github):
    """A manifest for the previous release names each differing field and gives the runbook 9 fix."""
    github.apply_scenario("manifest-mismatch")
    report = _ask(slack, work, github_bot, "release")
    assert "manifest.json in the server repository does not match the release" in report
    assert ":x: `version` manifest `2.3.0`, release `2.4.0`" in report
    assert ":x: `build` manifest `230`, release `240`" in report
    assert f"releases/download/v2.3.0/Nexy.pkg`, release `https://github.com/{RELEASES}/releases/download/Update/Nexy.pkg`" in report
    assert "Fix (runbook 9)" in report
    assert "python3 scripts/publish_assets_and_sync.py --dry-run\npython3 scripts/publish_assets_and_sync.py" in report


def test_release_tag_missing(github_bot, slack, work, github):
    """No release `Update` at all is a finding with the publish commands, not a failure."""
    github.releases.releases = [r for r in github.releases.releases if r.tag_name != "Update"]
    report = _ask(slack, work, github_bot, "release")
    assert f"release `Update` is not on `{RELEASES}`" in report
    assert "Fix (runbook 7, 8)" in report


def test_release_bad_token(serve_bot, make_settings, slack, work, github):
    """A rejected token on the release check is reported, not raised."""
    settings = make_settings(github_token=DEFAULT_TOKEN[:-4] + "beef")
    serve_bot(settings)
    report = _ask(slack, work, settings, "release")
    assert "Release (runbook 7-9) could not finish" in report and "GitHub rejected GITHUB_TOKEN" in report


# -- /nexy release against manifest.json as deployed on the VM ------------------------------------

@pytest.fixture
def release_vm_bot(serve_bot, vm_settings, github):
    """The bot reaching the simulated VM through the Azure emulator, and the GitHub emulator."""
    settings = vm_settings()
    serve_bot(settings)
    return settings


def _queued_on(redis, settings):
    """{queue name: jobs waiting} for io and the VM's queue."""
    return {name: Queue(name, connection=redis).count for name in (IO_QUEUE, settings.vm_queue)}


def test_release_reads_the_manifest_deployed_on_the_vm(release_vm_bot, slack, work, github, azure, vm, redis):
    """With run-commands reaching the VM, release goes to the VM's queue and compares the VM's own manifest.json."""
    assert "queued" in slack.slash_command("release").json()["text"]
    assert _queued_on(redis, release_vm_bot) == {IO_QUEUE: 0, release_vm_bot.vm_queue: 1}
    work(release_vm_bot)
    report = _last_reply(slack)
    assert ("`Update` (2.4.0 build 240) has `Nexy.dmg`, `Nexy.pkg`, and manifest.json on the VM matches it "
            "(`version`, `build`, `artifact.url`, `artifact.version`, `artifact.build`, `artifact.size`, "
            "`artifact.sha256`)") in report
    assert f"*manifest.json* on the VM (`{vm.app_dir}/server/updates/manifests/manifest.json`, changed " in report
    assert "VERSION `2.4.0.240`; read by Run Command)" in report
    assert "one run-command on the VM" in report
    assert "server repository's copy" not in report
    assert len(azure.history) == 1 and "@@manifest.json" in azure.history[0]["script"]  # one run-command
    assert REPO_MANIFEST not in _paths(github)  # the VM's copy was read: the repository's is not needed


def test_release_stale_vm_manifest_is_a_mismatch_from_the_vm(release_vm_bot, slack, work, github, vm):
    """A VM left on the previous version (stale-version) is reported field by field, with the VM as the source."""
    vm.break_("stale-version")
    report = _ask(slack, work, release_vm_bot, "release")
    assert ("manifest.json on the VM does not match the release: `version`, `build`, `artifact.version`, "
            "`artifact.build` differ") in report
    assert ":x: `version` manifest `2.3.0`, release `2.4.0`" in report
    assert ":x: `build` manifest `233`, release `240`" in report
    assert ":white_check_mark: `artifact.url` https://github.com/Seregawpn/Nexy_production/releases/download/Update/Nexy.pkg" in report
    assert "*manifest.json* on the VM (`" in report and "VERSION `2.3.0.233`" in report
    assert "Fix (runbook 9)" in report
    assert "the VM is behind it" in report and "bash scripts/update_server_version.sh 2.4.0.240" in report
    assert REPO_MANIFEST not in _paths(github)
    # the server repository still matches the release: only the VM is behind
    assert (github.manifest()["version"], github.manifest()["build"]) == ("2.4.0", "240")


def test_release_missing_manifest_on_the_vm(release_vm_bot, slack, work, github, vm):
    """No manifest.json on the VM is a finding from the VM, not a reason to read another copy."""
    (vm.app_dir / "server/updates/manifests/manifest.json").unlink()
    report = _ask(slack, work, release_vm_bot, "release")
    assert "manifest.json on the VM could not be read (`" in report and "manifest.json` is not on the VM)" in report
    assert "Fix (runbook 9)" in report
    assert REPO_MANIFEST not in _paths(github)


def test_release_without_run_command_falls_back_to_the_repository(serve_bot, vm_settings, slack, work, github,
                                                                 azure, vm, redis):
    """NEXY_EXECUTOR=azure without AZURE_SUBSCRIPTION_ID: release stays on io and says it read the repository's copy."""
    vm.break_("stale-version")  # the VM is behind, but it cannot be read: the repository's copy matches
    settings = vm_settings(azure_subscription_id=None)
    serve_bot(settings)
    assert "queued" in slack.slash_command("release").json()["text"]
    assert _queued_on(redis, settings) == {IO_QUEUE: 1, settings.vm_queue: 0}
    work(settings)
    report = _last_reply(slack)
    assert "manifest.json in the server repository matches it" in report
    assert NO_SUBSCRIPTION in report
    assert REPO_MANIFEST in _paths(github)
    assert azure.requests == []  # nothing was asked of Azure


def test_release_falls_back_when_azure_refuses_the_run_command(serve_bot, vm_settings, slack, work, github, azure):
    """A run-command Azure refuses (401) falls back to the repository's copy, saying why (the token)."""
    settings = vm_settings(azure_access_token="expired-arm-token-1234")
    serve_bot(settings)
    report = _ask(slack, work, settings, "release")
    assert "manifest.json in the server repository matches it" in report
    assert "not the one deployed on the VM: the run-command failed: Azure refused the credentials" in report
    assert "the token is missing, expired or for another tenant" in report
    assert azure.history == []
    assert all("expired-arm-token-1234" not in str(call) for call in slack.calls_to("chat.postMessage"))


@pytest.mark.parametrize("overrides, on_vm", [
    ({}, True),
    ({"azure_subscription_id": None}, False),
    ({"azure_subscription_id": None, "nexy_executor": "local"}, True),
    ({"azure_arm_url": "http://arm.example.com"}, False),
])
def test_release_is_queued_where_its_run_command_can_run(vm_settings, overrides, on_vm):
    """release goes to the VM's queue only when scripts can reach the VM; else to io, where no run-command runs."""
    settings = vm_settings(**overrides)
    assert queue_for(Route.VM_IF_REACHABLE, settings) == (settings.vm_queue if on_vm else IO_QUEUE)


@pytest.mark.parametrize("facts, stdout, expected", [
    ({"manifest": "present"}, '@@manifest.json\n{"version": "2.4.0"}', {"version": "2.4.0"}),
    ({"manifest": "present"}, "@@manifest.json\n{not json", "is not valid JSON"),
    ({"manifest": "missing"}, "", "is not on the VM"),
    ({"manifest": "too-large", "manifest_bytes": "5000"}, "", "5000 bytes, more than a run-command can bring back"),
    ({"manifest": "present"}, "", "did not come back"),
])
def test_vm_manifest_reads_the_script_output(facts, stdout, expected):
    """The script's marker line and facts become the VM's copy, an error on it, or a reason to fall back."""
    copy = vm_manifest(RunResult("release-manifest", 0, facts, stdout), "/app")
    if isinstance(expected, dict):
        assert copy.on_vm and copy.manifest == expected and copy.error is None
    elif isinstance(copy, str):
        assert expected in copy
    else:
        assert copy.on_vm and copy.manifest is None and expected in copy.error


# -- the workflow trigger rules ----------------------------------------------------------------

def test_trigger_parsing_reads_on_as_a_key():
    """The YAML 1.1 `on:` key (read as True) gives the push branches, paths and the other events."""
    triggers = parse_triggers(DEPLOY_WORKFLOW_YAML)
    assert triggers.push.branches == ("main",)
    assert triggers.push.paths == ("server/**", ".github/workflows/deploy.yml")
    assert triggers.dispatch


@pytest.mark.parametrize("path, patterns, expected", [
    ("server/main.py", ("server/**",), True),
    ("Docs/GUIDE.md", ("server/**",), False),
    ("server/a/b.py", ("server/*",), False),
    ("a/b/c.js", ("**.js",), True),
    ("c.js", ("**/*.js",), True),
    ("releases/1-alpha", ("releases/**", "!releases/**-alpha"), False),
])
def test_filter_patterns_follow_github(path, patterns, expected):
    """`*` stops at `/`, `**` does not, and a later `!pattern` takes a match back."""
    assert matches(path, patterns) is expected


@pytest.mark.parametrize("name, value, says", [
    ("nexy_deploy_workflow", "deploy", "NEXY_DEPLOY_WORKFLOW: a workflow file name"),
    ("github_api_url", "http://github.example.com", "GITHUB_API_URL: plain http is allowed for loopback emulators only"),
    ("nexy_releases_repo", "Nexy_production", "NEXY_RELEASES_REPO: a GitHub repository as owner/name"),
    ("nexy_release_tag", "../Update", "NEXY_RELEASE_TAG: a branch or tag name"),
])
def test_github_settings_are_validated(name, value, says):
    """A malformed GitHub setting stops start-up with one line naming the variable and what it expects."""
    from bot.errors import SettingsError
    from bot.settings import load_settings

    with pytest.raises(SettingsError) as info:
        load_settings(_env_file=None, **{name: value})
    assert says in str(info.value)
