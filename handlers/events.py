"""Events: `@nexy <command>` mentions, and reactions."""
from __future__ import annotations

from slack_bolt import Ack, App

from bot.intake import Intake


def register(app: App, intake: Intake) -> None:
    @app.event("app_mention")
    def mention(ack: Ack, event: dict, body: dict) -> None:
        intake.mention(
            text=event.get("text", ""),
            user=event.get("user", ""),
            channel=event.get("channel", ""),
            thread_ts=event.get("thread_ts"),
            event_id=body.get("event_id"),
        )
        ack()  # after the enqueue: if Redis is down, no ack, and Slack retries

    @app.event("reaction_added")
    def reaction_added(ack: Ack, event: dict) -> None:
        _reaction(intake, event, added=True)
        ack()

    @app.event("reaction_removed")
    def reaction_removed(ack: Ack, event: dict) -> None:
        _reaction(intake, event, added=False)
        ack()


def _reaction(intake: Intake, event: dict, *, added: bool) -> None:
    item = event.get("item") or {}
    if item.get("type") == "message":
        intake.reaction(reaction=event.get("reaction", ""), user=event.get("user", ""),
                        channel=item.get("channel", ""), ts=item.get("ts", ""), added=added)
