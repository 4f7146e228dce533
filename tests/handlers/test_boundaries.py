"""Issue 17's cases, tried as a new user would with NEXY_CHANNELS=C0OPS,C0DEV and NEXY_OPERATORS=U0OPS:
the watch's pause, reading other channels' incidents, exporting another channel's incident, the App
Home, the final checklist, an empty NEXY_CHANNELS, another workspace and Slack Connect guests."""
from __future__ import annotations

import json
import time

import pytest
from rq import Queue

from bot.contract import IO_QUEUE
from bot.errors import SettingsError
from bot.incidents import EventKind, IncidentStore
from bot.watchstate import paused
from handlers.app import create_app
from jobs.watch import Outcome, Watch
from jobs.worker import build_runtime
from nexy.web import check_ready

OPS, DEV = "C0OPS", "C0DEV"
OPERATOR, APPROVER, MEMBER, NOBODY = "U0OPS", "U0APP", "U0MEMBER", "U0NOBODY"


@pytest.fixture
def issue(make_settings, serve_bot):
    """The bot as the issue tried it (the watch's channel C0OPS; an approver besides the operator)."""
    settings = make_settings(nexy_channels=f"{OPS},{DEV}", nexy_operators=OPERATOR, nexy_approvers=APPROVER,
                             nexy_watch_channel=OPS)
    serve_bot(settings)
    return settings


def _ephemeral(slack, user, channel=OPS):
    return [m for m in slack.messages(channel) if m.ephemeral_to == user]


def test_a_non_operators_watch_pause_is_refused_and_the_watch_keeps_probing(issue, slack, work, redis, registry):
    """`/nexy watch pause 24h` by a member in C0DEV is refused at once, saying who may; nothing is paused."""
    text = slack.slash_command("watch pause 24h", user=MEMBER, channel=DEV).json()["text"]
    assert text.startswith(":no_entry:") and "only operators may pause the watch" in text and f"<@{OPERATOR}>" in text
    work(issue, [IO_QUEUE])
    assert paused(redis) is None
    assert Watch(build_runtime(issue, redis, registry)).tick() == {"Nexy": Outcome.OK}
    assert slack.slash_command("watch resume", user=MEMBER, channel=DEV).json()["text"].startswith(":no_entry:")


def test_an_operators_pause_is_announced_in_the_watch_channel(issue, slack, work, redis, registry):
    """An operator's pause from C0DEV is said in NEXY_WATCH_CHANNEL: who, for how long, from where; and so is
    the resume."""
    assert "queued" in slack.slash_command("watch pause 2h", user=OPERATOR, channel=DEV).json()["text"]
    work(issue, [IO_QUEUE])
    assert Watch(build_runtime(issue, redis, registry)).tick() == {"Nexy": Outcome.PAUSED}
    said = [m.text for m in slack.messages(OPS) if not m.ephemeral_to]
    assert any(f"<@{OPERATOR}> paused the watch for 2 h 00 min, from <#{DEV}>" in t for t in said), said
    slack.slash_command("watch resume", user=OPERATOR, channel=DEV)
    work(issue, [IO_QUEUE])
    said = [m.text for m in slack.messages(OPS) if not m.ephemeral_to]
    assert any(f"<@{OPERATOR}> resumed the watch, from <#{DEV}>" in t for t in said), said
    assert Watch(build_runtime(issue, redis, registry)).tick() == {"Nexy": Outcome.OK}


