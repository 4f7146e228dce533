"""Executors: where a script runs. One interface, two implementations.

- `AzureExecutor`: Azure VM Run Command (`virtual_machines.begin_run_command`, RunShellScript);
  `run_protected` runs a script with secrets as a managed run command instead (`clients.managed`).
- `LocalExecutor`: bash on this host, for a bot installed on the VM itself.

Both run the same rendered script and return a `RunResult` read from the wrapper's summary.
A 409 from Azure (another run-command in progress, runbook 6.4) raises ConflictError; the
engine decides how long to wait. Failures are raised with a code (`ExecutorFailure`), never
Slack text: `bot.wording.errors` words them.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from bot.errors import AccessError, ConflictError, ExecutorError, ExecutorFailure
from bot.redaction import redact
from bot.settings import Settings
from clients.azure_client import compute_client
from clients.runcommand import AZURE_OUTPUT_LIMIT, RunResult, Script, parse, split_message

if TYPE_CHECKING:  # the SDK is imported where used: importing this module loads none of it
    from azure.core.exceptions import HttpResponseError
    from azure.core.polling import LROPoller

    from clients.managed import ManagedRunCommands

T = TypeVar("T")

LOCAL_TIMEOUT_S = 90 * 60
"""The local executor gives a script as long as Azure would (90 minutes)."""


class RunWatch(Protocol):
    """Who follows an accepted run-command: told its continuation token once Azure accepted it (to
    resume polling after the worker died), and the elapsed time at every poll (a heartbeat; a
    notice when it runs long)."""

    def accepted(self, token: str) -> None: ...

    def polling(self, elapsed_s: float) -> None: ...


class Executor(Protocol):
    name: str

    def run(self, script: Script, watch: RunWatch | None = None) -> RunResult: ...


class AzureExecutor:
    """Runs a script on the VM through Azure VM Run Command."""

    name = "azure"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.client = compute_client(settings)
        self._managed_runs: ManagedRunCommands | None = None

    def run(self, script: Script, watch: RunWatch | None = None) -> RunResult:
        """Run a script as an action Run Command; one that carries a secret (`fix api-key`'s key) runs as a
        managed Run Command instead, the secret a protected parameter: never in an action's `parameters`."""
        if script.secrets:
            return self.run_protected(script, watch)
        from azure.mgmt.compute.models import RunCommandInput, RunCommandInputParameter

        started = time.monotonic()
        command = RunCommandInput(
            command_id="RunShellScript",
            script=script.lines(),
            parameters=[RunCommandInputParameter(name=k, value=v) for k, v in script.all_parameters],
        )
        poller = starting(
            lambda: self.client.virtual_machines.begin_run_command(
                self.settings.azure_resource_group,
                self.settings.azure_vm_name,
                command,
                polling_interval=self.settings.nexy_azure_poll_s,
            ),
            self.settings,
        )
        if watch is not None:
            watch.accepted(poller.continuation_token())
        return self._follow(script.name, poller, started, watch)

    def run_protected(self, script: Script, watch: RunWatch | None = None) -> RunResult:
        """Run a script whose secrets must never be action Run Command parameters: as a managed run
        command, the secrets its `protectedParameters` (`clients.managed`); same result, same errors."""
        return self._managed().run(script, watch)

    def _managed(self) -> ManagedRunCommands:
        from clients.managed import ManagedRunCommands  # imported when first used

        if self._managed_runs is None:
            self._managed_runs = ManagedRunCommands(self.settings, self.client)
        return self._managed_runs

    def resume(self, script_name: str, token: str, watch: RunWatch | None = None) -> RunResult:
        """Poll again a run-command Azure accepted earlier (by another worker, now gone): nothing is
        sent to the VM, only its operation (or a managed run command's instance view) is read."""
        from azure.mgmt.compute.models import RunCommandInput

        from clients.managed import is_managed_token

        if is_managed_token(token):
            return self._managed().resume(script_name, token, watch)
        poller = self.client.virtual_machines.begin_run_command(
            self.settings.azure_resource_group,
            self.settings.azure_vm_name,
            RunCommandInput(command_id="RunShellScript"),  # not sent: the token names the operation
            continuation_token=token,
            polling_interval=self.settings.nexy_azure_poll_s,
        )
        return self._follow(script_name, poller, time.monotonic(), watch)

    def _follow(self, script_name: str, poller: LROPoller, started: float, watch: RunWatch | None) -> RunResult:
        """Wait for an accepted run-command: any failure from here on means it ran (or runs) with an
        outcome we could not read, never that nothing was run."""
        from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

        settings = self.settings
        step = min(settings.nexy_azure_poll_s, settings.nexy_heartbeat_s / 3)
        while True:
            try:
                poller.wait(timeout=step)
                if poller.done():
                    result = poller.result()
                    break
            except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
                raise ExecutorError(ExecutorFailure.ACCEPTED_UNKNOWN, redact(str(exc))[:200]) from None
            elapsed = time.monotonic() - started
            if watch is not None:
                watch.polling(elapsed)
            if elapsed > settings.nexy_runcommand_timeout_s:
                minutes = f"{settings.nexy_runcommand_timeout_s / 60:g} minutes"
                raise ExecutorError(ExecutorFailure.RUN_TIMEOUT, minutes)
        first = result.value[0] if result.value else None
        stdout, stderr = split_message((first.message if first else None) or "")
        return parse(script_name, stdout, stderr, limit=AZURE_OUTPUT_LIMIT, duration_s=time.monotonic() - started)


def starting(call: Callable[[], T], settings: Settings) -> T:
    """`call()`, a request that starts a run-command (or reads what it needs first), its errors as the
    engine handles them: a refused login or role, an ARM error, nothing sent (it did not start), or the
    answer lost (it may be running). The action and the managed Run Command paths share it."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        return call()
    except ClientAuthenticationError as exc:
        code = ExecutorFailure.FORBIDDEN if exc.status_code == 403 else ExecutorFailure.AUTH
        raise AccessError(code, status=exc.status_code or 401) from None
    except HttpResponseError as exc:
        raise classify(exc) from None
    except ServiceRequestError as exc:  # nothing was sent: the command did not start
        raise ExecutorError(ExecutorFailure.UNREACHABLE, redact(str(exc))[:200], where=settings.azure_arm_url) from None
    except ServiceResponseError as exc:  # sent, but the answer was lost: it may be running
        raise ExecutorError(ExecutorFailure.LOST, redact(str(exc))[:200]) from None


def classify(exc: HttpResponseError) -> Exception:
    """An HTTP error from ARM before a run-command started, as the error the engine handles."""
    status = exc.status_code
    code = getattr(getattr(exc, "error", None), "code", None) or ""
    text = redact(str(getattr(getattr(exc, "error", None), "message", None) or exc.message or exc))[:300]
    detail = f"{code}: {text}" if code else text
    if status == 409:
        return ConflictError(ExecutorFailure.CONFLICT, text, status=409)
    if status in (401, 403):
        return AccessError(ExecutorFailure.FORBIDDEN if status == 403 else ExecutorFailure.AUTH, detail, status=status)
    if status == 404:
        return ExecutorError(ExecutorFailure.NOT_FOUND, detail, status=404)
    return ExecutorError(ExecutorFailure.HTTP, detail, status=status)


class LocalExecutor:
    """Runs a script with bash on this host (the bot installed on the VM itself)."""

    name = "local"

    def __init__(self, settings: Settings, env: dict[str, str] | None = None):
        self.settings = settings
        self.env = env

    def run(self, script: Script, watch: RunWatch | None = None) -> RunResult:
        started = time.monotonic()
        try:
            done = subprocess.run(
                ["bash", "-s"],
                input=script.render(),
                capture_output=True,
                text=True,
                timeout=LOCAL_TIMEOUT_S,
                env={**(self.env or _script_environment()), **dict(script.secrets)},
            )
        except subprocess.TimeoutExpired:
            raise ExecutorError(ExecutorFailure.TIMEOUT, f"{LOCAL_TIMEOUT_S // 60} minutes") from None
        return parse(script.name, done.stdout, done.stderr, duration_s=time.monotonic() - started)


def _script_environment() -> dict[str, str]:
    """What a local script sees of the bot's environment: the basics, never its tokens."""
    keep = ("PATH", "LANG", "LC_ALL", "HOME", "USER", "LOGNAME", "TZ")
    return {name: os.environ[name] for name in keep if name in os.environ}


def executor_for(settings: Settings) -> Executor:
    return LocalExecutor(settings) if settings.nexy_executor == "local" else AzureExecutor(settings)
