"""Slack's size limits: oversized messages are cut with a note and accepted, never rejected."""
from __future__ import annotations

from bot import render
from bot.slack_client import SlackClient, web_client


def _lines(char: str, size: int) -> str:
    """`size` characters of output: lines of 99 `char` and a newline."""
    return (char * 99 + "\n") * (size // 100)


def test_oversized_message_is_cut_and_accepted(slack, settings):
    """60 blocks, a 5,000-character section and 50,000 characters of text still post, marked as cut."""
    client = SlackClient(web_client(settings))
    # Lines of 100 characters, as script output comes.
    blocks = [render.section(_lines("x", 5000))] + [render.section(f"row {i}") for i in range(59)]
    client.post("C0OPS", _lines("y", 50000), blocks)
    message = slack.messages("C0OPS")[-1]
    assert len(message.blocks) == render.MAX_BLOCKS
    assert "more blocks were cut" in str(message.blocks[-1])
    assert len(message.blocks[0]["text"]["text"]) <= render.MAX_SECTION_TEXT
    assert "cut:" in message.blocks[0]["text"]["text"]
    assert len(message.text) <= render.MAX_MESSAGE_TEXT and "cut:" in message.text


def test_rate_limited_post_is_retried(slack, settings):
    """A 429 with Retry-After is waited out and the message still posts once."""
    slack.ratelimit("chat.postMessage", times=1, retry_after=0)
    SlackClient(web_client(settings)).post("C0OPS", "hello")
    assert [m.text for m in slack.messages("C0OPS")] == ["hello"]
    assert len(slack.calls_to("chat.postMessage")) == 2
