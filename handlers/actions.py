"""Interactive payloads: Approve / Reject on a plan, a finding's fix button, the button that opens
a private form, the form's submission (view_submission), and the final checklist's checkboxes.

A form can only be opened within 3 s of the person's click or command (its trigger_id), so the
listeners that answer with a form open it here, in the web process: the one Slack call the web
side makes, and only after intake decided the person may ask for it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.contract import Action
from bot.wording import forms
from handlers.intake import Intake, Reply

log = logging.getLogger(__name__)


def open_modal(client: WebClient, trigger_id: str, reply: Reply) -> str | None:
    """Open the reply's form; what to tell the person when Slack refused (an expired trigger)."""
    if reply.modal is None:
        return None
    try:
        client.views_open(trigger_id=trigger_id, view=reply.modal)
    except SlackApiError as exc:
        log.warning("views.open refused: %s", exc.response.get("error"))
        return f":warning: Slack did not open the form ({exc.response.get('error')}): please try again."
    return None


def register(app: App, intake: Intake) -> None:
    decisions = re.compile("^(" + "|".join(map(re.escape, Action.DECISIONS)) + ")$")

    @app.action(decisions)
    def plan_button(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        container = body.get("container") or {}
        intake.button(
            action_id=action.get("action_id", ""),
            plan_id=action.get("value", ""),
            user=_user(body),
            channel=str(container.get("channel_id", "")),
            ts=str(container.get("message_ts", "")),
        )
        ack()

    @app.action(Action.PLAN_FIX)
    def fix_button(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        channel, thread_ts = _where(body)
        reply = intake.plan_button(
            words=str(action.get("value", "")), user=_user(body), channel=channel, thread_ts=thread_ts
        )
        _answer(client, body, reply, intake, channel, thread_ts)
        ack()

    @app.action(Action.CHECKLIST)
    def checklist(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        channel, _ = _where(body)
        intake.checklist(
            user=_user(body),
            channel=channel,
            ts=str((body.get("container") or {}).get("message_ts", "")),
            block_id=action.get("block_id", ""),
            checked=[option.get("value", "") for option in action.get("selected_options") or []],
        )
        ack()

    @app.action(Action.OPEN_FORM)
    def form_button(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        channel, thread_ts = _where(body)
        reply = intake.open_form(metadata=str(action.get("value", "")), user=_user(body), channel=channel)
        _answer(client, body, reply, intake, channel, thread_ts)
        ack()

    @app.view(Action.SECRET_FORM)
    def secret_form(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = ((view.get("state") or {}).get("values") or {}).get(forms.SECRET_BLOCK) or {}
        value = str((values.get(forms.SECRET_ACTION) or {}).get("value") or "")
        errors = intake.secret_form(metadata=str(view.get("private_metadata") or ""), value=value, user=_user(body))
        ack(response_action="errors", errors=errors) if errors else ack()


def _user(body: dict[str, Any]) -> str:
    return str((body.get("user") or {}).get("id", ""))


def _where(body: dict[str, Any]) -> tuple[str, str | None]:
    """The channel of the clicked message, and the thread it is in (or the message itself)."""
    container = body.get("container") or {}
    return str(container.get("channel_id", "")), container.get("thread_ts") or container.get("message_ts")


def _answer(
    client: WebClient, body: dict[str, Any], reply: Reply, intake: Intake, channel: str, thread_ts: str | None
) -> None:
    """After a button: open the form it leads to, or tell the clicker (ephemeral, through the queue:
    Slack ignores a body in the answer to a button) what happened."""
    problem = open_modal(client, str(body.get("trigger_id", "")), reply)
    text = problem or (None if reply.modal else reply.text)
    if text:
        intake.tell(user=_user(body), channel=channel, thread_ts=thread_ts, text=text)
