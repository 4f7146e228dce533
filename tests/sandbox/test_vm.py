"""The simulated Nexy VM: each runbook fault really shows its symptom and the runbook's own fix heals it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.vm import BIN, SCENARIOS, SimulatedVM

SHELLCHECK = Path(__file__).resolve().parents[2] / ".venv/bin/shellcheck"


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[SimulatedVM]:
    """A healthy simulated VM under tmp_path; stopped (no process left) at teardown."""
    machine = SimulatedVM(tmp_path / "vm").create()
    yield machine
    machine.stop()
    assert not machine.service_active()


def on_vm(vm: SimulatedVM, script: str) -> tuple[int, str, str]:
    """Run a script on the VM with the bot's settings passed as Run Command parameters."""
    params = [(k, v) for k, v in vm.settings_env().items() if k != "NEXY_HEALTH_URLS"]
    return vm.run_script(script, params, timeout=60)


def is_active(vm: SimulatedVM) -> tuple[int, str]:
    rc, out, _ = on_vm(vm, 'systemctl is-active "$NEXY_SERVICE"')
    return rc, out.strip()


def journal(vm: SimulatedVM) -> str:
    rc, out, err = on_vm(vm, 'journalctl -u "$NEXY_SERVICE" -n 200 --no-pager')
    assert rc == 0, err
    return out


def test_create_lays_out_a_healthy_production_tree(vm: SimulatedVM) -> None:
    """create() writes the production tree with real production paths in the unit and starts a serving service."""
    app = vm.app_dir
    assert app == vm.root / "home/azureuser/voice-assistant"
    assert (app / "config.env").read_text().count("GEMINI_API_KEY=AIza") == 1
    assert (app / "VERSION").read_text().strip() == "2.4.0.240"
    requirements = (app / "server/requirements.txt").read_text()
    assert "protobuf>=6.31.1,<7" in requirements and "grpcio>=1.75.1,<2" in requirements
    manifest = json.loads((app / "server/updates/manifests/manifest.json").read_text())
    assert (manifest["version"], manifest["build"]) == ("2.4.0", "240")
    assert (manifest["artifact"]["version"], manifest["artifact"]["build"]) == ("2.4.0", "240")
    assert manifest["artifact"]["url"].endswith("/releases/download/Update/Nexy.pkg")
    unit = vm.unit_path.read_text()
    assert "User=azureuser" in unit
    assert "WorkingDirectory=/home/azureuser/voice-assistant" in unit
    assert "ExecStart=/home/azureuser/voice-assistant/venv/bin/python3 server/main.py" in unit
    assert is_active(vm) == (0, "active")
    bodies = vm.health()
    assert [b["status"] for b in bodies] == ["ok", "ok"]
    assert {(b["latest_version"], b["latest_build"], b["version"]) for b in bodies} == {("2.4.0", "240", "2.4.0.240")}
    settings = vm.settings_env()
    assert settings["NEXY_APP_DIR"] == str(app)
    assert settings["NEXY_SERVICE"] == "voice-assistant" and settings["NEXY_SERVICE_USER"] == "azureuser"
    assert settings["NEXY_HEALTH_URLS"].split(",") == vm.health_urls
    assert vm.health_urls[0].endswith("/health") and vm.health_urls[1].endswith("/updates/health")
    rc, out, _ = on_vm(vm, 'stat -c "%U:%G %a" "$NEXY_APP_DIR/config.env"; sudo -u "$NEXY_SERVICE_USER" '
                           'test -r "$NEXY_APP_DIR/config.env" && echo readable')
    assert rc == 0 and out.split() == ["root:azureuser", "640", "readable"]
    assert "Started voice-assistant.service" in journal(vm)


def test_create_is_idempotent(vm: SimulatedVM) -> None:
    """A second create() keeps the tree (same key, same ports) and the running service."""
    key, urls = vm.gemini_key, vm.health_urls
    again = SimulatedVM(vm.root).create()
    assert again.gemini_key == key and again.health_urls == urls
    assert again.service_active()


