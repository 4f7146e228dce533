"""Queue fairness: how long an operator's fix waits behind a flood of identical checks, and an approval
behind a slow probe.

The bot runs as in production (`_running_bot.py`: `nexy web` and `nexy worker` as processes, the
sandbox's emulators and simulated VM in the 6.1 config-perms fault, run-commands of `--delay` s).

1. Fair queue: `/nexy diagnose` from a non-operator; once it runs on the VM, 29 more from the same
   person, then an operator's `/nexy fix config-perms`. Figure: run-commands that started on the VM
   before the fix's plan started (goal: at most one), and what the 30 requests became (queued,
   joined, refused).
2. Baseline, the same run: the same 30 diagnose and the fix enqueued the old way, directly on the VM's
   one FIFO queue (no admission, no coalescing, no fixes queue); the same figure.
3. Decisions: an io job that takes `--slow` s (a probe waiting out its timeout) holds the io worker;
   an approver approves a plan by reaction (it goes to the decisions queue) vs the same decision
   enqueued the old way on io behind that job: time from the approval to the "approved" post.
Prints JSON.

    .venv/bin/python benchmarks/queue_fairness.py [--requests 30] [--delay 0.2] [--slow 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _running_bot import Bot, running_bot  # noqa: E402
from rq import Queue  # noqa: E402
from rq.registry import StartedJobRegistry  # noqa: E402

from bot.contract import (  # noqa: E402
    DECISIONS_QUEUE,
    IO_JOB_TIMEOUT_S,
    IO_QUEUE,
    Task,
    WorkItem,
    fixes_queue_name,
    vm_job_timeout,
    vm_running_key,
)
from bot.incidents import EventKind, IncidentStore  # noqa: E402

OPERATOR, APPROVER, DEV = "U0OPS", "U0APP", "U0DEV"
SLOW_TASK = "benchmarks.queue_fairness.slow_io_job"


def slow_io_job(runtime: object, seconds: float) -> str:
    """An io job that holds the io worker (a probe waiting out its timeout); run by the bot's io worker."""
    time.sleep(seconds)
    return "slow"


