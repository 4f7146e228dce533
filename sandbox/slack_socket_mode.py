"""Slack's Socket Mode endpoint, for the Slack emulator: a WebSocket server on loopback.

The protocol, as Slack runs it and as slack_sdk's built-in client (the one Bolt's
SocketModeHandler uses) speaks it:

* `apps.connections.open` (Web API, app-level `xapp-` token) answers a one-time URL
  `ws://127.0.0.1:<port>/link/?ticket=<ticket>&app_id=<app>` (Slack's is `wss://`; plain `ws://`
  on loopback is what the built-in client accepts for a non-443 port). An unknown or used ticket
  is refused at the handshake.
* On connect the server sends `{"type": "hello", "num_connections": n, "debug_info": {...},
  "connection_info": {"app_id": ...}}`.
* Every request to the app is an envelope `{"envelope_id", "type", "payload",
  "accepts_response_payload", ...}` of type `events_api` (the Events API body, plus
  `retry_attempt` / `retry_reason`), `slash_commands` (the slash command's fields) or
  `interactive` (the interactive payload). The app acks with `{"envelope_id": ..., "payload": ...}`
  (a payload only where `accepts_response_payload` is true: slash commands and view submissions).
* An `events_api` envelope that is not acked in time is delivered again, with `retry_attempt` 1,
  2, 3 and `retry_reason: "timeout"`, at most three times, as Slack retries events (Slack waits
  minutes between retries; the emulator retries at once after each missed ack, to keep tests
  short). A slash command or interactive payload is not retried: Slack shows the user an error.
* `{"type": "disconnect", "reason": ...}` asks the client to reconnect (`refresh_requested`,
  `warning`, `link_disabled`); the built-in client opens a new connection through
  `apps.connections.open`.

The WebSocket framing, ping/pong and close handshake come from the `websockets` library's
threaded server; this module owns the Slack side.
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

log = logging.getLogger(__name__)
_ws_log = logging.getLogger(f"{__name__}.websockets")
_ws_log.setLevel(logging.WARNING)  # each connection opening and closing is not news

ACK_TIMEOUT_S = 3.0
"""How long Slack waits for an envelope's ack (its 3-second rule)."""

EVENT_RETRIES = 3
"""How many times Slack delivers an unacknowledged event again."""

RETRIED = ("events_api",)
"""The envelope types Slack delivers again when not acked."""


@dataclass
class Delivery:
    """What became of one request sent over Socket Mode."""

    acked: bool
    payload: dict | None = None  # the ack's payload (a slash command's visible answer)
    attempts: int = 0
    envelopes: list[str] = field(default_factory=list)  # the envelope id of each attempt
    connected: bool = True  # False: no app was connected to deliver to


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    payload: dict | None = None


