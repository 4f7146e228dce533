"""Bounded Redis: routine events past the cap are rolled up (counted exactly, chained), a channel opens at most
NEXY_MAX_INCIDENTS_PER_HOUR incidents an hour, a resolved incident goes whole after its retention, and every key
a fix's whole round trip leaves has a TTL or belongs to a bounded set."""
from __future__ import annotations

import fnmatch
import json
import time

import pytest

from bot.incidents import EventKind, IncidentStore, Limits
from jobs.operations import remove_expired
from jobs.watch import Outcome, Watch
from jobs.worker import build_runtime
from tests.helpers import APPROVER, OPERATOR, bot_messages

DAY_S = 86400


def _rolled_up(events) -> int:
    return sum(c["count"] for e in events if e.kind is EventKind.ROLLUP for c in e.get("counts"))


def test_ten_thousand_events_stay_within_the_cap_with_exact_counts_and_an_intact_chain(redis):
    """10,000 routine events in one incident keep at most the cap (plus the plan, the close and their roll-ups);
    every event past the cap is counted exactly, by kind and command, and the chain and head still verify."""
    store = IncidentStore(redis, Limits(max_events=200))
    incident, _ = store.open_or_attach("C0OPS", OPERATOR, "health")
    kinds = ((EventKind.COMMAND, {"command": "health", "source": "slash"}),
             (EventKind.JOB_FINISHED, {"command": "health", "status": "healthy", "job": "j"}),
             (EventKind.NOTE, {"watch": "failing", "vm": "Nexy", "problem": "8081 down"}))
    for n in range(10_000):
        kind, details = kinds[n % 3]
        store.record(incident.id, kind, OPERATOR, **details)
        if n == 5_000:
            store.record(incident.id, EventKind.PLAN, OPERATOR, plan="P-1", fix="config-perms")
    store.close(incident, OPERATOR, "the 8081 port was closed")
    store.record(incident.id, EventKind.CLOSED, OPERATOR, root_cause="the 8081 port was closed")

    events = store.timeline(incident.id)
    assert len(events) <= 200 + 4  # the cap, the plan and the close, each after one roll-up
    routine_kept = [e for e in events if e.kind in (EventKind.COMMAND, EventKind.JOB_FINISHED, EventKind.NOTE)]
    assert len(routine_kept) + _rolled_up(events) == 10_000
    rollups = [e for e in events if e.kind is EventKind.ROLLUP]
    assert [events[e.seq + 1].kind for e in rollups] == [EventKind.PLAN, EventKind.CLOSED]
    counts: dict[tuple[str, str], int] = {}
    for c in (c for e in rollups for c in e.get("counts")):
        counts[c["kind"], c["what"]] = counts.get((c["kind"], c["what"]), 0) + c["count"]
    assert len(routine_kept) == 199  # the opening and 199 events fill the cap; every later one is counted
    groups = (("command", "health"), ("job-finished", "health"), ("note", "failing"))
    assert counts == {groups[k]: sum(1 for n in range(199, 10_000) if n % 3 == k) for k in range(3)}
    assert store.get(incident.id).rolled_up == 10_000 - len(routine_kept)
    verdict = store.verify(incident.id, expected_head=events[-1].hash)
    assert verdict.intact and verdict.head == store.get(incident.id).head
    assert redis.exists(f"nexy:incident:{incident.id}:rollup") == 0  # nothing pending once chained


def test_export_chains_the_pending_roll_up_and_shows_it(ops, slack, work, redis):
    """Events counted past the cap and not yet chained are chained by `export`, whose postmortem names them."""
    slack.slash_command("health", user=OPERATOR)
    work(ops)
    for _ in range(10):
        slack.slash_command("health", user=OPERATOR)
    work(ops)
    slack.slash_command("export", user=OPERATOR)
    work(ops)
    store = IncidentStore(redis)
    events = store.timeline("INC-1")
    rollups = [e for e in events if e.kind is EventKind.ROLLUP]
    pending = sum(int(n) for k, n in redis.hgetall("nexy:incident:INC-1:rollup").items() if not k.startswith(b"@"))
    assert sum(e.get("total") for e in rollups) == _rolled_up(events) > 10
    assert _rolled_up(events) + pending == store.get("INC-1").rolled_up  # the export job's end is counted since
    assert len(events) <= 30 + 3  # the export's roll-up, the roll-up of its file event, the export
    document = next(m for m in bot_messages(slack) if m.files).files[0]["content"]
    assert "more reports (`health`)" in document and "more jobs finished (`health`)" in document
    head = document.rsplit("Chain head: `", 1)[1].split("`", 1)[0]
    assert store.verify("INC-1", expected_head=head).intact


