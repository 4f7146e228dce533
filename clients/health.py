"""The health probe (runbook 4 verify): every URL in NEXY_HEALTH_URLS at once, with a timeout.

Reads status, latency and `latest_version` / `latest_build` from each JSON body and says
whether the endpoints agree with each other and with the expected version, if one is set.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.redaction import redact

if TYPE_CHECKING:  # httpx is imported where used: importing this module loads no HTTP client
    import httpx

MAX_BODY_BYTES = 64 * 1024
"""Reading a health body stops past this many bytes: a larger one is not a health answer."""


@dataclass(frozen=True)
class EndpointHealth:
    """One endpoint's answer (or why there was none)."""

    url: str
    up: bool
    status: int | None
    latency_ms: float
    version: str | None = None
    build: str | None = None
    error: str | None = None

    @property
    def release(self) -> str | None:
        if self.version is None:
            return None
        return f"{self.version} build {self.build}" if self.build else self.version


@dataclass(frozen=True)
class HealthReport:
    """All endpoints' answers, and what they say together."""

    endpoints: tuple[EndpointHealth, ...]
    expected: str | None = None
    expected_source: str = ""  # where the expected version comes from (or why there is none)

    @property
    def all_up(self) -> bool:
        return all(e.up for e in self.endpoints)

    @property
    def releases(self) -> set[str]:
        return {e.release for e in self.endpoints if e.up and e.release}

    @property
    def agree(self) -> bool:
        return len(self.releases) <= 1

    @property
    def matches_expected(self) -> bool | None:
        if not self.expected:
            return None
        wanted = normalize(self.expected)
        return bool(self.releases) and all(normalize(r) == wanted for r in self.releases)

    @property
    def healthy(self) -> bool:
        return self.all_up and self.agree and self.matches_expected is not False


def normalize(release: str) -> str:
    """`2.4.0 build 240`, `2.4.0.240` and `2.4.0+240` name the same release."""
    return re.sub(r"\s*(?:build|\+)\s*", ".", release.strip())


def probe(urls: tuple[str, ...] | list[str], timeout_s: float = 5.0, expected: str | None = None) -> HealthReport:
    """Probe every URL concurrently; a slow or broken endpoint costs at most `timeout_s`."""
    return asyncio.run(_probe_all(list(urls), timeout_s, expected))


async def _probe_all(urls: list[str], timeout_s: float, expected: str | None) -> HealthReport:
    import httpx

    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 3.0))
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
        results = await asyncio.gather(*(_probe_one(client, url, timeout_s) for url in urls))
    return HealthReport(tuple(results), expected)


async def _probe_one(client: httpx.AsyncClient, url: str, timeout_s: float) -> EndpointHealth:
    import httpx

    started = time.perf_counter()
    try:
        status, content = await asyncio.wait_for(_get(client, url), timeout_s + 1)
    except (TimeoutError, httpx.HTTPError, OSError) as exc:
        return EndpointHealth(url, False, None, _ms(started), error=_describe(exc, timeout_s))
    latency = _ms(started)
    version = build = None
    if content is not None:
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        if isinstance(body, dict):
            version = _first(body, "latest_version", "version")
            build = _first(body, "latest_build", "build")
    up = status == 200
    error = None if up else f"HTTP {status}"
    if content is None:
        note = f"body over the {MAX_BODY_BYTES // 1024} KiB cap, not read"
        error = f"{error}; {note}" if error else note
    return EndpointHealth(url, up, status, latency, version, build, error)


async def _get(client: httpx.AsyncClient, url: str) -> tuple[int, bytes | None]:
    """The status and the body; None for a body over MAX_BODY_BYTES, read no further than that."""
    async with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
        content = bytearray()
        async for chunk in response.aiter_bytes():
            content += chunk
            if len(content) > MAX_BODY_BYTES:
                return response.status_code, None
        return response.status_code, bytes(content)


def _first(body: dict, *keys: str) -> str | None:
    for key in keys:
        if body.get(key) not in (None, ""):
            return redact(str(body[key]))[:64]
    return None


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _describe(exc: BaseException, timeout_s: float) -> str:
    import httpx

    if isinstance(exc, (httpx.TimeoutException, asyncio.TimeoutError)):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or unreachable"
    return redact(f"{type(exc).__name__}: {exc}")[:200]
