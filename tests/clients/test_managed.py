"""A script with secrets through Azure's managed Run Command (`AzureExecutor.run_protected`), real SDK
against the Azure emulator: the secret travels only as a protected parameter, the result and errors
are the action path's, and the run command resource is deleted after every run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.errors import AccessError, ConflictError, ExecutorError, ExecutorFailure
from clients.executors import AzureExecutor
from clients.managed import TOKEN_PREFIX, ManagedRunCommands
from clients.runcommand import Script
from jobs.context import verify_parameters, vm_parameters
from runbook.api_key import ApiKey
from sandbox.vm import new_gemini_key
from tests.helpers import KEY, RG, VM_NAME

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures_scripts"
FIX = ApiKey()


class Watch:
    """A RunWatch that keeps what it was told."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.polls: list[float] = []

    def accepted(self, token: str) -> None:
        self.tokens.append(token)

    def polling(self, elapsed_s: float) -> None:
        self.polls.append(elapsed_s)


def _left(azure) -> list[str]:
    """The managed run commands still on the VM."""
    return [name for rg, vm, name in azure._run_commands if (rg, vm) == KEY]


def test_fix_api_key_through_managed_run_commands_sends_the_key_only_as_a_protected_parameter(
    vm_settings, vm, azure, registry
):
    """Plan and apply of `fix api-key` as managed run commands fix the VM; the key is in no action Run Command
    request, only in the protectedParameters of the managed PUTs, in no answer, and no resource is left."""
    settings = vm_settings()
    vm.break_("api-key-expired")
    key = new_gemini_key()
    secrets = (("NEXY_GEMINI_KEY", key),)
    executor, watch = AzureExecutor(settings), Watch()
    plan = executor.run_protected(Script.of(ApiKey.plan_script, vm_parameters(settings), secrets), watch)
    assert plan.exit_code == 0 and plan.facts["key_matches"] == "no", plan.output
    apply = Script.of(
        ApiKey.apply_script,
        (*vm_parameters(settings), ("NEXY_EXPECT", plan.facts["config_sha"]), *FIX.apply_parameters(settings, ()),
         *verify_parameters(settings, FIX.verify_patterns(registry))),
        secrets,
    )
    applied = executor.run_protected(apply, watch)
    assert applied.facts.get("outcome") == "verified", (applied.facts, applied.output)
    assert vm.gemini_key == key and vm.service_active()

    assert [t.split("-")[:2] for t in watch.tokens] == [["managed:nexy", "api_key_plan"], ["managed:nexy", "api_key_apply"]]
    assert all(t.startswith(TOKEN_PREFIX) for t in watch.tokens)
    assert not [m for m, *_ in azure.bodies if m == "POST"], "no action Run Command was sent"
    puts = [json.loads(body) for method, _, body in azure.bodies if method == "PUT"]
    assert len(puts) == 2 and all(key in json.dumps(p) for p in puts)
    for put in puts:
        properties = put["properties"]
        assert properties["protectedParameters"] == [{"name": "NEXY_GEMINI_KEY", "value": key}]
        assert key not in json.dumps({k: v for k, v in properties.items() if k != "protectedParameters"})
    holding = [(m, path) for m, path, body in azure.bodies if key in body]
    assert [m for m, _ in holding] == ["PUT", "PUT"]
    assert not [a for a in azure.answers if key in a[3]], "an answer carried the key"
    assert [h["protected_parameters"] for h in azure.history] == [["NEXY_GEMINI_KEY"]] * 2
    assert _left(azure) == [] and [s for m, _, s, _ in azure.answers if m == "DELETE"] == [202, 202]


def test_the_output_is_read_from_the_instance_view_as_on_the_action_path(vm_settings, azure):
    """Output past 4,096 bytes comes back cut, marked cut, with the wrapper's summary and facts intact."""
    result = AzureExecutor(vm_settings()).run_protected(
        Script("noisy", directory=FIXTURES, secrets=(("NEXY_TOKEN", "s3cr3t-value"),)))
    assert result.exit_code == 0 and result.facts["lines"] == "400" and result.cut
    assert "line 0 of" not in result.stdout and "line 399 of" in result.stdout
    assert azure.history[-1]["execution_state"] == "Succeeded" and _left(azure) == []


def test_refusals_raise_the_action_paths_errors_and_run_nothing(vm_settings, vm, azure):
    """409 (another run-command runs) is ConflictError; a wrong token is AccessError AUTH; the Reader role
    (no runCommands/write) is AccessError FORBIDDEN; nothing runs and nothing is left on the VM."""
    secret = (("NEXY_TOKEN", "s3cr3t-value"),)
    azure.busy(RG, VM_NAME, 1)
    with pytest.raises(ConflictError):
        AzureExecutor(vm_settings()).run_protected(Script("noop", secrets=secret))
    with pytest.raises(AccessError) as wrong:
        AzureExecutor(vm_settings(azure_access_token="wrong-token")).run_protected(Script("noop", secrets=secret))
    assert wrong.value.code is ExecutorFailure.AUTH
    azure.apply_scenario("azure-no-role")
    with pytest.raises(AccessError) as reader:
        AzureExecutor(vm_settings()).run_protected(Script("noop", secrets=secret))
    assert reader.value.code is ExecutorFailure.FORBIDDEN and reader.value.status == 403
    assert azure.history == [] and _left(azure) == []


def test_a_run_past_the_timeout_is_stopped_and_deleted(vm_settings, azure):
    """A script still running at NEXY_RUNCOMMAND_TIMEOUT_S is RUN_TIMEOUT, stopped on the VM, its resource deleted."""
    executor = AzureExecutor(vm_settings(nexy_runcommand_timeout_s=1.0))
    with pytest.raises(ExecutorError) as caught:
        executor.run_protected(Script("sleeps", (("NEXY_SLEEP_S", "30"),), directory=FIXTURES,
                                      secrets=(("NEXY_TOKEN", "s3cr3t-value"),)))
    assert caught.value.code is ExecutorFailure.RUN_TIMEOUT
    assert azure.history[-1]["execution_state"] == "TimedOut"
    assert azure.history[-1]["end"] - azure.history[-1]["start"] < 10
    assert _left(azure) == []


def test_resume_reads_a_run_whose_worker_died_and_sends_nothing_to_the_vm(vm_settings, azure):
    """A run started by a worker that died right after Azure accepted it: resuming with its token reads its
    result from the instance view and deletes the resource, without a second PUT."""
    settings = vm_settings()
    azure.delay_s = 0.5
    watch = Watch()
    dead_worker = ManagedRunCommands(settings, AzureExecutor(settings).client)
    token = dead_worker.start(Script("noop", secrets=(("NEXY_TOKEN", "s3cr3t-value"),)), watch)
    assert watch.tokens == [token] and _left(azure) == [token.removeprefix(TOKEN_PREFIX)]
    resumed = AzureExecutor(settings).resume("noop", token, watch)
    assert resumed.exit_code == 0 and resumed.facts == {"ok": "yes"}
    assert [m for m, *_ in azure.bodies if m in ("PUT", "POST")] == ["PUT"]
    assert _left(azure) == []
