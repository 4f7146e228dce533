"""Runbook 1, Azure Auth / Access: what `az vm show` would tell, and the fix when it fails.

Through the same client the run-command executor uses (clients.azure_client): which credential is
used, the subscription, whether the VM can be read, its power and provisioning state from the
instance view, the VM agent (Run Command needs it Ready), and whether the identity holds
`Microsoft.Compute/virtualMachines/runCommand/action` on the VM, read from ARM's permissions list
for the VM (a read: nothing is run). Any refusal is reported with the role it takes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from bot import render
from bot.context import Context
from bot.errors import SettingsError
from bot.item import Route, check
from bot.redaction import redact
from bot.settings import Settings
from bot.wording.refs import command
from clients.azure_client import compute_client, credential_kind

STATUS = command("status")

RUN_COMMAND_ACTION = "Microsoft.Compute/virtualMachines/runCommand/action"
"""The permission Run Command needs on the VM (in Virtual Machine Contributor, Contributor, Owner)."""

PERMISSIONS_API_VERSION = "2022-04-01"
"""Microsoft.Authorization/permissions: the caller's own actions on a resource."""

READ_TIMEOUT_S = 15
"""Seconds for each ARM read; azure-core retries a failed read twice (compute_client)."""


class Failure(str, Enum):
    """Where the check stopped, if it did."""

    SETTINGS = "settings"  # AZURE_SUBSCRIPTION_ID or AZURE_ARM_URL / token unusable
    AUTH = "auth"  # 401: the credential was refused or none could be had
    FORBIDDEN = "forbidden"  # 403: signed in, but no read on the VM
    SUBSCRIPTION = "subscription"  # 404 SubscriptionNotFound
    RESOURCE_GROUP = "resource-group"  # 404 ResourceGroupNotFound
    VM = "vm"  # 404 ResourceNotFound: no such VM
    UNREACHABLE = "unreachable"  # no answer from ARM
    OTHER = "other"


@dataclass(frozen=True)
class AzureReport:
    """What the identity can see of the VM; `failure` says where it stopped."""

    credential: str
    subscription: str | None
    resource_group: str
    vm_name: str
    arm_url: str
    failure: Failure | None = None
    detail: str = ""  # ARM's own error code and message, redacted and cut
    location: str | None = None
    vm_size: str | None = None
    power_state: str | None = None  # "running", "stopped", "deallocated" ...
    provisioning_state: str | None = None  # "succeeded", "failed", "updating" ...
    agent_status: str | None = None  # the VM agent's display status: "Ready" ...
    run_command: bool | None = None  # may the identity run commands; None: could not be read
    permission_detail: str = ""

    @property
    def healthy(self) -> bool:
        return (
            self.failure is None
            and self.power_state == "running"
            and self.provisioning_state == "succeeded"
            and self.run_command is not False
        )


def read(settings: Settings) -> AzureReport:
    """Read the VM and its instance view; never raises for an Azure refusal, the report says it."""
    base: dict[str, Any] = dict(
        credential=credential_kind(settings),
        subscription=settings.azure_subscription_id,
        resource_group=settings.azure_resource_group,
        vm_name=settings.azure_vm_name,
        arm_url=settings.azure_arm_url,
    )
    try:
        client = compute_client(settings)
    except SettingsError as exc:
        return AzureReport(**base, failure=Failure.SETTINGS, detail=str(exc))
    rg, name = settings.azure_resource_group, settings.azure_vm_name
    with client:
        try:
            vm = client.virtual_machines.get(rg, name, read_timeout=READ_TIMEOUT_S)
            view = client.virtual_machines.instance_view(rg, name, read_timeout=READ_TIMEOUT_S)
        except Exception as exc:  # every Azure failure becomes a finding, not a stack trace
            failure, detail = classify(exc)
            return AzureReport(**base, failure=failure, detail=detail)
        power = provisioning = None
        for status in view.statuses or []:
            kind, _, value = (status.code or "").partition("/")
            if kind == "PowerState":
                power = value.lower()
            elif kind == "ProvisioningState":
                provisioning = value.lower()
        agent = None
        if view.vm_agent and view.vm_agent.statuses:
            agent = view.vm_agent.statuses[0].display_status
        allowed, permission_detail = _may_run_commands(client, vm.id or "")
    size = vm.hardware_profile.vm_size if vm.hardware_profile else None
    size = getattr(size, "value", size)  # an SDK enum member, or a plain string for sizes it does not list
    return AzureReport(
        **base,
        location=vm.location,
        vm_size=size,
        power_state=power,
        provisioning_state=provisioning or (vm.provisioning_state or "").lower() or None,
        agent_status=agent,
        run_command=allowed,
        permission_detail=permission_detail,
    )


