"""A job's status message is edited in place as it moves: queued with its position, running for N s,
done in N s or failed; and its timeline records queued, started and finished with the duration."""
from __future__ import annotations

from bot.contract import IO_QUEUE
from bot.incidents import EventKind, IncidentStore


def _status_messages(slack):
    return [m for m in slack.messages("C0OPS") if m.text.startswith((":hourglass_flowing_sand: `", ":arrow_forward:",
                                                                    ":white_check_mark: `", ":x: `"))
            and not m.ephemeral_to]


def test_waiting_jobs_are_edited_from_queued_to_done(vm_bot_settings, slack, work, redis):
    """Three commands at once: the two that wait get one message each with their position, edited to done once
    they ran; the timeline has queued, started and finished for each, in that order."""
    for words in ("status", "preflight", "deps"):  # three different checks: identical ones would be joined
        slack.slash_command(words)
    work(vm_bot_settings, [IO_QUEUE])
    queued = _status_messages(slack)
    assert [m.text.split("position ")[1][0] for m in queued] == ["2", "3"]
    work(vm_bot_settings)
    for message in queued:
        now = slack.find(message.ts)
        assert now.edits >= 2 and now.text.startswith(":white_check_mark: `") and " done in" in now.text
    assert len(_status_messages(slack)) == 2  # edited in place: no message per step
    kinds = [e.kind for e in IncidentStore(redis).timeline("INC-1")]
    for job_kind in (EventKind.JOB_QUEUED, EventKind.JOB_STARTED, EventKind.JOB_FINISHED):
        assert kinds.count(job_kind) == 3
    assert kinds.index(EventKind.JOB_QUEUED) < kinds.index(EventKind.JOB_STARTED) < kinds.index(EventKind.JOB_FINISHED)


def test_a_long_job_shows_running_for_then_done(serve_bot, vm_settings, slack, work, azure, redis):
    """A run-command that takes longer than NEXY_PROGRESS_EVERY_S gets a status message showing it running,
    edited to done when it ends; a quick job gets none."""
    settings = vm_settings(nexy_progress_every_s=0.2)
    serve_bot(settings)
    slack.slash_command("health")
    work(vm_settings(nexy_progress_every_s=5.0))  # quick, even on a loaded machine
    assert _status_messages(slack) == []
    azure.delay_s = 0.9
    updates = []
    slack.subscribe(lambda kind, m: updates.append(m.text) if kind in ("post", "update") else None)
    slack.slash_command("status")
    work(settings)
    running = [text for text in updates if text.startswith(":arrow_forward: `status` is running on the VM")]
    assert running
    (message,) = _status_messages(slack)
    assert message.text.startswith(":white_check_mark: `status` done in")
    finished = [e for e in IncidentStore(redis).timeline("INC-1") if e.kind is EventKind.JOB_FINISHED]
    assert finished[-1].get("status") == "active" and finished[-1].get("duration_s") >= 0.9
