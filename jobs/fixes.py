"""The fixes as data, and the two run-commands of a fix: plan, then apply-and-verify.

Each fix names its plan script (captures the state the fix would change), its apply script
(re-checks that state, applies, restarts only if the 0.1 preflight passes, verifies), the exact
commands it runs, and how to read the plan's facts: is there anything to do, what is the diff,
and what fingerprint must still hold when the apply starts.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bot.settings import Settings

FIX_NAMES = ("config-perms", "execstart")
"""The targets of `/nexy fix`; `restart` is its own command on the same machinery."""


@dataclass(frozen=True)
class Assessment:
    """What the plan run found: whether to fix, what would change, and what must not change meanwhile."""

    needed: bool
    fingerprint: str = ""
    diff: tuple[str, ...] = ()
    blocked: str = ""  # a reason no plan can be made (nothing to approve)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fix:
    """One runbook fix: section, scripts, the commands it runs, and how to read its plan."""

    name: str
    section: str
    title: str
    plan_script: str
    apply_script: str
    commands: Callable[[Settings], list[str]]
    assess: Callable[[dict, Settings], Assessment]
    verify: tuple[str, ...] = field(default=())

    @property
    def words(self) -> str:
        return self.name if self.name == "restart" else f"fix {self.name}"


def _verify_commands(settings: Settings) -> list[str]:
    curls = [f"curl -fsS {url}" for url in settings.nexy_vm_health_urls]
    return [f"systemctl is-active {settings.nexy_service}", *curls, "journalctl since the restart: free of the symptom"]


# -- 6.1 config perms --------------------------------------------------------------------

def _config_perms_commands(s: Settings) -> list[str]:
    cfg = f"{s.nexy_app_dir}/config.env"
    return [f"sudo chown root:{s.nexy_service_user} {cfg}", f"sudo chmod 640 {cfg}",
            "preflight (runbook 0.1); restart only if it passes", f"sudo systemctl restart {s.nexy_service}",
            *_verify_commands(s)]


def _config_perms_assess(facts: dict, s: Settings) -> Assessment:
    cfg = f"{s.nexy_app_dir}/config.env"
    if facts.get("exists") != "yes":
        return Assessment(False, blocked=f"`{cfg}` does not exist: there is nothing to chown. "
                                         "Restore it first (runbook 0.1), then run `/nexy preflight`.")
    current = facts.get("stat", "")
    owner, group, mode = (current.split(":") + ["", "", ""])[:3]
    target = ("root", s.nexy_service_user, "640")
    if (owner, group, mode) == target and facts.get("readable") == "yes":
        return Assessment(False)
    return Assessment(
        True,
        fingerprint=current,
        diff=(f"- {cfg}  owner {owner}:{group}  mode {mode}", f"+ {cfg}  owner root:{s.nexy_service_user}  mode 640"),
        notes=(f"`{s.nexy_service_user}` can read it now: {facts.get('readable', 'unknown')}; "
               f"service is {facts.get('active', 'unknown')}",),
    )


# -- 6.2 ExecStart drift -------------------------------------------------------------------

def _execstart_commands(s: Settings) -> list[str]:
    line = f"ExecStart={s.nexy_app_dir}/venv/bin/python3 server/main.py"
    return [f"sudo sed -i 's|^ExecStart=.*|{line}|' /etc/systemd/system/{s.nexy_service}.service",
            "sudo systemctl daemon-reload", "preflight (runbook 0.1); restart only if it passes",
            f"sudo systemctl restart {s.nexy_service}", *_verify_commands(s)]


def _execstart_assess(facts: dict, s: Settings) -> Assessment:
    if facts.get("unit", "missing") == "missing":
        return Assessment(False, blocked=f"the unit file of `{s.nexy_service}` was not found: check NEXY_SERVICE.")
    current, wanted = facts.get("execstart", ""), facts.get("wanted", "")
    if current == wanted:
        return Assessment(False)
    return Assessment(True, fingerprint=facts.get("unit_sha", ""), diff=(f"- {current}", f"+ {wanted}"),
                      notes=(f"unit file `{facts.get('unit')}`; service is {facts.get('active', 'unknown')}",))


# -- 5 restart -------------------------------------------------------------------------------

def _restart_commands(s: Settings) -> list[str]:
    return ["preflight (runbook 0.1); restart only if it passes", f"sudo systemctl restart {s.nexy_service}",
            *_verify_commands(s)]


def _restart_assess(facts: dict, s: Settings) -> Assessment:
    active = facts.get("active", "unknown")
    failed = facts.get("pf_failed", "")
    if failed:
        return Assessment(False, blocked=f"the 0.1 preflight fails (`{failed}`), so no restart is allowed. "
                                         "Run `/nexy preflight` for the details and fix that first.")
    return Assessment(True, fingerprint=active, diff=(f"  {s.nexy_service}: {active} → restarted",),
                      notes=("preflight (0.1): all four guardrails pass",))


FIXES: dict[str, Fix] = {
    fix.name: fix
    for fix in (
        Fix("config-perms", "6.1", "Config Permission Denied", "plan-config-perms", "apply-config-perms",
            _config_perms_commands, _config_perms_assess),
        Fix("execstart", "6.2", "ExecStart Path Drift", "plan-execstart", "apply-execstart",
            _execstart_commands, _execstart_assess),
        Fix("restart", "5", "Service Restart", "plan-restart", "apply-restart", _restart_commands, _restart_assess),
    )
}


def fix_for(command: str, args: tuple[str, ...]) -> Fix:
    return FIXES["restart"] if command == "restart" else FIXES[args[0]]
