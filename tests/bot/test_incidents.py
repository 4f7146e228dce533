"""Incidents end to end, through signed Slack requests, the worker, the Azure emulator and the simulated VM:
open, checks, fix, close with the section 10 checklist, history, export; `incident new`; free text."""
from __future__ import annotations

import json

import pytest

from bot.incidents import EventKind, IncidentStore
from tests.helpers import APPROVER, KEY, OPERATOR

OTHER = "U0CAROL"


@pytest.fixture
def ops(serve_bot, vm_settings):
    """The bot reaching the simulated VM; alice is an operator, bob an approver."""
    settings = vm_settings(nexy_operators=OPERATOR, nexy_approvers=APPROVER)
    serve_bot(settings)
    return settings


def _parents(slack, channel="C0OPS"):
    return [m for m in slack.messages(channel) if m.user == slack.bot_user_id and not m.thread_ts and not m.ephemeral_to]


def _thread(slack, parent, channel="C0OPS"):
    return [m for m in slack.thread(channel, parent.ts) if m.ts != parent.ts and not m.ephemeral_to]


def _ephemeral(slack, user, channel="C0OPS"):
    """What the bot posted to one person only (not the acks of their commands)."""
    return [m for m in slack.messages(channel) if m.ephemeral_to == user and m.blocks]


def _checkboxes(message):
    block = next(b for b in message.blocks if b["type"] == "actions")
    return block["elements"][0]


def test_an_incidents_whole_life(ops, slack, work, vm, azure, redis):
    """Checks and a fix open and fill INC-1; an operator closes it with its root cause: the checklist holds the
    real verify results, the parent says resolved; history lists it; the next command opens INC-2; export
    gives the whole story ending with the chain head."""
    vm.break_("config-perms")
    slack.slash_command("status", user=OPERATOR)
    slack.slash_command("fix config-perms", user=OPERATOR)
    work(ops)
    plan = next(m for m in slack.messages("C0OPS") if m.text.startswith(":clipboard: Plan"))
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(ops)
    assert vm.service_active()
    slack.slash_command("health", user=APPROVER)
    work(ops)

    ack = slack.slash_command("incident close config.env lost its group after a manual copy <!channel>", user=OPERATOR)
    assert ack.json()["text"] == ":hourglass_flowing_sand: `incident close` is queued for INC-1."
    work(ops)
    (parent,) = _parents(slack)
    assert slack.find(parent.ts).edits == 1
    resolved = slack.find(parent.ts)
    assert "Incident INC-1 resolved" in resolved.text
    body = json.dumps(resolved.blocks)
    assert "config.env lost its group after a manual copy &lt;!channel&gt;" in body and "<!channel>" not in body
    assert "Runbook sections: 4, 5, 6.1, 10" in body and "after " in body

    checklist = next(m for m in _thread(slack, parent) if "Final checklist" in m.text)
    boxes = _checkboxes(checklist)
    assert [o["value"] for o in boxes["options"]] == ["root-cause", "minimal-fix", "verify", "runbook", "prevention"]
    assert [o["value"] for o in boxes["initial_options"]] == ["verify"]
    verify = json.dumps(checklist.blocks[1])
    assert ":white_check_mark: `fix config-perms`" in verify and "verified" in verify
    assert ":white_check_mark: `health`" in verify and "all 2 endpoints up" in verify
    assert ":white_circle: `status`" in verify and "before the fix: not counted" in verify  # failed, before the fix
    store = IncidentStore(redis)
    closed = next(e for e in store.timeline("INC-1") if e.kind is EventKind.CLOSED)
    checklist_event = next(e for e in store.timeline("INC-1") if e.kind is EventKind.CHECKLIST)
    assert closed.who == OPERATOR and checklist_event.get("head") in json.dumps(checklist.blocks)

    slack.checkboxes(user=OPERATOR, channel="C0OPS", message_ts=checklist.ts, action_id=boxes["action_id"],
                     selected=["root-cause", "verify"])
    work(ops)
    ticked = _checkboxes(slack.find(checklist.ts))
    assert [o["value"] for o in ticked["initial_options"]] == ["root-cause", "verify"]
    assert f"Last ticked by <@{OPERATOR}>" in json.dumps(slack.find(checklist.ts).blocks)
    assert store.timeline("INC-1")[-1].kind is EventKind.CHECKLIST and store.timeline("INC-1")[-1].who == OPERATOR

    slack.slash_command("history", user=OTHER)
    work(ops)
    (listing,) = _ephemeral(slack, OTHER)
    text = json.dumps(listing.blocks)
    assert "INC-1" in text and "resolved" in text and "config.env lost its group" in text
    assert f"https://sandbox.slack.com/archives/C0OPS/p{parent.ts.replace('.', '')}|INC-1" in text
    assert "sections 4, 5, 6.1, 10" in text

    assert "a new incident thread (INC-2)" in slack.slash_command("health", user=OTHER).json()["text"]
    work(ops)
    assert len(_parents(slack)) == 2

    slack.slash_command("export INC-1", user=OTHER)
    work(ops)
    upload = next(m for m in _thread(slack, parent) if m.files)
    document = upload.files[0]["content"]
    assert upload.files[0]["name"] == "INC-1-postmortem.md"
    for part in ("# INC-1: status", "## Timeline", "asked for `fix config-perms`", "## What the VM said",
                 "`config_perms_apply`", "## Plans and diffs", "config.env  owner root:root  mode 600",
                 "## Verify results", "- [x] Root cause fixed", "- [ ] Runbook updated",
                 "config.env lost its group after a manual copy"):
        assert part in document, part
    head = document.rsplit("Chain head: `", 1)[1].split("`", 1)[0]
    assert store.verify("INC-1", expected_head=head).intact
    assert azure.run_count[KEY] == 3  # status, the plan, the apply: incident commands run none


