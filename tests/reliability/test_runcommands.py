"""Run-commands under faults: Azure unreachable after it accepted a command, a command that runs long
or past its bound, and a worker killed during an apply (through a real worker process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bot.contract import DECISIONS_QUEUE
from bot.plans import PlanStatus, PlanStore
from tests.helpers import APPROVER, KEY, OPERATOR, settings_env

ROOT = Path(__file__).resolve().parents[2]


def _bot_text(slack) -> str:
    return "\n".join(f"{m.text}\n{m.blocks}" for m in slack.messages("C0OPS") if not m.ephemeral_to)


def _when(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


@pytest.mark.parametrize("mode", ["drop", "5xx"])
def test_azure_gone_after_accepting_is_not_nothing_was_run(vm_bot_settings, slack, work, azure, mode):
    """ARM dropping connections or answering 503 while an accepted run-command is polled is reported
    as accepted with an unknown outcome and how to look, never as "nothing was run"."""
    azure.delay_s = 1.0
    slack.slash_command("status")

    def outage() -> None:
        _when(lambda: azure.run_count.get(KEY, 0) == 1)
        azure.fail_for(30, mode)

    threading.Thread(target=outage, daemon=True).start()
    work(vm_bot_settings)
    text = _bot_text(slack)
    assert "Azure accepted the run-command" in text and "outcome is unknown" in text
    assert "nothing was run" not in text


def test_long_run_command_is_said_and_then_timed_out(serve_bot, vm_settings, slack, work, azure):
    """A run-command past NEXY_RUNCOMMAND_SLOW_S is said in the thread; past the bound it is reported timed out."""
    settings = vm_settings(nexy_runcommand_slow_s=0.2, nexy_runcommand_timeout_s=0.8)
    serve_bot(settings)
    azure.delay_s = 2.0
    slack.slash_command("status")
    work(settings)
    text = _bot_text(slack)
    assert "is still running after" in text and "the VM channel stays busy" in text
    assert "timed out" in text


@pytest.fixture
def apply_settings(serve_bot, vm_settings):
    settings = vm_settings(nexy_operators=OPERATOR, nexy_approvers=APPROVER, nexy_heartbeat_s=0.5)
    serve_bot(settings)
    return settings


def test_worker_killed_during_apply_reports_the_real_outcome(apply_settings, slack, work, vm, azure, redis, tmp_path):
    """SIGKILL of the worker mid-apply: the next worker reads Azure's result, the plan follows the VM
    (applied), the thread says it was reported late, and the apply ran once."""
    vm.break_("config-perms")
    slack.slash_command("fix config-perms", user=OPERATOR)
    work(apply_settings)
    plan_msg = next(m for m in slack.messages("C0OPS") if m.text.startswith(":clipboard: Plan"))
    plan_id = plan_msg.text.split("Plan ", 1)[1].split(":", 1)[0]
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan_msg.ts)
    work(apply_settings, [DECISIONS_QUEUE])  # the decision queues the apply on the VM's fixes queue
    azure.delay_s = 2.0
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "NEXY_", "AZURE_"))},
        **settings_env(apply_settings),
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "nexy.cli", "worker", "--queue", apply_settings.vm_queue],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    try:
        _when(lambda: redis.hlen("nexy:operations") == 1, timeout=30)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    assert azure.run_count[KEY] == 2
    assert PlanStore(redis).get(plan_id).status is PlanStatus.APPLYING
    time.sleep(0.6)  # its heartbeat runs out
    work(apply_settings)
    text = _bot_text(slack)
    assert "Reported late" in text
    assert len([m for m in slack.messages("C0OPS") if "Fixed and verified" in m.text]) == 1
    assert PlanStore(redis).get(plan_id).status is PlanStatus.APPLIED
    assert azure.run_count[KEY] == 2  # read back, never re-run
    assert redis.hlen("nexy:operations") == 0
