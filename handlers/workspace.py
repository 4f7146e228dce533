"""Requests from outside the app's workspace stop here, before any listener: another workspace's
request (its `team_id`), or a Slack Connect user of another organisation in a shared channel (the
user's team). The app's own team is what `auth.test` answered when Bolt started (its authorization).
A slash command gets an ephemeral refusal; events and clicks are acknowledged and ignored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltContext, BoltResponse

from handlers.intake import Intake


def register(app: App, intake: Intake) -> None:
    @app.middleware
    def same_workspace(context: BoltContext, body: dict[str, Any], next: Callable[[], BoltResponse]) -> Any:
        authorized = context.authorize_result
        reason = intake.outsider(
            home_team=str(authorized.team_id or "") if authorized is not None else "",
            team=str(context.team_id or ""),
            user_team=user_team(body),
        )
        if not reason:
            return next()
        if body.get("command"):
            return BoltResponse(status=200, body={"response_type": "ephemeral", "text": f":no_entry: {reason}."})
        return BoltResponse(status=200, body="")


def user_team(body: dict[str, Any]) -> str:
    """The team of the person behind a payload, where Slack says it: `user.team_id` on interactive
    payloads, `user_team` on message-like events (app_mention) in shared channels. Slash commands carry
    only `team_id`, the workspace the command was typed in."""
    user = body.get("user")
    if isinstance(user, dict):
        return str(user.get("team_id") or "")
    event = body.get("event")
    if isinstance(event, dict):
        return str(event.get("user_team") or "")
    return ""