class SocketModeServer:
    """The WebSocket side of Socket Mode for one app, on 127.0.0.1."""

    def __init__(self, app_id: str, host: str = "127.0.0.1", ack_timeout_s: float = ACK_TIMEOUT_S):
        self.app_id = app_id
        self.host = host
        self.ack_timeout_s = ack_timeout_s
        self.port = 0
        self.received: list[dict] = []  # every frame an app sent, parsed
        self.sent: list[dict] = []  # every envelope delivered (each attempt)
        self._lock = threading.Lock()
        self._tickets: set[str] = set()
        self._connections: list[ServerConnection] = []
        self._pending: dict[str, _Pending] = {}
        self._turn = itertools.count()
        self._server: Server | None = None

    def start(self) -> SocketModeServer:
        self._server = serve(self._handle, self.host, 0, process_request=self._check_ticket, compression=None,
                             logger=_ws_log)
        self.port = self._server.socket.getsockname()[1]
        threading.Thread(target=self._server.serve_forever, name="slack-socket-mode", daemon=True).start()
        return self

    def stop(self) -> None:
        self.close_all()
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def close_all(self) -> None:
        """Close every connection (WebSocket close frame), as Slack does when it drops a link."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()

    # -- apps.connections.open ------------------------------------------------------------

    def open_url(self) -> str:
        """A new one-time WebSocket URL, as apps.connections.open answers it."""
        ticket = str(uuid.uuid4())
        with self._lock:
            self._tickets.add(ticket)
        return f"ws://{self.host}:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    def _check_ticket(self, connection: ServerConnection, request: Request) -> Response | None:
        query = parse_qs(urlsplit(request.path).query)
        ticket = (query.get("ticket") or [""])[0]
        with self._lock:
            if ticket in self._tickets and (query.get("app_id") or [""])[0] == self.app_id:
                self._tickets.discard(ticket)
                return None
        return connection.respond(401, "invalid or used ticket\n")

    # -- connections ----------------------------------------------------------------------

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def _handle(self, connection: ServerConnection) -> None:
        with self._lock:
            self._connections.append(connection)
            count = len(self._connections)
        try:
            connection.send(json.dumps({
                "type": "hello", "num_connections": count,
                "debug_info": {"host": "applink-emulator", "build_number": 1, "approximate_connection_time": 18060},
                "connection_info": {"app_id": self.app_id},
            }))
            for frame in connection:
                self._on_frame(frame)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._connections.remove(connection)

    def _on_frame(self, frame: str | bytes) -> None:
        try:
            message = json.loads(frame)
        except ValueError:
            log.warning("socket mode: a frame that is not JSON: %r", frame[:200])
            return
        if not isinstance(message, dict):
            return
        with self._lock:
            self.received.append(message)
            pending = self._pending.get(str(message.get("envelope_id")))
        if pending is not None:
            payload = message.get("payload")
            pending.payload = payload if isinstance(payload, dict) else None
            pending.done.set()

    def disconnect_all(self, reason: str = "refresh_requested") -> None:
        """Ask every connected app to reconnect, as Slack does before it recycles a connection."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.send(json.dumps({"type": "disconnect", "reason": reason,
                                            "debug_info": {"host": "applink-emulator"}}))
            except ConnectionClosed:
                pass

    # -- delivery -------------------------------------------------------------------------

    def deliver(self, kind: str, payload: dict, *, retry_attempt: int | None = None,
                retry_reason: str = "") -> Delivery:
        """Send one request as an envelope and wait for its ack; events are delivered again when not
        acked (at most EVENT_RETRIES times)."""
        delivery = Delivery(acked=False)
        first = retry_attempt or 0
        attempts = 1 + (EVENT_RETRIES - first if kind in RETRIED else 0)
        for attempt in range(first, first + max(1, attempts)):
            connection = self._next_connection()
            if connection is None:
                delivery.connected = False
                return delivery
            envelope_id = str(uuid.uuid4())
            envelope: dict[str, Any] = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                                        "accepts_response_payload": _accepts_response(kind, payload)}
            if kind == "events_api":
                envelope.update(retry_attempt=attempt, retry_reason=retry_reason if attempt == first else "timeout")
            pending = _Pending()
            with self._lock:
                self._pending[envelope_id] = pending
                self.sent.append(envelope)
            delivery.attempts += 1
            delivery.envelopes.append(envelope_id)
            try:
                connection.send(json.dumps(envelope))
                acked = pending.done.wait(self.ack_timeout_s)
            except ConnectionClosed:
                acked = False
            finally:
                with self._lock:
                    self._pending.pop(envelope_id, None)
            if acked:
                delivery.acked, delivery.payload = True, pending.payload
                return delivery
        return delivery

    def _next_connection(self) -> ServerConnection | None:
        """Slack spreads envelopes over an app's open connections."""
        with self._lock:
            if not self._connections:
                return None
            return self._connections[next(self._turn) % len(self._connections)]


def _accepts_response(kind: str, payload: dict) -> bool:
    """Slack lets the ack carry a response for slash commands and view submissions only."""
    return kind == "slash_commands" or (kind == "interactive" and payload.get("type") == "view_submission")


def new_app_token(app_id: str) -> str:
    """An app-level token in Slack's shape: `xapp-1-<app id>-<number>-<secret>`."""
    return f"xapp-1-{app_id}-{secrets.randbelow(10**12)}-{secrets.token_hex(32)}"
