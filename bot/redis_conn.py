"""The Redis connection: REDIS_URL, or the embedded Redis for local use."""

from __future__ import annotations

from redis import Redis

from bot.settings import Settings


def text(value: object) -> str:
    """A value read from Redis (bytes: the client does not decode) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def connect(settings: Settings) -> Redis:
    """A Redis client for REDIS_URL, or for the embedded server (started if not running)."""
    if settings.redis_url:
        return Redis.from_url(settings.redis_url, health_check_interval=30)
    from bot.embedded_redis import ensure_running

    return Redis.from_url(ensure_running(settings.nexy_data_dir), health_check_interval=30)
