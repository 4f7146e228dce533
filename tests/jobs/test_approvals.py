"""N-of-M approvals end to end: signed Slack reactions, clicks and retries at the bot, the decisions worker,
the plan's atomic count in a real Redis, and the apply counted at the Azure Run Command emulator."""
from __future__ import annotations

import threading

import pytest

from bot import postmortem
from bot.incidents import EventKind, IncidentStore
from tests.helpers import APPROVER, KEY, OPERATOR, SECOND_APPROVER, bot_messages

CAROL = "U0CAROL"
APPROVERS = (APPROVER, CAROL, SECOND_APPROVER)


@pytest.fixture
def two_of_three(serve_bot, vm_settings):
    """Three approvers; `fix config-perms` needs two of them (NEXY_APPROVALS), `fix deps` two by its declaration."""
    settings = vm_settings(nexy_operators=OPERATOR, nexy_approvers=",".join(APPROVERS),
                           nexy_approvals="config-perms=2")
    serve_bot(settings)
    return settings


def _ask(slack, work, settings, words="fix config-perms"):
    reply = slack.slash_command(words, user=OPERATOR)
    assert "queued" in reply.json()["text"], reply.json()["text"]
    work(settings)
    return next(m for m in bot_messages(slack) if m.text.startswith(":clipboard: Plan"))


def _plan_id(message) -> str:
    return message.text.split("Plan ", 1)[1].split(":", 1)[0]


def _timeline(redis):
    return IncidentStore(redis).timeline("INC-1")


def _approvals(redis) -> list[tuple[str, str]]:
    return [(e.who, e.get("counted")) for e in _timeline(redis) if e.kind is EventKind.APPROVAL]


