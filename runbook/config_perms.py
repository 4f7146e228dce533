"""Runbook 6.1, Config Permission Denied: the service user cannot read `config.env`.

Plan: `config_perms_plan.sh` captures owner, group and mode. Apply: `config_perms_apply.sh`
refuses if they changed since, chowns `root:<service user>`, chmods 640, restarts under the 0.1
preflight and verifies.
"""

from __future__ import annotations

from bot.item import Assessment, Fix, Symptom, fix, script
from bot.settings import Settings
from bot.wording.refs import command
from runbook.restart import verify_commands

PREFLIGHT = command("preflight")


@fix
class ConfigPerms(Fix):
    """fix config-perms: config.env back to root and the service user's group, mode 640; restart under the preflight

    plan: one run-command captures `config.env`'s owner and mode; the plan shows the diff (`root:root 600` →
    `root:azureuser 640`), the exact commands, who asked, who may approve, when it expires. Once approved, one
    run-command: re-check, `chown`/`chmod`, preflight, restart, verify
    """

    command = "fix config-perms"
    section = "6.1"
    title = "Config Permission Denied"
    plan_script = script(__file__, "config_perms_plan")
    apply_script = script(__file__, "config_perms_apply")
    symptoms = (
        Symptom(
            "6.1",
            "Config Permission Denied",
            r"PermissionError: \[Errno 13\] Permission denied: .*config\.env",
            fix="fix config-perms",
        ),
    )

    def commands(self, settings: Settings, args: tuple[str, ...] = ()) -> list[str]:
        cfg = f"{settings.nexy_app_dir}/config.env"
        return [
            f"sudo chown root:{settings.nexy_service_user} {cfg}",
            f"sudo chmod 640 {cfg}",
            "preflight (runbook 0.1); restart only if it passes",
            f"sudo systemctl restart {settings.nexy_service}",
            *verify_commands(settings),
        ]

    def assess(self, facts: dict[str, str], settings: Settings, args: tuple[str, ...] = ()) -> Assessment:
        cfg = f"{settings.nexy_app_dir}/config.env"
        if facts.get("exists") != "yes":
            return Assessment(
                False,
                blocked=f"`{cfg}` does not exist: there is nothing to chown. "
                f"Restore it first (runbook 0.1), then run {PREFLIGHT}.",
            )
        current = facts.get("stat", "")
        owner, group, mode = [*current.split(":"), "", "", ""][:3]
        if (owner, group, mode) == ("root", settings.nexy_service_user, "640") and facts.get("readable") == "yes":
            return Assessment(False)
        return Assessment(
            True,
            fingerprint=current,
            diff=(
                f"- {cfg}  owner {owner}:{group}  mode {mode}",
                f"+ {cfg}  owner root:{settings.nexy_service_user}  mode 640",
            ),
            notes=(
                f"`{settings.nexy_service_user}` can read it now: {facts.get('readable', 'unknown')}; "
                f"service is {facts.get('active', 'unknown')}",
            ),
        )

    def before(self, state: dict[str, str]) -> str:
        return state.get("stat", "")

    def state_line(self, value: str) -> str:
        """`root:azureuser:640` (owner, group, mode as the scripts record them) as `owner root:azureuser  mode 640`."""
        parts = value.split(":")
        if len(parts) == 3 and parts[2].isdigit():
            return f"owner {parts[0]}:{parts[1]}  mode {parts[2]}"
        return value
