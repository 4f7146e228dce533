"""The `nexy` entry points as processes: the piped sandbox console, `nexy web`, and bad settings."""
from __future__ import annotations

import subprocess
import sys
import time

import httpx

from nexy.embedded_redis import free_port
from nexy.local import wait_until_up
from nexy.processes import Children
from tests.helpers import cli_env
from tests.leftovers import alive_under


def test_piped_console_answers_and_exits_cleanly(tmp_path):
    """`printf '/nexy health' | nexy run` prints the incident thread with the version, exits 0, leaves no process."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "nexy.cli", "run"],
        input="/nexy helth\n/nexy health\n",
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=cli_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "Did you mean `health`?" in out
    assert "Incident INC-1" in out
    assert "↳" in out and "2.4.0 build 240" in out
    assert time.monotonic() - started < 60
    assert alive_under(tmp_path) == []
    # It stopped in order, and said nothing of a run-command: none was running.
    assert "nexy run: web stopped (no new requests)" in result.stderr and "workers stopped" in result.stderr
    assert "waiting for the running run-command" not in result.stderr and "Traceback" not in result.stderr


def test_sandbox_ignores_redis_url_and_leaves_that_database_alone(tmp_path, redis, redis_url):
    """`nexy run` in sandbox mode with REDIS_URL set says so, runs its own Redis and writes nothing to that one."""
    redis.set("someone:else", "keep me")
    keyspace, writes = redis.info("keyspace"), redis.info("persistence")["rdb_changes_since_last_save"]
    result = subprocess.run(
        [sys.executable, "-m", "nexy.cli", "run"],
        input="/nexy help\n",
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=cli_env(tmp_path, REDIS_URL=redis_url),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "/nexy health" in result.stdout
    assert "the sandbox ignores REDIS_URL and uses its own embedded Redis" in result.stderr
    assert redis.get("someone:else") == b"keep me"
    assert redis.info("keyspace") == keyspace
    assert redis.info("persistence")["rdb_changes_since_last_save"] == writes
    assert (tmp_path / "data" / "sandbox" / "redis" / "redis.log").exists()
    assert not (tmp_path / "data" / "redis").exists()
    assert alive_under(tmp_path) == []


def test_nexy_web_serves_healthz_and_signed_commands(tmp_path, slack, redis_url):
    """`nexy web` (gunicorn) answers /healthz and a signed slash command; an unsigned one gets 401."""
    port = free_port()
    children = Children()
    env = cli_env(tmp_path, SLACK_BOT_TOKEN=slack.bot_token, SLACK_SIGNING_SECRET=slack.signing_secret,
                  SLACK_API_URL=slack.api_url, REDIS_URL=redis_url, PORT=str(port), NEXY_BIND_HOST="127.0.0.1",
                  NEXY_CHANNELS="*")
    try:
        children.nexy("web", "web", env=env)
        wait_until_up(f"http://127.0.0.1:{port}/healthz", children)
        slack.bot_url = f"http://127.0.0.1:{port}/slack/events"
        assert "queued" in slack.slash_command("health").json()["text"]
        unsigned = httpx.post(slack.bot_url, content=b"command=%2Fnexy&text=health",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert unsigned.status_code == 401
    finally:
        children.stop()


def test_invalid_setting_is_one_clear_message(tmp_path):
    """A bad setting exits 2 with the variable's name and what it expects, not a traceback."""
    result = subprocess.run([sys.executable, "-m", "nexy.cli", "web"], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env=cli_env(tmp_path, PORT="eighty", SLACK_BOT_TOKEN="not-a-token"))
    assert result.returncode == 2
    assert "PORT:" in result.stderr and "SLACK_BOT_TOKEN: a bot token starts with 'xoxb-'" in result.stderr
    assert "Traceback" not in result.stderr


def test_web_without_credentials_says_what_is_missing(tmp_path):
    """`nexy web` with no Slack credentials names the two settings it needs."""
    result = subprocess.run([sys.executable, "-m", "nexy.cli", "web"], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env=cli_env(tmp_path, REDIS_URL="redis://127.0.0.1:1/0"))
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are required" in result.stderr


def test_version_and_every_subcommand_describes_itself(tmp_path):
    """`nexy --version` prints the installed version; each subcommand's --help has a description; `run --help`
    lists the scenarios and a wrong one is refused with the list."""
    from importlib.metadata import version

    from nexy.cli import build_parser
    from sandbox.stack import scenarios

    result = subprocess.run([sys.executable, "-m", "nexy.cli", "--version"], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path, env=cli_env(tmp_path))
    assert result.stdout.strip() == f"nexy {version('nexy-ops')}"
    sub = next(a for a in build_parser()._actions if a.dest == "process")
    assert set(sub.choices) == {"run", "web", "socket", "worker", "watch", "audit", "manifest", "commands"}
    for name, parser in sub.choices.items():
        assert parser.description and len(parser.description) > 40, name
        assert "--child" not in parser.format_help()  # internal: set by a parent process only
    run_help = sub.choices["run"].format_help()
    assert all(name in "".join(run_help.split()) for name in scenarios())  # (help wraps lines, even at a hyphen)
    wrong = subprocess.run([sys.executable, "-m", "nexy.cli", "run", "--scenario", "nope"], capture_output=True,
                           text=True, timeout=60, cwd=tmp_path, env=cli_env(tmp_path))
    assert wrong.returncode == 2 and "invalid choice: 'nope'" in wrong.stderr and "config-perms" in wrong.stderr
