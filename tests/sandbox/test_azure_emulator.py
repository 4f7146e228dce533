"""The Azure Resource Manager emulator, driven by the real azure-mgmt-compute SDK over loopback HTTP."""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.core.rest import HttpRequest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import (
    RunCommandInput,
    RunCommandInputParameter,
    VirtualMachineRunCommand,
    VirtualMachineRunCommandProperties,
    VirtualMachineRunCommandScriptSource,
)

from sandbox.azure_emulator import CONFLICT_MESSAGE, AzureEmulator
from sandbox.vm import SimulatedVM

RG, NAME = "NetworkWatcherRG", "Nexy"
SECRET = "AIzaSyProtected0123456789abcdefghijklmn"
FINAL = {"Succeeded", "Failed", "TimedOut", "Canceled"}


class StaticToken:
    """An azure.core TokenCredential that always returns one static bearer token."""

    def __init__(self, token: str):
        self.token = token

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedVM]:
    """One healthy simulated VM shared by this module's tests (each test leaves it healthy)."""
    machine = SimulatedVM(tmp_path_factory.mktemp("azure") / "vm").create()
    yield machine
    machine.stop()


@pytest.fixture
def emu(vm: SimulatedVM) -> Iterator[AzureEmulator]:
    """A fresh emulator serving the VM as NetworkWatcherRG/Nexy, each run command lasting >= 50 ms."""
    with AzureEmulator(delay_s=0.05) as emulator:
        emulator.add_vm(RG, NAME, vm)
        yield emulator
    vm.run_command_busy = 0


@pytest.fixture
def client(emu: AzureEmulator) -> ComputeManagementClient:
    """The real SDK client, pointed at the emulator with its static token."""
    return ComputeManagementClient(StaticToken(emu.token), emu.subscription_id, base_url=emu.url)


def run(client: ComputeManagementClient, *lines: str, params: list[tuple[str, str]] = (), vm: str = NAME):
    poller = client.virtual_machines.begin_run_command(
        RG, vm, RunCommandInput(command_id="RunShellScript", script=list(lines),
                                parameters=[RunCommandInputParameter(name=n, value=v) for n, v in params]),
        enforce_https=False, polling_interval=0.02)
    return poller.result()


def sections(message: str) -> tuple[str, str]:
    assert message.startswith("Enable succeeded: \n[stdout]\n")
    out, err = message[len("Enable succeeded: \n[stdout]\n"):].split("\n[stderr]\n", 1)
    return out, err


def test_run_command_succeeds_through_the_lro(client: ComputeManagementClient, emu: AzureEmulator) -> None:
    """A run command answers 202, is polled at Azure-AsyncOperation, and its result is read at Location."""
    result = run(client, "echo hello", "hostname -s >/dev/null")
    status = result.value[0]
    assert (status.code, status.level, status.display_status) == (
        "ProvisioningState/succeeded", "Info", "Provisioning succeeded")
    assert status.message == "Enable succeeded: \n[stdout]\nhello\n\n[stderr]\n"
    (post,) = [r for r in emu.requests if r[0] == "POST"]
    assert "/providers/Microsoft.Compute/virtualMachines/Nexy/runCommand?api-version=" in post[1] and post[2] == 202
    gets = [r for r in emu.requests if r[0] == "GET"]
    assert any("/operations/" in path and "monitor=true" not in path for _, path, _ in gets)
    assert gets[-1][2] == 200 and "monitor=true" in gets[-1][1]
    (entry,) = emu.history
    assert entry["script"] == "echo hello\nhostname -s >/dev/null" and entry["exit_code"] == 0
    assert entry["end"] - entry["start"] >= emu.delay_s
    assert emu.run_count[(RG.lower(), NAME.lower())] == 1


def test_nonzero_exit_still_succeeds_with_stderr(client: ComputeManagementClient, emu: AzureEmulator) -> None:
    """A script that exits non-zero still comes back ProvisioningState/succeeded; only stderr tells."""
    result = run(client, "echo partial", "echo 'boom: it broke' >&2", "exit 3")
    out, err = sections(result.value[0].message)
    assert result.value[0].code == "ProvisioningState/succeeded"
    assert (out, err) == ("partial\n", "boom: it broke\n")
    assert emu.history[-1]["exit_code"] == 3