def _burst(slack, plan, users, n_requests=20) -> list[int]:
    """n_requests at once: Approve clicks and :white_check_mark: reactions, some of them Slack's retries of
    the same event (same event id, same person), by the given users in turn."""
    plan_id, barrier, statuses = _plan_id(plan), threading.Barrier(n_requests), []

    def send(n: int) -> None:
        user = users[n % len(users)]
        barrier.wait()
        if n % 4 == 0:
            response = slack.block_action(user=user, channel="C0OPS", message_ts=plan.ts, action_id="plan_approve",
                                          value=plan_id)
        else:  # event n % (2 * len(users)) is always the same person's: a retry is the same event sent again
            response = slack.reaction_added("white_check_mark", user=user, channel="C0OPS", ts=plan.ts,
                                            event_id=f"Ev0APPROVE{n % (2 * len(users))}",
                                            retry_num=(n // (2 * len(users))) or None)
        statuses.append(response.status_code)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(n_requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(statuses) <= {200, 503}, statuses  # 503: a retry while its event is still handled
    return statuses


def test_two_of_three_under_twenty_concurrent_reactions_clicks_and_retries_apply_once(two_of_three, slack, work,
                                                                                        vm, azure, redis):
    """20 approvals at once from three approvers (clicks, reactions, retries): exactly one apply, after two people."""
    vm.break_("config-perms")
    plan = _ask(slack, work, two_of_three)
    _burst(slack, plan, APPROVERS)
    work(two_of_three)
    assert azure.run_count[KEY] == 2  # the plan's run-command and exactly one apply
    assert sum("Fixed and verified" in m.text for m in bot_messages(slack)) == 1 and vm.service_active()
    approvals = _approvals(redis)
    assert sorted(counted for _, counted in approvals) == ["1 of 2", "2 of 2"], approvals
    assert len({who for who, _ in approvals}) == 2 and {who for who, _ in approvals} <= set(APPROVERS)
    kinds = [e.kind for e in _timeline(redis)]
    assert kinds.count(EventKind.APPLY) == 1
    assert kinds.index(EventKind.APPLY) > max(i for i, kind in enumerate(kinds) if kind is EventKind.APPROVAL)


def test_one_approver_approving_twenty_times_at_once_counts_once_and_runs_nothing(two_of_three, slack, work, vm,
                                                                                   azure, redis):
    """One person's 20 concurrent clicks, reactions and retries are one approval: 1 of 2, nothing runs; a second
    person's approval then applies it, once."""
    vm.break_("config-perms")
    plan = _ask(slack, work, two_of_three)
    _burst(slack, plan, (APPROVER,))
    work(two_of_three)
    assert azure.run_count[KEY] == 1 and not vm.service_active()
    assert _approvals(redis) == [(APPROVER, "1 of 2")]
    assert redis.hget(f"nexy:plan:{_plan_id(plan)}", "status") == b"pending"
    again = [m for m in slack.messages("C0OPS") if m.ephemeral_to == APPROVER and "approved plan" in m.text]
    assert again and all("counts once" in m.text for m in again)
    slack.reaction_added("white_check_mark", user=CAROL, channel="C0OPS", ts=plan.ts)
    work(two_of_three)
    assert azure.run_count[KEY] == 2 and vm.service_active()
    assert _approvals(redis) == [(APPROVER, "1 of 2"), (CAROL, "2 of 2")]


def test_the_requester_never_counts_even_with_self_approval(serve_bot, vm_settings, slack, work, vm, azure, redis):
    """The requester, an approver too, with NEXY_ALLOW_SELF_APPROVAL: their approval of a two-approval plan is
    refused; one other approver leaves it at 1 of 2; nothing runs."""
    settings = vm_settings(nexy_operators=OPERATOR, nexy_approvers=f"{OPERATOR},{APPROVER}",
                           nexy_allow_self_approval=True, nexy_approvals="config-perms=2")
    serve_bot(settings)
    vm.break_("config-perms")
    plan = _ask(slack, work, settings)
    slack.reaction_added("white_check_mark", user=OPERATOR, channel="C0OPS", ts=plan.ts)
    slack.block_action(user=OPERATOR, channel="C0OPS", message_ts=plan.ts, action_id="plan_approve",
                       value=_plan_id(plan))
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(settings)
    notes = [m for m in slack.messages("C0OPS") if m.ephemeral_to == OPERATOR and "does not count" in m.text]
    assert len(notes) == 2 and "2 approvals from other people" in notes[0].text
    assert _approvals(redis) == [(APPROVER, "1 of 2")]
    assert azure.run_count[KEY] == 1 and not vm.service_active()


def test_one_rejection_after_an_approval_rejects(two_of_three, slack, work, vm, azure, redis):
    """1 of 2 approvals, then :x: from another approver: rejected, and a third approval runs nothing."""
    vm.break_("config-perms")
    plan = _ask(slack, work, two_of_three)
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(two_of_three)
    slack.reaction_added("x", user=CAROL, channel="C0OPS", ts=plan.ts)
    work(two_of_three)
    slack.reaction_added("white_check_mark", user=SECOND_APPROVER, channel="C0OPS", ts=plan.ts)
    work(two_of_three)
    assert any(f"rejected by <@{CAROL}>" in m.text for m in bot_messages(slack))
    assert "rejected" in slack.find(plan.ts).text
    assert redis.hget(f"nexy:plan:{_plan_id(plan)}", "status") == b"rejected"
    assert azure.run_count[KEY] == 1 and not vm.service_active()


def test_fix_deps_plan_message_timeline_and_export_show_one_of_two(fix_settings, slack, work, vm, azure, redis):
    """`fix deps` needs two approvers: after one, the plan message (edited in place), the timeline and the export
    say 1 of 2 and who; after the second, the message says who approved."""
    vm.break_("deps-mismatch")
    plan = _ask(slack, work, fix_settings, "fix deps")
    assert "Approvals: 0 of 2" in str(plan.blocks)
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(fix_settings)
    shown = slack.find(plan.ts)
    assert f"Approvals: 1 of 2 (<@{APPROVER}>)" in str(shown.blocks) and "plan_approve" in str(shown.blocks)
    assert _approvals(redis) == [(APPROVER, "1 of 2")]
    incident = IncidentStore(redis).get("INC-1")
    export = postmortem.markdown(incident, _timeline(redis), "")
    assert f"{APPROVER}: approved plan {_plan_id(plan)} (reaction): 1 of 2 approvals, waits for more" in export
    assert azure.run_count[KEY] == 1
    slack.reaction_added("white_check_mark", user=SECOND_APPROVER, channel="C0OPS", ts=plan.ts)
    work(fix_settings)
    decided = slack.find(plan.ts)
    assert f"approved by <@{APPROVER}>, <@{SECOND_APPROVER}> (Approvals: 2 of 2" in str(decided.blocks)
    assert "plan_approve" not in str(decided.blocks) and azure.run_count[KEY] == 2
