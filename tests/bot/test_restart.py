"""The record survives: after `nexy web`, the worker and the (append-only) Redis server all restart, the
history still lists the resolved incident with its root cause, its chain verifies, and the next command
opens a new incident."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from nexy.embedded_redis import EmbeddedRedis, free_port
from nexy.local import wait_until_up
from nexy.processes import Children
from tests.helpers import settings_env

ROOT = Path(__file__).resolve().parents[2]


def _env(settings, port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "NEXY_", "REDIS_", "AZURE_", "GITHUB_"))}
    env.update(settings_env(settings), PORT=str(port), NEXY_BIND_HOST="127.0.0.1", NEXY_WEB_WORKERS="1",
               PYTHONPATH=str(ROOT))
    return env


def _worker(env: dict) -> None:
    done = subprocess.run([sys.executable, "-m", "nexy.cli", "worker", "--queue", "io", "--burst"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def _serve(slack, env: dict, children: Children, port: int) -> None:
    children.nexy("web", "web", env=env)
    wait_until_up(f"http://127.0.0.1:{port}/healthz", children)
    slack.bot_url = f"http://127.0.0.1:{port}/slack/events"


def test_history_survives_restarting_every_process(tmp_path, slack, make_settings):
    """Close INC-1 with a root cause; stop the web process and Redis; start them again: `history` lists INC-1
    resolved with its root cause, `nexy audit verify` finds its chain intact, `health` opens INC-2."""
    data = tmp_path / "data"
    children = Children()
    server = EmbeddedRedis(data, persist=True).start()
    try:
        settings = make_settings(redis_url=server.url, nexy_operators="U0ALICE")
        port = free_port()
        _serve(slack, _env(settings, port), children, port)
        slack.slash_command("health", user="U0ALICE")
        slack.slash_command("incident close a stale DNS record for the 8081 endpoint", user="U0ALICE")
        _worker(_env(settings, port))
        assert any("Final checklist" in m.text for m in slack.messages("C0OPS"))
        children.stop()
        server.stop()

        server = EmbeddedRedis(data, persist=True).start()
        settings = make_settings(redis_url=server.url, nexy_operators="U0ALICE")
        port = free_port()
        env = _env(settings, port)
        _serve(slack, env, children, port)
        slack.slash_command("history", user="U0BOB")
        assert "a new incident thread (INC-2)" in slack.slash_command("health", user="U0BOB").json()["text"]
        _worker(env)
        listing = next(m for m in slack.messages("C0OPS") if m.ephemeral_to == "U0BOB" and m.blocks)
        text = json.dumps(listing.blocks)
        assert "INC-1" in text and "resolved" in text and "a stale DNS record for the 8081 endpoint" in text
        parents = [m for m in slack.messages("C0OPS") if m.user == slack.bot_user_id and not m.thread_ts
                   and not m.ephemeral_to]
        assert len(parents) == 2 and "INC-2" in parents[1].text
        audit = subprocess.run([sys.executable, "-m", "nexy.cli", "audit", "verify", "INC-1"], env=env,
                               capture_output=True, text=True, timeout=60)
        assert audit.returncode == 0 and "chain intact" in audit.stdout, audit.stdout + audit.stderr
    finally:
        children.stop()
        server.stop()
    assert str(data) not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
