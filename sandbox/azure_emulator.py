"""An Azure Resource Manager emulator for VM Run Command, in front of simulated Nexy VMs.

Local use and tests only (stdlib HTTP server on loopback, in a daemon thread). It answers the
real SDK (`azure-mgmt-compute`'s ``virtual_machines.begin_run_command`` / ``get`` /
``instance_view``) with ARM's wire format:

``POST /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm}/runCommand?api-version=...``
  body ``{"commandId": "RunShellScript", "script": [lines], "parameters": [{"name", "value"}]}``
  -> 202, no body, with ``Azure-AsyncOperation`` and ``Location`` (absolute URLs here, shaped like
  ARM's ``.../providers/Microsoft.Compute/locations/{loc}/operations/{id}?...``) and ``Retry-After``.
  The lines are joined with newlines and run by bash on the VM (`SimulatedVM.run_script`), the
  parameters put at the top of the script as Azure does (``export name=value ...`` and
  ``set -- value ...``: environment variables and $1, $2 ...). Each run lasts at least `delay_s`.
``GET`` the Azure-AsyncOperation URL -> 200 ``{"status": "InProgress", ...}`` until done, then
  ``{"status": "Succeeded", "properties": {"output": {"value": [...]}}, ...}``.
``GET`` the Location URL -> 202 while running, then 200 with the RunCommandResult:
  ``{"value": [{"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus":
  "Provisioning succeeded", "message": "Enable succeeded: \\n[stdout]\\n...\\n[stderr]\\n..."}]}``,
  stdout and stderr each cut to their LAST 4,096 bytes as the Linux handler does. A script that
  exits non-zero still "succeeds" (the exit code is not reported anywhere).

Errors, ARM-shaped (``{"error": {"code", "message"}}``): 401 AuthenticationFailed (no bearer token) /
InvalidAuthenticationToken (wrong token), 404 SubscriptionNotFound / ResourceGroupNotFound /
ResourceNotFound, 409 Conflict "Run command extension execution is in progress. Please wait for
completion before invoking a run command." while a run command runs on that VM, or for the next
`busy(rg, vm, times)` run commands (also `vm.run_command_busy`, set by ``vm.break_("run-command-busy")``).

The managed Run Command API (``virtual_machine_run_commands``), on the same VMs and run the same way
(`SimulatedVM.run_script`, in the handler's own download directory):
``PUT .../virtualMachines/{vm}/runCommands/{name}?api-version=...`` (create or update)
  body ``{"location", "properties": {"source": {"script"}, "parameters", "protectedParameters",
  "asyncExecution", "timeoutInSeconds", "treatFailureAsDeploymentFailure", ...}}`` -> 201 (200 when
  the name exists: it runs again) with the resource (``provisioningState`` Creating/Updating) and an
  ``Azure-AsyncOperation`` URL that reads InProgress until provisioning ends: when the script ends, or
  as soon as it starts with ``asyncExecution``. Named parameters, protected ones too, reach the script
  as environment variables (never in its text), as the Linux RunCommandHandler sets them. Provisioning
  then says Succeeded, or Failed when ``treatFailureAsDeploymentFailure`` and the script did not succeed.
``GET .../runCommands/{name}`` (``$expand=instanceView`` adds ``instanceView``: ``executionState``
  Pending, Running, Succeeded, Failed (exit code not 0), TimedOut (past ``timeoutInSeconds``) or
  Canceled (deleted while running), ``exitCode``, ``output`` and ``error`` (each its last 4,096 bytes),
  ``startTime``, ``endTime``, ``executionMessage``); ``GET .../runCommands`` lists them.
``DELETE .../runCommands/{name}`` -> 202 with a ``Location`` to poll (204 when there is none); a
  script still running is killed first. Permissions ``virtualMachines/runCommands/write`` and
  ``/delete`` (403 otherwise). ``protectedParameters`` and ``runAsPassword`` are never answered.
One run command at a time per VM, whichever API started it: a PUT or a POST while another runs is
409 Conflict (stricter than Azure, whose managed run commands may run side by side; the bot never
runs two at once). Every request body is kept as received in `bodies`.

Also ``GET .../virtualMachines/{vm}`` (the VM model, ``$expand=instanceView`` adds the instance view),
``GET .../virtualMachines/{vm}/instanceView``, and the caller's own permissions on the VM, as ARM's
Permissions - List For Resource answers them:
``GET .../virtualMachines/{vm}/providers/Microsoft.Authorization/permissions?api-version=...`` ->
``{"value": [{"actions": [...], "notActions": [...], "dataActions": [], "notDataActions": []}]}``, one
entry a role the identity holds on the VM (`permissions`; by default Virtual Machine Contributor's
actions, whose ``Microsoft.Compute/virtualMachines/*`` includes ``runCommand/action``; `set_permissions`
changes them).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from sandbox.faults import FaultSwitch
from sandbox.vm import SimulatedVM

OUTPUT_TAIL_BYTES = 4096
CONFLICT_MESSAGE = ("Run command extension execution is in progress. "
                    "Please wait for completion before invoking a run command.")

_VM_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute/"
    r"virtualMachines/(?P<vm>[^/]+)"
    r"(?P<action>/runCommand|/instanceView|/providers/Microsoft\.Authorization/permissions"
    r"|/runCommands(?:/(?P<run_command>[^/]+))?)?/?$", re.IGNORECASE)

RUN_COMMAND_ACTION = "Microsoft.Compute/virtualMachines/runCommand/action"
RUN_COMMANDS_WRITE = "Microsoft.Compute/virtualMachines/runCommands/write"
RUN_COMMANDS_DELETE = "Microsoft.Compute/virtualMachines/runCommands/delete"
EXECUTION_STATES = ("Unknown", "Pending", "Running", "Failed", "Succeeded", "TimedOut", "Canceled")
"""A managed run command's `instanceView.executionState`, as the Linux handler reports it."""
MANAGED_DEFAULT_TIMEOUT_S = 90 * 60
"""How long a managed run command with no `timeoutInSeconds` (or 0) may run here (Azure: no limit)."""
CLIENT_ID = "5f0c1e52-7d2b-4c1a-9a4e-0d9d5e1b7c3a"
"""The emulated identity's object id, as ARM names it in an AuthorizationFailed message."""