def classify(exc: Exception) -> tuple[Failure, str]:
    """An Azure SDK exception as (where it failed, ARM's code and message: safe to show)."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    code = getattr(getattr(exc, "error", None), "code", None) or ""
    message = getattr(getattr(exc, "error", None), "message", None) or str(exc).splitlines()[0]
    detail = redact(f"{code}: {message}" if code else message)[:300]
    status = getattr(exc, "status_code", None)
    if isinstance(exc, ClientAuthenticationError) or status == 401:
        return Failure.AUTH, detail
    if isinstance(exc, ResourceNotFoundError) or status == 404:
        if code == "SubscriptionNotFound":
            return Failure.SUBSCRIPTION, detail
        if code == "ResourceGroupNotFound":
            return Failure.RESOURCE_GROUP, detail
        return Failure.VM, detail
    if status == 403:
        return Failure.FORBIDDEN, detail
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return Failure.UNREACHABLE, detail
    if isinstance(exc, HttpResponseError):
        return Failure.OTHER, detail
    return Failure.OTHER, redact(f"{type(exc).__name__}: {exc}")[:300]


def _may_run_commands(client, vm_id: str) -> tuple[bool | None, str]:
    """Whether the caller's permissions on the VM include the run-command action (None: not readable)."""
    from azure.core.rest import HttpRequest

    request = HttpRequest(
        "GET", f"{vm_id}/providers/Microsoft.Authorization/permissions?api-version={PERMISSIONS_API_VERSION}"
    )
    try:
        response = client.send_request(request, read_timeout=READ_TIMEOUT_S)
        status = response.status_code
        body = response.json() if status == 200 else None
    except Exception as exc:  # the answer is optional: the VM read already worked
        return None, classify(exc)[1]
    if status != 200 or not isinstance(body, dict):
        return None, f"the permissions list answered HTTP {status}"
    return allows(body.get("value") or [], RUN_COMMAND_ACTION), ""


def allows(permissions: list[dict], action: str) -> bool:
    """Whether ARM permission entries grant `action`: an `actions` pattern matches and no `notActions` one does."""
    for entry in permissions:
        granted = any(_action_matches(p, action) for p in entry.get("actions") or [])
        denied = any(_action_matches(p, action) for p in entry.get("notActions") or [])
        if granted and not denied:
            return True
    return False


def _action_matches(pattern: str, action: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, action, re.IGNORECASE) is not None


# -- the report -----------------------------------------------------------------------------

_RUN_COMMAND_ROLE = (
    "*Virtual Machine Contributor* on the VM, or a custom role with "
    "`Microsoft.Compute/virtualMachines/runCommand/action`"
)


