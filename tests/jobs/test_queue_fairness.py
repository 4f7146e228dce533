"""The fair VM queue: identical waiting checks are joined into one run-command, a person has a limit
on waiting checks, plans and applies go ahead of waiting checks, decisions never wait behind probes,
and `/nexy queue` shows the order; through signed requests, real workers, Redis and the emulators."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rq import Queue
from rq.job import JobStatus
from rq.registry import ScheduledJobRegistry

from bot.contract import DECISIONS_QUEUE, IO_QUEUE, WorkItem, fixes_queue_name, vm_running_key
from bot.dispatch import Dispatcher
from bot.incidents import EventKind, IncidentStore
from bot.item import Route
from bot.plans import PlanStatus, PlanStore
from tests.helpers import KEY, RG, VM_NAME, bot_messages, settings_env

ROOT = Path(__file__).resolve().parents[2]
OPERATOR, APPROVER, DEV, EVE = "U0OPS", "U0BOB", "U0DEV", "U0EVE"


@pytest.fixture
def fair_settings(serve_bot, vm_settings):
    settings = vm_settings(nexy_operators=OPERATOR, nexy_approvers=APPROVER)
    serve_bot(settings)
    return settings


def _when(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


def _ack(response) -> str:
    assert response.status_code == 200
    return response.json().get("text", "")


def _running(redis) -> bool:
    return bool(redis.exists(vm_running_key(RG, VM_NAME)))


def _events(redis, incident: str, kind: EventKind):
    return [e for e in IncidentStore(redis).timeline(incident) if e.kind is kind]


def _worker_env(settings) -> dict[str, str]:
    import os

    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "NEXY_", "AZURE_", "REDIS_"))}
    return {**keep, **settings_env(settings), "PYTHONPATH": str(ROOT)}


def test_thirty_identical_diagnose_then_a_fix_plan_after_at_most_one_run_command(fair_settings, slack, work, vm,
                                                                                  azure, redis):
    """30 `/nexy diagnose` from one non-operator while one runs, then an operator's `fix config-perms`: the
    fix's plan starts after at most one run-command; the waiting ones share one run, and every asker
    (another person's in another channel too) is answered in their own incident thread."""
    vm.break_("config-perms")
    azure.delay_s = 3.0  # the first diagnose holds the VM while the others arrive
    acks: list[str] = [_ack(slack.slash_command("diagnose", user=DEV))]

    def arrive() -> None:
        _when(lambda: _running(redis))
        for _ in range(29):
            acks.append(_ack(slack.slash_command("diagnose", user=DEV)))
        acks.append(_ack(slack.slash_command("diagnose", user=EVE, channel="C0DEV")))
        acks.append(_ack(slack.slash_command("fix config-perms", user=OPERATOR)))

    requests = threading.Thread(target=arrive)
    requests.start()
    work(fair_settings)
    requests.join()
    work(fair_settings)

    joined = [a for a in acks if "joined the identical request" in a]
    refused = [a for a in acks if "was not queued" in a]
    assert len(joined) == 3 and len(refused) == 26  # DEV: 1 queued, 2 joined (3 waiting at most); EVE's joined
    assert "`/nexy queue`" in refused[0] and "at most 3 a person" in refused[0]
    plan_started = next(e.at for e in _events(redis, "INC-1", EventKind.JOB_STARTED)
                        if e.details["command"] == "fix config-perms")
    before_plan = [run for run in azure.history if run["start"] < plan_started]
    assert len(before_plan) <= 1
    assert azure.run_count[KEY] == 2  # the running diagnose, then ONE for all the waiting ones (the plan reused it)
    reports = (":stethoscope:", ":large_green_circle:")
    dev_reports = [m for m in bot_messages(slack) if m.text.startswith(reports)]
    eve_reports = [m for m in bot_messages(slack, "C0DEV") if m.text.startswith(reports)]
    assert len(dev_reports) == 2 and len(eve_reports) == 1  # one answer per run in DEV's thread, one in EVE's
    eve_incident = IncidentStore(redis).current("C0DEV").id
    kinds = [e.kind for e in IncidentStore(redis).timeline(eve_incident)]
    for kind in (EventKind.COMMAND, EventKind.JOB_QUEUED, EventKind.JOB_STARTED, EventKind.RUN_COMMAND,
                 EventKind.CHECK, EventKind.JOB_FINISHED):
        assert kind in kinds, kinds
    assert _events(redis, eve_incident, EventKind.JOB_QUEUED)[0].details.get("joined")


def test_a_person_past_the_limit_is_refused_naming_what_waits(fair_settings, slack, redis):
    """A person with NEXY_MAX_WAITING_PER_USER (3) checks waiting for the VM (a joined one counts) is refused,
    ephemerally, with what of theirs waits and `/nexy queue`; another person still gets queued."""
    assert "queued" in _ack(slack.slash_command("status", user=DEV))
    assert "joined" in _ack(slack.slash_command("status", user=DEV))
    assert "queued" in _ack(slack.slash_command("preflight", user=DEV))
    refusal = _ack(slack.slash_command("deps", user=DEV))
    assert refusal.startswith(":no_entry: `deps` was not queued")
    assert refusal.count("`status`") == 2 and "`preflight`" in refusal and "INC-1" in refusal
    assert "at most 3 a person" in refusal and "`/nexy queue`" in refusal
    assert Queue(fair_settings.vm_queue, connection=redis).count == 2  # status and preflight: no deps
    assert "queued" in _ack(slack.slash_command("deps", user=EVE))
    refused = _events(redis, "INC-1", EventKind.REFUSED)
    assert len(refused) == 1 and refused[0].details["command"] == "deps"


def test_plans_and_applies_go_ahead_of_waiting_checks(fair_settings, slack, work, vm, azure, redis):
    """A plan asked after waiting checks runs before them, and so does an approved plan's apply: the
    VM's one worker takes its fixes queue first, FIFO among fixes."""
    vm.break_("config-perms")
    slack.slash_command("status", user=DEV)
    slack.slash_command("preflight", user=EVE)
    slack.slash_command("fix config-perms", user=OPERATOR)
    assert Queue(fixes_queue_name(fair_settings.vm_queue), connection=redis).count == 1
    work(fair_settings)
    plan = next(m for m in bot_messages(slack) if m.text.startswith(":clipboard: Plan"))
    slack.slash_command("deps", user=DEV)
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(fair_settings)
    scripts = [e.details["script"] for e in _events(redis, "INC-1", EventKind.RUN_COMMAND)]
    assert scripts == ["config_perms_plan", "status", "preflight", "config_perms_apply", "deps"]
    positions = {e.details["command"]: e.details["position"] for e in _events(redis, "INC-1", EventKind.JOB_QUEUED)}
    assert positions == {"status": 1, "preflight": 2, "fix config-perms": 1, "deps": 1}  # a fix waits for fixes only


class _SlowHealth(BaseHTTPRequestHandler):
    delay_s = 6.0

    def do_GET(self) -> None:  # noqa: N802
        time.sleep(self.delay_s)
        body = json.dumps({"status": "ok", "version": "2.4.0", "build": "240"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_an_approval_is_decided_while_the_io_worker_is_busy_with_a_slow_probe(serve_bot, vm_settings, slack, work,
                                                                              vm, redis, tmp_path):
    """A plan approved while the io worker is held by a slow health probe is decided at once by the
    decisions worker (the apply queued for the VM), not after the probe."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowHealth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    slow = f"http://127.0.0.1:{server.server_address[1]}/health"
    settings = vm_settings(nexy_operators=OPERATOR, nexy_approvers=APPROVER, nexy_health_urls=slow,
                           nexy_health_timeout_s=10.0)
    serve_bot(settings)
    try:
        vm.break_("config-perms")
        slack.slash_command("fix config-perms", user=OPERATOR)
        work(settings, [settings.vm_queue])
        work(settings, [IO_QUEUE])  # the plan's status messages and the rest: io is empty now
        plan = next(m for m in bot_messages(slack) if m.text.startswith(":clipboard: Plan"))
        plan_id = plan.text.split("Plan ", 1)[1].split(":", 1)[0]
        slack.slash_command("health", user=DEV)
        log = tmp_path / "io.log"
        io = subprocess.Popen([sys.executable, "-m", "nexy.cli", "worker", "--queue", IO_QUEUE, "--burst"],
                              env=_worker_env(settings), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log.open("w"))
        try:
            io_queue = Queue(IO_QUEUE, connection=redis)
            _when(lambda: io_queue.started_job_registry.count == 1 and io_queue.count == 0)
            busy_since = time.monotonic()
            slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
            work(settings, [DECISIONS_QUEUE])
            decided_in = time.monotonic() - busy_since
            assert PlanStore(redis).get(plan_id).status is PlanStatus.APPROVED
            assert io_queue.started_job_registry.count == 1, "the probe should still be running"
            assert decided_in < _SlowHealth.delay_s
            assert Queue(fixes_queue_name(settings.vm_queue), connection=redis).count == 1  # the apply
            assert any("approved by <@U0BOB>" in m.text for m in bot_messages(slack))
        finally:
            assert io.wait(timeout=30) == 0, log.read_text()[-2000:]
    finally:
        server.shutdown()
        server.server_close()


def test_a_request_after_the_run_started_gets_its_own_run(fair_settings, slack, work, azure, redis):
    """An identical check asked once the waiting one has started is not joined to it: it gets a job and a
    run-command of its own (the run closes to riders before its run-command); a third one, asked while
    that second one still waits, joins the second."""
    azure.delay_s = 2.0  # the first status holds the VM while the others arrive
    acks = [_ack(slack.slash_command("status", user=DEV))]

    def later() -> None:
        _when(lambda: _running(redis))
        acks.append(_ack(slack.slash_command("status", user=EVE)))
        acks.append(_ack(slack.slash_command("status", user="U0FOO", channel="C0DEV")))

    thread = threading.Thread(target=later)
    thread.start()
    work(fair_settings)
    thread.join()
    work(fair_settings)
    assert "joined" not in acks[1] and "queued" in acks[1]
    assert "joined the identical request" in acks[2]
    assert azure.run_count[KEY] == 2
    reports = [e for e in _events(redis, "INC-1", EventKind.CHECK) if e.details.get("report") == "status"]
    assert {e.who for e in reports} == {DEV, EVE}
    elsewhere = IncidentStore(redis).current("C0DEV").id
    assert [e.who for e in _events(redis, elsewhere, EventKind.CHECK)] == ["U0FOO"]


def test_joining_never_races_the_worker_taking_the_job(fair_settings, redis):
    """Many times over, an identical check admitted while the worker takes the waiting job either rides
    on it (and the worker's take returns it) or gets a job of its own: never lost in between."""
    dispatcher = Dispatcher(fair_settings, redis)
    admission = dispatcher.admission(fair_settings)
    queue = Queue(fair_settings.vm_queue, connection=redis)
    for n in range(150):
        first = WorkItem.new("status", (), user=f"U0A{n}", channel="C0OPS", incident="", source="slash")
        dispatcher.submit(first, Route.VM, fix=False)
        second = WorkItem.new("status", (), user=f"U0B{n}", channel="C0OPS", incident="", source="slash")
        taken: list = []
        barrier = threading.Barrier(2)

        def take() -> None:
            barrier.wait()
            job, _ = Queue.dequeue_any([queue], None, connection=redis)
            job.set_status(JobStatus.STARTED)
            taken.extend(admission.close(WorkItem.from_payload(job.args[0])))

        thread = threading.Thread(target=take)
        thread.start()
        barrier.wait()
        submitted = dispatcher.submit(second, Route.VM, fix=False)
        thread.join()
        if submitted.joined:
            assert [r.id for r in taken] == [second.id], n
        else:
            assert taken == [] and submitted.job == second.id
            job, _ = Queue.dequeue_any([queue], None, connection=redis)
            assert job.id == second.id
            admission.close(second)
        assert queue.count == 0


def test_queue_shows_what_runs_then_fixes_then_checks(fair_settings, slack, work, azure, redis, tmp_path):
    """`/nexy queue` shows what runs now, then what waits in the order it will run (the fix first), each
    with its command, incident, who asked (and how many joined a shared run) and its age."""
    azure.delay_s = 5.0  # the first status holds the VM (a worker process) while the others queue
    slack.slash_command("status", user=DEV)
    log = tmp_path / "vm.log"
    vm_worker = subprocess.Popen([sys.executable, "-m", "nexy.cli", "worker", "--queue", fair_settings.vm_queue,
                                  "--burst"], env=_worker_env(fair_settings), cwd=tmp_path,
                                 stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        _when(lambda: _running(redis), timeout=30)
        slack.slash_command("status", user=EVE)
        slack.slash_command("status", user="U0FOO")  # joins EVE's
        slack.slash_command("preflight", user=EVE)
        slack.slash_command("fix config-perms", user=OPERATOR)
        slack.slash_command("queue", user=DEV)
        work(fair_settings, [IO_QUEUE])
        assert _running(redis)  # still the first status
        azure.delay_s = 0.0
    finally:
        assert vm_worker.wait(timeout=60) == 0, log.read_text()[-2000:]
    listing = [m.text for m in bot_messages(slack) if "Run-command queue" in m.text]
    assert len(listing) == 1, listing
    lines = listing[0].splitlines()
    assert lines[1].startswith(":arrow_forward: running: `status` (INC-1, <@U0DEV>) for ")
    assert lines[2].startswith("1. `fix config-perms` (INC-1, <@U0OPS>), waiting ") and "fix: goes first" in lines[2]
    assert lines[3].startswith("2. `status` (INC-1, <@U0EVE>; +1 joined), waiting ")
    assert lines[4].startswith("3. `preflight` (INC-1, <@U0EVE>), waiting ")
    assert "In the order they will run" in lines[5]


def test_a_plan_expires_through_the_decisions_worker_alone(serve_bot, vm_settings, slack, work, vm, redis):
    """A plan's expiry is scheduled on the decisions queue: the decisions worker alone (its scheduler)
    says in the thread that the plan expired, whatever the io worker is doing."""
    settings = vm_settings(nexy_operators=OPERATOR, nexy_approvers=APPROVER, nexy_approval_ttl_s=1)
    serve_bot(settings)
    vm.break_("config-perms")
    slack.slash_command("fix config-perms", user=OPERATOR)
    work(settings, [IO_QUEUE, settings.vm_queue])
    assert ScheduledJobRegistry(DECISIONS_QUEUE, connection=redis).count == 2  # the reminder, the expiry
    assert ScheduledJobRegistry(IO_QUEUE, connection=redis).count == 0
    deadline = time.monotonic() + 10
    while not any("expired" in m.text and "before anyone approved" in m.text for m in bot_messages(slack)):
        assert time.monotonic() < deadline, "no expiry notice 10 s after a 1 s approval window"
        time.sleep(0.1)
        work(settings, [DECISIONS_QUEUE])