def test_venv_activate_python_and_pip_freeze(vm: SimulatedVM) -> None:
    """The runbook 3 check `. venv/bin/activate && python -V && pip freeze` works in the VM's venv."""
    rc, out, err = on_vm(vm, 'cd "$NEXY_APP_DIR" && . venv/bin/activate && python -V && pip freeze | head -100 '
                             '&& echo "VENV=$VIRTUAL_ENV"')
    assert rc == 0, err
    assert out.startswith("Python 3.")
    assert "protobuf==6.32.1" in out.splitlines() and "grpcio==1.75.1" in out.splitlines()
    assert f"VENV={vm.app_dir / 'venv'}" in out


def test_config_perms_fault_and_runbook_fix(vm: SimulatedVM) -> None:
    """6.1: config.env root:root 600 kills the service with PermissionError; chown/chmod/restart heals it."""
    vm.break_("config-perms")
    assert is_active(vm) == (3, "failed")
    log = journal(vm)
    assert "PermissionError: [Errno 13] Permission denied: '/home/azureuser/voice-assistant/config.env'" in log
    assert "voice-assistant.service: Main process exited, code=exited, status=1/FAILURE" in log
    rc, out, _ = on_vm(vm, 'stat -c "%U:%G %a" "$NEXY_APP_DIR/config.env"; '
                           'sudo -u "$NEXY_SERVICE_USER" test -r "$NEXY_APP_DIR/config.env" || echo unreadable')
    assert out.split() == ["root:root", "600", "unreadable"]
    with pytest.raises(OSError):
        vm.health(timeout=0.5)

    rc, out, err = on_vm(vm, """set -eu
sudo chown root:azureuser "$NEXY_APP_DIR/config.env"
sudo chmod 640 "$NEXY_APP_DIR/config.env"
sudo systemctl restart "$NEXY_SERVICE"
stat -c '%U:%G %a' "$NEXY_APP_DIR/config.env"
""")
    assert rc == 0, err
    assert out.strip() == "root:azureuser 640"
    assert [b["status"] for b in vm.wait_healthy()] == ["ok", "ok"]
    assert is_active(vm) == (0, "active")


def test_execstart_drift_fault_and_runbook_fix(vm: SimulatedVM) -> None:
    """6.2: a drifted ExecStart can't open server/server/main.py; sed + daemon-reload + restart heals it."""
    vm.break_("execstart-drift")
    assert is_active(vm) == (3, "failed")
    assert ("can't open file '/home/azureuser/voice-assistant/server/server/main.py': "
            "[Errno 2] No such file or directory") in journal(vm)
    rc, out, _ = on_vm(vm, "systemctl cat \"$NEXY_SERVICE\" | grep '^ExecStart='")
    assert out.strip() == "ExecStart=/home/azureuser/voice-assistant/venv/bin/python3 server/server/main.py"

    fix_unit = """set -eu
UNIT=$(systemctl show -p FragmentPath --value "$NEXY_SERVICE")
sudo sed -i 's|^ExecStart=.*|ExecStart=/home/azureuser/voice-assistant/venv/bin/python3 server/main.py|' "$UNIT"
"""
    rc, _, err = on_vm(vm, fix_unit + 'sudo systemctl restart "$NEXY_SERVICE"\n')
    assert rc == 0
    assert "changed on disk" in err and "daemon-reload" in err  # restart still uses the loaded (old) unit
    vm.wait_state("failed")
    rc, out, _ = on_vm(vm, 'systemctl show -p NeedDaemonReload -p ExecStart "$NEXY_SERVICE"')
    assert "NeedDaemonReload=yes" in out and "server/server/main.py" in out

    rc, out, err = on_vm(vm, fix_unit + 'sudo systemctl daemon-reload\nsudo systemctl restart "$NEXY_SERVICE"\n'
                                        'systemctl cat "$NEXY_SERVICE" | grep "^ExecStart="\n')
    assert rc == 0 and err == "", err
    assert out.strip() == "ExecStart=/home/azureuser/voice-assistant/venv/bin/python3 server/main.py"
    vm.wait_healthy()
    assert is_active(vm) == (0, "active")


