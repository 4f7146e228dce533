"""The fix lifecycle end to end: plan, approval by reaction or button, apply and verify, through signed
Slack requests, the worker, the real Azure SDK, the Run Command emulator and the simulated VM."""
from __future__ import annotations

import threading
import time

import httpx
import pytest

from bot.contract import DECISIONS_QUEUE, IO_QUEUE
from tests.helpers import APPROVER, KEY, OPERATOR, RG, VM_NAME, bot_messages

OTHER = "U0CAROL"


@pytest.fixture
def fix_settings(serve_bot, vm_settings):
    settings = vm_settings(nexy_operators=OPERATOR, nexy_approvers=f"{APPROVER},@leads")
    serve_bot(settings)
    return settings


def _plan_message(slack):
    return next(m for m in bot_messages(slack) if m.text.startswith(":clipboard: Plan"))


def _ask(slack, work, settings, words="fix config-perms", user=OPERATOR):
    reply = slack.slash_command(words, user=user)
    assert "queued" in reply.json()["text"], reply.json()["text"]
    work(settings)
    return _plan_message(slack)


def _thread_text(slack) -> str:
    return "\n".join(f"{m.text}\n{m.blocks}" for m in bot_messages(slack))


def test_config_perms_happy_path_heals_the_vm(fix_settings, slack, work, vm, azure, redis):
    """Plan (diff, commands, approvers, expiry), a reaction approves, apply+verify heals: two run-commands."""
    vm.break_("config-perms")
    plan = _ask(slack, work, fix_settings)
    body = str(plan.blocks)
    assert "- " in body and "owner root:root  mode 600" in body and "owner root:azureuser  mode 640" in body
    assert "sudo chown root:azureuser" in body and "sudo chmod 640" in body
    assert "<@U0BOB>" in body and "Expires" in body
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(fix_settings)
    text = _thread_text(slack)
    assert "approved by <@U0BOB>" in text
    assert "Fixed and verified" in text
    assert "+ owner root:azureuser  mode 640" in text and "(read back after the change)" in text
    assert ":white_check_mark: `systemctl is-active`: active" in text
    assert text.count(":white_check_mark: `curl ") == 2
    assert azure.run_count[KEY] == 2
    assert vm.service_active() and httpx.get(vm.health_urls[0]).status_code == 200
    assert slack.find(plan.ts).edits >= 1 and "approved" in slack.find(plan.ts).text
    kinds = [event.kind.value for event in _incident_log(redis)]
    for kind in ("command", "plan", "approval", "apply", "verify"):
        assert kind in kinds


def test_execstart_happy_path_by_button(fix_settings, slack, work, vm, azure):
    """The unit file diff is planned, the Approve button approves, daemon-reload and restart heal the service."""
    vm.break_("execstart-drift")
    plan = _ask(slack, work, fix_settings, "fix execstart")
    assert "server/server/main.py" in str(plan.blocks)
    response = slack.block_action(user=APPROVER, channel="C0OPS", message_ts=plan.ts, action_id="plan_approve",
                                  value=_plan_id(plan))
    assert response.status_code == 200
    work(fix_settings)
    text = _thread_text(slack)
    assert "Fixed and verified" in text and "daemon-reload" in text
    assert "+ExecStart=" in text or "+ ExecStart=" in text
    assert vm.service_active() and azure.run_count[KEY] == 2


def test_nothing_to_fix_asks_no_approval(fix_settings, slack, work, azure):
    """On a healthy VM the plan says nothing to fix and posts no approval request."""
    slack.slash_command("fix config-perms", user=OPERATOR)
    work(fix_settings)
    text = _thread_text(slack)
    assert "nothing to fix" in text and "Plan P-" not in text
    assert azure.run_count[KEY] == 1


def test_self_approval_refused(fix_settings, slack, work, vm, azure):
    """The requester's own approval does not count; they are told why, ephemerally; nothing runs."""
    vm.break_("config-perms")
    plan = _ask(slack, work, fix_settings)
    slack.reaction_added("white_check_mark", user=OPERATOR, channel="C0OPS", ts=plan.ts)
    work(fix_settings)
    notes = [m for m in slack.messages("C0OPS") if m.ephemeral_to == OPERATOR and "does not count" in m.text]
    assert len(notes) == 1 and "second person" in notes[0].text
    assert azure.run_count[KEY] == 1 and not vm.service_active()


