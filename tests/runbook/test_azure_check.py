"""End to end: /nexy azure through a signed request, the worker, the real azure-mgmt-compute client
and the Azure emulator. The VM is laid out but not started: the check only reads the VM model and
its instance view, so no service needs to run."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot import render
from runbook.azure import RUN_COMMAND_ACTION, allows
from sandbox.azure_emulator import AzureEmulator
from sandbox.vm import SimulatedVM
from tests.helpers import RG, VM_NAME


@pytest.fixture
def arm(tmp_path) -> Iterator[AzureEmulator]:
    with AzureEmulator() as emulator:
        emulator.add_vm(RG, VM_NAME, SimulatedVM(tmp_path / "vm"))
        yield emulator


@pytest.fixture
def azure_settings(make_settings, arm):
    def build(**overrides):
        values = dict(azure_subscription_id=arm.subscription_id, azure_arm_url=arm.url,
                      azure_access_token=arm.token, azure_resource_group=RG, azure_vm_name=VM_NAME)
        values.update(overrides)
        return make_settings(**values)

    return build


def _ask(slack, work, serve_bot, settings):
    serve_bot(settings)
    assert "queued" in slack.slash_command("azure").json()["text"]
    work(settings)
    replies = [m for m in slack.messages("C0OPS") if m.thread_ts and m.thread_ts != m.ts and not m.ephemeral_to]
    return (replies[-1].text + "\n" + render.plain(replies[-1].blocks)).replace("*", "")


def test_azure_healthy(serve_bot, azure_settings, slack, work, arm):
    """With a good token, azure reports the credential, subscription, VM state and the run-command role."""
    report = _ask(slack, work, serve_bot, azure_settings())
    assert f"`{RG}/{VM_NAME}` is readable; the VM is running, provisioning succeeded" in report
    assert "Credential type static bearer token (AZURE_ACCESS_TOKEN) · accepted" in report
    assert f"Subscription `{arm.subscription_id}`" in report
    assert "VM agent Ready" in report
    assert f":white_check_mark: The identity holds `{RUN_COMMAND_ACTION}` on the VM: it may run commands." in report
    paths = [path.split("?")[0] for _, path, _ in arm.requests]
    vm_path = f"/subscriptions/{arm.subscription_id}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{VM_NAME}"
    assert vm_path in paths and vm_path + "/instanceView" in paths
    assert vm_path + "/providers/Microsoft.Authorization/permissions" in paths
    assert not any(method == "POST" for method, _, _ in arm.requests)  # nothing was run on the VM


def test_azure_identity_without_run_command_names_the_role(serve_bot, azure_settings, slack, work, arm):
    """An identity whose roles lack runCommand/action (a Reader) is told the role that allows it, and how to assign it."""
    arm.set_permissions(["*/read"])
    report = _ask(slack, work, serve_bot, azure_settings())
    assert "is readable; the VM is running, provisioning succeeded. The identity may not run commands on it." in report
    assert f":x: The identity lacks `{RUN_COMMAND_ACTION}`: it needs Virtual Machine Contributor" in report
    assert "Fix (runbook 1)" in report
    assert 'az role assignment create --assignee <principal-id> --role "Virtual Machine Contributor"' in report


def test_azure_not_actions_take_run_command_back(serve_bot, azure_settings, slack, work, arm):
    """A role that grants virtualMachines/* but lists runCommand/action under notActions may not run commands."""
    arm.set_permissions(["Microsoft.Compute/virtualMachines/*"], not_actions=[RUN_COMMAND_ACTION])
    report = _ask(slack, work, serve_bot, azure_settings())
    assert f":x: The identity lacks `{RUN_COMMAND_ACTION}`" in report


def test_azure_rejected_token(serve_bot, azure_settings, slack, work):
    """A refused token (401) says so, with runbook 1's az login fix and the role needed; the token is not posted."""
    settings = azure_settings(azure_access_token="expired-arm-token-1234")
    report = _ask(slack, work, serve_bot, settings)
    assert "Azure refused the credential (401)" in report
    assert "static bearer token (AZURE_ACCESS_TOKEN) · refused" in report
    assert "InvalidAuthenticationToken" in report
    assert "az login" in report and "az account set --subscription" in report
    assert "Virtual Machine Contributor" in report
    assert all("expired-arm-token-1234" not in str(call) for call in slack.calls_to("chat.postMessage"))


def test_azure_vm_not_found(serve_bot, azure_settings, slack, work):
    """A VM name that is not in the resource group is reported as such, with the setting to fix."""
    report = _ask(slack, work, serve_bot, azure_settings(azure_vm_name="Nexy2"))
    assert f"there is no VM `{RG}/Nexy2` (404)" in report
    assert "AZURE_VM_NAME" in report


def test_azure_subscription_not_set(serve_bot, make_settings, slack, work):
    """Without AZURE_SUBSCRIPTION_ID the check says what to set instead of failing."""
    report = _ask(slack, work, serve_bot, make_settings())
    assert "AZURE_SUBSCRIPTION_ID is required" in report


@pytest.mark.parametrize("permissions, expected", [
    ([{"actions": ["*"], "notActions": []}], True),
    ([{"actions": ["Microsoft.Compute/virtualMachines/*"], "notActions": []}], True),
    ([{"actions": ["*/read"], "notActions": []}], False),
    ([{"actions": ["*"], "notActions": ["Microsoft.Compute/*/action"]}], False),
])
def test_run_command_permission_from_arm_permissions(permissions, expected):
    """ARM permission entries grant run-command when an action pattern matches and no notAction does."""
    assert allows(permissions, RUN_COMMAND_ACTION) is expected
