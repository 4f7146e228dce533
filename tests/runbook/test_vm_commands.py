"""End to end: /nexy status, preflight and queue through signed requests, the worker, the real Azure
SDK, the Run Command emulator and the simulated VM in each runbook fault."""
from __future__ import annotations

import re

import pytest

from handlers.parser import Request
from tests.helpers import RG, VM_NAME


def _bot_replies(slack, channel="C0OPS"):
    return [m for m in slack.messages(channel) if m.user == slack.bot_user_id and m.thread_ts and m.thread_ts != m.ts
            and not m.ephemeral_to]


def _run(slack, work, settings, words):
    assert "queued" in slack.slash_command(words).json()["text"]
    work(settings)
    return _bot_replies(slack)[-1]


def test_status_healthy(vm_bot_settings, slack, work, azure):
    """On a healthy VM, status says active, with one run-command."""
    reply = _run(slack, work, vm_bot_settings, "status")
    assert "`voice-assistant` is active" in reply.text
    assert "Fast Branching" not in str(reply.blocks)
    assert azure.run_count[(RG.lower(), VM_NAME.lower())] == 1


@pytest.mark.parametrize("scenario, section, quote, next_step", [
    ("config-perms", "6.1 Config Permission Denied",
     "PermissionError: [Errno 13] Permission denied: '/home/azureuser/voice-assistant/config.env'",
     "Next: `/nexy fix config-perms`"),
    ("execstart-drift", "6.2 ExecStart Path Drift", "can't open file '/home/azureuser/voice-assistant/server/server/main.py'",
     "Next: `/nexy fix execstart`"),
    ("api-key-expired", "6.3 TextProcessor Init Failure", "TextProcessor", "Next: `/nexy fix api-key`"),
    ("deps-mismatch", "3 Dependency Mismatch After Deploy",
     "ImportError: cannot import name 'runtime_version' from 'google.protobuf'", "Next: `/nexy fix deps`"),
])
def test_status_names_the_runbook_branch(vm_bot_settings, slack, work, vm, scenario, section, quote, next_step,
                                         parser):
    """In each fault, status reports the service failed, quotes the journal line, names the section and a next
    step that exists: a fix command the parser accepts, or the runbook's steps by hand."""
    vm.break_(scenario)
    reply = _run(slack, work, vm_bot_settings, "status")
    branch = next(block["text"]["text"] for block in reply.blocks if "Fast Branching" in str(block))
    assert "is failed" in reply.text or "is activating" in reply.text
    assert f"Fast Branching → {section}*" in branch
    assert quote in branch and next_step in branch
    recommended = re.findall(r"`/nexy ([^`]+)`", str(reply.blocks))
    assert recommended and all(isinstance(parser.parse(words), Request) for words in recommended), recommended


def test_long_status_output_is_attached_as_a_file(serve_bot, vm_settings, slack, work, vm):
    """Output longer than a message shows inline goes up whole as a file in the thread, with an excerpt inline."""
    settings = vm_settings(nexy_journal_lines=100)
    serve_bot(settings)
    vm.break_("deps-mismatch")
    for n in range(60):
        vm.log(f"ImportError: line {n:02d} " + "x" * 80)
    _run(slack, work, settings, "status")
    reply = next(m for m in _bot_replies(slack) if "Status (runbook 5)" in m.text)
    assert "The whole output is attached below" in str(reply.blocks)
    files = [m for m in slack.messages("C0OPS") if m.files and m.thread_ts == reply.thread_ts]
    assert len(files) == 1 and files[0].files[0]["name"] == "status-output.txt"
    content = files[0].files[0]["content"]
    assert "ImportError: line 59" in content and len(content) > 2800


def test_status_service_down(vm_bot_settings, slack, work, vm):
    """A stopped service is reported inactive, with the advice to resolve the error and restart."""
    vm.break_("service-down")
    reply = _run(slack, work, vm_bot_settings, "status")
    assert "is inactive" in reply.text and "/nexy restart" in str(reply.blocks)


