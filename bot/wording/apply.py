"""Apply and verify in words: what ran, the diff read back from the VM, each verify check, and
the state the VM is in, whatever the outcome."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot import render
from bot.plans import ApplyOutcome
from bot.wording.refs import command

if TYPE_CHECKING:
    from bot.context import RunResult
    from bot.item import Fix
    from bot.plans import Plan

STATUS = command("status")
PREFLIGHT = command("preflight")
RESTART = command("restart")
HEALTH = command("health")
FIX_API_KEY = command("fix api-key")

_OUTCOMES = {
    ApplyOutcome.VERIFIED: ":large_green_circle: *Fixed and verified*",
    ApplyOutcome.STALE: ":no_entry: *Refused: the VM changed since the plan*",
    ApplyOutcome.SMOKE_FAILED: ":no_entry: *Refused: the new key failed the Gemini smoke test on the VM*",
    ApplyOutcome.PREFLIGHT_FAILED: ":red_circle: *Applied, but not restarted: the 0.1 preflight fails*",
    ApplyOutcome.VERIFY_FAILED: ":red_circle: *Applied and restarted, but verify failed*",
    ApplyOutcome.FAILED: ":x: *A step of the apply failed*",
    ApplyOutcome.UNKNOWN: ":warning: *Result unknown*",
}


def report(
    plan: Plan, fix: Fix, result: RunResult, outcome: ApplyOutcome, commands: list[str], service: str
) -> tuple[str, list[dict]]:
    facts = result.facts
    approvers = " and ".join(f"<@{user}>" for user in plan.approvers) or f"<@{plan.decided_by}>"
    headline = f"{_OUTCOMES[outcome]}: plan {plan.id} `{plan.words}` (runbook {fix.section}), approved by {approvers}"
    blocks = [render.section(headline)]
    if outcome is ApplyOutcome.STALE:
        now = facts.get("before") or facts.get("before_sha") or "something else"
        blocks.append(
            render.section(
                f"The plan captured `{plan.fingerprint}`; the VM now has `{now}`. "
                f"Nothing was changed. For a fresh plan: `/nexy {plan.words}`."
            )
        )
    elif outcome is ApplyOutcome.SMOKE_FAILED:
        blocks.append(
            render.section(
                f"Gemini answered HTTP {facts.get('smoke', '?')} to a minimal call with the new key from the VM. "
                f"The key was not written and nothing was restarted. Type another key: {FIX_API_KEY}."
            )
        )
    elif outcome is ApplyOutcome.UNKNOWN:
        blocks.append(
            render.section(
                "The apply script did not report a result (stopped, or its output was lost). "
                f"Treat the VM state as unknown: run {STATUS} and {PREFLIGHT} before anything else."
            )
        )
    elif outcome is ApplyOutcome.FAILED:
        blocks.append(
            render.section(
                f"`{facts.get('failed_command', 'a step')}` failed (exit {result.exit_code}); nothing after it ran.\n"
                + render.code(render.tail(result.output, 2500))
            )
        )
    else:
        blocks.append(render.section("*What ran*\n" + render.code(result.stdout.strip() or "\n".join(commands))))
        after = facts.get("after")
        if after:
            diff = f"- {fix.state_line(fix.before(plan.state))}\n+ {fix.state_line(after)}"
            blocks.append(render.section("*Diff on the VM* (read back after the change)\n" + render.code(diff)))
        checks = verify_lines(facts, outcome)
        if checks:
            blocks.append(render.section("*Verify*\n" + "\n".join(checks)))
    blocks.append(render.section(_final_state(facts, outcome, service)))
    blocks.append(render.context(f"one run-command, {result.duration_s:.1f} s; exit code {result.exit_code}"))
    return headline.replace("*", ""), blocks


def verify_lines(facts: dict[str, str], outcome: ApplyOutcome) -> list[str]:
    """Each verify check the apply script recorded, passed or failed."""
    lines = []
    if outcome is ApplyOutcome.PREFLIGHT_FAILED:
        lines.append(f":x: preflight guardrail `{facts.get('pf_failed', '')}` fails: the service was not restarted")
        return lines
    if "verify_active" in facts:
        ok = facts["verify_active"] == "active"
        lines.append(f"{':white_check_mark:' if ok else ':x:'} `systemctl is-active`: {facts['verify_active']}")
    for key in sorted(k for k in facts if k.startswith("verify_health_")):
        state, _, url = facts[key].partition(" ")
        lines.append(f"{':white_check_mark:' if state == 'ok' else ':x:'} `curl {url}`: {state}")
    if "verify_journal" in facts:
        ok = facts["verify_journal"] == "clean"
        lines.append(f"{':white_check_mark:' if ok else ':x:'} journal since the restart: {facts['verify_journal']}")
    return lines


def _final_state(facts: dict[str, str], outcome: ApplyOutcome, service: str) -> str:
    if outcome is ApplyOutcome.VERIFIED:
        return f"*State*: fixed; every verify check above passed. {HEALTH} checks it from outside."
    if outcome in (ApplyOutcome.STALE, ApplyOutcome.SMOKE_FAILED):
        return "*State*: unchanged by this plan."
    if outcome is ApplyOutcome.PREFLIGHT_FAILED:
        return (
            f"*State*: the change is applied (`{facts.get('after', '?')}`), `{service}` was *not* restarted "
            f"and is as it was. Next: {PREFLIGHT} to see the failing guardrail, fix it, then {RESTART}."
        )
    if outcome is ApplyOutcome.FAILED:
        return (
            "*State*: partly changed: the steps before the failing one ran (see above). "
            f"Next: {STATUS} and {PREFLIGHT}, then a fresh plan."
        )
    if outcome is ApplyOutcome.VERIFY_FAILED:
        return (
            f"*State*: the change is applied (`{facts.get('after', 'see above')}`) and `{service}` was restarted, "
            f"but it is `{facts.get('verify_active', 'unknown')}`. Next: {STATUS} for the journal, "
            "then the section it names."
        )
    return f"*State*: unknown. Next: {STATUS}, then {PREFLIGHT}."


def secret_missing(plan: Plan) -> str:
    return (
        f":no_entry: Plan {plan.id} (`{plan.words}`): the value typed in the form is held only while the plan "
        f"waits for approval, and it is gone. Nothing ran on the VM. Ask again: `/nexy {plan.words}`."
    )


def interrupted(plan: Plan, reason: str) -> str:
    return (
        f":warning: The apply of plan {plan.id} (`{plan.fix}`) did not finish: {reason}. It may have run on "
        f"the VM in part, so the VM state is unknown. Next: {STATUS} and {PREFLIGHT}, then a fresh "
        "plan if still needed."
    )


def reported_late() -> str:
    return (
        ":information_source: Reported late: the worker stopped while this apply ran; Azure kept the "
        "run-command's result and another worker read it. The apply ran once."
    )
