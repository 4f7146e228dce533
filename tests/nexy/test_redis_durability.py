"""`nexy web` and `nexy worker` warn at start when their Redis would evict or lose keys, checked
against real redis-server instances configured each way (and one that refuses CONFIG)."""
from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from redis import Redis
from redis.exceptions import RedisError

from nexy.redis import durability_warnings
from nexy.embedded_redis import free_port, server_binary
from tests.helpers import cli_env

CONFIGS = {
    "production": ["--appendonly", "yes", "--maxmemory-policy", "noeviction", "--maxmemory", "100mb"],
    "rdb-only": ["--appendonly", "no", "--save", "60", "1"],
    "evicts": ["--appendonly", "yes", "--maxmemory", "10mb", "--maxmemory-policy", "allkeys-lru"],
    "volatile-unbounded": ["--appendonly", "yes", "--maxmemory", "0", "--maxmemory-policy", "volatile-lru"],
    "forgets": ["--appendonly", "no", "--save", ""],
    "managed": ["--appendonly", "yes", "--rename-command", "CONFIG", ""],
}


@pytest.fixture
def server(tmp_path) -> Iterator:
    """Start a real redis-server with one of CONFIGS; returns its URL."""
    started: list[subprocess.Popen] = []

    def start(name: str) -> str:
        port = free_port()
        process = subprocess.Popen([server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(tmp_path),
                                    *CONFIGS[name]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(process)
        client = Redis(port=port)
        for _ in range(200):
            try:
                client.ping()
                break
            except RedisError:
                time.sleep(0.02)
        return f"redis://127.0.0.1:{port}/0"

    yield start
    for process in started:
        process.terminate()
        process.wait(10)


@pytest.mark.parametrize("name, expected", [
    ("production", []),
    ("rdb-only", []),
    ("volatile-unbounded", []),
    ("evicts", ["Redis evicts keys when full (maxmemory 10485760 bytes, maxmemory-policy allkeys-lru): queued jobs, "
                "plans and incidents can vanish; set maxmemory-policy noeviction"]),
    ("forgets", ["Redis keeps nothing on disk (appendonly no, no save points): a restart loses every incident, plan "
                 "and queued job; set appendonly yes (appendfsync everysec)"]),
])
def test_warnings_match_the_servers_configuration(server, name, expected):
    """Eviction with a memory limit, or no persistence at all, is named with its setting and the fix."""
    assert durability_warnings(Redis.from_url(server(name))) == expected


def test_a_server_that_refuses_config_is_said_to_be_unchecked(server):
    """A managed Redis without CONFIG: the check says it could not look, and what the server needs."""
    (warning,) = durability_warnings(Redis.from_url(server("managed")))
    assert warning.startswith("could not check whether Redis evicts or loses keys (CONFIG GET refused: ")
    assert warning.endswith("it needs maxmemory-policy noeviction and appendonly yes")


def test_nexy_worker_warns_at_start(tmp_path, server):
    """`nexy worker --queue io --burst` against an evicting Redis prints the warning first, then works."""
    result = subprocess.run([sys.executable, "-m", "nexy.cli", "worker", "--queue", "io", "--burst"], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path, env=cli_env(tmp_path, REDIS_URL=server("evicts")))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("nexy worker: warning: Redis evicts keys when full (maxmemory 10485760 bytes")
    assert lines[1].startswith("nexy worker: ready: serving queue io; Redis: redis://127.0.0.1:")
