"""Interactive buttons: Approve / Reject on a plan."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt import Ack, App

from bot.contract import Action
from bot.intake import Intake


def register(app: App, intake: Intake) -> None:
    @app.action(re.compile("^(" + "|".join(map(re.escape, Action.ALL)) + ")$"))
    def plan_button(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        intake.button(
            action_id=action.get("action_id", ""),
            plan_id=action.get("value", ""),
            user=(body.get("user") or {}).get("id", ""),
        )
        ack()
