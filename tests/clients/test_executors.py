"""The Azure executor through the real SDK against the Run Command emulator, and the local executor."""
from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import AccessError, ConflictError, ExecutorFailure
from bot.wording import errors as error_wording
from clients.executors import AzureExecutor, LocalExecutor
from clients.runcommand import AZURE_OUTPUT_LIMIT, Script, parse, split_message
from jobs.context import vm_parameters
from runbook.preflight import SCRIPT as PREFLIGHT
from tests.helpers import RG, VM_NAME

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures_scripts"


def test_noop_succeeds_with_result_line(vm_settings, azure):
    """A script that exits 0 comes back with exit code 0 and the facts it recorded."""
    result = AzureExecutor(vm_settings()).run(Script("noop"))
    assert result.exit_code == 0 and result.facts == {"ok": "yes"} and not result.cut
    assert azure.run_count[(RG.lower(), VM_NAME.lower())] == 1


def test_preflight_on_healthy_vm(vm_settings):
    """The preflight script reports all four guardrails passing on a healthy VM."""
    settings = vm_settings()
    result = AzureExecutor(settings).run(Script.of(PREFLIGHT, vm_parameters(settings)))
    assert result.facts["pf_config_exists"] == "yes"
    assert result.facts["pf_api_key"] == "present"
    assert result.facts["pf_config_readable"] == "yes"
    assert result.facts["pf_execstart_ok"] == "yes"


def test_nonzero_exit_is_detected_although_azure_says_succeeded(vm_settings):
    """A failing script (Azure still answers ProvisioningState/succeeded) is read as its real exit code."""
    result = AzureExecutor(vm_settings()).run(Script("fails-midway", directory=FIXTURES))
    assert result.exit_code == 1
    assert "before" in result.stdout and "never" not in result.stdout
    assert result.facts["failed_command"] == "false (exit 1)"


def test_long_output_is_marked_cut_and_summary_survives(vm_settings):
    """Output past 4,096 bytes is cut by Azure from the start; the result line still arrives, marked cut."""
    result = AzureExecutor(vm_settings()).run(Script("noisy", directory=FIXTURES))
    assert result.exit_code == 0 and result.facts["lines"] == "400"
    assert result.cut and "line 0 of" not in result.stdout and "line 399 of" in result.stdout
    assert "the start was cut" in result.output


def test_conflict_raises_conflict_error(vm_settings, azure):
    """A 409 from the emulator ('extension execution is in progress') raises ConflictError."""
    azure.busy(RG, VM_NAME, 1)
    with pytest.raises(ConflictError, match="in progress"):
        AzureExecutor(vm_settings()).run(Script("noop"))


def test_wrong_token_is_access_error_naming_the_token(vm_settings):
    """A 401 says the token is missing, expired or wrong (a role would not help)."""
    with pytest.raises(AccessError) as refused:
        AzureExecutor(vm_settings(azure_access_token="wrong-token")).run(Script("noop"))
    assert refused.value.code is ExecutorFailure.AUTH and "expired" in error_wording.executor(refused.value)


def test_local_executor_runs_the_same_script(vm, vm_settings):
    """The local executor runs the wrapped script with bash and reads the same summary."""
    settings = vm_settings()
    result = LocalExecutor(settings, env=vm.env()).run(Script.of(PREFLIGHT, vm_parameters(settings)))
    assert result.exit_code == 0 and result.facts["pf_execstart_ok"] == "yes"


def test_local_scripts_do_not_see_the_bots_secrets(vm_settings, monkeypatch):
    """The local executor gives scripts a minimal environment: no Slack, Azure or GitHub tokens."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-must-not-leak")
    result = LocalExecutor(vm_settings()).run(Script("env-dump", directory=FIXTURES))
    assert result.exit_code == 0 and "PATH=" in result.stdout and "xoxb-must-not-leak" not in result.stdout


def test_split_message_reads_azure_format():
    """The [stdout]/[stderr] sections of Azure's message are split apart."""
    stdout, stderr = split_message("Enable succeeded: \n[stdout]\nhello\n@@nexy-result rc=3\n\n[stderr]\noops\n")
    result = parse("x", stdout, stderr, limit=AZURE_OUTPUT_LIMIT)
    assert result.exit_code == 3 and result.stdout == "hello" and result.stderr.strip() == "oops"


def test_missing_result_line_means_unknown_exit():
    """Output without the wrapper's result line has no exit code: the state is unknown, not success."""
    assert parse("x", "some output", "").exit_code is None
