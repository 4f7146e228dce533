"""Making the Redis connection, in the composition root: REDIS_URL, or the shared embedded Redis of
NEXY_DATA_DIR (started here when not running); how to name it in a log line (never with its
password), and whether it keeps what the bot writes. The layers below receive a connected client."""

from __future__ import annotations

from enum import Enum
from urllib.parse import urlsplit

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from bot.redis_conn import text
from bot.settings import Settings
from nexy.embedded_redis import ensure_running


class Patience(Enum):
    """How long a Redis command keeps trying through a blip (connection errors and timeouts)."""

    NONE = "none"  # a start-up check: fails at once, in one clear line
    ANSWER = "answer"  # the web side: ~0.75 s, so Slack still gets its answer within 3 s
    RIDE_OVER = "ride-over"  # the workers: ~8.5 s, so a result read back from Azure is not lost


_RETRIES = {
    Patience.NONE: Retry(ExponentialBackoff(), retries=0),
    Patience.ANSWER: Retry(ExponentialBackoff(cap=0.4, base=0.05), retries=4),
    # 0.05 s doubling to 1 s, about 8.5 s in all: a verified apply must not be marked failed because
    # Redis restarted as its result was recorded (redis-py's default, with jitter, gives up after
    # about 1.5 s on average).
    Patience.RIDE_OVER: Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=12),
}


def connect(settings: Settings, patience: Patience = Patience.RIDE_OVER) -> Redis:
    """A Redis client for REDIS_URL, or for the embedded server (this process joins it; started if
    not running), retrying a blip as long as `patience` says."""
    url = settings.redis_url or ensure_running(settings.nexy_data_dir)
    return Redis.from_url(
        url,
        health_check_interval=30,
        retry=_RETRIES[patience],
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def label(settings: Settings, redis: Redis | None = None) -> str:
    """Which Redis, for a log line: scheme, host, port and database of REDIS_URL (no user or
    password), or the embedded server's folder and port."""
    if settings.redis_url:
        url = urlsplit(settings.redis_url)
        port = f":{url.port}" if url.port else ""
        return f"{url.scheme}://{url.hostname or ''}{port}{url.path or ''}"
    kwargs = redis.connection_pool.connection_kwargs if redis is not None else {}
    where = f" on 127.0.0.1:{kwargs['port']}" if "port" in kwargs else ""
    return f"embedded redis-server under {settings.nexy_data_dir}/redis{where} (append-only)"


def durability_warnings(redis: Redis) -> list[str]:
    """What in the server's configuration can lose the bot's keys (queued jobs, plans, incidents):
    eviction when full, or nothing kept on disk. A server that refuses CONFIG (managed Redis often
    does) cannot be checked, and that is said instead."""
    try:
        config = {name: text(value) for name, value in _config(redis).items()}
    except ResponseError as exc:
        return [
            f"could not check whether Redis evicts or loses keys (CONFIG GET refused: {str(exc)[:80]}); "
            "it needs maxmemory-policy noeviction and appendonly yes"
        ]
    warnings = []
    policy, maxmemory = config.get("maxmemory-policy", ""), int(config.get("maxmemory") or 0)
    if maxmemory and policy != "noeviction":
        warnings.append(
            f"Redis evicts keys when full (maxmemory {maxmemory} bytes, maxmemory-policy {policy}): queued jobs, "
            "plans and incidents can vanish; set maxmemory-policy noeviction"
        )
    if config.get("appendonly") == "no" and not config.get("save", "").strip():
        warnings.append(
            "Redis keeps nothing on disk (appendonly no, no save points): a restart loses every incident, plan "
            "and queued job; set appendonly yes (appendfsync everysec)"
        )
    return warnings


def _config(redis: Redis) -> dict:
    values: dict = {}
    for name in ("maxmemory", "maxmemory-policy", "appendonly", "save"):
        values.update(redis.config_get(name))
    return values
