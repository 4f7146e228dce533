"""Metrics and log format for the processes: the multiprocess directory, the scrape, the endpoints.

prometheus-client's multiprocess mode: every process of a run (the gunicorn workers of `nexy web`,
the VM, io and decisions workers and the watch of `nexy worker`) writes its counters and histograms
(bot/metrics.py) to files of its own in one directory, PROMETHEUS_MULTIPROC_DIR, and a scrape adds
them up. The directory is ours: `NEXY_DATA_DIR/metrics/<process>-<pid>`, one per run of a top-level
process, made empty at its start and inherited by its children (an exec'd child reads it from its
environment; gunicorn's forks too). A start also removes the directories of runs whose process is
gone; nothing outside `NEXY_DATA_DIR/metrics` is ever removed, and a PROMETHEUS_MULTIPROC_DIR set by
someone else is replaced, not used.

Scrapes: `GET /metrics` on `nexy web` adds up every run's files on this host (its own workers, and the
`nexy worker` of the same NEXY_DATA_DIR); `nexy worker` serves its own run's files on
NEXY_METRICS_PORT when set. Both add what is a state, not an event, read from Redis at that moment
(queue depth and oldest waiting job, the outbox's backlog, open incidents): a dead process leaves no
stale gauge behind, so no multiprocess gauge (and no `multiprocess_mode`) is needed; a gunicorn
worker that exits is still marked dead (`mark_process_dead`), as prometheus-client asks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from bot import metrics
from bot.contract import DECISIONS_QUEUE, IO_QUEUE, OUTBOX_DUE_KEY, fixes_queue_name, outbox_key
from bot.incidents import IncidentStore
from bot.logs import use_json
from bot.redis_conn import text
from bot.settings import Settings

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
_RUN = re.compile(r"^[a-z]+-(\d+)$")


def root(settings: Settings) -> Path:
    """Where the runs' directories are: ours alone."""
    return (Path(settings.nexy_data_dir) / "metrics").resolve()


def setup(settings: Settings, process: str) -> None:
    """At a process's start, before anything counts: the log format, and the run's metrics directory
    (this process's own when it is a run's first, else the one its parent made); metrics off: none."""
    if settings.nexy_log_format == "json":
        use_json(process)
    inherited = os.environ.get(metrics.MULTIPROC_ENV, "")
    if not settings.nexy_metrics:
        os.environ.pop(metrics.MULTIPROC_ENV, None)
        return
    base = root(settings)
    if inherited and Path(inherited).parent == base and _RUN.match(Path(inherited).name) and Path(inherited).is_dir():
        return  # a child of a run: its parent made the directory
    run = base / f"{process}-{os.getpid()}"
    try:
        base.mkdir(parents=True, exist_ok=True)
        for old in base.iterdir():
            found = _RUN.match(old.name)
            if found and old.is_dir() and not _alive(int(found.group(1))):
                shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir()
    except OSError as exc:  # the bot still serves; only its metrics are off
        log.warning("metrics off: cannot make %s (%s)", run, exc)
        os.environ.pop(metrics.MULTIPROC_ENV, None)
        return
    os.environ[metrics.MULTIPROC_ENV] = str(run)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_dead(pid: int) -> None:
    """A process of this run exited (gunicorn's `child_exit`): its live gauges, if any, stop counting."""
    directory = os.environ.get(metrics.MULTIPROC_ENV)
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, directory)


class _Files:
    """The counters and histograms of every process whose files are under these directories, added up."""

    def __init__(self, directories: Callable[[], Iterable[Path]]):
        self.directories = directories

    def collect(self) -> Iterator[Any]:
        from prometheus_client.multiprocess import MultiProcessCollector

        files = [str(f) for directory in self.directories() for f in sorted(directory.glob("*.db"))]
        for _ in range(3):  # a run's directory removed while read (its start cleaned it): read again
            try:
                yield from MultiProcessCollector.merge([f for f in files if os.path.exists(f)], accumulate=True)
                return
            except FileNotFoundError:
                continue