def test_output_is_cut_to_the_last_4096_bytes(client: ComputeManagementClient, emu: AzureEmulator) -> None:
    """stdout and stderr are each cut to their last 4,096 bytes, so a summary printed last survives."""
    result = run(client, "seq 1 3000", "seq 1 2000 >&2", "echo SUMMARY rc=0")
    out, err = sections(result.value[0].message)
    full_out = "".join(f"{i}\n" for i in range(1, 3001)) + "SUMMARY rc=0\n"
    full_err = "".join(f"{i}\n" for i in range(1, 2001))
    assert len(full_out.encode()) > 4096 and len(full_err.encode()) > 4096
    assert out == full_out[-4096:] and err == full_err[-4096:]
    assert out.endswith("SUMMARY rc=0\n")
    assert emu.history[-1]["stdout"] == full_out  # the emulator keeps the whole output for tests


def test_parameters_reach_the_script(client: ComputeManagementClient) -> None:
    """Parameters are exported as variables and set as $1..$n, as Azure's Linux handler does."""
    result = run(client, 'echo "$#:$1:$2:$NEXY_SERVICE:$NOTE"',
                 params=[("NEXY_SERVICE", "voice-assistant"), ("NOTE", "two words; $(not run)")])
    out, _ = sections(result.value[0].message)
    assert out == "2:voice-assistant:two words; $(not run):voice-assistant:two words; $(not run)\n"


def test_busy_answers_409_conflict(client: ComputeManagementClient, emu: AzureEmulator, vm: SimulatedVM) -> None:
    """busy() and the VM's run-command-busy fault make the next run commands fail with 409 Conflict."""
    emu.busy(RG, NAME, 1)
    with pytest.raises(ResourceExistsError) as caught:
        run(client, "echo never")
    assert isinstance(caught.value, HttpResponseError) and caught.value.status_code == 409
    assert caught.value.error.code == "Conflict" and caught.value.error.message == CONFLICT_MESSAGE
    assert sections(run(client, "echo after").value[0].message)[0] == "after\n"

    vm.break_("run-command-busy", times=2)
    for _ in range(2):
        with pytest.raises(ResourceExistsError):
            run(client, "echo never")
    assert vm.run_command_busy == 0
    run(client, "true")
    assert len(emu.conflicts) == 3 and all(h["script"] != "echo never" for h in emu.history)


def test_concurrent_run_commands_conflict(client: ComputeManagementClient, emu: AzureEmulator) -> None:
    """Two threads starting run commands at once: one runs, the other gets 409; never two at a time."""
    emu.delay_s = 0.6
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def call() -> None:
        barrier.wait()
        try:
            outcomes.append(run(client, "echo one"))
        except HttpResponseError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    errors = [o for o in outcomes if isinstance(o, HttpResponseError)]
    assert len(outcomes) == 2 and len(errors) == 1
    assert isinstance(errors[0], ResourceExistsError) and errors[0].status_code == 409
    key = (RG.lower(), NAME.lower())
    assert emu.max_concurrency[key] == 1 and emu.run_count[key] == 1


def test_authentication_errors(emu: AzureEmulator) -> None:
    """No bearer token is 401 AuthenticationFailed; a wrong one is 401 InvalidAuthenticationToken."""
    url = f"{emu.url}/subscriptions/{emu.subscription_id}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{NAME}?api-version=2024-11-01"
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(url, timeout=5)
    assert caught.value.code == 401
    assert json.loads(caught.value.read())["error"]["code"] == "AuthenticationFailed"
    wrong = ComputeManagementClient(StaticToken("not-the-token"), emu.subscription_id, base_url=emu.url)
    with pytest.raises(ClientAuthenticationError) as denied:
        wrong.virtual_machines.get(RG, NAME, enforce_https=False)
    assert denied.value.status_code == 401 and denied.value.error.code == "InvalidAuthenticationToken"
    with pytest.raises(ClientAuthenticationError):
        run(wrong, "echo never")
    assert emu.history == []


def test_not_found_errors(client: ComputeManagementClient, emu: AzureEmulator) -> None:
    """Unknown VM, resource group and subscription are ARM's 404s with their codes."""
    with pytest.raises(ResourceNotFoundError) as vm_missing:
        client.virtual_machines.get(RG, "Other", enforce_https=False)
    assert vm_missing.value.error.code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError) as rg_missing:
        client.virtual_machines.get("NoSuchRG", NAME, enforce_https=False)
    assert rg_missing.value.error.code == "ResourceGroupNotFound"
    with pytest.raises(ResourceNotFoundError):
        run(client, "true", vm="Other")
    other_sub = ComputeManagementClient(StaticToken(emu.token), "11111111-1111-1111-1111-111111111111", base_url=emu.url)
    with pytest.raises(ResourceNotFoundError) as sub_missing:
        other_sub.virtual_machines.get(RG, NAME, enforce_https=False)
    assert sub_missing.value.error.code == "SubscriptionNotFound"


