"""The Slack emulator against the real slack_sdk / slack_bolt clients and a signature-checking receiver."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier

from sandbox.slack_emulator import Message, SlackEmulator

CHANNEL = "C0OPS"


class _Receiver:
    """A tiny stdlib bot endpoint that verifies Slack signatures and records every request."""

    def __init__(self, signing_secret: str):
        self.verifier = SignatureVerifier(signing_secret)
        self.requests: list[dict] = []
        self.reply_body = b""
        self.reply_type = "text/plain"
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.requests.append(
                    {"path": self.path, "headers": headers, "body": body,
                     "valid": receiver.verifier.is_valid_request(body, headers)}
                )
                self.send_response(200)
                self.send_header("Content-Type", receiver.reply_type)
                self.send_header("Content-Length", str(len(receiver.reply_body)))
                self.end_headers()
                self.wfile.write(receiver.reply_body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slack/events"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def form(self, index: int = -1) -> dict:
        return {k: v[0] for k, v in parse_qs(self.requests[index]["body"].decode()).items()}

    def payload(self, index: int = -1) -> dict:
        return json.loads(self.form(index)["payload"])


@pytest.fixture
def emu():
    with SlackEmulator() as emulator:
        yield emulator


@pytest.fixture
def client(emu):
    return WebClient(token=emu.bot_token, base_url=emu.api_url)


@pytest.fixture
def bot(emu):
    receiver = _Receiver(emu.signing_secret)
    emu.bot_url = receiver.url
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def _button_blocks(action_id: str = "approve") -> list:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Deploy failed"}},
        {"type": "actions", "block_id": "decide",
         "elements": [{"type": "button", "action_id": action_id, "value": "run-1",
                       "text": {"type": "plain_text", "text": "Approve"}}]},
    ]


# ------------------------------------------------------------------------ Web API


def test_auth_test_identifies_the_bot(client, emu):
    """auth.test answers with the bot's user id, team and bot id."""
    resp = client.auth_test()
    assert (resp["user_id"], resp["team_id"], resp["bot_id"]) == ("U0NEXYBOT", "T0SANDBOX", "B0NEXYBOT")
    assert httpx.get(emu.api_url + "auth.test", headers={"Authorization": f"Bearer {emu.bot_token}"}).json()["ok"]


def test_wrong_or_missing_token_is_rejected(emu):
    """A wrong token gets invalid_auth and no token gets not_authed, both as HTTP 200."""
    with pytest.raises(SlackApiError) as wrong:
        WebClient(token="xoxb-wrong", base_url=emu.api_url).chat_postMessage(channel=CHANNEL, text="hi")
    assert wrong.value.response["error"] == "invalid_auth" and wrong.value.response.status_code == 200
    with pytest.raises(SlackApiError) as missing:
        WebClient(base_url=emu.api_url).auth_test()
    assert missing.value.response["error"] == "not_authed"
    assert emu.messages() == []


def test_post_thread_and_update(client, emu):
    """Posts, thread replies and chat.update are stored and visible through conversations.replies."""
    parent = client.chat_postMessage(channel=CHANNEL, text="incident opened")
    assert parent["message"]["user"] == emu.bot_user_id and parent["channel"] == CHANNEL
    reply = client.chat_postMessage(channel=CHANNEL, text="step 1", thread_ts=parent["ts"])
    client.chat_postMessage(channel=CHANNEL, text="step 2", thread_ts=reply["ts"])  # a reply to a reply
    client.chat_update(channel=CHANNEL, ts=parent["ts"], text="incident resolved")

    thread = emu.thread(CHANNEL, parent["ts"])
    assert [m.text for m in thread] == ["incident resolved", "step 1", "step 2"]
    assert thread[0].edits == 1 and thread[0].thread_ts is None and thread[2].thread_ts == parent["ts"]
    assert float(thread[0].ts) < float(thread[1].ts) < float(thread[2].ts)
    replies = client.conversations_replies(channel=CHANNEL, ts=parent["ts"])["messages"]
    assert replies[0]["reply_count"] == 2 and len(replies) == 3
    history = client.conversations_history(channel=CHANNEL)["messages"]
    assert [m["text"] for m in history] == ["incident resolved"]


