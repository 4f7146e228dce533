"""What the bot does with each incoming Slack payload, before any work runs.

The handlers pass typed values in and ack with what comes back. Intake parses, asks the policy
(bot/policy.py, the one check: channel, role, reach) whether this person may do this from here,
finds the incident the command works on (opening one when its scope says so), records the command
in that incident's timeline and enqueues: Redis only, no Slack I/O, so the ack leaves within
milliseconds.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.exceptions import RedisError

from bot import metrics
from bot.contract import APPROVE_REACTIONS, REJECT_REACTIONS, Action, WorkItem
from bot.dispatch import Dispatcher, Submitted
from bot.errors import IncidentLimitError
from bot.incidents import EventKind, Incident, IncidentStore
from bot.item import Route, Scope
from bot.plans import Plan, PlanStore
from bot.policy import Decision, GroupCache, Policy, outsider
from bot.postmortem import CHECKLIST
from bot.registry import Registry
from bot.sealed import SealedStore
from bot.settings import Settings
from bot.wording import approval as approval_wording
from bot.wording import checklist as checklist_wording
from bot.wording import commands as wording
from bot.wording import forms
from bot.wording import queue as queue_wording
from handlers.delivery import Claim, Deliveries, EventInProgress
from handlers.parser import ParseError, Parser, Request

log = logging.getLogger(__name__)

_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")


@dataclass(frozen=True)
class Reply:
    """What to ack with: an ephemeral text to the user, a modal to open (a form for a value that must
    not be typed in the channel), or nothing."""

    text: str | None = None
    modal: dict | None = None
    queued: bool = False


@dataclass(frozen=True)
class Where:
    """Where a request was made: the channel, and the incident thread when it came from one."""

    channel: str
    thread_ts: str | None = None


class Intake:
    """Turns slash commands, mentions, buttons and forms into queued work on an incident."""

    def __init__(self, settings: Settings, store: IncidentStore, dispatcher: Dispatcher, registry: Registry):
        self.settings = settings
        self.registry = registry
        self.parser = Parser(registry)
        self.store = store
        self.dispatcher = dispatcher
        self.policy = Policy(settings, GroupCache(dispatcher.redis))
        self.deliveries = Deliveries(dispatcher.redis)
        self.plans = PlanStore(dispatcher.redis)
        self.sealed = SealedStore.of(dispatcher.redis, settings)

    def outsider(self, *, home_team: str, team: str, user_team: str) -> str:
        """Why a request from this workspace and user's team is refused before anything else ('' if not)."""
        return outsider(home_team, team, user_team)

    def _inline_answer(self, parsed: Request | ParseError) -> str | None:
        """What the web process answers itself: a parse error, or help; None for work to queue."""
        if isinstance(parsed, ParseError):
            return wording.parse_error(parsed, self.parser.help_lines())
        if parsed.command == "runbook":
            return wording.runbook_table(self.registry.sections())
        if parsed.spec.route is Route.INLINE:
            command = self.registry.commands.get(" ".join(parsed.args))
            return wording.help_message(self.parser.help_lines(), (command.usage, command.summary) if command else None)
        return None

    def _from_metadata(self, metadata: str) -> tuple[Where | None, Request | None]:
        try:
            data = json.loads(metadata)
            where = Where(str(data["channel"]), str(data.get("thread_ts") or "") or None)
            parsed = self.parser.parse(str(data["words"]))
        except (ValueError, KeyError, TypeError):
            return None, None
        return where, parsed if isinstance(parsed, Request) else None

    def slash(self, *, text: str, user: str, channel: str) -> Reply:
        """`/nexy <words>`: answer help and errors at once; queue real work on the channel's incident."""
        if not self.policy.channel_allowed(channel):
            return Reply(wording.not_here(self.policy.channels_reason()))
        parsed = self.parser.parse(text)
        answer = self._inline_answer(parsed)
        if answer is not None or isinstance(parsed, ParseError):
            metrics.not_queued(parsed, answered=not isinstance(parsed, ParseError))
            return Reply(answer)
        return self._request(parsed, user, Where(channel), source="slash")

    @metrics.counted
    def _request(self, parsed: Request, user: str, where: Where, *, source: str) -> Reply:
        """A valid request from a person: refused, a form to open, or queued on its incident."""
        resolved = self._vm(parsed)
        if isinstance(resolved, str):
            return Reply(resolved)
        parsed = resolved
        try:
            decision = self._decision(parsed, user, where)
            if decision.allowed is False:
                return Reply(wording.refused(parsed.words, decision.reason, decision.who))
            secret = self.parser.secret_input(parsed)
            if secret is not None:
                return Reply(modal=forms.secret_modal(secret, parsed.words, _metadata(parsed.words, where)))
            incident, created = self._incident(parsed, user, where)
            if incident is None and parsed.spec.scope is not Scope.NONE:
                named = parsed.args[0].upper() if parsed.spec.scope is Scope.RECORDED and parsed.args else None
                return Reply(wording.no_incident(where.channel, named, in_thread=bool(where.thread_ts)))
            submitted = self._submit(parsed, decision, user=user, where=where, incident=incident, source=source)
        except RedisError:
            log.exception("enqueue failed for /nexy %s", parsed.command)
            return Reply(wording.enqueue_failed())
        except IncidentLimitError as limit:
            return Reply(wording.incident_limit(limit.channel, limit.limit, limit.retry_at, time.time()))
        if submitted is not None and submitted.refused:
            vm = self.settings.for_vm(parsed.vm or None)
            waiting = vm.nexy_max_waiting_per_user
            return Reply(queue_wording.refused(parsed.words, vm.vm_name, waiting, submitted.waiting))
        if submitted is not None and submitted.joined:
            incident_id = incident.id if incident else ""
            return Reply(
                queue_wording.joined(parsed.words, incident_id, submitted.position, submitted.riders), queued=True
            )
        return Reply(wording.queued(parsed, incident, created), queued=True)

    def _decision(self, request: Request, user: str, where: Where) -> Decision:
        """The policy's answer for this command, here; an incident named by id is looked up first (no
        side effect) so that its channel is checked against the command's reach."""
        named = None
        if request.spec.scope is Scope.RECORDED and request.args:
            named = self.store.get(request.args[0].upper())
        return self.policy.for_command(
            request.spec,
            user,
            where.channel,
            incident=named.id if named else "",
            incident_channel=named.channel if named else "",
        )

    def _vm(self, request: Request) -> Request | str:
        """The request with its VM as the inventory spells it, or what to answer: a VM command with
        several VMs and no `--vm` asks which one; an unknown name lists the names."""
        names = self.settings.vm_names
        if not request.spec.on_vm:
            return request
        if request.vm:
            known = self.settings.find_vm(request.vm)
            return dataclasses.replace(request, vm=known) if known else wording.unknown_vm(request.vm, names)
        if len(names) > 1:
            return wording.which_vm(request.words, names)
        return request

    def _incident(self, request: Request, user: str, where: Where) -> tuple[Incident | None, bool]:
        """The incident a command works on, as its scope says, and whether it was opened now; None
        when a command about an existing incident has none to work on (or needs none: `history`)."""
        scope = request.spec.scope
        if scope is Scope.CHANNEL:
            if where.thread_ts:
                return self.store.for_thread(where.channel, where.thread_ts, user, request.words)
            return self.store.open_or_attach(where.channel, user, request.words)
        if scope is Scope.NEW:
            return self.store.open_new(where.channel, user, request.args[0]), True
        if scope is Scope.NONE:
            return None, False
        if scope is Scope.RECORDED and request.args:
            return self.store.get(request.args[0].upper()), False
        if where.thread_ts:
            return self.store.find_thread(where.channel, where.thread_ts), False
        current = self.store.current(where.channel)
        if current is None and scope is Scope.RECORDED:
            latest = self.store.history(where.channel, limit=1)
            return (latest[0] if latest else None), False
        return current, False

    def once(self, event_id: str | None, take: Callable[[], None]) -> None:
        """Take an Events API event once (Bolt does not dedupe): claimed first, counted as delivered
        only once `take` returned (its work queued). A retry of a delivered event is dropped; one
        that comes while the first is handled raises EventInProgress (Slack gets a 503 and comes
        back later); a failed `take` releases the claim and raises, so that Slack's retry runs it."""
        if not event_id:
            take()
            return
        claim = self.deliveries.claim(event_id)
        if claim is Claim.DELIVERED:
            return
        if claim is Claim.IN_PROGRESS:
            raise EventInProgress(event_id)
        try:
            take()
        except BaseException:
            try:
                self.deliveries.release(event_id, claim)
            except RedisError:  # the claim expires by itself before Slack's next retry
                log.warning("event %s: its claim could not be released (Redis)", event_id)
            raise
        try:
            self.deliveries.confirm(event_id)
        except RedisError:  # its work is queued: answer 200; only a retry after the claim expired runs twice
            log.warning("event %s: queued, but not marked delivered (Redis)", event_id)

    def mention(self, *, text: str, user: str, channel: str, thread_ts: str | None) -> None:
        """`@nexy <command>`: in an incident's thread it attaches to that incident. A mention carries
        no trigger to open a form with: a fix that needs one gets a button that opens it."""
        if not self.policy.channel_allowed(channel):
            return
        parsed = self.parser.parse(_MENTION.sub(" ", text or "").strip())
        answer = self._inline_answer(parsed)
        if answer is not None or isinstance(parsed, ParseError):
            metrics.not_queued(parsed, answered=not isinstance(parsed, ParseError))
            self.dispatcher.notify(channel=channel, user=user, text=answer or "", thread_ts=thread_ts)
            return
        where = Where(channel, thread_ts)
        if self.parser.secret_input(parsed) is not None:
            decision = self._decision(parsed, user, where)
            if decision.allowed is False:
                refusal = wording.refused(parsed.words, decision.reason, decision.who)
                self.dispatcher.notify(channel=channel, user=user, text=refusal, thread_ts=thread_ts)
                return
            text, blocks = forms.open_form_prompt(parsed.words, _metadata(parsed.words, where))
            self.dispatcher.notify(channel=channel, user=user, text=text, blocks=blocks, thread_ts=thread_ts)
            return
        reply = self._request(parsed, user, where, source="mention")
        if reply.text and not reply.queued:  # refused, or Redis failed: say so to that person only
            self.dispatcher.notify(channel=channel, user=user, text=reply.text, thread_ts=thread_ts)

    def plan_button(self, *, words: str, user: str, channel: str, thread_ts: str | None) -> Reply:
        """A button that asks for a fix (a diagnosis's finding): as if the person typed it in that thread
        (checked as that command)."""
        parsed = self.parser.parse(words)
        if isinstance(parsed, ParseError) or not parsed.spec.changes_vm:
            return Reply(wording.button_out_of_date())
        return self._request(parsed, user, Where(channel, thread_ts), source="button")

    def open_form(self, *, metadata: str, user: str, channel: str) -> Reply:
        """The button of a form prompt: open the form it names (checked as that command, in the channel
        of the prompt, which must be where the button was clicked)."""
        where, parsed = self._from_metadata(metadata)
        if where is None or parsed is None or where.channel != channel:
            return Reply(wording.button_out_of_date())
        return self._request(parsed, user, where, source="form")

    def secret_form(self, *, metadata: str, user: str, value: str) -> dict[str, str] | None:
        """A submitted form: the errors to show in it, or None once the request is queued. The value
        is sealed at once and only its reference travels; it is never echoed, logged or stored in clear."""
        where, parsed = self._from_metadata(metadata)
        secret = self.parser.secret_input(parsed) if parsed is not None else None
        if where is None or parsed is None or secret is None:
            return {forms.SECRET_BLOCK: wording.form_out_of_date()}
        resolved = self._vm(parsed)
        if isinstance(resolved, str):
            return {forms.SECRET_BLOCK: resolved}
        parsed = resolved
        value = value.strip()
        if not re.fullmatch(secret.pattern, value):
            return {forms.SECRET_BLOCK: f"That is not {secret.expected}."}
        decision = self._decision(parsed, user, where)
        if decision.allowed is False:
            return {forms.SECRET_BLOCK: wording.refused(parsed.words, decision.reason, decision.who)}
        try:
            ref = self.sealed.seal(value, self.settings.nexy_approval_ttl_s + SEAL_MARGIN_S)
            incident, _ = self._incident(parsed, user, where)
            self._submit(parsed, decision, user=user, where=where, incident=incident, source="form", secret=ref)
        except RedisError:
            log.exception("enqueue failed for the form of /nexy %s", parsed.words)
            return {forms.SECRET_BLOCK: wording.enqueue_failed()}
        except IncidentLimitError as limit:
            self.sealed.discard(ref)  # sealed just before: nothing will use it
            return {forms.SECRET_BLOCK: wording.incident_limit(limit.channel, limit.limit, limit.retry_at, time.time())}
        return None

    def tell(self, *, user: str, channel: str, thread_ts: str | None, text: str) -> None:
        """An ephemeral answer to one person, posted by the io worker (no Slack I/O here)."""
        self.dispatcher.notify(channel=channel, user=user, text=text, thread_ts=thread_ts)

    def _submit(
        self,
        request: Request,
        decision: Decision,
        *,
        user: str,
        where: Where,
        incident: Incident | None,
        source: str,
        secret: str = "",
    ) -> Submitted | None:
        """Record the command in its incident's timeline and queue it (None: `decision.allowed is None`,
        a worker resolves the operators' user groups first)."""
        incident_id = incident.id if incident else ""
        if incident is not None:
            self.store.record(
                incident_id, EventKind.COMMAND, user, command=request.words, source=source, section=request.section
            )
        item = WorkItem.new(
            request.command,
            request.args,
            user=user,
            channel=where.channel,
            incident=incident_id,
            source=source,
            secret=secret,
            thread_ts=where.thread_ts,
            vm=request.vm,
        )
        if decision.allowed is None:
            self.dispatcher.authorize(item)
            return None
        return self.dispatcher.submit(item, request.spec.route, fix=request.spec.changes_vm)

    def home(self, *, user: str, tab: str) -> None:
        """The App Home opened on its Home tab: a worker publishes the view (Slack I/O)."""
        if tab == "home" and user:
            self.dispatcher.publish_home(user)

    # -- approvals -----------------------------------------------------------------------

    def reaction(self, *, reaction: str, user: str, channel: str, ts: str, added: bool) -> None:
        """A reaction: :white_check_mark: approves and :x: rejects the plan it is on, checked as the
        Approve / Reject buttons; other reactions, and removing one, change nothing."""
        if not added or not (reaction in APPROVE_REACTIONS or reaction in REJECT_REACTIONS):
            return
        if not self.policy.channel_allowed(channel):
            return
        approve = reaction in APPROVE_REACTIONS
        plan = self.plans.by_message(channel, ts)
        if plan is None or self._refused(plan, user, approve, source="reaction"):
            return  # a check mark on any other message is no decision
        self.dispatcher.decide(user=user, approve=approve, source="reaction", channel=channel, ts=ts)

    def button(self, *, action_id: str, plan_id: str, user: str, channel: str, ts: str) -> None:
        """The Approve / Reject buttons of a plan: the same rules as the reactions, and only a click on the
        plan's own message counts (a worker checks again, with user groups resolved, and decides once)."""
        if action_id not in Action.DECISIONS or not self.policy.channel_allowed(channel):
            return
        approve = action_id == Action.APPROVE
        plan = self.plans.get(plan_id) if plan_id else None
        if plan is None:
            return
        if plan.channel != channel or plan.message_ts != ts:
            # A button names its plan in its value: only a click on that plan's own message counts.
            reason = "the click was not on this plan's message"
            self.store.record(plan.incident, EventKind.IGNORED, user, plan=plan.id, source="button", reason=reason)
            self.dispatcher.notify(channel=channel, user=user, text=wording.button_out_of_date())
            return
        if self._refused(plan, user, approve, source="button"):
            return
        self.dispatcher.decide(user=user, approve=approve, source="button", plan_id=plan_id, channel=channel, ts=ts)

    def _refused(self, plan: Plan, user: str, approve: bool, *, source: str) -> bool:
        """A decision the policy refuses is recorded as ignored and explained to that person only;
        nothing is queued. Unknown (a user group not cached yet): a worker decides."""
        decision = self.policy.for_decision(plan, user, approve)
        if decision.allowed is not False:
            return False
        text = approval_wording.refused(plan, decision.reason, decision.who)
        self.store.record(plan.incident, EventKind.IGNORED, user, plan=plan.id, source=source, reason=text)
        incident = self.store.get(plan.incident)
        thread_ts = incident.thread_ts if incident is not None and incident.thread_ts else None
        self.dispatcher.notify(channel=plan.channel, user=user, text=text, thread_ts=thread_ts)
        return True

    def checklist(self, *, user: str, channel: str, ts: str, block_id: str, checked: list[str]) -> None:
        """An operator ticked or unticked the final checklist: the timeline records who and what, and a
        worker updates the message, so everyone sees the same boxes. Anyone else is told, and nothing changes."""
        incident = self.store.get(checklist_wording.incident_of(block_id))
        if incident is None or not self.policy.channel_allowed(channel):
            return
        decision = self.policy.for_action(
            Action.CHECKLIST, user, channel, incident=incident.id, incident_channel=incident.channel
        )
        ticked = [value for value, _ in CHECKLIST if value in checked]
        if decision.allowed is False:
            text = wording.action_refused(decision.reason, decision.who)
            thread_ts = incident.thread_ts if incident.channel == channel and incident.thread_ts else None
            self.dispatcher.notify(channel=channel, user=user, text=text, thread_ts=thread_ts)
            return
        if decision.allowed is None:  # a worker resolves the operators' user groups, then records or refuses
            self.dispatcher.checklist(incident=incident.id, ts=ts, user=user, checked=ticked)
            return
        self.store.record(incident.id, EventKind.CHECKLIST, user, checked=ticked, ts=ts, source="tick")
        self.dispatcher.checklist(incident=incident.id, ts=ts, user=user)


SEAL_MARGIN_S = 600
"""How much longer than the approval window a sealed value is kept: the plan is made in between."""


def _metadata(words: str, where: Where) -> str:
    """What a form carries back (Slack returns a view's private_metadata as the app set it)."""
    return json.dumps({"words": words, "channel": where.channel, "thread_ts": where.thread_ts or ""})
