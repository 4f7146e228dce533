"""Events: `@nexy <command>` mentions, and reactions (approvals).

Bolt acknowledges event listeners on its own, before they run. So the work is done in a
middleware, which runs before Slack gets its answer: dedupe on `event_id`, queue, and only then
let the (ack-only) listener answer 200. If Redis cannot take the work, Slack gets a 500 and
retries the event later: nothing is lost.
"""
from __future__ import annotations

from redis.exceptions import RedisError
from slack_bolt import App, BoltResponse

from bot.intake import Intake


def register(app: App, intake: Intake) -> None:
    @app.middleware
    def take_events(body: dict, next) -> BoltResponse | None:  # noqa: A002 - Bolt's name
        if body.get("type") == "event_callback":
            try:
                intake.event(body.get("event_id"), body.get("event") or {})
            except RedisError:
                return BoltResponse(status=500, body="")
        return next()

    for event in ("app_mention", "reaction_added", "reaction_removed"):
        app.event(event)(_acknowledged)


def _acknowledged() -> None:
    """The event was taken by `take_events`; Bolt acks it."""
