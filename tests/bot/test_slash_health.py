"""End to end: a signed /nexy command over HTTP, Redis, a worker, and the thread in the Slack emulator."""
from __future__ import annotations

import json

import httpx


def _thread(slack, channel="C0OPS"):
    parents = [m for m in slack.messages(channel) if m.thread_ts is None and not m.ephemeral_to]
    assert len(parents) == 1, [m.text for m in parents]
    return slack.thread(channel, parents[0].ts)


def test_health_posts_parent_and_thread_reply(bot, slack, work):
    """`/nexy health` acks at once, then the worker posts the incident parent and the health result in its thread."""
    response = slack.slash_command("health", user="U0ALICE", channel="C0OPS")
    assert response.status_code == 200
    assert "queued" in response.json()["text"]
    assert slack.calls_to("chat.postMessage") == []  # the web process posts nothing itself
    work()
    parent, reply = _thread(slack)
    assert "Incident INC-1" in parent.text
    assert "all 2 endpoints up" in reply.text
    assert "2.4.0 build 240" in reply.text
    assert "U0ALICE" in json.dumps(reply.blocks)


def test_second_command_attaches_to_open_incident(bot, slack, work, nexy_server):
    """A later command in the same channel replies in the same incident thread, not a new one."""
    slack.slash_command("health", channel="C0OPS")
    work()
    nexy_server.up = False
    slack.slash_command("health", user="U0BOB", channel="C0OPS")
    work()
    thread = _thread(slack)
    assert len(thread) == 3
    assert "all 2 endpoints down" in thread[2].text


def test_versions_disagree_and_expected_mismatch(serve_bot, make_settings, slack, work, nexy_server):
    """The reply says when the endpoints are up but report a release other than the expected one."""
    settings = make_settings(nexy_expected_version="2.5.0.250")
    serve_bot(settings)
    slack.slash_command("health")
    work(settings)
    reply = _thread(slack)[1]
    assert "does not match" in reply.text and "2.5.0.250" in reply.text


def test_unknown_command_gets_help_with_suggestion(bot, slack, redis):
    """A typo answers ephemerally with the command list and a 'did you mean', and queues nothing."""
    response = slack.slash_command("helth")
    text = response.json()["text"]
    assert response.json()["response_type"] == "ephemeral"
    assert "Did you mean `health`?" in text and "/nexy help" in text
    assert redis.llen("rq:queue:io") == 0


def test_bad_argument_says_what_is_allowed(bot, slack):
    """An argument to a command that takes none says so, with the usage."""
    text = slack.slash_command("health now").json()["text"]
    assert "takes no arguments" in text and "Usage: `/nexy health`" in text


def test_help_lists_every_command(bot, slack):
    """`/nexy help` lists the commands from the command table."""
    from bot.commands import COMMANDS

    text = slack.slash_command("help").json()["text"]
    for name in COMMANDS:
        assert f"/nexy {name}" in text


def test_bad_signature_is_rejected(bot, slack):
    """A request signed with another secret gets 401 and queues nothing."""
    response = slack.slash_command("health", signing_secret="not-the-secret")
    assert response.status_code == 401


def test_stale_timestamp_is_rejected(bot, slack):
    """A correctly signed request older than five minutes gets 401 (replay protection)."""
    import time

    response = slack.slash_command("health", timestamp=int(time.time()) - 6 * 60)
    assert response.status_code == 401


def test_channel_outside_allowed_list_is_refused(serve_bot, make_settings, slack, redis):
    """With NEXY_CHANNELS set, a command elsewhere is refused with where the bot answers."""
    serve_bot(make_settings(nexy_channels="C0DEPLOYS"))
    text = slack.slash_command("health", channel="C0OPS").json()["text"]
    assert "only in <#C0DEPLOYS>" in text
    assert redis.llen("rq:queue:io") == 0


def test_healthz(bot, redis):
    """GET /healthz answers 200 with Redis up."""
    response = httpx.get(f"{bot}/healthz")
    assert response.status_code == 200 and response.json()["redis"] == "up"