READER_ACTIONS = ("*/read",)
"""The Reader role: every read, no action (so no Run Command)."""

SCENARIOS: dict[str, str] = {
    "azure-token-expired": "1: Azure refuses the bot's bearer token (401 InvalidAuthenticationToken)",
    "azure-no-role": "1: the identity holds Reader only: it can read the VM but not run commands (403)",
    "azure-wrong-subscription": "1: AZURE_SUBSCRIPTION_ID names a subscription the identity cannot see (404)",
}
"""Section 1 faults, at the emulator; `apply_scenario` puts it into one, `healthy` heals them all."""

VIRTUAL_MACHINE_CONTRIBUTOR_ACTIONS = (
    "Microsoft.Authorization/*/read",
    "Microsoft.Compute/availabilitySets/*",
    "Microsoft.Compute/locations/*",
    "Microsoft.Compute/virtualMachines/*",
    "Microsoft.Compute/virtualMachineScaleSets/*",
    "Microsoft.Compute/disks/write",
    "Microsoft.Compute/disks/read",
    "Microsoft.Compute/disks/delete",
    "Microsoft.Insights/alertRules/*",
    "Microsoft.Network/networkInterfaces/*",
    "Microsoft.Network/virtualNetworks/read",
    "Microsoft.Resources/deployments/*",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Support/*",
)
"""The built-in Virtual Machine Contributor role's main actions (its `virtualMachines/*` grants runCommand/action)."""
_OP_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.Compute/locations/(?P<loc>[^/]+)/"
    r"operations/(?P<op>[^/]+)/?$", re.IGNORECASE)
_SUB_PATH = re.compile(r"^/subscriptions/(?P<sub>[^/]+)(?:/|$)", re.IGNORECASE)


def tail(data: bytes, limit: int = OUTPUT_TAIL_BYTES) -> str:
    """The last `limit` bytes as text (a cut UTF-8 character becomes U+FFFD, as Go's JSON does)."""
    return data[-limit:].decode("utf-8", errors="replace")


def _arm_error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def _kill(proc) -> None:
    """Stop a script and everything it started (its own process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 1e7):07d}+00:00"


class _Operation:
    def __init__(self, op_id: str, key: tuple[str, str], start: float):
        self.id = op_id
        self.key = key
        self.start = start
        self.end: float | None = None
        self.result: dict | None = None
        self.error: dict | None = None
        """An operation that ended Failed: ARM's ``{"code", "message"}``."""
        self.done = threading.Event()

    def finish(self, result: dict | None = None, error: dict | None = None) -> None:
        if not self.done.is_set():
            self.result, self.error, self.end = result, error, time.time()
            self.done.set()


class _RunCommand:
    """One managed run command resource (``virtualMachines/{vm}/runCommands/{name}``) and its last run."""

    def __init__(self, name: str, entry: _VM, location: str):
        self.name = name
        self.entry = entry
        self.location = location
        self.tags: dict = {}
        self.properties: dict = {}
        """What the caller sent, less `protectedParameters` and `runAsPassword`: those are never answered."""
        self.protected: list[tuple[str, str]] = []
        self.provisioning_state = "Creating"
        self.execution_state = "Pending"
        self.execution_message = ""
        self.exit_code = 0
        self.output = ""
        self.error = ""
        self.start: float | None = None
        self.end: float | None = None
        self.process = None
        self.canceled = False
        self.finished = threading.Event()


class _VM:
    def __init__(self, resource_group: str, name: str, vm: SimulatedVM, location: str):
        self.resource_group = resource_group
        self.name = name
        self.vm = vm
        self.location = location
        self.vm_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{resource_group}/{name}"))
        self.created = time.time()


class AzureEmulator:
    """ARM for run commands on simulated VMs; see the module docstring."""

    def __init__(self, *, subscription_id: str = "00000000-0000-0000-0000-000000000000",
                 token: str = "sandbox-arm-token", delay_s: float = 0.0, host: str = "127.0.0.1",
                 port: int = 0, retry_after: int = 0):
        self.subscription_id = subscription_id
        self.token = token
        self.delay_s = delay_s
        """Minimum duration of each run command, in seconds (may be changed while running)."""
        self.retry_after = retry_after
        """The Retry-After header of 202 answers, whole seconds (0: the client's polling_interval rules)."""
        self.host = host
        self.port = port
        self.max_concurrency: dict[tuple[str, str], int] = {}
        self.run_count: dict[tuple[str, str], int] = {}
        self.history: list[dict] = []
        """One entry a run command that ran: vm, script, parameters, exit code, output, times."""
        self.conflicts: list[dict] = []
        """One entry a run command refused with 409."""
        self.requests: list[tuple[str, str, int]] = []
        """Every request answered: (method, path with query, status)."""
        self.bodies: list[tuple[str, str, str]] = []
        """Every request received, with its body as sent: (method, path with query, body text; "" without one)."""
        self.answers: list[tuple[str, str, int, str]] = []
        """Every answer sent, with its body: (method, path with query, status, body text; "" without one)."""
        self.permissions: list[dict] = []
        """What the permissions list answers for the caller on any VM: one entry a role (see `set_permissions`)."""
        self.set_permissions(VIRTUAL_MACHINE_CONTRIBUTOR_ACTIONS)
        self._healthy = (self.token, self.subscription_id)
        self._vms: dict[tuple[str, str], _VM] = {}
        self._busy: dict[tuple[str, str], int] = {}
        self._running: dict[tuple[str, str], int] = {}
        self._operations: dict[str, _Operation] = {}
        self._run_commands: dict[tuple[str, str, str], _RunCommand] = {}
        self._faults = FaultSwitch(("drop", "5xx"))
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ----------------------------------------------------------------- setup

    def add_vm(self, resource_group: str, name: str, vm: SimulatedVM, *, location: str = "westeurope") -> None:
        with self._lock:
            self._vms[(resource_group.lower(), name.lower())] = _VM(resource_group, name, vm, location)

    def allows(self, action: str) -> bool:
        """Whether the caller's roles grant `action` (an `actions` pattern matches, no `notActions` one does)."""
        def matches(pattern: str) -> bool:
            return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), action, re.IGNORECASE) is not None

        return any(any(map(matches, p["actions"])) and not any(map(matches, p["notActions"]))
                   for p in self.permissions)

    def set_permissions(self, actions, not_actions=()) -> None:
        """The caller holds one role on the VMs with these actions and notActions (wildcards as ARM has them)."""
        self.permissions = [{"actions": list(actions), "notActions": list(not_actions),
                             "dataActions": [], "notDataActions": []}]

    def apply_scenario(self, name: str) -> None:
        """Put the emulator into a section 1 fault (SCENARIOS), or back to healthy."""
        self.token, self.subscription_id = self._healthy
        self.set_permissions(VIRTUAL_MACHINE_CONTRIBUTOR_ACTIONS)
        if name == "azure-token-expired":
            self.token = "expired-" + self.token
        elif name == "azure-no-role":
            self.set_permissions(READER_ACTIONS)
        elif name == "azure-wrong-subscription":
            self.subscription_id = "11111111-2222-3333-4444-555555555555"
        elif name != "healthy":
            raise ValueError(f"unknown Azure scenario {name!r}")

    def fail_for(self, seconds: float, mode: str = "drop") -> None:
        """A fault switch: for `seconds`, every request is dropped without an answer (`drop`) or
        answered 503 (`5xx`); run commands already accepted go on running meanwhile."""
        self._faults.set(seconds, mode)

    def _fault_now(self) -> str | None:
        return self._faults.now()

    def busy(self, resource_group: str, name: str, times: int) -> None:
        """The next `times` run commands on that VM get 409 Conflict, as if another one were running."""
        with self._lock:
            self._busy[(resource_group.lower(), name.lower())] = times

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> "AzureEmulator":
        self._server = ThreadingHTTPServer((self.host, self.port), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, name="azure-emulator",
                         daemon=True).start()
        return self

    def stop(self, wait_s: float = 10.0) -> None:
        """Stop serving; wait (up to `wait_s`) for run commands still running to end."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        deadline = time.monotonic() + wait_s
        for worker in list(self._workers):
            worker.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> "AzureEmulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- run commands

    def _claim(self, key: tuple[str, str], api: str) -> bool:
        """Whether a run command may start on the VM now (then it counts as running); False: 409.
        One at a time per VM, whichever API started it (caller holds the lock)."""
        entry = self._vms[key]
        busy = self._busy.get(key, 0)
        if busy > 0 or entry.vm.run_command_busy > 0 or self._running.get(key, 0) > 0:
            if busy > 0:
                self._busy[key] = busy - 1
            elif entry.vm.run_command_busy > 0 and not self._running.get(key):
                entry.vm.run_command_busy -= 1
            self.conflicts.append({"resource_group": entry.resource_group, "vm": entry.name, "time": time.time(),
                                   "api": api})
            return False
        self._running[key] = self._running.get(key, 0) + 1
        self.max_concurrency[key] = max(self.max_concurrency.get(key, 0), self._running[key])
        self.run_count[key] = self.run_count.get(key, 0) + 1
        return True

    def _operation_headers(self, entry: _VM, op: _Operation, api_version: str) -> tuple[str, str]:
        """The Azure-AsyncOperation and Location (monitor) URLs of an operation, shaped as ARM's."""
        base = (f"{self.url}/subscriptions/{self.subscription_id}/providers/Microsoft.Compute/locations/"
                f"{entry.location}/operations/{op.id}")
        query = f"p={entry.vm_id}&api-version={api_version}"
        return f"{base}?{query}", f"{base}?{query}&monitor=true"

    def _accept(self, key: tuple[str, str], body: dict, api_version: str) -> tuple[int, dict, dict]:
        entry = self._vms[key]
        with self._lock:
            if not self._claim(key, "action"):
                return 409, {"error": {"code": "Conflict", "message": CONFLICT_MESSAGE}}, {}
            op = _Operation(str(uuid.uuid4()), key, time.time())
            self._operations[op.id] = op
        script = "\n".join(body.get("script") or [])
        parameters = [(str(p.get("name", "")), str(p.get("value", ""))) for p in body.get("parameters") or []]
        worker = threading.Thread(target=self._run, args=(op, entry, script, parameters, body.get("commandId")),
                                  name=f"run-command-{op.id[:8]}", daemon=True)
        self._workers = [w for w in self._workers if w.is_alive()] + [worker]
        worker.start()
        async_url, location = self._operation_headers(entry, op, api_version)
        headers = {"Azure-AsyncOperation": async_url, "Location": location, "Retry-After": str(self.retry_after)}
        return 202, {}, headers

    def _run(self, op: _Operation, entry: _VM, script: str, parameters: list[tuple[str, str]], command_id) -> None:
        try:
            rc, stdout, stderr = entry.vm.run_script(script, parameters, timeout=90 * 60)
        except Exception as exc:  # the handler itself failed: say so in the output, like the agent would
            rc, stdout, stderr = -1, "", f"{type(exc).__name__}: {exc}"
        remaining = self.delay_s - (time.time() - op.start)
        if remaining > 0:
            time.sleep(remaining)
        out_tail = tail(stdout.encode("utf-8"))
        err_tail = tail(stderr.encode("utf-8"))
        message = f"Enable succeeded: \n[stdout]\n{out_tail}\n[stderr]\n{err_tail}"
        result = {"value": [{"code": "ProvisioningState/succeeded", "level": "Info",
                             "displayStatus": "Provisioning succeeded", "message": message}]}
        end = time.time()
        with self._lock:
            op.result, op.end = result, end
            self._running[op.key] -= 1
            self.history.append({
                "resource_group": entry.resource_group, "vm": entry.name, "operation_id": op.id,
                "command_id": command_id, "script": script, "parameters": parameters, "exit_code": rc,
                "stdout": stdout, "stderr": stderr, "message": message, "start": op.start, "end": end,
            })
        op.done.set()

    # ----------------------------------------------------------------- managed run commands

    def run_command(self, resource_group: str, vm: str, name: str) -> _RunCommand | None:
        """The managed run command resource of that name on the VM (None once deleted or never made)."""
        return self._run_commands.get((resource_group.lower(), vm.lower(), name.lower()))

    def _managed_put(self, key: tuple[str, str], name: str, payload: dict,
                     api_version: str) -> tuple[int, dict, dict]:
        entry = self._vms[key]
        properties = payload.get("properties") if isinstance(payload.get("properties"), dict) else {}
        if not payload.get("location"):
            return 400, _arm_error("LocationRequired", "The location property is required for this definition."), {}
        source = properties.get("source") if isinstance(properties.get("source"), dict) else {}
        if not source.get("script"):
            kinds = [k for k in ("scriptUri", "commandId", "galleryScriptReferenceId") if source.get(k)]
            message = (f"The emulator runs inline scripts only (properties.source.script), not {kinds[0]}." if kinds
                       else "Required parameter 'properties.source' is missing or has no script.")
            return 400, _arm_error("InvalidParameter", message), {}
        named = [(str(p.get("name") or ""), str(p.get("value") or "")) for p in properties.get("parameters") or []]
        protected = [(str(p.get("name") or ""), str(p.get("value") or ""))
                     for p in properties.get("protectedParameters") or []]
        timeout_s = int(properties.get("timeoutInSeconds") or 0)
        with self._lock:
            existing = self._run_commands.get((*key, name.lower()))
            if not self._claim(key, "managed"):
                return 409, _arm_error("Conflict", CONFLICT_MESSAGE), {}
            rc = _RunCommand(existing.name if existing else name, entry, str(payload["location"]))
            rc.provisioning_state = "Updating" if existing else "Creating"
            rc.tags = dict(payload.get("tags") or {})
            rc.properties = {k: v for k, v in properties.items()
                             if k not in ("protectedParameters", "runAsPassword", "provisioningState", "instanceView")}
            rc.properties.setdefault("asyncExecution", False)
            rc.properties.setdefault("treatFailureAsDeploymentFailure", False)
            rc.properties.setdefault("timeoutInSeconds", 0)
            rc.protected = protected
            self._run_commands[(*key, name.lower())] = rc
            op = _Operation(str(uuid.uuid4()), key, time.time())
            self._operations[op.id] = op
        worker = threading.Thread(
            target=self._run_managed,
            args=(rc, op, str(source["script"]), [*named, *protected], timeout_s or MANAGED_DEFAULT_TIMEOUT_S),
            name=f"managed-run-command-{op.id[:8]}", daemon=True)
        self._workers = [w for w in self._workers if w.is_alive()] + [worker]
        worker.start()
        async_url, _ = self._operation_headers(entry, op, api_version)
        headers = {"Azure-AsyncOperation": async_url, "Retry-After": str(self.retry_after)}
        return (200 if existing else 201), self._run_command_view(rc, expand=False), headers

    def _run_managed(self, rc: _RunCommand, op: _Operation, script: str, parameters: list[tuple[str, str]],
                     timeout_s: int) -> None:
        """Run a managed run command as the Linux RunCommandHandler does: named parameters (protected
        ones too) in the script's environment, never in its text; stdout and stderr each cut to their
        last 4,096 bytes in the instance view; the state Succeeded, Failed (exit code not 0), TimedOut or
        Canceled (deleted while it ran)."""
        key = (rc.entry.resource_group.lower(), rc.entry.name.lower())
        async_execution = bool(rc.properties.get("asyncExecution"))
        with self._lock:
            rc.execution_state, rc.start = "Running", time.time()
            if async_execution:  # provisioning completes once the script starts
                rc.provisioning_state = "Succeeded"
        if async_execution:
            op.finish()

        def started(proc) -> None:
            rc.process = proc
            if rc.canceled:
                _kill(proc)

        code, stdout, stderr = -1, "", ""
        if not rc.canceled:
            try:
                code, stdout, stderr = rc.entry.vm.run_script(
                    script, (), timeout=timeout_s, environment={n: v for n, v in parameters if n},
                    download=f"var/lib/waagent/run-command-handler/download/{rc.name}", started=started)
            except Exception as exc:  # the handler itself failed: say so, like the agent would
                code, stdout, stderr = -1, "", f"{type(exc).__name__}: {exc}"
        ran_s = time.time() - rc.start
        remaining = self.delay_s - ran_s
        if remaining > 0 and not rc.canceled:
            time.sleep(remaining)
        if rc.canceled:
            state, message = "Canceled", "The run command was deleted while it ran: its script was stopped."
        elif code == 124 and ran_s >= timeout_s:
            state, message = "TimedOut", f"The script did not finish within timeoutInSeconds ({timeout_s} s)."
        else:
            state, message = ("Succeeded", "") if code == 0 else ("Failed", f"The script exited with code {code}.")
        failed = (bool(rc.properties.get("treatFailureAsDeploymentFailure")) and state != "Succeeded"
                  and not async_execution)
        end = time.time()
        with self._lock:
            rc.exit_code, rc.output, rc.error = code, tail(stdout.encode("utf-8")), tail(stderr.encode("utf-8"))
            rc.execution_state, rc.execution_message, rc.end = state, message, end
            if not async_execution:
                rc.provisioning_state = "Failed" if failed else "Succeeded"
            rc.process = None
            self._running[key] -= 1
            self.history.append({
                "resource_group": rc.entry.resource_group, "vm": rc.entry.name, "operation_id": op.id,
                "command_id": None, "api": "managed", "name": rc.name, "script": script,
                "parameters": [(n, v) for n, v in parameters if (n, v) not in rc.protected],
                "protected_parameters": [n for n, _ in rc.protected], "exit_code": code, "execution_state": state,
                "stdout": stdout, "stderr": stderr, "message": message, "start": rc.start, "end": end,
            })
        op.finish(error=_arm_error("VMExtensionProvisioningError", message)["error"] if failed else None)
        rc.finished.set()

    def _managed_delete(self, key: tuple[str, str], name: str, api_version: str) -> tuple[int, dict | None, dict]:
        """Delete a managed run command; one still running is stopped first (its state: Canceled)."""
        with self._lock:
            rc = self._run_commands.pop((*key, name.lower()), None)
            if rc is None:
                return 204, None, {}
            op = _Operation(str(uuid.uuid4()), key, time.time())
            self._operations[op.id] = op
            running = not rc.finished.is_set()
            if running:
                rc.canceled = True
        if running and rc.process is not None:
            _kill(rc.process)

        def finish() -> None:
            rc.finished.wait(30)
            op.finish()

        worker = threading.Thread(target=finish, name=f"delete-run-command-{op.id[:8]}", daemon=True)
        self._workers = [w for w in self._workers if w.is_alive()] + [worker]
        worker.start()
        _, location = self._operation_headers(self._vms[key], op, api_version)
        return 202, None, {"Location": location, "Retry-After": str(self.retry_after)}

    def _run_command_view(self, rc: _RunCommand, expand: bool) -> dict:
        """The resource as ARM answers it: what was sent, less the protected parameters and the password."""
        with self._lock:
            properties = {**rc.properties, "provisioningState": rc.provisioning_state}
            if expand:
                view: dict = {"executionState": rc.execution_state, "executionMessage": rc.execution_message,
                              "exitCode": rc.exit_code, "output": rc.output, "error": rc.error, "statuses": []}
                if rc.start is not None:
                    view["startTime"] = _iso(rc.start)
                if rc.end is not None:
                    view["endTime"] = _iso(rc.end)
                properties["instanceView"] = view
        body = {"name": rc.name, "id": f"{self._vm_id(rc.entry)}/runCommands/{rc.name}",
                "type": "Microsoft.Compute/virtualMachines/runCommands", "location": rc.location,
                "properties": properties}
        if rc.tags:
            body["tags"] = rc.tags
        return body

    # ----------------------------------------------------------------- models

    def _vm_id(self, entry: _VM) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{entry.resource_group}"
                f"/providers/Microsoft.Compute/virtualMachines/{entry.name}")

    def _instance_view(self, entry: _VM) -> dict:
        now = _iso(time.time())
        return {
            "computerName": entry.vm.hostname,
            "osName": "ubuntu",
            "osVersion": "24.04",
            "vmAgent": {
                "vmAgentVersion": "2.13.1.1",
                "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready",
                              "message": "Guest Agent is running", "time": now}],
                "extensionHandlers": [{"type": "Microsoft.CPlat.Core.RunCommandLinux", "typeHandlerVersion": "1.0.5",
                                       "status": {"code": "ProvisioningState/succeeded", "level": "Info",
                                                  "displayStatus": "Ready"}}],
            },
            "hyperVGeneration": "V2",
            "disks": [{"name": f"{entry.name}_OsDisk_1",
                       "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info",
                                     "displayStatus": "Provisioning succeeded", "time": _iso(entry.created)}]}],
            "statuses": [
                {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded",
                 "time": _iso(entry.created)},
                {"code": "PowerState/running", "level": "Info", "displayStatus": "VM running"},
            ],
        }

    def _vm_model(self, entry: _VM, expand: str | None) -> dict:
        properties = {
            "vmId": entry.vm_id,
            "hardwareProfile": {"vmSize": "Standard_B2s"},
            "storageProfile": {
                "imageReference": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server",
                                   "version": "latest", "exactVersion": "24.04.202510010"},
                "osDisk": {"osType": "Linux", "name": f"{entry.name}_OsDisk_1", "createOption": "FromImage",
                           "caching": "ReadWrite", "managedDisk": {"storageAccountType": "Premium_LRS"},
                           "deleteOption": "Delete", "diskSizeGB": 30},
                "dataDisks": [],
            },
            "osProfile": {
                "computerName": entry.vm.hostname, "adminUsername": entry.vm.service_user,
                "linuxConfiguration": {"disablePasswordAuthentication": True, "provisionVMAgent": True},
                "secrets": [], "allowExtensionOperations": True,
            },
            "networkProfile": {"networkInterfaces": [{"id": (
                f"/subscriptions/{self.subscription_id}/resourceGroups/{entry.resource_group}"
                f"/providers/Microsoft.Network/networkInterfaces/{entry.name.lower()}-nic")}]},
            "provisioningState": "Succeeded",
            "timeCreated": _iso(entry.created),
        }
        if expand and expand.lower() == "instanceview":
            properties["instanceView"] = self._instance_view(entry)
        return {"name": entry.name, "id": self._vm_id(entry), "type": "Microsoft.Compute/virtualMachines",
                "location": entry.location, "properties": properties}

    # ----------------------------------------------------------------- HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        emu = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: dict | None, headers: dict | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                emu.requests.append((self.command, self.path, status))
                emu.answers.append((self.command, self.path, status, data.decode("utf-8")))
                self.send_response(status)
                request_id = str(uuid.uuid4())
                self.send_header("x-ms-request-id", request_id)
                self.send_header("x-ms-correlation-request-id", self.headers.get("x-ms-client-request-id") or request_id)
                self.send_header("Cache-Control", "no-cache")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                if body is not None:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
                self._send(status, {"error": {"code": code, "message": message}}, headers)

            def _read_body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _authorized(self) -> bool:
                auth = self.headers.get("Authorization")
                if not auth:
                    self._error(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.",
                                {"WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/common", '
                                                     'error="invalid_token", error_description="The authentication '
                                                     "failed because of missing 'Authorization' header.\""})
                    return False
                scheme, _, token = auth.partition(" ")
                if scheme.lower() != "bearer" or token.strip() != emu.token:
                    self._error(401, "InvalidAuthenticationToken", "The access token is invalid.",
                                {"WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/common", '
                                                     'error="invalid_token", error_description="The access token is invalid."'})
                    return False
                return True

            def _route(self, method: str) -> None:
                body = self._read_body()
                emu.bodies.append((method, self.path, body.decode("utf-8", errors="replace")))
                fault = emu._fault_now()
                if fault == "drop":  # the connection closes without an answer, as in an outage
                    self.close_connection = True
                    return
                if fault == "5xx":
                    return self._error(503, "ServiceUnavailable", "The service is temporarily unavailable.")
                parts = urlsplit(self.path)
                query = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
                if not self._authorized():
                    return
                sub = _SUB_PATH.match(parts.path)
                if sub is None:
                    return self._error(404, "NotFound", f"The requested resource '{parts.path}' was not found.")
                if sub.group("sub").lower() != emu.subscription_id.lower():
                    return self._error(404, "SubscriptionNotFound",
                                       f"The subscription '{sub.group('sub')}' could not be found.")
                api_version = query.get("api-version")
                if not api_version:
                    return self._error(400, "MissingApiVersionParameter",
                                       "The api-version query parameter (?api-version=) is required for all requests.")
                op_match = _OP_PATH.match(parts.path)
                if op_match and method == "GET":
                    return self._operation(op_match.group("op"), "monitor" in query)
                match = _VM_PATH.match(parts.path)
                if match is None:
                    return self._error(404, "NotFound", f"The requested resource '{parts.path}' was not found.")
                rg, name, action = match.group("rg"), match.group("vm"), (match.group("action") or "").lower()
                key = (rg.lower(), name.lower())
                if key not in emu._vms:
                    if not any(k[0] == key[0] for k in emu._vms):
                        return self._error(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
                    return self._error(404, "ResourceNotFound",
                                       f"The Resource 'Microsoft.Compute/virtualMachines/{name}' under resource group "
                                       f"'{rg}' was not found. For more details please go to "
                                       "https://aka.ms/ARMResourceNotFoundFix")
                entry = emu._vms[key]
                if action.startswith("/runcommands"):
                    return self._managed(method, key, match.group("run_command"), body, query, api_version)
                if action == "/runcommand" and method == "POST":
                    try:
                        payload = json.loads(body or b"{}")
                    except json.JSONDecodeError as exc:
                        return self._error(400, "InvalidRequestContent", f"The request content was invalid: {exc}")
                    if not emu.allows(RUN_COMMAND_ACTION):
                        return self._forbidden(RUN_COMMAND_ACTION, emu._vm_id(entry))
                    command = str(payload.get("commandId") or "")
                    if not command:
                        return self._error(400, "InvalidParameter", "Required parameter 'commandId' is missing (null).")
                    if command.lower() != "runshellscript":
                        return self._error(404, "NotFound", "The entity was not found in this Azure location.")
                    status, out, headers = emu._accept(key, payload, api_version)
                    return self._send(status, out if status != 202 else None, headers)
                if action.endswith("/permissions") and method == "GET":
                    return self._send(200, {"value": [dict(p) for p in emu.permissions]})
                if action == "/instanceview" and method in ("GET", "POST"):
                    return self._send(200, emu._instance_view(entry))
                if action == "" and method == "GET":
                    return self._send(200, emu._vm_model(entry, query.get("$expand")))
                return self._error(405, "MethodNotAllowed", f"The method '{method}' is not allowed here.")

            def _forbidden(self, action: str, scope: str) -> None:
                return self._error(
                    403, "AuthorizationFailed",
                    f"The client '{CLIENT_ID}' with object id '{CLIENT_ID}' does not have authorization to "
                    f"perform action '{action}' over scope '{scope}' or the scope is invalid. If "
                    "access was recently granted, please refresh your credentials.")

            def _managed(self, method: str, key: tuple[str, str], name: str | None, body: bytes, query: dict,
                         api_version: str) -> None:
                """``.../virtualMachines/{vm}/runCommands[/{name}]``: the managed Run Command API."""
                entry = emu._vms[key]
                expand = (query.get("$expand") or "").lower() == "instanceview"
                if name is None:
                    if method != "GET":
                        return self._error(405, "MethodNotAllowed", f"The method '{method}' is not allowed here.")
                    names = sorted(k for k in emu._run_commands if k[:2] == key)
                    return self._send(200, {"value": [emu._run_command_view(emu._run_commands[k], expand)
                                                      for k in names if k in emu._run_commands]})
                scope = f"{emu._vm_id(entry)}/runCommands/{name}"
                if method == "GET":
                    rc = emu.run_command(*key, name)
                    if rc is None:
                        return self._error(
                            404, "ResourceNotFound",
                            f"The Resource 'Microsoft.Compute/virtualMachines/{entry.name}/runCommands/{name}' under "
                            f"resource group '{entry.resource_group}' was not found. For more details please go to "
                            "https://aka.ms/ARMResourceNotFoundFix")
                    return self._send(200, emu._run_command_view(rc, expand))
                if method == "PUT":
                    try:
                        payload = json.loads(body or b"{}")
                    except json.JSONDecodeError as exc:
                        return self._error(400, "InvalidRequestContent", f"The request content was invalid: {exc}")
                    if not isinstance(payload, dict):
                        return self._error(400, "InvalidRequestContent", "The request content was invalid.")
                    if not emu.allows(RUN_COMMANDS_WRITE):
                        return self._forbidden(RUN_COMMANDS_WRITE, scope)
                    status, out, headers = emu._managed_put(key, name, payload, api_version)
                    return self._send(status, out, headers)
                if method == "DELETE":
                    if not emu.allows(RUN_COMMANDS_DELETE):
                        return self._forbidden(RUN_COMMANDS_DELETE, scope)
                    status, out, headers = emu._managed_delete(key, name, api_version)
                    return self._send(status, out, headers)
                return self._error(405, "MethodNotAllowed", f"The method '{method}' is not allowed here.")

            def _operation(self, op_id: str, monitor: bool) -> None:
                op = emu._operations.get(op_id)
                if op is None:
                    return self._error(404, "NotFound", f"The operation '{op_id}' was not found.")
                if not op.done.is_set():
                    if monitor:
                        return self._send(202, None, {"Location": emu.url + self.path,
                                                      "Retry-After": str(emu.retry_after)})
                    return self._send(200, {"startTime": _iso(op.start), "status": "InProgress", "name": op.id})
                if monitor:
                    return self._send(200, op.result)
                answer: dict = {"startTime": _iso(op.start), "endTime": _iso(op.end or op.start),
                                "status": "Failed" if op.error else "Succeeded", "name": op.id}
                if op.error:
                    answer["error"] = op.error
                elif op.result is not None:
                    answer["properties"] = {"output": op.result}
                return self._send(200, answer)

            def do_GET(self) -> None:  # noqa: N802
                self._route("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._route("POST")

            def do_PUT(self) -> None:  # noqa: N802
                self._route("PUT")

            def do_DELETE(self) -> None:  # noqa: N802
                self._route("DELETE")

            def do_PATCH(self) -> None:  # noqa: N802
                self._route("PATCH")

        return Handler
