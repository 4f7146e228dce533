"""`fix api-key` on the simulated VM: the key is never on a process's command line (every external
command the plan and apply start is recorded by a PATH shim), and a failed apply leaves no
temporary file behind (no copy of the key or of config.env)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

from clients.executors import LocalExecutor
from clients.runcommand import Script
from jobs.context import verify_parameters, vm_parameters
from runbook.api_key import ApiKey
from sandbox.vm import new_gemini_key
from tests.helpers import OPERATOR, approve, bot_messages, type_key

FIX = ApiKey()


def _recording_path(tmp_path: Path, path: str, log: Path, hang: str = "") -> str:
    """A directory of shims, one per executable on `path`, each logging its argv before running the
    real one (`hang`: a command whose shim only sleeps, to kill the run while it waits)."""
    shims = tmp_path / "shims"
    shims.mkdir()
    for entry in path.split(os.pathsep):
        if not os.path.isdir(entry):
            continue
        for name in sorted(os.listdir(entry)):
            real = os.path.join(entry, name)
            shim = shims / name
            if shim.exists() or not os.path.isfile(real) or not os.access(real, os.X_OK):
                continue
            run = "exec sleep 30" if name == hang else f'exec {shlex.quote(real)} "$@"'
            shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "{name} $*" >> {shlex.quote(str(log))}\n{run}\n')
            shim.chmod(0o755)
    return f"{shims}{os.pathsep}{path}"


def _scripts(settings, registry, key: str, fingerprint: str = "") -> tuple[Script, Script]:
    secrets = (("NEXY_GEMINI_KEY", key),)
    plan = Script.of(ApiKey.plan_script, vm_parameters(settings), secrets)
    apply = Script.of(
        ApiKey.apply_script,
        (
            *vm_parameters(settings),
            ("NEXY_EXPECT", fingerprint),
            *FIX.apply_parameters(settings, ()),
            *verify_parameters(settings, FIX.verify_patterns(registry)),
        ),
        secrets,
    )
    return plan, apply


def _left_in(directory: Path) -> list[str]:
    return [str(p.relative_to(directory)) for p in directory.rglob("*")]


def test_the_key_is_on_no_command_line_of_the_plan_or_the_apply(vm, vm_settings, tmp_path, registry):
    """Plan, apply (smoke test, replace, restart, verify) and a second plan: no recorded argv holds the key."""
    settings = vm_settings()
    vm.break_("api-key-expired")
    key, log, tmp = new_gemini_key(), tmp_path / "argv.log", tmp_path / "tmp"
    tmp.mkdir()
    env = {**vm.env(), "TMPDIR": str(tmp)}
    env["PATH"] = _recording_path(tmp_path, env["PATH"], log)
    executor = LocalExecutor(settings, env=env)
    plan, _ = _scripts(settings, registry, key)
    planned = executor.run(plan)
    assert planned.facts["key_matches"] == "no", planned.output
    _, apply = _scripts(settings, registry, key, planned.facts["config_sha"])
    applied = executor.run(apply)
    assert applied.facts.get("outcome") == "verified", (applied.facts, applied.output)
    assert executor.run(plan).facts["key_matches"] == "yes"
    assert vm.gemini_key == key and vm.service_active()
    recorded = log.read_text()
    assert "curl " in recorded and "systemctl restart" in recorded and "sha256sum" in recorded
    assert key not in recorded and key[:20] not in recorded
    assert _left_in(tmp) == []


def test_an_apply_killed_midway_leaves_no_temporary_file(vm, vm_settings, tmp_path, registry):
    """The apply is killed while its smoke test waits: no file is left in TMPDIR, so no copy of the key."""
    settings = vm_settings()
    key, log, tmp = new_gemini_key(), tmp_path / "argv.log", tmp_path / "tmp"
    tmp.mkdir()
    env = {**vm.env(), "TMPDIR": str(tmp), "NEXY_GEMINI_KEY": key}
    env["PATH"] = _recording_path(tmp_path, env["PATH"], log, hang="curl")
    planned = LocalExecutor(settings, env=vm.env()).run(_scripts(settings, registry, key)[0])
    _, apply = _scripts(settings, registry, key, planned.facts["config_sha"])
    before = (vm.app_dir / "config.env").read_text()
    run = subprocess.Popen(
        ["bash", "-s"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
        start_new_session=True,
    )
    assert run.stdin is not None
    run.stdin.write(apply.render())
    run.stdin.close()
    deadline = time.monotonic() + 20
    while not (log.exists() and "curl " in log.read_text()):
        assert time.monotonic() < deadline and run.poll() is None, "the smoke test never started"
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGTERM)
    run.wait(timeout=10)
    assert _left_in(tmp) == []
    assert (vm.app_dir / "config.env").read_text() == before


def test_the_key_is_in_no_action_run_command_request(fix_settings, slack, work, vm, azure):
    """`fix api-key` through the bot, planned, approved by two and applied: of every request body the Azure
    emulator received, no action Run Command (POST .../runCommand) holds the key; the managed Run Commands
    (PUT .../runCommands/...) hold it only as a protected parameter, and no answer holds it."""
    vm.break_("api-key-expired")
    key = new_gemini_key()
    slack.slash_command("fix api-key", user=OPERATOR)
    type_key(slack, key)
    work(fix_settings)
    plan = bot_messages(slack)[-1]
    assert "0 of 2" in f"{plan.text}{plan.blocks}"
    report = approve(slack, work, fix_settings, plan)
    assert "Fixed and verified" in report and vm.gemini_key == key
    actions = [body for method, path, body in azure.bodies if method == "POST" and "/runCommand?" in path]
    managed = [body for method, path, body in azure.bodies if method == "PUT" and "/runCommands/" in path]
    assert len(managed) == 2  # the plan and the apply, each a managed run command (the key is in both)
    assert not [body for body in actions if key in body]
    for body in managed:
        if key in body:
            sent = json.loads(body)["properties"]
            assert [p["value"] for p in sent.get("protectedParameters", []) if p["value"] == key] == [key]
            assert key not in json.dumps({k: v for k, v in sent.items() if k != "protectedParameters"})
    assert any(key in body for body in managed)
    assert not [answer for *_, answer in azure.answers if key in answer]
