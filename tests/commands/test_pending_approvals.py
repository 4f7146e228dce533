"""What waits for a person: plans pending approval listed per VM in `/nexy queue` and App Home (fix, incident
and link, who asked, approvals so far and needed, age, time left), and one reminder half-way through the window."""
from __future__ import annotations

import json
import re
import time

from bot.contract import DECISIONS_QUEUE, IO_QUEUE
from tests.helpers import APPROVER, OPERATOR, bot_messages

DEV = "U0CAROL"


def _plan(slack, work, settings):
    reply = slack.slash_command("fix config-perms", user=OPERATOR)
    assert "queued" in reply.json()["text"], reply.json()["text"]
    work(settings)
    return next(m for m in bot_messages(slack) if m.text.startswith(":clipboard: Plan"))


def _home(slack, work, settings, user: str) -> str:
    slack.app_home_opened(user=user)
    work(settings, [IO_QUEUE])
    return json.dumps(slack.home_views[user]["blocks"])


def test_queue_and_home_list_the_plan_waiting_for_approval(serve_bot, vm_settings, slack, work, vm):
    """A pending plan is listed in `/nexy queue` and on the Home tab of an approver with its incident, link,
    requester, approvals and times; someone else's Home tab shows only the fix and times; once approved it is gone."""
    settings = vm_settings(nexy_operators=OPERATOR, nexy_approvers=APPROVER, nexy_approval_ttl_s=600)
    serve_bot(settings)
    vm.break_("config-perms")
    plan = _plan(slack, work, settings)
    plan_id = re.search(r"P-[0-9a-f]+", plan.text).group(0)
    slack.slash_command("queue", user=DEV)
    work(settings, [IO_QUEUE])
    report = bot_messages(slack)[-1].text
    assert "Waiting for approval (1)" in report
    link = f"<https://sandbox.slack.com/archives/C0OPS/p{plan.ts.replace('.', '')}?thread_ts={plan.thread_ts}&cid=C0OPS"
    assert f"`fix config-perms` (INC-1, {link}|plan {plan_id}>) asked by <@{OPERATOR}>: 0 of 1 approval, " in report
    assert "0 of 1 approval, " in report and " left" in report

    approver_view = _home(slack, work, settings, APPROVER)
    assert f"plan {plan_id}" in approver_view and f"asked by <@{OPERATOR}>" in approver_view
    assert "0 of 1 approval" in approver_view
    limited = _home(slack, work, settings, DEV)
    line = next(part for part in limited.split("\\n") if "`fix config-perms`" in part)
    assert line.startswith(":hourglass_flowing_sand: `fix config-perms` waits for approval: ") and " left" in line
    assert "INC-1" not in line and OPERATOR not in line and plan_id not in limited

    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(settings)
    slack.slash_command("queue", user=DEV)
    work(settings, [IO_QUEUE])
    assert "Waiting for approval (0)\nno plan waits for approval" in bot_messages(slack)[-1].text


def test_one_reminder_half_way_names_the_approvers(serve_bot, vm_settings, slack, work, vm):
    """Half-way through the approval window the plan's thread gets one reminder naming the approvers, a user
    group by its mention; the expiry still says so when the window closes."""
    settings = vm_settings(nexy_operators=OPERATOR, nexy_approvers=f"{APPROVER},@oncall", nexy_approval_ttl_s=2)
    serve_bot(settings)
    vm.break_("config-perms")
    plan = _plan(slack, work, settings)
    deadline = time.monotonic() + 15
    while not any("before anyone approved" in m.text for m in bot_messages(slack)):
        assert time.monotonic() < deadline, "no expiry 15 s after a 2 s approval window"
        time.sleep(0.1)
        work(settings, [DECISIONS_QUEUE])  # its scheduler enqueues the reminder, then the expiry, once due
    reminders = [m for m in bot_messages(slack) if m.text.startswith(":bell:")]
    assert len(reminders) == 1, [m.text for m in reminders]
    text = reminders[0].text
    assert reminders[0].thread_ts == plan.thread_ts
    assert f"Approvers <@{APPROVER}>, <!subteam^SONCALL>" in text and "0 of 1 approval so far" in text


def test_a_decided_plan_gets_no_reminder(serve_bot, vm_settings, slack, work, vm):
    """A plan approved before half its window gets no reminder."""
    settings = vm_settings(nexy_operators=OPERATOR, nexy_approvers=APPROVER, nexy_approval_ttl_s=2)
    serve_bot(settings)
    vm.break_("config-perms")
    plan = _plan(slack, work, settings)
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(settings)
    time.sleep(1.2)
    work(settings, [DECISIONS_QUEUE])
    assert not [m for m in bot_messages(slack) if m.text.startswith(":bell:")]
