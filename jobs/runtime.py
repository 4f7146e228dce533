"""What a job runs with: settings, Redis, the incident store and Slack, built once per worker.

A worker installs its runtime at start; a job started without one (an RQ worker started by
hand) builds it from the environment.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from redis import Redis

from bot.incidents import IncidentStore
from bot.redis_conn import connect
from bot.settings import Settings, load_settings
from bot.slack_client import SlackClient, web_client


@dataclass
class Runtime:
    settings: Settings
    redis: Redis

    @cached_property
    def store(self) -> IncidentStore:
        return IncidentStore(self.redis)

    @cached_property
    def slack(self) -> SlackClient:
        return SlackClient(web_client(self.settings))

    @cached_property
    def executor(self):
        """Where scripts run: Azure Run Command, or bash on this host (NEXY_EXECUTOR=local)."""
        from jobs.executors import executor_for

        return executor_for(self.settings)


_current: Runtime | None = None


def install(runtime: Runtime) -> Runtime:
    global _current
    _current = runtime
    return runtime


def current() -> Runtime:
    """The worker's runtime, built from the environment on first use."""
    global _current
    if _current is None:
        settings = load_settings()
        _current = Runtime(settings, connect(settings))
    return _current