def _walk(call, **kwargs) -> list[dict]:
    """Every page of a paginated method, by following its cursor; each page's answer."""
    pages, cursor = [], None
    while True:
        page = call(cursor=cursor, **kwargs).data
        pages.append(page)
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            return pages


def test_history_pages_newest_first(client, emu):
    """conversations.history gives `limit` top-level messages a page, newest first, with has_more and a
    cursor to the next page; the last page says has_more false and an empty next_cursor."""
    posted = [client.chat_postMessage(channel=CHANNEL, text=f"m{n}")["ts"] for n in range(25)]
    pages = _walk(client.conversations_history, channel=CHANNEL, limit=10)
    assert [len(p["messages"]) for p in pages] == [10, 10, 5]
    assert [p["has_more"] for p in pages] == [True, True, False]
    assert [m["ts"] for p in pages for m in p["messages"]] == posted[::-1]
    assert len(client.conversations_history(channel=CHANNEL)["messages"]) == 25  # default limit 100
    since = client.conversations_history(channel=CHANNEL, oldest=posted[19], limit=3)
    assert [m["text"] for m in since["messages"]] == ["m24", "m23", "m22"] and since["has_more"]


def test_replies_page_oldest_first_with_the_parent_first(client, emu):
    """conversations.replies gives the parent, then the replies oldest first, `limit` a page, through the
    cursor to the last reply."""
    parent = client.chat_postMessage(channel=CHANNEL, text="parent")["ts"]
    replies = [client.chat_postMessage(channel=CHANNEL, text=f"r{n}", thread_ts=parent)["ts"] for n in range(7)]
    pages = _walk(client.conversations_replies, channel=CHANNEL, ts=parent, limit=3)
    assert pages[0]["messages"][0]["ts"] == parent
    assert [m["ts"] for p in pages for m in p["messages"] if m["ts"] != parent] == replies
    assert [p["has_more"] for p in pages] == [True, True, False]


def test_limits_are_capped_and_cursors_checked(client, emu):
    """A limit over a method's largest is cut to it (and to `page_limit`, Slack's 15 for apps outside the
    Marketplace); a cursor Slack did not give answers invalid_cursor."""
    for n in range(20):
        client.chat_postMessage(channel=CHANNEL, text=f"m{n}")
    assert len(client.conversations_history(channel=CHANNEL, limit=5000)["messages"]) == 20
    emu.page_limit = 15
    first = client.conversations_history(channel=CHANNEL, limit=200)
    assert len(first["messages"]) == 15 and first["response_metadata"]["next_cursor"]
    assert len(client.conversations_history(channel=CHANNEL)["messages"]) == 15
    with pytest.raises(SlackApiError) as bad:
        client.conversations_history(channel=CHANNEL, cursor="bm90IGEgY3Vyc29y")
    assert bad.value.response["error"] == "invalid_cursor"


def test_form_encoded_blocks_are_parsed(client, emu):
    """A form-encoded call with blocks as a JSON string is stored like the JSON one."""
    blocks = _button_blocks()
    client.api_call("chat.postMessage", params={"channel": CHANNEL, "blocks": json.dumps(blocks), "text": "x"})
    client.chat_postMessage(channel=CHANNEL, blocks=blocks, text="y")
    first, second = emu.messages(CHANNEL)
    assert first.blocks == blocks == second.blocks
    assert [c["channel"] for c in emu.calls_to("chat.postMessage")] == [CHANNEL, CHANNEL]


def test_update_errors(client, emu, bot):
    """chat.update answers message_not_found for unknown ts and cant_update_message for a user's message."""
    with pytest.raises(SlackApiError) as unknown:
        client.chat_update(channel=CHANNEL, ts="1.000001", text="x")
    assert unknown.value.response["error"] == "message_not_found"
    emu.app_mention("<@U0NEXYBOT> status", user="U0ALICE", channel=CHANNEL)
    user_msg = emu.messages(CHANNEL)[0]
    with pytest.raises(SlackApiError) as foreign:
        client.chat_update(channel=CHANNEL, ts=user_msg.ts, text="x")
    assert foreign.value.response["error"] == "cant_update_message"


