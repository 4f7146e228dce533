"""Events: `@nexy <command>` mentions, reactions (approvals), and the App Home opened. Each is
taken once per `event_id` (Slack retries; Bolt does not dedupe); a Redis failure raises, so Slack
gets a 500."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.intake import Intake


def register(app: App, intake: Intake) -> None:
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
