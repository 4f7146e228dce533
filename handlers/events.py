"""Events: `@nexy <command>` mentions, reactions (approvals), and the App Home opened. Each is
taken once per `event_id` (Slack retries; Bolt does not dedupe: handlers/delivery.py); a failure raises,
so Slack gets a 500 and retries, and so does a retry that comes while the first is being handled."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltResponse

from handlers.delivery import EventInProgress
from handlers.intake import Intake

log = logging.getLogger(__name__)


def register(app: App, intake: Intake) -> None:
    @app.error
    def failed(error: Exception) -> BoltResponse | None:
        """Bolt answers 500 to anything a listener raises; an event still being handled is no error."""
        if isinstance(error, EventInProgress):
            log.info("event %s is being handled: Slack's retry is asked to come back later", error)
            return BoltResponse(status=503, body="")
        log.error("listener failed", exc_info=error)
        return None

    @app.event("app_mention")
    def mention(body: dict[str, Any], event: dict[str, Any]) -> None:
        intake.once(
            body.get("event_id"),
            lambda: intake.mention(
                text=event.get("text", ""),
                user=event.get("user", ""),
                channel=event.get("channel", ""),
                thread_ts=event.get("thread_ts"),
            ),
        )

    def reaction(body: dict[str, Any], event: dict[str, Any]) -> None:
        item = event.get("item") or {}
        if item.get("type") != "message":
            return
        intake.once(
            body.get("event_id"),
            lambda: intake.reaction(
                reaction=event.get("reaction", ""),
                user=event.get("user", ""),
                channel=item.get("channel", ""),
                ts=item.get("ts", ""),
                added=event.get("type") == "reaction_added",
            ),
        )

    app.event("reaction_added")(reaction)
    app.event("reaction_removed")(reaction)

    @app.event("app_home_opened")
    def home(body: dict[str, Any], event: dict[str, Any]) -> None:
        intake.once(body.get("event_id"), lambda: intake.home(user=event.get("user", ""), tab=event.get("tab", "")))
