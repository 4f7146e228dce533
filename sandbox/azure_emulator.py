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

import json
import re
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
    r"(?P<action>/runCommand|/instanceView|/providers/Microsoft\.Authorization/permissions)?/?$", re.IGNORECASE)

RUN_COMMAND_ACTION = "Microsoft.Compute/virtualMachines/runCommand/action"
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


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 1e7):07d}+00:00"


class _Operation:
    def __init__(self, op_id: str, key: tuple[str, str], start: float):
        self.id = op_id
        self.key = key
        self.start = start
        self.end: float | None = None
        self.result: dict | None = None
        self.done = threading.Event()


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
        self.permissions: list[dict] = []
        """What the permissions list answers for the caller on any VM: one entry a role (see `set_permissions`)."""
        self.set_permissions(VIRTUAL_MACHINE_CONTRIBUTOR_ACTIONS)
        self._healthy = (self.token, self.subscription_id)
        self._vms: dict[tuple[str, str], _VM] = {}
        self._busy: dict[tuple[str, str], int] = {}
        self._running: dict[tuple[str, str], int] = {}
        self._operations: dict[str, _Operation] = {}
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

    def _accept(self, key: tuple[str, str], body: dict, api_version: str) -> tuple[int, dict, dict]:
        entry = self._vms[key]
        with self._lock:
            busy = self._busy.get(key, 0)
            if busy > 0 or entry.vm.run_command_busy > 0 or self._running.get(key, 0) > 0:
                if busy > 0:
                    self._busy[key] = busy - 1
                elif entry.vm.run_command_busy > 0 and not self._running.get(key):
                    entry.vm.run_command_busy -= 1
                self.conflicts.append({"resource_group": entry.resource_group, "vm": entry.name, "time": time.time()})
                return 409, {"error": {"code": "Conflict", "message": CONFLICT_MESSAGE}}, {}
            self._running[key] = self._running.get(key, 0) + 1
            self.max_concurrency[key] = max(self.max_concurrency.get(key, 0), self._running[key])
            self.run_count[key] = self.run_count.get(key, 0) + 1
            op = _Operation(str(uuid.uuid4()), key, time.time())
            self._operations[op.id] = op
        script = "\n".join(body.get("script") or [])
        parameters = [(str(p.get("name", "")), str(p.get("value", ""))) for p in body.get("parameters") or []]
        worker = threading.Thread(target=self._run, args=(op, entry, script, parameters, body.get("commandId")),
                                  name=f"run-command-{op.id[:8]}", daemon=True)
        self._workers = [w for w in self._workers if w.is_alive()] + [worker]
        worker.start()
        base = f"{self.url}/subscriptions/{self.subscription_id}/providers/Microsoft.Compute/locations/{entry.location}/operations/{op.id}"
        query = f"p={entry.vm_id}&api-version={api_version}"
        headers = {"Azure-AsyncOperation": f"{base}?{query}", "Location": f"{base}?{query}&monitor=true",
                   "Retry-After": str(self.retry_after)}
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
                body = self._read_body() if method == "POST" else b""
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
                if action == "/runcommand" and method == "POST":
                    try:
                        payload = json.loads(body or b"{}")
                    except json.JSONDecodeError as exc:
                        return self._error(400, "InvalidRequestContent", f"The request content was invalid: {exc}")
                    if not emu.allows(RUN_COMMAND_ACTION):
                        scope = emu._vm_id(entry)
                        return self._error(
                            403, "AuthorizationFailed",
                            f"The client '{CLIENT_ID}' with object id '{CLIENT_ID}' does not have authorization to "
                            f"perform action '{RUN_COMMAND_ACTION}' over scope '{scope}' or the scope is invalid. If "
                            "access was recently granted, please refresh your credentials.")
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
                return self._send(200, {"startTime": _iso(op.start), "endTime": _iso(op.end or op.start),
                                        "status": "Succeeded", "properties": {"output": op.result}, "name": op.id})

            def do_GET(self) -> None:  # noqa: N802
                self._route("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._route("POST")

            def do_PUT(self) -> None:  # noqa: N802
                self._route("PUT")

            def do_DELETE(self) -> None:  # noqa: N802
                self._route("DELETE")

        return Handler
