"""Every runbook fix end to end: the fault on the simulated VM, the plan's diff, an approval, apply and
verify healing the VM, and a second plan finding nothing to do; through signed Slack requests, the
worker, the real Azure SDK and the Run Command emulator."""
from __future__ import annotations

import httpx
import pytest

from tests.helpers import KEY, OPERATOR, approve, ask, bot_messages, redis_dump, type_key


def test_deps_check_lists_the_mismatched_packages(fix_settings, slack, work, vm):
    """`/nexy deps` names each package that misses the requirements or the section 3 pins, and the fix."""
    vm.break_("deps-mismatch")
    reply = ask(slack, work, fix_settings, "deps")
    body = str(reply.blocks)
    assert "`protobuf` 4.25.8, wanted `>=6.31.1,<7`" in body and "`grpcio-status` 1.62.3" in body
    assert "`/nexy fix deps`" in body


def test_fix_deps_heals_and_a_second_plan_is_a_no_op(fix_settings, slack, work, vm, azure):
    """fix deps: the plan lists the package changes; approved, pip installs, the service serves again."""
    vm.break_("deps-mismatch")
    plan = ask(slack, work, fix_settings, "fix deps")
    body = str(plan.blocks)
    assert "- protobuf 4.25.8" in body and "+ protobuf >=6.31.1,<7" in body
    assert "pip install --upgrade -r server/requirements.txt" in body
    text = approve(slack, work, fix_settings, plan)
    assert "Fixed and verified" in text, text[-3000:]
    assert "+ protobuf==6.33.1" in text or "+ protobuf==6" in text
    assert vm.service_active() and httpx.get(vm.health_urls[0]).status_code == 200
    assert azure.run_count[KEY] == 2
    again = ask(slack, work, fix_settings, "fix deps")
    assert "nothing to fix" in again.text


def test_health_is_not_green_on_a_stale_version(fix_settings, slack, work, vm):
    """In the stale-version fault /nexy health says the version does not match the expected one."""
    vm.break_("stale-version")
    reply = ask(slack, work, fix_settings, "health")
    assert ":large_green_circle:" not in reply.text and "does not match" in reply.text
    assert vm.expected_version in reply.text


def test_version_check_names_every_place_and_the_fix(fix_settings, slack, work, vm):
    """`/nexy version` lists VERSION, the manifest and both endpoints against the expected version."""
    vm.break_("stale-version")
    reply = ask(slack, work, fix_settings, "version")
    body = str(reply.blocks)
    assert f":x: `VERSION`: `{vm.stale_version}`" in body and "manifest.json" in body
    assert f"`/nexy fix version {vm.expected_version}`" in body


def test_fix_version_heals_and_a_second_plan_is_a_no_op(fix_settings, slack, work, vm, azure):
    """fix version: the plan shows both files' change; approved, the script runs and both endpoints agree."""
    vm.break_("stale-version")
    plan = ask(slack, work, fix_settings, f"fix version {vm.expected_version}")
    body = str(plan.blocks)
    assert f"- VERSION {vm.stale_version}" in body and f"+ VERSION {vm.expected_version}" in body
    assert f"bash scripts/update_server_version.sh {vm.expected_version}" in body
    text = approve(slack, work, fix_settings, plan)
    assert "Fixed and verified" in text, text[-3000:]
    assert text.count(":white_check_mark: `curl ") == 2
    assert [b["latest_build"] for b in vm.health()] == [vm.build, vm.build]
    assert azure.run_count[KEY] == 2
    again = ask(slack, work, fix_settings, f"fix version {vm.expected_version}")
    assert "nothing to fix" in again.text


@pytest.mark.parametrize("bad", ["2.4", "2.4.0", "v2.4.0.240", "2.4.0.240;rm"])
def test_fix_version_refuses_a_bad_version_with_the_form(fix_settings, slack, bad):
    """A version not in the X.Y.Z.Build form is refused at once, saying the form; nothing is queued."""
    text = slack.slash_command(f"fix version {bad}", user=OPERATOR).json()["text"]
    assert "X.Y.Z.Build" in text and "queued" not in text


def test_fix_api_key_through_the_form_heals_and_the_key_is_nowhere(fix_settings, slack, work, vm, azure, redis,
                                                                  caplog):
    """fix api-key: a modal takes the key; smoke-tested, planned, approved, applied; the VM serves again,
    and the key is in no Slack message, no log line, no Redis value and no script text."""
    from sandbox.vm import new_gemini_key

    caplog.set_level("DEBUG")
    vm.break_("api-key-expired")
    old_key, new_key = vm.gemini_key, new_gemini_key()
    ack = slack.slash_command("fix api-key", user=OPERATOR)
    assert ack.status_code == 200 and not ack.content.strip()
    submitted = type_key(slack, new_key)
    assert submitted.status_code == 200 and not submitted.content.strip()
    work(fix_settings)
    plan = bot_messages(slack)[-1]
    body = str(plan.blocks)
    assert plan.text.startswith(":clipboard: Plan") and "passed a Gemini smoke test" in body
    assert "+ GEMINI_API_KEY in" in body and "the key typed in the form" in body
    text = approve(slack, work, fix_settings, plan)
    assert "Fixed and verified" in text, text[-3000:]
    assert "journal since the restart: clean" in text
    assert vm.gemini_key == new_key and vm.service_active() and httpx.get(vm.health_urls[0]).status_code == 200
    assert azure.run_count[KEY] == 2
    # a second request with the same key finds nothing to do
    slack.slash_command("fix api-key", user=OPERATOR)
    type_key(slack, new_key)
    work(fix_settings)
    assert "nothing to fix" in bot_messages(slack)[-1].text
    seen = [str(slack.calls), str([(m.text, m.blocks) for m in slack.messages()]), caplog.text, redis_dump(redis),
            str([entry["script"] for entry in azure.history])]
    for where in seen:
        assert new_key not in where and old_key not in where


def test_a_key_gemini_refuses_gets_no_plan_and_no_run_command(fix_settings, slack, work, vm, azure):
    """A key that fails the smoke test is refused before any run-command: nothing changes on the VM."""
    vm.break_("api-key-expired")
    expired = vm.gemini_key
    slack.slash_command("fix api-key", user=OPERATOR)
    type_key(slack, expired)
    work(fix_settings)
    reply = bot_messages(slack)[-1]
    assert "no plan" in reply.text and "Gemini refused the new key" in reply.text
    assert azure.run_count.get(KEY, 0) == 0 and vm.gemini_key == expired


def test_a_malformed_key_is_refused_in_the_form(fix_settings, slack, work, vm):
    """A value that is not a Google API key is refused in the form itself; nothing is queued."""
    slack.slash_command("fix api-key", user=OPERATOR)
    response = type_key(slack, "not-a-key")
    assert response.json()["response_action"] == "errors" and "AIza" in response.json()["errors"]["secret"]
    assert "not-a-key" not in response.text


def test_only_operators_get_the_form(fix_settings, slack):
    """Someone who may not ask for fixes is refused at once; no form opens."""
    slack.last_view = None
    reply = slack.slash_command("fix api-key", user="U0CAROL").json()["text"]
    assert "was not queued" in reply and slack.last_view is None