def test_vm_model_and_instance_view(client: ComputeManagementClient, vm: SimulatedVM) -> None:
    """GET the VM (with $expand=instanceView) and its instanceView: provisioned and running."""
    model = client.virtual_machines.get(RG, NAME, expand="instanceView", enforce_https=False)
    assert (model.name, model.location, model.type) == (NAME, "westeurope", "Microsoft.Compute/virtualMachines")
    assert model.id.endswith(f"/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{NAME}")
    assert model.properties.provisioning_state == "Succeeded"
    assert [s.code for s in model.properties.instance_view.statuses] == ["ProvisioningState/succeeded",
                                                                          "PowerState/running"]
    view = client.virtual_machines.instance_view(RG, NAME, enforce_https=False)
    assert view.computer_name == vm.hostname
    assert [s.display_status for s in view.statuses] == ["Provisioning succeeded", "VM running"]
    assert client.virtual_machines.get(RG, NAME, enforce_https=False).properties.instance_view is None


def test_permissions_list_for_the_vm(client: ComputeManagementClient, emu: AzureEmulator) -> None:
    """The caller's permissions on a VM, ARM-shaped: Virtual Machine Contributor's by default, settable;
    401 without a token, 404 for a VM that is not there."""
    vm_id = f"/subscriptions/{emu.subscription_id}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines"
    tail = "/providers/Microsoft.Authorization/permissions?api-version=2022-04-01"

    def permissions(name: str = NAME):
        return client.send_request(HttpRequest("GET", f"{vm_id}/{name}{tail}"), enforce_https=False)

    answer = permissions()
    assert answer.status_code == 200
    [entry] = answer.json()["value"]
    assert set(entry) == {"actions", "notActions", "dataActions", "notDataActions"}
    assert "Microsoft.Compute/virtualMachines/*" in entry["actions"] and entry["notActions"] == []
    emu.set_permissions(["*/read"], not_actions=["Microsoft.Compute/*/action"])
    assert permissions().json()["value"] == [{"actions": ["*/read"], "notActions": ["Microsoft.Compute/*/action"],
                                              "dataActions": [], "notDataActions": []}]
    missing = permissions("Other")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ResourceNotFound"
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{emu.url}{vm_id}/{NAME}{tail}", timeout=5)
    assert caught.value.code == 401
    assert json.loads(caught.value.read())["error"]["code"] == "AuthenticationFailed"


def test_sdk_refuses_http_without_enforce_https(client: ComputeManagementClient) -> None:
    """azure-core refuses a bearer token over plain http unless the call passes enforce_https=False."""
    with pytest.raises(ServiceRequestError, match="non-TLS"):
        client.virtual_machines.get(RG, NAME, retry_total=0)


def test_runbook_fix_through_run_command(client: ComputeManagementClient, vm: SimulatedVM) -> None:
    """6.1 end to end over ARM: the fix runs as a run command with the settings as parameters and heals the VM."""
    vm.break_("config-perms")
    params = [("NEXY_APP_DIR", str(vm.app_dir)), ("NEXY_SERVICE", vm.service)]
    out, _ = sections(run(client, 'journalctl -u "$NEXY_SERVICE" -n 50 --no-pager | grep PermissionError || true',
                          params=params).value[0].message)
    assert "Permission denied: '/home/azureuser/voice-assistant/config.env'" in out
    fix = ['set -eu', 'sudo chown root:azureuser "$NEXY_APP_DIR/config.env"', 'sudo chmod 640 "$NEXY_APP_DIR/config.env"',
           'sudo systemctl restart "$NEXY_SERVICE"', 'echo "RESULT rc=$?"']
    out, err = sections(run(client, *fix, params=params).value[0].message)
    assert out.strip() == "RESULT rc=0" and err == ""
    vm.wait_healthy()


@pytest.mark.parametrize("scenario, status, code", [
    ("azure-token-expired", 401, "InvalidAuthenticationToken"),
    ("azure-no-role", 403, "AuthorizationFailed"),
    ("azure-wrong-subscription", 404, "SubscriptionNotFound"),
])
def test_section_1_scenarios_refuse_run_command_as_arm_does(emu, scenario, status, code):
    """Each section 1 fault answers a run command with ARM's status and error code; healthy heals it."""
    token, sub = emu.token, emu.subscription_id
    vm = f"{emu.url}/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{NAME}"
    headers = {"Authorization": f"Bearer {token}"}
    emu.apply_scenario(scenario)
    answer = httpx.post(f"{vm}/runCommand?api-version=2024-07-01", headers=headers,
                        json={"commandId": "RunShellScript", "script": ["true"]})
    assert answer.status_code == status and answer.json()["error"]["code"] == code
    emu.apply_scenario("healthy")
    assert httpx.get(f"{vm}?api-version=2024-07-01", headers=headers).status_code == 200


