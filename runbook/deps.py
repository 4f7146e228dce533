"""Runbook 3, Dependency Mismatch After Deploy: import errors after a deploy.

Check (`/nexy deps`) and plan (`deps.sh`): the venv's python and every package that does not
satisfy `server/requirements.txt` or the section 3 pins. Apply (`deps_apply.sh`): the runbook's
install lines in the venv, the packages checked again, restart under the 0.1 preflight, verify.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot import render
from bot.context import Context
from bot.item import Assessment, Fix, Route, Symptom, check, fix, patterns_parameter, script
from bot.settings import Settings
from bot.wording.refs import command
from runbook.restart import verify_commands

SCRIPT = script(__file__, "deps")
FIX_DEPS = command("fix deps")

PINS = ("protobuf>=6.31.1,<7", "grpcio>=1.75.1,<2", "grpcio-tools>=1.75.1,<2", "grpcio-status>=1.75.1,<2")
"""The protobuf / grpcio pins the runbook's section 3 installs after the requirements."""

MAX_LISTED = 12
"""The most packages the script lists (the rest are counted): the output must fit Azure's 4,096 bytes."""


def pins_parameter() -> tuple[str, str]:
    return ("NEXY_PINS", patterns_parameter(PINS))


@dataclass(frozen=True)
class Mismatch:
    name: str
    installed: str  # a version, or "missing"
    wanted: str  # the merged specifier: ">=6.31.1,<7"


@dataclass(frozen=True)
class DepsReport:
    python: str
    installed: int
    mismatches: tuple[Mismatch, ...]
    unlisted: int  # mismatches beyond MAX_LISTED
    fingerprint: str

    @property
    def ok(self) -> bool:
        return not self.mismatches


def read(facts: dict[str, str]) -> DepsReport:
    """The deps facts (from `deps.sh`, or the same facts within a diagnosis) as a report."""
    mismatches = []
    for n in range(1, MAX_LISTED + 1):
        parts = facts.get(f"deps_{n}", "").split(" ")
        if len(parts) == 3:
            mismatches.append(Mismatch(*parts))
    count = int(facts.get("deps_count", "0") or 0)
    return DepsReport(
        facts.get("python", "unknown"),
        int(facts.get("deps_installed", "0") or 0),
        tuple(mismatches),
        max(0, count - len(mismatches)),
        facts.get("deps_fingerprint", ""),
    )


def mismatch_lines(report: DepsReport) -> list[str]:
    lines = [f"`{m.name}` {m.installed}, wanted `{m.wanted}`" for m in report.mismatches]
    if report.unlisted:
        lines.append(f"… and {report.unlisted} more")
    return lines


def render_report(report: DepsReport) -> tuple[str, list[dict]]:
    if report.ok:
        headline = (
            f":large_green_circle: *Dependencies (runbook 3)*: all of `server/requirements.txt` and the "
            f"section 3 pins are satisfied ({report.installed} packages installed, {report.python})."
        )
        return headline.replace("*", ""), [render.section(headline)]
    count = len(report.mismatches) + report.unlisted
    headline = (
        f":red_circle: *Dependencies (runbook 3)*: {count} package{'s' if count != 1 else ''} do not "
        f"satisfy the requirements ({report.python})."
    )
    body = "\n".join(f":x: {line}" for line in mismatch_lines(report))
    return headline.replace("*", ""), [
        render.section(headline),
        render.section(body),
        render.section(f"Next: {FIX_DEPS} (the runbook's install lines, approved)."),
    ]


@check("deps", section="3", title="Dependency Mismatch After Deploy", route=Route.VM, scripts=(SCRIPT,))
def deps(ctx: Context) -> str:
    """deps: installed packages against server/requirements.txt and the protobuf/grpcio pins

    one run-command: every package of `server/requirements.txt` and of the section 3 protobuf/grpcio pins the venv
    does not satisfy, and python's version
    """
    result = ctx.run(SCRIPT, pins_parameter())
    if result.exit_code is None:
        return ctx.incomplete(result, kind="deps")
    report = read(result.facts)
    ctx.post(render_report(report), kind="deps", duration_s=result.duration_s)
    return "ok" if report.ok else f"{len(report.mismatches) + report.unlisted} mismatched"


@fix
class Deps(Fix):
    """fix deps: the runbook's pip install lines in the venv, then restart under the preflight

    plan: the package changes; apply: the runbook's `pip install --upgrade -r server/requirements.txt` and the pins
    in the venv, the packages checked again, restart under the preflight, verify
    """

    command = "fix deps"
    section = "3"
    title = "Dependency Mismatch After Deploy"
    approvals = 2  # it restarts with new packages: two people approve
    plan_script = SCRIPT
    apply_script = script(__file__, "deps_apply")
    symptoms = (
        Symptom("3", "Dependency Mismatch After Deploy", r"ModuleNotFoundError|ImportError", fix="fix deps", rank=2),
    )

    def plan_parameters(self) -> tuple[tuple[str, str], ...]:
        return (pins_parameter(),)

    def commands(self, settings: Settings, args: tuple[str, ...] = ()) -> list[str]:
        pins = " ".join(f"'{pin}'" for pin in PINS)
        return [
            f"cd {settings.nexy_app_dir} && . venv/bin/activate",
            "pip install --upgrade -r server/requirements.txt",
            f"pip install --upgrade {pins}",
            "the requirements and pins checked again",
            "preflight (runbook 0.1); restart only if it passes",
            f"sudo systemctl restart {settings.nexy_service}",
            *verify_commands(settings),
        ]

    def assess(self, facts: dict[str, str], settings: Settings, args: tuple[str, ...] = ()) -> Assessment:
        report = read(facts)
        if not report.fingerprint:
            return Assessment(False, blocked="the venv's packages could not be listed (`pip freeze` failed).")
        if report.ok:
            return Assessment(False)
        diff = [f"- {m.name} {m.installed}" for m in report.mismatches]
        diff += [f"+ {m.name} {m.wanted}" for m in report.mismatches]
        if report.unlisted:
            diff.append(f"  … and {report.unlisted} more")
        return Assessment(
            True,
            fingerprint=report.fingerprint,
            diff=tuple(diff),
            notes=(f"{report.python}; pip resolves each `+` line to the newest version it allows",),
        )

    def apply_parameters(self, settings: Settings, args: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        return (pins_parameter(),)

    def before(self, state: dict[str, str]) -> str:
        return f"{state.get('deps_count', '?')} unsatisfied"
