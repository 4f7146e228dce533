"""Bad input through signed HTTP requests: malformed payloads get a 4xx, a replayed slash command is
answered once, control characters are not echoed, and plan buttons are checked like reactions."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from redis import Redis

from bot.plans import PlanStatus, PlanStore
from handlers.guard import RequestGuard
from nexy.embedded_redis import free_port
from nexy.local import wait_until_up
from nexy.processes import Children
from tests.helpers import APPROVER, KEY, OPERATOR

ROOT = Path(__file__).resolve().parents[2]

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


# -- size and time before the body is read ------------------------------------------------------

HUGE = 400 * 1024 * 1024


def _huge_post(base: str, headers: dict[str, str], sent: int = 64 * 1024) -> tuple[bytes, float]:
    """Send headers claiming a 400 MB body and only `sent` bytes of it, then wait for the answer
    without sending more: (the answer's first bytes, seconds it took)."""
    host, port = base.removeprefix("http://").split(":")
    lines = ["POST /slack/events HTTP/1.1", f"Host: {host}", f"Content-Length: {HUGE}",
             *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        started = time.monotonic()
        conn.sendall("\r\n".join(lines).encode() + b"x" * sent)
        answer = b""
        while not _whole(answer):
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer, time.monotonic() - started


def _whole(answer: bytes) -> bool:
    """An HTTP answer with its head and as much body as its Content-Length says."""
    head, _, body = answer.partition(b"\r\n\r\n")
    if not _:
        return False
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return len(body) >= length


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_a_body_claiming_400_mb_is_refused_before_it_is_read(bot, slack):
    """Headers claiming a 400 MB body get a 413 at once (signed timestamp) or a 401 (none), without the
    server waiting for the rest of the body."""
    fresh = {"Content-Type": FORM, "X-Slack-Request-Timestamp": str(int(time.time())),
             "X-Slack-Signature": "v0=" + "0" * 64}
    answer, took = _huge_post(bot, fresh)
    assert _status(answer) == 413 and took < 2.0, (answer[:200], took)
    answer, took = _huge_post(bot, {"Content-Type": FORM})
    assert _status(answer) == 401 and took < 2.0, (answer[:200], took)
    stale = {**fresh, "X-Slack-Request-Timestamp": str(int(time.time()) - 3600)}
    answer, took = _huge_post(bot, stale)
    assert _status(answer) == 401 and b"stale request" in answer and took < 2.0


def test_nexy_web_refuses_a_400_mb_body_before_reading_it(tmp_path, slack, redis_url):
    """Under `nexy web` (gunicorn), headers claiming 400 MB get a 413 at once and a chunked body
    longer than 1 MiB is refused after at most 1 MiB + 1 byte; a signed command still works."""
    port = free_port()
    children = Children()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "NEXY_", "REDIS_", "AZURE_"))}
    env.update(SLACK_BOT_TOKEN=slack.bot_token, SLACK_SIGNING_SECRET=slack.signing_secret, REDIS_URL=redis_url,
               SLACK_API_URL=slack.api_url, PORT=str(port), NEXY_BIND_HOST="127.0.0.1",
               NEXY_DATA_DIR=str(tmp_path / "data"), NEXY_CHANNELS="*", PYTHONPATH=str(ROOT))
    try:
        children.nexy("web", "web", env=env)
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/healthz", children)
        headers = {"Content-Type": FORM, "X-Slack-Request-Timestamp": str(int(time.time())),
                   "X-Slack-Signature": "v0=" + "0" * 64}
        answer, took = _huge_post(base, headers)
        assert _status(answer) == 413 and took < 2.0, (answer[:200], took)

        def chunks():  # no Content-Length: 2 MiB in 64 KiB chunks, signed as if it were whole
            for _ in range(32):
                yield b"x" * 65536

        chunked = httpx.post(f"{base}/slack/events", content=chunks(), headers=headers, timeout=10)
        assert chunked.status_code == 413
        slack.bot_url = f"{base}/slack/events"
        assert "queued" in slack.slash_command("health").json()["text"]
    finally:
        children.stop()


# -- replays ------------------------------------------------------------------------------------

