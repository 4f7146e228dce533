"""Runbook 10 and the incident record: open an incident, show it, close it with the final
checklist, list past incidents, export one as a postmortem.

These commands change nothing on the VM and run on the io queue (their answers need Slack: the
thread, permalinks, files). The web process has already found the incident each works on (its
scope) and checked each command against its declared role and reach (bot/policy.py). Typed text
(a title, a root cause) arrives cleaned and redacted, and never reaches a script.
"""

from __future__ import annotations

import logging

from bot import learn, postmortem, render
from bot.context import Context
from bot.incidents import EventKind, Incident
from bot.item import Arg, Route, Scope, check
from bot.learn import CONTEXT_LINES
from bot.policy import Reach, Role
from bot.wording import checklist as checklist_wording
from bot.wording import incident as wording

log = logging.getLogger(__name__)

HISTORY_DEFAULT = 10
"""How many incidents `/nexy history` lists without a count."""
HISTORY_MAX = 20
"""The most it lists: one section each, well inside a message's 50 blocks."""

TITLE = Arg("title", "", "a title", text=True, max_chars=150)
ROOT_CAUSE = Arg("root cause", "", "the root cause", text=True, max_chars=400)
COUNT = Arg("count", r"[1-9]|1[0-9]|20", f"a number from 1 to {HISTORY_MAX}", optional=True)
INCIDENT = Arg("incident", r"[Ii][Nn][Cc]-[0-9]{1,9}", "an incident id such as INC-3", optional=True)


@check("incident", route=Route.IO, scope=Scope.CURRENT)
def incident(ctx: Context) -> str:
    """incident: the open incident: its thread, status and latest events

    the open incident (the thread's, from `@nexy` in a thread): link, status, sections, its latest events; only to
    you
    """
    store, current = ctx.incidents, ctx.thread.incident
    events = [e for e in store.timeline(current.id) if e.kind not in postmortem.BOOKKEEPING]
    lines = [postmortem.line(e) for e in events]
    text, blocks = wording.summary(current, ctx.thread.permalink(), events, lines)
    ctx.tell(text, blocks)
    return current.status.value


@check("incident new", route=Route.IO, scope=Scope.NEW, args=(TITLE,))
def incident_new(ctx: Context) -> str:
    """incident new: open a new incident and its thread, even while one is open

    opens a new incident and its thread even while one is open (that one stays open, reachable in its thread); later
    commands in the channel go to the new one
    """
    ctx.thread.ensure()
    return ctx.thread.incident.id


@check(
    "incident close",
    section="10",
    title="Final Checklist",
    route=Route.IO,
    scope=Scope.CURRENT,
    role=Role.OPERATOR,
    args=(ROOT_CAUSE,),
)
def incident_close(ctx: Context) -> str:
    """incident close: resolve it with its root cause and the final checklist; the next command opens a new one

    operators only: resolves the incident (the thread's, from `@nexy` in a thread): posts the final checklist, edits
    the parent (resolved, root cause, duration), expires its pending plans; offers the incident's journal error
    lines that matched no declared symptom as proposed new symptoms (a pattern drawn from each; its section to be
    chosen); the channel's next command opens a new incident
    """
    thread, user = ctx.thread, ctx.item.user
    store = ctx.incidents
    closing = store.close(thread.incident, user, ctx.item.args[0])
    if not closing.closed:
        earlier = store.get(thread.incident.id) or thread.incident
        ctx.tell(_already(earlier))
        return "already resolved"
    store.record(
        thread.incident.id,
        EventKind.CLOSED,
        user,
        root_cause=ctx.item.args[0],
        section="10",
        expired_plans=list(closing.expired_plans),
    )
    for plan_id in closing.expired_plans:
        ctx.expire_by_close(plan_id)
    resolved = store.get(thread.incident.id)
    assert resolved is not None
    thread.incident = resolved
    results = postmortem.last_verify(store.timeline(resolved.id))
    ticked = ["verify"] if postmortem.verified(results) else []
    text, blocks = checklist_wording.message(resolved, results, ticked, resolved.head, resolved.events)
    thread.post(text, blocks, kind=EventKind.CHECKLIST, user=user, checked=ticked, head=resolved.head, source="close")
    _show_resolved(ctx, resolved)
    _offer_learned(ctx, resolved)
    return "resolved"