def test_api_key_expired_fault_and_runbook_fix(vm: SimulatedVM) -> None:
    """6/6.3: an expired Gemini key fails TextProcessor init; a new key, the preflight and a restart heal it."""
    old_key = vm.gemini_key
    vm.break_("api-key-expired")
    assert is_active(vm) == (3, "failed")
    rc, out, _ = on_vm(vm, "journalctl -u \"$NEXY_SERVICE\" -n 200 --no-pager "
                           "| grep -E 'API_KEY_INVALID|API key expired|google.genai.errors|TextProcessor' || true")
    assert ("google.genai.errors.ClientError: 400 INVALID_ARGUMENT. {'error': {'code': 400, 'message': "
            "'API key expired. Please renew the API key.', 'status': 'INVALID_ARGUMENT', "
            "'details': [{'reason': 'API_KEY_INVALID'}]}}") in out
    assert "Не удалось инициализировать TextProcessor" in out

    new_key = "AIzaSyD" + "k" * 32
    rc, out, err = vm.run_script("""set -eu
CFG="$NEXY_APP_DIR/config.env"
sudo sed -i "s|^GEMINI_API_KEY=.*|GEMINI_API_KEY=$NEW_KEY|" "$CFG"
grep -q '^GEMINI_API_KEY=' "$CFG"
sudo -u azureuser test -r "$CFG"
sudo systemctl restart "$NEXY_SERVICE"
""", [("NEXY_APP_DIR", str(vm.app_dir)), ("NEXY_SERVICE", vm.service), ("NEW_KEY", new_key)])
    assert rc == 0, err
    assert vm.gemini_key == new_key != old_key
    vm.wait_healthy()
    rc, out, _ = on_vm(vm, 'journalctl -u "$NEXY_SERVICE" --no-pager -n 8 | grep -c "API key expired" || true')
    assert out.strip() == "0"


def test_deps_mismatch_fault_and_runbook_fix(vm: SimulatedVM) -> None:
    """3: an old protobuf makes the import fail; the runbook's pip install line and a restart heal it."""
    vm.break_("deps-mismatch")
    assert is_active(vm) == (3, "failed")
    assert "ImportError: cannot import name 'runtime_version' from 'google.protobuf'" in journal(vm)
    rc, out, _ = on_vm(vm, 'cd "$NEXY_APP_DIR" && . venv/bin/activate && python -V && pip freeze | head -100')
    assert "protobuf==4.25.8" in out.splitlines()

    rc, out, err = on_vm(vm, """cd "$NEXY_APP_DIR" && . venv/bin/activate && pip install --upgrade -r server/requirements.txt && pip install --upgrade 'protobuf>=6.31.1,<7' 'grpcio>=1.75.1,<2' 'grpcio-tools>=1.75.1,<2' 'grpcio-status>=1.75.1,<2'
sudo systemctl restart "$NEXY_SERVICE"
""")
    assert rc == 0, err
    assert "Successfully installed" in out and "protobuf-6.33.1" in out
    vm.wait_healthy()
    rc, out, _ = on_vm(vm, 'cd "$NEXY_APP_DIR" && venv/bin/pip freeze')
    assert "protobuf==6.33.1" in out.splitlines() and "grpcio-status==1.76.0" in out.splitlines()
    assert is_active(vm) == (0, "active")


def test_pip_refuses_unsatisfiable_requirement(vm: SimulatedVM) -> None:
    """pip resolves before it installs: an impossible requirement changes nothing and exits 1."""
    rc, out, err = on_vm(vm, "cd \"$NEXY_APP_DIR\" && venv/bin/pip install --upgrade 'protobuf>=9' grpcio")
    assert rc == 1
    assert "No matching distribution found for protobuf>=9" in err
    rc, out, _ = on_vm(vm, 'cd "$NEXY_APP_DIR" && venv/bin/pip freeze')
    assert "grpcio==1.75.1" in out.splitlines()


