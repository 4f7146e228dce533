"""What the kernel needs of Redis: reading back a value the client did not decode. Connections
are made in the composition root (nexy/redis.py) and passed down."""

from __future__ import annotations


def text(value: object) -> str:
    """A value read from Redis (bytes: the client does not decode) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)