def _offer_learned(ctx: Context, incident: Incident) -> None:
    """Runbook 10, "runbook updated": journal lines of the incident that no declared symptom matched are
    offered as proposed symptoms (the export holds each as a runbook item stub and its test)."""
    events = ctx.incidents.timeline(incident.id)
    outputs = [str(e.get("output") or "") for e in events if e.kind is EventKind.RUN_COMMAND]
    proposals = learn.unmatched(outputs, ctx.registry.journal_patterns, CONTEXT_LINES)
    if not proposals:
        return
    sections = [s.section for s in ctx.registry.sections() if s.section]
    ctx.thread.post(
        wording.learned(incident.id, proposals, sections),
        kind=EventKind.NOTE,
        learn=[{"line": p.line, "pattern": p.pattern} for p in proposals],
        sections=sections,
    )


def _already(incident: Incident) -> str:
    when = f" by <@{incident.closed_by}>" if incident.closed_by else ""
    return f"{incident.id} is already resolved{when}: {incident.root_cause}. The next command opens a new incident."


def _show_resolved(ctx: Context, incident: Incident) -> None:
    """Edit the parent message to say resolved, the root cause and the duration (a parent that is
    someone's own message, for a thread started by a mention, cannot be edited: it stays)."""
    if not incident.thread_ts:
        return
    ctx.thread.update(incident.thread_ts, *wording.parent(incident))


@check("history", route=Route.IO, scope=Scope.NONE, reach=Reach.OWN, args=(COUNT,))
def history(ctx: Context) -> str:
    """history: the last incidents in this channel: status, times, duration, sections, root cause, link

    the channel's last incidents (10; at most 20): id and link, title, status, opened and resolved times, duration,
    runbook sections, root cause; only to you
    """
    return _history(ctx, ctx.item.channel)


@check("history all", route=Route.IO, scope=Scope.NONE, role=Role.OPERATOR, reach=Reach.ACROSS, args=(COUNT,))
def history_all(ctx: Context) -> str:
    """history all: the last incidents in every channel (operators only)

    operators only: the same across every channel
    """
    return _history(ctx, None)


def _history(ctx: Context, channel: str | None) -> str:
    limit = int(ctx.item.args[0]) if ctx.item.args else HISTORY_DEFAULT
    incidents = ctx.incidents.history(channel, limit)
    links = {i.id: ctx.permalink(i) for i in incidents}
    where = f"in <#{channel}>" if channel else "in every channel"
    text, blocks = wording.history(incidents, links, where, limit)
    ctx.tell(text, blocks)
    return f"{len(incidents)} listed"


@check("export", route=Route.IO, scope=Scope.RECORDED, args=(INCIDENT,))
def export(ctx: Context) -> str:
    """export: the incident (the open one, or the last) as a Markdown postmortem in its thread

    the incident (`INC-3`; by default the open one, else the channel's last) as a Markdown postmortem uploaded into
    its thread: summary, timeline, commands, what the VM said (the end of each output), plans and diffs, verify
    results, checklist, the proposed symptoms (each a ready-to-commit runbook module and its test), root cause,
    chain head. A named incident only from its own channel (from elsewhere: refused, nothing uploaded or recorded)
    """
    store, thread = ctx.incidents, ctx.thread
    store.settle(thread.incident.id)  # the counts of events rolled up past the cap, chained first
    events = store.timeline(thread.incident.id)
    link = thread.permalink()
    document = postmortem.markdown(thread.incident, events, link)
    head = events[-1].hash if events else ""
    thread.attach(
        document,
        f"{thread.incident.id}-postmortem.md",
        f":page_facing_up: Postmortem of {thread.incident.id}, exported by <@{ctx.item.user}>: "
        f"{len(events)} events; chain head `{head}`.",
    )
    store.record(thread.incident.id, EventKind.EXPORT, ctx.item.user, head=head, events=len(events))
    if ctx.item.source != "mention":
        note = f"The postmortem of {thread.incident.id} is in {render.link(link, 'its thread')}."
        ctx.tell(note, in_thread=False)
    return thread.incident.id
