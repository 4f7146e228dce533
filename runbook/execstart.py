"""Runbook 6.2, ExecStart Path Drift: the unit starts a `main.py` that is not there.

Plan: `execstart_plan.sh` captures the unit file's `ExecStart` and a fingerprint of the file.
Apply: `execstart_apply.sh` refuses if the file changed since, rewrites `ExecStart`, shows the
unit's `diff -u`, daemon-reloads, restarts under the 0.1 preflight and verifies.
"""

from __future__ import annotations

from bot.item import Assessment, Fix, Symptom, fix, script
from bot.settings import Settings
from runbook.restart import verify_commands


@fix
class ExecStart(Fix):
    """fix execstart: point the unit's ExecStart at server/main.py, daemon-reload; restart under the preflight

    plan: one run-command captures the unit's `ExecStart` line; the plan shows its diff, the exact commands, who
    asked, who may approve, when it expires. Once approved, one run-command: re-check, `sed`, `daemon-reload`,
    preflight, restart, verify; the thread shows the unit file's real `diff -u`
    """

    command = "fix execstart"
    section = "6.2"
    title = "ExecStart Path Drift"
    plan_script = script(__file__, "execstart_plan")
    apply_script = script(__file__, "execstart_apply")
    symptoms = (Symptom("6.2", "ExecStart Path Drift", r"can't open file '[^']*main\.py'", fix="fix execstart"),)

    def commands(self, settings: Settings, args: tuple[str, ...] = ()) -> list[str]:
        line = f"ExecStart={settings.nexy_app_dir}/venv/bin/python3 server/main.py"
        return [
            f"sudo sed -i 's|^ExecStart=.*|{line}|' /etc/systemd/system/{settings.nexy_service}.service",
            "sudo systemctl daemon-reload",
            "preflight (runbook 0.1); restart only if it passes",
            f"sudo systemctl restart {settings.nexy_service}",
            *verify_commands(settings),
        ]

    def assess(self, facts: dict[str, str], settings: Settings, args: tuple[str, ...] = ()) -> Assessment:
        if facts.get("unit", "missing") == "missing":
            return Assessment(
                False, blocked=f"the unit file of `{settings.nexy_service}` was not found: check NEXY_SERVICE."
            )
        current, wanted = facts.get("execstart", ""), facts.get("wanted", "")
        if current == wanted:
            return Assessment(False)
        return Assessment(
            True,
            fingerprint=facts.get("unit_sha", ""),
            diff=(f"- {current}", f"+ {wanted}"),
            notes=(f"unit file `{facts.get('unit')}`; service is {facts.get('active', 'unknown')}",),
        )

    def before(self, state: dict[str, str]) -> str:
        return state.get("execstart", "")
