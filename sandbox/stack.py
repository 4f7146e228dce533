"""The whole local sandbox in one object: every emulator `nexy run` needs, and the settings
that point the bot at them. Local use and tests only; production never imports this.

- Slack: `SlackEmulator` (Web API + signed requests to the bot), driven by the console.
- Azure: `AzureEmulator` serving the `SimulatedVM` (real service, journal, faults) by Run Command.
- GitHub: `GitHubEmulator` (repositories, workflows, secrets, releases).
"""
from __future__ import annotations

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


class SandboxStack:
    """The Slack, Azure and GitHub emulators and a simulated Nexy VM, started together."""

    def __init__(self, data_dir: str | Path, scenario: str = "healthy", *, resource_group: str = "NetworkWatcherRG",
                 vm_name: str = "Nexy", run_command_delay_s: float = RUN_COMMAND_DELAY_S):
        _check(scenario)
        self.data_dir = Path(data_dir)
        self.scenario = "healthy"
        self.initial_scenario = scenario
        self.resource_group, self.vm_name = resource_group, vm_name
        self.slack = SlackEmulator()
        self.github = GitHubEmulator()
        self.azure = AzureEmulator(delay_s=run_command_delay_s)
        self.vm = SimulatedVM(self.data_dir / "vm", production_paths=True)
        self.gemini = GeminiEmulator(self.vm.gemini_state)

    def start(self) -> "SandboxStack":
        shutil.rmtree(self.data_dir / "vm", ignore_errors=True)  # each run starts from a healthy VM
        self.slack.start()
        self.github.start()
        self.vm.create()
        self.gemini.start()
        self.azure.start()
        self.azure.add_vm(self.resource_group, self.vm_name, self.vm)
        self.apply(self.initial_scenario)
        return self

    def apply(self, scenario: str) -> None:
        """Put the sandbox into a scenario (a runbook fault), or back to healthy."""
        _check(scenario)
        if self.scenario in VM_SCENARIOS and self.scenario != "healthy":
            self.vm.heal()
        self.github.apply_scenario(scenario if scenario in GITHUB_SCENARIOS else "healthy")
        self.azure.apply_scenario(scenario if scenario in AZURE_SCENARIOS else "healthy")
        # the VM runs what the server repository holds: its deploy brought manifest.json along
        self.vm.deploy_manifest(self.github.manifest())
        if scenario == "run-command-busy":
            self.azure.busy(self.resource_group, self.vm_name, 2)
        elif scenario in VM_SCENARIOS and scenario != "healthy":
            self.vm.break_(scenario)
        self.scenario = scenario

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
            "AZURE_VM_NAME": self.vm_name,
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
        }

    def stop(self) -> None:
        for part in (self.azure, self.gemini, self.vm, self.github, self.slack):
            part.stop()

    def __enter__(self) -> "SandboxStack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _check(scenario: str) -> None:
    if scenario not in scenarios():
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(sorted(scenarios()))}")
