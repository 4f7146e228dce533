"""The per-incident outbox: results that must reach the thread, kept in Redis until Slack confirmed them.

A result is written here first, then delivered. A 429, a 5xx, a timeout or an outage leaves it in
the outbox with its next try due (backoff doubling up to `MAX_BACKOFF_S`, for as long as it takes);
the io worker's watchdog and every starting worker deliver what is due. Delivery is idempotent:
each post carries its outbox id in the message metadata, and an entry whose earlier try may have
landed (the connection dropped after Slack stored it) is looked up in the thread first, never
posted a second time. An entry delivered after a failed try says it was reported late.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from redis import Redis
from slack_sdk.errors import SlackApiError

from bot import render
from bot.contract import KEY_PREFIX
from bot.slack_client import SlackClient

log = logging.getLogger(__name__)

_DUE = f"{KEY_PREFIX}:outbox-due"
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 300.0


def _box(incident: str) -> str:
    return f"{KEY_PREFIX}:outbox:{incident or 'none'}"


class Outbox:
    """Entries by incident (one hash each), and when each is due (one sorted set)."""

    def __init__(self, redis: Redis, slack: SlackClient):
        self.redis = redis
        self.slack = slack

    def send(self, incident: str, channel: str, thread_ts: str | None, text: str, blocks: list | None) -> str | None:
        """Keep the message, then try to deliver it now; its ts, or None when it waits for a retry."""
        entry: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "incident": incident,
            "channel": channel,
            "thread_ts": thread_ts,
            "text": text,
            "blocks": blocks,
            "attempts": 0,
            "created": time.time(),
        }
        pipe = self.redis.pipeline()
        pipe.hset(_box(incident), entry["id"], json.dumps(entry))
        pipe.zadd(_DUE, {f"{incident}|{entry['id']}": time.time()})
        pipe.execute()
        return self._attempt(entry)

    def drain(self) -> int:
        """Deliver every entry that is due; how many were delivered."""
        delivered = 0
        members: list[Any] = list(self.redis.zrangebyscore(_DUE, 0, time.time()))
        for member in members:
            key = str(member.decode() if isinstance(member, bytes) else member)
            incident, _, entry_id = key.partition("|")
            raw = self.redis.hget(_box(incident), entry_id)
            if raw is None:
                self.redis.zrem(_DUE, key)
                continue
            if self._attempt(json.loads(raw)) is not None:
                delivered += 1
        return delivered

    def pending(self, incident: str) -> int:
        return int(self.redis.hlen(_box(incident)))

    def _attempt(self, entry: dict[str, Any]) -> str | None:
        try:
            ts = None
            if entry["attempts"]:  # an earlier try may have landed: look before posting
                try:
                    ts = self.slack.find_tagged(entry["channel"], entry["thread_ts"], entry["id"])
                except SlackApiError as exc:
                    if exc.response.status_code != 200:
                        raise
                    # Slack refused the lookup (a private channel without groups:history): post.
                    log.warning("outbox lookup refused: %s", exc.response.get("error"))
            if ts is None:
                text, blocks = entry["text"], entry["blocks"]
                if entry["attempts"]:
                    note = ":information_source: Reported late: Slack did not take this message at first."
                    text, blocks = f"{note} {text}", [render.context(note), *(blocks or [])]
                ts = self.slack.post_tagged(entry["channel"], text, blocks, entry["thread_ts"], entry["id"])
        except (SlackApiError, OSError) as exc:  # 429 after its retries, 5xx, timeouts, outages
            if isinstance(exc, SlackApiError) and exc.response.status_code == 200 and exc.response.get("error"):
                # Slack answered and refused (channel_not_found, not_in_channel...): no retry changes that.
                log.error("Slack refused outbox entry %s: %s", entry["id"], exc.response.get("error"))
                self._remove(entry)
                return None
            self._retry_later(entry)
            return None
        self._remove(entry)
        return ts

    def _remove(self, entry: dict[str, Any]) -> None:
        pipe = self.redis.pipeline()
        pipe.hdel(_box(entry["incident"]), entry["id"])
        pipe.zrem(_DUE, f"{entry['incident']}|{entry['id']}")
        pipe.execute()

    def _retry_later(self, entry: dict[str, Any]) -> None:
        entry["attempts"] += 1
        delay = min(FIRST_BACKOFF_S * 2 ** (entry["attempts"] - 1), MAX_BACKOFF_S)
        pipe = self.redis.pipeline()
        pipe.hset(_box(entry["incident"]), entry["id"], json.dumps(entry))
        pipe.zadd(_DUE, {f"{entry['incident']}|{entry['id']}": time.time() + delay})
        pipe.execute()
