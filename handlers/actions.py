"""Interactive buttons: Approve / Reject on a plan."""
from __future__ import annotations

import re

from slack_bolt import Ack, App

from bot.intake import Intake


def register(app: App, intake: Intake) -> None:
    @app.action(re.compile(r"^plan_(approve|reject)$"))
    def plan_button(ack: Ack, body: dict, action: dict) -> None:
        intake.button(action_id=action.get("action_id", ""), plan_id=action.get("value", ""),
                      user=(body.get("user") or {}).get("id", ""))
        ack()
