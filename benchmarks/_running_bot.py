"""The bot as it runs for real, shared by the benchmarks that time it end to end (not a benchmark itself).

`running_bot()` starts the sandbox's emulators and simulated VM (`sandbox.stack.SandboxStack`: Slack,
Azure Run Command, GitHub, Gemini), a redis-server of its own (not persisted), and the Procfile's two
processes, `nexy web` (gunicorn master and its workers) and `nexy worker` (which starts the VM worker,
the io worker and the decisions worker as its own children), all on loopback. Everything it started is
stopped when the `with` block ends, also on an error, Ctrl-C or SIGTERM: the processes through
`nexy.processes.Children` (each also dies with its parent), then Redis and the emulators.

`Posts` timestamps every message the bot posts as the Slack emulator records it, so a benchmark can
time a signed slash command to the bot's first message after it.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis import Redis  # noqa: E402
from rq import Worker  # noqa: E402

from bot.contract import DECISIONS_QUEUE, IO_QUEUE, fixes_queue_name  # noqa: E402
from bot.settings import Settings, load_settings  # noqa: E402
from nexy.embedded_redis import EmbeddedRedis, free_port  # noqa: E402
from nexy.local import wait_until_up  # noqa: E402
from nexy.processes import Children  # noqa: E402
from sandbox.slack_emulator import Message, SlackEmulator  # noqa: E402
from sandbox.stack import SandboxStack  # noqa: E402

STOP_GRACE_S = 20.0
"""How long `nexy web` and `nexy worker` get to stop after SIGTERM (a running run-command finishes first)."""


@dataclass
class Bot:
    """What a benchmark drives and reads: the emulators, the settings the processes run with, Redis."""

    stack: SandboxStack
    slack: SlackEmulator
    settings: Settings
    redis: Redis
    children: Children
    posts: Posts

    def pid(self, name: str) -> int:
        return self.children.processes[name].pid


class Posts:
    """Every message the bot posts (chat.postMessage, not ephemeral), with the time the emulator stored it."""

    def __init__(self, slack: SlackEmulator):
        self._queue: queue.Queue[tuple[float, Message]] = queue.Queue()
        self.bot_user = slack.bot_user_id
        slack.subscribe(self._record)

    def _record(self, kind: str, msg: Message) -> None:
        if kind == "post" and msg.user == self.bot_user and msg.ephemeral_to is None:
            self._queue.put((time.perf_counter(), msg))

    def clear(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    def next(self, timeout: float) -> tuple[float, Message]:
        """The next post (its perf_counter time and message); TimeoutError if none comes in time."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"the bot posted nothing within {timeout:g} s") from None


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def running_bot(tmp: Path, *, run_command_delay_s: float = 0.0, env: dict[str, str] | None = None) -> Iterator[Bot]:
    """The sandbox, Redis, `nexy web` and `nexy worker`, ready to take signed requests; all stopped after."""
    signal.signal(signal.SIGTERM, _interrupt)  # make bench's timeout, or a kill: clean up as for Ctrl-C
    stack = SandboxStack(tmp / "sandbox", "healthy", run_command_delay_s=run_command_delay_s)
    children = Children()
    server = None
    try:
        stack.start()
        server = EmbeddedRedis(tmp, persist=False).start()
        port = free_port()
        full_env = {
            **stack.env(),
            "REDIS_URL": server.url,
            "PORT": str(port),
            "NEXY_BIND_HOST": "127.0.0.1",
            "NEXY_DATA_DIR": str(tmp / "data"),
            "PYTHONPATH": str(ROOT),
            "NEXY_CHANNELS": "*",  # the benchmarks speak from many channels
            **(env or {}),
        }
        settings = load_settings(_env_file=None, **{k.lower(): v for k, v in full_env.items() if k != "PYTHONPATH"})
        # --child: this Redis is not persisted on purpose; no durability warning at start.
        children.nexy("web", "web", "--child", env=full_env)
        children.nexy("worker", "worker", "--child", env=full_env)
        wait_until_up(f"http://127.0.0.1:{port}/healthz", children)
        redis = Redis.from_url(server.url)
        _wait_workers(redis, [DECISIONS_QUEUE, IO_QUEUE, fixes_queue_name(settings.vm_queue), settings.vm_queue], children)
        stack.slack.bot_url = f"http://127.0.0.1:{port}/slack/events"
        posts = Posts(stack.slack)
        yield Bot(stack, stack.slack, settings, redis, children, posts)
    finally:
        started = time.monotonic()
        ours = [pid for process in children.processes.values() for pid in tree(process.pid)]
        children.stop(STOP_GRACE_S)
        if time.monotonic() - started > STOP_GRACE_S - 1:
            print(f"benchmark: the bot's processes did not all stop within {STOP_GRACE_S:g} s", file=sys.stderr)
        _reap(ours)
        if server is not None:
            server.stop()
        stack.stop()


def _reap(pids: list[int], timeout: float = 10.0) -> None:
    """Wait until every process of ours is gone (RQ's schedulers, children of the io and decisions
    workers, do not die with their parents by themselves); kill what is left after timeout, so that
    Redis stops last."""
    deadline = time.monotonic() + timeout
    while True:
        left = [pid for pid in pids if _is_ours(pid)]
        if not left:
            return
        if time.monotonic() > deadline:
            for pid in left:
                with suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.05)


def _is_ours(pid: int) -> bool:
    """pid still runs one of our nexy processes (not a zombie, not a reused pid)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z" and b"nexy.cli" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _wait_workers(redis: Redis, queues: list[str], children: Children, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if children.exited():
            raise RuntimeError(f"{', '.join(children.exited())} exited during start-up")
        served = {name for worker in Worker.all(connection=redis) for name in worker.queue_names()}
        if set(queues) <= served:
            return
        time.sleep(0.1)
    raise RuntimeError(f"no RQ worker on {queues} within {timeout:g} s")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank), as benchmarks/ack_latency.py computes it."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[index], 2)


def summary(values_ms: list[float]) -> dict:
    return {
        "n": len(values_ms),
        "p50_ms": percentile(values_ms, 50),
        "p99_ms": percentile(values_ms, 99),
        "max_ms": round(max(values_ms), 2),
    }


def tree(pid: int) -> list[int]:
    """pid and every descendant of it (from /proc/<pid>/stat's parent pid)."""
    parents: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found