class _RedisFigures:
    """What is read from Redis at scrape time: each queue's depth and oldest waiting job, the outbox's
    backlog and oldest entry, the open incidents. Redis unreachable: these are left out of the scrape
    (`nexy_redis_up` 0)."""

    def __init__(self, settings: Settings, redis: Redis):
        self.settings = settings
        self.redis = redis
        self.queues = [
            *(name for vm in settings.vm_queues for name in (fixes_queue_name(vm), vm)),
            IO_QUEUE,
            DECISIONS_QUEUE,
        ]

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("nexy_redis_up", metrics.FAMILIES["nexy_redis_up"])
        try:
            figures = list(self._figures(GaugeMetricFamily, time.time()))
        except RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from figures

    def _figures(self, family: Any, now: float) -> Iterator[Any]:
        from rq import Queue
        from rq.job import Job

        depth = family("nexy_queue_depth", metrics.FAMILIES["nexy_queue_depth"], labels=["queue"])
        oldest = family(
            "nexy_queue_oldest_waiting_seconds", metrics.FAMILIES["nexy_queue_oldest_waiting_seconds"], labels=["queue"]
        )
        for name in self.queues:
            queue = Queue(name, connection=self.redis)
            ids = queue.get_job_ids(0, 1)
            age = 0.0
            job = Job.fetch(ids[0], connection=self.redis) if ids else None
            if job is not None and job.enqueued_at is not None:
                at = job.enqueued_at.replace(tzinfo=job.enqueued_at.tzinfo or UTC)
                age = max(0.0, now - at.timestamp())
            depth.add_metric([name], queue.count)
            oldest.add_metric([name], age)
        yield depth
        yield oldest
        backlog, first = self._outbox(now)
        yield family("nexy_outbox_backlog", metrics.FAMILIES["nexy_outbox_backlog"], value=backlog)
        yield family("nexy_outbox_oldest_seconds", metrics.FAMILIES["nexy_outbox_oldest_seconds"], value=first)
        opened = IncidentStore(self.redis).open_count()
        yield family("nexy_incidents_open", metrics.FAMILIES["nexy_incidents_open"], value=opened)

    def _outbox(self, now: float) -> tuple[int, float]:
        """How many entries wait in every incident's outbox, and the age of the oldest head."""
        incidents = [text(raw) for raw in self.redis.zrange(OUTBOX_DUE_KEY, 0, -1)]
        count, oldest = 0, 0.0
        for incident in incidents:
            count += int(self.redis.llen(f"{outbox_key(incident)}:order"))
            head = self.redis.lindex(f"{outbox_key(incident)}:order", 0)
            raw = self.redis.hget(outbox_key(incident), head) if head else None
            if raw:
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    oldest = max(oldest, now - float(json.loads(raw)["created"]))
        return count, oldest


def registry(settings: Settings, redis: Redis, *, host: bool) -> Any:
    """What a scrape reads: every run's files on this host (`host`), or this run's; and Redis's figures."""
    from prometheus_client import CollectorRegistry

    own = Path(os.environ[metrics.MULTIPROC_ENV])
    base = root(settings)

    def directories() -> Iterable[Path]:
        return [d for d in base.iterdir() if d.is_dir() and _RUN.match(d.name)] if host else [own]

    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(_Files(directories))
    scrape.register(_RedisFigures(settings, redis))
    return scrape


def instrumented(application: Callable, settings: Settings, redis: Redis, events_path: str) -> Callable:
    """`nexy web`'s WSGI application with GET /metrics (this host's runs) and each Slack request's
    answer timed; the application itself when metrics are off."""
    if not metrics.enabled():
        return application
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    scrape = registry(settings, redis, host=True)

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if path == events_path:
            started = time.perf_counter()
            try:
                return application(environ, start_response)
            finally:
                metrics.acked(time.perf_counter() - started)
        if path == METRICS_PATH and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            body = generate_latest(scrape)
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))])
            return [body]
        return application(environ, start_response)

    return app


def gunicorn_hooks() -> dict[str, Callable]:
    """gunicorn's options that keep the multiprocess files right when a web worker exits."""
    if not metrics.enabled():
        return {}
    return {"child_exit": lambda _server, worker: process_dead(worker.pid)}


def serve_worker_port(settings: Settings, redis: Redis) -> str | None:
    """`nexy worker`'s own scrape on NEXY_METRICS_PORT (its run's files and Redis's figures), in a
    daemon thread; where it listens, or None when off."""
    if not settings.nexy_metrics_port or not metrics.enabled():
        return None
    from prometheus_client import start_http_server

    start_http_server(settings.nexy_metrics_port, settings.nexy_bind_host, registry(settings, redis, host=False))
    return f"http://{settings.nexy_bind_host}:{settings.nexy_metrics_port}{METRICS_PATH}"
