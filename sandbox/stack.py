"""The whole local sandbox in one object: every emulator `nexy run` needs, and the settings
that point the bot at them. Local use and tests only; production never imports this.

- Slack: `SlackEmulator` (Web API + signed requests to the bot), driven by the console.
- Azure: `AzureEmulator` serving the `SimulatedVM` (real service, journal, faults) by Run Command.
- GitHub: `GitHubEmulator` (repositories, workflows, secrets, releases).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from sandbox.azure_emulator import SCENARIOS as AZURE_SCENARIOS
from sandbox.azure_emulator import AzureEmulator
from sandbox.gemini_emulator import GeminiEmulator
from sandbox.github_emulator import SCENARIOS as GITHUB_SCENARIOS
from sandbox.github_emulator import GitHubEmulator
from sandbox.slack_emulator import SlackEmulator
from sandbox.vm import SCENARIOS as VM_SCENARIOS
from sandbox.vm import SimulatedVM

RUN_COMMAND_DELAY_S = 2.0
"""How long each sandbox run-command takes at least (real ones take 20 s or more)."""


def scenarios() -> dict[str, str]:
    """Every scenario `nexy run --scenario` accepts, with its description."""
    return {**GITHUB_SCENARIOS, **VM_SCENARIOS, **AZURE_SCENARIOS}


def inventory_toml(vms: dict[str, tuple[str, str, SimulatedVM]]) -> str:
    """The inventory file (NEXY_VMS_FILE) of simulated VMs: name -> (resource group, VM name, VM)."""
    lines = []
    for name, (resource_group, vm_name, vm) in vms.items():
        lines += [
            f"[vm.{name}]",
            f"resource_group = {json.dumps(resource_group)}",
            f"vm_name = {json.dumps(vm_name)}",
            f"health_urls = {json.dumps(vm.health_urls)}",
            f"vm_health_urls = {json.dumps(vm.health_urls)}",
            f"app_dir = {json.dumps(vm.settings_env()['NEXY_APP_DIR'])}",
            "",
        ]
    return "\n".join(lines)


class SandboxStack:
    """The Slack, Azure and GitHub emulators and one or several simulated Nexy VMs, started together.
    With several, the VMs are `vm1`, `vm2`, ... (Azure names `<vm_name>-vm1`, ...) and the bot gets
    an inventory file; a scenario `NAME@vm2` puts that VM alone into the fault."""

    def __init__(self, data_dir: str | Path, scenario: str = "healthy", *, resource_group: str = "NetworkWatcherRG",
                 vm_name: str = "Nexy", run_command_delay_s: float = RUN_COMMAND_DELAY_S, vms: int = 1):
        if not 1 <= vms <= 9:
            raise ValueError(f"--vms takes 1 to 9 simulated VMs, not {vms}")
        self.data_dir = Path(data_dir)
        self.resource_group, self.vm_name = resource_group, vm_name
        self.vms: dict[str, tuple[str, str, SimulatedVM]] = {}
        for n in range(1, vms + 1):
            name = vm_name if vms == 1 else f"vm{n}"
            root = self.data_dir / "vm" if vms == 1 else self.data_dir / f"vm{n}"
            azure_name = vm_name if vms == 1 else f"{vm_name}-vm{n}"
            self.vms[name] = (resource_group, azure_name, SimulatedVM(root, production_paths=True, hostname=azure_name))
        self.vm = next(iter(self.vms.values()))[2]
        _check(self._target(scenario)[0])
        self.scenario = "healthy"
        self.faulty: str | None = None  # the VM a `NAME@vm` scenario broke
        self.initial_scenario = scenario
        self.slack = SlackEmulator()
        self.github = GitHubEmulator()
        self.azure = AzureEmulator(delay_s=run_command_delay_s)
        self.gemini = GeminiEmulator(self.vm.gemini_state)

    def start(self) -> "SandboxStack":
        for _, _, vm in self.vms.values():  # each run starts from healthy VMs
            shutil.rmtree(vm.root, ignore_errors=True)
        self.slack.start()
        self.github.start()
        for _, _, vm in self.vms.values():
            vm.create()
        self.gemini.start()
        self.azure.start()
        for resource_group, azure_name, vm in self.vms.values():
            self.azure.add_vm(resource_group, azure_name, vm)
        self.apply(self.initial_scenario)
        return self

    def _target(self, scenario: str) -> tuple[str, str]:
        """`config-perms@vm2`: the scenario and the VM it breaks (the first VM by default)."""
        name, _, vm = scenario.partition("@")
        if vm and vm not in self.vms:
            raise ValueError(f"unknown VM {vm!r} in {scenario!r}; the VMs are {', '.join(self.vms)}")
        return name, vm or next(iter(self.vms))

    def apply(self, scenario: str) -> None:
        """Put the sandbox into a scenario (a runbook fault, on the first VM or on `NAME@vm`), or back to healthy."""
        name, target = self._target(scenario)
        _check(name)
        if self.scenario in VM_SCENARIOS and self.scenario != "healthy" and self.faulty:
            self.vms[self.faulty][2].heal()
        self.github.apply_scenario(name if name in GITHUB_SCENARIOS else "healthy")
        self.azure.apply_scenario(name if name in AZURE_SCENARIOS else "healthy")
        # the VMs run what the server repository holds: its deploy brought manifest.json along
        for _, _, vm in self.vms.values():
            vm.deploy_manifest(self.github.manifest())
        resource_group, azure_name, vm = self.vms[target]
        if name == "run-command-busy":
            self.azure.busy(resource_group, azure_name, 2)
        elif name in VM_SCENARIOS and name != "healthy":
            vm.break_(name)
        self.scenario, self.faulty = name, target

    def env(self) -> dict[str, str]:
        """The settings that point the bot at this sandbox (as environment variables)."""
        return {
            "SLACK_BOT_TOKEN": self.slack.bot_token,
            "SLACK_SIGNING_SECRET": self.slack.signing_secret,
            "SLACK_API_URL": self.slack.api_url,
            "SLACK_APP_TOKEN": "",
            "GITHUB_TOKEN": self.github.token,
            "GITHUB_API_URL": self.github.url,
            "AZURE_SUBSCRIPTION_ID": self.azure.subscription_id,
            "AZURE_ARM_URL": self.azure.url,
            "AZURE_ACCESS_TOKEN": self.azure.token,
            "AZURE_RESOURCE_GROUP": self.resource_group,
            "AZURE_VM_NAME": self.vms[next(iter(self.vms))][1],
            "NEXY_EXECUTOR": "azure",
            "NEXY_AZURE_POLL_S": "0.25",
            "NEXY_CONFLICT_RETRY_S": "2",
            **self.vm.settings_env(),
            "NEXY_VM_HEALTH_URLS": ",".join(self.vm.health_urls),
            "NEXY_VERIFY_WAIT_S": "15",
            "NEXY_GEMINI_URL": self.gemini.url,
            # The console's users: alice and bob may ask for fixes, bob and carol may approve them.
            "NEXY_OPERATORS": "U0ALICE,U0BOB",
            "NEXY_APPROVERS": "U0BOB,U0CAROL",
            "NEXY_CHANNELS": ",".join(self.slack.channels),  # never empty: a Slack-facing process refuses that
            **self._inventory_env(),
        }

    def _inventory_env(self) -> dict[str, str]:
        if len(self.vms) == 1:
            return {}
        path = self.data_dir / "vms.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(inventory_toml(self.vms), encoding="utf-8")
        return {"NEXY_VMS_FILE": str(path)}

    def stop(self) -> None:
        for part in (self.azure, self.gemini, *(vm for _, _, vm in self.vms.values()), self.github, self.slack):
            part.stop()

    def __enter__(self) -> "SandboxStack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _check(scenario: str) -> None:
    if scenario not in scenarios():
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(sorted(scenarios()))}")
