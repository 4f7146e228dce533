"""The incident timeline: typed events, hash-chained; `nexy audit verify` finds each kind of tampering."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bot.incidents import EventKind, IncidentStore, Tamper, event_hash

ROOT = Path(__file__).resolve().parents[2]
LOG = "nexy:incident:INC-1:log"


@pytest.fixture
def recorded(bot, slack, work, redis) -> IncidentStore:
    """An incident whose timeline was written by the bot: two `/nexy health` through signed requests."""
    slack.slash_command("health", user="U0ALICE")
    work()
    slack.slash_command("health", user="U0BOB")
    work()
    return IncidentStore(redis)


def _events(redis) -> list[dict]:
    return [json.loads(raw) for raw in redis.lrange(LOG, 0, -1)]


def test_each_step_is_one_chained_event(recorded, redis):
    """Opening, each command, the thread and each report are typed events, each linked to the one before."""
    timeline = recorded.timeline("INC-1")
    kinds = [e.kind for e in timeline]
    assert kinds[0] is EventKind.OPENED and kinds.count(EventKind.COMMAND) == 2
    assert EventKind.THREAD in kinds and kinds.count(EventKind.CHECK) == 2
    assert [e.seq for e in timeline] == list(range(len(timeline)))
    assert all(later.prev == earlier.hash for earlier, later in zip(timeline, timeline[1:]))
    check = next(e for e in timeline if e.kind is EventKind.CHECK)
    assert check.who == "U0ALICE" and "all 2 endpoints up" in check.get("text")
    verdict = recorded.verify("INC-1")
    assert verdict.intact and verdict.head == timeline[-1].hash == recorded.get("INC-1").head


def test_an_edited_event_is_found(recorded, redis):
    """Changing one word of an event's details is found at that event."""
    events = _events(redis)
    events[3]["details"]["command"] = "restart"
    redis.lset(LOG, 3, json.dumps(events[3]))
    verdict = recorded.verify("INC-1")
    assert verdict.tamper is Tamper.EDITED and verdict.seq == 3


def test_an_edited_event_with_a_recomputed_hash_is_found(recorded, redis):
    """An edit whose own hash was recomputed breaks the link of the event after it."""
    events = _events(redis)
    events[2]["who"] = "U0MALLORY"
    events[2]["hash"] = event_hash(events[2])
    redis.lset(LOG, 2, json.dumps(events[2]))
    verdict = recorded.verify("INC-1")
    assert verdict.tamper is Tamper.EDITED and verdict.seq == 2


def test_reordered_events_are_found(recorded, redis):
    """Two events swapped are found as reordered, at the first of them."""
    first, second = redis.lindex(LOG, 2), redis.lindex(LOG, 3)
    redis.lset(LOG, 2, second)
    redis.lset(LOG, 3, first)
    verdict = recorded.verify("INC-1")
    assert verdict.tamper is Tamper.REORDERED and verdict.seq == 2


def test_a_removed_event_is_found(recorded, redis):
    """An event taken out of the middle is found as removed; so is one taken off the end."""
    redis.lrem(LOG, 1, redis.lindex(LOG, 4))
    verdict = recorded.verify("INC-1")
    assert verdict.tamper is Tamper.REMOVED and verdict.seq == 4
    redis.delete(LOG)
    redis.hset("nexy:incident:INC-2", mapping={"id": "INC-2", "channel": "C0OPS", "opened_by": "U0ALICE",
                                                "opened_at": "1", "status": "open", "title": "t"})
    IncidentStore(redis).record("INC-2", EventKind.NOTE, None, text="a")
    IncidentStore(redis).record("INC-2", EventKind.NOTE, None, text="b")
    redis.rpop("nexy:incident:INC-2:log")
    verdict = recorded.verify("INC-2")
    assert verdict.tamper is Tamper.REMOVED and verdict.seq == 1


def test_a_rewritten_chain_is_found_against_an_exported_head(recorded, redis):
    """A timeline rewritten whole (every hash and the head recomputed) passes alone, but not against
    the head an export or the checklist gave out."""
    exported_head = recorded.get("INC-1").head
    events, prev = _events(redis), None
    events[3]["details"]["command"] = "restart"
    for event in events:
        if prev is not None:
            event["prev"] = prev
        event["hash"] = prev = event_hash(event)
    redis.delete(LOG)
    redis.rpush(LOG, *[json.dumps(e) for e in events])
    redis.hset("nexy:incident:INC-1", "head", prev)
    assert recorded.verify("INC-1").intact
    verdict = recorded.verify("INC-1", expected_head=exported_head)
    assert verdict.tamper is Tamper.REWRITTEN


def test_concurrent_appends_keep_one_chain(redis):
    """Eight writers appending at once (web and workers) leave one unbroken chain of every event."""
    store = IncidentStore(redis)
    incident, _ = store.open_or_attach("C0OPS", "U0ALICE", "health")
    barrier = threading.Barrier(8)

    def write(n: int) -> None:
        writer = IncidentStore(redis)
        barrier.wait()
        for i in range(20):
            writer.record(incident.id, EventKind.NOTE, f"U{n}", text=f"{n}-{i}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    verdict = store.verify(incident.id)
    assert verdict.intact and verdict.events == 161


def test_details_are_redacted_before_they_are_chained(redis):
    """A secret in an event's details is never stored: the chain covers the redacted text."""
    store = IncidentStore(redis)
    incident, _ = store.open_or_attach("C0OPS", "U0ALICE", "health")
    store.record(incident.id, EventKind.NOTE, None, text="GEMINI_API_KEY=AIzaSyA1234567890abcdefghijkl")
    assert b"AIzaSy" not in b"".join(redis.lrange(f"nexy:incident:{incident.id}:log", 0, -1))
    assert store.verify(incident.id).intact


def _audit(redis_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "NEXY_", "REDIS_"))}
    env.update(REDIS_URL=redis_url, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "nexy.cli", "audit", "verify", *args],
                          capture_output=True, text=True, timeout=60, env=env)


def test_audit_verify_command_exit_codes(recorded, redis, redis_url):
    """`nexy audit verify INC-1` exits 0 on an intact chain, 1 naming the first tampered event, 2 for no such incident."""
    intact = _audit(redis_url, "INC-1")
    assert intact.returncode == 0, intact.stderr
    assert "chain intact" in intact.stdout and recorded.get("INC-1").head in intact.stdout
    events = _events(redis)
    events[1]["details"]["source"] = "mention"
    redis.lset(LOG, 1, json.dumps(events[1]))
    tampered = _audit(redis_url, "inc-1")
    assert tampered.returncode == 1 and "TAMPERED (edited)" in tampered.stdout and "event #1" in tampered.stdout
    missing = _audit(redis_url, "INC-99")
    assert missing.returncode == 2 and "no incident INC-99" in missing.stderr
