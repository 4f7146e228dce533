"""The Azure Resource Manager emulator, driven by the real azure-mgmt-compute SDK over loopback HTTP."""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

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
from azure.mgmt.compute.models import RunCommandInput, RunCommandInputParameter

from sandbox.azure_emulator import CONFLICT_MESSAGE, AzureEmulator
from sandbox.vm import SimulatedVM

RG, NAME = "NetworkWatcherRG", "Nexy"


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