def _until(predicate, timeout: float = 120.0, poll: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark waited too long")
        time.sleep(poll)


def _idle(bot: Bot) -> bool:
    redis, settings = bot.redis, bot.settings
    names = [DECISIONS_QUEUE, IO_QUEUE, fixes_queue_name(settings.vm_queue), settings.vm_queue]
    return not redis.exists(vm_running_key(settings.azure_resource_group, settings.azure_vm_name)) and all(
        Queue(n, connection=redis).count == 0 and StartedJobRegistry(n, connection=redis).count == 0 for n in names
    )


def _running(bot: Bot) -> bool:
    return bool(bot.redis.exists(vm_running_key(bot.settings.azure_resource_group, bot.settings.azure_vm_name)))


def _plan_started(bot: Bot, incident: str) -> float:
    return next(
        e.at
        for e in IncidentStore(bot.redis).timeline(incident)
        if e.kind is EventKind.JOB_STARTED and e.get("command") == "fix config-perms"
    )


def _runs_before(bot: Bot, since: float, until: float) -> int:
    return sum(1 for run in bot.stack.azure.history if since <= run["start"] < until)


def fair(bot: Bot, requests: int) -> dict:
    """The flood through signed slash commands, served by the fair queue."""
    since = time.time()
    acks = [bot.slack.slash_command("diagnose", user=DEV).json()["text"]]
    _until(lambda: _running(bot))
    for _ in range(requests - 1):
        acks.append(bot.slack.slash_command("diagnose", user=DEV).json()["text"])
    asked = time.monotonic()
    bot.slack.slash_command("fix config-perms", user=OPERATOR)
    _until(lambda: any(m.text.startswith(":clipboard: Plan") for m in bot.slack.messages("C0OPS")))
    to_plan = time.monotonic() - asked
    _until(lambda: _idle(bot))
    incident = IncidentStore(bot.redis).current("C0OPS")
    assert incident is not None
    started = _plan_started(bot, incident.id)
    return {
        "requests": requests,
        "queued": sum("is queued" in a for a in acks),
        "joined": sum("joined the identical request" in a for a in acks),
        "refused": sum("was not queued" in a for a in acks),
        "run_commands_before_the_fix_plan": _runs_before(bot, since, started),
        "run_commands_in_all": _runs_before(bot, since, time.time()),
        "seconds_from_fix_request_to_plan": round(to_plan, 2),
    }


def baseline(bot: Bot, requests: int) -> dict:
    """The same jobs enqueued the old way: one FIFO queue, no admission, no coalescing."""
    store, settings = IncidentStore(bot.redis), bot.settings
    incident = store.open_new("C0BASE", DEV, "baseline: the old FIFO queue")
    queue = Queue(settings.vm_queue, connection=bot.redis)
    since = time.time()
    items = [
        WorkItem.new("diagnose", (), user=DEV, channel="C0BASE", incident=incident.id, source="slash")
        for _ in range(requests)
    ]
    items.append(
        WorkItem.new("fix", ("config-perms",), user=OPERATOR, channel="C0BASE", incident=incident.id, source="slash")
    )
    asked = 0.0
    for n, item in enumerate(items):
        if n == len(items) - 1:
            asked = time.monotonic()
        queue.enqueue_call(
            Task.RUN_REQUEST,
            args=(item.payload(),),
            job_id=item.id,
            timeout=vm_job_timeout(settings.nexy_conflict_max_wait_s),
            meta={"vm": settings.vm_name},
        )
        if n == 0:
            _until(lambda: _running(bot))
    _until(lambda: any(m.text.startswith(":clipboard: Plan") for m in bot.slack.messages("C0BASE")), timeout=300)
    to_plan = time.monotonic() - asked
    _until(lambda: _idle(bot), timeout=300)
    return {
        "requests": requests,
        "run_commands_before_the_fix_plan": _runs_before(bot, since, _plan_started(bot, incident.id)),
        "run_commands_in_all": _runs_before(bot, since, time.time()),
        "seconds_from_fix_request_to_plan": round(to_plan, 2),
    }


def _approvals(bot: Bot) -> int:
    return sum("approved by" in m.text for m in bot.slack.messages("C0OPS") if m.thread_ts)


def _approved_after(bot: Bot, plan_ts: str, approve) -> float:
    """Hold the io worker with the slow job, then approve; seconds until the bot posts "approved"."""
    io = Queue(IO_QUEUE, connection=bot.redis)
    io.enqueue_call(SLOW_TASK, args=(_SLOW_S,), timeout=IO_JOB_TIMEOUT_S)
    _until(lambda: StartedJobRegistry(IO_QUEUE, connection=bot.redis).count == 1 and io.count == 0)
    seen = _approvals(bot)
    started = time.monotonic()
    approve(plan_ts)
    _until(lambda: _approvals(bot) > seen, timeout=60)
    waited = time.monotonic() - started
    _until(lambda: _idle(bot))
    return waited


_SLOW_S = 3.0


def _plan(bot: Bot) -> str:
    """Ask for the fix in C0OPS; the ts of its plan message."""
    before = {m.ts for m in bot.slack.messages("C0OPS")}
    bot.slack.slash_command("fix config-perms", user=OPERATOR)
    _until(
        lambda: any(m.text.startswith(":clipboard: Plan") and m.ts not in before for m in bot.slack.messages("C0OPS"))
    )
    _until(lambda: _idle(bot))
    return next(
        m.ts for m in bot.slack.messages("C0OPS") if m.text.startswith(":clipboard: Plan") and m.ts not in before
    )


def decisions(bot: Bot) -> dict:
    bot.stack.apply("config-perms")
    by_reaction = _approved_after(
        bot, _plan(bot), lambda ts: bot.slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=ts)
    )

    def old_way(ts: str) -> None:
        Queue(IO_QUEUE, connection=bot.redis).enqueue_call(
            Task.DECIDE,
            kwargs={
                "user": APPROVER,
                "approve": True,
                "source": "reaction",
                "channel": "C0OPS",
                "ts": ts,
                "at": time.time(),
            },
            timeout=IO_JOB_TIMEOUT_S,
        )

    bot.stack.apply("config-perms")
    on_io = _approved_after(bot, _plan(bot), old_way)
    return {
        "slow_io_job_s": _SLOW_S,
        "approval_to_approved_post_s": round(by_reaction, 3),
        "baseline_decision_on_io_s": round(on_io, 3),
        "ratio": round(by_reaction / on_io, 3),
    }


def main() -> int:
    global _SLOW_S
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds each run-command takes at the emulator")
    parser.add_argument("--slow", type=float, default=3.0, help="seconds the slow io job holds the io worker")
    args = parser.parse_args()
    _SLOW_S = args.slow
    env = {"NEXY_OPERATORS": OPERATOR, "NEXY_APPROVERS": APPROVER, "NEXY_AZURE_POLL_S": "0.02"}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, running_bot(Path(tmp), run_command_delay_s=args.delay, env=env) as bot:
        bot.stack.apply("config-perms")
        fair_figures = fair(bot, args.requests)
        base_figures = baseline(bot, args.requests)
        decision_figures = decisions(bot)
    before, old = fair_figures["run_commands_before_the_fix_plan"], base_figures["run_commands_before_the_fix_plan"]
    print(
        json.dumps(
            {
                "benchmark": "queue_fairness",
                "run_command_delay_s": args.delay,
                "fair_queue": fair_figures,
                "baseline_one_fifo_queue": base_figures,
                "run_commands_before_the_fix_plan_ratio": round(before / old, 3) if old else None,
                "decisions_while_io_is_busy": decision_figures,
                "seconds": round(time.monotonic() - started, 1),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
