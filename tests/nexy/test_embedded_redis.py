"""The shared embedded Redis of a data folder: one server however many processes use it, persisted
append-only, gone when the last user is gone, and nothing a crash leaves blocks the next start."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from redis import Redis

from nexy.embedded_redis import ensure_running, leave
from tests.leftovers import alive_under

ROOT = Path(__file__).resolve().parents[2]

USER = """
import sys
from nexy.embedded_redis import ensure_running, leave
print(ensure_running(sys.argv[1]), flush=True)
sys.stdin.readline()
print("stopped" if leave(sys.argv[1]) else "others still use it", flush=True)
"""


def _user(data: Path) -> tuple[subprocess.Popen, str]:
    """A process that joins the shared server of data, then leaves when told (a line on stdin)."""
    process = subprocess.Popen([sys.executable, "-c", USER, str(data)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=ROOT)
    return process, process.stdout.readline().strip()


def _release(process: subprocess.Popen) -> str:
    process.stdin.write("\n")
    process.stdin.flush()
    out = process.stdout.readline().strip()
    process.wait(10)
    return out


def _gone(data: Path, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive_under(data):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_threads_started_together_share_one_server(tmp_path):
    """Eight callers at once get the same, single redis-server, append-only with fsync every second."""
    urls: list[str] = []
    barrier = threading.Barrier(8)

    def call() -> None:
        barrier.wait()
        urls.append(ensure_running(str(tmp_path)))

    threads = [threading.Thread(target=call) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    try:
        assert len(set(urls)) == 1 and len(urls) == 8
        client = Redis.from_url(urls[0])
        config = {**client.config_get("append*"), **client.config_get("save")}
        assert config["appendonly"] == "yes" and config["appendfsync"] == "everysec" and config["save"] == "900 1"
        assert len([p for p in alive_under(tmp_path) if "127.0.0.1:" in p and "redis-server" in p]) == 1
    finally:
        assert leave(str(tmp_path)) is True
    assert _gone(tmp_path)


def test_last_process_to_leave_stops_the_server_and_the_data_survives(tmp_path):
    """Two processes share one server; the first to leave keeps it running, the last stops it; the
    next start finds what was written (append-only file)."""
    first, url = _user(tmp_path)
    second, url2 = _user(tmp_path)
    assert url == url2
    Redis.from_url(url).set("nexy:kept", "yes")
    assert _release(first) == "others still use it"
    assert Redis.from_url(url).ping()
    assert _release(second) == "stopped"
    assert alive_under(tmp_path) == []
    assert (tmp_path / "redis" / "appendonly.aof").exists()
    third, url3 = _user(tmp_path)
    try:
        assert Redis.from_url(url3).get("nexy:kept") == b"yes"
    finally:
        _release(third)


def test_killed_users_leave_nothing_running_and_nothing_blocking(tmp_path):
    """kill -9 of every user: the keeper stops the server within a second, and the next start works."""
    first, url = _user(tmp_path)
    second, _ = _user(tmp_path)
    Redis.from_url(url).set("nexy:kept", "yes")
    for process in (first, second):
        process.kill()
        process.wait(5)
    assert _gone(tmp_path, timeout=5), alive_under(tmp_path)
    third, url3 = _user(tmp_path)
    try:
        assert Redis.from_url(url3).get("nexy:kept") == b"yes"
    finally:
        assert _release(third) == "stopped"


def test_a_killed_keeper_takes_its_server_along_and_the_next_start_begins_afresh(tmp_path):
    """kill -9 of the keeper: its redis-server gets SIGTERM (parent death); a new user starts a new one."""
    first, url = _user(tmp_path)
    keeper = next(p for p in alive_under(tmp_path) if "nexy.embedded_redis" in p)
    os.kill(int(keeper.split()[0]), signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any("redis-server" in p for p in alive_under(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any("redis-server" in p for p in alive_under(tmp_path))
    second, url2 = _user(tmp_path)
    try:
        assert Redis.from_url(url2).ping()
    finally:
        _release(second)
        first.kill()
        first.wait(5)
    assert _gone(tmp_path)
