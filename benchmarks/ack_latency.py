"""Ack latency of `/nexy health` under a fixed request rate, against a bare Bolt app that only acks,
and against `nexy web` with its metrics off (NEXY_METRICS=false: no /metrics, nothing counted).

The apps run under the same production server (`nexy web`'s gunicorn options), with a real
Redis and a worker consuming the jobs; requests are signed slash commands sent on a fixed
schedule (open loop), alternating between the two apps so both see the same machine state.
Prints JSON: p50/p99 for each and their ratios (`metrics_on_vs_off`: the cost of the metrics).

    .venv/bin/python benchmarks/ack_latency.py [--rate 40] [--seconds 10]
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

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nexy.embedded_redis import EmbeddedRedis, free_port  # noqa: E402
from nexy.local import wait_until_up  # noqa: E402
from nexy.processes import Children  # noqa: E402
from sandbox.health_server import HealthServer  # noqa: E402
from sandbox.slack_emulator import SlackEmulator  # noqa: E402

BARE_APP = """
import sys
from slack_bolt import App
from bot.settings import load_settings
from bot.slack_client import web_client
from nexy.web import serve

def bare(settings):
    from slack_bolt.adapter.wsgi import SlackRequestHandler
    app = App(signing_secret=settings.slack_signing_secret, client=web_client(settings), name="bare")

    @app.command("/nexy")
    def nexy(ack):
        ack()

    bolt = SlackRequestHandler(app, path="/slack/events")

    def application(environ, start_response):
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
        return bolt(environ, start_response)
    return application

serve(load_settings(), host="127.0.0.1", app_factory=bare)
"""


METRICS_COST = """
import os, sys, time
from bot import metrics
n = int(sys.argv[1])
metrics.acked(0.004); metrics.command_received("health", metrics.Outcome.QUEUED)  # files made once
started = time.perf_counter()
for _ in range(n):
    metrics.acked(0.004)
    metrics.command_received("health", metrics.Outcome.QUEUED)
print((time.perf_counter() - started) / n * 1e6)
"""
"""What nexy web's metrics add to one request, alone (its ack histogram and its command counter, written to
the multiprocess files): a bound that a loaded machine's noise cannot hide."""


def metrics_cost_us(calls: int = 20000) -> float:
    with tempfile.TemporaryDirectory() as directory:
        done = subprocess.run(
            [sys.executable, "-c", METRICS_COST, str(calls)], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PROMETHEUS_MULTIPROC_DIR": directory},
        )
    return round(float(done.stdout.strip()), 2)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[index], 2)


def summary(latencies: list[float], errors: int) -> dict:
    return {
        "requests": len(latencies) + errors,
        "errors": errors,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "mean_ms": round(statistics.fmean(latencies), 2),
        "max_ms": round(max(latencies), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second to each app")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=int, default=30, help="requests to each app before measuring")
    args = parser.parse_args()

    children = Children()
    with tempfile.TemporaryDirectory() as data, EmbeddedRedis(data, persist=False) as redis, \
            SlackEmulator() as slack, HealthServer() as health:
        nexy_port, bare_port, off_port = free_port(), free_port(), free_port()
        env = {
            "SLACK_BOT_TOKEN": slack.bot_token, "SLACK_SIGNING_SECRET": slack.signing_secret,
            "SLACK_API_URL": slack.api_url, "REDIS_URL": redis.url, "NEXY_BIND_HOST": "127.0.0.1", "NEXY_CHANNELS": "*",
            "NEXY_HEALTH_URLS": ",".join(health.urls), "PYTHONPATH": str(ROOT), "NEXY_DATA_DIR": data,
        }
        try:
            children.nexy("worker", "worker", env=env)
            children.nexy("web", "web", env={**env, "PORT": str(nexy_port)})
            children.nexy("web-metrics-off", "web", env={**env, "PORT": str(off_port), "NEXY_METRICS": "false"})
            children.start("bare", [sys.executable, "-c", BARE_APP], env={**env, "PORT": str(bare_port)})
            wait_until_up(f"http://127.0.0.1:{nexy_port}/healthz", children)
            wait_until_up(f"http://127.0.0.1:{bare_port}/healthz", children)
            wait_until_up(f"http://127.0.0.1:{off_port}/healthz", children)
            targets = {"nexy": nexy_port, "bare_bolt": bare_port, "nexy_metrics_off": off_port}
            results = run_load(slack, targets, args.rate, args.seconds, args.warmup)
        finally:
            children.stop()
    nexy, bare, off = results["nexy"], results["bare_bolt"], results["nexy_metrics_off"]
    print(json.dumps({
        "benchmark": "ack_latency",
        "rate_per_s_each": args.rate,
        "seconds": args.seconds,
        "server": "gunicorn gthread (nexy web's options), loopback",
        "nexy": nexy,
        "bare_bolt": bare,
        "ratio_p50": round(nexy["p50_ms"] / bare["p50_ms"], 3),
        "ratio_p99": round(nexy["p99_ms"] / bare["p99_ms"], 3),
        "nexy_metrics_off": off,
        "metrics_on_vs_off": {
            "p50": round(nexy["p50_ms"] / off["p50_ms"], 3),
            "p99": round(nexy["p99_ms"] / off["p99_ms"], 3),
            "mean": round(nexy["mean_ms"] / off["mean_ms"], 3),
            "goal": "within 5 % (at most 1.05)",
            "metrics_cost_us_per_request": (cost := metrics_cost_us()),
            "metrics_cost_share_of_nexy_p50": round(cost / 1000 / nexy["p50_ms"], 5),
        },
    }, indent=2))
    return 0


def run_load(slack: SlackEmulator, targets: dict[str, int], rate: float, seconds: float, warmup: int) -> dict:
    latencies: dict[str, list[float]] = {name: [] for name in targets}
    errors = {name: 0 for name in targets}
    lock = threading.Lock()
    clients = {name: httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) for name, port in targets.items()}

    def send(name: str, record: bool) -> None:
        # A fresh trigger_id each time, as Slack sends: the same signed body twice is refused as a replay.
        body = (f"token=x&team_id=T0SANDBOX&channel_id=C0BENCH&user_id=U0ALICE&command=%2Fnexy&text=health"
                f"&response_url=http%3A%2F%2F127.0.0.1%3A1%2Fnone&trigger_id={uuid.uuid4().hex}").encode()
        headers = {**slack.sign(body), "Content-Type": "application/x-www-form-urlencoded"}
        started = time.perf_counter()
        try:
            ok = clients[name].post("/slack/events", content=body, headers=headers).status_code == 200
        except httpx.HTTPError:
            ok = False
        elapsed = (time.perf_counter() - started) * 1000
        if record:
            with lock:
                if ok:
                    latencies[name].append(elapsed)
                else:
                    errors[name] += 1

    with ThreadPoolExecutor(max_workers=32) as pool:
        for _ in range(warmup):
            for name in targets:
                pool.submit(send, name, False).result()
        total = int(rate * seconds)
        start = time.perf_counter()
        futures = []
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            names = list(targets)
            order = names[i % len(names):] + names[: i % len(names)]  # each app first as often as the others
            for name in order:
                futures.append(pool.submit(send, name, True))
        for future in futures:
            future.result()
    for client in clients.values():
        client.close()
    return {name: summary(latencies[name], errors[name]) for name in targets}


if __name__ == "__main__":
    sys.exit(main())
