"""The web side through a signed /nexy command over HTTP: typos and bad arguments answered at once, help,
signature and replay checks, the channel list, and /healthz. `/nexy health` itself is in
tests/runbook/test_health.py."""
from __future__ import annotations

import httpx


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


def test_help_lists_every_command(bot, slack, registry):
    """`/nexy help` lists the commands from the command table."""
    text = slack.slash_command("help").json()["text"]
    for name in registry.commands:
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