def test_the_paused_time_in_a_day_is_capped(make_settings, serve_bot, slack, work, redis):
    """With NEXY_WATCH_PAUSE_BUDGET_S=3600 and 40 min paused earlier today, a 30 min pause is refused (the
    watch keeps probing) and a 15 min one is taken."""
    settings = make_settings(nexy_channels=OPS, nexy_operators=OPERATOR, nexy_watch_channel=OPS,
                             nexy_watch_pause_budget_s=3600)
    serve_bot(settings)
    now = time.time()
    earlier = {"by": OPERATOR, "since": now - 3 * 3600, "until": now - 3 * 3600 + 2400}
    redis.zadd("nexy:watch:pauses", {json.dumps(earlier, sort_keys=True): earlier["until"]})
    slack.slash_command("watch pause 30m", user=OPERATOR)
    work(settings, [IO_QUEUE])
    (refusal,) = [m for m in _ephemeral(slack, OPERATOR) if "NEXY_WATCH_PAUSE_BUDGET_S" in m.text]
    assert "at most 1 h 00 min in any 24 h" in refusal.text and "40 min 00 s" in refusal.text, refusal.text
    assert paused(redis) is None
    slack.slash_command("watch pause 15m", user=OPERATOR)
    work(settings, [IO_QUEUE])
    assert paused(redis) is not None


def test_history_all_is_an_operators(issue, slack, work):
    """`/nexy history all` by a member is refused and lists nothing; an operator's lists every channel."""
    slack.slash_command("incident new the database is slow", user=MEMBER, channel=OPS)
    text = slack.slash_command("history all", user=MEMBER, channel=DEV).json()["text"]
    assert text.startswith(":no_entry:") and "only operators may read incidents across channels" in text
    work(issue, [IO_QUEUE])
    assert [m.text for m in _ephemeral(slack, MEMBER, DEV)] == [text]  # its refusal, and no listing
    slack.slash_command("history all", user=OPERATOR, channel=DEV)
    work(issue, [IO_QUEUE])
    assert any("the database is slow" in json.dumps(m.blocks) for m in _ephemeral(slack, OPERATOR, DEV))


def test_an_export_of_another_channels_incident_is_refused(issue, slack, work, redis):
    """`/nexy export INC-1` from C0DEV for C0OPS's INC-1 is refused: nothing is uploaded into C0OPS's thread
    and INC-1's hash chain gets no event; from C0OPS it is exported."""
    slack.slash_command("incident new the database is slow", user=MEMBER, channel=OPS)
    work(issue, [IO_QUEUE])
    store = IncidentStore(redis)
    events = len(store.timeline("INC-1"))
    text = slack.slash_command("export INC-1", user=MEMBER, channel=DEV).json()["text"]
    assert text.startswith(":no_entry:") and f"INC-1 belongs to <#{OPS}>" in text
    work(issue, [IO_QUEUE])
    assert slack.calls_to("files.completeUploadExternal") == [] and len(store.timeline("INC-1")) == events
    assert "queued" in slack.slash_command("export INC-1", user=MEMBER, channel=OPS).json()["text"]
    work(issue, [IO_QUEUE])
    assert len(slack.calls_to("files.completeUploadExternal")) == 1
    assert [e.who for e in store.timeline("INC-1") if e.kind is EventKind.EXPORT] == [MEMBER]


def test_app_home_shows_incident_details_to_operators_and_approvers_only(issue, slack, work):
    """The Home tab of a user in no allowed channel, or of a member, holds no incident (title, root cause,
    id); an operator's and an approver's show them."""
    slack.slash_command("incident new the database is slow", user=MEMBER, channel=OPS)
    slack.slash_command("incident close the disk was full", user=OPERATOR, channel=OPS)
    slack.slash_command("incident new payments are down", user=MEMBER, channel=DEV)
    work(issue, [IO_QUEUE])
    for user in (NOBODY, MEMBER, OPERATOR, APPROVER):
        slack.users[user] = user.lower()
        slack.app_home_opened(user=user)
    work(issue, [IO_QUEUE])
    for user in (NOBODY, MEMBER):
        shown = json.dumps(slack.home_views[user]["blocks"])
        assert "database" not in shown and "disk was full" not in shown and "payments" not in shown, shown
        assert "INC-" not in shown and "Incidents are shown here to operators" in shown
    for user in (OPERATOR, APPROVER):
        shown = json.dumps(slack.home_views[user]["blocks"])
        assert "the disk was full" in shown and "payments are down" in shown


