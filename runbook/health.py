"""Runbook 4 verify, from outside: 8080 `/health` and 8081 `/updates/health`, status, version and
build, and whether they agree with each other and with the expected version."""

from __future__ import annotations

from bot import render
from bot.context import Context
from bot.item import Route, check
from bot.wording.refs import command
from clients.health import HealthReport
from runbook.version import probe_with_expected

VERSION = command("version")


def render_report(report: HealthReport) -> tuple[str, list[dict]]:
    up = sum(1 for e in report.endpoints if e.up)
    total = len(report.endpoints)
    if report.healthy:
        icon, verdict = ":large_green_circle:", f"all {total} endpoints up"
    elif up == 0:
        icon, verdict = ":red_circle:", f"all {total} endpoints down"
    else:
        icon, verdict = ":large_orange_circle:", f"{up} of {total} endpoints up"
    releases = sorted(report.releases)
    if not releases:
        version_line = "no version reported"
    elif report.agree:
        version_line = f"version {releases[0]}, the same on every endpoint that answered"
    else:
        version_line = "versions disagree: " + " vs ".join(releases)
    if report.matches_expected is True:
        version_line += f"; expected {report.expected} ({report.expected_source}): matches"
    elif report.matches_expected is False:
        version_line += (
            f"; expected {report.expected} ({report.expected_source}): *does not match* (runbook 4: {VERSION})"
        )
    headline = f"{icon} *Health*: {verdict}; {version_line}."
    fields = []
    for e in report.endpoints:
        state = ":white_check_mark: up" if e.up else ":x: down"
        detail = f"HTTP {e.status}" if e.status is not None else e.error
        line = f"*{e.url}*\n{state} · {detail} · {e.latency_ms:g} ms · {e.release or 'no version'}"
        if e.error and e.status is not None:
            line += f" · {e.error}"
        fields.append(line)
    return headline.replace("*", ""), [render.section(headline)] + [render.section(f) for f in fields]


@check("health", section="4", title="Wrong Runtime Version In /health", route=Route.IO)
def health(ctx: Context) -> str:
    """health: 8080 /health and 8081 /updates/health: status, version and build

    `/health` (8080) and `/updates/health` (8081): status, latency, version and build, whether they agree and match
    the expected version (`NEXY_EXPECTED_VERSION`, else the latest release's when `GITHUB_TOKEN` is set); the verify
    of runbook 4
    """
    report = probe_with_expected(ctx.settings)
    ctx.post(render_report(report), kind="health")
    return "healthy" if report.healthy else "unhealthy"
