"""What the bot does with each incoming Slack payload, before any work runs.

The handlers pass typed values in and ack with what comes back. Intake parses, checks where
the bot may answer, opens or finds the incident, and enqueues: Redis only, no Slack I/O, so
the ack leaves within milliseconds.
"""
from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass

from redis.exceptions import RedisError

from bot import messages
from bot.commands import ParseError, Request, Route, parse
from bot.dispatch import Dispatcher
from bot.incidents import IncidentStore
from bot.policy import Decision, GroupCache, Policy
from bot.settings import Settings

log = logging.getLogger(__name__)

_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")


@dataclass(frozen=True)
class Reply:
    """What to ack with: an ephemeral text to the user, or nothing."""

    text: str | None = None


class Intake:
    """Turns slash commands and mentions into queued work on an incident."""

    def __init__(self, settings: Settings, store: IncidentStore, dispatcher: Dispatcher):
        self.settings = settings
        self.store = store
        self.dispatcher = dispatcher
        self.policy = Policy(settings, GroupCache(dispatcher.redis))

    def allowed_channel(self, channel: str) -> bool:
        return not self.settings.nexy_channels or channel in self.settings.nexy_channels

    def slash(self, *, text: str, user: str, channel: str) -> Reply:
        """`/nexy <words>`: answer help and errors at once; queue real work on the channel's incident."""
        if not self.allowed_channel(channel):
            return Reply(messages.channel_not_allowed(self.settings.nexy_channels))
        parsed = parse(text)
        if isinstance(parsed, ParseError):
            return Reply(messages.parse_error(parsed))
        if parsed.spec.route is Route.INLINE:
            return Reply(messages.help_message(parsed.args[0] if parsed.args else None))
        try:
            decision = self._fix_decision(parsed, user)
            if decision is not None and decision.allowed is False:
                return Reply(messages.fix_refused(parsed.words, decision.reason, decision.who))
            incident, created = self.store.open_or_attach(channel, user, parsed.words)
            self._submit(parsed, decision, user=user, channel=channel, incident=incident.id, source="slash")
        except RedisError:
            log.exception("enqueue failed for /nexy %s", parsed.words)
            return Reply(messages.enqueue_failed())
        return Reply(messages.queued(parsed, incident, created))

    def event(self, event_id: str | None, event: dict) -> None:
        """An Events API event, before Slack gets its answer: a retry of a delivered event is dropped
        (Bolt does not dedupe); a mention or reaction is queued. If Redis fails, the event id is
        forgotten and the error raised, so that Slack's retry is handled."""
        if event_id and not self.store.first_delivery(event_id):
            return
        try:
            self._event(event)
        except RedisError:
            if event_id:
                with contextlib.suppress(RedisError):
                    self.store.forget_delivery(event_id)
            raise

    def _event(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "app_mention" and self.allowed_channel(event.get("channel", "")):
            self._mention(event.get("text", ""), event.get("user", ""), event.get("channel", ""),
                          event.get("thread_ts"))
        elif kind in ("reaction_added", "reaction_removed"):
            item = event.get("item") or {}
            if item.get("type") == "message":
                self.reaction(reaction=event.get("reaction", ""), user=event.get("user", ""),
                              channel=item.get("channel", ""), ts=item.get("ts", ""),
                              added=kind == "reaction_added")

    def _mention(self, text: str, user: str, channel: str, thread_ts: str | None) -> None:
        words = _MENTION.sub(" ", text or "").strip()
        parsed = parse(words)
        if isinstance(parsed, ParseError) or parsed.spec.route is Route.INLINE:
            answer = messages.parse_error(parsed) if isinstance(parsed, ParseError) else \
                messages.help_message(parsed.args[0] if parsed.args else None)
            self.dispatcher.notify(channel=channel, user=user, text=answer, thread_ts=thread_ts)
            return
        decision = self._fix_decision(parsed, user)
        if decision is not None and decision.allowed is False:
            refusal = messages.fix_refused(parsed.words, decision.reason, decision.who)
            self.dispatcher.notify(channel=channel, user=user, text=refusal, thread_ts=thread_ts)
            return
        if thread_ts:
            incident, _ = self.store.for_thread(channel, thread_ts, user, parsed.words)
        else:
            incident, _ = self.store.open_or_attach(channel, user, parsed.words)
        self._submit(parsed, decision, user=user, channel=channel, incident=incident.id, source="mention")

    def _fix_decision(self, request: Request, user: str) -> Decision | None:
        """The operator check of a fix (None for a check, which anyone may run). `allowed is None`
        means a worker decides, once the operators' user groups are resolved."""
        return self.policy.can_request_fix(user) if request.spec.changes_vm else None

    def _submit(self, request: Request, decision: Decision | None, *, user: str, channel: str, incident: str,
                source: str) -> None:
        self.store.record(incident, "request", user, command=request.words, source=source)
        if decision is not None and decision.allowed is None:
            self.dispatcher.authorize(request, user=user, channel=channel, incident=incident, source=source)
            return
        self.dispatcher.submit(request, user=user, channel=channel, incident=incident, source=source)

    # -- approvals -----------------------------------------------------------------------

    def reaction(self, *, reaction: str, user: str, channel: str, ts: str, added: bool) -> None:
        """A reaction: :white_check_mark: approves and :x: rejects the plan it is on. A worker checks
        the rest; other reactions, and removing one, change nothing."""
        if not added or not self.allowed_channel(channel):
            return
        if reaction in messages.APPROVE_REACTIONS or reaction in messages.REJECT_REACTIONS:
            self.dispatcher.decide(user=user, approve=reaction in messages.APPROVE_REACTIONS, source="reaction",
                                   channel=channel, ts=ts)

    def button(self, *, action_id: str, plan_id: str, user: str) -> None:
        """The Approve / Reject buttons of a plan: the same rules as the reactions."""
        if action_id in ("plan_approve", "plan_reject"):
            self.dispatcher.decide(user=user, approve=action_id == "plan_approve", source="button", plan_id=plan_id)
