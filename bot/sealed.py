"""Secrets typed by a person (a new API key in a modal), kept sealed until the apply needs them.

The web process seals the value (Fernet: AES-128-CBC + HMAC-SHA256, from the `cryptography`
package) with a key of its own, never derived from another secret: NEXY_SEAL_KEY when set (needed
when web and worker run on different machines), else `<NEXY_DATA_DIR>/seal.key`, generated once
(mode 600, created atomically, so the web and worker processes of one machine share it). Only the
ciphertext is stored in Redis, under a random reference with a short TTL. Jobs carry the
reference, never the value; the worker unseals it for the one run-command that needs it and
discards it when the plan is applied, rejected, superseded or expired: the sealed copy is deleted
and the value forgotten by the redaction list of the process that discards it. No other process
keeps it longer: the web forgets it a minute after sealing it, the worker that made the plan as
soon as the plan's run-command is done, and any process once its seal would have expired. A value
never appears in clear in Redis, in job arguments, in logs or in Slack.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from redis import Redis

from bot.contract import KEY_PREFIX
from bot.redaction import forget, remember
from bot.redis_conn import text
from bot.settings import Settings

KEY_FILE = "seal.key"
"""The generated sealing key's file under NEXY_DATA_DIR (when NEXY_SEAL_KEY is unset)."""
SEALER_HOLDS_S = 60
"""How long the process that sealed a value keeps it in its redaction list (the form's request)."""


def seal_key(settings: Settings) -> bytes:
    """NEXY_SEAL_KEY, else the key file under NEXY_DATA_DIR, created with mode 600 the first time."""
    if settings.nexy_seal_key:
        return settings.nexy_seal_key.encode()
    directory = Path(settings.nexy_data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / KEY_FILE
    if not path.exists():
        _create_once(path, Fernet.generate_key())
    return path.read_bytes().strip()


def _create_once(path: Path, key: bytes) -> None:
    """Write the key to a private temporary file and link it into place: the first process wins,
    and no process ever reads a half-written key."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(key)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _key(ref: str) -> str:
    return f"{KEY_PREFIX}:sealed:{ref}"


class SealedStore:
    """Sealed values in Redis, by reference."""

    def __init__(self, redis: Redis, key: bytes):
        self.redis = redis
        self._fernet = Fernet(key)

    @classmethod
    def of(cls, redis: Redis, settings: Settings) -> SealedStore:
        return cls(redis, seal_key(settings))

    def seal(self, value: str, ttl_s: int) -> str:
        """Store the value sealed for ttl_s seconds; returns its reference (safe to put in a job)."""
        # The process that seals it (the web, answering the form) needs it no more once sealed: it
        # redacts it by value only while that request may still log something.
        remember(value, ttl_s=min(ttl_s, SEALER_HOLDS_S))
        ref = secrets.token_urlsafe(16)
        self.redis.set(_key(ref), self._fernet.encrypt(value.encode()), ex=ttl_s)
        return ref

    def unseal(self, ref: str) -> str | None:
        """The value, or None when it expired, was discarded, or was sealed with another key."""
        value = self._read(ref)
        if value is not None:
            remember(value, ttl_s=max(1, self.redis.ttl(_key(ref))))
        return value

    def release(self, ref: str) -> None:
        """This process needs the value no more (its run-command is done): forget it here, keep it sealed."""
        value = self._read(ref)
        if value is not None:
            forget(value)

    def discard(self, ref: str) -> None:
        """Delete the sealed copy and forget the value in this process's redaction list."""
        if not ref:
            return
        value = self._read(ref)
        self.redis.delete(_key(ref))
        if value is not None:
            forget(value)

    def _read(self, ref: str) -> str | None:
        sealed = self.redis.get(_key(ref)) if ref else None
        if not sealed:
            return None
        try:
            return self._fernet.decrypt(text(sealed).encode()).decode()
        except InvalidToken:
            return None
