"""/nexy diagnose end to end: one run-command, the right runbook section first with its evidence, the
top fix's plan posted with it, and one approval healing the VM: two run-commands in all."""
from __future__ import annotations

import re

import httpx
import pytest

from handlers.parser import Request
from tests.helpers import KEY, OPERATOR, approve, ask, bot_messages, type_key


def _diagnosis(slack):
    return next(m for m in reversed(bot_messages(slack)) if "Diagnosis" in m.text)


def test_a_healthy_vm_gets_a_short_all_clear_with_the_figures(fix_settings, slack, work, vm, azure):
    """On a healthy VM the diagnosis is an all-clear naming the version and the packages; one run-command."""
    ask(slack, work, fix_settings, "diagnose")
    reply = _diagnosis(slack)
    assert "all clear" in reply.text and vm.expected_version in reply.text and "packages satisfy" in reply.text
    assert azure.run_count[KEY] == 1
    assert not any(m.text.startswith(":clipboard: Plan") for m in bot_messages(slack))


@pytest.mark.parametrize("scenario, section, words, diff", [
    ("config-perms", "6.1 Config Permission Denied", "fix config-perms", "owner root:root  mode 600"),
    ("execstart-drift", "6.2 ExecStart Path Drift", "fix execstart", "server/server/main.py"),
    ("deps-mismatch", "3 Dependency Mismatch After Deploy", "fix deps", "- protobuf 4.25.8"),
    ("stale-version", "4 Wrong Runtime Version", "fix version 2.4.0.240", "- VERSION {stale}"),
    ("service-down", "5 Service Failure", "restart", "inactive → restarted"),
])
def test_diagnose_puts_the_right_section_first_and_one_approval_heals(fix_settings, slack, work, vm, azure,
                                                                      scenario, section, words, diff, parser):
    """Each fault: the right section first, its plan posted with the diagnosis, one approval heals the VM,
    in two run-commands in all; every command the diagnosis recommends parses."""
    vm.break_(scenario)
    ask(slack, work, fix_settings, "diagnose")
    reply = _diagnosis(slack)
    assert f"most likely {section}" in reply.text, reply.text
    recommended = re.findall(r"`/nexy ([^`]+)`", str(reply.blocks))
    assert all(isinstance(parser.parse(w), Request) for w in recommended), recommended
    plan = bot_messages(slack)[-1]
    assert plan.text.startswith(":clipboard: Plan") and f"`{words}`" in str(plan.blocks)
    assert diff.format(stale=vm.stale_version) in str(plan.blocks) and "from this diagnosis" in str(plan.blocks)
    text = approve(slack, work, fix_settings, plan)
    assert "Fixed and verified" in text, text[-3000:]
    assert vm.service_active() and httpx.get(vm.health_urls[0]).status_code == 200
    assert azure.run_count[KEY] == 2
    if words != "restart":  # a restart can always be asked again; a fix finds nothing left to do
        assert "nothing to fix" in ask(slack, work, fix_settings, words).text


def test_api_key_fault_is_healed_from_the_diagnosis_in_two_run_commands(fix_settings, slack, work, vm, azure):
    """6 / 6.3: the finding's button opens the form; the plan uses the diagnosis's facts; one approval heals."""
    from sandbox.vm import new_gemini_key

    vm.break_("api-key-expired")
    ask(slack, work, fix_settings, "diagnose")
    reply = _diagnosis(slack)
    assert "most likely 6.3 / 6" in reply.text or "most likely 6 / 6.3" in reply.text, reply.text
    slack.block_action(user=OPERATOR, channel="C0OPS", message_ts=reply.ts, action_id="fix_plan", value="fix api-key")
    type_key(slack, new_gemini_key())
    work(fix_settings)
    plan = bot_messages(slack)[-1]
    assert plan.text.startswith(":clipboard: Plan") and "no second run-command" in str(plan.blocks)
    assert plan.thread_ts == reply.thread_ts
    text = approve(slack, work, fix_settings, plan)
    assert "Fixed and verified" in text, text[-3000:]
    assert azure.run_count[KEY] == 2 and vm.service_active()


def test_a_finding_button_plans_its_fix_without_a_second_run_command(fix_settings, slack, work, vm, azure):
    """Clicking another finding's button plans that fix from the diagnosis's facts (no run-command)."""
    vm.break_("stale-version")
    vm.break_("deps-mismatch")
    ask(slack, work, fix_settings, "diagnose")
    reply = _diagnosis(slack)
    assert "fix_plan" in str(reply.blocks)
    words = next(w for w in re.findall(r"'value': '([^']+)'", str(reply.blocks)) if w.startswith("fix "))
    slack.block_action(user=OPERATOR, channel="C0OPS", message_ts=reply.ts, action_id="fix_plan", value=words)
    work(fix_settings)
    plans = [m for m in bot_messages(slack) if m.text.startswith(":clipboard: Plan")]
    assert len(plans) == 2 and azure.run_count[KEY] == 1


@pytest.mark.parametrize("scenario, first, line", [
    ("execstart-root", "most likely 6.2 ExecStart Path Drift", "can't open file '/home/azureuser/voice-assistant/main.py'"),
    ("textprocessor-init", "most likely 6.3 TextProcessor Init Failure", "ChatGoogleGenerativeAIError"),
    ("api-key-runtime", "most likely 6 Gemini API Key Expired", "API_KEY_INVALID"),
])
def test_the_runbook_variants_are_diagnosed_with_their_own_line(fix_settings, slack, work, vm, scenario, first, line):
    """The 6.2 root-path variant, 6.3 alone (LangChain's error) and 6 alone (the key expiring while the service
    runs) each come first, quoting their own journal line, with a button for their fix."""
    vm.break_(scenario)
    ask(slack, work, fix_settings, "diagnose")
    reply = _diagnosis(slack)
    assert first in reply.text, reply.text
    assert line in str(reply.blocks)
