"""What the web process refuses before Bolt sees a request, and in what order: a timestamp that is
missing, not a number or outside Slack's 5-minute window (before the body is read); a body over
`MAX_BODY_BYTES` (before it is read when Content-Length says so, after at most one byte more
otherwise); a bad signature; a body that is not what Slack sends (see `SCHEMAS`); and a replayed
slash command or interactive payload.

Bolt answers a wrong shape with a 500 (it assumes Slack's shapes), and so would the handlers: Slack
would retry a 500, and a 5xx says "our fault" when the request was wrong. Here each gets a 4xx with
a short reason. The shapes are declared once, field by field, as the handlers read them (`SCHEMAS`),
and checked the same way for a signed HTTP body and a Socket Mode envelope (`shape_problem`).
A slash command or a click carries a fresh signature each time Slack sends it, so the same
signature twice while its timestamp is still valid is a replay: it is answered once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import parse_qs

from redis import Redis
from redis.exceptions import RedisError

from bot.contract import KEY_PREFIX

log = logging.getLogger(__name__)

REPLAY_WINDOW_S = 5 * 60
"""Slack's window: a request whose timestamp is further than this from now (either way) is refused."""
REPLAY_MARGIN_S = 60
"""How much longer than its timestamp stays valid a signature is remembered (clock steps, slow requests)."""
MAX_BODY_BYTES = 1024 * 1024
"""The largest body taken: Slack's payloads are a few KB (a view submission with every block full
stays well under this); anything bigger is refused before it is read."""


@dataclass(frozen=True)
class Refusal:
    """A 4xx answer: the status line and a short reason (never the body that was sent)."""

    status: str
    reason: str


class Kind(str, Enum):
    """The kinds of request Slack sends, as `SCHEMAS` knows them."""

    EVENT = "event"  # Events API: a JSON body (HTTP) or an `events_api` envelope
    COMMAND = "command"  # a slash command: a form (HTTP) or a `slash_commands` envelope
    INTERACTIVE = "interactive"  # a click or a form: `payload=` JSON in a form, or an `interactive` envelope


@dataclass(frozen=True)
class Field:
    """One field a handler (or Bolt) reads. `path` names it from the payload's top: keys joined by
    dots, `*` for every value of an object, `[]` for every item of a list. A field absent (or
    null, when `nullable`) is fine unless `required`."""

    path: str
    kind: type  # str, dict or list
    required: bool = False
    nullable: bool = False
    nonempty: bool = False  # a list that must hold at least one item


def _f(path: str, kind: type, *, required: bool = False, nullable: bool = False, nonempty: bool = False) -> Field:
    return Field(path, kind, required, nullable, nonempty)


_REACTION = (
    _f("event.user", str, required=True),
    _f("event.reaction", str, required=True),
    _f("event.item", dict, required=True),
    _f("event.item.type", str, required=True),
    _f("event.item.channel", str),
    _f("event.item.ts", str),
)
_ACTOR = (_f("user", dict, required=True), _f("user.id", str, required=True))

