"""End to end: `/nexy health` (runbook/health.py) as a signed command over HTTP, Redis, a worker, and the
thread in the Slack emulator."""
from __future__ import annotations

import json


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
