"""`make bench`: every benchmark in turn, their figures as ONE JSON document on stdout.

Each benchmark is its own script (run in its own process, so none inherits another's Redis,
emulators or workers) and prints one JSON object; this collects them under their names, with the
machine they ran on and how long each took. A benchmark that fails is recorded with its exit code
and the end of its stderr, and the others still run.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    "ack_latency",
    "first_reply",
    "health_while_busy",
    "serialization",
    "round_trips",
    "watch_and_vms",
    "memory",
    "redis_memory",
    "queue_fairness",
)
TIMEOUT_S = 600


def _first_json(text: str) -> object:
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object in the output")
    value, _ = json.JSONDecoder().raw_decode(text[start:])
    return value


def run(name: str) -> dict:
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, str(HERE / f"{name}.py")],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            cwd=HERE.parent,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"did not finish within {TIMEOUT_S} s"}
    seconds = round(time.perf_counter() - started, 1)
    if done.returncode != 0:
        return {"ok": False, "exit_code": done.returncode, "seconds": seconds, "stderr_tail": done.stderr[-1500:]}
    try:
        return {"ok": True, "seconds": seconds, "figures": _first_json(done.stdout)}
    except ValueError as exc:
        return {"ok": False, "seconds": seconds, "error": str(exc), "stdout_tail": done.stdout[-1500:]}


def main() -> int:
    results = {name: run(name) for name in BENCHMARKS}
    document = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "benchmarks": results,
    }
    print(json.dumps(document, indent=2))
    return 0 if all(result["ok"] for result in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
