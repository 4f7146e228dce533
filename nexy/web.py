"""`nexy web`: the Bolt app behind a production WSGI server (gunicorn), plus `GET /healthz`."""

from __future__ import annotations

import functools
import io
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from gunicorn.app.base import BaseApplication
from redis.exceptions import RedisError
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk.errors import SlackApiError

from bot.errors import SettingsError
from bot.policy import channels_problem
from bot.registry import Registry
from bot.settings import Settings
from bot.slack_client import web_client
from handlers.app import create_app
from handlers.guard import MAX_BODY_BYTES, RequestGuard
from nexy.metrics import gunicorn_hooks, instrumented
from nexy.processes import announcer
from nexy.redis import Patience, connect, durability_warnings, label
from nexy.registry import build_registry
from nexy.workers import where

EVENTS_PATH = "/slack/events"


def wsgi_app(settings: Settings, registry: Registry) -> Callable:
    """The WSGI application: Slack's requests at /slack/events, a readiness probe at /healthz."""
    redis = connect(settings, Patience.ANSWER)
    bolt = SlackRequestHandler(create_app(settings, registry, redis), path=EVENTS_PATH)
    guard = RequestGuard(settings.slack_signing_secret or "", redis)

    def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            try:
                redis.ping()
                status, body = "200 OK", {"ok": True, "redis": "up"}
            except RedisError:
                status, body = "503 Service Unavailable", {"ok": False, "redis": "down"}
            payload = json.dumps(body).encode()
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
            return [payload]
        if environ.get("PATH_INFO") == EVENTS_PATH and environ.get("REQUEST_METHOD") == "POST":
            refused = _guarded(guard, environ)
            if refused is not None:
                status, payload = refused
                # Slack retries an event it got no 2xx for; sent again, a refused request is refused again.
                headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
                start_response(status, [*headers, ("X-Slack-No-Retry", "1")])
                return [payload]
        return bolt(environ, start_response)

    return instrumented(application, settings, redis, EVENTS_PATH)


def _guarded(guard: RequestGuard, environ: dict) -> tuple[str, bytes] | None:
    """Check the headers, then read the body (at most one byte over the limit) once, check it, and
    hand Bolt an unread copy; a refusal's status and body otherwise. A refusal made before the body
    is read leaves it unread: the server closes or drains the connection (gunicorn: at most 64 KB
    within 5 s), it never reads a 400 MB body to answer it."""
    timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
    refusal = guard.check_headers(timestamp, environ.get("CONTENT_LENGTH"))
    if refusal is None:
        environ["wsgi.input"] = io.BytesIO(_body(environ))
        refusal = guard.check(
            environ["wsgi.input"].getvalue(),
            timestamp,
            environ.get("HTTP_X_SLACK_SIGNATURE", ""),
            environ.get("CONTENT_TYPE", ""),
        )
    if refusal is None:
        return None
    return refusal.status, json.dumps({"error": refusal.reason}).encode()


def _body(environ: dict) -> bytes:
    """The body, never more than MAX_BODY_BYTES + 1 bytes of it: by Content-Length when sent (a body
    longer than it says is not read past it); without one (chunked), to its end where the server
    says the input ends there (`wsgi.input_terminated`: gunicorn), else none (wsgiref)."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        return stream.read(min(int(length), MAX_BODY_BYTES + 1)) if int(length) > 0 else b""
    if environ.get("wsgi.input_terminated"):
        return stream.read(MAX_BODY_BYTES + 1)
    return b""


class _Gunicorn(BaseApplication):
    def __init__(self, settings: Settings, options: dict, app_factory: Callable[[Settings], Callable]):
        self.settings = settings
        self.options = options
        self.app_factory = app_factory
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Callable:
        return self.app_factory(self.settings)


def server_options(settings: Settings, host: str) -> dict:
    """gunicorn's options for `nexy web` (the ack-latency benchmark serves its baseline with the same)."""
    return {
        "bind": f"{host}:{settings.port}",
        "workers": settings.nexy_web_workers,
        "worker_class": "gthread",
        "threads": 8,
        "timeout": 30,
        "graceful_timeout": 10,
        "accesslog": None,
        "loglevel": "warning",
    }


def check_redis(settings: Settings, warn: Callable[[str], None] | None = None) -> str:
    """Redis reachable, else one clear error; with `warn`, say what in its configuration can lose
    the bot's keys. Returns how to name it in a log line."""
    redis = connect(settings, Patience.NONE)
    try:
        redis.ping()
        if warn is not None:
            for warning in durability_warnings(redis):
                warn(f"warning: {warning}")
        return label(settings, redis)
    except RedisError as exc:
        raise SettingsError(f"REDIS_URL: cannot reach Redis ({type(exc).__name__})") from None
    finally:
        redis.close()


@contextmanager
def quiet(*loggers: str) -> Iterator[None]:
    """Silence these loggers for a start-up check: slack_sdk logs every failed try and retry at
    length, and the check says what failed in one line."""
    levels = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def check_slack(settings: Settings) -> None:
    """SLACK_BOT_TOKEN accepted by Slack (auth.test), else one clear error."""
    try:
        with quiet("slack_sdk"):
            web_client(settings).auth_test()
    except SlackApiError as exc:
        raise SettingsError(f"SLACK_BOT_TOKEN: Slack refused it ({exc.response.get('error')})") from None
    except OSError as exc:
        raise SettingsError(f"SLACK_API_URL: cannot reach Slack ({type(exc).__name__})") from None


def check_ready(settings: Settings, warn: Callable[[str], None] | None = None) -> str:
    """Before forking workers: Slack credentials set and accepted, Redis reachable; else one clear error."""
    if not settings.has_slack_credentials:
        raise SettingsError("SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are required to serve Slack")
    problem = channels_problem(settings)
    if problem:
        raise SettingsError(problem)
    redis = check_redis(settings, warn)
    check_slack(settings)
    return redis


def serve(
    settings: Settings,
    host: str = "0.0.0.0",
    app_factory: Callable[[Settings], Callable] | None = None,
    *,
    check_durability: bool = True,
) -> None:
    """Serve until stopped: gunicorn with threaded workers (each builds its own app after fork).
    Says one line when it listens: where, which Redis, which VM. The registry is built once, here,
    before the workers fork (the default app: `wsgi_app`)."""
    say = announcer("web")
    redis = check_ready(settings, say if check_durability else None)
    options = server_options(settings, host)
    ready = f"ready on http://{host}:{settings.port}{EVENTS_PATH}; Redis: {redis}; {where(settings)}"
    options["when_ready"] = lambda _server: say(ready)
    if app_factory is None:
        app_factory = functools.partial(wsgi_app, registry=build_registry())
    options.update(gunicorn_hooks())
    _Gunicorn(settings, options, app_factory).run()
