"""Bolt listeners: thin. Each one reads the payload into typed values, hands it to bot/, and acks."""
from __future__ import annotations

from slack_bolt import App, BoltResponse

from bot.intake import Intake
from handlers import actions, commands, events


def register(app: App, intake: Intake) -> None:
    """Attach every listener, and drop Slack's retries of an event already delivered."""

    @app.middleware
    def drop_retried_events(body: dict, next) -> BoltResponse | None:  # noqa: A002 - Bolt's name
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id and not intake.store.first_delivery(event_id):
            return BoltResponse(status=200, body="")
        return next()

    commands.register(app, intake)
    events.register(app, intake)
    actions.register(app, intake)
