"""A local stand-in for Slack, for the tests and the terminal console.

It owns two directions of Slack's wire protocol:

* Slack -> bot: slash commands, Events API callbacks and interactive payloads (block_actions,
  view_submission), form-encoded or JSON exactly as Slack sends them and signed with
  ``X-Slack-Signature: v0=HMAC-SHA256("v0:{ts}:{body}")``. Sent with httpx to ``bot_url``.
* Slack -> bot over Socket Mode instead (``socket_mode = True``): the same payloads as envelopes on
  a WebSocket the bot opened with ``apps.connections.open`` (``sandbox/slack_socket_mode.py``);
  the ack's payload is returned the way an HTTP answer would be.
* bot -> Slack: a Web API server (``POST /api/<method>``, form-encoded or JSON; GET with a query
  string also works) with Bearer-token checks, Slack's error codes, its message limits,
  ``response_url`` hooks (5 uses, 30 minutes), ``trigger_id`` expiry (3 s), rate limiting on
  demand (HTTP 429 + ``Retry-After``) and the three-step ``files_upload_v2`` upload.
  ``conversations.history`` (newest first) and ``conversations.replies`` (the parent, then the
  replies oldest first) page as Slack does: ``limit`` (each method's default and largest,
  ``PAGE_LIMITS``; ``page_limit`` lowers both, as Slack does to 15 for an app distributed outside
  the Marketplace), ``oldest``/``latest``/``inclusive``, an opaque ``cursor`` answered by
  ``has_more`` and ``response_metadata.next_cursor`` (empty on the last page), ``invalid_cursor``
  for a cursor it did not give.

The server is stdlib only (ThreadingHTTPServer on a daemon thread); every piece of state is
guarded by one lock, and subscribers are called outside it. Time used for expiry can be moved
forward with ``advance()``; signatures always use the real clock (the bot checks them).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import logging
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from sandbox.faults import FaultSwitch
from sandbox.slack_socket_mode import ACK_TIMEOUT_S, Delivery, SocketModeServer

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 40_000
MAX_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3_000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2_000
MAX_HEADER_TEXT = 150
MAX_ACTIONS_ELEMENTS = 25
MAX_CONTEXT_ELEMENTS = 10
MAX_BLOCK_ID = 255
MAX_OPTIONS = 10
MAX_OPTION_TEXT = 75
MAX_VIEW_BYTES = 250_000
VIEW_BLOCK_TYPES = {"section", "header", "divider", "context", "actions", "image", "input", "rich_text", "video"}
TRIGGER_TTL_SECONDS = 3.0
RESPONSE_URL_USES = 5
RESPONSE_URL_TTL_SECONDS = 30 * 60
VERIFICATION_TOKEN = "sandbox-verification-token"
PAGE_LIMITS = {"conversations.history": (100, 999), "conversations.replies": (1000, 1000)}
"""Slack's default and largest `limit` per cursor-paginated method (its method reference); a larger
`limit` is cut to the largest, as Slack does."""
_USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"


@dataclass
class Message:
    """One message as the emulator stores it (bot posts, user posts, ephemeral responses)."""

    channel: str
    ts: str
    text: str
    blocks: list
    user: str
    thread_ts: str | None
    ephemeral_to: str | None = None
    files: list = field(default_factory=list)
    reactions: dict = field(default_factory=dict)
    edits: int = 0
    metadata: dict | None = None


class _ApiError(Exception):
    """A Web API failure: answered as HTTP 200 {"ok": false, "error": code, **extra}."""

    def __init__(self, error: str, **extra: Any):
        super().__init__(error)
        self.error = error
        self.extra = extra


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true", "yes")


def _validate_blocks(blocks: list, pointer: str, max_blocks: int) -> list[str]:
    """Slack's Block Kit limits, reported in Slack's own error wording."""
    errors = []
    if len(blocks) > max_blocks:
        errors.append(f"no more than {max_blocks} items allowed [json-pointer:{pointer}]")
    for i, block in enumerate(blocks):
        at = f"{pointer}/{i}"
        if not isinstance(block, dict) or not block.get("type"):
            errors.append(f"missing required field: type [json-pointer:{at}]")
            continue
        kind, text = block["type"], block.get("text")
        text_len = len(str(text.get("text", ""))) if isinstance(text, dict) else 0
        if kind == "section":
            if text_len > MAX_SECTION_TEXT:
                errors.append(f"must be less than {MAX_SECTION_TEXT + 1} characters [json-pointer:{at}/text/text]")
            fields = block.get("fields") or []
            if len(fields) > MAX_SECTION_FIELDS:
                errors.append(f"no more than {MAX_SECTION_FIELDS} items allowed [json-pointer:{at}/fields]")
            for j, fld in enumerate(fields):
                if isinstance(fld, dict) and len(str(fld.get("text", ""))) > MAX_FIELD_TEXT:
                    errors.append(
                        f"must be less than {MAX_FIELD_TEXT + 1} characters [json-pointer:{at}/fields/{j}/text]"
                    )
        elif kind == "header" and text_len > MAX_HEADER_TEXT:
            errors.append(f"must be less than {MAX_HEADER_TEXT + 1} characters [json-pointer:{at}/text/text]")
        elif kind == "actions" and len(block.get("elements") or []) > MAX_ACTIONS_ELEMENTS:
            errors.append(f"no more than {MAX_ACTIONS_ELEMENTS} items allowed [json-pointer:{at}/elements]")
        elif kind == "context" and len(block.get("elements") or []) > MAX_CONTEXT_ELEMENTS:
            errors.append(f"no more than {MAX_CONTEXT_ELEMENTS} items allowed [json-pointer:{at}/elements]")
        elements = list(block.get("elements") or []) if kind == "actions" else []
        if kind == "section" and isinstance(block.get("accessory"), dict):
            elements, element_at = [block["accessory"]], [f"{at}/accessory"]
        else:
            element_at = [f"{at}/elements/{j}" for j in range(len(elements))]
        for element, where in zip(elements, element_at):
            errors.extend(_validate_options(element, where))
        if len(str(block.get("block_id", ""))) > MAX_BLOCK_ID:
            errors.append(f"must be less than {MAX_BLOCK_ID + 1} characters [json-pointer:{at}/block_id]")
    return errors


def _validate_options(element: Any, at: str) -> list[str]:
    """Slack's limits on a checkbox group's (or a menu's) options."""
    if not isinstance(element, dict) or "options" not in element:
        return []
    options = element.get("options")
    if not isinstance(options, list) or not options:
        return [f"missing required field: options [json-pointer:{at}]"]
    errors = []
    if len(options) > MAX_OPTIONS:
        errors.append(f"no more than {MAX_OPTIONS} items allowed [json-pointer:{at}/options]")
    values = []
    for j, option in enumerate(options):
        for part in ("text", "description"):
            text = (option.get(part) or {}).get("text", "") if isinstance(option, dict) else ""
            if len(str(text)) > MAX_OPTION_TEXT:
                errors.append(f"must be less than {MAX_OPTION_TEXT + 1} characters [json-pointer:{at}/options/{j}/{part}/text]")
        values.append(option.get("value") if isinstance(option, dict) else None)
    for j, initial in enumerate(element.get("initial_options") or []):
        if not isinstance(initial, dict) or initial.get("value") not in values or initial not in options:
            errors.append(f"must match one of the provided options [json-pointer:{at}/initial_options/{j}]")
    return errors


def _validate_view(view: Any) -> list[str]:
    """A Home tab view as views.publish checks it: its type, its blocks, and the blocks' limits."""
    if not isinstance(view, dict):
        return ["must provide an object [json-pointer:/view]"]
    errors = []
    if view.get("type") != "home":
        errors.append("must be one of the provided values: home [json-pointer:/view/type]")
    blocks = view.get("blocks")
    if not isinstance(blocks, list):
        return errors + ["missing required field: blocks [json-pointer:/view]"]
    for i, block in enumerate(blocks):
        if isinstance(block, dict) and block.get("type") and block["type"] not in VIEW_BLOCK_TYPES:
            errors.append(f"failed to match all allowed schemas [json-pointer:/view/blocks/{i}]")
        text = block.get("text") if isinstance(block, dict) else None
        if block.get("type") == "header" and isinstance(text, dict) and text.get("type") != "plain_text":
            errors.append(f"must be one of the provided values: plain_text [json-pointer:/view/blocks/{i}/text/type]")
        if isinstance(text, dict) and not str(text.get("text", "")):
            errors.append(f"must be more than 0 characters [json-pointer:/view/blocks/{i}/text/text]")
    for field_name, limit in (("private_metadata", 3000), ("callback_id", 255), ("external_id", 255)):
        if len(str(view.get(field_name, ""))) > limit:
            errors.append(f"must be less than {limit + 1} characters [json-pointer:/view/{field_name}]")
    return errors + _validate_blocks(blocks, "/view/blocks", MAX_VIEW_BLOCKS)


def _blocks_error(code: str, errors: list[str]) -> _ApiError:
    return _ApiError(code, errors=errors, response_metadata={"messages": [f"[ERROR] {e}" for e in errors]})


def _parse_blocks(value: Any) -> list:
    """`blocks` as JSON text (form bodies) or a list (JSON bodies), checked against the limits."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _ApiError("invalid_blocks_format") from None
    if not isinstance(value, list):
        raise _ApiError("invalid_blocks_format")
    errors = _validate_blocks(value, "/blocks", MAX_BLOCKS)
    if errors:
        raise _blocks_error("invalid_blocks", errors)
    return value


def _in_range(messages: list[Message], params: dict) -> list[Message]:
    """The messages between `oldest` and `latest` (exclusive unless `inclusive`), as Slack filters them."""
    inclusive = _truthy(params.get("inclusive"))
    try:
        oldest = float(params.get("oldest") or 0)
        latest = float(params.get("latest") or "inf")
    except (TypeError, ValueError):
        raise _ApiError("invalid_ts_oldest") from None
    if inclusive:
        return [m for m in messages if oldest <= float(m.ts) <= latest]
    return [m for m in messages if oldest < float(m.ts) < latest]


def _cursor_for(msg: Message) -> str:
    """An opaque cursor in Slack's shape: base64 of `next_ts:<ts without the dot>`."""
    return base64.b64encode(f"next_ts:{msg.ts.replace('.', '')}".encode()).decode()


def _cursor_index(cursor: str, messages: list[Message]) -> int:
    """Where a cursor this emulator gave points in `messages`; `invalid_cursor` for any other."""
    for index, msg in enumerate(messages):
        if _cursor_for(msg) == cursor:
            return index
    raise _ApiError("invalid_cursor")


def _rich_text(text: str) -> list:
    """The rich_text block Slack attaches to a user's message (mentions split out)."""
    elements: list[dict] = []
    for part in re.split(r"(<@[UW][A-Z0-9]+>)", text):
        mention = re.fullmatch(r"<@([UW][A-Z0-9]+)>", part)
        if mention:
            elements.append({"type": "user", "user_id": mention.group(1)})
        elif part:
            elements.append({"type": "text", "text": part})
    section = {"type": "rich_text_section", "elements": elements}
    return [{"type": "rich_text", "block_id": secrets.token_hex(2), "elements": [section]}]


def _find_element(blocks: list, action_id: str) -> tuple[dict | None, dict | None]:
    """(block, element) holding the interactive element with this action_id, if any."""
    for block in blocks:
        if not isinstance(block, dict):
            continue
        candidates = list(block.get("elements") or [])
        if isinstance(block.get("accessory"), dict):
            candidates.append(block["accessory"])
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return block, element
    return None, None


class _Handler(BaseHTTPRequestHandler):
    server_version = "SlackEmulator/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, verb: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        fault = self.server.emulator._fault_now() if url.path.startswith("/api/") else None
        if fault == "5xx":
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if fault == "429":  # a rate-limit storm: every method, as Slack answers one (Retry-After in s)
            data = json.dumps({"ok": False, "error": "ratelimited"}).encode()
            self.send_response(429)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        try:
            status, headers, payload = self.server.emulator._route(verb, url.path, url.query, self.headers, body)
        except Exception:  # a bug in the emulator must not hang the client
            log.exception("slack emulator failed on %s %s", verb, self.path)
            status, headers, payload = 500, {}, {"ok": False, "error": "internal_error"}
        if fault == "drop-after-store":  # the call took effect; its answer is lost with the connection
            self.close_connection = True
            return
        if isinstance(payload, dict):
            data, ctype = json.dumps(payload).encode(), "application/json; charset=utf-8"
        else:
            data, ctype = str(payload).encode(), "text/plain; charset=utf-8"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class SlackEmulator:
    """Slack's Web API plus signed Slack->bot requests, on 127.0.0.1."""

    def __init__(
        self,
        *,
        signing_secret: str = "sandbox-signing-secret",
        bot_token: str = "xoxb-sandbox-token",
        app_token: str = "xapp-1-A0NEXYAPP-1-sandbox",
        socket_ack_timeout_s: float = ACK_TIMEOUT_S,
        team_id: str = "T0SANDBOX",
        bot_user_id: str = "U0NEXYBOT",
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.signing_secret = signing_secret
        self.bot_token = bot_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = "B" + bot_user_id[1:]
        self.app_id = "A0NEXYAPP"
        self.app_token = app_token  # app-level token: apps.connections.open (Socket Mode) only
        self.socket = SocketModeServer(self.app_id, host, ack_timeout_s=socket_ack_timeout_s)
        self.socket_mode = False  # True: requests to the bot go over Socket Mode, not signed HTTP
        self.last_delivery: Delivery | None = None
        self.host, self._port = host, port
        self.url = ""  # http://host:port, set by start()
        self.api_url = ""
        self.bot_url: str | None = None
        self.bot_timeout = 10.0  # seconds to wait for the bot's HTTP answer (Slack itself gives 3)
        self.page_limit: int | None = None  # a cap on every paginated method's limit (Slack's 15 for some apps)
        self.users: dict[str, str] = {
            "U0ALICE": "alice",
            "U0BOB": "bob",
            "U0CAROL": "carol",
            bot_user_id: "nexy",
        }
        self.channels: dict[str, str] = {"C0OPS": "ops", "C0DEPLOYS": "deploys"}
        self.usergroups: dict[str, list[str]] = {"oncall": ["U0ALICE", "U0BOB"]}
        # Slack Connect: people of another organisation in a shared channel, by user id -> their team.
        # Slack sends their team (not the app's) in `user.team_id` and `team` of interactive payloads,
        # in `team_id` of their slash commands, and as `user_team` / `source_team` on their messages.
        self.user_teams: dict[str, str] = {}
        self.calls: list[tuple[str, dict]] = []
        self.last_view: dict | None = None
        self.home_views: dict[str, dict] = {}  # user id -> the Home tab view published for them
        self.last_sent: dict | None = None  # the last payload sent to the bot, parsed
        self._lock = threading.RLock()
        self._messages: list[Message] = []
        self._by_ts: dict[str, Message] = {}
        self._last_us = 0
        self._offset = 0.0
        self._ids = itertools.count(1)
        self._subscribers: list[Callable[[str, Message], None]] = []
        self._pending: list[tuple[str, Message]] = []
        self._ratelimits: dict[str, list[int]] = {}
        self._faults = FaultSwitch(("5xx", "429", "drop-after-store"))
        self._triggers: dict[str, dict] = {}
        self._response_urls: dict[str, dict] = {}
        self._uploads: dict[str, dict] = {}
        self._upload_keys: dict[str, str] = {}
        self._last_send: tuple[bytes, str, tuple[str, dict] | None] | None = None
        self._last_signed: tuple[bytes, str, dict] | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None
        self._methods: dict[str, Callable[[dict], dict]] = {
            "auth.test": self._auth_test,
            "apps.connections.open": self._apps_connections_open,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "views.publish": self._views_publish,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "views.open": self._views_open,
            "usergroups.list": self._usergroups_list,
            "usergroups.users.list": self._usergroups_users_list,
            "users.info": self._users_info,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
        }

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> SlackEmulator:
        self._server = ThreadingHTTPServer((self.host, self._port), _Handler)
        self._server.daemon_threads = True
        self._server.emulator = self  # type: ignore[attr-defined]
        port = self._server.server_address[1]
        self.url = f"http://{self.host}:{port}"
        self.api_url = f"{self.url}/api/"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="slack-emulator", daemon=True)
        self._thread.start()
        self.socket.start()
        return self

    def _http(self) -> httpx.Client:
        """One client for every request to the bot: building one costs tens of milliseconds (its TLS
        context), more than the bot takes to answer. No connection is kept open between requests (as
        Slack's are not ours to hold): a server stopping gracefully must not wait for an idle one."""
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))
            return self._client

    def stop(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
        self.socket.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SlackEmulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward (trigger_id and response_url expiry, ts values)."""
        with self._lock:
            self._offset += seconds

    # ---------------------------------------------------------------- inspection
    def messages(self, channel: str | None = None) -> list[Message]:
        with self._lock:
            return [copy.deepcopy(m) for m in self._messages if channel is None or m.channel == channel]

    def thread(self, channel: str, thread_ts: str) -> list[Message]:
        with self._lock:
            return [
                copy.deepcopy(m)
                for m in self._messages
                if m.channel == channel and (m.ts == thread_ts or m.thread_ts == thread_ts)
            ]

    def find(self, ts: str) -> Message | None:
        with self._lock:
            msg = self._by_ts.get(ts)
            return copy.deepcopy(msg) if msg else None

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float = 10.0) -> Message:
        """The first message (in ts order) matching predicate, polling until timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for msg in self.messages():
                if predicate(msg):
                    return msg
            if time.monotonic() >= deadline:
                last = "\n".join(
                    f"  {m.channel} {m.ts} thread={m.thread_ts} user={m.user} "
                    f"ephemeral_to={m.ephemeral_to} text={m.text[:200]!r}"
                    for m in self.messages()[-15:]
                )
                raise TimeoutError(f"no matching Slack message within {timeout}s; last messages:\n{last or '  (none)'}")
            time.sleep(0.02)

    def subscribe(self, callback: Callable[[str, Message], None]) -> None:
        """callback(kind, msg) for kind in post, update, ephemeral, reaction, delete."""
        with self._lock:
            self._subscribers.append(callback)

    def fail_for(self, seconds: float, mode: str = "5xx") -> None:
        """A fault switch for the Web API: for `seconds`, every call is answered 503 (`5xx`), or 429
        with `Retry-After: 1` (`429`, a rate-limit storm), or is carried out and then its connection
        dropped without an answer (`drop-after-store`)."""
        self._faults.set(seconds, mode)

    def _fault_now(self) -> str | None:
        return self._faults.now()

    def ratelimit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        with self._lock:
            self._ratelimits[method] = [times, retry_after]

    def calls_to(self, method: str) -> list[dict]:
        with self._lock:
            return [copy.deepcopy(params) for name, params in self.calls if name == method]

    # ------------------------------------------------------------ internal state
    def _now(self) -> float:
        return time.time() + self._offset

    def _next_ts(self) -> str:
        with self._lock:
            self._last_us = max(int(self._now() * 1_000_000), self._last_us + 1)
            return f"{self._last_us // 1_000_000}.{self._last_us % 1_000_000:06d}"

    def _add_message(self, *, channel: str, text: str, blocks: list, user: str, thread_ts: str | None = None,
                     ephemeral_to: str | None = None, files: list | None = None) -> Message:
        with self._lock:
            parent = self._by_ts.get(thread_ts) if thread_ts else None
            if parent is not None and parent.thread_ts:  # a reply to a reply goes to the same thread
                thread_ts = parent.thread_ts
            msg = Message(channel=channel, ts=self._next_ts(), text=text, blocks=blocks, user=user,
                          thread_ts=thread_ts or None, ephemeral_to=ephemeral_to, files=files or [])
            self._messages.append(msg)
            self._by_ts[msg.ts] = msg
            self._notify("ephemeral" if ephemeral_to else "post", msg)
            return msg

    def _delete_message(self, msg: Message) -> None:
        with self._lock:
            self._messages.remove(msg)
            del self._by_ts[msg.ts]
            self._notify("delete", msg)

    def _notify(self, kind: str, msg: Message) -> None:
        self._pending.append((kind, copy.deepcopy(msg)))

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            subscribers = list(self._subscribers)
        for kind, msg in pending:
            for callback in subscribers:
                try:
                    callback(kind, msg)
                except Exception:
                    log.exception("slack emulator subscriber failed on %s", kind)

    def _message_json(self, msg: Message, with_metadata: bool = False) -> dict:
        """A stored message in Slack's JSON shape (as in API answers and interactive payloads); its
        metadata only when asked (`include_all_metadata`), as Slack does."""
        out: dict[str, Any] = {"type": "message", "user": msg.user, "text": msg.text, "ts": msg.ts,
                               "team": self.team_id}
        if msg.user == self.bot_user_id:
            out.update(bot_id=self.bot_id, app_id=self.app_id)
        if msg.blocks:
            out["blocks"] = msg.blocks
        if msg.thread_ts:
            out["thread_ts"] = msg.thread_ts
        replies = [m for m in self._messages if m.thread_ts == msg.ts and not m.ephemeral_to]
        if replies:
            out.update(thread_ts=msg.ts, reply_count=len(replies), latest_reply=replies[-1].ts,
                       reply_users=sorted({m.user for m in replies}))
        if msg.files:
            out["files"] = [{k: f[k] for k in ("id", "name", "title")} for f in msg.files]
        if msg.reactions:
            out["reactions"] = [{"name": n, "users": list(u), "count": len(u)} for n, u in msg.reactions.items()]
        if msg.edits:
            out["edited"] = {"user": msg.user, "ts": msg.ts}
        if with_metadata and msg.metadata:
            out["metadata"] = msg.metadata
        return out

    def _new_trigger(self) -> str:
        trigger = f"{next(self._ids)}{secrets.randbelow(10**6)}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"
        with self._lock:
            self._triggers[trigger] = {"at": self._now(), "used": False}
        return trigger

    def _new_response_url(self, kind: str, *, channel: str, user: str, original: str | None) -> str:
        path = f"/{kind}/{self.team_id}/{next(self._ids)}{secrets.randbelow(10**9)}/{secrets.token_urlsafe(18)}"
        with self._lock:
            self._response_urls[path] = {"kind": kind, "channel": channel, "user": user, "original": original,
                                         "uses": 0, "created": self._now()}
        return self.url + path

    # ------------------------------------------------------------------- routing
    def _route(self, verb: str, path: str, query: str, headers: Any, body: bytes) -> tuple[int, dict, Any]:
        if path.startswith("/api/"):
            return self._handle_api(path[len("/api/"):], query, headers, body)
        if path.startswith("/upload/v1/") and verb == "POST":
            return self._handle_upload(path[len("/upload/v1/"):], body)
        if (path.startswith("/commands/") or path.startswith("/actions/")) and verb == "POST":
            return self._handle_response_url(path, body)
        if path == "/":
            return 200, {}, "slack emulator"
        return 404, {}, "not found"

    def _handle_api(self, method: str, query: str, headers: Any, body: bytes) -> tuple[int, dict, Any]:
        ctype = (headers.get("Content-Type") or "").lower()
        params: dict[str, Any] = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        is_json = "application/json" in ctype
        if is_json:
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                return 200, {}, {"ok": False, "error": "invalid_json"}
            if not isinstance(data, dict):
                return 200, {}, {"ok": False, "error": "invalid_json"}
            params.update(data)
        elif body:
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            params.update({k: v[0] for k, v in form.items()})
        token_param = None if is_json else params.get("token")
        params.pop("token", None)
        with self._lock:
            self.calls.append((method, copy.deepcopy(params)))
        handler = self._methods.get(method)
        if handler is None:
            return 200, {}, {"ok": False, "error": "unknown_method", "req_method": method}
        auth = headers.get("Authorization") or ""
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else token_param
        if not token:
            return 200, {}, {"ok": False, "error": "not_authed"}
        if token == self.app_token:
            if method != "apps.connections.open":  # an app-level token calls this method only
                return 200, {}, {"ok": False, "error": "not_allowed_token_type"}
        elif token != self.bot_token:
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        elif method == "apps.connections.open":  # it needs the app-level token, not the bot's
            return 200, {}, {"ok": False, "error": "not_allowed_token_type"}
        with self._lock:
            limit = self._ratelimits.get(method)
            if limit and limit[0] > 0:
                limit[0] -= 1
                return 429, {"Retry-After": str(limit[1])}, {"ok": False, "error": "ratelimited"}
            try:
                result = handler(params)
            except _ApiError as exc:
                result = {"ok": False, "error": exc.error, **exc.extra}
        self._flush()
        return 200, {}, result

    # ------------------------------------------------------------- Web API: chat
    def _channel(self, params: dict, key: str = "channel") -> str:
        channel = str(params.get(key) or "").strip()
        if not channel:
            raise _ApiError("channel_not_found")
        return channel

    def _content(self, params: dict) -> tuple[str, list]:
        text = "" if params.get("text") is None else str(params["text"])
        blocks = _parse_blocks(params.get("blocks"))
        if len(text) > MAX_TEXT_CHARS:
            raise _ApiError("msg_too_long")
        if not text.strip() and not blocks and not params.get("attachments"):
            raise _ApiError("no_text")
        return text, blocks

    def _auth_test(self, params: dict) -> dict:
        return {"ok": True, "url": "https://sandbox.slack.com/", "team": "Sandbox",
                "user": self.users.get(self.bot_user_id, "nexy"),
                "team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": self.bot_id,
                "is_enterprise_install": False}

    def _apps_connections_open(self, params: dict) -> dict:
        return {"ok": True, "url": self.socket.open_url()}

    def _chat_post_message(self, params: dict) -> dict:
        channel = self._channel(params)
        text, blocks = self._content(params)
        metadata = params.get("metadata")
        if isinstance(metadata, str) and metadata:
            try:
                metadata = json.loads(metadata)
            except ValueError:
                raise _ApiError("invalid_metadata_format") from None
        if metadata is not None and not (isinstance(metadata, dict) and isinstance(metadata.get("event_type"), str)
                                         and isinstance(metadata.get("event_payload"), dict)):
            raise _ApiError("invalid_metadata_schema")
        msg = self._add_message(channel=channel, text=text, blocks=blocks, user=self.bot_user_id,
                                thread_ts=str(params.get("thread_ts") or "") or None)
        msg.metadata = metadata or None
        return {"ok": True, "channel": channel, "ts": msg.ts, "message": self._message_json(msg)}

    def _chat_update(self, params: dict) -> dict:
        channel = self._channel(params)
        msg = self._by_ts.get(str(params.get("ts") or ""))
        if msg is None or msg.channel != channel or msg.ephemeral_to:
            raise _ApiError("message_not_found")
        if msg.user != self.bot_user_id:
            raise _ApiError("cant_update_message")
        # Fields left out keep their previous value, as in Slack.
        merged = {"text": msg.text, "blocks": msg.blocks, **{k: params[k] for k in ("text", "blocks") if k in params}}
        msg.text, msg.blocks = self._content({**params, **merged})
        msg.edits += 1
        self._notify("update", msg)
        return {"ok": True, "channel": channel, "ts": msg.ts, "text": msg.text, "message": self._message_json(msg)}

    def _chat_get_permalink(self, params: dict) -> dict:
        channel = self._channel(params)
        msg = self._by_ts.get(str(params.get("message_ts") or ""))
        if msg is None or msg.channel != channel or msg.ephemeral_to:
            raise _ApiError("message_not_found")
        link = f"https://sandbox.slack.com/archives/{channel}/p{msg.ts.replace('.', '')}"
        if msg.thread_ts and msg.thread_ts != msg.ts:
            link += f"?thread_ts={msg.thread_ts}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": link}

    def _chat_post_ephemeral(self, params: dict) -> dict:
        channel = self._channel(params)
        user = str(params.get("user") or "")
        if not user:
            raise _ApiError("user_not_found")
        text, blocks = self._content(params)
        msg = self._add_message(channel=channel, text=text, blocks=blocks, user=self.bot_user_id,
                                thread_ts=str(params.get("thread_ts") or "") or None, ephemeral_to=user)
        return {"ok": True, "message_ts": msg.ts}

    def _reaction_target(self, params: dict) -> tuple[Message, str]:
        name = str(params.get("name") or "")
        channel, ts = params.get("channel"), params.get("timestamp")
        if not channel or not ts:
            raise _ApiError("no_item_specified")
        if not name or ":" in name or " " in name:
            raise _ApiError("invalid_name")
        msg = self._by_ts.get(str(ts))
        if msg is None or msg.channel != channel or msg.ephemeral_to:
            raise _ApiError("message_not_found")
        return msg, name

    def _reactions_add(self, params: dict) -> dict:
        msg, name = self._reaction_target(params)
        users = msg.reactions.setdefault(name, [])
        if self.bot_user_id in users:
            raise _ApiError("already_reacted")
        users.append(self.bot_user_id)
        self._notify("reaction", msg)
        return {"ok": True}

    def _reactions_remove(self, params: dict) -> dict:
        msg, name = self._reaction_target(params)
        if self.bot_user_id not in msg.reactions.get(name, []):
            raise _ApiError("no_reaction")
        msg.reactions[name].remove(self.bot_user_id)
        if not msg.reactions[name]:
            del msg.reactions[name]
        self._notify("reaction", msg)
        return {"ok": True}

    # ------------------------------------------------------ Web API: views, users
    def _views_open(self, params: dict) -> dict:
        view = params.get("view")
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except ValueError:
                raise _ApiError("invalid_arguments") from None
        if not isinstance(view, dict) or not view.get("type"):
            raise _ApiError("invalid_arguments")
        errors = _validate_blocks(view.get("blocks") or [], "/view/blocks", MAX_VIEW_BLOCKS)
        if errors:
            raise _blocks_error("invalid_arguments", errors)
        trigger = self._triggers.get(str(params.get("trigger_id") or ""))
        if trigger is None:
            raise _ApiError("invalid_trigger_id")
        if trigger["used"]:
            raise _ApiError("exchanged_trigger_id")
        if self._now() - trigger["at"] > TRIGGER_TTL_SECONDS:
            raise _ApiError("expired_trigger_id")
        trigger["used"] = True
        view_id = f"V{next(self._ids):08d}"
        opened = {"id": view_id, "team_id": self.team_id, "type": view["type"], "blocks": view.get("blocks") or [],
                  "private_metadata": view.get("private_metadata", ""), "callback_id": view.get("callback_id", ""),
                  "state": {"values": {}}, "hash": secrets.token_hex(8), "title": view.get("title"),
                  "clear_on_close": bool(view.get("clear_on_close")),
                  "notify_on_close": bool(view.get("notify_on_close")),
                  "close": view.get("close"), "submit": view.get("submit"), "previous_view_id": None,
                  "root_view_id": view_id, "app_id": self.app_id, "external_id": view.get("external_id", ""),
                  "app_installed_team_id": self.team_id, "bot_id": self.bot_id}
        self.last_view = opened
        return {"ok": True, "view": copy.deepcopy(opened)}

    def _views_publish(self, params: dict) -> dict:
        user = str(params.get("user_id") or "")
        if not user:
            raise _ApiError("invalid_arguments", response_metadata={"messages": ["[ERROR] missing required field: user_id"]})
        if user not in self.users:
            raise _ApiError("user_not_found")
        raw = params.get("view")
        if len((raw if isinstance(raw, str) else json.dumps(raw)).encode()) > MAX_VIEW_BYTES:
            raise _ApiError("view_too_large")
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise _ApiError("invalid_arguments") from None
        errors = _validate_view(raw)
        if errors:
            raise _blocks_error("invalid_arguments", errors)
        current = self.home_views.get(user)
        if params.get("hash") and current is not None and params["hash"] != current["hash"]:
            raise _ApiError("hash_conflict")
        view_id = current["id"] if current else f"V{next(self._ids):08d}"
        view = {"id": view_id, "team_id": self.team_id, "type": "home", "blocks": raw["blocks"],
                "private_metadata": raw.get("private_metadata", ""), "callback_id": raw.get("callback_id", ""),
                "state": {"values": {}}, "hash": f"{int(self._now())}.{secrets.token_hex(4)}",
                "title": None, "clear_on_close": False, "notify_on_close": False, "close": None, "submit": None,
                "previous_view_id": None, "root_view_id": view_id, "app_id": self.app_id,
                "external_id": raw.get("external_id", ""), "app_installed_team_id": self.team_id,
                "bot_id": self.bot_id}
        self.home_views[user] = view
        return {"ok": True, "view": copy.deepcopy(view)}

    def _usergroup(self, handle: str, users: list[str], include_users: bool) -> dict:
        group = {"id": "S" + handle.upper(), "team_id": self.team_id, "is_usergroup": True, "name": handle,
                 "handle": handle, "description": "", "user_count": len(users), "date_delete": 0}
        if include_users:
            group["users"] = list(users)
        return group

    def _usergroups_list(self, params: dict) -> dict:
        include = _truthy(params.get("include_users", False))
        return {"ok": True, "usergroups": [self._usergroup(h, u, include) for h, u in self.usergroups.items()]}

    def _usergroups_users_list(self, params: dict) -> dict:
        wanted = str(params.get("usergroup") or "")
        for handle, users in self.usergroups.items():
            if "S" + handle.upper() == wanted:
                return {"ok": True, "users": list(users)}
        raise _ApiError("no_such_subteam")

    def _users_info(self, params: dict) -> dict:
        user = str(params.get("user") or "")
        if user not in self.users:
            raise _ApiError("user_not_found")
        name = self.users[user]
        return {"ok": True, "user": {"id": user, "team_id": self.team_id, "name": name, "real_name": name,
                                     "is_bot": user == self.bot_user_id,
                                     "profile": {"display_name": name, "real_name": name}}}

    # ---------------------------------------------------- Web API: conversations
    def _conversations_history(self, params: dict) -> dict:
        channel = self._channel(params)
        top = [m for m in self._messages if m.channel == channel and not m.ephemeral_to and not m.thread_ts]
        newest_first = _in_range(list(reversed(top)), params)
        page, more = self._page("conversations.history", params, newest_first)
        meta = _truthy(params.get("include_all_metadata"))
        return {"ok": True, "messages": [self._message_json(m, meta) for m in page], "has_more": bool(more),
                "pin_count": 0, "response_metadata": {"next_cursor": more}}

    def _conversations_replies(self, params: dict) -> dict:
        channel = self._channel(params)
        ts = str(params.get("ts") or "")
        parent = self._by_ts.get(ts)
        if parent is None or parent.channel != channel or parent.ephemeral_to:
            raise _ApiError("thread_not_found")
        root = parent.thread_ts or parent.ts
        thread = [m for m in self._messages
                  if m.channel == channel and not m.ephemeral_to and m.thread_ts == root and m.ts != root]
        page, more = self._page("conversations.replies", params, _in_range(thread, params))
        if not params.get("cursor"):  # the parent comes first, whatever the range
            page = [self._by_ts[root], *page]
        meta = _truthy(params.get("include_all_metadata"))
        return {"ok": True, "messages": [self._message_json(m, meta) for m in page], "has_more": bool(more),
                "response_metadata": {"next_cursor": more}}

    def _page(self, method: str, params: dict, messages: list[Message]) -> tuple[list[Message], str]:
        """One page of `messages` (in the order the method answers), and the cursor of the next ('' at the end)."""
        default, largest = PAGE_LIMITS[method]
        if self.page_limit:
            default, largest = min(default, self.page_limit), min(largest, self.page_limit)
        try:
            limit = int(params.get("limit") or default)
        except (TypeError, ValueError):
            raise _ApiError("invalid_arguments") from None
        limit = max(1, min(limit, largest))
        start = 0
        if params.get("cursor"):
            start = _cursor_index(str(params["cursor"]), messages)
        page, rest = messages[start:start + limit], messages[start + limit:]
        return page, _cursor_for(rest[0]) if rest else ""

    # ------------------------------------------------------------ Web API: files
    def _files_get_upload_url(self, params: dict) -> dict:
        filename = str(params.get("filename") or "")
        try:
            length = int(params.get("length"))
        except (TypeError, ValueError):
            length = -1
        if not filename or length < 0:
            raise _ApiError("invalid_arguments")
        file_id, key = f"F{next(self._ids):08d}", secrets.token_urlsafe(18)
        self._uploads[file_id] = {"name": filename, "length": length, "data": None}
        self._upload_keys[key] = file_id
        return {"ok": True, "upload_url": f"{self.url}/upload/v1/{key}", "file_id": file_id}

    def _handle_upload(self, key: str, body: bytes) -> tuple[int, dict, Any]:
        with self._lock:
            file_id = self._upload_keys.get(key)
            if file_id is None:
                return 404, {}, "not found"
            self._uploads[file_id]["data"] = body
        return 200, {}, f"OK - {len(body)}"

    def _files_complete_upload(self, params: dict) -> dict:
        items = params.get("files")
        if isinstance(items, str):
            try:
                items = json.loads(items)
            except ValueError:
                raise _ApiError("invalid_arguments") from None
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) and i.get("id") for i in items):
            raise _ApiError("invalid_arguments")
        files = []
        for item in items:
            upload = self._uploads.get(str(item["id"]))
            if upload is None or upload["data"] is None:
                raise _ApiError("file_not_found")
            files.append({"id": item["id"], "name": upload["name"], "title": item.get("title") or upload["name"],
                          "content": upload["data"].decode("utf-8", "replace")})
        targets = [c for c in str(params.get("channels") or "").split(",") if c]
        if params.get("channel_id"):
            targets.insert(0, str(params["channel_id"]))
        text = str(params.get("initial_comment") or "")
        for channel in dict.fromkeys(targets):
            self._add_message(channel=channel, text=text, blocks=[], user=self.bot_user_id,
                              thread_ts=str(params.get("thread_ts") or "") or None, files=copy.deepcopy(files))
        return {"ok": True, "files": [{"id": f["id"], "name": f["name"], "title": f["title"], "mimetype": "text/plain",
                                       "size": len(f["content"].encode()), "created": int(self._now())} for f in files]}

    # ------------------------------------------------------------- response_url
    def _handle_response_url(self, path: str, body: bytes) -> tuple[int, dict, Any]:
        with self._lock:
            hook = self._response_urls.get(path)
            if hook is None:
                return 404, {}, "no_service"
            if self._now() - hook["created"] > RESPONSE_URL_TTL_SECONDS:
                return 404, {}, "expired_url"
            if hook["uses"] >= RESPONSE_URL_USES:
                return 404, {}, "used_url"
            try:
                data = json.loads(body or b"")
            except ValueError:
                return 400, {}, "invalid_payload"
            if not isinstance(data, dict):
                return 400, {}, "invalid_payload"
            original = self._by_ts.get(hook["original"] or "")
            try:
                if _truthy(data.get("delete_original")):
                    if original is not None:
                        self._delete_message(original)
                        hook["original"] = None
                elif _truthy(data.get("replace_original")) and original is not None:
                    original.text, original.blocks = self._content(data)
                    original.edits += 1
                    self._notify("update", original)
                else:
                    text, blocks = self._content(data)
                    thread_ts = data.get("thread_ts") or (original.thread_ts if original is not None else None)
                    in_channel = data.get("response_type") == "in_channel"
                    msg = self._add_message(channel=hook["channel"], text=text, blocks=blocks, user=self.bot_user_id,
                                            thread_ts=thread_ts, ephemeral_to=None if in_channel else hook["user"])
                    if hook["kind"] == "commands":
                        hook["original"] = msg.ts
            except _ApiError as exc:
                return 400, {}, exc.error
            hook["uses"] += 1
        self._flush()
        return 200, {}, {"ok": True}

    # ---------------------------------------------------------- sending to the bot
    def sign(self, body: bytes, timestamp: int | None = None, signing_secret: str | None = None) -> dict:
        """The two headers Slack signs a request with."""
        ts = str(int(time.time()) if timestamp is None else int(timestamp))
        base = b"v0:" + ts.encode() + b":" + body
        digest = hmac.new((signing_secret or self.signing_secret).encode(), base, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}

    def _send(self, body: bytes, content_type: str, *, extra_headers: dict | None = None,
              timestamp: int | None = None, signing_secret: str | None = None,
              envelope: tuple[str, dict] | None = None) -> httpx.Response:
        """Send a request to the bot: signed HTTP to bot_url, or, in Socket Mode, `envelope` (its
        type and payload) over the WebSocket."""
        with self._lock:
            self._last_send = (body, content_type, envelope)
        if self.socket_mode and envelope is not None:
            headers = {k.lower(): v for k, v in (extra_headers or {}).items()}
            retry = headers.get("x-slack-retry-num")
            return self._deliver(*envelope, retry_attempt=int(retry) if retry else None,
                                 retry_reason=headers.get("x-slack-retry-reason", ""))
        if not self.bot_url:
            raise RuntimeError("SlackEmulator.bot_url is not set: where should Slack send this request?")
        headers = {"Content-Type": content_type, "User-Agent": _USER_AGENT,
                   **self.sign(body, timestamp, signing_secret), **(extra_headers or {})}
        with self._lock:
            self._last_signed = (body, content_type, headers)
        return self._http().post(self.bot_url, content=body, headers=headers, timeout=self.bot_timeout)

    def send_raw(self, body: bytes, content_type: str, *, timestamp_header: str | None = None,
                 headers: dict | None = None) -> httpx.Response:
        """Send `body` exactly as given, signed with the real secret (or with a timestamp header as
        given, even one Slack would never send): how a malformed or replayed request reaches the bot."""
        if not self.bot_url:
            raise RuntimeError("SlackEmulator.bot_url is not set: where should Slack send this request?")
        signed = self.sign(body)
        if timestamp_header is not None:
            signed["X-Slack-Request-Timestamp"] = timestamp_header
        all_headers = {"Content-Type": content_type, "User-Agent": _USER_AGENT, **signed, **(headers or {})}
        return self._http().post(self.bot_url, content=body, headers=all_headers, timeout=self.bot_timeout)

    def replay_last(self) -> httpx.Response:
        """Resend the last request byte for byte with its original signature and timestamp, as an
        attacker who captured it would (Slack itself re-signs its retries)."""
        with self._lock:
            if self._last_signed is None:
                raise RuntimeError("nothing was sent yet")
            body, ctype, headers = self._last_signed
        return self._http().post(self.bot_url or "", content=body, headers=headers, timeout=self.bot_timeout)

    def _deliver(self, kind: str, payload: dict, **retry: Any) -> httpx.Response:
        """One envelope over Socket Mode, answered as the bot's HTTP answer would be: 200 with the
        ack's payload (if any); 408 when no ack came in time (Slack shows the user an error);
        404 when no app is connected (Slack's `dispatch_failed`)."""
        delivery = self.socket.deliver(kind, payload, **retry)
        self.last_delivery = delivery
        if not delivery.connected:
            return httpx.Response(404, text="dispatch_failed: no Socket Mode connection")
        if not delivery.acked:
            return httpx.Response(408, text=f"no ack within {self.socket.ack_timeout_s:g} s")
        if delivery.payload:
            return httpx.Response(200, json=delivery.payload)
        return httpx.Response(200, content=b"")

    def _send_form(self, form: dict, **kwargs: Any) -> httpx.Response:
        self.last_sent = copy.deepcopy(form)
        return self._send(urlencode(form).encode(), "application/x-www-form-urlencoded",
                          envelope=("slash_commands", copy.deepcopy(form)), **kwargs)

    def _send_payload(self, payload: dict) -> httpx.Response:
        self.last_sent = copy.deepcopy(payload)
        return self._send(urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded",
                          envelope=("interactive", copy.deepcopy(payload)))

    def _team_of(self, user: str) -> str:
        return self.user_teams.get(user, self.team_id)

    def _user_obj(self, user: str) -> dict:
        name = self.users.get(user, user.lower())
        return {"id": user, "username": name, "name": name, "team_id": self._team_of(user)}

    def _team_obj(self, user: str | None = None) -> dict:
        team = self._team_of(user) if user else self.team_id
        return {"id": team, "domain": "sandbox" if team == self.team_id else team.lower()}

    def slash_command(self, text: str, *, user: str = "U0ALICE", channel: str = "C0OPS", command: str = "/nexy",
                      timestamp: int | None = None, signing_secret: str | None = None,
                      team_id: str | None = None) -> httpx.Response:
        """Send a slash command; a visible ack body (text/blocks) is stored as Slack would show it.
        `team_id`: as if sent from another workspace where the app is installed (default: the user's)."""
        response_url = self._new_response_url("commands", channel=channel, user=user, original=None)
        form = {"token": VERIFICATION_TOKEN, "team_id": team_id or self._team_of(user), "team_domain": "sandbox",
                "channel_id": channel, "channel_name": self.channels.get(channel, channel.lower()),
                "user_id": user, "user_name": self.users.get(user, user.lower()), "command": command, "text": text,
                "api_app_id": self.app_id, "is_enterprise_install": "false", "response_url": response_url,
                "trigger_id": self._new_trigger()}
        resp = self._send_form(form, timestamp=timestamp, signing_secret=signing_secret)
        self._record_ack(resp, channel=channel, user=user, hook_path=urlsplit(response_url).path)
        return resp

    def _record_ack(self, resp: httpx.Response, *, channel: str, user: str, hook_path: str) -> None:
        if resp.status_code != 200 or not resp.content.strip():
            return
        try:
            data = resp.json()
        except ValueError:
            data = {"text": resp.text}
        if not isinstance(data, dict) or not (data.get("text") or data.get("blocks")):
            return
        blocks = data.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        in_channel = data.get("response_type") == "in_channel"
        msg = self._add_message(channel=channel, text=str(data.get("text") or ""), blocks=blocks,
                                user=self.bot_user_id, ephemeral_to=None if in_channel else user)
        with self._lock:
            self._response_urls[hook_path]["original"] = msg.ts
        self._flush()

    def event(self, event: dict, *, event_id: str | None = None, retry_num: int | None = None,
              retry_reason: str = "http_timeout", timestamp: int | None = None,
              team_id: str | None = None) -> httpx.Response:
        """Send an Events API callback wrapping `event` (JSON body, retry headers on request).
        `team_id`: as if from another workspace where the app is installed (its envelope and
        authorization name that team)."""
        event = copy.deepcopy(event)
        event.setdefault("event_ts", self._next_ts())
        team = team_id or self.team_id
        envelope = {
            "token": VERIFICATION_TOKEN, "team_id": team, "api_app_id": self.app_id, "event": event,
            "type": "event_callback", "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
            "event_time": int(time.time()),
            "authorizations": [{"enterprise_id": None, "team_id": team, "user_id": self.bot_user_id,
                                "is_bot": True, "is_enterprise_install": False}],
            "is_ext_shared_channel": "user_team" in event, "event_context": f"4-{secrets.token_urlsafe(24)}",
        }
        self.last_sent = copy.deepcopy(envelope)
        return self._send(json.dumps(envelope).encode(), "application/json",
                          extra_headers=self._retry_headers(retry_num, retry_reason), timestamp=timestamp,
                          envelope=("events_api", copy.deepcopy(envelope)))

    @staticmethod
    def _retry_headers(retry_num: int | None, retry_reason: str) -> dict:
        if retry_num is None:
            return {}
        return {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason}

    def retry_last(self, retry_num: int = 1, retry_reason: str = "http_timeout") -> httpx.Response:
        """Resend the last request byte for byte (freshly signed) with retry headers, as Slack retries."""
        with self._lock:
            if self._last_send is None:
                raise RuntimeError("nothing was sent yet")
            body, ctype, envelope = self._last_send
        return self._send(body, ctype, extra_headers=self._retry_headers(retry_num, retry_reason), envelope=envelope)

    def app_mention(self, text: str, *, user: str, channel: str, thread_ts: str | None = None,
                    event_id: str | None = None) -> httpx.Response:
        """Store the user's message and send the app_mention event for it."""
        msg = self._add_message(channel=channel, text=text, blocks=[], user=user, thread_ts=thread_ts)
        self._flush()
        event = {"type": "app_mention", "user": user, "text": text, "ts": msg.ts, "channel": channel,
                 "event_ts": msg.ts, "team": self._team_of(user), "client_msg_id": str(uuid.uuid4()),
                 "blocks": _rich_text(text)}
        if user in self.user_teams:  # a Slack Connect guest's message in a shared channel
            event["user_team"] = event["source_team"] = self.user_teams[user]
        if msg.thread_ts:
            event["thread_ts"] = msg.thread_ts
        return self.event(event, event_id=event_id)

    def _reaction(self, kind: str, reaction: str, *, user: str, channel: str, ts: str, event_id: str | None,
                  retry_num: int | None) -> httpx.Response:
        with self._lock:
            msg = self._by_ts.get(ts)
            if msg is not None and msg.channel != channel:
                msg = None
            if msg is not None:
                users = msg.reactions.setdefault(reaction, [])
                if kind == "reaction_added" and user not in users:
                    users.append(user)
                elif kind == "reaction_removed" and user in users:
                    users.remove(user)
                if not users:
                    del msg.reactions[reaction]
                self._notify("reaction", msg)
            event = {"type": kind, "user": user, "reaction": reaction,
                     "item": {"type": "message", "channel": channel, "ts": ts}, "event_ts": self._next_ts()}
            if msg is not None:
                event["item_user"] = msg.user
        self._flush()
        return self.event(event, event_id=event_id, retry_num=retry_num)

    def reaction_added(self, reaction: str, *, user: str, channel: str, ts: str, event_id: str | None = None,
                       retry_num: int | None = None) -> httpx.Response:
        return self._reaction("reaction_added", reaction, user=user, channel=channel, ts=ts, event_id=event_id,
                              retry_num=retry_num)

    def reaction_removed(self, reaction: str, *, user: str, channel: str, ts: str, event_id: str | None = None,
                         retry_num: int | None = None) -> httpx.Response:
        return self._reaction("reaction_removed", reaction, user=user, channel=channel, ts=ts, event_id=event_id,
                              retry_num=retry_num)

    def block_action(self, *, user: str, channel: str, message_ts: str, action_id: str, value: str,
                     block_id: str | None = None) -> httpx.Response:
        """Click a button on a stored message (block_id defaults to the block that holds action_id)."""
        with self._lock:
            msg = self._by_ts.get(message_ts)
            if msg is None:
                raise ValueError(f"no stored message with ts {message_ts}: nothing to click")
            block, element = _find_element(msg.blocks, action_id)
            message_json = self._message_json(msg)
            ephemeral = bool(msg.ephemeral_to)
            thread_ts = msg.thread_ts
        action = {"action_id": action_id, "block_id": block_id or (block or {}).get("block_id") or "b",
                  "value": value, "type": "button", "action_ts": f"{time.time():.6f}"}
        if element is not None and isinstance(element.get("text"), dict):
            action["text"] = element["text"]
        container = {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": ephemeral}
        if thread_ts:
            container["thread_ts"] = thread_ts
        payload = {"type": "block_actions", "user": self._user_obj(user), "api_app_id": self.app_id,
                   "token": VERIFICATION_TOKEN, "container": container, "trigger_id": self._new_trigger(),
                   "team": self._team_obj(user), "enterprise": None, "is_enterprise_install": False,
                   "channel": {"id": channel, "name": self.channels.get(channel, channel.lower())},
                   "state": {"values": {}},
                   "response_url": self._new_response_url("actions", channel=channel, user=user, original=message_ts),
                   "actions": [action]}
        if not ephemeral:  # Slack leaves the message out for ephemeral containers
            payload["message"] = message_json
        return self._send_payload(payload)

    def checkboxes(self, *, user: str, channel: str, message_ts: str, action_id: str,
                   selected: list[str]) -> httpx.Response:
        """Tick checkboxes of a stored message: `selected` are the values ticked after the click, as
        Slack sends them (block_actions with `selected_options`, and the same in `state`)."""
        with self._lock:
            msg = self._by_ts.get(message_ts)
            if msg is None:
                raise ValueError(f"no stored message with ts {message_ts}: nothing to tick")
            block, element = _find_element(msg.blocks, action_id)
            if element is None or element.get("type") != "checkboxes":
                raise ValueError(f"message {message_ts} has no checkboxes {action_id!r}")
            options = [o for o in element["options"] if o["value"] in selected]
            message_json = self._message_json(msg)
        block_id = (block or {}).get("block_id") or "b"
        action = {"type": "checkboxes", "action_id": action_id, "block_id": block_id,
                  "selected_options": copy.deepcopy(options), "action_ts": f"{time.time():.6f}"}
        container = {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False}
        if msg.thread_ts:
            container["thread_ts"] = msg.thread_ts
        payload = {"type": "block_actions", "user": self._user_obj(user), "api_app_id": self.app_id,
                   "token": VERIFICATION_TOKEN, "container": container, "trigger_id": self._new_trigger(),
                   "team": self._team_obj(user), "enterprise": None, "is_enterprise_install": False,
                   "channel": {"id": channel, "name": self.channels.get(channel, channel.lower())},
                   "message": message_json,
                   "state": {"values": {block_id: {action_id: {"type": "checkboxes",
                                                               "selected_options": copy.deepcopy(options)}}}},
                   "response_url": self._new_response_url("actions", channel=channel, user=user, original=message_ts),
                   "actions": [action]}
        return self._send_payload(payload)

    def app_home_opened(self, *, user: str, tab: str = "home", event_id: str | None = None) -> httpx.Response:
        """Send the app_home_opened event Slack sends when a user opens the app's Home (with the
        view last published for them, as Slack includes it)."""
        event = {"type": "app_home_opened", "user": user, "channel": "D" + user[1:], "tab": tab,
                 "event_ts": self._next_ts()}
        with self._lock:
            if tab == "home" and user in self.home_views:
                event["view"] = copy.deepcopy(self.home_views[user])
        return self.event(event, event_id=event_id)

    def view_submission(self, *, user: str, callback_id: str, values: dict,
                        private_metadata: str = "") -> httpx.Response:
        """Submit a modal (the last opened view when its callback_id matches)."""
        with self._lock:
            if self.last_view and self.last_view.get("callback_id") == callback_id:
                view = copy.deepcopy(self.last_view)
            else:
                view_id = f"V{next(self._ids):08d}"
                view = {"id": view_id, "team_id": self.team_id, "type": "modal", "blocks": [],
                        "private_metadata": "", "callback_id": callback_id, "hash": secrets.token_hex(8),
                        "title": {"type": "plain_text", "text": "Modal"}, "previous_view_id": None,
                        "root_view_id": view_id, "app_id": self.app_id, "bot_id": self.bot_id}
        view["state"] = {"values": copy.deepcopy(values)}
        if private_metadata:
            view["private_metadata"] = private_metadata
        payload = {"type": "view_submission", "team": self._team_obj(user), "user": self._user_obj(user),
                   "api_app_id": self.app_id, "token": VERIFICATION_TOKEN, "trigger_id": self._new_trigger(),
                   "view": view, "response_urls": [], "is_enterprise_install": False, "enterprise": None}
        return self._send_payload(payload)
