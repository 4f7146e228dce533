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

Beside it, in the same run, what the web process weighs against a bare Bolt app (issue 18's goal: the
largest `nexy web` process within 2x the bare app's RSS):
- `web_footprint`: VmRSS and PSS of `nexy web`'s gunicorn master and of each of its workers, once the
  app is loaded and has answered signed `/nexy help` commands (4 a worker, each on a new connection,
  so that the kernel's accept spreads them over the workers), beside a bare Bolt app (one App, one
  `/nexy` listener that acks, nothing of ours imported) served by gunicorn with `nexy web`'s options
  and worker count, sent the same commands; and the ratios.
- `import_time`: `python -X importtime -c 'import nexy.web'` (the sum of the cumulative times of the
  modules it imports first-hand: the import's total) and how many modules it loads, by package, beside
  the bare app's imports (slack_bolt, its WSGI adapter, gunicorn); the median of 5 runs each.

    .venv/bin/python benchmarks/memory.py [--checkpoints 1000,5000] [--senders 4] [--web-only]

`--web-only` measures the web footprint and the import time and skips the 5,000 commands.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import httpx
from _running_bot import ROOT, Bot, running_bot, tree

from bot.contract import IO_QUEUE
from nexy.embedded_redis import free_port
from nexy.local import queues_idle, wait_until_up
from nexy.processes import Children
from nexy.web import server_options
from sandbox.slack_emulator import VERIFICATION_TOKEN, SlackEmulator

MIX = ("health", "help", "queue", "help", "incident", "help", "health", "help")
"""Half the commands queue a job (health, queue, incident), half are answered by the web process (help)."""
CHANNELS = tuple(f"C0MEM{n:02d}" for n in range(50))
"""An incident each: 100 commands an incident after 5,000."""
DRAIN_TIMEOUT_S = 300.0
REQUESTS_PER_WORKER = 4
"""Signed `/nexy help` commands sent to each web app, per gunicorn worker, before its memory is read."""
IMPORT_RUNS = 5
"""`python -X importtime` runs for each import measured (the median is reported)."""
OURS = ("bot", "clients", "jobs", "runbook", "commands", "handlers", "nexy")
TRACKED = ("jobs", "runbook", "commands", "clients", "azure", "github", "yaml", "httpx", "requests", "rq", "redis",
           "pydantic", "slack_bolt", "slack_sdk", "cryptography", "gunicorn")
"""Packages whose modules the import figures count one by one."""

BARE_APP = """
import json, os
from gunicorn.app.base import BaseApplication
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient


def bare():
    client = WebClient(token=os.environ["BARE_BOT_TOKEN"], base_url=os.environ["BARE_API_URL"])
    app = App(signing_secret=os.environ["BARE_SIGNING_SECRET"], client=client, name="bare")

    @app.command("/nexy")
    def nexy(ack):
        ack("bare")

    bolt = SlackRequestHandler(app, path="/slack/events")

    def application(environ, start_response):
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
        return bolt(environ, start_response)

    return application


class Server(BaseApplication):
    def load_config(self):
        for key, value in json.loads(os.environ["BARE_OPTIONS"]).items():
            self.cfg.set(key, value)

    def load(self):
        return bare()


Server().run()
"""
"""A bare Bolt app on gunicorn: one App, one listener; it imports nothing of ours."""
BARE_IMPORTS = "import gunicorn.app.base, slack_bolt, slack_bolt.adapter.wsgi, slack_sdk"


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


def gunicorn_processes(master: int) -> dict:
    """VmRSS and PSS (MB) of a gunicorn master and of each of its workers, and the largest RSS."""
    master_figures, workers = {}, []
    for pid in tree(master):
        try:
            figures = {
                "rss_mb": round(_kib(Path(f"/proc/{pid}/status"), "VmRSS") / 1024, 1),
                "pss_mb": round(_kib(Path(f"/proc/{pid}/smaps_rollup"), "Pss") / 1024, 1),
            }
        except (OSError, ValueError):  # it exited meanwhile
            continue
        if pid == master:
            master_figures = figures
        else:
            workers.append(figures)
    workers.sort(key=lambda w: w["rss_mb"], reverse=True)
    everyone = [master_figures, *workers]
    return {
        "master": master_figures,
        "workers": workers,
        "largest_rss_mb": max(p.get("rss_mb", 0.0) for p in everyone),
        "rss_mb": round(sum(p.get("rss_mb", 0.0) for p in everyone), 1),
        "pss_mb": round(sum(p.get("pss_mb", 0.0) for p in everyone), 1),
    }


def answer_help(bot: Bot, url: str, count: int) -> int:
    """Send `count` signed `/nexy help` commands to url, each on a new connection, two at a time;
    how many were answered 200."""

    def one(n: int) -> bool:
        body, headers = signed_command(bot.slack, "help", CHANNELS[n % len(CHANNELS)])
        try:
            return httpx.post(url, content=body, headers=headers, timeout=30).status_code == 200
        except httpx.HTTPError:
            return False

    with ThreadPoolExecutor(max_workers=2) as pool:
        return sum(pool.map(one, range(count)))


def web_footprint(bot: Bot) -> dict:
    """`nexy web` (master and workers) and a bare Bolt app on gunicorn with the same options and
    worker count, each loaded and having answered signed commands; their RSS and the ratios."""
    workers = bot.settings.nexy_web_workers
    port = free_port()
    options = {**server_options(bot.settings, "127.0.0.1"), "bind": f"127.0.0.1:{port}"}
    env = {
        "BARE_OPTIONS": json.dumps(options),
        "BARE_BOT_TOKEN": bot.settings.slack_bot_token or "",
        "BARE_SIGNING_SECRET": bot.settings.slack_signing_secret or "",
        "BARE_API_URL": bot.settings.slack_api_url,
    }
    children = Children()
    count = REQUESTS_PER_WORKER * workers
    try:
        bare = children.start("bare", [sys.executable, "-c", BARE_APP], env=env)
        wait_until_up(f"http://127.0.0.1:{port}/healthz", children)
        answered = {
            "nexy_web": answer_help(bot, bot.slack.bot_url or "", count),
            "bare_bolt": answer_help(bot, f"http://127.0.0.1:{port}/slack/events", count),
        }
        time.sleep(0.5)  # the last answers are written and the workers idle
        nexy, bare_app = gunicorn_processes(bot.pid("web")), gunicorn_processes(bare.pid)
        bare_pids = tree(bare.pid)
    finally:
        children.stop()
    for pid in bare_pids:  # gunicorn's workers end with their master; wait until they have
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    largest = round(nexy["largest_rss_mb"] / bare_app["largest_rss_mb"], 2)
    return {
        "server": f"gunicorn gthread, {workers} workers (nexy web's options), loopback",
        "commands_each": count,
        "answered_200": answered,
        "nexy_web": nexy,
        "bare_bolt": bare_app,
        "ratio_largest_process_rss": largest,
        "ratio_master_rss": round(nexy["master"]["rss_mb"] / bare_app["master"]["rss_mb"], 2),
        "ratio_largest_worker_rss": round(nexy["workers"][0]["rss_mb"] / bare_app["workers"][0]["rss_mb"], 2),
        "ratio_total_rss": round(nexy["rss_mb"] / bare_app["rss_mb"], 2),
        "ratio_total_pss": round(nexy["pss_mb"] / bare_app["pss_mb"], 2),
        "goal": "the largest nexy web process within 2x the bare app's largest (RSS)",
        "within_goal": largest <= 2.0,
    }


def _import_once(statement: str) -> tuple[float, list[str]]:
    """One `python -X importtime -c statement`: its total in ms and the modules it loaded, in order."""
    mark = "@@measure"
    code = f"import sys; sys.stderr.write({mark!r} + '\\n'); sys.stderr.flush(); {statement}"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    lines = done.stderr.split(mark + "\n", 1)[1].splitlines()
    total_us, modules = 0, []
    for line in lines:
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if name.strip() == "imported package":
            continue
        modules.append(name.strip())
        if not name.startswith("  "):  # imported first-hand by the statement: its cumulative holds the rest
            total_us += int(cumulative)
    return total_us / 1000, modules


def import_figures(statement: str) -> dict:
    """The median total of IMPORT_RUNS runs of the statement under -X importtime, and its modules by package."""
    runs = [_import_once(statement) for _ in range(IMPORT_RUNS)]
    modules = runs[-1][1]
    top = [name.split(".")[0] for name in modules]
    return {
        "statement": statement,
        "total_ms_median": round(statistics.median(total for total, _ in runs), 1),
        "total_ms_runs": [round(total, 1) for total, _ in runs],
        "modules": len(modules),
        "modules_of_ours": sum(1 for t in top if t in OURS),
        "modules_by_package": {name: top.count(name) for name in TRACKED if name in top},
    }


def import_time() -> dict:
    """`import nexy.web` beside the bare app's imports, under -X importtime."""
    nexy, bare = import_figures("import nexy.web"), import_figures(BARE_IMPORTS)
    return {
        "nexy_web": nexy,
        "bare_bolt": bare,
        "ratio_total_ms": round(nexy["total_ms_median"] / bare["total_ms_median"], 2),
        "ratio_modules": round(nexy["modules"] / bare["modules"], 2),
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
    parser.add_argument("--web-only", action="store_true", help="only the web footprint and the import time")
    args = parser.parse_args()
    checkpoints = sorted(int(n) for n in args.checkpoints.split(","))
    imports = import_time()  # before the bot starts: its processes do not compete with the imports
    with tempfile.TemporaryDirectory() as tmp, running_bot(Path(tmp)) as bot:
        time.sleep(1.0)  # the processes settle (gunicorn's workers finish importing)
        figures = {"start": snapshot(bot)}
        footprint = web_footprint(bot)
        if args.web_only:
            print(json.dumps({"benchmark": "memory", "web_footprint": footprint, "import_time": imports}, indent=2))
            return 0
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
                "web_footprint": footprint,
                "import_time": imports,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
