"""The checks that run on the VM: `status` (runbook 5) and `preflight` (runbook 0.1)."""
from __future__ import annotations

from dataclasses import dataclass

from bot import messages, render
from bot.dispatch import WorkItem
from bot.settings import Settings
from jobs.catalogue import GUARDRAILS, Guardrail, match_symptoms, vm_parameters
from jobs.engine import run_on_vm
from jobs.runcommand import RunResult, Script
from jobs.runtime import Runtime
from jobs.thread import Thread


@dataclass(frozen=True)
class GuardrailResult:
    guardrail: Guardrail
    passed: bool
    detail: str


def evaluate_preflight(result: RunResult, settings: Settings) -> list[GuardrailResult]:
    """Each 0.1 guardrail pass or fail, with the reason, from the preflight script's facts."""
    facts = result.facts
    reasons = {
        "pf_config_exists": "not found",
        "pf_api_key": {"missing": "no `GEMINI_API_KEY=` line", "placeholder": "the value is a placeholder",
                       "unreadable": "config.env cannot be read"}.get(facts.get("pf_api_key", ""), "not checked"),
        "pf_config_readable": f"owner and mode are {facts.get('pf_config_stat', 'unknown')}",
        "pf_execstart_ok": f"unit has `{facts.get('pf_execstart') or 'no ExecStart'}`",
    }
    checked = []
    for guardrail in GUARDRAILS:
        passed = facts.get(guardrail.fact) == guardrail.passing
        detail = "" if passed else reasons[guardrail.fact]
        if guardrail.fact == "pf_config_readable" and passed:
            detail = facts.get("pf_config_stat", "")
        checked.append(GuardrailResult(guardrail, passed, detail))
    return checked


def run_preflight(runtime: Runtime, thread: Thread, item: WorkItem) -> str:
    """preflight: the four section 0.1 guardrails, each pass or fail with the reason."""
    result = run_on_vm(runtime, thread, item, Script("preflight", vm_parameters(runtime.settings)))
    if result.exit_code is None:
        thread.post(*messages.script_incomplete(result), kind="preflight", user=item.user)
        return "incomplete"
    checked = evaluate_preflight(result, runtime.settings)
    text, blocks = messages.preflight_report(
        [(c.guardrail.describe(runtime.settings), c.passed, c.detail) for c in checked])
    blocks.append(render.context(messages.ran_on_vm(item.user, item.words, result.duration_s)))
    thread.post(text, blocks, kind="preflight", user=item.user)
    return "passed" if all(c.passed for c in checked) else "failed"


def run_status(runtime: Runtime, thread: Thread, item: WorkItem) -> str:
    """status: service state, the journal lines that matter, and the Fast Branching hint."""
    result = run_on_vm(runtime, thread, item, Script("status", vm_parameters(runtime.settings)))
    if result.exit_code is None:
        thread.post(*messages.script_incomplete(result), kind="status", user=item.user)
        return "incomplete"
    active = result.facts.get("active", "unknown")
    symptoms = [(s.section, s.title, line, s.next_step) for s, line in match_symptoms(result.stdout)]
    text, blocks = messages.status_report(runtime.settings.nexy_service, active, result.facts.get("since", ""),
                                          symptoms, result.output)
    blocks.append(render.context(messages.ran_on_vm(item.user, item.words, result.duration_s)))
    thread.post(text, blocks, kind="status", user=item.user)
    return active
