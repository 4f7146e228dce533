"""The Bolt app factory: one App wired to Redis, the incident store, the queues and the handlers."""

from __future__ import annotations

import logging

from redis import Redis
from slack_bolt import App
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.errors import SlackApiError

from bot.dispatch import Dispatcher
from bot.errors import SettingsError
from bot.incidents import IncidentStore, Limits
from bot.policy import channels_problem
from bot.registry import Registry
from bot.settings import Settings
from bot.slack_client import web_client
from handlers.intake import Intake


class _DropTokenSkippedWarning(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN itself and warns that it is unused when a client is given:
    our client carries that same token (and the API URL), so the warning says nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


_bolt_logger = logging.getLogger("nexy.bolt")
_bolt_logger.addFilter(_DropTokenSkippedWarning())


def create_app(settings: Settings, registry: Registry, redis: Redis) -> App:
    """A Bolt App for the configured workspace, answering the commands of `registry`, on the caller's
    Redis (the composition root connects it); fails with a SettingsError if Slack rejects the token."""
    if not settings.has_slack_credentials:
        raise SettingsError("SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are required to serve Slack")
    problem = channels_problem(settings)
    if problem:  # fail closed: never every channel, DM and Slack Connect guest by default
        raise SettingsError(problem)
    intake = Intake(settings, IncidentStore(redis, Limits.of(settings)), Dispatcher(settings, redis), registry)
    try:
        app = App(
            signing_secret=settings.slack_signing_secret,
            client=web_client(settings),
            name="nexy",
            logger=_bolt_logger,
            # Answer Slack only once the work is queued: no 10 ms ack polling, and a queue failure
            # answers 500 so that Slack retries.
            process_before_response=True,
        )
    except SlackApiError as exc:
        raise SettingsError(f"SLACK_BOT_TOKEN: Slack refused it ({exc.response.get('error')})") from None
    from handlers import register  # handlers depend on bot/, never the other way round at import time

    register(app, intake)
    return app