@pytest.fixture
def ops(serve_bot, vm_settings):
    """The bot on the simulated VM with small bounds: 30 events an incident, 2 new incidents a channel an hour."""
    settings = vm_settings(nexy_operators=OPERATOR, nexy_approvers=APPROVER, nexy_max_events_per_incident=30,
                           nexy_max_incidents_per_hour=2, nexy_retention_days=7)
    serve_bot(settings)
    return settings


def test_a_channel_opens_at_most_its_hourly_share_of_incidents(ops, slack, redis):
    """Past NEXY_MAX_INCIDENTS_PER_HOUR, `incident new` is refused saying when it can be tried again, a command
    still attaches to the open incident, another channel is not affected, and an hour later it opens again."""
    assert "INC-1 is opened" in slack.slash_command("incident new disk full", user=OPERATOR).json()["text"]
    assert "INC-2 is opened" in slack.slash_command("incident new disk full again", user=OPERATOR).json()["text"]
    refused = slack.slash_command("incident new and again", user=OPERATOR).json()["text"]
    first_opened = IncidentStore(redis).get("INC-1").opened_at
    assert "No new incident in <#C0OPS>: 2 were opened there in the last hour" in refused
    assert f"<!date^{int(first_opened + 3600)}^" in refused
    assert "(in 59 min" in refused or "(in 1 h 00 min)" in refused
    assert IncidentStore(redis).get("INC-3") is None
    assert "(INC-2)" in slack.slash_command("health", user=OPERATOR).json()["text"]
    assert "INC-3 is opened" in slack.slash_command("incident new elsewhere", user=OPERATOR,
                                                    channel="C0DEV").json()["text"]
    for incident in ("INC-1", "INC-2"):  # an hour has passed
        redis.zadd("nexy:channel:C0OPS:incidents", {incident: time.time() - 3601})
    assert "INC-4 is opened" in slack.slash_command("incident new and again", user=OPERATOR).json()["text"]


def test_the_watch_obeys_the_hourly_limit_and_reports_in_the_open_incident(serve_bot, vm_settings, slack, vm, redis, registry):
    """With the watch channel's incidents for the hour used up, the watch opens none: it reports and diagnoses
    in the channel's open incident."""
    settings = vm_settings(nexy_watch_channel="C0OPS", nexy_watch_failures=1, nexy_max_incidents_per_hour=1,
                           nexy_operators=OPERATOR, nexy_approvers=APPROVER)
    serve_bot(settings)
    slack.slash_command("incident new planned maintenance", user=OPERATOR)
    watch = Watch(build_runtime(settings, redis, registry))
    vm.break_("config-perms")
    assert watch.tick() == {"Nexy": Outcome.OPENED}
    store = watch.runtime.store
    assert [i.id for i in store.open_incidents()] == ["INC-1"]
    note = next(e for e in store.timeline("INC-1") if e.kind is EventKind.NOTE and e.get("watch") == "opened")
    assert "so the watch reports in this one" in note.get("text")


def _keys(redis, pattern="*") -> set[str]:
    return {k.decode() for k in redis.scan_iter(pattern)}