# ----------------------------------------------------------------- managed run commands


def managed(script: str, *, protected=(), params=(), async_execution=True, timeout_s=60, treat_failure=False):
    """A managed run command resource as the SDK sends it (inline script, named parameters)."""
    return VirtualMachineRunCommand(location="westeurope", properties=VirtualMachineRunCommandProperties(
        source=VirtualMachineRunCommandScriptSource(script=script),
        parameters=[RunCommandInputParameter(name=n, value=v) for n, v in params],
        protected_parameters=[RunCommandInputParameter(name=n, value=v) for n, v in protected],
        async_execution=async_execution, timeout_in_seconds=timeout_s,
        treat_failure_as_deployment_failure=treat_failure))


def create(client: ComputeManagementClient, name: str, command: VirtualMachineRunCommand):
    """begin_create_or_update through the SDK's own LRO polling, to its final resource."""
    return client.virtual_machine_run_commands.begin_create_or_update(
        RG, NAME, name, command, enforce_https=False, polling_interval=0.02).result()


def finished(client: ComputeManagementClient, name: str, timeout_s: float = 30):
    """Poll the run command's instance view until its executionState is final."""
    deadline = time.monotonic() + timeout_s
    while True:
        command = client.virtual_machine_run_commands.get_by_virtual_machine(
            RG, NAME, name, expand="instanceView", enforce_https=False)
        if command.properties.instance_view.execution_state in FINAL or time.monotonic() > deadline:
            return command
        time.sleep(0.02)


def test_managed_run_command_create_poll_read_delete(client: ComputeManagementClient, emu: AzureEmulator,
                                                     vm: SimulatedVM) -> None:
    """PUT a run command with a protected parameter, read its output from the instance view, list it, delete
    it; the secret reaches the script in its environment only and is in no answer and no file on the VM."""
    script = 'echo "plain=$PLAIN length=${#NEW_KEY}"; echo "to stderr" >&2'
    created = create(client, "nexy-rc-1", managed(script, protected=[("NEW_KEY", SECRET)], params=[("PLAIN", "p1")]))
    assert created.properties.provisioning_state == "Succeeded"
    assert created.properties.protected_parameters is None and created.properties.parameters[0].value == "p1"
    done = finished(client, "nexy-rc-1")
    view = done.properties.instance_view
    assert (view.execution_state, view.exit_code, view.execution_message) == ("Succeeded", 0, "")
    assert (view.output, view.error) == (f"plain=p1 length={len(SECRET)}\n", "to stderr\n")
    assert view.start_time <= view.end_time
    assert done.type == "Microsoft.Compute/virtualMachines/runCommands" and done.id.endswith(
        f"/virtualMachines/{NAME}/runCommands/nexy-rc-1")
    listed = list(client.virtual_machine_run_commands.list_by_virtual_machine(RG, NAME, enforce_https=False))
    assert [c.name for c in listed] == ["nexy-rc-1"]
    client.virtual_machine_run_commands.begin_delete(RG, NAME, "nexy-rc-1", enforce_https=False,
                                                     polling_interval=0.02).result()
    with pytest.raises(ResourceNotFoundError):
        client.virtual_machine_run_commands.get_by_virtual_machine(RG, NAME, "nexy-rc-1", enforce_https=False)
    assert list(client.virtual_machine_run_commands.list_by_virtual_machine(RG, NAME, enforce_https=False)) == []

    [put] = [b for m, path, b in emu.bodies if m == "PUT"]
    sent = json.loads(put)["properties"]
    assert sent["protectedParameters"] == [{"name": "NEW_KEY", "value": SECRET}] and sent["asyncExecution"] is True
    assert [a for a in emu.answers if SECRET in a[3]] == [] and len(emu.answers) >= 6
    assert [(m, s) for m, _, s, _ in emu.answers if m in ("PUT", "DELETE")] == [("PUT", 201), ("DELETE", 202)]
    [entry] = emu.history
    assert entry["api"] == "managed" and entry["protected_parameters"] == ["NEW_KEY"]
    written = list((vm.root / "var/lib/waagent/run-command-handler/download/nexy-rc-1").rglob("script.sh"))
    assert written and all(SECRET not in p.read_text() for p in written)