def test_self_approval_allowed_when_configured(serve_bot, vm_settings, slack, work, vm, azure):
    """With NEXY_ALLOW_SELF_APPROVAL=true an operator who is also an approver may approve their own plan."""
    settings = vm_settings(nexy_operators=OPERATOR, nexy_approvers=OPERATOR, nexy_allow_self_approval=True)
    serve_bot(settings)
    vm.break_("config-perms")
    plan = _ask(slack, work, settings)
    slack.reaction_added("white_check_mark", user=OPERATOR, channel="C0OPS", ts=plan.ts)
    work(settings)
    assert "Fixed and verified" in _thread_text(slack) and vm.service_active()


def test_non_approver_is_ignored_with_explanation(fix_settings, slack, work, vm, azure):
    """A reaction from someone who is not an approver is explained to them only, and changes nothing."""
    vm.break_("config-perms")
    plan = _ask(slack, work, fix_settings)
    slack.reaction_added("white_check_mark", user=OTHER, channel="C0OPS", ts=plan.ts)
    work(fix_settings)
    notes = [m for m in slack.messages("C0OPS") if m.ephemeral_to == OTHER]
    assert len(notes) == 1 and "only approvers" in notes[0].text and "<@U0BOB>" in notes[0].text
    assert azure.run_count[KEY] == 1


def test_group_handle_approver_resolved_through_slack(fix_settings, slack, work, vm, azure):
    """An approver listed by user-group handle (@leads) is resolved with usergroups.users.list."""
    slack.usergroups["leads"] = [OTHER]
    vm.break_("config-perms")
    plan = _ask(slack, work, fix_settings)
    slack.reaction_added("white_check_mark", user=OTHER, channel="C0OPS", ts=plan.ts)
    work(fix_settings)
    assert "Fixed and verified" in _thread_text(slack)
    assert slack.calls_to("usergroups.users.list")