def test_ephemeral_message(client, emu):
    """chat.postEphemeral returns message_ts and stores a message visible only to that user."""
    resp = client.chat_postEphemeral(channel=CHANNEL, user="U0BOB", text="only you")
    msg = emu.find(resp["message_ts"])
    assert msg.ephemeral_to == "U0BOB" and msg.text == "only you"
    assert client.conversations_history(channel=CHANNEL)["messages"] == []


@pytest.mark.parametrize(
    "kwargs, error, detail",
    [
        ({"text": "t", "blocks": [{"type": "divider"}] * 51}, "invalid_blocks",
         "no more than 50 items allowed [json-pointer:/blocks]"),
        ({"text": "t", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]},
         "invalid_blocks",
         "must be less than 3001 characters [json-pointer:/blocks/0/text/text]"),
        ({"text": "x" * 40_001}, "msg_too_long", None),
        ({"text": ""}, "no_text", None),
        ({"text": "hi", "channel": ""}, "channel_not_found", None),
    ],
)
@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_message_limits(client, emu, kwargs, error, detail):
    """Slack's limits answer with Slack's error codes and nothing is stored."""
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(**{"channel": CHANNEL, **kwargs})
    assert exc.value.response["error"] == error
    if detail:
        assert detail in exc.value.response["errors"]
    assert emu.messages() == []


def test_limits_at_the_edge_are_accepted(client, emu):
    """Exactly 50 blocks, a 3,000-char section and 40,000 chars of text are fine."""
    client.chat_postMessage(channel=CHANNEL, text="t", blocks=[{"type": "divider"}] * 50)
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3000}}
    client.chat_postMessage(channel=CHANNEL, text="t", blocks=[section])
    client.chat_postMessage(channel=CHANNEL, text="x" * 40_000)
    assert len(emu.messages()) == 3


