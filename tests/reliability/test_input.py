"""Bad input through signed HTTP requests: malformed payloads get a 4xx, a replayed slash command is
answered once, control characters are not echoed, and plan buttons are checked like reactions."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from redis import Redis

from bot.plans import PlanStore, PlanStatus
from tests.conftest import RG, VM_NAME

KEY = (RG.lower(), VM_NAME.lower())
OPERATOR, APPROVER = "U0ALICE", "U0BOB"
FORM = "application/x-www-form-urlencoded"


def _form(payload: object) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def _event(event: object) -> bytes:
    envelope = {"type": "event_callback", "event": event, "event_id": "EvBAD", "team_id": "T0", "api_app_id": "A0"}
    return json.dumps(envelope).encode()


MALFORMED = {
    "invalid JSON": (b"{not json", "application/json", None),
    "JSON that is a list": (b"[1, 2]", "application/json", None),
    "event not an object": (_event("reaction_added"), "application/json", None),
    "item not an object": (_event({"type": "reaction_added", "item": "x", "user": "U0", "reaction": "x"}),
                           "application/json", None),
    "block_actions without actions": (_form({"type": "block_actions", "user": {"id": "U0"}}), FORM, None),
    "actions not objects": (_form({"type": "block_actions", "user": {"id": "U0"}, "actions": ["x"]}), FORM, None),
    "payload not JSON": (urlencode({"payload": "{x"}).encode(), FORM, None),
    "payload a list": (urlencode({"payload": "[1]"}).encode(), FORM, None),
    "view_submission without a view": (_form({"type": "view_submission", "user": {"id": "U0"}}), FORM, None),
    "user not an object": (_form({"type": "block_actions", "user": "U0", "actions": [{}]}), FORM, None),
    "body not UTF-8": (b"\xff\xfe", FORM, None),
    "non-numeric timestamp": (b"{}", "application/json", "soon"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_signed_malformed_payload_gets_a_4xx(bot, slack, name):
    """A correctly signed but malformed request is answered with a 4xx and a reason, never a 5xx."""
    body, content_type, timestamp = MALFORMED[name]
    response = slack.send_raw(body, content_type, timestamp_header=timestamp)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.json()["error"]


def test_replayed_slash_command_is_answered_once(bot, slack, redis: Redis):
    """The same signed slash command sent again within the window is refused and queues nothing more."""
    first = slack.slash_command("preflight")
    assert first.status_code == 200 and "queued" in first.json()["text"]
    jobs = len(redis.keys("rq:job:*"))
    replay = slack.replay_last()
    assert replay.status_code == 409
    assert len(redis.keys("rq:job:*")) == jobs
    again = slack.slash_command("preflight")  # a new command (new signature) is taken as usual
    assert again.status_code == 200


def test_control_characters_are_not_echoed(bot, slack):
    """Terminal escapes, NUL and bidi overrides in a command are stripped from the answer that echoes it."""
    reply = slack.slash_command("nosuch\x1b[2J\x00\u202ecmd")
    text = reply.json()["text"]
    assert "nosuch[2Jcmd".lower() in text.lower()
    assert not any(ch in text for ch in "\x1b\x00\u202e")


@pytest.fixture
def channel_settings(serve_bot, vm_settings):
    settings = vm_settings(nexy_operators=OPERATOR, nexy_approvers=APPROVER, nexy_channels="C0OPS")
    serve_bot(settings)
    return settings


def _plan(slack, work, settings, vm):
    vm.break_("config-perms")
    assert "queued" in slack.slash_command("fix config-perms", user=OPERATOR).json()["text"]
    work(settings)
    message = next(m for m in slack.messages("C0OPS") if m.text.startswith(":clipboard: Plan"))
    return message, message.text.split("Plan ", 1)[1].split(":", 1)[0]


def test_button_from_a_channel_outside_nexy_channels_is_ignored(channel_settings, slack, work, vm, azure, redis):
    """An Approve click whose container is a channel the bot does not answer in approves nothing."""
    message, plan_id = _plan(slack, work, channel_settings, vm)
    slack.block_action(user=APPROVER, channel="C0ELSEWHERE", message_ts=message.ts, action_id="plan_approve",
                       value=plan_id)
    work(channel_settings)
    plan = PlanStore(redis).get(plan_id)
    assert plan is not None and plan.status is PlanStatus.PENDING
    assert azure.run_count[KEY] == 1


def test_button_on_another_message_is_ignored(channel_settings, slack, work, vm, azure, redis):
    """An Approve click naming a plan from a message that is not that plan's is refused with an answer."""
    message, plan_id = _plan(slack, work, channel_settings, vm)
    other = next(m for m in slack.messages("C0OPS") if m.ts != message.ts and not m.ephemeral_to)
    slack.block_action(user=APPROVER, channel="C0OPS", message_ts=other.ts, action_id="plan_approve", value=plan_id)
    work(channel_settings)
    plan = PlanStore(redis).get(plan_id)
    assert plan is not None and plan.status is PlanStatus.PENDING
    assert azure.run_count[KEY] == 1
    assert any(m.ephemeral_to == APPROVER and "out of date" in m.text for m in slack.messages("C0OPS"))
    slack.block_action(user=APPROVER, channel="C0OPS", message_ts=message.ts, action_id="plan_approve", value=plan_id)
    work(channel_settings)
    assert PlanStore(redis).get(plan_id).status is not PlanStatus.PENDING  # the plan's own button still works
