"""The incident's outbox under Slack faults: what a job says while Slack fails is kept, then
delivered once Slack answers, in the order it was said, each message exactly once, edits folded."""

from __future__ import annotations

import time

import pytest
from slack_sdk import WebClient

from bot.slack_client import OUTBOX_EVENT
from jobs.outbox import Outbox
from jobs.thread import Thread
from jobs.worker import build_runtime

CHANNEL = "C0OPS"
FAULTS = ("5xx", "drop-after-store", "429")


def _delivered(runtime, incident: str, until_s: float = 15.0) -> None:
    """Drain the outbox (as the io watchdog does) until the incident's queue is empty."""
    outbox = Outbox(runtime)
    deadline = time.monotonic() + until_s
    while outbox.pending(incident) and time.monotonic() < deadline:
        outbox.drain()
        time.sleep(0.2)
    assert outbox.pending(incident) == 0, "the outbox still holds entries after Slack came back"


def _outbox_ids(messages) -> list[str]:
    return [
        m.metadata["event_payload"]["id"]
        for m in messages
        if m.metadata and m.metadata.get("event_type") == OUTBOX_EVENT
    ]


@pytest.mark.parametrize("mode", FAULTS)
def test_what_is_said_during_a_slack_fault_arrives_once_in_order(settings, slack, redis, mode, registry):
    """A parent, three posts and two edits said while Slack fails all reach the thread once Slack is
    back: in order, no message twice, the two edits folded into one, the late ones marked late."""
    runtime = build_runtime(settings, redis, registry)
    incident = runtime.store.open_new(CHANNEL, "U0ALICE", "deploy broke")
    thread = Thread(runtime, incident.id)
    slack.fail_for(60, mode)  # ended below, once everything is said
    started = time.monotonic()

    said = [thread.post("one"), thread.post("two", ref="progress:job-1")]
    thread.update("progress:job-1", "two, running")
    thread.update("progress:job-1", "two, done")
    said.append(thread.post("three"))

    assert said == [None, None, None], "a post was taken while Slack failed"
    assert time.monotonic() - started < 8.0, "a job waited on Slack instead of leaving it to the outbox"
    slack.fail_for(0, mode)  # Slack is back
    _delivered(runtime, incident.id)

    parent = runtime.store.get(incident.id).thread_ts
    assert parent, "the incident's thread was never recorded"
    messages = slack.thread(CHANNEL, parent)
    assert [m.text.rsplit(" ", 1)[-1] for m in messages[1:]] == ["one", "done", "three"], [m.text for m in messages]
    assert len([m for m in slack.messages(CHANNEL) if m.thread_ts is None]) == 1, "the parent was posted twice"
    ids = _outbox_ids(slack.messages(CHANNEL))
    assert len(ids) == len(set(ids)) == 4, "a message was posted twice"
    assert "Reported late" in messages[1].text and "Reported late" in messages[3].text
    edited = messages[2]
    updates = [c for c in slack.calls_to("chat.update") if c.get("ts") == edited.ts]
    assert edited.edits == 1 and len(updates) == 1, "the two waiting edits were not folded into one"


def test_nothing_waits_when_slack_answers(settings, slack, redis, registry):
    """With Slack up, a post is delivered at once, unmarked, and nothing stays in the outbox."""
    runtime = build_runtime(settings, redis, registry)
    incident = runtime.store.open_new(CHANNEL, "U0ALICE", "deploy broke")
    ts = Thread(runtime, incident.id).post("one")
    assert ts and Outbox(runtime).pending(incident.id) == 0
    posted = next(m for m in slack.messages(CHANNEL) if m.ts == ts)
    assert posted.text == "one" and posted.thread_ts == runtime.store.get(incident.id).thread_ts


def test_an_edit_of_a_message_slack_refused_is_dropped_not_retried(settings, slack, redis, registry):
    """Slack refusing an entry (message_not_found) drops it at once: the queue behind it goes on."""
    runtime = build_runtime(settings, redis, registry)
    incident = runtime.store.open_new(CHANNEL, "U0ALICE", "deploy broke")
    thread = Thread(runtime, incident.id)
    thread.update("1700000000.000100", "an edit of a message that does not exist")
    assert thread.post("after it")
    assert Outbox(runtime).pending(incident.id) == 0


def _tagged(messages, text: str) -> list:
    return [m for m in messages if m.metadata and m.metadata.get("event_type") == OUTBOX_EVENT and text in m.text]


def test_a_post_that_landed_in_a_long_thread_is_not_posted_twice(settings, slack, redis, registry):
    """A report whose first try landed (Slack stored it, the connection dropped) after 250 replies in its
    thread is found by paging the thread (15 a page, as Slack serves apps outside the Marketplace) and
    is not posted again."""
    slack.page_limit = 15
    runtime = build_runtime(settings, redis, registry)
    incident = runtime.store.open_new(CHANNEL, "U0ALICE", "deploy broke")
    thread = Thread(runtime, incident.id)
    assert thread.post("opened")
    parent = runtime.store.get(incident.id).thread_ts
    people = WebClient(token=slack.bot_token, base_url=slack.api_url)
    for n in range(250):
        people.chat_postMessage(channel=CHANNEL, thread_ts=parent, text=f"reply {n}")
    slack.fail_for(60, "drop-after-store")
    assert thread.post("the report") is None
    slack.fail_for(0, "drop-after-store")
    _delivered(runtime, incident.id)
    assert len(_tagged(slack.thread(CHANNEL, parent), "the report")) == 1, "the report was posted twice"
    assert len(slack.calls_to("conversations.replies")) > 1, "the lookup did not page"


def test_a_parent_that_landed_in_a_busy_channel_is_not_posted_twice(settings, slack, redis, registry):
    """An incident's parent message whose first try landed, followed by 250 other messages in the channel,
    is found by paging the channel's history (newest first, 15 a page) and is not posted again."""
    slack.page_limit = 15
    runtime = build_runtime(settings, redis, registry)
    incident = runtime.store.open_new(CHANNEL, "U0ALICE", "deploy broke")
    slack.fail_for(60, "drop-after-store")
    assert Thread(runtime, incident.id).post("first report") is None
    slack.fail_for(0, "drop-after-store")
    people = WebClient(token=slack.bot_token, base_url=slack.api_url)
    for n in range(250):
        people.chat_postMessage(channel=CHANNEL, text=f"chatter {n}")
    _delivered(runtime, incident.id)
    parents = [m for m in slack.messages(CHANNEL) if m.thread_ts is None and m.metadata]
    assert len(parents) == 1, "the parent was posted twice"
    assert runtime.store.get(incident.id).thread_ts == parents[0].ts
    assert [m.text for m in slack.thread(CHANNEL, parents[0].ts)[1:]][-1].endswith("first report")
    assert len(slack.calls_to("conversations.history")) > 1, "the lookup did not page"
