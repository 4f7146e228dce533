"""The `/nexy` slash command."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.intake import Intake


def register(app: App, intake: Intake) -> None:
    @app.command("/nexy")
    def nexy(ack: Ack, command: dict[str, Any]) -> None:
        reply = intake.slash(
            text=command.get("text", ""), user=command.get("user_id", ""), channel=command.get("channel_id", "")
        )
        ack(text=reply.text, response_type="ephemeral") if reply.text else ack()