def test_stale_version_fault_and_runbook_fix(vm: SimulatedVM) -> None:
    """4: /health reports an old latest_version/latest_build until update_server_version.sh sets it."""
    vm.break_("stale-version")
    assert vm.service_active()
    assert vm.stale_version == "2.3.0.233"
    bodies = vm.health()
    assert {(b["latest_version"], b["latest_build"], b["version"]) for b in bodies} == {("2.3.0", "233", "2.3.0.233")}
    rc, out, _ = on_vm(vm, 'cd "$NEXY_APP_DIR" && cat VERSION && cat server/updates/manifests/manifest.json')
    assert out.startswith("2.3.0.233\n") and '"build": "233"' in out

    rc, out, err = on_vm(vm, f'cd "$NEXY_APP_DIR" && bash scripts/update_server_version.sh {vm.expected_version}')
    assert rc == 0, err
    assert "manifest version/build: 2.4.0 240" in out
    bodies = vm.health()
    assert {(b["latest_version"], b["latest_build"], b["version"]) for b in bodies} == {("2.4.0", "240", "2.4.0.240")}
    rc, _, err = on_vm(vm, 'cd "$NEXY_APP_DIR" && bash scripts/update_server_version.sh 2.4')
    assert rc == 1 and "Expected X.Y.Z.Build" in err


def test_service_down_fault_and_restart(vm: SimulatedVM) -> None:
    """5: a stopped service is inactive with its stop in the journal; a restart heals it."""
    vm.break_("service-down")
    assert is_active(vm) == (3, "inactive")
    log = journal(vm)
    assert "Stopping voice-assistant.service - Nexy Voice Assistant Server..." in log
    assert "Stopped voice-assistant.service - Nexy Voice Assistant Server." in log
    rc, out, _ = on_vm(vm, 'systemctl status "$NEXY_SERVICE" --no-pager -l')
    assert rc == 3 and "Active: inactive (dead)" in out
    with pytest.raises(OSError):
        vm.health(timeout=0.5)
    rc, _, err = on_vm(vm, 'sudo systemctl restart "$NEXY_SERVICE" && systemctl is-active "$NEXY_SERVICE"')
    assert rc == 0, err
    vm.wait_healthy()


def test_systemctl_status_and_show_when_failed(vm: SimulatedVM) -> None:
    """status/show/is-failed report a failed unit the way systemd does (exit codes included)."""
    vm.break_("config-perms")
    rc, out, _ = on_vm(vm, 'systemctl status "$NEXY_SERVICE" --no-pager -l')
    assert rc == 3
    assert out.startswith("× voice-assistant.service - Nexy Voice Assistant Server")
    assert "Active: failed (Result: exit-code)" in out
    assert "(code=exited, status=1/FAILURE)" in out and "PermissionError" in out
    rc, out, _ = on_vm(vm, 'systemctl show -p ActiveState,SubState -p Result -p FragmentPath -p User "$NEXY_SERVICE"')
    assert out.splitlines() == ["ActiveState=failed", "SubState=failed", "Result=exit-code",
                                f"FragmentPath={vm.unit_path}", "User=azureuser"]
    rc, out, _ = on_vm(vm, 'systemctl is-failed "$NEXY_SERVICE"')
    assert (rc, out.strip()) == (0, "failed")
    rc, _, err = on_vm(vm, "systemctl restart no-such-unit")
    assert rc == 5 and "Unit no-such-unit.service not found." in err
    rc, _, err = on_vm(vm, 'sudo -u azureuser systemctl restart "$NEXY_SERVICE"')
    assert rc == 1 and "Interactive authentication required" in err


def test_journalctl_options(vm: SimulatedVM) -> None:
    """journalctl honours -n, -o cat, --since and -g, and says '-- No entries --' when nothing matches."""
    rc, out, _ = on_vm(vm, 'journalctl -u "$NEXY_SERVICE" -n 2 --no-pager -o cat')
    assert len(out.splitlines()) == 2 and "python3[" not in out and "listening on 127.0.0.1" in out
    rc, out, _ = on_vm(vm, 'journalctl -u "$NEXY_SERVICE" --no-pager --since "10 min ago" -g "Health server"')
    assert len(out.splitlines()) == 1 and " Nexy python3[" in out
    rc, out, _ = on_vm(vm, 'journalctl -u "$NEXY_SERVICE" --no-pager --since "+1h"')
    assert out.strip() == "-- No entries --"


