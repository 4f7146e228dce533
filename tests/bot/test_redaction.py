"""Secrets never leave: redaction of text, blocks and logs, and what reaches Slack."""
from __future__ import annotations

import logging

from bot.redaction import MARK, RedactingFilter, redact, redact_json
from bot.slack_client import SlackClient, web_client

SECRETS = {
    "GEMINI_API_KEY=AIzaSyA1234567890abcdefghijklmnopqrstuv": "AIzaSyA1234567890",
    "token xoxb-1234567890-abcdefghijkl": "xoxb-1234567890",
    "xapp-1-A0123-456789-abcdef": "xapp-1-A0123",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789": "ghp_abcdefghij",
    "Authorization: Bearer abc.def-ghi_jkl012345": "abc.def-ghi",
    "password: hunter22hunter": "hunter22",
    '{"client_secret": "s3cr3t-value"}': "s3cr3t-value",
    "https://user:p4ssw0rd@example.com/x": "p4ssw0rd",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----": "MIIEabc",
}


def test_known_secret_shapes_are_redacted():
    """Each known secret shape is replaced by the marker, leaving none of its value."""
    for text, fragment in SECRETS.items():
        out = redact(text)
        assert fragment not in out and MARK in out, (text, out)


def test_ordinary_text_is_kept():
    """Runbook output without secrets passes unchanged."""
    for text in ("keys=3 status ok", "API key expired. Please renew the API key.", "monkey=banana",
                 "ExecStart=/home/azureuser/voice-assistant/venv/bin/python3 server/main.py"):
        assert redact(text) == text


def test_blocks_are_redacted_deeply():
    """Strings anywhere inside Block Kit JSON are redacted."""
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "key=AIzaSyA1234567890abcdefghijklmnopqrstuv"}}]
    assert "AIzaSy" not in str(redact_json(blocks))


def test_log_records_are_redacted():
    """A log record's formatted message and its exception text are redacted."""
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "token %s", ("xoxb-1234567890-abcdefghijkl",), None)
    try:
        raise RuntimeError("GEMINI_API_KEY=AIzaSyA1234567890abcdefghijklmnopqrstuv")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    RedactingFilter().filter(record)
    assert "xoxb-1234567890" not in record.getMessage()
    assert "AIzaSy" not in record.exc_text


def test_posted_messages_are_redacted_at_slack(slack, settings):
    """What arrives at the Slack emulator carries no secret, in text or blocks."""
    client = SlackClient(web_client(settings))
    secret = "GEMINI_API_KEY=AIzaSyA1234567890abcdefghijklmnopqrstuv"
    client.post("C0OPS", secret, [{"type": "section", "text": {"type": "mrkdwn", "text": secret}}])
    client.upload("C0OPS", None, f"line\n{secret}\n", "out.txt", secret)
    for method, params in slack.calls:
        assert "AIzaSyA1234567890" not in str(params), method
    assert all("AIzaSyA1234567890" not in f.get("content", "") for m in slack.messages() for f in m.files)


def test_a_one_megabyte_line_redacts_in_linear_time():
    """Lines built to make a pattern backtrack (dotted words, repeated flags, key-like lines) take seconds, not hours."""
    import time

    for line in ("a." * 500_000, "mysql " + "-p " * 333_000, ("QUJD" * 16 + "\n") * 15_000 + "-----END RSA PRIVATE KEY-----"):
        started = time.perf_counter()
        redact(line)
        assert time.perf_counter() - started < 15, line[:20]


def test_a_value_remembered_for_a_while_is_forgotten_after_it_and_forget_is_at_once():
    """`remember(..., ttl_s=)` redacts a value only that long; `forget` drops one at once."""
    import time

    from bot.redaction import forget, is_remembered, remember

    remember("held-briefly-value-0051", ttl_s=0.05)
    remember("held-until-forgotten-0052")
    assert redact("a held-briefly-value-0051 b") == f"a {MARK}:known b"
    time.sleep(0.1)
    assert redact("a held-briefly-value-0051 b") == "a held-briefly-value-0051 b"
    forget("held-until-forgotten-0052")
    assert not is_remembered("held-until-forgotten-0052") and "0052" in redact("held-until-forgotten-0052")
