"""Reporting under Slack faults: the apply's result survives a Slack outage and a dropped connection,
arrives exactly once, and the plan's state is the VM's outcome."""

from __future__ import annotations

import os
import threading
import time

import pytest
from redis import Redis

from bot.contract import DECISIONS_QUEUE, IO_QUEUE
from bot.plans import PlanStatus, PlanStore
from nexy.redis import connect
from jobs.worker import build_runtime, serve
from nexy.embedded_redis import EmbeddedRedis
from tests.helpers import APPROVER, KEY, OPERATOR


def _approved(slack, work, settings, vm) -> str:
    vm.break_("config-perms")
    slack.slash_command("fix config-perms", user=OPERATOR)
    work(settings)
    plan = next(m for m in slack.messages("C0OPS") if m.text.startswith(":clipboard: Plan"))
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(settings, [DECISIONS_QUEUE, IO_QUEUE])
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


OUTAGE_S = float(os.environ.get("NEXY_TEST_SLACK_OUTAGE_S", "5"))
"""How long Slack fails while the fix reports (the issue's "down for a minute":
NEXY_TEST_SLACK_OUTAGE_S=60 .venv/bin/pytest tests/reliability/test_reporting.py)."""


@pytest.mark.parametrize("mode", ["5xx", "429", "drop-after-store"])
def test_apply_result_survives_slack_faults(fix_settings, slack, work, vm, azure, redis, mode):
    """Slack failing (503, a 429 storm, or dropping the connection after storing) from the apply's
    start until after it reported: the plan is applied at once, and once Slack is back every message
    is in the thread exactly once, in order, the report marked late."""
    plan_id = _approved(slack, work, fix_settings, vm)
    azure.delay_s = 0.5
    started = time.monotonic()
    _fault_during_apply(slack, azure, OUTAGE_S + 60, mode)  # ended below, once the apply is done
    work(fix_settings, [fix_settings.vm_queue])
    if mode != "drop-after-store":
        assert not _reports(slack)
    assert PlanStore(redis).get(plan_id).status is PlanStatus.APPLIED
    assert vm.service_active()
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - started)))
    slack.fail_for(0, mode)  # Slack is back
    work(fix_settings, ["io"])  # a worker that starts delivers what is due
    deadline = time.monotonic() + 20
    while redis.zcard("nexy:outbox-due") and time.monotonic() < deadline:
        time.sleep(0.5)
        work(fix_settings, ["io"])
    assert redis.zcard("nexy:outbox-due") == 0
    assert len(_reports(slack)) == 1
    if mode != "drop-after-store":  # there the report was stored on time: not late, just unanswered
        assert "Reported late" in _reports(slack)[0].text
    assert PlanStore(redis).get(plan_id).status is PlanStatus.APPLIED
    assert azure.run_count[KEY] == 2
    texts = [m.text for m in slack.messages("C0OPS") if m.user != OPERATOR and not m.ephemeral_to]
    assert len(texts) == len(set(texts)), f"a message arrived twice: {texts}"
    approved = next(i for i, t in enumerate(texts) if "Approved" in t or "approved" in t)
    assert approved < next(i for i, t in enumerate(texts) if "Fixed and verified" in t)


def test_apply_result_survives_a_redis_blip_at_report_time(serve_bot, vm_settings, slack, vm, azure, tmp_path, registry):
    """Redis restarting while a verified apply records its result: the writes ride over the blip,
    the plan is applied (not failed), and the report is in the thread once."""
    server = EmbeddedRedis(tmp_path / "blip", persist=True).start()
    settings = vm_settings(redis_url=server.url, nexy_operators=OPERATOR, nexy_approvers=APPROVER)
    serve_bot(settings)
    redis = Redis.from_url(server.url)

    def work(queues: list[str]) -> None:
        serve(build_runtime(settings, connect(settings), registry), queues, burst=True)

    done = threading.Event()

    def blip() -> None:
        deadline = time.monotonic() + 30
        while azure.run_count.get(KEY, 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        server.stop()
        time.sleep(5.0)  # the run-command's result (after 1 s) arrives while Redis is down
        server.start()
        done.wait(60)  # the server dies with the thread that started it (PR_SET_PDEATHSIG)

    try:
        vm.break_("config-perms")
        slack.slash_command("fix config-perms", user=OPERATOR)
        work([IO_QUEUE, settings.vm_queue])
        plan = next(m for m in slack.messages("C0OPS") if m.text.startswith(":clipboard: Plan"))
        slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
        work([DECISIONS_QUEUE, IO_QUEUE])
        plan_id = plan.text.split("Plan ", 1)[1].split(":", 1)[0]
        azure.delay_s = 1.0
        switch = threading.Thread(target=blip, daemon=True)
        switch.start()
        work([settings.vm_queue])
        assert PlanStore(redis).get(plan_id).status is PlanStatus.APPLIED
        assert len(_reports(slack)) == 1
        assert not [m for m in slack.messages("C0OPS") if "did not finish" in m.text or ":x:" in m.text]
        assert azure.run_count[KEY] == 2
    finally:
        done.set()
        redis.close()
        server.stop()
