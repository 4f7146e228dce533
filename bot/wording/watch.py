"""What the watch says: in the incident it opens, and in answer to `/nexy watch`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot import render
from bot.wording.refs import command

if TYPE_CHECKING:
    from bot.watchstate import VMWatch

CLOSE = command("incident close <root cause>")
PAUSE = command("watch pause 2h")
RESUME = command("watch resume")


def title(vm: str, problem: str, several: bool) -> str:
    where = f"`{vm}` " if several else ""
    return f"watch: {where}{problem}"[:150]


def opened(vm: str, problem: str, failures: int, interval_s: float) -> str:
    return (
        f":eyes: *The watch opened this incident* for `{vm}`: {render.escape(problem)} "
        f"({failures} probe{'s' if failures != 1 else ''} in a row, every {render.duration(interval_s)}). "
        "Diagnosing now; the top fix's plan follows for an approver."
    )


def flapping(vm: str, problem: str) -> str:
    return (
        f":repeat: `{vm}` is *flapping*: it failed again soon after recovering ({render.escape(problem)}). "
        "Said once; further failures go to the timeline only."
    )


def recovered_by_itself(vm: str, seconds: float) -> str:
    return (
        f":large_green_circle: `{vm}` *recovered by itself* after {render.duration(seconds)}, with no fix applied. "
        f"The incident stays open for a person to close: {CLOSE}."
    )


def state(rows: Sequence[VMWatch], incidents: dict[str, str], pause: dict | None, channel: str, now: float) -> str:
    """`/nexy watch`: per VM, the last probe, failures in a row, the open incident; and any pause."""
    if not channel:
        return "The watch is off: NEXY_WATCH_CHANNEL is not set."
    lines = [f"*The watch* (incidents in <#{channel}>)"]
    if pause:
        until, by = render.date(pause["until"]), pause["by"]
        lines.append(f":double_vertical_bar: paused until {until} by <@{by}>; {RESUME} (operators)")
    for row in rows:
        probe = f"last probe {render.duration(now - row.last_probe_at)} ago" if row.last_probe_at else "not probed yet"
        health = {True: ":large_green_circle: up", False: ":red_circle: failing", None: ":white_circle: unknown"}[
            row.last_ok
        ]
        incident = incidents.get(row.incident, row.incident) if row.incident else "no open incident"
        lines.append(f"`{row.vm}`: {health}; {probe}; {row.failures} failure(s) in a row; {incident}")
    if not pause:
        lines.append(f"Planned maintenance: {PAUSE} (operators).")
    return "\n".join(lines)


def paused(until: float, user: str, seconds: float, channel: str) -> str:
    return (
        f":double_vertical_bar: <@{user}> paused the watch for {render.duration(seconds)}, from <#{channel}>: "
        f"no probes until {render.date(until)}; {RESUME} ends it."
    )


def resumed(user: str, was_paused: bool, channel: str) -> str:
    if not was_paused:
        return "The watch was not paused."
    return f":arrow_forward: <@{user}> resumed the watch, from <#{channel}>: it probes again."


def opened_here(vm: str, problem: str, failures: int, interval_s: float, limit: int) -> str:
    """The watch found a VM failing while its channel may open no new incident: it reports in the open one."""
    return (
        f":eyes: *The watch found `{vm}` failing*: {render.escape(problem)} ({failures} probe"
        f"{'s' if failures != 1 else ''} in a row, every {render.duration(interval_s)}). This channel opened "
        f"{limit} incidents in the last hour (NEXY_MAX_INCIDENTS_PER_HOUR), so the watch reports in this one. "
        "Diagnosing now; the top fix's plan follows for an approver."
    )


def over_budget(asked: str, spent: float, budget: float) -> str:
    left = max(0.0, budget - spent)
    return (
        f":no_entry: The watch may be paused at most {render.duration(budget)} in any 24 h "
        f"(NEXY_WATCH_PAUSE_BUDGET_S); {render.duration(spent)} of that is spent, so `{asked}` is too long "
        f"(at most {render.duration(left)} now). The watch keeps probing."
    )