def test_preflight_healthy_passes_all_four(vm_bot_settings, slack, work):
    """On a healthy VM every guardrail passes and a restart is allowed."""
    reply = _run(slack, work, vm_bot_settings, "preflight")
    assert "all 4 guardrails pass" in reply.text


@pytest.mark.parametrize("scenario, failing", [
    ("config-perms", "readable by `azureuser` (owner and mode are root:root 600)"),
    ("execstart-drift", "`ExecStart` points to `server/main.py` (unit has `ExecStart="),
])
def test_preflight_fails_the_right_guardrail(vm_bot_settings, slack, work, vm, scenario, failing):
    """Each fault fails its own guardrail, with the reason, and says no restart is allowed."""
    vm.break_(scenario)
    reply = _run(slack, work, vm_bot_settings, "preflight")
    blocks = str(reply.blocks)
    assert "1 of 4 guardrails fail" in reply.text and "no restart is allowed" in reply.text
    assert f":x: `config.env` is {failing}" in blocks or f":x: {failing}" in blocks


def test_preflight_placeholder_key_fails(vm_bot_settings, slack, work, vm):
    """A placeholder GEMINI_API_KEY fails the key guardrail and the value is never shown."""
    config = vm.app_dir / "config.env"
    original = config.read_text()
    config.write_text("GEMINI_API_KEY=your_api_key_here\n")
    reply = _run(slack, work, vm_bot_settings, "preflight")
    assert ":x: `GEMINI_API_KEY` is present and not a placeholder (the value is a placeholder)" in str(reply.blocks)
    assert "your_api_key_here" not in str(slack.calls)
    config.write_text(original)


def test_conflict_is_waited_out_and_said_in_thread(vm_bot_settings, slack, work, azure):
    """Two 409s: the thread says the VM is busy (6.4) and when it retries; then the check runs."""
    azure.busy(RG, VM_NAME, 2)
    reply = _run(slack, work, vm_bot_settings, "status")
    assert "is active" in reply.text
    notices = [m for m in _bot_replies(slack) if "6.4" in m.text]
    assert len(notices) == 1 and "ran after waiting" in notices[0].text and notices[0].edits >= 2
    assert len(azure.conflicts) == 2


def test_conflict_gives_up_after_bounded_wait(serve_bot, vm_settings, slack, work, azure, redis):
    """A VM busy past NEXY_CONFLICT_MAX_WAIT_S fails with a clear message: nothing was run."""
    settings = vm_settings(nexy_conflict_max_wait_s=0.2)
    serve_bot(settings)
    azure.busy(RG, VM_NAME, 50)
    slack.slash_command("status")
    work(settings)
    texts = [m.text for m in _bot_replies(slack)]
    assert any("stayed busy with another run-command" in t and "Nothing changed on the VM" in t for t in texts)
    assert azure.run_count.get((RG.lower(), VM_NAME.lower()), 0) == 0


def test_secrets_in_output_never_reach_slack(vm_bot_settings, slack, work, vm):
    """The Gemini key on the VM never appears in anything sent to Slack."""
    vm.break_("api-key-expired")
    assert vm.gemini_key and vm.gemini_key in vm.journal()  # the service's own log line carries it
    reply = _run(slack, work, vm_bot_settings, "status")
    assert "[REDACTED]:google-api-key" in str(reply.blocks)
    _run(slack, work, vm_bot_settings, "preflight")
    assert vm.gemini_key not in str(slack.calls)


def test_run_command_refused_for_the_role_names_the_role(vm_bot_settings, slack, work, azure):
    """Section 1 at the emulator (Reader only): a run-command is refused and the thread names the role it needs."""
    azure.apply_scenario("azure-no-role")
    slack.slash_command("status")
    work(vm_bot_settings)
    text = "\n".join(m.text for m in _bot_replies(slack))
    assert "Virtual Machine Contributor" in text and "runCommand/action" in text and "403" in text
