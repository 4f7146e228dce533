"""The App Home tab: app_home_opened (a signed event) makes a worker publish a valid Home view with the open
incidents, what runs on the VM and what waits, and the last incidents with their links."""
from __future__ import annotations

import json

from bot.contract import IO_QUEUE


def test_home_tab_shows_incidents_and_the_vm_queue(serve_bot, vm_settings, slack, work):
    """Opening the Home tab publishes a view the Slack emulator accepts as Block Kit, with an open incident, a
    resolved one with its root cause and link, and the commands waiting for the VM."""
    settings = vm_settings(nexy_operators="U0ALICE", nexy_approvers="U0BOB")
    serve_bot(settings)
    slack.slash_command("health", channel="C0DEPLOYS")
    slack.slash_command("incident close the load balancer dropped 8081", channel="C0DEPLOYS")
    slack.slash_command("status", channel="C0OPS")
    slack.slash_command("preflight", channel="C0OPS")
    work(settings, [IO_QUEUE])
    assert slack.home_views == {}

    response = slack.app_home_opened(user="U0BOB", event_id="Ev0HOME1")
    assert response.status_code == 200 and slack.calls_to("views.publish") == []  # the web process posts nothing
    slack.event(slack.last_sent["event"], event_id="Ev0HOME1", retry_num=1)
    work(settings, [IO_QUEUE])
    assert len(slack.calls_to("views.publish")) == 1
    view = slack.home_views["U0BOB"]
    text = json.dumps(view["blocks"])
    assert view["type"] == "home" and view["blocks"][0]["type"] == "header"
    assert "*Open incidents* (1)" in text and "INC-2" in text
    assert "resolved" in text and "the load balancer dropped 8081" in text
    assert "https://sandbox.slack.com/archives/C0DEPLOYS/p" in text
    assert "1. `status` (INC-2, <@U0ALICE>)" in text and "2. `preflight` (INC-2, <@U0ALICE>)" in text
    assert "nothing running" in text


def test_messages_tab_publishes_nothing(bot, slack, work):
    """Opening the Messages tab of the App Home is acknowledged and publishes no view."""
    assert slack.app_home_opened(user="U0BOB", tab="messages").status_code == 200
    work()
    assert slack.calls_to("views.publish") == []