def test_chown_and_sudo_permission_rules(vm: SimulatedVM) -> None:
    """chown validates users and needs root; `sudo -u` makes the stand-ins judge as that VM user."""
    rc, _, err = on_vm(vm, 'chown bob "$NEXY_APP_DIR/config.env"')
    assert rc == 1 and "chown: invalid user: 'bob'" in err
    rc, _, err = on_vm(vm, 'sudo -u azureuser chown azureuser "$NEXY_APP_DIR/config.env"')
    assert rc == 1 and "Operation not permitted" in err
    rc, _, err = on_vm(vm, 'sudo -u nobody true')
    assert rc == 1 and "unknown user nobody" in err
    rc, out, _ = on_vm(vm, 'chmod 604 "$NEXY_APP_DIR/config.env" && chown azureuser: "$NEXY_APP_DIR/config.env" '
                           '&& stat -c "%U:%G %a %A" "$NEXY_APP_DIR/config.env"')
    assert out.strip() == "azureuser:azureuser 604 -rw----r--"
    rc, out, _ = on_vm(vm, 'chmod 060 "$NEXY_APP_DIR/config.env"; '
                           'sudo -u azureuser test -r "$NEXY_APP_DIR/config.env" && echo yes || echo no')
    assert out.strip() == "no"  # the owner's own bits count, not the group's
    vm.heal()


def test_run_script_parameters_exit_code_and_timeout(vm: SimulatedVM) -> None:
    """Parameters arrive as exported variables and as $1..$n; exit codes and stderr come back; timeouts kill."""
    rc, out, err = vm.run_script('echo "$#|$1|$2|$GREETING|$TARGET"; echo oops >&2; exit 7',
                                 [("GREETING", "hello world"), ("TARGET", "it's 'quoted' $HOME")])
    assert rc == 7
    assert out == "2|hello world|it's 'quoted' $HOME|hello world|it's 'quoted' $HOME\n"
    assert err == "oops\n"
    rc, out, _ = vm.run_script("pwd; id -u")
    assert out.splitlines()[0].startswith(str(vm.root / "var/lib/waagent/run-command/download/"))
    rc, _, _ = vm.run_script("sleep 5 & wait", timeout=0.3)
    assert rc == 124


def test_heal_after_every_fault_at_once(vm: SimulatedVM) -> None:
    """heal() undoes all faults together and the service serves the expected version again."""
    for scenario in ("stale-version", "deps-mismatch", "api-key-expired", "execstart-drift", "config-perms"):
        vm.break_(scenario)
    vm.break_("run-command-busy", times=2)
    assert vm.run_command_busy == 2 and vm.service_state() == "failed"
    vm.heal()
    assert vm.run_command_busy == 0
    assert {b["version"] for b in vm.health()} == {vm.expected_version}
    with pytest.raises(ValueError):
        vm.break_("no-such-fault")
    assert set(SCENARIOS) >= {"healthy", "config-perms", "execstart-drift", "api-key-expired", "deps-mismatch",
                              "stale-version", "service-down", "run-command-busy"}


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    """stop() kills the service and its supervisor: no process of the VM survives."""
    machine = SimulatedVM(tmp_path / "vm").create()
    state = json.loads((machine.root / "run/sandbox-systemd/voice-assistant.service.state.json").read_text())
    pids = [state["main_pid"], state["supervisor_pid"]]
    machine.stop()
    for pid in pids:
        try:
            os.kill(pid, 0)
            stat = Path(f"/proc/{pid}/stat").read_text()
            assert stat.rsplit(")", 1)[1].split()[0] == "Z"
        except ProcessLookupError:
            pass
    assert machine.service_state() == "inactive"


@pytest.mark.skipif(not (SHELLCHECK.exists() or shutil.which("shellcheck")), reason="shellcheck not installed")
def test_shell_stand_ins_pass_shellcheck() -> None:
    """Every stand-in in sandbox/vm/bin and the image's shell scripts pass shellcheck."""
    image = BIN.parent / "image"
    files = sorted(BIN.iterdir()) + [image / "scripts/update_server_version.sh", image / "venv/bin/pip",
                                     image / "venv/bin/activate"]
    tool = str(SHELLCHECK) if SHELLCHECK.exists() else shutil.which("shellcheck")
    result = subprocess.run([tool, *map(str, files)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
