"""Socket Mode end to end: the bot connects with slack_sdk's built-in client (Bolt's
SocketModeHandler) to the emulator's WebSocket, and slash commands, reactions and buttons arrive as
envelopes that it acks; the emulator's protocol (hello, acks, redelivery) and `nexy socket`'s
one-line failures."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import time

import pytest
from websockets.sync.client import connect as ws_connect

from nexy.socket_mode import connect
from tests.helpers import APPROVER, OPERATOR, bot_messages, cli_env
from tests.leftovers import alive_under
from tests.nexy.test_manifest import METHOD_SCOPES


@pytest.fixture
def socket_bot(slack, redis, registry):
    """Connect the bot to the emulator over Socket Mode; from then on Slack's requests go through it."""
    handlers = []

    def start(settings):
        handler, _ = connect(settings, registry, slack.app_token, lambda: "test redis")
        handlers.append(handler)
        slack.socket_mode = True
        return handler

    yield start
    for handler in handlers:
        # Closed from Slack's side first: the client's blocking read then ends at once, not after its 3 s.
        handler.client.auto_reconnect_enabled = False
    slack.socket.close_all()
    for handler in handlers:
        handler.close()


def _acks(slack) -> list[dict]:
    return [m for m in slack.socket.received if "envelope_id" in m]


def test_health_through_socket_mode(socket_bot, make_settings, slack, work):
    """`/nexy health` arrives as a slash_commands envelope, is acked with the visible answer, and the report
    is posted in the incident thread; nothing goes over HTTP to the bot."""
    socket_bot(make_settings(slack_app_token=slack.app_token))
    assert slack.bot_url is None and slack.socket.connections == 1
    reply = slack.slash_command("health")
    assert reply.status_code == 200 and "queued" in reply.json()["text"]
    ack = _acks(slack)[-1]
    assert ack["envelope_id"] == slack.last_delivery.envelopes[0] and "queued" in ack["payload"]["text"]
    work()
    assert any("2.4.0 build 240" in m.text + json.dumps(m.blocks) for m in bot_messages(slack))


def test_fix_flow_through_socket_mode(socket_bot, vm_settings, slack, work, vm, azure):
    """A fix planned by slash command, approved by a reaction event, applied and verified; a second plan
    rejected by its button: every request an envelope, every one acked."""
    settings = vm_settings(nexy_operators=OPERATOR, nexy_approvers=APPROVER, slack_app_token=slack.app_token)
    socket_bot(settings)
    vm.break_("config-perms")
    slack.slash_command("fix config-perms", user=OPERATOR)
    work(settings)
    plan = next(m for m in bot_messages(slack) if m.text.startswith(":clipboard: Plan"))
    assert slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts).status_code == 200
    work(settings)
    assert any("Fixed and verified" in m.text for m in bot_messages(slack)) and vm.service_active()

    vm.break_("config-perms")
    slack.slash_command("fix config-perms", user=OPERATOR)
    work(settings)
    second = [m for m in bot_messages(slack) if m.text.startswith(":clipboard: Plan")][-1]
    plan_id = second.text.split("Plan ", 1)[1].split(":", 1)[0]
    click = slack.block_action(user=APPROVER, channel="C0OPS", message_ts=second.ts, action_id="plan_reject",
                               value=plan_id)
    assert click.status_code == 200
    work(settings)
    assert any("rejected by <@U0BOB>" in m.text for m in bot_messages(slack))
    kinds = [envelope["type"] for envelope in slack.socket.sent]
    assert {"slash_commands", "events_api", "interactive"} <= set(kinds)
    assert len(_acks(slack)) == len(slack.socket.sent)
    # Every Web API method the flow called is in the scope table the manifest test checks.
    assert {name for name, _ in slack.calls} <= set(METHOD_SCOPES)


def test_unacked_events_are_delivered_again_and_commands_are_not(slack):
    """An event not acked in time comes again with retry_attempt 1-3 (reason timeout); a slash command once."""
    slack.socket.ack_timeout_s = 0.2
    slack.socket_mode = True
    from slack_sdk import WebClient

    url = WebClient(base_url=slack.api_url).apps_connections_open(app_token=slack.app_token)["url"]
    with ws_connect(url) as ws:
        hello = json.loads(ws.recv(timeout=5))
        assert hello["type"] == "hello" and hello["connection_info"]["app_id"] == slack.app_id
        response = slack.reaction_added("x", user="U0BOB", channel="C0OPS", ts="1.000001")
        assert response.status_code == 408
        deliveries = [json.loads(ws.recv(timeout=5)) for _ in range(4)]
        assert [d["retry_attempt"] for d in deliveries] == [0, 1, 2, 3]
        assert [d["retry_reason"] for d in deliveries][1:] == ["timeout"] * 3
        assert len({d["payload"]["event_id"] for d in deliveries}) == 1
        assert len({d["envelope_id"] for d in deliveries}) == 4
        assert slack.slash_command("health").status_code == 408
        command = json.loads(ws.recv(timeout=5))
        assert command["type"] == "slash_commands" and command["accepts_response_payload"] is True
        assert command["payload"]["command"] == "/nexy" and command["payload"]["text"] == "health"
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)
    with pytest.raises(Exception, match="401"):
        ws_connect(url).close()  # a ticket is good for one connection