def test_a_future_timestamp_cannot_be_replayed_while_it_is_valid(bot, slack, redis: Redis):
    """A command signed 290 s ahead of our clock stays valid for 590 s: its replay is refused all that
    time, so the signature is kept at least that long."""
    ahead = int(time.time()) + 290
    assert slack.slash_command("help", timestamp=ahead).status_code == 200
    assert slack.replay_last().status_code == 409
    ttls = [redis.ttl(key) for key in redis.scan_iter("nexy:signature:*")]
    assert len(ttls) == 1 and ttls[0] >= 590, ttls


def test_replay_refused_until_the_timestamp_itself_is_stale(slack, redis: Redis):
    """With the guard's clock moved past five minutes but not past the future timestamp's window, the
    replay is still refused; once the timestamp is stale, it is refused as stale."""
    now = [time.time()]
    guard = RequestGuard(slack.signing_secret, redis, clock=lambda: now[0])
    body = urlencode({"command": "/nexy", "text": "help", "user_id": "U0ALICE", "channel_id": "C0OPS"}).encode()
    headers = slack.sign(body, timestamp=int(now[0]) + 290)
    args = (body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"], FORM)
    assert guard.check(*args) is None
    now[0] += 400
    refusal = guard.check(*args)
    assert refusal is not None and refusal.status.startswith("409")
    now[0] += 200
    refusal = guard.check(*args)
    assert refusal is not None and refusal.reason == "stale request"


# -- shapes -------------------------------------------------------------------------------------

def _view_submission() -> dict:
    return {"type": "view_submission", "team": {"id": "T0"}, "user": {"id": "U0ALICE"},
            "view": {"id": "V1", "type": "modal", "callback_id": "secret_form", "private_metadata": "{}",
                     "state": {"values": {"secret": {"value": {"type": "plain_text_input", "value": "x"}}}}}}


def _block_actions() -> dict:
    return {"type": "block_actions", "user": {"id": "U0ALICE"}, "trigger_id": "1.2.3",
            "container": {"type": "message", "channel_id": "C0OPS", "message_ts": "1.000001"},
            "actions": [{"action_id": "incident_checklist", "block_id": "checklist:INC-1", "type": "checkboxes",
                         "selected_options": [{"value": "a", "text": {"type": "plain_text", "text": "a"}}]}]}


def _mention() -> dict:
    return {"type": "app_mention", "user": "U0ALICE", "text": "<@U0NEXYBOT> health", "channel": "C0OPS",
            "ts": "1.000001"}


def _reaction() -> dict:
    return {"type": "reaction_added", "user": "U0BOB", "reaction": "white_check_mark",
            "item": {"type": "message", "channel": "C0OPS", "ts": "1.000001"}}


def _command() -> dict:
    return {"command": "/nexy", "text": "health", "user_id": "U0ALICE", "channel_id": "C0OPS", "team_id": "T0"}


def _set(data: dict, path: str, value: object) -> dict:
    """`data` with the field at a dotted path (list indexes as numbers) replaced; DELETE removes it."""
    *parents, last = path.split(".")
    node: object = data
    for step in parents:
        node = node[int(step)] if isinstance(node, list) else node[step]  # type: ignore[index]
    if value is DELETE:
        del node[last]  # type: ignore[union-attr]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value  # type: ignore[index]
    return data


DELETE = object()

WRONG_SHAPES = [
    # (payload kind, base, path, wrong value, reason)
    ("interactive", _view_submission, "view.state", [], "payload.view.state is not an object"),
    ("interactive", _view_submission, "view.state.values", "x", "payload.view.state.values is not an object"),
    ("interactive", _view_submission, "view.state.values.secret", [1], "payload.view.state.values.secret is not an object"),
    ("interactive", _view_submission, "view.state.values.secret.value", "x",
     "payload.view.state.values.secret.value is not an object"),
    ("interactive", _view_submission, "view.state.values.secret.value.value", 5,
     "payload.view.state.values.secret.value.value is not a string"),
    ("interactive", _view_submission, "view.state", DELETE, "payload.view.state is missing"),
    ("interactive", _view_submission, "view.private_metadata", {"words": "x"},
     "payload.view.private_metadata is not a string"),
    ("interactive", _view_submission, "view.type", DELETE, "payload.view.type is missing"),
    ("interactive", _view_submission, "view.callback_id", 7, "payload.view.callback_id is not a string"),
    ("interactive", _view_submission, "user.id", ["U0"], "payload.user.id is not a string"),
    ("interactive", _block_actions, "actions.0.selected_options", "a", "payload.actions[0].selected_options is not a list"),
    ("interactive", _block_actions, "actions.0.selected_options.0", "a",
     "payload.actions[0].selected_options[0] is not an object"),
    ("interactive", _block_actions, "actions.0.selected_options.0.value", 1,
     "payload.actions[0].selected_options[0].value is not a string"),
    ("interactive", _block_actions, "actions.0.action_id", 3, "payload.actions[0].action_id is not a string"),
    ("interactive", _block_actions, "actions.0.value", ["p"], "payload.actions[0].value is not a string"),
    ("interactive", _block_actions, "actions.0.block_id", {}, "payload.actions[0].block_id is not a string"),
    ("interactive", _block_actions, "actions", [], "payload.actions is empty"),
    ("interactive", _block_actions, "container.channel_id", 1, "payload.container.channel_id is not a string"),
    ("interactive", _block_actions, "container.message_ts", 1.5, "payload.container.message_ts is not a string"),
    ("interactive", _block_actions, "container.thread_ts", [], "payload.container.thread_ts is not a string"),
    ("interactive", _block_actions, "trigger_id", 9, "payload.trigger_id is not a string"),
    ("interactive", _block_actions, "type", None, "payload.type is not a string"),
    ("event", _mention, "text", {"t": 1}, "body.event.text is not a string"),
    ("event", _mention, "user", {"id": "U0"}, "body.event.user is not a string"),
    ("event", _mention, "channel", ["C0OPS"], "body.event.channel is not a string"),
    ("event", _mention, "thread_ts", 1.5, "body.event.thread_ts is not a string"),
    ("event", _mention, "text", DELETE, "body.event.text is missing"),
    ("event", _reaction, "item.ts", 1.000001, "body.event.item.ts is not a string"),
    ("event", _reaction, "item.channel", {"id": "C0OPS"}, "body.event.item.channel is not a string"),
    ("event", _reaction, "item.type", None, "body.event.item.type is not a string"),
    ("event", _reaction, "reaction", ["x"], "body.event.reaction is not a string"),
    ("event", _reaction, "type", 5, "body.event.type is not a string"),
    ("event", lambda: {"type": "app_home_opened", "user": "U0BOB", "tab": "home"}, "user", ["U0BOB"],
     "body.event.user is not a string"),
    ("command", _command, "user_id", DELETE, "command.user_id is missing"),
    ("command", _command, "channel_id", DELETE, "command.channel_id is missing"),
]
REPEATED = ["text", "user_id", "channel_id", "command"]


def _signed(kind: str, data: dict) -> tuple[bytes, str]:
    if kind == "interactive":
        return _form(data), FORM
    if kind == "event":
        return _event(data), "application/json"
    return urlencode(data).encode(), FORM


@pytest.mark.parametrize("case", WRONG_SHAPES, ids=lambda case: case[4])
def test_a_wrong_shape_gets_400_with_its_reason(bot, slack, case):
    """A signed payload with a field of the wrong shape (or missing) is answered 400 naming that field,
    where the same payload with that field right is taken."""
    kind, base, path, value, reason = case
    assert slack.send_raw(*_signed(kind, base())).status_code == 200
    body, content_type = _signed(kind, _set(base(), path, value))
    response = slack.send_raw(body, content_type)
    assert (response.status_code, response.json()) == (400, {"error": reason})
    assert response.headers["X-Slack-No-Retry"] == "1"  # no retry would change the answer


@pytest.mark.parametrize("field", REPEATED)
def test_a_repeated_slash_command_field_gets_400(bot, slack, field):
    """A slash command with a field sent twice (Bolt would take the first, a proxy the last) is refused."""
    body = urlencode({**_command(), field: ["health", "fix config-perms"]}, doseq=True).encode()
    response = slack.send_raw(body, FORM)
    assert (response.status_code, response.json()) == (400, {"error": f"form field {field} is repeated"})
