"""Runbook 0.1, the incident guardrails: the four checks that must pass before any restart.

The same checks run inside every apply (`nexy_preflight` in the scripts' library), so a fix
never restarts the service while a guardrail fails.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot import render
from bot.context import Context
from bot.item import Route, check, script
from bot.settings import Settings

SCRIPT = script(__file__, "preflight")


@dataclass(frozen=True)
class Guardrail:
    """One 0.1 guardrail: the fact the preflight records, and the value that passes."""

    fact: str
    passing: str
    description: str

    def describe(self, settings: Settings) -> str:
        return self.description.format(app_dir=settings.nexy_app_dir, user=settings.nexy_service_user)


GUARDRAILS: tuple[Guardrail, ...] = (
    Guardrail("pf_config_exists", "yes", "`{app_dir}/config.env` exists"),
    Guardrail("pf_api_key", "present", "`GEMINI_API_KEY` is present and not a placeholder"),
    Guardrail("pf_config_readable", "yes", "`config.env` is readable by `{user}`"),
    Guardrail("pf_execstart_ok", "yes", "`ExecStart` points to `server/main.py`"),
)


@dataclass(frozen=True)
class GuardrailResult:
    description: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class PreflightReport:
    guardrails: tuple[GuardrailResult, ...]

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.guardrails)


def evaluate(facts: dict[str, str], settings: Settings) -> PreflightReport:
    """Each guardrail pass or fail, with the reason, from the preflight's facts."""
    reasons = {
        "pf_config_exists": "not found",
        "pf_api_key": {
            "missing": "no `GEMINI_API_KEY=` line",
            "placeholder": "the value is a placeholder",
            "unreadable": "config.env cannot be read",
        }.get(facts.get("pf_api_key", ""), "not checked"),
        "pf_config_readable": f"owner and mode are {facts.get('pf_config_stat', 'unknown')}",
        "pf_execstart_ok": f"unit has `{facts.get('pf_execstart') or 'no ExecStart'}`",
    }
    results = []
    for guardrail in GUARDRAILS:
        passed = facts.get(guardrail.fact) == guardrail.passing
        detail = "" if passed else reasons[guardrail.fact]
        if guardrail.fact == "pf_config_readable" and passed:
            detail = facts.get("pf_config_stat", "")
        results.append(GuardrailResult(guardrail.describe(settings), passed, detail))
    return PreflightReport(tuple(results))


def render_report(report: PreflightReport) -> tuple[str, list[dict]]:
    checks = report.guardrails
    failed = [c for c in checks if not c.passed]
    if failed:
        headline = (
            f":red_circle: *Preflight (runbook 0.1)*: {len(failed)} of {len(checks)} guardrails fail: "
            "no restart is allowed until they pass."
        )
    else:
        headline = (
            f":large_green_circle: *Preflight (runbook 0.1)*: all {len(checks)} guardrails pass; a restart is allowed."
        )
    lines = [
        f"{':white_check_mark:' if c.passed else ':x:'} {c.description}" + (f" ({c.detail})" if c.detail else "")
        for c in checks
    ]
    return headline.replace("*", ""), [render.section(headline), render.section("\n".join(lines))]


@check("preflight", section="0.1", title="Incident Guardrails", route=Route.VM, scripts=(SCRIPT,))
def preflight(ctx: Context) -> str:
    """preflight: the four guardrails that must pass before any restart

    one run-command: the four guardrails (config.env exists; `GEMINI_API_KEY` present, not a placeholder, never
    shown; readable by `NEXY_SERVICE_USER`; `ExecStart` points to `server/main.py`), each pass or fail with the
    reason
    """
    result = ctx.run(SCRIPT)
    if result.exit_code is None:
        return ctx.incomplete(result, kind="preflight")
    report = evaluate(result.facts, ctx.settings)
    ctx.post(render_report(report), kind="preflight", duration_s=result.duration_s)
    return "passed" if report.passed else "failed"
