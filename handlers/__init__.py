"""Bolt listeners: thin. Each one reads the payload into typed values, hands it to bot/, and acks.

The app runs with `process_before_response=True`: a listener's work (queueing) is done before
Slack gets its answer, so a queue failure answers 500 and Slack retries; nothing is lost.
"""

from __future__ import annotations

from slack_bolt import App

from handlers import actions, commands, events, workspace
from handlers.intake import Intake


def register(app: App, intake: Intake) -> None:
    """Attach every listener, behind the check that a request comes from the app's own workspace."""
    workspace.register(app, intake)
    events.register(app, intake)
    commands.register(app, intake)
    actions.register(app, intake)
