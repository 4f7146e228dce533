"""The metrics of a running `nexy web` and `nexy worker` (real processes on loopback, the sandbox's emulators,
the simulated VM), what the scrape reads from Redis, and the JSON log lines."""
from __future__ import annotations

import io
import json
import logging
import os
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from rq import Queue, Worker

from bot import metrics
from bot.contract import DECISIONS_QUEUE, IO_QUEUE, fixes_queue_name
from bot.incidents import IncidentStore
from bot.logs import JsonFormatter
from bot.plans import PlanStore
from bot.redaction import RedactingFilter
from nexy.embedded_redis import free_port
from nexy.local import wait_until_up
from nexy.processes import Children
from tests.helpers import APPROVER, KEY, OPERATOR, bot_messages, cli_env, settings_env

JUNK = "zq7junk <script>x</script> DROP-TABLE"
"""Words a person might type that must never become a label value."""


def _scrape(url: str) -> dict[str, dict[tuple, float]]:
    """Every sample of a /metrics page: {sample name: {sorted label pairs: value}}."""
    page = httpx.get(url, timeout=10)
    assert page.status_code == 200, page.text
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(page.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def _wait_registered(redis: Redis, queues: list[str], children: Children, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert not children.exited(), f"{children.exited()} exited during start-up"
        if set(queues) <= {name for worker in Worker.all(connection=redis) for name in worker.queue_names()}:
            return
        time.sleep(0.1)
    raise AssertionError(f"no worker on {queues} within {timeout:g} s")


def test_web_and_worker_scrapes_count_a_fix_and_no_label_carries_user_text(
    tmp_path, slack, redis, vm_settings, vm, azure
):
    """After a health, a junk command, a refused and an approved fix, web's /metrics (every process on the
    host) and the worker's port count each family exactly, and no label value is anything a person typed."""
    vm.break_("config-perms")
    dead = f"http://127.0.0.1:{free_port()}/health"  # the watch's every probe fails (and opens nothing)
    settings = vm_settings(nexy_operators=OPERATOR, nexy_approvers=APPROVER, nexy_health_urls=dead)
    web_port, worker_port = free_port(), free_port()
    env = cli_env(tmp_path, **{
        **settings_env(settings), "PORT": str(web_port), "NEXY_BIND_HOST": "127.0.0.1",
        "NEXY_METRICS_PORT": str(worker_port), "NEXY_WATCH_CHANNEL": "C0WATCH", "NEXY_WATCH_INTERVAL_S": "3",
        "NEXY_WATCH_FAILURES": "100",
    })
    children = Children()
    try:
        children.nexy("web", "web", "--child", env=env)
        children.nexy("worker", "worker", env=env)  # not a child: it serves its own metrics port
        wait_until_up(f"http://127.0.0.1:{web_port}/healthz", children)
        vm_queue = settings.vm_queue
        queues = [DECISIONS_QUEUE, IO_QUEUE, fixes_queue_name(vm_queue), vm_queue]
        _wait_registered(redis, queues, children)
        slack.bot_url = f"http://127.0.0.1:{web_port}/slack/events"

        assert "is queued" in slack.slash_command("health", user=OPERATOR).json()["text"]
        slack.wait_for(lambda m: m.user == slack.bot_user_id and "Health" in m.text + str(m.blocks), timeout=120)
        assert "is queued" not in slack.slash_command(JUNK, user=OPERATOR).json()["text"]
        assert "is queued" not in slack.slash_command(f"fix config-perms {JUNK}", user=OPERATOR).json()["text"]
        assert "is queued" not in slack.slash_command("fix config-perms", user="U0EVE").json()["text"]
        assert "is queued" in slack.slash_command("fix config-perms", user=OPERATOR).json()["text"]
        plan = slack.wait_for(lambda m: m.channel == "C0OPS" and "waits for approval" in m.text, timeout=180)
        plans = PlanStore(redis)
        deadline = time.monotonic() + 30  # the worker records the plan's message once Slack took it
        while plans.by_message("C0OPS", plan.ts) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
        slack.wait_for(lambda m: m.user == slack.bot_user_id and "Fixed and verified" in m.text + str(m.blocks),
                       timeout=180)
        acks = 6  # five slash commands and one reaction event reached /slack/events
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (redis.zcard("nexy:outbox-due") or Queue(IO_QUEUE, connection=redis).count):
            time.sleep(0.1)

        web = _scrape(f"http://127.0.0.1:{web_port}/metrics")
        worker = _scrape(f"http://127.0.0.1:{worker_port}/metrics")
        assert _value(web, "nexy_commands_received_total", command="health", outcome="queued") == 1
        assert _value(web, "nexy_commands_received_total", command="unknown", outcome="invalid") == 2
        assert _value(web, "nexy_commands_received_total", command="fix", outcome="refused") == 1
        assert _value(web, "nexy_commands_received_total", command="fix", outcome="queued") == 1
        assert sum(web["nexy_commands_received_total"].values()) == 5
        assert _value(web, "nexy_ack_seconds_count") == acks
        assert not worker.get("nexy_commands_received_total") and _value(worker, "nexy_ack_seconds_count") == 0
        for scrape in (web, worker):
            runs = {dict(labels)["script"]: value for labels, value in scrape["nexy_run_command_seconds_count"].items()}
            assert runs == {"config_perms_plan": 1, "config_perms_apply": 1} and azure.run_count[KEY] == 2, runs
            assert {dict(labels)["vm"] for labels in scrape["nexy_run_command_seconds_count"]} == {"Nexy"}
            assert _value(scrape, "nexy_approvals_total", outcome="approved") == 1
            assert _value(scrape, "nexy_approval_decision_seconds_count", outcome="approved") == 1
            probes = _value(scrape, "nexy_watch_probes_total", vm="Nexy")
            assert probes >= 1 and _value(scrape, "nexy_watch_probe_failures_total", vm="Nexy") == probes
            assert {dict(labels)["queue"] for labels in scrape["nexy_queue_depth"]} == set(queues)
            assert set(scrape["nexy_queue_depth"].values()) == {0}
            assert set(scrape["nexy_queue_oldest_waiting_seconds"].values()) == {0}
            assert _value(scrape, "nexy_outbox_backlog") == 0 and _value(scrape, "nexy_outbox_oldest_seconds") == 0
            assert _value(scrape, "nexy_incidents_open") == 1
            assert _value(scrape, "nexy_redis_up") == 1
        missing = [name for name in metrics.FAMILIES if name not in web and f"{name}_count" not in web]
        assert not missing, missing

        page = httpx.get(f"http://127.0.0.1:{web_port}/metrics", timeout=10).text
        allowed = {
            "command": {"health", "fix", "unknown"}, "outcome": {o.value for o in (*metrics.Outcome, *metrics.Decision)},
            "vm": {"Nexy"}, "queue": set(queues), "le": None, "script": None,
        }
        for samples in web.values():
            for labels in samples:
                for name, value in labels:
                    assert name in allowed, name
                    assert allowed[name] is None or value in allowed[name], (name, value)
        assert not any(word in page for word in ("zq7junk", "script>", "DROP"))
        assert {dict(labels)["script"] for labels in web["nexy_run_command_seconds_count"]} == set(runs)
    finally:
        ours = [pid for process in children.processes.values() for pid in _tree(process.pid)]
        children.stop(20)
    time.sleep(1)  # RQ's schedulers, children of the io and decisions workers, go with their parents
    assert [pid for pid in ours if _alive(pid)] == []


def _tree(pid: int) -> list[int]:
    """pid and every process under it (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo.extend(parents.get(found[-1], []))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_the_scrape_reads_queues_outbox_and_open_incidents_from_redis(settings, redis, tmp_path, monkeypatch):
    """Jobs waiting in a queue, undelivered outbox entries and open incidents are read from Redis at scrape
    time: their number and the age of the oldest."""
    from nexy import metrics as scrape_side

    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    queue = Queue(IO_QUEUE, connection=redis)
    queue.enqueue_call("jobs.tasks.probe", kwargs={"name": "health"})
    queue.enqueue_call("jobs.tasks.probe", kwargs={"name": "health"})
    first = Queue(IO_QUEUE, connection=redis).jobs[0]
    redis.hset(f"rq:job:{first.id}", "enqueued_at", "2020-01-01T00:00:00.000000Z")
    store = IncidentStore(redis)
    store.open_or_attach("C0OPS", OPERATOR, "health")
    store.open_or_attach("C0DEPLOYS", OPERATOR, "health")
    created = time.time() - 120
    for n in range(3):
        redis.hset("nexy:outbox:INC-1", f"e{n}", json.dumps({"id": f"e{n}", "created": created + n}))
        redis.rpush("nexy:outbox:INC-1:order", f"e{n}")
    redis.zadd("nexy:outbox-due", {"INC-1": time.time()})

    figures = {
        (family.name, tuple(sample.labels.items())): sample.value
        for family in scrape_side._RedisFigures(settings, redis).collect()
        for sample in family.samples
    }
    assert figures[("nexy_queue_depth", (("queue", IO_QUEUE),))] == 2
    assert figures[("nexy_queue_oldest_waiting_seconds", (("queue", IO_QUEUE),))] > 5 * 365 * 86400
    assert figures[("nexy_queue_depth", (("queue", DECISIONS_QUEUE),))] == 0
    assert figures[("nexy_outbox_backlog", ())] == 3
    assert 119 < figures[("nexy_outbox_oldest_seconds", ())] < 200
    assert figures[("nexy_incidents_open", ())] == 2


def test_json_log_lines_parse_carry_the_job_ids_and_are_redacted(settings, redis, slack, bot, work, caplog):
    """With NEXY_LOG_FORMAT=json, a line logged while a job runs (Slack failing: the outbox says it will
    try again) is one JSON object naming the job, its incident and VM, and a secret in it is redacted."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter("worker"))
    root = logging.getLogger()
    root.addHandler(handler)
    token = "xoxb-1234567890-abcdefghijklmnop"
    try:
        assert "is queued" in slack.slash_command("health", user=OPERATOR).json()["text"]
        slack.fail_for(30, "5xx")
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(logging.getLogger("jobs.outbox"), "level", logging.INFO)
            work(settings)
            logging.getLogger("jobs.outbox").warning("a line with a token %s", token)  # outside any job
    finally:
        root.removeHandler(handler)
        slack.fail_for(0)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    in_job = [line for line in lines if line.get("job")]
    assert in_job, lines
    line = in_job[0]
    assert line["incident"] == "INC-1" and line["vm"] == "Nexy" and line["job"].startswith("INC-1-health-")
    assert line["level"] in ("warning", "error") and line["process"] == "worker"
    outside = [line for line in lines if "a line with a token" in line["message"]]
    assert outside and "job" not in outside[0] and token not in stream.getvalue()