def test_a_resolved_incident_is_removed_whole_after_its_retention(ops, slack, work, vm, redis, registry):
    """Closing gives every key of the incident a TTL (retention and a day's grace); once its retention ended the
    sweep removes it whole (thread, plans, timeline, indexes), `history` answers without it and `export` says so."""
    vm.break_("config-perms")
    slack.slash_command("fix config-perms", user=OPERATOR)
    work(ops)
    slack.slash_command("incident close config.env lost its group", user=OPERATOR)
    work(ops)
    store = IncidentStore(redis)
    incident = store.get("INC-1")
    plan_id = next(e.get("plan") for e in store.timeline("INC-1") if e.kind is EventKind.PLAN)
    owned = _keys(redis, "nexy:incident:INC-1*") | _keys(redis, "nexy:thread:*") | _keys(redis, f"nexy:plan:{plan_id}")
    owned |= _keys(redis, "nexy:plan-message:*")
    assert {"nexy:incident:INC-1", "nexy:incident:INC-1:log", f"nexy:thread:C0OPS:{incident.thread_ts}",
            f"nexy:plan:{plan_id}"} <= owned
    for key in owned:
        assert 0 < redis.ttl(key) <= 8 * DAY_S, key
    slack.slash_command("health", user=OPERATOR)  # INC-2
    work(ops)

    runtime = build_runtime(ops, redis, registry)
    assert remove_expired(runtime) == []  # not yet
    redis.hset("nexy:outbox:INC-1", "e1", "{}")  # a leftover the outbox never delivered
    redis.zadd("nexy:outbox-due", {"INC-1": time.time()})
    assert remove_expired(runtime, now=incident.closed_at + 7 * DAY_S + 1) == ["INC-1"]
    assert [k for k in owned if redis.exists(k)] == []
    # What else names INC-1 (a job's status message, the parent's outbox ref) lives a day at most.
    assert [k for k in _keys(redis, "nexy:*") if "INC-1" in k and not 0 < redis.ttl(k) <= DAY_S] == []
    assert redis.zscore("nexy:outbox-due", "INC-1") is None
    assert redis.zscore("nexy:incidents", "INC-1") is None
    assert redis.zscore("nexy:channel:C0OPS:incidents", "INC-1") is None
    slack.slash_command("history", user=OPERATOR)
    work(ops)
    listing = next(m for m in slack.messages("C0OPS") if m.ephemeral_to == OPERATOR and "INC-2" in json.dumps(m.blocks))
    assert "INC-1" not in json.dumps(listing.blocks)
    assert "There is no incident INC-1" in slack.slash_command("export INC-1", user=OPERATOR).json()["text"]


BOUNDED = {
    "nexy:incident:seq": "the one incident id counter",
    "nexy:incidents": "the index of incidents: pruned when one is removed",
    "nexy:incidents:removals": "one member a resolved incident within its retention",
    "nexy:incidents:open": "the open incidents",
    "nexy:channel:*:incidents": "a channel's index: pruned when one is removed",
    "nexy:channel:*:open": "the open incident of a channel",
    "nexy:outbox-due": "incidents with entries waiting for Slack (delivered, given up after a day)",
    "nexy:operations": "run-commands Azure accepted, until read",
    "nexy:watch:vm:*": "one a VM of the inventory",
    "rq:queues": "RQ: the queue names",
    "rq:finished:*": "RQ: finished jobs, scored by their expiry, pruned by RQ's registry cleanup",
    "rq:failed:*": "RQ: failed jobs, the same",
    "rq:wip:*": "RQ: running jobs",
    "rq:scheduled:*": "RQ: plans' expiry timers (each runs within NEXY_APPROVAL_TTL_S)",
    "rq:queue:*": "RQ: waiting jobs",
    "rq:workers*": "RQ: live workers",
    "rq:worker:*": "RQ: a live worker (expires with its heartbeat)",
}
"""The keys without a TTL, each a set bounded by something else than time."""


def test_every_key_of_a_fix_round_trip_has_a_ttl_or_is_bounded(ops, slack, work, vm, redis):
    """Plan, approval, apply, verify, close, checklist and export leave only keys with a TTL, keys of an open
    incident (bounded by the cap), or keys of a named bounded set."""
    vm.break_("config-perms")
    slack.slash_command("fix config-perms", user=OPERATOR)
    work(ops)
    plan = next(m for m in bot_messages(slack) if m.text.startswith(":clipboard: Plan"))
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(ops)
    assert vm.service_active()
    slack.slash_command("incident close config.env lost its group", user=OPERATOR)
    work(ops)
    slack.slash_command("export INC-1", user=OPERATOR)
    slack.slash_command("history", user=OPERATOR)
    work(ops)
    timers = {f"rq:job:{job.decode()}" for key in _keys(redis, "rq:scheduled:*") for job in redis.zrange(key, 0, -1)}
    unbounded = []
    for key in sorted(_keys(redis)):
        if redis.ttl(key) > 0 or any(fnmatch.fnmatchcase(key, pattern) for pattern in BOUNDED) or key in timers:
            continue
        unbounded.append(f"{key} ({redis.type(key).decode()})")
    assert unbounded == [], unbounded
    # the plan's two timers (its reminder half-way, its expiry) wait in RQ's scheduled registry until due
    assert all(redis.ttl(k) > 0 for k in _keys(redis, "rq:job:*") - timers) and len(timers) == 2
