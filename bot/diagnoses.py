"""The facts of an incident's latest diagnosis, kept for a short while: they hold the state every
fix's plan needs, so a plan asked soon after (a finding's button, a typed fix) needs no second
run-command. The apply re-checks that state on the VM and refuses if it changed."""

from __future__ import annotations

import json
import time

from redis import Redis

from bot.contract import KEY_PREFIX


def _key(incident: str) -> str:
    return f"{KEY_PREFIX}:diagnosis:{incident}"


class DiagnosisStore:
    """One incident's latest diagnosis facts, with when they were read."""

    def __init__(self, redis: Redis):
        self.redis = redis

    def remember(self, incident: str, facts: dict[str, str], keep_s: int) -> None:
        if keep_s > 0:
            self.redis.set(_key(incident), json.dumps({"at": time.time(), "facts": facts}), ex=keep_s)

    def recent(self, incident: str, max_age_s: float) -> tuple[dict[str, str], float] | None:
        """The facts and their age in seconds, if read within max_age_s."""
        raw = self.redis.get(_key(incident))
        if not raw or max_age_s <= 0:
            return None
        data = json.loads(raw)
        age = time.time() - float(data["at"])
        return (dict(data["facts"]), age) if age <= max_age_s else None

    def forget(self, incident: str) -> None:
        self.redis.delete(_key(incident))
