"""What the bot does with each incoming Slack payload, before any work runs.

The handlers pass typed values in and ack with what comes back. Intake parses, checks where
the bot may answer and who may run what, finds the incident the command works on (opening one
when its scope says so), records the command in that incident's timeline and enqueues: Redis
only, no Slack I/O, so the ack leaves within milliseconds.
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
from bot.incidents import EventKind, Incident, IncidentStore
from bot.policy import Decision, GroupCache, Policy
from bot.postmortem import CHECKLIST
from bot.settings import Settings
from bot.wording import checklist as checklist_wording
from bot.wording import commands as wording
from runbook.item import Route, Scope

log = logging.getLogger(__name__)

_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")


@dataclass(frozen=True)
class Reply:
    """What to ack with: an ephemeral text to the user, or nothing."""

    text: str | None = None


@dataclass(frozen=True)
class _Taken:
    """What became of a request: queued (the text confirms it) or answered at once (the text says why not)."""

    text: str
    queued: bool


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
            return Reply(self._take(parsed, user=user, channel=channel, thread_ts=None, source="slash").text)
        except RedisError:
            log.exception("enqueue failed for /nexy %s", parsed.command)
            return Reply(wording.enqueue_failed())

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
        """`@nexy <command>`: in an incident's thread it works on that incident."""
        if not self.allowed_channel(channel):
            return
        parsed = parse(_MENTION.sub(" ", text or "").strip())
        answer = _inline_answer(parsed)
        if answer is not None or isinstance(parsed, ParseError):
            self.dispatcher.notify(channel=channel, user=user, text=answer or "", thread_ts=thread_ts)
            return
        taken = self._take(parsed, user=user, channel=channel, thread_ts=thread_ts, source="mention")
        if not taken.queued:
            self.dispatcher.notify(channel=channel, user=user, text=taken.text, thread_ts=thread_ts)

    def _take(self, request: Request, *, user: str, channel: str, thread_ts: str | None, source: str) -> _Taken:
        """Check who may run it, find its incident, record and queue it; or say why not."""
        decision = self.policy.for_command(request.spec, user)
        if decision is not None and decision.allowed is False:
            return _Taken(wording.fix_refused(request.words, decision.reason, decision.who), False)
        scope = request.spec.scope
        incident: Incident | None = None
        created = False
        if scope is Scope.CHANNEL:
            if thread_ts:
                incident, created = self.store.for_thread(channel, thread_ts, user, request.words)
            else:
                incident, created = self.store.open_or_attach(channel, user, request.words)
        elif scope is Scope.NEW:
            incident, created = self.store.open_new(channel, user, request.args[0]), True
        elif scope in (Scope.CURRENT, Scope.RECORDED):
            incident = self._existing(request, channel, thread_ts)
            if incident is None:
                named = request.args[0].upper() if scope is Scope.RECORDED and request.args else None
                return _Taken(wording.no_incident(channel, named, in_thread=bool(thread_ts)), False)
        self._submit(
            request, decision, user=user, channel=channel, incident=incident, source=source, thread_ts=thread_ts
        )
        return _Taken(wording.queued(request, incident, created), True)

    def _existing(self, request: Request, channel: str, thread_ts: str | None) -> Incident | None:
        """The incident a CURRENT or RECORDED command works on; None if there is none."""
        if request.spec.scope is Scope.RECORDED and request.args:
            return self.store.get(request.args[0].upper())
        incident = self.store.find_thread(channel, thread_ts) if thread_ts else self.store.current(channel)
        if incident is None and request.spec.scope is Scope.RECORDED and not thread_ts:
            latest = self.store.history(channel, limit=1)
            return latest[0] if latest else None
        return incident

    def _submit(
        self,
        request: Request,
        decision: Decision | None,
        *,
        user: str,
        channel: str,
        incident: Incident | None,
        source: str,
        thread_ts: str | None,
    ) -> None:
        incident_id = incident.id if incident else ""
        if incident is not None:
            self.store.record(
                incident_id, EventKind.COMMAND, user, command=request.words, source=source, section=request.section
            )
        item = WorkItem.new(
            request.command,
            request.args,
            user=user,
            channel=channel,
            incident=incident_id,
            source=source,
            thread_ts=thread_ts,
        )
        if decision is not None and decision.allowed is None:
            self.dispatcher.authorize(item)
            return
        self.dispatcher.submit(item, request.spec.route)

    def home(self, *, user: str, tab: str) -> None:
        """The App Home opened on its Home tab: a worker publishes the view (Slack I/O)."""
        if tab == "home" and user:
            self.dispatcher.publish_home(user)

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
        if action_id in Action.PLAN:
            self.dispatcher.decide(user=user, approve=action_id == Action.APPROVE, source="button", plan_id=plan_id)

    def checklist(self, *, user: str, channel: str, ts: str, block_id: str, checked: list[str]) -> None:
        """Someone ticked or unticked the final checklist: the timeline records who and what, and a
        worker updates the message, so everyone sees the same boxes."""
        incident = self.store.get(checklist_wording.incident_of(block_id))
        if incident is None or incident.channel != channel or not self.allowed_channel(channel):
            return
        known = [value for value, _ in CHECKLIST]
        ticked = [value for value in known if value in checked]
        self.store.record(incident.id, EventKind.CHECKLIST, user, checked=ticked, ts=ts, source="tick")
        self.dispatcher.checklist(incident=incident.id, ts=ts, user=user)


def _inline_answer(parsed: Request | ParseError) -> str | None:
    """What the web process answers itself: a parse error, or help; None for work to queue."""
    if isinstance(parsed, ParseError):
        return wording.parse_error(parsed, help_lines())
    if parsed.spec.route is Route.INLINE:
        name = " ".join(parsed.args)
        command = COMMANDS.get(name)
        return wording.help_message(help_lines(), (command.usage, command.summary) if command else None)
    return None
