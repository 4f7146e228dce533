"""End to end: `@nexy` mentions in threads, and Slack's retried deliveries of the same event."""
from __future__ import annotations

from rq import Queue

from bot.contract import vm_running_key
from handlers.delivery import Claim, Deliveries


def _parent(slack, channel="C0OPS"):
    return next(m for m in slack.messages(channel) if m.thread_ts is None and not m.ephemeral_to)


def test_mention_in_incident_thread_replies_there(bot, slack, work):
    """`@nexy health` inside an incident thread runs on that incident and replies in that thread."""
    slack.slash_command("health")
    work()
    parent = _parent(slack)
    slack.app_mention(f"<@{slack.bot_user_id}> health", user="U0BOB", channel="C0OPS", thread_ts=parent.ts)
    work()
    bot_replies = [m for m in slack.thread("C0OPS", parent.ts)[1:] if m.user == slack.bot_user_id]
    assert len(bot_replies) == 2
    assert all("all 2 endpoints up" in m.text for m in bot_replies)
    assert len([m for m in slack.messages("C0OPS") if m.thread_ts is None and not m.ephemeral_to]) == 1


def test_retried_event_is_not_run_twice(bot, slack, work, redis):
    """Slack's retry of an event (same event_id, X-Slack-Retry-Num) is acked but runs nothing again."""
    first = slack.app_mention(f"<@{slack.bot_user_id}> health", user="U0BOB", channel="C0OPS", event_id="Ev0RETRY1")
    assert first.status_code == 200
    for attempt in (1, 2, 3):
        again = slack.event(slack.last_sent["event"], event_id="Ev0RETRY1", retry_num=attempt)
        assert again.status_code == 200
    work()
    replies = [m for m in slack.messages("C0OPS") if m.user == slack.bot_user_id and m.thread_ts and m.thread_ts != m.ts]
    assert len(replies) == 1


def test_mention_with_unknown_command_answers_in_thread(bot, slack, work):
    """A mistyped mention gets an ephemeral help with a suggestion, in the thread."""
    slack.app_mention(f"<@{slack.bot_user_id}> helth", user="U0BOB", channel="C0OPS", thread_ts="1700000000.000100")
    work()
    notes = [m for m in slack.messages("C0OPS") if m.ephemeral_to == "U0BOB"]
    assert len(notes) == 1 and "Did you mean `health`?" in notes[0].text
    assert notes[0].thread_ts == "1700000000.000100"


def test_mention_in_unknown_thread_opens_incident_there(bot, slack, work):
    """A mention in a thread the bot does not know makes that thread the incident's record."""
    top = slack.messages("C0OPS")
    assert top == []
    slack.app_mention(f"<@{slack.bot_user_id}> health", user="U0BOB", channel="C0OPS", thread_ts="1700000000.000200")
    work()
    replies = [m for m in slack.messages("C0OPS") if m.thread_ts == "1700000000.000200" and m.user == slack.bot_user_id]
    assert len(replies) == 1 and "endpoints up" in replies[0].text


def test_event_is_not_acked_when_redis_is_down(serve_bot, make_settings, slack):
    """With Redis unreachable a mention gets HTTP 500, so Slack retries it later: nothing is lost silently."""
    serve_bot(make_settings(redis_url="redis://127.0.0.1:1/0"))
    response = slack.app_mention(f"<@{slack.bot_user_id}> health", user="U0BOB", channel="C0OPS")
    assert response.status_code == 500


def test_slash_command_says_when_nothing_could_be_queued(serve_bot, make_settings, slack):
    """With Redis unreachable a slash command answers that nothing was queued or run."""
    serve_bot(make_settings(redis_url="redis://127.0.0.1:1/0"))
    text = slack.slash_command("health").json()["text"]
    assert "could not queue" in text and "Nothing was run" in text


def _vm_jobs(settings, redis) -> int:
    return Queue(settings.vm_queue, connection=redis).count


def test_a_mention_whose_handling_failed_runs_on_slack_retry(bot, slack, settings, redis):
    """A mention whose handling fails after its event was claimed (the record of what runs on the VM is
    unreadable) gets a 500; Slack's retry, once the record reads again, queues the command, once."""
    running = vm_running_key(settings.azure_resource_group, settings.azure_vm_name)
    redis.set(running, "{cut short")
    text = f"<@{slack.bot_user_id}> preflight"
    assert slack.app_mention(text, user="U0BOB", channel="C0OPS", event_id="Ev0FAILED").status_code == 500
    assert _vm_jobs(settings, redis) == 0
    redis.delete(running)
    retries = [slack.event(slack.last_sent["event"], event_id="Ev0FAILED", retry_num=n).status_code for n in (1, 2)]
    assert retries == [200, 200]
    assert _vm_jobs(settings, redis) == 1


def test_a_retry_while_the_first_delivery_is_handled_runs_nothing(bot, slack, settings, redis):
    """A retry that comes while another process still handles the event (its claim held) is asked to come
    back (503) and queues nothing; once that handling failed and let go, the next retry runs it once."""
    other = Deliveries(redis)
    claim = other.claim("Ev0BUSY")
    assert isinstance(claim, str)
    text = f"<@{slack.bot_user_id}> preflight"
    assert slack.app_mention(text, user="U0BOB", channel="C0OPS", event_id="Ev0BUSY").status_code == 503
    assert _vm_jobs(settings, redis) == 0
    other.release("Ev0BUSY", claim)
    assert slack.event(slack.last_sent["event"], event_id="Ev0BUSY", retry_num=1).status_code == 200
    assert slack.event(slack.last_sent["event"], event_id="Ev0BUSY", retry_num=2).status_code == 200
    assert _vm_jobs(settings, redis) == 1
    assert other.claim("Ev0BUSY") is Claim.DELIVERED