def test_a_non_operators_tick_on_the_final_checklist_changes_nothing(issue, slack, work, redis):
    """A member ticking the final checklist is told only operators may; no tick is recorded and the message
    is not edited. An operator's tick counts."""
    slack.slash_command("incident new the database is slow", user=MEMBER, channel=OPS)
    slack.slash_command("incident close the disk was full", user=OPERATOR, channel=OPS)
    work(issue, [IO_QUEUE])
    checklist = next(m for m in slack.messages(OPS) if "Final checklist" in m.text)
    box = next(e for b in checklist.blocks if b.get("type") == "actions" for e in b["elements"])
    store, updates = IncidentStore(redis), len(slack.calls_to("chat.update"))
    events = len(store.timeline("INC-1"))
    slack.checkboxes(user=MEMBER, channel=OPS, message_ts=checklist.ts, action_id=box["action_id"],
                     selected=["root-cause", "minimal-fix"])
    work(issue, [IO_QUEUE])
    assert len(store.timeline("INC-1")) == events and len(slack.calls_to("chat.update")) == updates
    assert any("only operators may tick the final checklist" in m.text for m in _ephemeral(slack, MEMBER))
    slack.checkboxes(user=OPERATOR, channel=OPS, message_ts=checklist.ts, action_id=box["action_id"],
                     selected=["root-cause"])
    work(issue, [IO_QUEUE])
    assert store.timeline("INC-1")[-1].kind is EventKind.CHECKLIST and store.timeline("INC-1")[-1].who == OPERATOR


def test_an_empty_nexy_channels_refuses_to_start_with_slack_credentials(make_settings, serve_bot, slack, registry, redis):
    """With Slack credentials, an empty NEXY_CHANNELS stops the start with a line naming it (fail closed);
    `*` says every channel on purpose, and the bot answers anywhere; `*` mixed with ids is refused."""
    empty = make_settings(nexy_channels="")
    for start in (lambda settings: create_app(settings, registry, redis), check_ready):
        with pytest.raises(SettingsError, match="NEXY_CHANNELS is empty"):
            start(empty)
    serve_bot(make_settings(nexy_channels="*"))
    assert "queued" in slack.slash_command("health", channel="C0ANYWHERE").json()["text"]
    with pytest.raises(SettingsError, match="NEXY_CHANNELS"):
        make_settings(nexy_channels="*,C0OPS")


def test_another_workspace_and_slack_connect_guests_are_refused(issue, slack, work, redis):
    """A slash command from another workspace, and a Slack Connect guest's command, mention and click in a
    shared channel, are refused (the command with a word, the rest ignored): nothing is queued."""
    slack.slash_command("incident new the database is slow", user=MEMBER, channel=OPS)
    work(issue, [IO_QUEUE])
    store, events = IncidentStore(redis), len(IncidentStore(redis).timeline("INC-1"))
    text = slack.slash_command("health", user=MEMBER, channel=OPS, team_id="T0OTHER").json()["text"]
    assert text.startswith(":no_entry:") and "another Slack workspace" in text
    slack.user_teams["U0GUEST"] = "T0PARTNER"
    text = slack.slash_command("health", user="U0GUEST", channel=OPS).json()["text"]
    assert text.startswith(":no_entry:")
    assert slack.app_mention("<@U0NEXYBOT> health", user="U0GUEST", channel=OPS).status_code == 200
    assert slack.event({"type": "app_home_opened", "user": MEMBER, "channel": "D0MEMBER", "tab": "home"},
                       team_id="T0OTHER").status_code == 200
    parent = next(m for m in slack.messages(OPS) if m.user == slack.bot_user_id and not m.ephemeral_to)
    assert slack.block_action(user="U0GUEST", channel=OPS, message_ts=parent.ts, action_id="fix_plan",
                              value="fix config-perms").status_code == 200
    assert len(store.timeline("INC-1")) == events
    assert Queue(IO_QUEUE, connection=redis).count == 0 and slack.home_views == {}