def test_connections_open_needs_the_app_level_token(slack):
    """apps.connections.open refuses the bot token (not_allowed_token_type) and a wrong xapp token
    (invalid_auth); the app token is good for nothing else."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    client = WebClient(base_url=slack.api_url)
    for token, error in ((slack.bot_token, "not_allowed_token_type"), ("xapp-1-A0NEXYAPP-1-wrong", "invalid_auth")):
        with pytest.raises(SlackApiError) as caught:
            client.apps_connections_open(app_token=token)
        assert caught.value.response["error"] == error
    with pytest.raises(SlackApiError) as caught:
        WebClient(token=slack.app_token, base_url=slack.api_url).chat_postMessage(channel="C0OPS", text="hi")
    assert caught.value.response["error"] == "not_allowed_token_type"
    assert client.apps_connections_open(app_token=slack.app_token)["url"].startswith("ws://127.0.0.1:")


def test_reconnects_when_slack_asks(socket_bot, make_settings, slack, work):
    """After a `disconnect` (refresh_requested) the client opens a new connection and commands still arrive."""
    handler = socket_bot(make_settings(slack_app_token=slack.app_token))
    first = handler.client.session_id()
    slack.socket.disconnect_all("refresh_requested")
    deadline = time.monotonic() + 10
    while (handler.client.session_id() == first or slack.socket.connections != 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert handler.client.session_id() != first and slack.socket.connections == 1
    assert "queued" in slack.slash_command("health").json()["text"]


@pytest.mark.parametrize("case, expected", [
    ("refused", "SLACK_APP_TOKEN: Slack refused it (invalid_auth)"),
    ("unreachable", "SLACK_API_URL: cannot reach Slack"),
])
def test_nexy_socket_fails_in_one_line(tmp_path, slack, redis_url, case, expected):
    """`nexy socket` with a refused app token or an unreachable Slack: exit 2, one line, no traceback, and
    nothing left running."""
    api = slack.api_url if case == "refused" else "http://127.0.0.1:9/api/"
    env = cli_env(tmp_path, SLACK_BOT_TOKEN=slack.bot_token, SLACK_SIGNING_SECRET=slack.signing_secret,
                  SLACK_API_URL=api, SLACK_APP_TOKEN="xapp-1-A0NEXYAPP-1-wrong", NEXY_CHANNELS="*")
    if case == "refused":
        env["REDIS_URL"] = redis_url  # the unreachable case runs the embedded Redis: it must not be left behind
    result = subprocess.run([sys.executable, "-m", "nexy.cli", "socket"], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    # (the test Redis is not persisted: `nexy socket` rightly warns about it first)
    lines = [line for line in result.stderr.splitlines() if line.strip() and "warning: Redis keeps nothing" not in line]
    assert len(lines) == 1 and lines[0].startswith(f"nexy: {expected}"), result.stderr
    assert "Traceback" not in result.stderr
    assert alive_under(tmp_path) == []


def test_nexy_socket_process_runs_health_and_fix_flows_in_the_sandbox(tmp_path):
    """`nexy run --socket-mode`: the bot is a `nexy socket` process; health, a fix plan and its approval
    by reaction and the apply all go over Socket Mode; nothing is left running."""
    script = "/nexy health\n/nexy fix config-perms\n/as U0BOB bob\n/react 5\n"
    # Run-commands as quick as the simulated VM allows (the sandbox's own pace is 2 s each, 1 s verify steps).
    quick = {"NEXY_SANDBOX_RUN_COMMAND_S": "0.1", "NEXY_VERIFY_POLL_S": "0.05", "NEXY_VERIFY_SETTLE_S": "0.2"}
    result = subprocess.run([sys.executable, "-m", "nexy.cli", "run", "--socket-mode", "--scenario", "config-perms"],
                            input=script, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env=cli_env(tmp_path, **quick))
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "Health" in out and "Plan P-" in out and "[5] nexy: :clipboard: *Plan" in out
    assert "approved by @bob" in out and "Fixed and verified" in out
    assert "nexy run: socket stopped (no new requests)" in result.stderr and "Traceback" not in result.stderr
    assert alive_under(tmp_path) == []


MALFORMED_ENVELOPES = {
    "events_api": {"type": "event_callback", "event_id": "Ev0BADSHAPE", "team_id": "T0SANDBOX",
                   "event": {"type": "app_mention", "user": "U0BOB", "text": 42, "channel": "C0OPS"}},
    "interactive": {"type": "view_submission", "user": {"id": "U0BOB"},
                    "view": {"type": "modal", "callback_id": "secret_form", "state": []}},
    "slash_commands": {"command": "/nexy", "text": ["health"], "user_id": "U0BOB", "channel_id": "C0OPS"},
}


def test_a_malformed_envelope_is_acked_and_dropped(socket_bot, make_settings, slack, caplog):
    """An event, a form and a slash command of the wrong shape are each acked at once (never sent
    again), dropped with a log line naming the field, and the client goes on serving."""
    slack.socket.ack_timeout_s = 1.0
    socket_bot(make_settings(slack_app_token=slack.app_token))
    with caplog.at_level(logging.WARNING, logger="nexy.socket"):
        for kind, payload in MALFORMED_ENVELOPES.items():
            delivery = slack.socket.deliver(kind, payload)
            assert delivery.acked and delivery.attempts == 1, kind
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 3, dropped
    assert "body.event.text is not a string" in dropped[0]
    assert "payload.view.state is not an object" in dropped[1]
    assert "command.text is not a string" in dropped[2]
    assert "queued" in slack.slash_command("health").json()["text"]
