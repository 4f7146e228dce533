"""The actions for the checks that do not run on the VM: `azure` (runbook 1), `deploy` (2), `release` (7-9).

They run on the io queue, read Azure Resource Manager or GitHub only, change nothing, and post
one report each in the incident thread. A GitHub failure (rejected token, missing permission,
rate limit, timeout) is posted as what it is and what to do, never as a stack trace.
"""
from __future__ import annotations

from bot import messages, render
from bot.dispatch import WorkItem
from bot.errors import GitHubError
from jobs import azure_check, deploy_check, release_check
from jobs.github_client import GitHubClient
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
    """release: release `Update` assets against manifest.json (url, version, build)."""
    settings = runtime.settings
    try:
        with GitHubClient(settings) as client:
            report = release_check.check(client, settings.nexy_releases_repo, settings.nexy_release_tag,
                                         settings.nexy_server_repo, settings.nexy_deploy_branch)
    except GitHubError as exc:
        _post(thread, item, "release", messages.github_check_failed("Release", "7-9", str(exc)))
        return "failed"
    _post(thread, item, "release", messages.release_report(report))
    return "ok" if report.healthy else "attention"


def _post(thread: Thread, item: WorkItem, kind: str, message: tuple[str, list]) -> None:
    text, blocks = message
    blocks.append(render.context(messages.requested_by(item.user, item.words)))
    thread.post(text, blocks, kind=kind, user=item.user)
