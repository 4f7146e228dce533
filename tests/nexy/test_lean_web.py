"""The web process stays lean: `nexy web`'s gunicorn worker, having built the app and answered Slack,
holds no engine module (jobs) and no Azure management, Azure identity, GitHub or YAML SDK."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import suppress

import httpx

from nexy.embedded_redis import free_port
from tests.helpers import ROOT, cli_env, settings_env

FORBIDDEN = ("jobs", "azure.mgmt", "azure.identity", "github", "yaml")
"""Module prefixes the web process must not load: the engine, and the SDKs only the workers use."""

# `nexy web` as the console script runs it (nexy.cli, then nexy.web.serve: gunicorn, whose worker builds
# wsgi_app), with one path added in front of the app that answers with the worker's sys.modules.
WEB = """
import json, sys
import nexy.cli  # the console script's module, as `nexy web` starts
from bot.settings import load_settings
from nexy.registry import build_registry
from nexy.web import serve, wsgi_app

BUILT = build_registry()  # in the master, before the fork, as serve() does

def probed(settings):
    app = wsgi_app(settings, BUILT)

    def application(environ, start_response):
        if environ.get("PATH_INFO") == "/modules":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(sorted(sys.modules)).encode()]
        return app(environ, start_response)

    return application

serve(load_settings(), host="127.0.0.1", app_factory=probed, check_durability=False)
"""


def loaded_by_web(settings, slack, tmp_path) -> list[str]:
    """The modules a `nexy web` worker holds once it has answered `/nexy help` and `/nexy health`."""
    port = free_port()
    env = cli_env(tmp_path, **{**settings_env(settings), "PORT": str(port), "NEXY_WEB_WORKERS": "1"})
    web = subprocess.Popen([sys.executable, "-c", WEB], env=env, cwd=ROOT, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            with suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            assert web.poll() is None, f"nexy web exited: {web.stderr.read().decode()[-2000:] if web.stderr else ''}"
            assert time.monotonic() < deadline, "nexy web did not answer /healthz within 30 s"
            time.sleep(0.1)
        slack.bot_url = f"{base}/slack/events"
        for words in ("help", "health"):
            assert slack.slash_command(words).status_code == 200
        return httpx.get(f"{base}/modules", timeout=5).json()
    finally:
        with suppress(ProcessLookupError):
            os.killpg(web.pid, signal.SIGTERM)
        try:
            web.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(web.pid, signal.SIGKILL)
            web.wait()


def test_nexy_web_loads_no_engine_and_no_worker_sdk(settings, slack, tmp_path):
    """A `nexy web` worker that built its app and answered two commands holds no jobs module and no
    azure.mgmt, azure.identity, github or yaml module."""
    modules = loaded_by_web(settings, slack, tmp_path)
    assert "handlers.app" in modules  # the probe did see the web app's process
    loaded = [m for m in modules if m in FORBIDDEN or m.startswith(tuple(f"{p}." for p in FORBIDDEN))]
    assert not loaded, f"nexy web loaded {', '.join(loaded)}"