SCHEMAS: dict[tuple[Kind, str], tuple[Field, ...]] = {
    # Every event_callback (event ids are the dedupe key; Bolt reads team and app ids).
    (Kind.EVENT, "*"): (
        _f("event", dict, required=True),
        _f("event.type", str, required=True),
        _f("event_id", str),
        _f("team_id", str),
        _f("api_app_id", str),
        _f("event.item", dict),
    ),
    (Kind.EVENT, "app_mention"): (
        _f("event.text", str, required=True),
        _f("event.user", str),  # a mention by another app may carry only its bot_id
        _f("event.channel", str, required=True),
        _f("event.thread_ts", str),
    ),
    (Kind.EVENT, "reaction_added"): _REACTION,
    (Kind.EVENT, "reaction_removed"): _REACTION,
    (Kind.EVENT, "app_home_opened"): (_f("event.user", str, required=True), _f("event.tab", str)),
    # Every slash command; an HTTP form field sent twice is refused before this (`_form`).
    (Kind.COMMAND, "*"): (
        _f("command", str, required=True),
        _f("text", str),
        _f("user_id", str, required=True),
        _f("channel_id", str, required=True),
        _f("team_id", str),
        _f("trigger_id", str),
        _f("response_url", str),
    ),
    # Every interactive payload.
    (Kind.INTERACTIVE, "*"): (
        _f("type", str, required=True),
        _f("user", dict, nullable=True),
        _f("user.id", str),
        _f("team", dict, nullable=True),
        _f("channel", dict, nullable=True),
        _f("channel.id", str),
        _f("container", dict, nullable=True),
        _f("container.channel_id", str),
        _f("container.message_ts", str),
        _f("container.thread_ts", str),
        _f("trigger_id", str),
        _f("view", dict, nullable=True),
    ),
    (Kind.INTERACTIVE, "block_actions"): (
        *_ACTOR,
        _f("actions", list, required=True, nonempty=True),
        _f("actions[]", dict, required=True),
        _f("actions[].action_id", str, required=True),
        _f("actions[].block_id", str),
        _f("actions[].value", str),
        _f("actions[].selected_options", list),
        _f("actions[].selected_options[]", dict, required=True),
        _f("actions[].selected_options[].value", str, required=True),
    ),
    (Kind.INTERACTIVE, "view_submission"): (
        *_ACTOR,
        _f("view", dict, required=True),
        _f("view.type", str, required=True),
        _f("view.callback_id", str, required=True),
        _f("view.private_metadata", str),
        _f("view.state", dict, required=True),
        _f("view.state.values", dict, required=True),
        _f("view.state.values.*", dict, required=True),
        _f("view.state.values.*.*", dict, required=True),
        _f("view.state.values.*.*.value", str, nullable=True),  # an empty input is null
    ),
    (Kind.INTERACTIVE, "view_closed"): (
        *_ACTOR,
        _f("view", dict, required=True),
        _f("view.type", str, required=True),
        _f("view.callback_id", str, required=True),
    ),
}
"""The shape of each kind of payload, as far as the handlers and Bolt read it: (kind, "*") holds for
every payload of that kind, (kind, type) for one type (the event's or the interactive payload's)."""

_TYPE_NAMES: dict[type, str] = {str: "a string", dict: "an object", list: "a list"}


