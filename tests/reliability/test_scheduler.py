"""The scheduler under a Redis outage: a job scheduled before the outage fires on time after it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.scheduler import RQScheduler

from bot.contract import DECISIONS_QUEUE, IO_QUEUE, Task
from jobs.operations import supervise_scheduler
from jobs.worker import build_runtime, make_worker
from nexy.embedded_redis import EmbeddedRedis
from tests.helpers import settings_env

ROOT = Path(__file__).resolve().parents[2]


def _until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except RedisError:
            pass
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("queue", [IO_QUEUE, DECISIONS_QUEUE])
def test_scheduled_notice_fires_after_a_redis_outage(make_settings, slack, tmp_path, queue):
    """Redis down for 3 s kills RQ's scheduler process; the worker's watchdog restarts it (the io
    worker's, and the decisions worker's, where plan expiries are scheduled), so a notice due 5 s
    after it was scheduled is posted within seconds of being due (not after RQ's 10 minutes)."""
    server = EmbeddedRedis(tmp_path / "outage", persist=True).start()
    settings = make_settings(redis_url=server.url, nexy_heartbeat_s=0.5)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "NEXY_", "AZURE_", "REDIS_"))},
        **settings_env(settings),
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "nexy.cli", "worker", "--queue", queue],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    redis = Redis.from_url(server.url)
    try:
        assert _until(lambda: redis.exists(f"rq:scheduler-lock:{queue}"), 20), log.read_text()[-2000:]
        due = time.time() + 5
        Queue(queue, connection=redis).enqueue_in(
            timedelta(seconds=5), Task.NOTIFY, kwargs={"channel": "C0OPS", "user": "U0ALICE", "text": "due now"}
        )
        server.stop()
        time.sleep(3)
        server.start()
        arrived = _until(lambda: any(m.text == "due now" for m in slack.messages("C0OPS")), 15)
        assert arrived, log.read_text()[-2000:]
        assert time.time() - due < 8
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(5)
        redis.close()
        server.stop()


def test_the_watchdog_starts_no_scheduler_once_the_worker_stops(settings, redis, registry):
    """The watchdog restarts a dead scheduler while the worker serves, but never once its stop began:
    a scheduler started then would outlive the worker and keep RQ's scheduler lock."""
    queue = f"io-{uuid.uuid4().hex[:8]}"  # a scheduler lock of its own, whatever else runs
    serving = make_worker(build_runtime(settings, redis, registry), [queue])
    serving.scheduler = RQScheduler(serving.queues, connection=redis)
    supervise_scheduler(serving)
    try:
        assert serving.scheduler._process is not None and serving.scheduler._process.is_alive()
        # Stop it only once it runs as a scheduler (its own signal handlers installed): a fork of this
        # test process stopped before that would run the test process's handlers instead.
        assert _until(lambda: redis.exists(serving.scheduler.key), 10)
    finally:
        serving.teardown()
    assert not serving.scheduler._process.is_alive()
    redis.delete(f"rq:scheduler-lock:{queue}")

    stopping = make_worker(build_runtime(settings, redis, registry), [queue])
    stopping.scheduler = RQScheduler(stopping.queues, connection=redis)
    stopping.teardown()  # the stop begins (teardown, or a signal's request_stop)
    supervise_scheduler(stopping)
    assert stopping.scheduler._process is None
