"""Interactive elements: Approve / Reject on a plan, and the final checklist's checkboxes."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt import Ack, App

from bot.contract import Action
from bot.intake import Intake


def register(app: App, intake: Intake) -> None:
    @app.action(re.compile("^(" + "|".join(map(re.escape, Action.PLAN)) + ")$"))
    def plan_button(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        intake.button(
            action_id=action.get("action_id", ""),
            plan_id=action.get("value", ""),
            user=(body.get("user") or {}).get("id", ""),
        )
        ack()

    @app.action(Action.CHECKLIST)
    def checklist(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        container = body.get("container") or {}
        intake.checklist(
            user=(body.get("user") or {}).get("id", ""),
            channel=container.get("channel_id") or (body.get("channel") or {}).get("id", ""),
            ts=container.get("message_ts", ""),
            block_id=action.get("block_id", ""),
            checked=[option.get("value", "") for option in action.get("selected_options") or []],
        )
        ack()
