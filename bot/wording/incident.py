"""The incident in words: the thread's parent (open, then resolved), who asked for what, the
current incident's summary, and the history list. Titles and root causes are typed text: they are
escaped, so they show as written and ping no one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot import render
from bot.wording.refs import command

if TYPE_CHECKING:
    from bot.incidents import Event, Incident
    from bot.learn import Proposal

SUMMARY_EVENTS = 8
"""How many of the latest events `/nexy incident` shows."""


def parent(incident: Incident) -> tuple[str, list[dict]]:
    """The parent message that is the incident's thread; once resolved: root cause and duration."""
    title = render.escape(incident.title)
    if incident.is_open:
        text = f":rotating_light: Incident {incident.id}: {title}"
        return text, [
            render.section(f":rotating_light: *Incident {incident.id}*: {title}"),
            render.context(
                f"Opened by <@{incident.opened_by}> {render.date(incident.opened_at)}. "
                "Every check, plan, approval and result for this incident is recorded in this thread."
            ),
        ]
    text = f":white_check_mark: Incident {incident.id} resolved: {title}"
    return text, [
        render.section(
            f":white_check_mark: *Incident {incident.id} resolved*: {title}\n"
            f"*Root cause*: {render.escape(incident.root_cause)}"
        ),
        render.context(
            f"Opened by <@{incident.opened_by}> {render.date(incident.opened_at)}; resolved by "
            f"<@{incident.closed_by}> {render.date(incident.closed_at)} after "
            f"{render.duration(incident.duration_s or 0)}. Runbook sections: {_sections(incident)}."
        ),
    ]


def requested_by(user: str, words: str) -> str:
    return f"<@{user}> asked for `{render.escape(words)}`"


def _sections(incident: Incident) -> str:
    return ", ".join(incident.sections) or "none"


def _status(incident: Incident) -> str:
    return ":large_orange_circle: open" if incident.is_open else ":white_check_mark: resolved"


def headline(incident: Incident, permalink: str) -> str:
    """`INC-3` (linked) · status · title."""
    return f"*{render.link(permalink, incident.id)}* · {_status(incident)} · {render.escape(incident.title)}"


def card(incident: Incident, permalink: str) -> str:
    """An incident in a few lines: what, when, how long, which sections, why."""
    when = f"opened {render.date(incident.opened_at)} by <@{incident.opened_by}>"
    if incident.closed_at:
        when += f" · resolved {render.date(incident.closed_at)} · {render.duration(incident.duration_s or 0)}"
    lines = [headline(incident, permalink), f"{when} · sections {_sections(incident)}"]
    if incident.root_cause:
        lines.append(f"Root cause: {render.escape(incident.root_cause)}")
    return "\n".join(lines)


def summary(incident: Incident, permalink: str, events: Sequence[Event], lines: Sequence[str]) -> tuple[str, list]:
    """`/nexy incident`: the current incident and its latest events (`lines` says each in words)."""
    shown = list(zip(events, lines, strict=True))[-SUMMARY_EVENTS:]
    timeline = "\n".join(
        f"{render.date(e.at)} {f'<@{e.who}>' if e.who else 'nexy'}: {render.escape(text)}" for e, text in shown
    )
    blocks = [
        render.section(card(incident, permalink)),
        render.section(f"*Latest events* ({incident.events} in all)\n{timeline or '_none yet_'}"),
    ]
    return f"{incident.id} ({incident.status.value}): {incident.title}", blocks


def history(incidents: Sequence[Incident], links: dict[str, str], where: str, limit: int) -> tuple[str, list]:
    """`/nexy history`: the latest incidents, newest first."""
    head = f"*The last incidents {where}* (up to {limit})" if incidents else f"*No incident {where} yet.*"
    blocks = [render.section(head)] + [render.section(card(i, links.get(i.id, ""))) for i in incidents]
    return f"{len(incidents)} incidents {where}", blocks


EXPORT = command("export")


def learned(incident: str, proposals: Sequence[Proposal], sections: Sequence[str]) -> str:
    """At close: the journal lines no declared symptom matched, each with the symptom pattern drawn from it."""
    lines = [
        f":books: *The runbook could learn* from {incident}: {len(proposals)} journal line(s) matched no declared "
        "symptom. Proposed new symptoms (choose each one's section: " + ", ".join(sections) + "):"
    ]
    for p in proposals:
        lines.append(f"• `{render.escape(p.pattern)}`\n    from `{render.escape(render.cut(p.line, 300))}`")
    lines.append(f"{EXPORT} of {incident} holds each as a ready-to-commit runbook item and its test.")
    return "\n".join(lines)


def reported_late() -> str:
    """The note on a message Slack did not take when it was first said (the outbox kept it)."""
    return (
        ":information_source: Reported late: Slack did not take this message when it was said; it was "
        "kept and sent once Slack answered again."
    )
