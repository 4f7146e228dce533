"""Run-command engine overhead and serialization.

1. Overhead: a no-op script, enqueued one at a time on the VM queue and served by one worker,
   through the VM lease and the Azure executor (real SDK) against the Run Command emulator set
   to zero delay; enqueue-to-result latency, next to the same script called on the executor
   directly (no queue, no lease) in the same run.
2. Serialization: two workers on the same VM queue, 50 no-op jobs queued at once; the maximum
   number of run-commands the emulator saw at the same time (must be 1).
Prints JSON.

    .venv/bin/python benchmarks/serialization.py [--jobs 50]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis import Redis  # noqa: E402
from rq import Queue  # noqa: E402
from rq.job import Job, JobStatus  # noqa: E402

from bot.settings import load_settings  # noqa: E402
from nexy.embedded_redis import EmbeddedRedis  # noqa: E402
from sandbox.azure_emulator import AzureEmulator  # noqa: E402
from sandbox.vm import SimulatedVM  # noqa: E402

RG, VM = "NetworkWatcherRG", "Nexy"


def noop_on_vm(runtime) -> dict:
    """The benchmark job: the no-op script under the VM lease, through the configured executor."""
    from clients.runcommand import Script
    from jobs.engine import VMLease

    with VMLease(runtime.redis, RG, VM, {"job": "bench", "words": "noop", "incident": "-", "user": "-"}, 60):
        result = runtime.executor.run(Script("noop"))
    return {"exit_code": result.exit_code}


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    pick = lambda q: round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)  # noqa: E731
    return {"p50_ms": pick(0.5), "p99_ms": pick(0.99), "mean_ms": round(statistics.fmean(values), 2)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(tmp, persist=False) as redis_server:
        vm = SimulatedVM(Path(tmp) / "vm").create()
        try:
            with AzureEmulator(delay_s=0.0) as azure:
                azure.add_vm(RG, VM, vm)
                env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": redis_server.url,
                       "AZURE_SUBSCRIPTION_ID": azure.subscription_id, "AZURE_ARM_URL": azure.url,
                       "AZURE_ACCESS_TOKEN": azure.token, "AZURE_RESOURCE_GROUP": RG, "AZURE_VM_NAME": VM,
                       "NEXY_AZURE_POLL_S": "0.01", "SLACK_BOT_TOKEN": "", "SLACK_SIGNING_SECRET": ""}
                os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
                settings = load_settings(_env_file=None)
                redis = Redis.from_url(redis_server.url)
                queue = Queue(settings.vm_queue, connection=redis)
                direct = measure_direct(settings, args.jobs)
                one = run_workers(env, settings.vm_queue, 1)
                overhead = measure_queued(queue, args.jobs)
                stop(one)
                key = (RG.lower(), VM.lower())
                azure.max_concurrency.pop(key, None)
                started = time.perf_counter()
                jobs = [queue.enqueue("serialization.noop_on_vm", job_timeout=600) for _ in range(args.jobs)]
                two = run_workers(env, settings.vm_queue, 2)
                wait_all(jobs, redis)
                elapsed = time.perf_counter() - started
                stop(two)
                print(json.dumps({
                    "benchmark": "serialization",
                    "executor": "azure (azure-mgmt-compute) → Run Command emulator, delay 0, poll 10 ms",
                    "jobs": args.jobs,
                    "direct_executor": percentiles(direct),
                    "enqueue_to_result_one_worker": percentiles(overhead),
                    "queue_and_lease_overhead_p50_ms": round(
                        percentiles(overhead)["p50_ms"] - percentiles(direct)["p50_ms"], 2
                    ),
                    "two_workers": {"jobs": args.jobs, "seconds": round(elapsed, 2),
                                    "max_concurrency_seen_by_emulator": azure.max_concurrency.get(key),
                                    "conflicts_409": len(azure.conflicts)},
                }, indent=2))
        finally:
            vm.stop()
    return 0


def measure_direct(settings, n: int) -> list[float]:
    from clients.executors import AzureExecutor
    from clients.runcommand import Script

    executor = AzureExecutor(settings)
    executor.run(Script("noop"))
    times = []
    for _ in range(n):
        started = time.perf_counter()
        executor.run(Script("noop"))
        times.append((time.perf_counter() - started) * 1000)
    return times


def measure_queued(queue: Queue, n: int) -> list[float]:
    wait_all([queue.enqueue("serialization.noop_on_vm", job_timeout=600)], queue.connection)  # warm-up
    times = []
    for _ in range(n):
        started = time.perf_counter()
        job = queue.enqueue("serialization.noop_on_vm", job_timeout=600)
        wait_all([job], queue.connection, poll=0.0005)
        times.append((time.perf_counter() - started) * 1000)
    return times


def wait_all(jobs: list[Job], redis: Redis, poll: float = 0.01, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    for job in jobs:
        while True:
            status = job.get_status(refresh=True)
            if status in (JobStatus.FINISHED, JobStatus.FAILED):
                if status == JobStatus.FAILED:
                    raise RuntimeError(f"benchmark job failed: {job.latest_result()}")
                break
            if time.monotonic() > deadline:
                raise TimeoutError("benchmark jobs did not finish")
            time.sleep(poll)


def run_workers(env: dict, queue: str, count: int) -> list[subprocess.Popen]:
    code = ("import sys; sys.path.insert(0, 'benchmarks'); import serialization; "
            "from bot.settings import load_settings; from nexy.redis import connect; "
            "from jobs.worker import build_runtime, serve; from nexy.registry import build_registry; "
            "settings = load_settings(); "
            f"serve(build_runtime(settings, connect(settings), build_registry()), [{queue!r}])")
    return [subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
            for _ in range(count)]


def stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(10)


if __name__ == "__main__":
    sys.exit(main())
