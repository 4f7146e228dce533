"""Azure's managed Run Command, for a script that carries a secret.

The action Run Command (`AzureExecutor.run`) sends every parameter in its request body, and
Azure's Linux handler writes them at the top of the script file on the VM. A script with
`secrets` (the new key of `fix api-key`) runs here instead, as one managed run command resource
(``virtualMachines/{vm}/runCommands/nexy-<script>-<random>``) per run:

1. create-or-update: the rendered script (its plain parameters are in its text, as on the action
   path, and sent as `parameters`), the secrets as `protectedParameters` only (Azure never
   answers them; the handler hands them to the script in its environment, never in its text),
   `asyncExecution` (provisioning ends once the script starts: the instance view is followed, not
   the operation), `timeoutInSeconds` = NEXY_RUNCOMMAND_TIMEOUT_S, and
   `treatFailureAsDeploymentFailure` false (the wrapper's result line says how the script ended);
2. the instance view (`$expand=instanceView`), polled until `executionState` is final; its
   `output` and `error` (each its last 4,096 bytes, as on the action path) read by the same
   `runcommand.parse`; TimedOut (Azure stopped it), or no final state REPORT_GRACE_S after the
   timeout, is RUN_TIMEOUT;
3. delete, after a result, a failure or a timeout alike (a delete stops a script still running).

Its continuation token is the resource's name (`managed:<name>`): a worker that restarts reads the
same instance view and deletes the resource; nothing is sent to the VM again. Errors are the action
path's (`ExecutorError` codes). SDK imports stay inside the functions, so importing this module
imports no Azure SDK.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.errors import ExecutorError, ExecutorFailure
from bot.redaction import redact
from bot.settings import Settings
from clients.runcommand import AZURE_OUTPUT_LIMIT, RunResult, Script, parse

if TYPE_CHECKING:
    from clients.executors import RunWatch

log = logging.getLogger(__name__)

TOKEN_PREFIX = "managed:"
"""How a managed run-command's continuation token starts (the rest is its resource name)."""
FINAL_STATES = frozenset({"Succeeded", "Failed", "TimedOut", "Canceled"})
"""The instance view's `executionState`s after which the script no longer runs."""
DELETE_WAIT_S = 60.0
"""How long a run waits for its resource's delete (Azure stops a script still running first)."""
REPORT_GRACE_S = 30.0
"""How long past `timeoutInSeconds` the instance view is still read for Azure's own TimedOut."""


def is_managed_token(token: str) -> bool:
    """Whether a continuation token names a managed run-command (else it is an action's LRO token)."""
    return token.startswith(TOKEN_PREFIX)


def resource_name(script: Script) -> str:
    """A new run command's name: the script's, and a random part so no two runs share a resource."""
    return f"nexy-{script.name}-{uuid.uuid4().hex[:12]}"


