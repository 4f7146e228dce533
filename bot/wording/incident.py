"""The incident in words: the thread's parent message, and who asked for what."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bot import render

if TYPE_CHECKING:
    from bot.incidents import Incident


def parent(incident: Incident) -> tuple[str, list[dict]]:
    """The parent message that is the incident's thread."""
    opened = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(incident.opened_at))
    text = f":rotating_light: Incident {incident.id}: {incident.title}"
    blocks = [
        render.section(f":rotating_light: *Incident {incident.id}*: `{incident.title}`"),
        render.context(
            f"Opened by <@{incident.opened_by}> at {opened}. "
            "Every check, plan, approval and result for this incident is recorded in this thread."
        ),
    ]
    return text, blocks


def requested_by(user: str, words: str) -> str:
    return f"<@{user}> asked for `{words}`"
