"""Memory of `nexy web` and `nexy worker` at start, after 1,000 and after 5,000 commands.

The bot runs as in production (benchmarks/_running_bot.py: the Procfile's `nexy web`, a gunicorn master
and its NEXY_WEB_WORKERS workers, and `nexy worker`, which starts the VM worker and the io worker as
children, the io worker forking RQ's scheduler; a real Redis; the sandbox's emulators and simulated VM;
loopback). Commands are signed slash commands as Slack sends them, from a few threads as fast as the
web process takes them, spread over 50 channels (an incident each), in a mix of cheap ones: half queue
a job (`health`: io queue, a report in the thread; `queue`: io, a report; `incident`: io, an ephemeral
summary read from the incident's timeline), half are answered by the web process itself (`help`).
Each figure is taken once every queued job has run. Memory is VmRSS from /proc/<pid>/status, summed
over each process and its descendants, and PSS from /proc/<pid>/smaps_rollup, which counts a page
shared by a fork and its parent once (the sum of RSS counts it in both). Prints JSON: MB and growth.

    .venv/bin/python benchmarks/memory.py [--checkpoints 1000,5000] [--senders 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import httpx
from _running_bot import Bot, running_bot, tree

from bot.contract import IO_QUEUE
from nexy.local import queues_idle
from sandbox.slack_emulator import VERIFICATION_TOKEN, SlackEmulator

MIX = ("health", "help", "queue", "help", "incident", "help", "health", "help")
"""Half the commands queue a job (health, queue, incident), half are answered by the web process (help)."""
CHANNELS = tuple(f"C0MEM{n:02d}" for n in range(50))
"""An incident each: 100 commands an incident after 5,000."""
DRAIN_TIMEOUT_S = 300.0


def _kib(path: Path, field: str) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _words(pid: int) -> str:
    """What a process of ours runs: `nexy web`, `nexy worker --queue io`, ..."""
    args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    words = args[args.index("nexy.cli") + 1 :] if "nexy.cli" in args else args[:1]
    return " ".join(["nexy", *(w for w in words if w and w != "--child")])


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def memory(root: int) -> dict:
    """VmRSS and PSS (MB) of a process and its descendants: the sums and each process's."""
    processes = []
    for pid in tree(root):
        try:
            name = _words(pid)
            if pid != root and name == _words(_parent(pid)):  # a fork of its parent
                name = "RQ scheduler (fork of the io worker)" if "--queue io" in name else "gunicorn worker"
            elif pid == root and name == "nexy web":
                name = "nexy web (gunicorn master)"
            rss = _kib(Path(f"/proc/{pid}/status"), "VmRSS") / 1024
            pss = _kib(Path(f"/proc/{pid}/smaps_rollup"), "Pss") / 1024
        except (OSError, ValueError):  # it exited meanwhile
            continue
        processes.append({"process": name, "rss_mb": round(rss, 1), "pss_mb": round(pss, 1)})
    return {
        "processes": len(processes),
        "rss_mb": round(sum(p["rss_mb"] for p in processes), 1),
        "pss_mb": round(sum(p["pss_mb"] for p in processes), 1),
        "by_process": sorted(processes, key=lambda p: p["process"]),
    }


def snapshot(bot: Bot) -> dict:
    return {"nexy_web": memory(bot.pid("web")), "nexy_worker": memory(bot.pid("worker"))}


def signed_command(slack: SlackEmulator, text: str, channel: str) -> tuple[bytes, dict]:
    """A slash command's body and headers as Slack sends them (the fields of SlackEmulator.slash_command,
    a fresh trigger_id each: a repeated signed body is refused as a replay)."""
    form = {
        "token": VERIFICATION_TOKEN,
        "team_id": slack.team_id,
        "team_domain": "sandbox",
        "channel_id": channel,
        "channel_name": channel.lower(),
        "user_id": "U0ALICE",
        "user_name": "alice",
        "command": "/nexy",
        "text": text,
        "api_app_id": slack.app_id,
        "is_enterprise_install": "false",
        "response_url": f"{slack.url}/commands/{slack.team_id}/1/bench",
        "trigger_id": uuid.uuid4().hex,
    }
    body = urlencode(form).encode()
    return body, {**slack.sign(body), "Content-Type": "application/x-www-form-urlencoded"}