class ManagedRunCommands:
    """Runs scripts through `virtual_machine_run_commands` on the configured VM; see the module docstring."""

    def __init__(self, settings: Settings, client: Any):
        self.settings = settings
        self.client = client
        self._location: str | None = None

    def run(self, script: Script, watch: RunWatch | None = None) -> RunResult:
        started = time.monotonic()
        name = self.start(script, watch).removeprefix(TOKEN_PREFIX)
        try:
            return self._follow(name, script.name, started, watch)
        finally:
            self._delete(name)

    def start(self, script: Script, watch: RunWatch | None = None) -> str:
        """Create the run command (the script starts on the VM) and return its continuation token;
        `watch` is told the token first. Nothing follows or deletes it: `run` and `resume` do."""
        name = resource_name(script)
        self._create(name, script)
        token = TOKEN_PREFIX + name
        if watch is not None:
            watch.accepted(token)
        return token

    def resume(self, script_name: str, token: str, watch: RunWatch | None = None) -> RunResult:
        """Read again a managed run-command accepted earlier (by a worker now gone), then delete it."""
        name = token.removeprefix(TOKEN_PREFIX)
        try:
            return self._follow(name, script_name, time.monotonic(), watch)
        finally:
            self._delete(name)

    def _vm(self) -> tuple[str, str]:
        return self.settings.azure_resource_group, self.settings.azure_vm_name

    def location(self) -> str:
        """The VM's region, which a run command resource must name (read once)."""
        if self._location is None:
            self._location = str(self._starting(lambda: self.client.virtual_machines.get(*self._vm())).location)
        return self._location

    def _starting(self, call: Callable[[], Any]) -> Any:
        """`call()`, its errors worded as the action path words a run-command that did not start."""
        from clients.executors import starting

        return starting(call, self.settings)

    def _create(self, name: str, script: Script) -> None:
        """PUT the run command; an error here means the script did not start (LOST: it may have)."""
        from azure.mgmt.compute.models import (
            RunCommandInputParameter,
            VirtualMachineRunCommand,
            VirtualMachineRunCommandProperties,
            VirtualMachineRunCommandScriptSource,
        )

        properties = VirtualMachineRunCommandProperties(
            source=VirtualMachineRunCommandScriptSource(script=script.render()),
            parameters=[RunCommandInputParameter(name=k, value=v) for k, v in script.parameters],
            protected_parameters=[RunCommandInputParameter(name=k, value=v) for k, v in script.secrets],
            async_execution=True,
            timeout_in_seconds=max(1, math.ceil(self.settings.nexy_runcommand_timeout_s)),
            treat_failure_as_deployment_failure=False,
        )
        command = VirtualMachineRunCommand(location=self.location(), properties=properties)
        # polling=False: the instance view is followed instead; retry_total=0: a PUT that may have
        # started the script is never sent twice (the action path's POST is not retried either)
        self._starting(
            lambda: self.client.virtual_machine_run_commands.begin_create_or_update(
                *self._vm(), name, command, polling=False, retry_total=0
            )
        )

    def _follow(self, name: str, script_name: str, started: float, watch: RunWatch | None) -> RunResult:
        """Poll the instance view until the script ended: any failure from here on means it ran (or
        runs) with an outcome we could not read, never that nothing was run."""
        from azure.core.exceptions import AzureError

        settings = self.settings
        step = min(settings.nexy_azure_poll_s, settings.nexy_heartbeat_s / 3)
        while True:
            try:
                command = self.client.virtual_machine_run_commands.get_by_virtual_machine(
                    *self._vm(), name, expand="instanceView"
                )
            except AzureError as exc:
                raise ExecutorError(ExecutorFailure.ACCEPTED_UNKNOWN, redact(str(exc))[:200]) from None
            view = command.instance_view
            raw = view.execution_state if view is not None else None
            state = str(getattr(raw, "value", raw) or "Unknown")  # the SDK's enum, or a newer state as text
            if state in FINAL_STATES:
                break
            elapsed = time.monotonic() - started
            if watch is not None:
                watch.polling(elapsed)
            if elapsed > settings.nexy_runcommand_timeout_s + REPORT_GRACE_S:  # Azure never said TimedOut
                raise ExecutorError(ExecutorFailure.RUN_TIMEOUT, _minutes(settings))
            time.sleep(step)
        message = redact(view.execution_message or "")[:200]
        if state == "TimedOut":
            raise ExecutorError(ExecutorFailure.RUN_TIMEOUT, _minutes(settings))
        if state == "Canceled":
            raise ExecutorError(ExecutorFailure.ACCEPTED_UNKNOWN, f"the run command was canceled: {message}")
        stderr = view.error or ""
        if state == "Failed" and message:  # the handler's own failure (the wrapper itself always exits 0)
            stderr = f"{stderr.rstrip()}\n{message}" if stderr.strip() else message
        duration_s = time.monotonic() - started
        return parse(script_name, view.output or "", stderr, limit=AZURE_OUTPUT_LIMIT, duration_s=duration_s)

    def _delete(self, name: str) -> None:
        """Delete the run command (stopping its script if it still runs); a failure is logged, never raised,
        so it never hides the run's own result or error."""
        from azure.core.exceptions import AzureError

        try:
            poller = self.client.virtual_machine_run_commands.begin_delete(
                *self._vm(), name, polling_interval=self.settings.nexy_azure_poll_s
            )
            poller.wait(timeout=DELETE_WAIT_S)
            if not poller.done():
                log.warning("managed run command %s: still deleting after %.0f s", name, DELETE_WAIT_S)
        except AzureError as exc:
            log.warning("managed run command %s was not deleted: %s", name, redact(str(exc))[:200])


def _minutes(settings: Settings) -> str:
    return f"{settings.nexy_runcommand_timeout_s / 60:g} minutes"