class RequestGuard:
    """Checks a signed Slack request's headers and body shape; remembers signatures to refuse replays."""

    def __init__(self, signing_secret: str, redis: Redis, clock: Callable[[], float] = time.time):
        self.secret = signing_secret.encode()
        self.redis = redis
        self.clock = clock

    def check_headers(self, timestamp: str, content_length: str | None) -> Refusal | None:
        """What can be refused before the body is read: its timestamp, and its size as announced."""
        try:
            sent = int(timestamp)
        except ValueError:
            return Refusal("401 Unauthorized", "missing timestamp" if not timestamp else "invalid timestamp")
        if abs(self.clock() - sent) > REPLAY_WINDOW_S:
            return Refusal("401 Unauthorized", "stale request")
        if content_length:
            try:
                length = int(content_length)
            except ValueError:
                return Refusal("400 Bad Request", "invalid Content-Length")
            if length > MAX_BODY_BYTES:
                return Refusal("413 Content Too Large", f"body over {MAX_BODY_BYTES} bytes")
        return None

    def check(self, body: bytes, timestamp: str, signature: str, content_type: str) -> Refusal | None:
        """None when Bolt may take the request; else why not."""
        refused = self.check_headers(timestamp, None)
        if refused is not None:
            return refused
        if len(body) > MAX_BODY_BYTES:
            return Refusal("413 Content Too Large", f"body over {MAX_BODY_BYTES} bytes")
        # Over the raw bytes: slack_sdk's verifier decodes the body first and fails on non-UTF-8.
        expected = "v0=" + hmac.new(self.secret, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            return Refusal("401 Unauthorized", "invalid signature")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return Refusal("400 Bad Request", "body is not UTF-8")
        problem, replayable = _body_problem(text, content_type)
        if problem:
            return Refusal("400 Bad Request", problem)
        if replayable and self._seen(signature, int(timestamp)):
            return Refusal("409 Conflict", "replayed request")
        return None

    def _seen(self, signature: str, sent: int) -> bool:
        """Remember this signature while its timestamp is valid (up to `sent + REPLAY_WINDOW_S`, later
        than five minutes from now for a timestamp ahead of our clock), plus a margin; True if it was
        already there. Without Redis the request goes on (the work it asks for needs Redis and
        answers that failure itself)."""
        key = f"{KEY_PREFIX}:signature:{hashlib.sha256(signature.encode()).hexdigest()}"
        ttl = max(int(sent + REPLAY_WINDOW_S - self.clock()), 0) + REPLAY_MARGIN_S
        try:
            return not self.redis.set(key, "1", nx=True, ex=ttl)
        except RedisError:
            log.warning("replay check skipped: Redis unavailable")
            return False


def shape_problem(kind: Kind, data: Any) -> str:
    """What is wrong with a parsed payload of this kind ('' if nothing), by `SCHEMAS`."""
    top = {Kind.EVENT: "body", Kind.COMMAND: "command", Kind.INTERACTIVE: "payload"}[kind]
    if not isinstance(data, dict):
        return f"{top} is not an object"
    if kind is Kind.EVENT and data.get("type") != "event_callback":
        return ""  # url_verification and the like: Bolt answers them
    problem = _fields_problem(data, SCHEMAS[kind, "*"], top)
    if problem:
        return problem
    subtype = data["event"]["type"] if kind is Kind.EVENT else data.get("type")
    return _fields_problem(data, SCHEMAS.get((kind, str(subtype)), ()), top)


def _fields_problem(data: dict, fields: tuple[Field, ...], top: str) -> str:
    for spec in fields:
        problem = _field_problem(data, spec.path.replace("[]", ".[]").split("."), spec, top)
        if problem:
            return problem
    return ""


def _field_problem(value: Any, steps: list[str], spec: Field, at: str) -> str:
    """Walk `steps` down from `value` (`at` names where it is); the first problem found, or ''."""
    if not steps:
        if value is None and spec.nullable:
            return ""
        if not isinstance(value, spec.kind):
            return f"{at} is not {_TYPE_NAMES[spec.kind]}"
        if spec.nonempty and not value:
            return f"{at} is empty"
        return ""
    step, rest = steps[0], steps[1:]
    if step == "[]":
        items = enumerate(value) if isinstance(value, list) else ()
        return next((p for i, item in items if (p := _field_problem(item, rest, spec, f"{at}[{i}]"))), "")
    if not isinstance(value, dict):
        return ""  # a container of the wrong type is the problem of the field that declares it
    if step == "*":
        return next((p for k, item in value.items() if (p := _field_problem(item, rest, spec, f"{at}.{k}"))), "")
    if step not in value:
        return f"{at}.{step} is missing" if spec.required and not rest else ""
    return _field_problem(value[step], rest, spec, f"{at}.{step}")


def _body_problem(text: str, content_type: str) -> tuple[str, bool]:
    """What is wrong with the body ('' if nothing), and whether it is a kind that must not be replayed."""
    if content_type.startswith("application/json"):
        try:
            data = json.loads(text)
        except ValueError:
            return "body is not JSON", False
        return shape_problem(Kind.EVENT, data), False
    form, repeated = _form(text)
    if repeated:
        return f"form field {repeated} is repeated", True
    if "payload" in form:
        try:
            data = json.loads(form["payload"])
        except ValueError:
            return "payload is not JSON", True
        return shape_problem(Kind.INTERACTIVE, data), True
    if "command" in form:
        return shape_problem(Kind.COMMAND, form), True
    return "", False


def _form(text: str) -> tuple[dict[str, str], str]:
    """A form's fields, each sent once; else the name of one sent more than once (Bolt would take
    its first value, a proxy or a log its last)."""
    fields = parse_qs(text, keep_blank_values=True)
    repeated = next((name for name, values in fields.items() if len(values) > 1), "")
    return {name: values[0] for name, values in fields.items()}, repeated