def test_closing_needs_an_operator(ops, slack, work, redis):
    """Someone who is not an operator is told who may close; the incident stays open."""
    slack.slash_command("health", user=OTHER)
    work(ops)
    text = slack.slash_command("incident close it was DNS", user=OTHER).json()["text"]
    assert "only operators may close an incident" in text and "<@U0ALICE>" in text
    assert IncidentStore(redis).get("INC-1").is_open


def test_closing_expires_the_pending_plan(ops, slack, work, vm, azure):
    """A plan waiting for approval when its incident is resolved expires with a note; approving it later runs nothing."""
    vm.break_("config-perms")
    slack.slash_command("fix config-perms", user=OPERATOR)
    work(ops)
    plan = next(m for m in slack.messages("C0OPS") if m.text.startswith(":clipboard: Plan"))
    slack.slash_command("incident close a false alarm", user=OPERATOR)
    work(ops)
    assert "expired" in slack.find(plan.ts).text
    assert any("INC-1 was resolved before anyone approved it" in m.text for m in slack.messages("C0OPS"))
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(ops)
    assert any(m.ephemeral_to == APPROVER and "already expired" in m.text for m in slack.messages("C0OPS"))
    assert azure.run_count[KEY] == 1 and not vm.service_active()


def test_incident_new_opens_a_second_thread_and_a_mention_closes_the_first(ops, slack, work, redis):
    """`incident new` opens INC-2 while INC-1 is open; later commands go to INC-2; `@nexy incident close` in
    INC-1's thread closes INC-1 only."""
    slack.slash_command("health", user=OPERATOR)
    work(ops)
    ack = slack.slash_command("incident new Disk full on <!here>", user=OPERATOR).json()["text"]
    assert ack.startswith(":rotating_light: INC-2 is opened: Disk full on &lt;!here&gt;")
    work(ops)
    first, second = _parents(slack)
    assert "Disk full on &lt;!here&gt;" in second.text
    posted = [m for m in slack.messages("C0OPS") if m.user == slack.bot_user_id]
    assert "<!here>" not in json.dumps([(m.text, m.blocks) for m in posted])  # typed text pings no one
    assert "the open incident's thread (INC-2)" in slack.slash_command("health", user=OPERATOR).json()["text"]
    slack.app_mention(f"<@{slack.bot_user_id}> incident close it was a full disk", user=OPERATOR, channel="C0OPS",
                      thread_ts=first.ts)
    work(ops)
    store = IncidentStore(redis)
    assert not store.get("INC-1").is_open and store.get("INC-1").root_cause == "it was a full disk"
    assert store.get("INC-2").is_open and len(_thread(slack, second)) == 1
    assert any("Final checklist" in m.text for m in _thread(slack, first))


