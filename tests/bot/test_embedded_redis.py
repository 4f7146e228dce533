"""The embedded Redis for local use: started once, shared, persisted."""
from __future__ import annotations

import threading
from contextlib import suppress

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from bot.embedded_redis import ensure_running


def test_processes_started_together_share_one_server(tmp_path):
    """Eight callers at once (web and workers without REDIS_URL) get the same, single redis-server."""
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
        assert client.ping() and client.config_get("appendonly")["appendonly"] == "yes"
    finally:
        with suppress(RedisConnectionError):
            Redis.from_url(urls[0]).shutdown(nosave=True)
