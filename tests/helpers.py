"""Helpers shared by the test files: the Azure names and people the tests use, the bot's messages in
the Slack emulator, asking and approving through signed requests, Redis read whole, and the
environment of a `nexy` child process (bare, or reproducing a Settings). The fixtures that go with
them are in conftest.py."""
from __future__ import annotations

import os
import re
import zlib
from pathlib import Path

from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]

RG, VM_NAME = "NetworkWatcherRG", "Nexy"
KEY = (RG.lower(), VM_NAME.lower())
OPERATOR, APPROVER = "U0ALICE", "U0BOB"
SECOND_APPROVER = "U0DAVE"  # the second person a plan needing two approvals waits for (`fix deps`, `fix api-key`)


def bot_messages(slack, channel="C0OPS"):
    return [m for m in slack.messages(channel) if m.user == slack.bot_user_id and not m.ephemeral_to]


def ask(slack, work, settings, words, user=OPERATOR):
    reply = slack.slash_command(words, user=user)
    assert "queued" in reply.json()["text"], reply.json()["text"]
    work(settings)
    return bot_messages(slack)[-1]


def approvals_needed(plan) -> int:
    """How many approvers a plan message waits for (`waits for 2 approvals`; one otherwise)."""
    found = re.search(r"waits for (\d+) approvals", plan.text)
    return int(found.group(1)) if found else 1


def approve(slack, work, settings, plan) -> str:
    """Approve a plan with as many approvers as it needs (APPROVER, then SECOND_APPROVER), and work."""
    for user in (APPROVER, SECOND_APPROVER)[: approvals_needed(plan)]:
        slack.reaction_added("white_check_mark", user=user, channel="C0OPS", ts=plan.ts)
    work(settings)
    return "\n".join(f"{m.text}\n{m.blocks}" for m in bot_messages(slack))


def redis_dump(redis) -> str:
    """Every value in Redis as text, RQ's compressed job data included."""
    parts = []
    for key in redis.scan_iter():
        kind = redis.type(key).decode()
        if kind == "string":
            values = [redis.get(key)]
        elif kind == "hash":
            values = list(redis.hgetall(key).values())
        elif kind == "list":
            values = redis.lrange(key, 0, -1)
        elif kind == "zset":
            values = [m for m, _ in redis.zrange(key, 0, -1, withscores=True)]
        elif kind == "set":
            values = list(redis.smembers(key))
        else:
            values = [str(redis.xrange(key)).encode()] if kind == "stream" else []
        for value in values:
            parts.append(value.decode("utf-8", "replace"))
            try:
                parts.append(zlib.decompress(value).decode("utf-8", "replace"))
            except zlib.error:
                pass
    return "\n".join(parts)


def type_key(slack, key: str, user=OPERATOR):
    """Type a key in the private form opened by the last command or button."""
    assert slack.last_view and slack.last_view["callback_id"] == "secret_form"
    return slack.view_submission(user=user, callback_id="secret_form",
                                 values={"secret": {"value": {"type": "plain_text_input", "value": key}}})


def cli_env(tmp_path, **extra) -> dict:
    """The environment for a `nexy` child process: none of ours inherited, its data under tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "NEXY_", "REDIS_", "AZURE_", "GITHUB_"))}
    env.update({"NEXY_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}, **extra)
    return env


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment variables that reproduce these settings in a child process."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, tuple):
            value = ",".join(value)
        env[name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def readme_table(name: str) -> str:
    """The text between README's `<!-- name:begin -->` and `<!-- name:end -->` markers (a generated table)."""
    found = re.search(rf"<!-- {name}:begin -->\n(.*?)<!-- {name}:end -->", (ROOT / "README.md").read_text(), re.S)
    assert found, f"README.md has no <!-- {name}:begin --> / <!-- {name}:end --> markers"
    return found.group(1)
