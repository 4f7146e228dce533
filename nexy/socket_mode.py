"""`nexy socket`: the Bolt app over Socket Mode (slack_sdk's built-in WebSocket client).

Before it connects it checks, each with one clear line: the two tokens are set, Redis answers,
Slack accepts the bot token (auth.test), Slack accepts the app-level token (apps.connections.open)
and the WebSocket opens. Each envelope's payload is checked as a signed HTTP body is (handlers/guard.py)
before Bolt sees it. Then it serves until SIGINT/SIGTERM and closes the connection, letting
the envelopes in hand finish (each is acked once its work is queued).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.errors import SettingsError
from bot.policy import channels_problem
from bot.registry import Registry
from bot.settings import Settings
from handlers.app import create_app
from handlers.guard import Kind, shape_problem
from nexy.processes import announcer
from nexy.redis import Patience
from nexy.redis import connect as connect_redis
from nexy.registry import build_registry
from nexy.web import check_redis, check_slack, quiet
from nexy.workers import where

CONNECT_TIMEOUT_S = 10.0
"""How long the WebSocket may take to open after Slack gave its URL."""

_log = logging.getLogger("nexy.socket")
# The built-in client logs every reconnect and ping at INFO: only trouble is worth a line.
_log.setLevel(logging.WARNING)


_ENVELOPES = {"events_api": Kind.EVENT, "slash_commands": Kind.COMMAND, "interactive": Kind.INTERACTIVE}
"""Which payload each envelope type carries: checked as a signed HTTP body is (handlers/guard.py)."""


class GuardedHandler(SocketModeHandler):
    """Bolt's handler behind the same shape checks as `nexy web`: a malformed envelope is acked (so
    Slack does not send it again: no retry would change it) and dropped with a log line; Bolt and
    the listeners never see it."""

    def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        kind = _ENVELOPES.get(req.type)
        problem = shape_problem(kind, req.payload) if kind is not None else ""
        if problem:
            _log.warning("Socket Mode %s envelope %s dropped: %s", req.type, req.envelope_id, problem)
            client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        super().handle(client, req)


def connect(
    settings: Settings, registry: Registry, app_token: str, redis_check: Callable[[], str]
) -> tuple[SocketModeHandler, str]:
    """A connected SocketModeHandler answering the commands of `registry`, or a SettingsError naming
    what is wrong."""
    if not settings.has_slack_credentials:
        raise SettingsError(
            "SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are required for Socket Mode (with SLACK_APP_TOKEN)"
        )
    problem = channels_problem(settings)
    if problem:
        raise SettingsError(problem)
    redis = redis_check()
    check_slack(settings)
    handler = GuardedHandler(
        create_app(settings, registry, connect_redis(settings, Patience.ANSWER)), app_token, logger=_log
    )
    hello = threading.Event()  # Slack's first message on a new connection: from then on it delivers
    handler.client.message_listeners.append(
        lambda _client, message, _raw: hello.set() if message.get("type") == "hello" else None
    )
    # The client logs each failure itself, at length: here it is said once, in one line.
    try:
        with quiet("slack_sdk", _log.name):
            handler.client.wss_uri = handler.client.issue_new_wss_url()
            handler.connect()
    except SlackApiError as exc:
        handler.close()
        raise SettingsError(f"SLACK_APP_TOKEN: Slack refused it ({exc.response.get('error')})") from None
    except OSError as exc:
        handler.close()
        raise SettingsError(f"SLACK_API_URL: cannot reach Slack ({type(exc).__name__})") from None
    if not handler.client.is_connected():
        handler.close()
        raise SettingsError("Socket Mode: Slack gave a WebSocket URL, but the connection to it failed")
    if not hello.wait(CONNECT_TIMEOUT_S):
        handler.close()
        raise SettingsError(f"Socket Mode: connected, but Slack said no hello within {CONNECT_TIMEOUT_S:g} s")
    return handler, redis


def serve(settings: Settings, *, child: bool = False) -> None:
    """Serve over Socket Mode until SIGINT/SIGTERM. A child of `nexy run` leaves the Redis check
    and the stop line to its parent."""
    if not settings.slack_app_token:
        raise SettingsError("SLACK_APP_TOKEN: Socket Mode needs an app-level token (xapp-...)")
    say = announcer("socket")
    registry = build_registry()
    handler, redis = connect(
        settings, registry, settings.slack_app_token, lambda: check_redis(settings, None if child else say)
    )
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    say(f"ready: connected to Slack over Socket Mode; Redis: {redis}; {where(settings)}")
    while not stop.wait(0.5):
        pass
    handler.close()
    if not child:
        say("stopped")