def test_ratelimit_is_retried_by_the_sdk_handler(client, emu):
    """One 429 with Retry-After is retried by RateLimitErrorRetryHandler; without it the SDK raises."""
    emu.ratelimit("chat.postMessage", times=1, retry_after=1)
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel=CHANNEL, text="first")
    assert exc.value.response.status_code == 429 and exc.value.response["error"] == "ratelimited"
    assert exc.value.response.headers["Retry-After"] == "1"

    emu.ratelimit("chat.postMessage", times=1, retry_after=1)
    retrying = WebClient(token=emu.bot_token, base_url=emu.api_url,
                         retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
    started = time.monotonic()
    assert retrying.chat_postMessage(channel=CHANNEL, text="second")["ok"]
    assert time.monotonic() - started >= 1
    assert [m.text for m in emu.messages()] == ["second"]
    assert len(emu.calls_to("chat.postMessage")) == 3  # every attempt is recorded


def test_reactions_add(client, emu):
    """reactions.add records the bot's reaction once and then answers already_reacted."""
    ts = client.chat_postMessage(channel=CHANNEL, text="x")["ts"]
    client.reactions_add(channel=CHANNEL, timestamp=ts, name="eyes")
    assert emu.find(ts).reactions == {"eyes": [emu.bot_user_id]}
    with pytest.raises(SlackApiError) as exc:
        client.reactions_add(channel=CHANNEL, timestamp=ts, name="eyes")
    assert exc.value.response["error"] == "already_reacted"


def test_files_upload_v2_lands_in_the_thread(client, emu):
    """files_upload_v2's three steps create a message with the file in the thread."""
    parent = client.chat_postMessage(channel=CHANNEL, text="incident")["ts"]
    resp = client.files_upload_v2(channel=CHANNEL, thread_ts=parent, content="line 1\nline 2",
                                  filename="journal.txt", title="Journal", initial_comment="logs attached")
    assert resp["file"]["title"] == "Journal"
    reply = emu.thread(CHANNEL, parent)[1]
    assert reply.text == "logs attached" and reply.thread_ts == parent
    assert reply.files == [{"id": resp["file"]["id"], "name": "journal.txt", "title": "Journal",
                            "content": "line 1\nline 2"}]


def test_usergroups(client, emu):
    """usergroups.list resolves a handle to an id and usergroups.users.list returns its members."""
    groups = client.usergroups_list(include_users=True)["usergroups"]
    oncall = next(g for g in groups if g["handle"] == "oncall")
    assert oncall["id"] == "SONCALL" and oncall["users"] == ["U0ALICE", "U0BOB"]
    assert client.usergroups_users_list(usergroup="SONCALL")["users"] == ["U0ALICE", "U0BOB"]
    with pytest.raises(SlackApiError) as exc:
        client.usergroups_users_list(usergroup="SNOPE")
    assert exc.value.response["error"] == "no_such_subteam"


def test_views_open_trigger_rules(client, emu, bot):
    """A fresh trigger_id opens a view once; reused, unknown and 3-s-old triggers fail as in Slack."""
    view = {"type": "modal", "callback_id": "confirm", "title": {"type": "plain_text", "text": "Confirm"},
            "blocks": [{"type": "input", "block_id": "why", "label": {"type": "plain_text", "text": "Why"},
                        "element": {"type": "plain_text_input", "action_id": "text"}}]}
    emu.slash_command("fix")
    trigger = bot.form()["trigger_id"]
    opened = client.views_open(trigger_id=trigger, view=view)["view"]
    assert opened["callback_id"] == "confirm" and emu.last_view["id"] == opened["id"]
    for trigger_id, error in [(trigger, "exchanged_trigger_id"), ("123.456.abc", "invalid_trigger_id")]:
        with pytest.raises(SlackApiError) as exc:
            client.views_open(trigger_id=trigger_id, view=view)
        assert exc.value.response["error"] == error
    emu.slash_command("fix")
    emu.advance(3.5)
    with pytest.raises(SlackApiError) as exc:
        client.views_open(trigger_id=bot.form()["trigger_id"], view=view)
    assert exc.value.response["error"] == "expired_trigger_id"


def test_subscribe_and_wait_for(client, emu):
    """Subscribers see posts, updates and reactions; wait_for times out listing recent messages."""
    seen: list[tuple[str, str]] = []
    emu.subscribe(lambda kind, msg: seen.append((kind, msg.text)))
    ts = client.chat_postMessage(channel=CHANNEL, text="a")["ts"]
    client.chat_update(channel=CHANNEL, ts=ts, text="b")
    client.reactions_add(channel=CHANNEL, timestamp=ts, name="eyes")
    assert seen == [("post", "a"), ("update", "b"), ("reaction", "b")]
    assert emu.wait_for(lambda m: m.text == "b", timeout=1).ts == ts
    with pytest.raises(TimeoutError, match="text='b'"):
        emu.wait_for(lambda m: m.text == "never", timeout=0.1)


# ------------------------------------------------------------- sending to the bot


def test_slash_command_is_signed_form_and_ack_is_recorded(emu, bot):
    """A slash command is a signed form body with Slack's fields; a visible ack becomes an ephemeral message."""
    bot.reply_body, bot.reply_type = json.dumps({"text": "working on it"}).encode(), "application/json"
    resp = emu.slash_command("status api", user="U0BOB")
    assert resp.status_code == 200
    req = bot.requests[-1]
    assert req["valid"] and req["headers"]["content-type"] == "application/x-www-form-urlencoded"
    form = bot.form()
    keys = ("command", "text", "user_id", "user_name", "channel_id", "channel_name", "team_id")
    assert {k: form[k] for k in keys} == {
        "command": "/nexy", "text": "status api", "user_id": "U0BOB", "user_name": "bob",
        "channel_id": CHANNEL, "channel_name": "ops", "team_id": "T0SANDBOX"}
    assert set(form) >= {"token", "team_domain", "api_app_id", "is_enterprise_install", "response_url", "trigger_id"}
    assert form["response_url"].startswith(emu.url + "/commands/")
    ack = emu.messages(CHANNEL)[0]
    assert ack.text == "working on it" and ack.ephemeral_to == "U0BOB" and ack.user == emu.bot_user_id


def test_stale_or_foreign_signatures_fail_verification(emu, bot):
    """A 10-minute-old timestamp or another signing secret does not verify."""
    emu.slash_command("status", timestamp=int(time.time()) - 600)
    emu.slash_command("status", signing_secret="not-the-secret")
    assert [r["valid"] for r in bot.requests] == [False, False]


def test_response_url_five_uses_and_thirty_minutes(emu, bot):
    """response_url posts ephemeral/in_channel messages, replaces the original, stops after 5 uses and 30 min."""
    emu.slash_command("deploy")
    url = bot.form()["response_url"]
    assert httpx.post(url, json={"text": "step 1"}).json() == {"ok": True}
    first = emu.messages(CHANNEL)[-1]
    assert first.ephemeral_to == "U0ALICE"
    httpx.post(url, json={"text": "step 1 done", "replace_original": True})
    assert emu.find(first.ts).text == "step 1 done" and emu.find(first.ts).edits == 1
    httpx.post(url, json={"text": "for everyone", "response_type": "in_channel"})
    assert emu.messages(CHANNEL)[-1].ephemeral_to is None
    httpx.post(url, json={"delete_original": True})
    assert httpx.post(url, json={"text": "fifth"}).status_code == 200
    sixth = httpx.post(url, json={"text": "sixth"})
    assert (sixth.status_code, sixth.text) == (404, "used_url")
    assert [m.text for m in emu.messages(CHANNEL)] == ["step 1 done", "fifth"]

    emu.slash_command("deploy")
    emu.advance(30 * 60 + 1)
    expired = httpx.post(bot.form()["response_url"], json={"text": "late"})
    assert (expired.status_code, expired.text) == (404, "expired_url")


def test_events_are_json_envelopes_with_retry_headers(emu, bot, client):
    """reaction_added is a signed event_callback envelope with item_user; retries carry Slack's headers."""
    ts = client.chat_postMessage(channel=CHANNEL, text="deploy failed")["ts"]
    emu.reaction_added("white_check_mark", user="U0ALICE", channel=CHANNEL, ts=ts, event_id="Ev0001")
    emu.reaction_added("white_check_mark", user="U0ALICE", channel=CHANNEL, ts=ts, event_id="Ev0001", retry_num=1)
    emu.retry_last(retry_num=2)
    first, second, third = bot.requests
    assert all(r["valid"] for r in bot.requests)
    assert "x-slack-retry-num" not in first["headers"]
    assert (second["headers"]["x-slack-retry-num"], second["headers"]["x-slack-retry-reason"]) == ("1", "http_timeout")
    assert third["headers"]["x-slack-retry-num"] == "2" and third["body"] == second["body"]
    envelope = json.loads(first["body"])
    assert first["headers"]["content-type"] == "application/json"
    assert envelope["type"] == "event_callback" and envelope["event_id"] == "Ev0001"
    assert set(envelope) >= {"token", "team_id", "api_app_id", "event_time", "authorizations",
                             "is_ext_shared_channel", "event_context"}
    assert envelope["event"] == {"type": "reaction_added", "user": "U0ALICE", "reaction": "white_check_mark",
                                 "item": {"type": "message", "channel": CHANNEL, "ts": ts},
                                 "item_user": emu.bot_user_id, "event_ts": envelope["event"]["event_ts"]}
    assert emu.find(ts).reactions == {"white_check_mark": ["U0ALICE"]}
    emu.reaction_removed("white_check_mark", user="U0ALICE", channel=CHANNEL, ts=ts)
    assert emu.find(ts).reactions == {}
    assert json.loads(bot.requests[-1]["body"])["event"]["type"] == "reaction_removed"


def test_app_mention_stores_the_user_message(emu, bot):
    """app_mention stores the user's message (in its thread) and sends its event."""
    emu.app_mention("<@U0NEXYBOT> status", user="U0ALICE", channel=CHANNEL)
    parent = emu.messages(CHANNEL)[0]
    emu.app_mention("<@U0NEXYBOT> again", user="U0ALICE", channel=CHANNEL, thread_ts=parent.ts)
    event = json.loads(bot.requests[-1]["body"])["event"]
    assert event["type"] == "app_mention" and event["thread_ts"] == parent.ts
    assert event["blocks"][0]["elements"][0]["elements"][0] == {"type": "user", "user_id": "U0NEXYBOT"}
    assert emu.find(event["ts"]).thread_ts == parent.ts


def test_block_action_payload_and_response_url(emu, bot, client):
    """A click is a signed payload= form with block_actions fields; its response_url can replace the message."""
    ts = client.chat_postMessage(channel=CHANNEL, text="approve?", blocks=_button_blocks())["ts"]
    emu.block_action(user="U0CAROL", channel=CHANNEL, message_ts=ts, action_id="approve", value="run-1")
    assert bot.requests[-1]["valid"]
    payload = bot.payload()
    assert payload["type"] == "block_actions" and payload["user"]["id"] == "U0CAROL"
    assert payload["container"] == {"type": "message", "message_ts": ts, "channel_id": CHANNEL, "is_ephemeral": False}
    assert payload["message"]["ts"] == ts and payload["message"]["blocks"] == _button_blocks()
    action = payload["actions"][0]
    assert (action["action_id"], action["block_id"], action["value"]) == ("approve", "decide", "run-1")
    assert action["type"] == "button" and action["text"]["text"] == "Approve"
    assert payload["trigger_id"] and payload["response_url"].startswith(emu.url + "/actions/")
    httpx.post(payload["response_url"], json={"text": "approved by carol", "replace_original": True})
    assert emu.find(ts).text == "approved by carol" and emu.find(ts).edits == 1


def test_view_submission_payload(emu, bot, client):
    """view_submission carries the opened view with state.values and private_metadata."""
    emu.slash_command("fix")
    client.views_open(trigger_id=bot.form()["trigger_id"],
                      view={"type": "modal", "callback_id": "confirm", "private_metadata": "run-7",
                            "title": {"type": "plain_text", "text": "Confirm"}, "blocks": []})
    values = {"why": {"text": {"type": "plain_text_input", "value": "disk full"}}}
    emu.view_submission(user="U0ALICE", callback_id="confirm", values=values)
    payload = bot.payload()
    assert payload["type"] == "view_submission" and bot.requests[-1]["valid"]
    assert payload["view"]["id"] == emu.last_view["id"] and payload["view"]["state"]["values"] == values
    assert payload["view"]["private_metadata"] == "run-7"


# ---------------------------------------------------------- real Bolt app end to end


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def test_bolt_app_round_trip(emu):
    """A real Bolt app verifies the emulator's requests, acks, responds and posts through it."""
    app = App(token=emu.bot_token, signing_secret=emu.signing_secret,
              client=WebClient(token=emu.bot_token, base_url=emu.api_url))

    @app.command("/nexy")
    def nexy(ack, respond, command, client):
        ack("on it")
        respond(f"done: {command['text']}")
        client.chat_postMessage(channel=command["channel_id"], text="incident", blocks=_button_blocks())

    @app.event("app_mention")
    def mention(event, say):
        say(text="pong", thread_ts=event["ts"])

    @app.action("approve")
    def approve(ack, respond, body):
        ack()
        respond(text=f"approved by {body['user']['id']}", replace_original=True)

    server = make_server("127.0.0.1", 0, SlackRequestHandler(app), server_class=_ThreadingWSGIServer,
                         handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    emu.bot_url = f"http://127.0.0.1:{server.server_port}/slack/events"
    try:
        assert emu.slash_command("status api").status_code == 200
        assert emu.wait_for(lambda m: m.text == "on it").ephemeral_to == "U0ALICE"
        emu.wait_for(lambda m: m.text == "done: status api")
        incident = emu.wait_for(lambda m: m.text == "incident" and m.ephemeral_to is None)
        emu.block_action(user="U0BOB", channel=CHANNEL, message_ts=incident.ts, action_id="approve", value="run-1")
        emu.wait_for(lambda m: m.ts == incident.ts and m.text == "approved by U0BOB")
        assert emu.app_mention("<@U0NEXYBOT> ping", user="U0ALICE", channel=CHANNEL).status_code == 200
        mention_msg = emu.wait_for(lambda m: m.text == "<@U0NEXYBOT> ping")
        reply = emu.wait_for(lambda m: m.text == "pong")
        assert isinstance(reply, Message) and reply.thread_ts == mention_msg.ts
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------ permalinks, Home tab, checkboxes


def test_get_permalink_for_a_message_and_a_reply(client, emu):
    """chat.getPermalink gives Slack's archive link; a reply's link names its thread; an unknown ts is refused."""
    parent = client.chat_postMessage(channel=CHANNEL, text="incident")["ts"]
    reply = client.chat_postMessage(channel=CHANNEL, text="result", thread_ts=parent)["ts"]
    link = client.chat_getPermalink(channel=CHANNEL, message_ts=parent)["permalink"]
    assert link == f"https://sandbox.slack.com/archives/{CHANNEL}/p{parent.replace('.', '')}"
    in_thread = client.chat_getPermalink(channel=CHANNEL, message_ts=reply)["permalink"]
    assert in_thread.endswith(f"p{reply.replace('.', '')}?thread_ts={parent}&cid={CHANNEL}")
    with pytest.raises(SlackApiError) as missing:
        client.chat_getPermalink(channel=CHANNEL, message_ts="1.000001")
    assert missing.value.response["error"] == "message_not_found"


def _home(blocks: list) -> dict:
    return {"type": "home", "blocks": blocks}


def test_views_publish_stores_a_valid_home_view(client, emu, bot):
    """A valid Home view is published for the user, and app_home_opened carries it back, signed."""
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": "nexy"}},
              {"type": "section", "text": {"type": "mrkdwn", "text": "*Open incidents*"}}, {"type": "divider"}]
    view = client.views_publish(user_id="U0ALICE", view=_home(blocks))["view"]
    assert view["type"] == "home" and view["blocks"] == blocks and view["hash"]
    assert emu.home_views["U0ALICE"]["id"] == view["id"]
    emu.app_home_opened(user="U0ALICE")
    event = json.loads(bot.requests[-1]["body"])["event"]
    assert bot.requests[-1]["valid"] and event["type"] == "app_home_opened" and event["tab"] == "home"
    assert event["view"]["id"] == view["id"]
    with pytest.raises(SlackApiError) as stale:
        client.views_publish(user_id="U0ALICE", view=_home(blocks), hash="1.stale")
    assert stale.value.response["error"] == "hash_conflict"


@pytest.mark.parametrize("view, pointer", [
    ({"type": "modal", "blocks": []}, "/view/type"),
    ({"type": "home"}, "missing required field: blocks"),
    (_home([{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}] * 101), "no more than 100 items"),
    (_home([{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]), "/view/blocks/0/text/text"),
    (_home([{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}]), "/view/blocks/0/text/type"),
    (_home([{"type": "file", "external_id": "x", "source": "remote"}]), "failed to match all allowed schemas"),
])
def test_views_publish_rejects_an_invalid_view_as_slack_does(client, emu, view, pointer):
    """An invalid Home view gets invalid_arguments with Slack's response_metadata messages, and is not stored."""
    with pytest.raises(SlackApiError) as refused:
        client.views_publish(user_id="U0ALICE", view=view)
    response = refused.value.response
    assert response["error"] == "invalid_arguments"
    assert any(pointer in message for message in response["response_metadata"]["messages"]), response.data
    assert all(message.startswith("[ERROR] ") for message in response["response_metadata"]["messages"])
    assert "U0ALICE" not in emu.home_views


def test_checkbox_limits_and_a_tick_payload(client, emu, bot):
    """Checkbox options over Slack's limits are refused; a tick is a signed block_actions with selected_options."""
    options = [{"text": {"type": "plain_text", "text": f"item {n}"}, "value": f"v{n}"} for n in range(3)]
    element = {"type": "checkboxes", "action_id": "list", "options": options}
    too_long = {**element, "options": [{"text": {"type": "plain_text", "text": "x" * 76}, "value": "v"}]}
    with pytest.raises(SlackApiError) as refused:
        client.chat_postMessage(channel=CHANNEL, text="t", blocks=[{"type": "actions", "elements": [too_long]}])
    assert "less than 76 characters" in str(refused.value.response["response_metadata"])
    ts = client.chat_postMessage(channel=CHANNEL, text="t",
                                 blocks=[{"type": "actions", "block_id": "checklist", "elements": [element]}])["ts"]
    emu.checkboxes(user="U0BOB", channel=CHANNEL, message_ts=ts, action_id="list", selected=["v2", "v0"])
    payload = bot.payload()
    action = payload["actions"][0]
    assert bot.requests[-1]["valid"] and action["type"] == "checkboxes" and action["block_id"] == "checklist"
    assert [o["value"] for o in action["selected_options"]] == ["v0", "v2"]
    assert payload["state"]["values"]["checklist"]["list"]["selected_options"] == action["selected_options"]
