"""Bolt listeners: thin. Each one reads the payload into typed values, hands it to bot/, and acks."""
from __future__ import annotations

from slack_bolt import App

from bot.intake import Intake
from handlers import actions, commands, events


def register(app: App, intake: Intake) -> None:
    """Attach every listener."""
    events.register(app, intake)
    commands.register(app, intake)
    actions.register(app, intake)
