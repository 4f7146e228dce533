"""What failed, in words: jobs that failed or died, and the clients' error codes (GitHub, Azure)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from bot import render
from bot.errors import ExecutorError, ExecutorFailure, GitHubError, GitHubFailure, NexyError
from bot.redaction import redact
from bot.wording.refs import command

STATUS = command("status")
PREFLIGHT = command("preflight")
QUEUE = command("queue")

TOKEN_HINT = (
    "the token is missing, expired or for another tenant: refresh AZURE_ACCESS_TOKEN "
    "(`az account get-access-token`), or check the identity DefaultAzureCredential uses"
)
ROLE_HINT = (
    "the identity needs Virtual Machine Contributor on the VM, or a custom role with "
    "Microsoft.Compute/virtualMachines/runCommand/action"
)


def reason(exc: BaseException) -> str:
    """What to say about an error: ours in words, others by type and text; redacted and short."""
    if isinstance(exc, ExecutorError):
        text = executor(exc)
    elif isinstance(exc, GitHubError):
        text = github(exc)
    elif isinstance(exc, NexyError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return redact(text)[:500]


def job_failed(words: str, why: str) -> str:
    return f":x: `{render.escape(words)}` failed before it could report: {why}"


def job_interrupted(words: str, why: str) -> str:
    return (
        f":warning: `{render.escape(words)}` did not finish: {why}. If it was a run-command, it may still have run "
        f"on the VM: treat the VM state as unknown and run {STATUS}."
    )


def decision_failed(why: str) -> str:
    return f":warning: Your approval or rejection could not be processed: {why}. Please react again."


def check_failed(title: str, section: str, why: str) -> tuple[str, list[dict]]:
    """A check that could not finish (GitHub refused, for example)."""
    headline = f":x: *{title} (runbook {section})* could not finish. {why}"
    return headline.replace("*", ""), [render.section(headline)]


# -- Azure Run Command ---------------------------------------------------------------------


def executor(exc: ExecutorError) -> str:
    """An executor's failure, and what to do about it."""
    code, detail = exc.code, exc.detail
    if code is ExecutorFailure.CONFLICT:
        return detail or "Run command extension execution is in progress."
    if code is ExecutorFailure.CONFLICT_GAVE_UP:
        return (
            f"The VM stayed busy with another run-command for {exc.waited_s:g} s; `{detail}` was not run. "
            "Nothing changed on the VM. Check who is running commands on it (Azure portal → VM → Run command), "
            "then try again."
        )
    if code is ExecutorFailure.AUTH:
        return f"Azure refused the credentials (HTTP {exc.status or 401}): {TOKEN_HINT}"
    if code is ExecutorFailure.FORBIDDEN:
        return f"Azure refused the credentials (HTTP 403): {ROLE_HINT}"
    if code is ExecutorFailure.NOT_FOUND:
        return f"Azure answered 404: check AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and AZURE_VM_NAME ({detail})"
    if code is ExecutorFailure.UNREACHABLE:
        return f"Azure Resource Manager did not answer at {exc.where} ({detail}); nothing was run"
    if code is ExecutorFailure.LOST:
        return (
            f"Azure Resource Manager stopped answering ({detail}); the command may still be running on the VM: "
            f"{QUEUE}, then {STATUS}"
        )
    if code is ExecutorFailure.ACCEPTED_UNKNOWN:
        return (
            f"Azure accepted the run-command, but reading its state failed ({detail}); it ran or is still "
            f"running on the VM, and its outcome is unknown here. To look: {QUEUE}, then {STATUS}, or the VM's "
            "Run command history in the Azure portal"
        )
    if code is ExecutorFailure.RUN_TIMEOUT:
        return (
            f"the run-command was still running after {detail} (Azure stops a run-command at 90 minutes): it "
            f"timed out; the VM state is unknown: run {STATUS}"
        )
    if code is ExecutorFailure.TIMEOUT:
        return f"the script ran longer than {detail} and was stopped"
    if code is ExecutorFailure.LEASE:
        return (
            f"the VM stayed locked by another worker (running `{detail}`) for {exc.waited_s / 60:g} minutes; "
            "is a second VM worker running? Nothing was run."
        )
    return f"Azure answered {exc.status}: {detail}"


# -- GitHub ----------------------------------------------------------------------------------


def github(exc: GitHubError) -> str:
    """A GitHub read's failure, and what to do about it."""
    code, what, message = exc.code, exc.what, exc.message
    if code is GitHubFailure.RATE_LIMITED:
        return _rate_limited(exc)
    if code is GitHubFailure.NO_TOKEN:
        return f"GitHub requires authentication to read {what}: set GITHUB_TOKEN."
    if code is GitHubFailure.BAD_TOKEN:
        return (
            f"GitHub rejected GITHUB_TOKEN (401 {message or 'Bad credentials'}): it is wrong, expired or "
            "revoked. Put a valid token in GITHUB_TOKEN and restart the worker."
        )
    if code is GitHubFailure.NOT_FOUND:
        return (
            f"Not found on GitHub (404): {what}. Either it does not exist or GITHUB_TOKEN cannot see it "
            "(a fine-grained token must list the repository)." + (f" {exc.hint}." if exc.hint else "")
        )
    if code is GitHubFailure.FORBIDDEN:
        return (
            f"GitHub refused access to {what} (403 {message or 'Forbidden'}): "
            f"GITHUB_TOKEN needs the repository permission *{exc.permission}*."
        )
    if code is GitHubFailure.TIMEOUT:
        return (
            f"GitHub did not answer within {exc.timeout_s:g} s (reading {what}; "
            "NEXY_GITHUB_TIMEOUT_S); try again shortly, or check githubstatus.com."
        )
    if code is GitHubFailure.UNREACHABLE:
        return f"GitHub could not be reached at {exc.api_url} (reading {what})."
    return f"GitHub answered {exc.status} for {what}: {message or 'no message'}."


def _rate_limited(exc: GitHubError) -> str:
    if exc.retry_after_s is not None:
        return (
            f"GitHub rate-limited this token (secondary limit): try again in {exc.retry_after_s} s. "
            "Nothing was retried; the worker does not wait for GitHub."
        )
    if exc.reset_at is not None:
        when = datetime.fromtimestamp(exc.reset_at, UTC)
        minutes = max(0, round((exc.reset_at - time.time()) / 60))
        return (
            f"GitHub rate-limited until {when:%H:%M} UTC (in about {minutes} min). "
            "Nothing was retried; the worker does not wait for GitHub."
        )
    return "GitHub rate-limited this token; try again later. Nothing was retried."
