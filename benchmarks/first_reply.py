"""Time to the first reply: a signed `/nexy health` (and `/nexy status`) to the bot's first message in Slack.

The bot runs as it does in production (benchmarks/_running_bot.py): `nexy web` and `nexy worker` as
processes, a real Redis, the sandbox's Slack, Azure Run Command and GitHub emulators and its simulated
VM, on loopback. Each command is sent as Slack sends it (a signed form POST from the Slack emulator)
and timed from just before the request to the moment the emulator stores the bot's first message
after it (the report in the incident thread; the ephemeral "queued" ack is not counted). Commands
go one at a time, the next only after the previous reply and a short pause, so none waits in a queue.

Baseline, same run: the same work done directly, without the bot: for `health` the two endpoints
probed (`clients.health.probe`, as the job does) and one `chat.postMessage` through slack_sdk; for
`status` the status script run through the Azure executor (same parameters) and one post. The ratio
bot/direct says what signature check, intake, Redis, the queue and the worker add. Run-commands take
--delay seconds at the Azure emulator (0: the figure is the bot's own time, not Azure's), and both
poll Azure every --poll seconds (the sandbox's 0.25 s would round both to quarter seconds).
Prints JSON.

    .venv/bin/python benchmarks/first_reply.py [--health 30] [--status 10] [--delay 0] [--poll 0.02]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _running_bot import Bot, running_bot, summary

from bot.item import patterns_parameter
from bot.slack_client import web_client
from clients.executors import AzureExecutor
from clients.health import probe
from clients.runcommand import Script
from jobs.context import vm_parameters
from runbook.status import JOURNAL_SIGNALS, SCRIPT
from nexy.registry import build_registry

CHANNEL = "C0OPS"
PAUSE_S = 0.2
"""Between a reply and the next command: the workers are idle again when it comes."""

REPLY_TIMEOUT_S = 60.0


def first_replies(bot: Bot, words: str, n: int, expect: str) -> list[float]:
    """n commands, one at a time: milliseconds from the signed request to the bot's first post."""
    times = []
    for _ in range(n):
        bot.posts.clear()
        started = time.perf_counter()
        answer = bot.slack.slash_command(words, channel=CHANNEL)
        if answer.status_code != 200:
            raise RuntimeError(f"/nexy {words}: HTTP {answer.status_code}")
        at, msg = bot.posts.next(REPLY_TIMEOUT_S)
        if expect not in msg.text:
            raise RuntimeError(f"/nexy {words}: the first post was not its report: {msg.text[:200]!r}")
        times.append((at - started) * 1000)
        time.sleep(PAUSE_S)
    return times


def open_incident(bot: Bot) -> None:
    """A first health opens the channel's incident (its parent message): every later report is a reply."""
    bot.slack.slash_command("health", channel=CHANNEL)
    while "Health" not in bot.posts.next(REPLY_TIMEOUT_S)[1].text:
        pass
    time.sleep(PAUSE_S)


def direct(work: Callable[[], None], n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
        time.sleep(PAUSE_S)
    return times


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--health", type=int, default=30, help="/nexy health commands")
    parser.add_argument("--status", type=int, default=10, help="/nexy status commands (0: none)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each run-command takes at the emulator")
    parser.add_argument("--poll", type=float, default=0.02, help="NEXY_AZURE_POLL_S, for the bot and the direct run")
    args = parser.parse_args()
    env = {"NEXY_AZURE_POLL_S": str(args.poll)}
    with tempfile.TemporaryDirectory() as tmp, running_bot(Path(tmp), run_command_delay_s=args.delay, env=env) as bot:
        settings = bot.settings
        slack = web_client(settings)
        executor = AzureExecutor(settings)
        signatures = patterns_parameter((*build_registry().journal_patterns, *JOURNAL_SIGNALS))
        status_script = Script.of(SCRIPT, (*vm_parameters(settings), ("NEXY_SIGNATURES", signatures)))

        def health_direct() -> None:
            report = probe(settings.nexy_health_urls)
            assert report.healthy
            slack.chat_postMessage(channel=CHANNEL, text="health: direct")

        def status_direct() -> None:
            result = executor.run(status_script)
            assert result.exit_code == 0, result.output
            slack.chat_postMessage(channel=CHANNEL, text="status: direct")

        open_incident(bot)
        health_bot = first_replies(bot, "health", args.health, "Health")
        health_base = direct(health_direct, args.health)
        figures: dict = {
            "benchmark": "first_reply",
            "processes": "nexy web (gunicorn) + nexy worker (VM and io workers), real Redis, sandbox emulators",
            "measured": "signed slash command sent -> the bot's first post stored by the Slack emulator",
            "health": _compare(health_bot, health_base, "probe both endpoints + one chat.postMessage"),
        }
        if args.status:
            status_bot = first_replies(bot, "status", args.status, "Status")
            status_base = direct(status_direct, args.status)
            figures["status"] = {
                "run_command_delay_s": args.delay,
                "azure_poll_s": settings.nexy_azure_poll_s,
                **_compare(status_bot, status_base, "the status script through the Azure executor + one post"),
            }
    print(json.dumps(figures, indent=2))
    return 0


def _compare(bot: list[float], base: list[float], how: str) -> dict:
    ours, theirs = summary(bot), summary(base)
    return {
        "bot": ours,
        "direct": {**theirs, "what": how},
        "ratio_p50": round(ours["p50_ms"] / theirs["p50_ms"], 2),
        "ratio_p99": round(ours["p99_ms"] / theirs["p99_ms"], 2),
        "added_p50_ms": round(ours["p50_ms"] - theirs["p50_ms"], 2),
    }


if __name__ == "__main__":
    sys.exit(main())
