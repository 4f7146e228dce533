"""The `/nexy` slash command."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from handlers.actions import open_modal
from handlers.intake import Intake


def register(app: App, intake: Intake) -> None:
    @app.command("/nexy")
    def nexy(ack: Ack, command: dict[str, Any], client: WebClient) -> None:
        reply = intake.slash(
            text=command.get("text", ""), user=command.get("user_id", ""), channel=command.get("channel_id", "")
        )
        text = open_modal(client, str(command.get("trigger_id", "")), reply) or reply.text
        ack(text=text, response_type="ephemeral") if text else ack()
