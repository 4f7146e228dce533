"""`/nexy health` while the VM is busy: its time to the first reply while a long run-command holds the
VM queue, against the same with the VM idle, in the same run.

The bot runs as in production (benchmarks/_running_bot.py: `nexy web` and `nexy worker` as processes, a
real Redis, the sandbox's emulators and simulated VM, loopback). Idle: N signed `/nexy health`, one at
a time, each timed from the request to the bot's first post (its report), half before the busy part
and half after it (the load of a shared machine drifts). Busy: the Azure emulator is
set to make each run-command last --hold seconds, a `/nexy status` is sent and, once its run-command
runs on the VM (the VM's running key is set), up to N `/nexy health` go the same way while it still
runs; only those answered before the status report count. Health runs on the io queue and must not
wait behind the VM queue: the ratio busy/idle should be close to 1. Prints JSON.

    .venv/bin/python benchmarks/health_while_busy.py [--health 30] [--hold 15]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _running_bot import Bot, running_bot, summary

from bot.contract import vm_running_key

CHANNEL = "C0OPS"
PAUSE_S = 0.2
REPLY_TIMEOUT_S = 60.0


def health_once(bot: Bot) -> tuple[float, list[str]]:
    """One signed `/nexy health`: milliseconds to its report, and the texts of any other posts before it."""
    started = time.perf_counter()
    if bot.slack.slash_command("health", channel=CHANNEL).status_code != 200:
        raise RuntimeError("/nexy health was not acked")
    others = []
    while True:
        at, msg = bot.posts.next(REPLY_TIMEOUT_S)
        if "Health" in msg.text:
            return (at - started) * 1000, others
        others.append(msg.text)


def idle_healths(bot: Bot, n: int) -> list[float]:
    times = []
    for _ in range(n):
        bot.posts.clear()
        times.append(health_once(bot)[0])
        time.sleep(PAUSE_S)
    return times


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--health", type=int, default=30, help="health commands, idle and busy each")
    parser.add_argument("--hold", type=float, default=15.0, help="seconds the status run-command holds the VM")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_bot(Path(tmp)) as bot:
        s = bot.settings
        running = vm_running_key(s.azure_resource_group, s.azure_vm_name)
        health_once(bot)  # opens the incident (its parent message): every later report is a reply
        time.sleep(PAUSE_S)
        idle = idle_healths(bot, args.health // 2)

        bot.stack.azure.delay_s = args.hold
        bot.posts.clear()
        sent = time.perf_counter()
        bot.slack.slash_command("status", channel=CHANNEL)
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while not bot.redis.exists(running):
            if time.monotonic() > deadline:
                raise RuntimeError("the status run-command never started")
            time.sleep(0.01)
        busy, status_at = [], None
        while len(busy) < args.health:
            ms, others = health_once(bot)
            if any("Status" in text for text in others):  # the VM was free again before this reply
                status_at = time.perf_counter()
                break
            if not bot.redis.exists(running):
                break
            busy.append(ms)
            time.sleep(PAUSE_S)
        while status_at is None:
            at, msg = bot.posts.next(args.hold + REPLY_TIMEOUT_S)
            if "Status" in msg.text:
                status_at = at
        bot.stack.azure.delay_s = 0.0
        time.sleep(PAUSE_S)
        idle += idle_healths(bot, args.health - args.health // 2)  # after as well: the machine's load drifts
    quiet, loaded = summary(idle), summary(busy)
    print(
        json.dumps(
            {
                "benchmark": "health_while_busy",
                "measured": "signed /nexy health -> its report stored by the Slack emulator",
                "vm_busy": f"/nexy status whose run-command lasts {args.hold:g} s at the Azure emulator",
                "idle": quiet,
                "while_vm_busy": loaded,
                "ratio_p50": round(loaded["p50_ms"] / quiet["p50_ms"], 2),
                "ratio_p99": round(loaded["p99_ms"] / quiet["p99_ms"], 2),
                "status_reply_s": round(status_at - sent, 2),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