def render_report(r: AzureReport) -> tuple[str, list[dict]]:
    target = f"`{r.resource_group}/{r.vm_name}`"
    failure = r.failure
    if failure is None:
        power = r.power_state or "in an unknown power state"
        state = f"the VM is *{power}*, provisioning *{r.provisioning_state or 'unknown'}*"
        if r.healthy:
            headline = f":large_green_circle: *Azure access (runbook 1)*: {target} is readable; {state}."
        else:
            icon = ":red_circle:" if r.run_command is False else ":large_orange_circle:"
            headline = f"{icon} *Azure access (runbook 1)*: {target} is readable; {state}."
            if r.run_command is False:
                headline += " The identity may *not* run commands on it."
    else:
        reason = {
            "settings": "the bot cannot reach Azure as configured",
            "auth": "Azure refused the credential (401)",
            "forbidden": f"the identity may not read {target} (403)",
            "subscription": f"subscription `{r.subscription}` is not visible to this identity (404)",
            "resource-group": f"resource group `{r.resource_group}` is not in the subscription (404)",
            "vm": f"there is no VM {target} (404)",
            "unreachable": f"Azure Resource Manager did not answer at `{r.arm_url}`",
        }.get(failure.value, "Azure answered with an error")
        headline = f":red_circle: *Azure access (runbook 1)*: {reason}."

    accepted = {None: "accepted", "auth": "refused", "settings": "not tried"}.get(
        failure.value if failure else None, "accepted"
    )
    details = [
        f"*Credential type* {r.credential} · {accepted}",
        f"*Subscription* `{r.subscription or 'not set (AZURE_SUBSCRIPTION_ID)'}`",
        f"*VM* {target}" + (f" in {r.location}, {r.vm_size}" if r.location else ""),
    ]
    if failure is None:
        details.append(
            f"*Power state* {r.power_state or 'unknown'} · *Provisioning* {r.provisioning_state or 'unknown'}"
            f" · *VM agent* {r.agent_status or 'not reported (Run Command needs it Ready)'}"
        )
        if r.run_command is True:
            details.append(
                ":white_check_mark: The identity holds `Microsoft.Compute/virtualMachines/runCommand/action` "
                "on the VM: it may run commands."
            )
        elif r.run_command is False:
            details.append(
                f":x: The identity lacks `Microsoft.Compute/virtualMachines/runCommand/action`: it needs "
                f"{_RUN_COMMAND_ROLE}."
            )
        else:
            details.append(
                f":grey_question: Run-command permission not verified ({r.permission_detail}). "
                f"Run Command needs {_RUN_COMMAND_ROLE}; the first {STATUS} proves it."
            )
    else:
        details.append(("*Configuration* " if failure.value == "settings" else "*Azure said* ") + r.detail)
    blocks = [render.section(headline), render.section("\n".join(details))]
    fix = _azure_fix(r)
    if fix:
        blocks.append(render.section("*Fix (runbook 1)*\n" + fix))
        blocks.append(
            render.context(
                f"Verify (runbook 1): `az vm show --resource-group {r.resource_group} "
                f"--name {r.vm_name} -o table` works; `/nexy azure` shows it."
            )
        )
    return headline.replace("*", ""), blocks


def _azure_fix(r: AzureReport) -> str:
    failure = r.failure.value if r.failure else None
    assign = (
        '`az role assignment create --assignee <principal-id> --role "Virtual Machine Contributor" '
        "--scope <the VM's resource id>`"
    )
    if failure == "auth":
        return (
            "• `az login`, then `az account set --subscription <SUBSCRIPTION_ID>`.\n"
            "• With AZURE_ACCESS_TOKEN set, get a fresh one (it lasts about an hour): "
            "`az account get-access-token --query accessToken -o tsv`.\n"
            "• Else DefaultAzureCredential: check AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET, "
            "or the host's managed identity.\n"
            f"• Once signed in, the identity needs {_RUN_COMMAND_ROLE}."
        )
    if failure == "forbidden" or (failure is None and r.run_command is False):
        return f"• Give the identity {_RUN_COMMAND_ROLE}: {assign}."
    if failure == "subscription":
        return (
            "• `az account list -o table`, then `az account set --subscription <SUBSCRIPTION_ID>`, "
            "and set AZURE_SUBSCRIPTION_ID to it."
        )
    if failure in ("resource-group", "vm"):
        return "• `az vm list -o table`: set AZURE_RESOURCE_GROUP and AZURE_VM_NAME to the Nexy VM."
    if failure == "settings":
        return "• Set what is named above (`.env.example` explains each variable), then restart the worker."
    if failure == "unreachable":
        return "• Check AZURE_ARM_URL and the worker's network access to it, then try again."
    return ""


@check("azure", section="1", title="Azure Auth / Access", route=Route.IO)
def azure(ctx: Context) -> str:
    """azure: Azure access: credential, subscription, the VM's power and provisioning state, run-command permission

    what `az vm show` would tell: the credential type, the subscription, whether the VM can be read, its power and
    provisioning state and VM agent (instance view), whether the identity holds `runCommand/action` (ARM's
    permissions list, when readable); a 401/403/404 says which login, role or setting fixes it
    """
    report = read(ctx.settings)
    ctx.post(render_report(report), kind="azure")
    return "ok" if report.healthy else (report.failure.value if report.failure else "attention")
