"""Slack's events, taken once: claim, handle, then confirm.

Slack delivers an event again (`X-Slack-Retry-Num`) when it got no 2xx in 3 s, and Bolt does not
dedupe, so each `event_id` is claimed in Redis before it is handled. The claim is short-lived
(`CLAIM_S`); it becomes the long-lived "delivered" mark (`EVENT_DEDUPE_TTL_S`) only once the
handling is done (its work queued). A handling that fails releases the claim, so Slack's retry is
handled; one whose process died, or whose release failed too (Redis gone), leaves a claim that
expires by itself before Slack's next retry (about a minute later). A retry that comes while the
first delivery is still being handled is answered with an error (`EventInProgress`) and runs
nothing: Slack tries again later and finds the event delivered, or free to run.
"""

from __future__ import annotations

import logging
import uuid
from enum import Enum

from redis import Redis

from bot.contract import KEY_PREFIX
from bot.incidents import EVENT_DEDUPE_TTL_S
from bot.redis_conn import text

log = logging.getLogger(__name__)

CLAIM_S = 30
"""How long a claim holds without being confirmed or released: far longer than a handling takes (it
queues work in milliseconds; Redis is waited for about 0.75 s), shorter than Slack's minute before
its second retry."""
_DELIVERED = "delivered"
_CLAIMED = "claimed:"
# Release a claim only if it is still ours (it may have expired and been taken by a retry since).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class Claim(str, Enum):
    """What a delivery found when it claimed its event id."""

    DELIVERED = "delivered"  # handled before: drop it
    IN_PROGRESS = "in_progress"  # another delivery handles it now


class EventInProgress(Exception):
    """A retry of an event whose first delivery is still being handled: Slack should come back later."""


class Deliveries:
    """The claims and delivered marks of Slack's events, in Redis."""

    def __init__(self, redis: Redis, claim_s: float = CLAIM_S):
        self.redis = redis
        self.claim_s = claim_s

    def claim(self, event_id: str) -> str | Claim:
        """A token for handling this event now, or why not."""
        token = _CLAIMED + uuid.uuid4().hex
        key = _key(event_id)
        if self.redis.set(key, token, nx=True, px=int(self.claim_s * 1000)):
            return token
        held = self.redis.get(key)  # None: the claim just ended; Slack comes back to find out how
        return Claim.DELIVERED if held and not text(held).startswith(_CLAIMED) else Claim.IN_PROGRESS

    def confirm(self, event_id: str) -> None:
        """The event was handled (its work queued): Slack's retries of it are dropped from now on."""
        self.redis.set(_key(event_id), _DELIVERED, ex=EVENT_DEDUPE_TTL_S)

    def release(self, event_id: str, token: str) -> None:
        """The handling failed: Slack's retry may run it."""
        self.redis.eval(_RELEASE, 1, _key(event_id), token)


def _key(event_id: str) -> str:
    return f"{KEY_PREFIX}:event:{event_id}"
