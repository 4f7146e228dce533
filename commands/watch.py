"""The watch's commands: its state per VM, and a pause for planned maintenance (jobs/watch.py runs it).

Pausing and resuming are an operator's (declared below, checked by bot/policy.py). Each is announced
in NEXY_WATCH_CHANNEL (who, for how long, from which channel) and recorded in the timeline of every
open watch incident; the paused time within any 24 h is capped by NEXY_WATCH_PAUSE_BUDGET_S.
"""

from __future__ import annotations

import re
import time

from bot import watchstate
from bot.context import Context
from bot.incidents import EventKind, IncidentStatus
from bot.item import Arg, Route, Scope, check
from bot.policy import Role
from bot.wording import watch as wording

MAX_PAUSE_S = 24 * 3600
"""The longest pause: a forgotten pause must not silence the watch for good."""

DURATION = Arg("duration", r"[1-9][0-9]{0,4}[smh]", "a duration such as 90s, 30m or 2h (at most 24h)")

_UNIT_S = {"s": 1, "m": 60, "h": 3600}


def seconds(duration: str) -> int:
    match = re.fullmatch(r"([0-9]+)([smh])", duration)
    assert match, duration  # the argument's pattern was checked by the parser
    return int(match.group(1)) * _UNIT_S[match.group(2)]


@check("watch", route=Route.IO, scope=Scope.NONE)
def watch(ctx: Context) -> str:
    """watch: the watch's state per VM: last probe, failures in a row, open incident, any pause

    the watch's state per VM: up or failing, the last probe, failures in a row, the open watch incident, any pause;
    only to you
    """
    rows = [watchstate.VMWatch.load(ctx.redis, name) for name in ctx.settings.vm_names]
    incidents = {r.incident: f"open incident {r.incident}" for r in rows if r.incident}
    text = wording.state(
        rows, incidents, watchstate.paused(ctx.redis), ctx.settings.nexy_watch_channel or "", time.time()
    )
    ctx.tell(text)
    return "shown"


@check("watch pause", route=Route.IO, scope=Scope.NONE, role=Role.OPERATOR, args=(DURATION,))
def watch_pause(ctx: Context) -> str:
    """watch pause: stop the watch's probes for a while (planned maintenance); recorded in its incidents

    operators only; planned maintenance: no probes for `90s`, `30m`, `2h` (at most 24h, and at most
    `NEXY_WATCH_PAUSE_BUDGET_S` of pause in any 24 h); said in `NEXY_WATCH_CHANNEL` (who, how long, from which
    channel) and recorded in each open watch incident's timeline
    """
    wanted, item, redis = seconds(ctx.item.args[0]), ctx.item, ctx.redis
    if wanted > MAX_PAUSE_S:
        ctx.tell(f"A pause is at most 24h; `{item.args[0]}` is longer.", in_thread=False)
        return "refused"
    budget = ctx.settings.nexy_watch_pause_budget_s
    current = watchstate.paused(redis)
    # A pause in force is replaced: what is left of it is not spent.
    spent = watchstate.paused_time(redis, time.time()) - (max(0.0, current["until"] - time.time()) if current else 0)
    if spent + wanted > budget:
        ctx.tell(wording.over_budget(item.args[0], spent, budget), in_thread=False)
        return "refused"
    until = watchstate.pause(redis, wanted, item.user, item.channel)
    _record(ctx, "paused", until=until, channel=item.channel)
    _announce(ctx, wording.paused(until, item.user, wanted, item.channel))
    return "paused"


@check("watch resume", route=Route.IO, scope=Scope.NONE, role=Role.OPERATOR)
def watch_resume(ctx: Context) -> str:
    """watch resume: end a pause of the watch

    operators only: ends a pause (said and recorded the same way)
    """
    was = watchstate.resume(ctx.redis)
    if not was:
        ctx.tell(wording.resumed(ctx.item.user, False, ""), in_thread=False)
        return "not paused"
    _record(ctx, "resumed", channel=ctx.item.channel)
    _announce(ctx, wording.resumed(ctx.item.user, True, ctx.item.channel))
    return "resumed"


def _announce(ctx: Context, text: str) -> None:
    """Said in the watch's channel (where its incidents open), and to the asker when that is elsewhere."""
    watch_channel = ctx.settings.nexy_watch_channel or ctx.item.channel
    ctx.announce(watch_channel, text)
    if watch_channel != ctx.item.channel:
        ctx.tell(text)


def _record(ctx: Context, what: str, **details: object) -> None:
    """The pause or resume in the timeline of each VM's open watch incident."""
    store = ctx.incidents
    for name in ctx.settings.vm_names:
        incident_id = watchstate.VMWatch.load(ctx.redis, name).incident
        incident = store.get(incident_id) if incident_id else None
        if incident is not None and incident.status is IncidentStatus.OPEN:
            store.record(incident.id, EventKind.NOTE, ctx.item.user, watch=what, vm=name, **details)