def test_rejection_posts_and_runs_nothing(fix_settings, slack, work, vm, azure):
    """:x: from an approver rejects: the thread says so and no apply runs."""
    vm.break_("config-perms")
    plan = _ask(slack, work, fix_settings)
    slack.reaction_added("x", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(fix_settings)
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(fix_settings)
    text = _thread_text(slack)
    assert "rejected by <@U0BOB>" in text and "Nothing ran on the VM" in text
    assert azure.run_count[KEY] == 1 and not vm.service_active()


def test_expired_plan_refused(serve_bot, vm_settings, slack, work, vm, azure, redis):
    """An approval after NEXY_APPROVAL_TTL_S marks the plan expired; nothing runs."""
    settings = vm_settings(nexy_operators=OPERATOR, nexy_approvers=APPROVER, nexy_approval_ttl_s=30)
    serve_bot(settings)
    vm.break_("config-perms")
    plan = _ask(slack, work, settings)
    plan_id = _plan_id(plan)
    redis.hset(f"nexy:plan:{plan_id}", "expires_at", str(time.time() - 1))  # the clock moved past the expiry
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(settings)
    assert "expired" in _thread_text(slack) and azure.run_count[KEY] == 1


def test_unapproved_plan_expires_on_its_own(serve_bot, vm_settings, slack, work, vm, azure, redis):
    """When the approval window closes with no decision, the thread says the plan expired; a late
    approval then runs nothing."""
    settings = vm_settings(nexy_operators=OPERATOR, nexy_approvers=APPROVER, nexy_approval_ttl_s=1)
    serve_bot(settings)
    vm.break_("config-perms")
    plan = _ask(slack, work, settings)
    deadline = time.monotonic() + 10
    while not any("expired" in m.text and "before anyone approved" in m.text for m in bot_messages(slack)):
        assert time.monotonic() < deadline, "no expiry notice 10 s after a 1 s approval window"
        time.sleep(0.1)
        work(settings)  # the io worker's scheduler enqueues the expiry once it is due
    assert "expired" in slack.find(plan.ts).text
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(settings)
    assert azure.run_count[KEY] == 1
    assert "expiry" in [event.kind.value for event in _incident_log(redis)]


def test_stale_plan_refused(fix_settings, slack, work, vm, azure):
    """If the VM changed between plan and apply, apply refuses and changes nothing."""
    vm.break_("config-perms")
    plan = _ask(slack, work, fix_settings)
    (vm.app_dir / "config.env").chmod(0o644)  # someone changed the mode by hand meanwhile
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(fix_settings)
    text = _thread_text(slack)
    assert "Refused: the VM changed since the plan" in text and "root:root:644" in text
    assert azure.run_count[KEY] == 2 and not vm.service_active()


def test_restart_with_failing_preflight_does_not_restart(fix_settings, slack, work, vm, azure):
    """A restart planned while preflight passed, whose apply finds a guardrail failing, does not restart."""
    vm.break_("service-down")
    plan = _ask(slack, work, fix_settings, "restart")
    (vm.app_dir / "config.env").write_text("GEMINI_API_KEY=your_api_key_here\n")
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(fix_settings)
    text = _thread_text(slack)
    assert "not restarted" in text and "api_key" in text
    assert vm.service_state() == "inactive"


def test_restart_plan_refused_when_preflight_fails(fix_settings, slack, work, vm):
    """A restart is not even planned while a guardrail fails: the thread says which, no approval asked."""
    vm.break_("config-perms")
    slack.slash_command("restart", user=OPERATOR)
    work(fix_settings)
    text = _thread_text(slack)
    assert "no restart is allowed" in text and "Plan P-" not in text


def test_non_operator_cannot_request_a_fix(fix_settings, slack, redis):
    """A fix request from someone not in NEXY_OPERATORS is refused at once, saying who can."""
    text = slack.slash_command("fix config-perms", user=OTHER).json()["text"]
    assert "only operators may request fixes" in text and "<@U0ALICE>" in text
    assert redis.llen(f"rq:queue:{fix_settings.vm_queue}") == 0


def test_group_operator_resolved_by_worker(serve_bot, vm_settings, slack, work, vm):
    """An operator given as a user group is checked by a worker that resolves the group, then planned."""
    settings = vm_settings(nexy_operators="@oncall", nexy_approvers=APPROVER)
    serve_bot(settings)
    vm.break_("config-perms")
    assert "queued" in slack.slash_command("fix config-perms", user=OPERATOR).json()["text"]
    work(settings)
    assert _plan_message(slack)
    slack.slash_command("fix config-perms", user=OTHER)
    work(settings)
    assert any(m.ephemeral_to == OTHER and "only operators" in m.text for m in slack.messages("C0OPS"))


def test_unknown_fix_target_lists_what_is_allowed(fix_settings, slack):
    """A bad fix target says which targets exist."""
    text = slack.slash_command("fix config-perm", user=OPERATOR).json()["text"]
    assert "`config-perms`" in text and "`execstart`" in text and "Did you mean `config-perms`?" in text


def test_twenty_concurrent_approvals_and_retries_apply_once(fix_settings, slack, work, vm, azure):
    """20 approvals at once (reactions, buttons, retried events) from two approvers: exactly one apply."""
    slack.usergroups["leads"] = [OTHER]
    vm.break_("config-perms")
    plan = _ask(slack, work, fix_settings)
    plan_id = _plan_id(plan)
    barrier = threading.Barrier(20)
    statuses: list[int] = []

    def approve(n: int) -> None:
        barrier.wait()
        user = APPROVER if n % 2 else OTHER
        if n % 3 == 0:
            response = slack.block_action(user=user, channel="C0OPS", message_ts=plan.ts, action_id="plan_approve",
                                          value=plan_id)
        else:
            response = slack.reaction_added("white_check_mark", user=user, channel="C0OPS", ts=plan.ts,
                                            event_id=f"Ev0APPROVE{n % 4}", retry_num=(n // 4) or None)
        statuses.append(response.status_code)

    threads = [threading.Thread(target=approve, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # A retry that comes while the same event is still being handled is asked to come back (503).
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 7 + 4, statuses  # every click, one per event
    work(fix_settings)
    assert azure.run_count[KEY] == 2  # plan + exactly one apply
    assert sum("Fixed and verified" in m.text for m in bot_messages(slack)) == 1


def test_a_service_still_failing_after_the_restart_fails_the_verify(fix_settings, slack, work, vm, azure, redis):
    """An apply whose change is right but whose restarted service still fails (another fault) reports verify
    failed with the service's state, not fixed."""
    vm.break_("config-perms")
    plan = _ask(slack, work, fix_settings)
    vm.break_("deps-mismatch")  # the plan's state is unchanged; the service now fails for another reason
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(fix_settings)
    text = _thread_text(slack)
    assert "verify failed" in text and "Fixed and verified" not in text, text[-3000:]
    assert "but it is `failed`" in text
    assert redis.hget(f"nexy:plan:{_plan_id(plan)}", "status") == b"failed"
    assert azure.run_count[KEY] == 2 and not vm.service_active()


def test_removing_a_reaction_after_apply_changes_nothing(fix_settings, slack, work, vm, azure):
    """Taking the approval reaction back after apply started does not undo or stop anything."""
    vm.break_("config-perms")
    plan = _ask(slack, work, fix_settings)
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(fix_settings, [IO_QUEUE])
    slack.reaction_removed("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(fix_settings)
    assert "Fixed and verified" in _thread_text(slack) and vm.service_active()


def test_every_fix_is_reachable_by_its_command(registry):
    """Every declared fix is asked for by a command the parser accepts, and `fix` offers exactly the fix targets."""
    examples = {"version": "2.4.0.240"}
    for fix in registry.fixes.values():
        words = " ".join((fix.command, *(examples[a.name] for a in fix.args if not a.optional)))
        assert registry.accepts(words), words
    assert set(registry.commands["fix"].args[0].choices) == {f.name for f in registry.fixes.values()} - {"restart"}


def _plan_id(message) -> str:
    return message.text.split("Plan ", 1)[1].split(":", 1)[0]


def _incident_log(redis):
    from bot.incidents import IncidentStore

    return IncidentStore(redis).timeline("INC-1")


def test_slack_failure_while_deciding_does_not_lose_the_apply(fix_settings, slack, work, vm, azure):
    """If Slack refuses the plan-message update after an approval, the apply is already queued and runs."""
    vm.break_("config-perms")
    plan = _ask(slack, work, fix_settings)
    slack.ratelimit("chat.update", times=20, retry_after=0)
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(fix_settings)
    assert azure.run_count[KEY] == 2 and vm.service_active()


def test_failed_apply_says_the_vm_state_is_unknown(fix_settings, slack, work, vm, azure, redis):
    """An apply that cannot run (the VM stays busy past the bounded wait) is reported, and the plan is failed."""
    vm.break_("config-perms")
    plan = _ask(slack, work, fix_settings)
    azure.busy(RG, VM_NAME, 100)
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(fix_settings)
    text = _thread_text(slack)
    assert "did not finish" in text and "VM state is unknown" in text
    assert redis.hget(f"nexy:plan:{_plan_id(plan)}", "status") == b"failed"


def test_a_newer_plan_supersedes_the_pending_one(fix_settings, slack, work, vm, azure):
    """Asking again for the same fix supersedes the pending plan: approving the old one runs nothing."""
    vm.break_("config-perms")
    old = _ask(slack, work, fix_settings)
    slack.slash_command("fix config-perms", user=OPERATOR)
    work(fix_settings)
    assert "superseded" in slack.find(old.ts).text
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=old.ts)
    work(fix_settings)
    assert azure.run_count[KEY] == 2  # two plans, no apply
    assert not vm.service_active()


def test_queued_apply_shows_in_the_queue(fix_settings, slack, work, vm):
    """An approved plan waiting for the VM is listed by `/nexy queue` as its apply, with the plan id."""
    vm.break_("config-perms")
    plan = _ask(slack, work, fix_settings)
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    slack.slash_command("queue")
    work(fix_settings, [DECISIONS_QUEUE, IO_QUEUE])
    listing = next(m for m in bot_messages(slack) if "Run-command queue" in m.text)
    assert f"1. `apply config-perms {_plan_id(plan)}`" in listing.text and "<@U0BOB>" in listing.text
