"""The watch and several VMs, measured (issue "Proactive watch and several VMs"). Prints JSON.

- detection_to_plan: a VM's service stops (its health endpoints fail) with nobody typing; seconds until
  the watch's incident shows the diagnosis's plan. Goal: at most the detection time
  (NEXY_WATCH_FAILURES x NEXY_WATCH_INTERVAL_S) + one run-command + 5 s.
- three_vms: N commands to each of three VMs (one `nexy worker --vm` each) against N commands to one
  VM: wall times. Goal: close to the same (VMs run in parallel, each strictly serialized).
- watch_cost: probes a minute, seconds a tick takes for three healthy VMs, Redis bytes per VM.

Everything runs for real on loopback: signed Slack requests to the bot's WSGI app, workers, the Azure
Run Command emulator (each run-command takes --delay seconds, as the sandbox's do), simulated VMs.

    .venv/bin/python benchmarks/watch_and_vms.py [--interval 1] [--delay 2] [--commands 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis import Redis  # noqa: E402

from bot.contract import IO_QUEUE  # noqa: E402
from bot.settings import Settings, load_settings  # noqa: E402
from bot.watchstate import state_key  # noqa: E402
from jobs.watch import Watch  # noqa: E402
from jobs.worker import build_runtime, serve  # noqa: E402
from nexy.registry import build_registry  # noqa: E402
from nexy.embedded_redis import EmbeddedRedis  # noqa: E402
from nexy.web import wsgi_app  # noqa: E402
from sandbox.azure_emulator import AzureEmulator  # noqa: E402
from sandbox.slack_emulator import SlackEmulator  # noqa: E402
from sandbox.stack import inventory_toml  # noqa: E402
from sandbox.vm import SimulatedVM  # noqa: E402

RG = "NetworkWatcherRG"
NAMES = ("vm1", "vm2", "vm3")


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "NEXY_", "AZURE_"))}
    for name, value in settings.model_dump().items():
        if value is not None:
            text = ",".join(value) if isinstance(value, tuple) else str(value)
            env[name.upper()] = text.lower() if isinstance(value, bool) else text
    return {**env, "PYTHONPATH": str(ROOT)}


def detection_to_plan(settings: Settings, redis: Redis, slack: SlackEmulator, vm: SimulatedVM, delay: float) -> dict:
    """Stop vm1's service; the watch ticks in a thread, a burst worker serves the queues here."""
    watch = Watch(build_runtime(settings, redis, build_registry()))
    stop = threading.Event()
    watch.tick()  # healthy: the baseline
    vm.break_("service-down")
    failed_at = time.monotonic()
    ticker = threading.Thread(target=watch.run, args=(stop,), daemon=True)
    ticker.start()
    plan_at = None
    try:
        while time.monotonic() - failed_at < 120:
            serve(watch.runtime, [IO_QUEUE, *settings.vm_queues], burst=True)
            if any(m.text.startswith(":clipboard: Plan") for m in slack.messages(settings.nexy_watch_channel or "")):
                plan_at = time.monotonic()
                break
            time.sleep(0.05)
    finally:
        stop.set()
        ticker.join(timeout=10)
        vm.heal()
    detection = settings.nexy_watch_failures * settings.nexy_watch_interval_s
    return {
        "seconds": round(plan_at - failed_at, 2) if plan_at else None,
        "detection_s": detection,
        "goal_s": round(detection + delay + 5, 2),
    }


def wall_time(settings: Settings, slack: SlackEmulator, names: tuple[str, ...], n: int, tmp: Path) -> float:
    """Queue n `status --vm NAME` for each VM, then one `nexy worker --vm NAME --burst` each: their wall time."""
    for _ in range(n):
        for name in names:
            slack.slash_command(f"status --vm {name}", channel="C0BENCH")
    env = _env(settings)
    started = time.monotonic()
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "nexy.cli", "worker", "--vm", name, "--burst"],
            env=env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in names
    ]
    for worker in workers:
        worker.wait(timeout=600)
    return round(time.monotonic() - started, 2)


def watch_cost(settings: Settings, redis: Redis, ticks: int = 20) -> dict:
    watch = Watch(build_runtime(settings, redis, build_registry()))
    started = time.perf_counter()
    for _ in range(ticks):
        watch.tick()
    per_tick = (time.perf_counter() - started) / ticks
    endpoints = sum(len(settings.for_vm(name).nexy_health_urls) for name in settings.vm_names)
    memory = [redis.memory_usage(state_key(name)) or 0 for name in settings.vm_names]
    return {
        "vms": len(settings.vm_names),
        "probes_a_minute_at_the_default_60_s": endpoints,
        "tick_seconds_three_healthy_vms": round(per_tick, 4),
        "redis_bytes_per_vm": max(memory),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--interval", type=float, default=1.0, help="NEXY_WATCH_INTERVAL_S for the detection run")
    parser.add_argument("--delay", type=float, default=2.0, help="seconds each emulated run-command takes")
    parser.add_argument("--commands", type=int, default=4, help="N: commands to each VM")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with EmbeddedRedis(tmp / "redis", persist=False) as server, SlackEmulator() as slack, AzureEmulator(
            delay_s=args.delay
        ) as azure:
            vms = {}
            machines = []
            try:
                for n, name in enumerate(NAMES, 1):
                    machine = SimulatedVM(tmp / name, hostname=f"Nexy{n}").create()
                    machines.append(machine)
                    azure.add_vm(RG, f"Nexy{n}", machine)
                    vms[name] = (RG, f"Nexy{n}", machine)
                (tmp / "vms.toml").write_text(inventory_toml(vms), encoding="utf-8")
                settings = load_settings(
                    _env_file=None,
                    slack_bot_token=slack.bot_token,
                    slack_signing_secret=slack.signing_secret,
                    slack_api_url=slack.api_url,
                    nexy_channels="*",
                    redis_url=server.url,
                    nexy_data_dir=str(tmp / "data"),
                    azure_subscription_id=azure.subscription_id,
                    azure_arm_url=azure.url,
                    azure_access_token=azure.token,
                    azure_resource_group=RG,
                    nexy_azure_poll_s=0.05,
                    nexy_vms_file=str(tmp / "vms.toml"),
                    nexy_expected_version=machines[0].expected_version,
                    nexy_watch_channel="C0WATCH",
                    nexy_watch_interval_s=args.interval,
                    nexy_watch_failures=2,
                    nexy_operators="U0ALICE",
                    nexy_approvers="U0BOB",
                )
                redis = Redis.from_url(server.url)
                web = make_server("127.0.0.1", 0, wsgi_app(settings, build_registry()), _Server, handler_class=_Quiet)
                threading.Thread(target=web.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
                slack.bot_url = f"http://127.0.0.1:{web.server_address[1]}/slack/events"
                detection = detection_to_plan(settings, redis, slack, machines[0], args.delay)
                machines[0].wait_healthy(timeout=30)
                one = wall_time(settings, slack, ("vm1",), args.commands, tmp)
                three = wall_time(settings, slack, NAMES, args.commands, tmp)
                cost = watch_cost(settings, redis)
                web.shutdown()
                web.server_close()
            finally:
                for machine in machines:
                    machine.stop()
    print(
        json.dumps(
            {
                "benchmark": "watch_and_vms",
                "run_command_delay_s": args.delay,
                "detection_to_plan": detection,
                "three_vms": {
                    "commands_each": args.commands,
                    "one_vm_seconds": one,
                    "three_vms_seconds": three,
                    "ratio": round(three / one, 2) if one else None,
                },
                "watch_cost": cost,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
