"""The runbook's final checklist (section 10) as Block Kit checkboxes, posted when an incident is
resolved: the root cause, the post-fix verify with the last results from the timeline, and who
ticked what. The chain head at closing time anchors the timeline (`nexy audit verify --head`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot import render
from bot.contract import Action
from bot.postmortem import CHECKLIST

if TYPE_CHECKING:
    from bot.incidents import Incident
    from bot.postmortem import VerifyResult

MAX_OPTION_TEXT = 75
"""Slack's limit for an option's text and description."""


def block_id(incident_id: str) -> str:
    return f"checklist-{incident_id}"


def incident_of(block: str) -> str:
    """The incident a checklist's block belongs to ('' if it is not a checklist)."""
    return block.removeprefix("checklist-") if block.startswith("checklist-") else ""


def message(
    incident: Incident,
    results: Sequence[VerifyResult],
    checked: Sequence[str],
    head: str,
    events: int,
    ticked_by: str | None = None,
) -> tuple[str, list[dict]]:
    """The checklist: the root cause, the last verify results, five checkboxes; `head` and `events`:
    the timeline when it was posted."""
    verify = "\n".join(
        f"{_icon(r)} {r.what} {render.date(r.at)}: {render.escape(render.cut(r.detail, 300))}"
        + (" _(before the fix: not counted)_" if r.before_fix else "")
        for r in results
    )
    options = [_option(value, text, _description(value, incident, results)) for value, text in CHECKLIST]
    element: dict = {"type": "checkboxes", "action_id": Action.CHECKLIST, "options": options}
    initial = [o for o in options if o["value"] in checked]
    if initial:
        element["initial_options"] = initial
    who = f" Last ticked by <@{ticked_by}>." if ticked_by else ""
    blocks = [
        render.section(
            f":clipboard: *Final checklist (runbook 10)* for {incident.id}, resolved by <@{incident.closed_by}> "
            f"after {render.duration(incident.duration_s or 0)}.\n*Root cause*: {render.escape(incident.root_cause)}"
        ),
        render.section("*Post-fix verify: the last results in the timeline*\n" + (verify or "_none recorded_")),
        render.actions(element, block_id=block_id(incident.id)),
        render.context(
            f"Timeline: {events} events up to this checklist; chain head `{head}`. "
            f"Tick what is done: everyone sees it, and the timeline records who ticked it.{who}"
        ),
    ]
    return f"Final checklist (runbook 10) for {incident.id}: root cause {incident.root_cause}", blocks


def _icon(result: VerifyResult) -> str:
    if result.before_fix:
        return ":white_circle:"
    return ":white_check_mark:" if result.ok else ":x:"


def _description(value: str, incident: Incident, results: Sequence[VerifyResult]) -> str:
    if value == "root-cause":
        return f"Named: {incident.root_cause}"
    if value == "verify":
        if not results:
            return "No verify result in the timeline"
        counted = [r for r in results if not r.before_fix]
        return (
            ", ".join(f"{r.what.strip('`')} {'ok' if r.ok else 'FAILED'}" for r in counted) or "Nothing since the fix"
        )
    return ""


def _option(value: str, text: str, description: str) -> dict:
    option: dict = {"text": {"type": "plain_text", "text": render.cut(text, MAX_OPTION_TEXT)}, "value": value}
    if description:
        option["description"] = {"type": "plain_text", "text": _short(description)}
    return option


def _short(text: str) -> str:
    return text if len(text) <= MAX_OPTION_TEXT else text[: MAX_OPTION_TEXT - 1] + "…"
