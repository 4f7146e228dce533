"""The actions a job can run, by command name; each posts its own result in the thread."""
from __future__ import annotations

from collections.abc import Callable

from bot import messages, render
from bot.dispatch import WorkItem
from jobs import health
from jobs.runtime import Runtime
from jobs.thread import Thread

Action = Callable[[Runtime, Thread, WorkItem], "str | None"]


def run_health(runtime: Runtime, thread: Thread, item: WorkItem) -> str:
    """health: probe 8080 /health and 8081 /updates/health concurrently and post the comparison."""
    settings = runtime.settings
    report = health.probe(settings.nexy_health_urls, settings.nexy_health_timeout_s, settings.nexy_expected_version)
    text, blocks = messages.health_report(report)
    blocks.append(render.context(messages.requested_by(item.user, item.words)))
    thread.post(text, blocks, kind="health", user=item.user)
    return "healthy" if report.healthy else "unhealthy"


ACTIONS: dict[str, Action] = {
    "health": run_health,
}