def test_incident_shows_the_open_one(ops, slack, work):
    """`/nexy incident` says when none is open; then shows the open one with its link and latest events, only to the asker."""
    none = slack.slash_command("incident", user=OTHER).json()["text"]
    assert "No incident is open in <#C0OPS>" in none and "`/nexy history`" in none
    slack.slash_command("health", user=OPERATOR)
    work(ops)
    slack.slash_command("incident", user=OTHER)
    work(ops)
    (shown,) = _ephemeral(slack, OTHER)
    text = json.dumps(shown.blocks)
    assert "https://sandbox.slack.com/archives/C0OPS/p" in text and "open" in text
    assert "asked for `health` (slash)" in text and "Latest events" in text and "started" not in text


def test_typed_text_is_checked_cleaned_and_redacted(ops, slack, work, redis):
    """A root cause too long is refused saying the limit; control characters are stripped; a key typed by
    mistake is redacted before it is stored or posted."""
    slack.slash_command("health", user=OPERATOR)
    work(ops)
    long = slack.slash_command("incident close " + "x" * 401, user=OPERATOR).json()["text"]
    assert "401 characters" in long and "at most 400" in long
    assert IncidentStore(redis).get("INC-1").is_open
    slack.slash_command("incident close the key\u202e AIzaSyA1234567890abcdefghijklmnopqrstu\x07 expired", user=OPERATOR)
    work(ops)
    incident = IncidentStore(redis).get("INC-1")
    assert incident.root_cause == "the key [REDACTED]:google-api-key expired"
    assert "AIzaSy" not in json.dumps([m.blocks for m in slack.messages()]) + str(redis.keys("*"))


def test_history_is_per_channel_or_all_and_bounded(ops, slack, work):
    """`history` lists this channel's incidents, `history all` (an operator's) every channel's; more than 20
    is refused."""
    slack.slash_command("health", user=OPERATOR, channel="C0OPS")
    slack.slash_command("health", user=OPERATOR, channel="C0DEPLOYS")
    work(ops)
    slack.slash_command("history", user=OTHER, channel="C0OPS")
    work(ops)
    slack.slash_command("history all 5", user=OPERATOR, channel="C0OPS")
    work(ops)
    (mine,) = (json.dumps(m.blocks) for m in _ephemeral(slack, OTHER))
    (everywhere,) = (json.dumps(m.blocks) for m in _ephemeral(slack, OPERATOR))
    assert "INC-1" in mine and "INC-2" not in mine
    assert "INC-1" in everywhere and "INC-2" in everywhere and "every channel" in everywhere
    text = slack.slash_command("history 21", user=OTHER).json()["text"]
    assert "not a valid count" in text and "1 to 20" in text


def test_export_without_an_incident_says_so(ops, slack):
    """`export` in a channel with no incident, or of an id that does not exist, answers at once."""
    assert "No incident is open" in slack.slash_command("export", user=OTHER).json()["text"]
    assert "There is no incident INC-42" in slack.slash_command("export inc-42", user=OTHER).json()["text"]


def test_a_mention_in_a_resolved_thread_goes_to_the_next_incident(ops, slack, work, redis):
    """After INC-1 is resolved, `@nexy health` in its old thread opens INC-2 (its own thread), not INC-1 again."""
    slack.slash_command("health", user=OPERATOR)
    work(ops)
    slack.slash_command("incident close the 8081 port was closed", user=OPERATOR)
    work(ops)
    (first,) = _parents(slack)
    slack.app_mention(f"<@{slack.bot_user_id}> health", user=OTHER, channel="C0OPS", thread_ts=first.ts)
    work(ops)
    store = IncidentStore(redis)
    assert not store.get("INC-1").is_open and store.get("INC-2").is_open
    second = _parents(slack)[1]
    assert "Incident INC-2" in second.text and any("endpoints up" in m.text for m in _thread(slack, second))
