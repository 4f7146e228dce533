"""Reporting under Slack faults: the apply's result survives a Slack outage and a dropped connection,
arrives exactly once, and the plan's state is the VM's outcome."""

from __future__ import annotations

import threading
import time

import pytest

from bot.plans import PlanStatus, PlanStore
from tests.conftest import RG, VM_NAME

KEY = (RG.lower(), VM_NAME.lower())
OPERATOR, APPROVER = "U0ALICE", "U0BOB"


@pytest.fixture
def fix_settings(serve_bot, vm_settings):
    settings = vm_settings(nexy_operators=OPERATOR, nexy_approvers=APPROVER)
    serve_bot(settings)
    return settings


def _approved(slack, work, settings, vm) -> str:
    vm.break_("config-perms")
    slack.slash_command("fix config-perms", user=OPERATOR)
    work(settings)
    plan = next(m for m in slack.messages("C0OPS") if m.text.startswith(":clipboard: Plan"))
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(settings, ["io"])
    return plan.text.split("Plan ", 1)[1].split(":", 1)[0]


def _fault_during_apply(slack, azure, seconds: float, mode: str) -> None:
    def switch() -> None:
        deadline = time.monotonic() + 30
        while azure.run_count.get(KEY, 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        slack.fail_for(seconds, mode)

    threading.Thread(target=switch, daemon=True).start()


def _reports(slack) -> list:
    return [m for m in slack.messages("C0OPS") if "Fixed and verified" in m.text]


@pytest.mark.parametrize("mode", ["5xx", "drop-after-store"])
def test_apply_result_survives_slack_faults(fix_settings, slack, work, vm, azure, redis, mode):
    """Slack failing (503, or dropping the connection after storing) while a verified apply reports:
    the plan is applied, and once Slack is back the report is in the thread exactly once."""
    plan_id = _approved(slack, work, fix_settings, vm)
    azure.delay_s = 0.5
    started = time.monotonic()
    _fault_during_apply(slack, azure, 6.0, mode)  # from the apply's start until after it reported
    work(fix_settings, [fix_settings.vm_queue])
    assert time.monotonic() - started < 6.0, "the apply reported after the fault window"
    if mode == "5xx":
        assert not _reports(slack)
    assert PlanStore(redis).get(plan_id).status is PlanStatus.APPLIED
    assert vm.service_active()
    time.sleep(max(0.0, 6.2 - (time.monotonic() - started)))  # Slack is back
    work(fix_settings, ["io"])  # a worker that starts delivers what is due
    deadline = time.monotonic() + 10
    while not _reports(slack) and time.monotonic() < deadline:
        time.sleep(1.1)
        work(fix_settings, ["io"])
    assert len(_reports(slack)) == 1
    assert PlanStore(redis).get(plan_id).status is PlanStatus.APPLIED
    assert azure.run_count[KEY] == 2
    assert redis.zcard("nexy:outbox-due") == 0
