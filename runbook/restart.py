"""Runbook 5 fix, Service Restart: restart only if the 0.1 preflight passes, then verify.

Plan: `restart_plan.sh` captures the service state and runs the preflight. Apply:
`restart_apply.sh` refuses if the state changed since, restarts under the preflight and verifies
that the journal since the restart is free of every declared symptom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.item import Assessment, Fix, fix, script
from bot.settings import Settings
from bot.wording.refs import command

if TYPE_CHECKING:
    from bot.registry import Registry

PREFLIGHT = command("preflight")


def verify_commands(settings: Settings) -> list[str]:
    """The verify steps every fix ends with, as its plan shows them."""
    curls = [f"curl -fsS {url}" for url in settings.nexy_vm_health_urls]
    return [f"systemctl is-active {settings.nexy_service}", *curls, "journalctl since the restart: free of the symptom"]


@fix
class Restart(Fix):
    """restart: plan a service restart (only if the 0.1 preflight passes); runs once approved

    plan: the service state and the 0.1 preflight (no plan while a guardrail fails); apply: preflight again,
    restart, verify
    """

    command = "restart"
    section = "5"
    title = "Service Restart"
    plan_script = script(__file__, "restart_plan")
    apply_script = script(__file__, "restart_apply")

    def commands(self, settings: Settings, args: tuple[str, ...] = ()) -> list[str]:
        return [
            "preflight (runbook 0.1); restart only if it passes",
            f"sudo systemctl restart {settings.nexy_service}",
            *verify_commands(settings),
        ]

    def assess(self, facts: dict[str, str], settings: Settings, args: tuple[str, ...] = ()) -> Assessment:
        active = facts.get("active", "unknown")
        failed = facts.get("pf_failed", "")
        if failed:
            return Assessment(
                False,
                blocked=f"the 0.1 preflight fails (`{failed}`), so no restart is allowed. "
                f"Run {PREFLIGHT} for the details and fix that first.",
            )
        return Assessment(
            True,
            fingerprint=active,
            diff=(f"  {settings.nexy_service}: {active} → restarted",),
            notes=("preflight (0.1): all four guardrails pass",),
        )

    def before(self, state: dict[str, str]) -> str:
        return state.get("active", "")

    def verify_patterns(self, registry: Registry) -> tuple[str, ...]:
        """A restart fixes no one symptom: the journal since it must be free of all of them."""
        return registry.journal_patterns