def test_managed_sync_execution_waits_and_reports_failures(client: ComputeManagementClient,
                                                           emu: AzureEmulator) -> None:
    """Without asyncExecution provisioning ends with the script; a non-zero exit is executionState Failed,
    and with treatFailureAsDeploymentFailure the operation itself fails (provisioningState Failed)."""
    emu.delay_s = 0.3
    created = create(client, "sync", managed("echo partial; echo broke >&2; exit 3", async_execution=False))
    assert created.properties.provisioning_state == "Succeeded"
    view = client.virtual_machine_run_commands.get_by_virtual_machine(
        RG, NAME, "sync", expand="instanceView", enforce_https=False).properties.instance_view
    assert (view.execution_state, view.exit_code, view.output, view.error) == ("Failed", 3, "partial\n", "broke\n")
    assert emu.history[-1]["end"] - emu.history[-1]["start"] >= 0.3

    with pytest.raises(HttpResponseError) as caught:
        create(client, "strict", managed("exit 4", async_execution=False, treat_failure=True))
    assert "exited with code 4" in str(caught.value)
    strict = client.virtual_machine_run_commands.get_by_virtual_machine(RG, NAME, "strict", enforce_https=False)
    assert strict.properties.provisioning_state == "Failed"


def test_managed_output_is_cut_to_the_last_4096_bytes(client: ComputeManagementClient) -> None:
    """The instance view's output and error each keep only their last 4,096 bytes, as the Linux handler's."""
    create(client, "noisy", managed('seq 1 3000; seq 1 2000 >&2; echo "SUMMARY rc=0"'))
    view = finished(client, "noisy").properties.instance_view
    full_out = "".join(f"{i}\n" for i in range(1, 3001)) + "SUMMARY rc=0\n"
    full_err = "".join(f"{i}\n" for i in range(1, 2001))
    assert view.output == full_out[-4096:] and view.error == full_err[-4096:]


def test_managed_and_action_run_commands_conflict(client: ComputeManagementClient, emu: AzureEmulator) -> None:
    """While an action run command runs, a managed one is 409 Conflict, and the other way round."""
    emu.delay_s = 0.8
    action = threading.Thread(target=run, args=(client, "echo action"))
    action.start()
    deadline = time.monotonic() + 10
    while not emu.run_count.get((RG.lower(), NAME.lower())) and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(ResourceExistsError) as caught:
        create(client, "blocked", managed("echo never"))
    assert caught.value.status_code == 409 and caught.value.error.code == "Conflict"
    action.join(30)

    create(client, "long", managed("sleep 1"))
    with pytest.raises(ResourceExistsError):
        run(client, "echo never")
    assert finished(client, "long").properties.instance_view.execution_state == "Succeeded"
    assert [c["api"] for c in emu.conflicts] == ["managed", "action"]
    assert all("never" not in h["script"] for h in emu.history)
    assert emu.max_concurrency[(RG.lower(), NAME.lower())] == 1


def test_managed_timeout_and_delete_stop_the_script(client: ComputeManagementClient, emu: AzureEmulator) -> None:
    """Past timeoutInSeconds the script is killed (TimedOut); a delete while it runs kills it (Canceled)."""
    create(client, "slow", managed("echo begun; sleep 30", timeout_s=1))
    view = finished(client, "slow").properties.instance_view
    assert view.execution_state == "TimedOut" and view.output == "begun\n"
    assert view.end_time - view.start_time < timedelta(seconds=10)

    create(client, "doomed", managed("sleep 30"))
    started = time.monotonic()
    client.virtual_machine_run_commands.begin_delete(RG, NAME, "doomed", enforce_https=False,
                                                     polling_interval=0.02).result()
    assert time.monotonic() - started < 10 and emu.history[-1]["execution_state"] == "Canceled"
    create(client, "after", managed("echo free"))  # the VM is free again: no 409
    assert finished(client, "after").properties.instance_view.output == "free\n"


def test_managed_needs_the_run_commands_write_permission(client: ComputeManagementClient,
                                                         emu: AzureEmulator) -> None:
    """The Reader role can read run commands but not create one: 403 AuthorizationFailed naming the action."""
    emu.apply_scenario("azure-no-role")
    with pytest.raises(HttpResponseError) as caught:
        create(client, "denied", managed("echo never"))
    assert caught.value.status_code == 403
    assert "Microsoft.Compute/virtualMachines/runCommands/write" in caught.value.error.message
    assert emu.history == []
