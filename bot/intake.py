"""What the bot does with each incoming Slack payload, before any work runs.

The handlers pass typed values in and ack with what comes back. Intake parses, checks where
the bot may answer, opens or finds the incident, and enqueues: Redis only, no Slack I/O, so
the ack leaves within milliseconds.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from redis.exceptions import RedisError

from bot.commands import COMMANDS, ParseError, Request, help_lines, parse
from bot.contract import APPROVE_REACTIONS, REJECT_REACTIONS, Action, WorkItem
from bot.dispatch import Dispatcher
from bot.incidents import EventKind, IncidentStore
from bot.policy import Decision, GroupCache, Policy
from bot.settings import Settings
from bot.wording import commands as wording
from runbook.item import Route

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
            return Reply(wording.channel_not_allowed(self.settings.nexy_channels))
        parsed = parse(text)
        answer = _inline_answer(parsed)
        if answer is not None or isinstance(parsed, ParseError):
            return Reply(answer)
        try:
            decision = self._fix_decision(parsed, user)
            if decision is not None and decision.allowed is False:
                return Reply(wording.fix_refused(parsed.words, decision.reason, decision.who))
            incident, created = self.store.open_or_attach(channel, user, parsed.words)
            self._submit(parsed, decision, user=user, channel=channel, incident=incident.id, source="slash")
        except RedisError:
            log.exception("enqueue failed for /nexy %s", parsed.words)
            return Reply(wording.enqueue_failed())
        return Reply(wording.queued(parsed, incident, created))

    def once(self, event_id: str | None, take: Callable[[], None]) -> None:
        """Take an Events API event once: a retry of a delivered event is dropped (Bolt does not
        dedupe). If Redis fails, the event id is forgotten and the error raised, so that Slack gets a
        500 and its retry is handled."""
        if event_id and not self.store.first_delivery(event_id):
            return
        try:
            take()
        except RedisError:
            if event_id:
                with contextlib.suppress(RedisError):
                    self.store.forget_delivery(event_id)
            raise

    def mention(self, *, text: str, user: str, channel: str, thread_ts: str | None) -> None:
        """`@nexy <command>`: in an incident's thread it attaches to that incident."""
        if not self.allowed_channel(channel):
            return
        parsed = parse(_MENTION.sub(" ", text or "").strip())
        answer = _inline_answer(parsed)
        if answer is not None or isinstance(parsed, ParseError):
            self.dispatcher.notify(channel=channel, user=user, text=answer or "", thread_ts=thread_ts)
            return
        decision = self._fix_decision(parsed, user)
        if decision is not None and decision.allowed is False:
            refusal = wording.fix_refused(parsed.words, decision.reason, decision.who)
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

    def _submit(
        self, request: Request, decision: Decision | None, *, user: str, channel: str, incident: str, source: str
    ) -> None:
        self.store.record(incident, EventKind.COMMAND, user, command=request.words, source=source)
        item = WorkItem.new(request.command, request.args, user=user, channel=channel, incident=incident, source=source)
        if decision is not None and decision.allowed is None:
            self.dispatcher.authorize(item)
            return
        self.dispatcher.submit(item, request.spec.route)

    # -- approvals -----------------------------------------------------------------------

    def reaction(self, *, reaction: str, user: str, channel: str, ts: str, added: bool) -> None:
        """A reaction: :white_check_mark: approves and :x: rejects the plan it is on. A worker checks
        the rest; other reactions, and removing one, change nothing."""
        if not added or not self.allowed_channel(channel):
            return
        if reaction in APPROVE_REACTIONS or reaction in REJECT_REACTIONS:
            self.dispatcher.decide(
                user=user, approve=reaction in APPROVE_REACTIONS, source="reaction", channel=channel, ts=ts
            )

    def button(self, *, action_id: str, plan_id: str, user: str) -> None:
        """The Approve / Reject buttons of a plan: the same rules as the reactions."""
        if action_id in Action.ALL:
            self.dispatcher.decide(user=user, approve=action_id == Action.APPROVE, source="button", plan_id=plan_id)


def _inline_answer(parsed: Request | ParseError) -> str | None:
    """What the web process answers itself: a parse error, or help; None for work to queue."""
    if isinstance(parsed, ParseError):
        return wording.parse_error(parsed, help_lines())
    if parsed.spec.route is Route.INLINE:
        name = parsed.args[0] if parsed.args else None
        command = COMMANDS.get(name or "")
        return wording.help_message(help_lines(), (command.usage, command.summary) if command else None)
    return None
