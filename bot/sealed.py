"""Secrets typed by a person (a new API key in a modal), kept sealed until the apply needs them.

The web process seals the value (Fernet: AES-128-CBC + HMAC-SHA256, from the `cryptography`
package) with a key derived from SLACK_SIGNING_SECRET, which the web and the worker share, and
stores only the ciphertext in Redis under a random reference with a short TTL. Jobs carry the
reference, never the value; the worker unseals it for the one run-command that needs it and
discards it when the plan is applied, rejected, superseded or expired. A value never appears in
clear in Redis, in job arguments, in logs or in Slack.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from redis import Redis

from bot.contract import KEY_PREFIX
from bot.redaction import remember
from bot.redis_conn import text

_INFO = b"nexy-ops sealed secrets v1"


def _fernet(shared_secret: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(shared_secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _key(ref: str) -> str:
    return f"{KEY_PREFIX}:sealed:{ref}"


class SealedStore:
    """Sealed values in Redis, by reference."""

    def __init__(self, redis: Redis, shared_secret: str):
        self.redis = redis
        self._fernet = _fernet(shared_secret)

    def seal(self, value: str, ttl_s: int) -> str:
        """Store the value sealed for ttl_s seconds; returns its reference (safe to put in a job)."""
        remember(value)  # from now on this process redacts it wherever it would appear
        ref = secrets.token_urlsafe(16)
        self.redis.set(_key(ref), self._fernet.encrypt(value.encode()), ex=ttl_s)
        return ref

    def unseal(self, ref: str) -> str | None:
        """The value, or None when it expired, was discarded, or was sealed with another secret."""
        sealed = self.redis.get(_key(ref)) if ref else None
        if not sealed:
            return None
        try:
            value = self._fernet.decrypt(text(sealed).encode()).decode()
        except InvalidToken:
            return None
        remember(value)
        return value

    def discard(self, ref: str) -> None:
        if ref:
            self.redis.delete(_key(ref))
