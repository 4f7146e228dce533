"""The Gemini client: one minimal `generateContent` call with a key, to know the key works before a
restart depends on it (runbook 6.3, "Gemini smoke before restart"). The key goes in the
`x-goog-api-key` header, never in the URL, so no access log or error text carries it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from bot.redaction import redact

SMOKE_BODY = {"contents": [{"parts": [{"text": "ping"}]}], "generationConfig": {"maxOutputTokens": 1}}


class SmokeOutcome(str, Enum):
    """What the smoke call found."""

    PASSED = "passed"  # the model answered
    REFUSED = "refused"  # Gemini refused the key (400/401/403: API_KEY_INVALID, expired, no permission)
    UNREACHABLE = "unreachable"  # no answer: network, DNS, timeout
    ERROR = "error"  # another answer (5xx, 429, unexpected)


@dataclass(frozen=True)
class SmokeResult:
    outcome: SmokeOutcome
    status: int | None = None
    detail: str = ""  # Gemini's own message and reason, redacted

    @property
    def passed(self) -> bool:
        return self.outcome is SmokeOutcome.PASSED


def smoke(url: str, key: str, timeout_s: float) -> SmokeResult:
    """One generateContent call with `key`; never raises, never returns the key."""
    import httpx  # where used: importing this module loads no HTTP client

    try:
        response = httpx.post(
            url, json=SMOKE_BODY, timeout=timeout_s, headers={"x-goog-api-key": key, "Accept": "application/json"}
        )
    except httpx.HTTPError as exc:
        return SmokeResult(SmokeOutcome.UNREACHABLE, detail=redact(type(exc).__name__))
    if response.status_code == 200:
        return SmokeResult(SmokeOutcome.PASSED, 200)
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    reasons = [str(d["reason"]) for d in error.get("details") or [] if isinstance(d, dict) and d.get("reason")]
    because = f" ({', '.join(reasons)})" if reasons else ""
    detail = redact(f"{error.get('message') or response.reason_phrase}{because}")
    refused = response.status_code in (400, 401, 403)
    return SmokeResult(SmokeOutcome.REFUSED if refused else SmokeOutcome.ERROR, response.status_code, detail[:300])
