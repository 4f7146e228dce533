"""The actions for the checks that read Azure Resource Manager and GitHub: `azure` (runbook 1),
`deploy` (2), `release` (7-9).

They change nothing and post one report each in the incident thread. `azure` and `deploy` run on
the io queue. `release` also needs manifest.json as deployed on the VM, which takes one
run-command: when scripts can reach the VM it is queued on the VM's queue (bot.dispatch), where
that run-command goes through the engine like any other, and its quick GitHub reads (each bounded
by NEXY_GITHUB_TIMEOUT_S) run in the same job; else it runs on io and compares the server
repository's copy, saying why. A GitHub failure (rejected token, missing permission, rate limit,
timeout) is posted as what it is and what to do, never as a stack trace.
"""
from __future__ import annotations

from rq import get_current_job

from bot import messages, render
from bot.dispatch import WorkItem
from bot.errors import ExecutorError, GitHubError, SettingsError
from bot.settings import Settings, run_command_unavailable
from jobs import azure_check, deploy_check, release_check
from jobs.catalogue import vm_parameters
from jobs.engine import run_on_vm
from jobs.github_client import GitHubClient
from jobs.release_check import ManifestCopy
from jobs.runcommand import Script
from jobs.runtime import Runtime
from jobs.thread import Thread


def run_azure(runtime: Runtime, thread: Thread, item: WorkItem) -> str:
    """azure: credential, subscription, the VM, its power and provisioning state, run-command permission."""
    report = azure_check.check(runtime.settings)
    _post(thread, item, "azure", messages.azure_report(report))
    return "ok" if report.healthy else (report.failure.value if report.failure else "attention")


def run_deploy(runtime: Runtime, thread: Thread, item: WorkItem) -> str:
    """deploy: the deploy workflow, its triggers, the latest commit against its runs, the AZURE_CREDENTIALS secret."""
    settings = runtime.settings
    try:
        with GitHubClient(settings) as client:
            report = deploy_check.check(client, settings.nexy_server_repo, settings.nexy_deploy_workflow,
                                        settings.nexy_deploy_branch)
    except GitHubError as exc:
        _post(thread, item, "deploy", messages.github_check_failed("Deploy", "2", str(exc)))
        return "failed"
    _post(thread, item, "deploy", messages.deploy_report(report))
    return report.verdict.value


def run_release(runtime: Runtime, thread: Thread, item: WorkItem) -> str:
    """release: release `Update` assets against manifest.json as deployed on the VM (url, version, build)."""
    settings = runtime.settings
    try:
        with GitHubClient(settings) as client:
            release, missing = release_check.read_release(client, settings.nexy_releases_repo, settings.nexy_release_tag)
            why_not = _why_not_vm(settings)
            copy, duration_s = (why_not, None) if why_not else _vm_manifest(runtime, thread, item)
            if isinstance(copy, str):  # no copy from the VM, and why: compare the repository's
                copy = release_check.read_repo_manifest(client, settings.nexy_server_repo, settings.nexy_deploy_branch,
                                                        fallback=copy)
    except GitHubError as exc:
        _post(thread, item, "release", messages.github_check_failed("Release", "7-9", str(exc)))
        return "failed"
    report = release_check.compare(release, copy, repo=settings.nexy_releases_repo, tag=settings.nexy_release_tag,
                                   release_missing=missing)
    text, blocks = messages.release_report(report)
    footer = (messages.ran_on_vm(item.user, item.words, duration_s) if duration_s is not None
              else messages.requested_by(item.user, item.words))
    blocks.append(render.context(footer))
    thread.post(text, blocks, kind="release", user=item.user)
    return "ok" if report.healthy else "attention"


def _why_not_vm(settings: Settings) -> str | None:
    """Why the VM's manifest cannot be read by this job, or None. A job on io never runs a run-command."""
    unavailable = run_command_unavailable(settings)
    if unavailable:
        return f"the VM cannot be reached by run-command ({unavailable})"
    job = get_current_job()
    if job is not None and job.origin != settings.vm_queue:
        return f"this request ran on the `{job.origin}` queue, where no run-command may run"
    return None


def _vm_manifest(runtime: Runtime, thread: Thread, item: WorkItem) -> tuple[ManifestCopy | str, float | None]:
    """The VM's manifest.json through the engine (the VM's lease, 409s waited out); a str says why there is none."""
    script = Script(release_check.VM_SCRIPT, vm_parameters(runtime.settings))
    try:
        result = run_on_vm(runtime, thread, item, script)
    except (ExecutorError, SettingsError) as exc:
        return f"the run-command failed: {exc}", None
    return release_check.vm_manifest(result, runtime.settings.nexy_app_dir), result.duration_s


def _post(thread: Thread, item: WorkItem, kind: str, message: tuple[str, list]) -> None:
    text, blocks = message
    blocks.append(render.context(messages.requested_by(item.user, item.words)))
    thread.post(text, blocks, kind=kind, user=item.user)
