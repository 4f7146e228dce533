"""The watch: a failing VM gets one incident, a diagnosis and a plan with no command typed; an approval
heals it; flapping is said once; recovery by itself is said and left open; a pause silences it."""
from __future__ import annotations

import pytest

from bot.contract import IO_QUEUE
from bot.incidents import EventKind
from jobs.watch import Outcome, Watch
from jobs.worker import build_runtime
from tests.helpers import APPROVER, KEY, OPERATOR, VM_NAME, bot_messages


@pytest.fixture
def watch_settings(serve_bot, vm_settings):
    settings = vm_settings(
        nexy_watch_channel="C0OPS", nexy_watch_failures=2, nexy_operators=OPERATOR, nexy_approvers=APPROVER
    )
    serve_bot(settings)
    return settings


@pytest.fixture
def watch(watch_settings, redis, registry):
    return Watch(build_runtime(watch_settings, redis, registry))


def _texts(slack) -> str:
    return "\n".join(f"{m.text}\n{m.blocks}" for m in bot_messages(slack))


def test_a_fault_gets_one_incident_a_diagnosis_and_a_plan_and_an_approval_heals(
    watch_settings, watch, slack, work, vm, azure, redis
):
    """No command typed: two failed probes open one incident, one diagnose posts the findings and the plan,
    a third failure opens nothing more; an approver's approval heals the VM in two run-commands in all."""
    assert watch.tick() == {VM_NAME: Outcome.OK}
    vm.break_("config-perms")
    assert watch.tick() == {VM_NAME: Outcome.FAILING}
    assert watch.runtime.store.open_incidents() == []
    assert watch.tick() == {VM_NAME: Outcome.OPENED}
    assert watch.tick() == {VM_NAME: Outcome.FAILING}
    work(watch_settings)
    incidents = watch.runtime.store.open_incidents()
    assert len(incidents) == 1 and incidents[0].opened_by == slack.bot_user_id
    text = _texts(slack)
    assert "The watch opened this incident" in text and "6.1" in text
    plan = next(m for m in bot_messages(slack) if m.text.startswith(":clipboard: Plan"))
    assert "fix config-perms" in plan.text
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(watch_settings)
    assert "Fixed and verified" in _texts(slack), _texts(slack)[-3000:]
    assert vm.service_active() and azure.run_count[KEY] == 2
    assert watch.tick() == {VM_NAME: Outcome.RECOVERED}
    assert "recovered by itself" not in _texts(slack)
    assert len(watch.runtime.store.open_incidents()) == 1  # left for a person to close


def test_flapping_is_said_once_and_recovery_by_itself_is_said_and_left_open(watch, slack, vm):
    """Fail, pass, fail, pass, fail: one incident, one "recovered by itself", one "flapping" note; the
    failures after it go to the timeline only."""
    vm.break_("service-down")
    assert [watch.tick()[VM_NAME] for _ in range(2)] == [Outcome.FAILING, Outcome.OPENED]
    vm.heal()
    vm.wait_healthy()
    assert watch.tick()[VM_NAME] is Outcome.RECOVERED
    assert f"`{VM_NAME}` *recovered by itself* after " in _texts(slack)
    outcomes = []
    for _ in range(2):
        vm.break_("service-down")
        outcomes.append(watch.tick()[VM_NAME])
        vm.heal()
        vm.wait_healthy()
        outcomes.append(watch.tick()[VM_NAME])
    assert outcomes == [Outcome.FLAPPING, Outcome.RECOVERED, Outcome.FAILING, Outcome.RECOVERED]
    text = _texts(slack)
    assert text.count("is *flapping*") == 1 and text.count("recovered by itself") == 1
    (incident,) = watch.runtime.store.open_incidents()
    notes = [e.get("watch") for e in watch.runtime.store.timeline(incident.id) if e.kind is EventKind.NOTE]
    assert notes.count("failing") == 1 and "flapping" in notes


def test_pause_silences_the_watch_and_is_recorded_in_its_incident(watch_settings, watch, slack, work, vm):
    """`/nexy watch pause 30m` stops the probes (recorded in the open watch incident's timeline), `/nexy
    watch` shows it, `/nexy watch resume` turns the watch on again."""
    vm.break_("service-down")
    assert [watch.tick()[VM_NAME] for _ in range(2)] == [Outcome.FAILING, Outcome.OPENED]
    assert "queued" in slack.slash_command("watch pause 30m").json()["text"]
    work(watch_settings, [IO_QUEUE])
    assert watch.tick() == {VM_NAME: Outcome.PAUSED}
    slack.slash_command("watch")
    work(watch_settings, [IO_QUEUE])
    shown = [m.text for m in slack.messages("C0OPS") if m.ephemeral_to and "The watch" in m.text][-1]
    assert "paused until" in shown and f"`{VM_NAME}`: :red_circle: failing" in shown and "open incident INC-" in shown
    slack.slash_command("watch resume")
    work(watch_settings, [IO_QUEUE])
    assert watch.tick()[VM_NAME] is Outcome.FAILING
    (incident,) = watch.runtime.store.open_incidents()
    notes = [(e.get("watch"), e.who) for e in watch.runtime.store.timeline(incident.id) if e.kind is EventKind.NOTE]
    assert ("paused", "U0ALICE") in notes and ("resumed", "U0ALICE") in notes
    assert "is not a valid duration" in slack.slash_command("watch pause soon").json()["text"]


def test_with_three_vms_the_watch_names_the_failing_vm_and_diagnoses_it_alone(
    serve_bot, vm_settings, three_vms, slack, work, azure, redis, registry
):
    """vm3 fails: its incident names it, its diagnose runs on vm3 only; vm1 and vm2 stay OK."""
    settings = vm_settings(nexy_vms_file=three_vms[1], nexy_watch_channel="C0OPS", nexy_watch_failures=2)
    serve_bot(settings)
    watch = Watch(build_runtime(settings, redis, registry))
    three_vms[0]["vm3"][2].break_("service-down")
    watch.tick()
    assert watch.tick() == {"vm1": Outcome.OK, "vm2": Outcome.OK, "vm3": Outcome.OPENED}
    (incident,) = watch.runtime.store.open_incidents()
    assert incident.title == "watch: `vm3` 2 of 2 health endpoints down"
    work(settings, [IO_QUEUE, *settings.vm_queues])
    assert {h["vm"] for h in azure.history} == {"Nexy3"}
    assert "`diagnose --vm vm3`" in _texts(slack)


def test_a_version_other_than_expected_opens_the_incident_at_once(watch, slack, vm):
    """Endpoints that answer with an older version than NEXY_EXPECTED_VERSION open the incident on the first probe."""
    vm.break_("stale-version")
    assert watch.tick() == {VM_NAME: Outcome.OPENED}
    (incident,) = watch.runtime.store.open_incidents()
    assert f"differs from the expected {vm.expected_version}" in incident.title
