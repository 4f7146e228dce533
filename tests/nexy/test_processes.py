"""Processes as a person runs them: Ctrl-C reaches only `nexy run` (each child has its own session),
which stops in order, finishing a running run-command unless Ctrl-C comes again; `nexy web` and
`nexy worker` without REDIS_URL share one embedded Redis that the last one stops; a failed start
leaves nothing behind."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from redis import Redis

from bot.contract import vm_running_key
from nexy.embedded_redis import free_port
from tests.helpers import cli_env
from tests.leftovers import alive_under

ROOT = Path(__file__).resolve().parents[2]


def _default_sigint() -> None:
    """In the child: Ctrl-C acts, even when the tests were started where SIGINT is ignored (a
    background job of a shell)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class _Run:
    """`nexy run` (the sandbox) in its own process group, as a terminal runs it; output to files."""

    def __init__(self, tmp_path: Path, *args: str, **env: str):
        self.out, self.err = tmp_path / "stdout", tmp_path / "stderr"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen([sys.executable, "-m", "nexy.cli", "run", *args], stdin=subprocess.PIPE,
                                            stdout=out, stderr=err, text=True, cwd=tmp_path, env=cli_env(tmp_path, **env),
                                            start_new_session=True, preexec_fn=_default_sigint)
        self.redis = Redis.from_url(self.wait_for(r"nexy run: ready: .*Redis: (redis://\S+);").group(1))

    def wait_for(self, pattern: str, timeout: float = 60.0, stream: str = "err") -> re.Match:
        deadline = time.monotonic() + timeout
        path = self.err if stream == "err" else self.out
        while time.monotonic() < deadline:
            found = re.search(pattern, path.read_text())
            if found:
                return found
            assert self.process.poll() is None, self.err.read_text()
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.err.read_text()}")

    def type(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def wait_running(self, timeout: float = 30.0) -> None:
        """Until a VM job holds the VM's lease."""
        key = vm_running_key("NetworkWatcherRG", "Nexy")
        deadline = time.monotonic() + timeout
        while not self.redis.exists(key):
            assert time.monotonic() < deadline, "no run-command started"
            time.sleep(0.02)

    def wait_accepted(self, timeout: float = 30.0) -> None:
        """Until Azure accepted the run-command (its operation is recorded): it runs on the VM."""
        deadline = time.monotonic() + timeout
        while not self.redis.hlen("nexy:operations"):
            assert time.monotonic() < deadline, "no run-command was accepted"
            time.sleep(0.02)

    def ctrl_c(self) -> None:
        """What a terminal does on Ctrl-C: SIGINT to the foreground process group."""
        os.killpg(self.process.pid, signal.SIGINT)

    def finish(self) -> tuple[int, str, str]:
        code = self.process.wait(90)
        return code, self.out.read_text(), self.err.read_text()


def test_ctrl_c_during_a_run_command_lets_it_finish_then_stops_in_order(tmp_path):
    """Ctrl-C while `status` runs on the VM: it finishes and is posted; one line per step, no traceback,
    nothing left running. The run-command takes 8 s (2 s by default): on a loaded machine, stopping the
    web side first could otherwise outlast it, and then there is nothing to wait for."""
    run = _Run(tmp_path, NEXY_SANDBOX_RUN_COMMAND_S="8")
    run.type("/nexy status")
    run.wait_accepted()
    run.ctrl_c()
    code, out, err = run.finish()
    assert code == 130
    assert "Traceback" not in err and "ConnectionError" not in err
    assert "Status (runbook 5)" in out  # the command finished and its report was posted
    steps = [line for line in err.splitlines() if line.startswith("nexy run: ") and "ready" not in line]
    assert steps[0] == "nexy run: web stopped (no new requests)"
    assert re.fullmatch(r"nexy run: waiting for the running run-command `status` \(INC-1, for \d+ s\) to finish; "
                        r"Ctrl-C again to abandon it", steps[1])
    assert steps[2:] == ["nexy run: workers stopped", "nexy run: sandbox stopped (emulators and its redis-server)"]
    assert alive_under(tmp_path) == []


def test_a_second_ctrl_c_abandons_the_run_command_and_the_thread_says_so(tmp_path):
    """Ctrl-C twice while a run-command waits out a 409: it is abandoned, the thread says the VM state is
    unknown, and still no traceback and nothing left."""
    run = _Run(tmp_path, "--scenario", "run-command-busy")
    run.type("/nexy status")
    run.wait_running()
    run.ctrl_c()
    run.wait_for("waiting for the running run-command `status`")
    run.ctrl_c()
    code, out, err = run.finish()
    assert code == 130
    assert "abandoning it" in err and "Traceback" not in err and "cold shut down" not in err
    assert "`status` did not finish: the worker was stopped while it ran (a second Ctrl-C" in out
    assert "treat the VM state as unknown" in out
    assert alive_under(tmp_path) == []


class _Process:
    """A nexy process started as a person would (its own session), its stderr read as it comes."""

    def __init__(self, tmp_path: Path, *words: str, **env: str):
        self.process = subprocess.Popen([sys.executable, "-m", "nexy.cli", *words], stdin=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True, cwd=tmp_path, start_new_session=True,
                                        env=cli_env(tmp_path, **env), preexec_fn=_default_sigint)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.process.stderr), daemon=True)
        self.reader.start()

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while not (found := re.search(pattern, self.text)):
            assert time.monotonic() < deadline and self.process.poll() is None, f"no {pattern!r}:\n{self.text}"
            time.sleep(0.05)
        return found

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        os.killpg(self.process.pid, sig)
        code = self.process.wait(timeout)
        self.reader.join(10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def _slack_env(slack, **extra: str) -> dict[str, str]:
    return {"SLACK_BOT_TOKEN": slack.bot_token, "SLACK_SIGNING_SECRET": slack.signing_secret,
            "SLACK_API_URL": slack.api_url, "NEXY_BIND_HOST": "127.0.0.1", "NEXY_CHANNELS": "*", **extra}


def test_web_and_worker_share_one_embedded_redis_and_the_last_stops_it(tmp_path, slack, nexy_server):
    """`nexy web` and `nexy worker` without REDIS_URL use the same embedded server (append-only, so no
    durability warning); stopping the web leaves it up for the worker, stopping the worker stops it."""
    port = free_port()
    web = _Process(tmp_path, "web", **_slack_env(slack, PORT=str(port)))
    worker = _Process(tmp_path, "worker", **_slack_env(slack, NEXY_HEALTH_URLS=",".join(nexy_server.urls)))
    try:
        web_redis = web.wait_for(r"nexy web: ready on http://127.0.0.1:\d+/slack/events; Redis: (.*?);").group(1)
        worker_redis = worker.wait_for(r"nexy worker: ready: 1 worker on vm:NetworkWatcherRG:Nexy \(fixes first\), 1 on io, 1 on decisions; "
                                       r"Redis: (.*?);").group(1)
        assert web_redis == worker_redis and "embedded redis-server under" in web_redis
        servers = [p for p in alive_under(tmp_path) if "redis-server 127.0.0.1:" in p]
        assert len(servers) == 1
        slack.bot_url = f"http://127.0.0.1:{port}/slack/events"
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json() == {"ok": True, "redis": "up"}
        assert "queued" in slack.slash_command("health").json()["text"]
        assert web.stop() == 0
        assert "redis-server stopped" not in web.text
        assert [p for p in alive_under(tmp_path) if "redis-server 127.0.0.1:" in p] == servers
        slack.wait_for(lambda m: "2.4.0 build 240" in m.text + str(m.blocks), timeout=30)  # the worker still works
        assert worker.stop() == 0
        assert "nexy worker: workers stopped" in worker.text and "nexy worker: redis-server stopped" in worker.text
        assert "warning" not in worker.text + web.text and "Traceback" not in worker.text + web.text
    finally:
        web.kill()
        worker.kill()
    assert alive_under(tmp_path) == []


def test_failed_web_start_leaves_no_redis_server(tmp_path, slack):
    """`nexy web` whose token Slack refuses exits 2 in one line and stops the embedded Redis it started."""
    web = _Process(tmp_path, "web", **_slack_env(slack, SLACK_BOT_TOKEN="xoxb-refused"))
    assert web.process.wait(30) == 2
    web.reader.join(10)
    assert web.text.strip() == "nexy: SLACK_BOT_TOKEN: Slack refused it (invalid_auth)"
    assert (tmp_path / "data" / "redis").exists()  # it did start one: Redis is checked before Slack
    assert alive_under(tmp_path) == []


def test_nexy_run_with_credentials_runs_web_and_workers_on_the_embedded_redis(tmp_path, slack, nexy_server):
    """`nexy run` against a (here emulated) workspace: web and workers as children, one ready line, Slack's
    requests answered and worked; Ctrl-C stops web, then workers, then the embedded Redis; nothing left."""
    port = free_port()
    run = _Process(tmp_path, "run", **_slack_env(slack, PORT=str(port), NEXY_HEALTH_URLS=",".join(nexy_server.urls)))
    try:
        run.wait_for(r"nexy run: ready: 1 worker on vm:NetworkWatcherRG:Nexy \(fixes first\), 1 on io, 1 on decisions; Redis: embedded")
        run.wait_for(r"nexy web: ready on http://127.0.0.1:\d+/slack/events")
        slack.bot_url = f"http://127.0.0.1:{port}/slack/events"
        deadline = time.monotonic() + 20
        while True:  # gunicorn says ready once it listens; its worker may still be starting
            try:
                assert "queued" in slack.slash_command("health").json()["text"]
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        slack.wait_for(lambda m: "2.4.0 build 240" in m.text + str(m.blocks), timeout=30)
        assert run.stop(signal.SIGINT) == 0
        steps = [line.strip() for line in run.lines if line.startswith("nexy ") and "ready" not in line]
        assert steps == ["nexy run: web stopped (no new requests)", "nexy run: workers stopped",
                         f"nexy run: redis-server stopped (its data stays under {tmp_path / 'data'}/redis)"], run.text
    finally:
        run.kill()
    assert alive_under(tmp_path) == []
