"""Serialization is a guarantee: two workers on one VM queue never overlap run-commands, and the
thread says where a waiting job stands."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bot.contract import IO_QUEUE
from tests.helpers import RG, VM_NAME, settings_env

ROOT = Path(__file__).resolve().parents[2]


RUN_COMMANDS = 16
"""Enough for the two workers to contend for the VM all along (each takes a job as soon as it is free);
50 only repeated the same race. With the VM lease disabled, every run at 16 fails: the emulator gets
overlapping run-commands (and answers 409). Each is a different command (`version` with its own
argument) from its own person: identical waiting checks would be joined into one run."""


def test_two_workers_sixteen_commands_never_overlap(serve_bot, vm_settings, slack, azure, tmp_path):
    """16 queued run-commands served by two workers at once: the emulator sees at most one at a time."""
    settings = vm_settings()
    serve_bot(settings)
    azure.delay_s = 0.02
    for n in range(RUN_COMMANDS):
        assert slack.slash_command(f"version 2.4.0.{n}", user=f"U0USER{n:02d}").status_code == 200
    env = {**{k: v for k, v in __import__("os").environ.items() if not k.startswith(("SLACK_", "NEXY_", "AZURE_"))},
           **settings_env(settings), "PYTHONPATH": str(ROOT)}
    logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
    workers = [subprocess.Popen([sys.executable, "-m", "nexy.cli", "worker", "--queue", settings.vm_queue, "--burst"],
                                env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log.open("w"))
               for log in logs]
    for worker, log in zip(workers, logs):
        assert worker.wait(timeout=180) == 0, log.read_text()[-2000:]
    key = (RG.lower(), VM_NAME.lower())
    assert azure.run_count[key] == RUN_COMMANDS
    assert azure.max_concurrency[key] == 1
    assert azure.conflicts == []


def test_waiting_job_is_told_its_position(vm_bot_settings, slack, work):
    """Commands queued behind others get a notice in the thread with their position."""
    for words in ("status", "preflight", "deps"):  # three different checks: identical ones would be joined
        slack.slash_command(words)
    work(vm_bot_settings, [IO_QUEUE])
    notices = [m.text for m in slack.messages("C0OPS") if "waits for the VM" in m.text]
    assert len(notices) == 2
    assert "position 2" in notices[0] and "position 3" in notices[1]


def test_queue_lists_waiting_jobs(vm_bot_settings, slack, work):
    """`/nexy queue` lists what waits for the VM, in order, with who asked."""
    slack.slash_command("status", user="U0ALICE")
    slack.slash_command("preflight", user="U0BOB")
    slack.slash_command("queue")
    work(vm_bot_settings, [IO_QUEUE])
    listing = next(m for m in slack.messages("C0OPS") if "Run-command queue" in m.text)
    assert "nothing running" in listing.text
    assert "1. `status`" in listing.text and "2. `preflight`" in listing.text
    assert listing.text.index("U0ALICE") < listing.text.index("U0BOB")
    work(vm_bot_settings)
    slack.slash_command("queue")
    work(vm_bot_settings, [IO_QUEUE])
    assert "nothing waiting" in [m for m in slack.messages("C0OPS") if "Run-command queue" in m.text][-1].text
