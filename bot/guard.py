"""What the web process refuses before Bolt sees a request: a timestamp that is not a number, a bad
or stale signature, a body that is not what Slack sends (not JSON, `event` or `item` not an object,
block_actions without actions, ...), and a replayed slash command or interactive payload.

Bolt answers all of these with a 500 (it assumes Slack's shapes); Slack would retry a 500, and a
5xx says "our fault" when the request was wrong. Here each gets a 4xx with a short reason.
A slash command or a click carries a fresh signature each time Slack sends it, so the same
signature twice within Slack's 5-minute window is a replay: it is answered once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from redis import Redis
from redis.exceptions import RedisError

from bot.contract import KEY_PREFIX

log = logging.getLogger(__name__)

REPLAY_WINDOW_S = 5 * 60
"""Slack's window: a request older than this is refused outright, so a signature is remembered this long."""


@dataclass(frozen=True)
class Refusal:
    """A 4xx answer: the status line and a short reason (never the body that was sent)."""

    status: str
    reason: str


class RequestGuard:
    """Checks a signed Slack request's headers and body shape; remembers signatures to refuse replays."""

    def __init__(self, signing_secret: str, redis: Redis):
        self.secret = signing_secret.encode()
        self.redis = redis

    def check(self, body: bytes, timestamp: str, signature: str, content_type: str) -> Refusal | None:
        """None when Bolt may take the request; else why not."""
        try:
            sent = int(timestamp)
        except ValueError:
            return Refusal("401 Unauthorized", "invalid timestamp")
        if abs(time.time() - sent) > REPLAY_WINDOW_S:
            return Refusal("401 Unauthorized", "stale request")
        # Over the raw bytes: slack_sdk's verifier decodes the body first and fails on non-UTF-8.
        expected = "v0=" + hmac.new(self.secret, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            return Refusal("401 Unauthorized", "invalid signature")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return Refusal("400 Bad Request", "body is not UTF-8")
        problem, replayable = _shape_problem(text, content_type)
        if problem:
            return Refusal("400 Bad Request", problem)
        if replayable and self._seen(signature):
            return Refusal("409 Conflict", "replayed request")
        return None

    def _seen(self, signature: str) -> bool:
        """Remember this signature for the window; True if it was already there. Without Redis the
        request goes on (the work it asks for needs Redis and answers that failure itself)."""
        key = f"{KEY_PREFIX}:signature:{hashlib.sha256(signature.encode()).hexdigest()}"
        try:
            return not self.redis.set(key, "1", nx=True, ex=REPLAY_WINDOW_S + 60)
        except RedisError:
            log.warning("replay check skipped: Redis unavailable")
            return False


def _shape_problem(text: str, content_type: str) -> tuple[str, bool]:
    """What is wrong with the body ('' if nothing), and whether it is a kind that must not be replayed."""
    if content_type.startswith("application/json"):
        try:
            data = json.loads(text)
        except ValueError:
            return "body is not JSON", False
        return _event_problem(data), False
    form = parse_qs(text, keep_blank_values=True)
    if "payload" in form:
        try:
            data = json.loads(form["payload"][0])
        except ValueError:
            return "payload is not JSON", True
        return _interactive_problem(data), True
    return "", "command" in form


def _event_problem(data: Any) -> str:
    if not isinstance(data, dict):
        return "body is not an object"
    if data.get("type") != "event_callback":
        return ""
    event = data.get("event")
    if not isinstance(event, dict):
        return "event is not an object"
    if "item" in event and not isinstance(event["item"], dict):
        return "event.item is not an object"
    return ""


def _interactive_problem(data: Any) -> str:
    if not isinstance(data, dict):
        return "payload is not an object"
    for key in ("user", "container", "view", "channel", "team"):
        if key in data and data[key] is not None and not isinstance(data[key], dict):
            return f"payload.{key} is not an object"
    kind = data.get("type")
    if kind == "block_actions":
        actions = data.get("actions")
        if not isinstance(actions, list) or not actions or not all(isinstance(a, dict) for a in actions):
            return "block_actions without actions"
    if kind in ("view_submission", "view_closed") and not isinstance(data.get("view"), dict):
        return f"{kind} without a view"
    return ""
