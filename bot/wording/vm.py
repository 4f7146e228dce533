"""The run-command channel in words: queue notices, conflicts (6.4), scripts that did not finish."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot import render
from bot.wording.refs import command

if TYPE_CHECKING:
    from bot.context import RunResult

STATUS = command("status")


def ran_on_vm(user: str, words: str, duration_s: float) -> str:
    return f"<@{user}> asked for `{words}` · one run-command on the VM, {duration_s:.1f} s"


def still_running(script: str, elapsed_s: float) -> str:
    return (
        f":hourglass_flowing_sand: `{script}` is still running after {_minutes(elapsed_s)}; the VM channel stays "
        "busy (one run-command at a time) until it ends or Azure stops it at 90 minutes."
    )


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.1f} s"


def conflict_waiting(script: str, delay_s: float, waited_s: float) -> str:
    return (
        f":hourglass: The VM is busy with another run-command (runbook 6.4: "
        f"_Run command extension execution is in progress_). `{script}` tries again in {delay_s:g} s"
        f" (waited {waited_s:g} s so far)."
    )


def conflict_cleared(script: str, waited_s: float) -> str:
    return (
        f":white_check_mark: The run-command channel is free again; `{script}` ran after waiting {waited_s:g} s "
        "(runbook 6.4)."
    )


def conflict_gave_up(script: str, waited_s: float) -> str:
    return (
        f":x: The VM stayed busy with another run-command for {waited_s:g} s; `{script}` was not run. "
        "Nothing changed on the VM. Check who is running commands on it (Azure portal → VM → Run command), "
        "then try again."
    )


def script_incomplete(result: RunResult) -> tuple[str, list[dict]]:
    """A script that failed (a named step, exit code) or never reported (no result line)."""
    if result.exit_code is None:
        text = (
            f":warning: `{result.script}` did not report a result: the script was stopped or its output was lost. "
            f"What it printed is below; treat the VM state as unknown and run {STATUS}."
        )
    else:
        step = result.facts.get("failed_command", "a step")
        text = (
            f":x: `{result.script}` failed (exit {result.exit_code}) at `{step}`. "
            "Its output is below; nothing after that step ran."
        )
    return text, [render.section(text), render.section(render.code(render.tail(result.output, 2800)))]


def resumed_result(words: str, result: RunResult) -> str:
    """A run-command whose worker died, read back afterwards from Azure."""
    state = f"exit code {result.exit_code}" if result.exit_code is not None else "no result line"
    return (
        f":information_source: Reported late: the worker stopped while `{words}` ran on the VM; Azure kept "
        f"its result, read afterwards ({state}). It ran once. Run {STATUS} for the current state.\n"
        + render.code(render.tail(result.output, 2000))
    )