def send(bot: Bot, start: int, stop: int, senders: int) -> int:
    """Commands start..stop-1 of the mix, from `senders` threads each with a keep-alive connection (a
    new connection a request would cost the sender more than the bot); returns how many were not acked 200."""
    failures = 0
    lock = threading.Lock()
    local = threading.local()
    url = bot.slack.bot_url or ""

    def one(n: int) -> None:
        nonlocal failures
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=30)
            with lock:
                clients.append(local.client)
        channel = CHANNELS[n // len(MIX) % len(CHANNELS)]  # each round of the mix in one channel, then the next
        body, headers = signed_command(bot.slack, MIX[n % len(MIX)], channel)
        try:
            ok = local.client.post(url, content=body, headers=headers).status_code == 200
        except httpx.HTTPError:
            ok = False
        if not ok:
            with lock:
                failures += 1

    clients: list[httpx.Client] = []
    with ThreadPoolExecutor(max_workers=senders) as pool:
        list(pool.map(one, range(start, stop)))
    for client in clients:
        client.close()
    return failures


def drain(bot: Bot) -> float:
    """Wait until every queued job has run; the seconds it took."""
    started = time.monotonic()
    queues = [IO_QUEUE, bot.settings.vm_queue]
    while not queues_idle(bot.redis, queues):
        if time.monotonic() - started > DRAIN_TIMEOUT_S:
            raise TimeoutError(f"the queues did not drain within {DRAIN_TIMEOUT_S:g} s")
        time.sleep(0.1)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoints", default="1000,5000", help="command counts to measure after")
    parser.add_argument("--senders", type=int, default=4, help="threads sending commands")
    args = parser.parse_args()
    checkpoints = sorted(int(n) for n in args.checkpoints.split(","))
    with tempfile.TemporaryDirectory() as tmp, running_bot(Path(tmp)) as bot:
        time.sleep(1.0)  # the processes settle (gunicorn's workers finish importing)
        figures = {"start": snapshot(bot)}
        sent, failures, started = 0, 0, time.monotonic()
        for checkpoint in checkpoints:
            failures += send(bot, sent, checkpoint, args.senders)
            sent = checkpoint
            drain(bot)
            figures[f"after_{checkpoint}"] = {**snapshot(bot), "elapsed_s": round(time.monotonic() - started, 1)}
        posts = len([m for m in bot.slack.messages() if m.user == bot.slack.bot_user_id and not m.ephemeral_to])
        redis_mb = round(int(bot.redis.info("memory")["used_memory"]) / 2**20, 1)
    first, last = figures["start"], figures[f"after_{checkpoints[-1]}"]
    growth = {
        name: {
            "rss_mb": round(last[name]["rss_mb"] - first[name]["rss_mb"], 1),
            "rss_percent": round(100 * (last[name]["rss_mb"] / first[name]["rss_mb"] - 1), 1),
            "pss_mb": round(last[name]["pss_mb"] - first[name]["pss_mb"], 1),
        }
        for name in ("nexy_web", "nexy_worker")
    }
    if len(checkpoints) > 1:
        before = figures[f"after_{checkpoints[-2]}"]
        for name in growth:
            growth[name][f"rss_mb_from_{checkpoints[-2]}"] = round(last[name]["rss_mb"] - before[name]["rss_mb"], 1)
    print(
        json.dumps(
            {
                "benchmark": "memory",
                "commands": sent,
                "mix": "/nexy " + ", ".join(MIX),
                "channels": len(CHANNELS),
                "not_acked": failures,
                "bot_posts": posts,
                "redis_used_mb_at_end": redis_mb,
                **figures,
                f"growth_start_to_{checkpoints[-1]}": growth,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
