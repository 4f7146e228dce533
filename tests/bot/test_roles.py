"""The role-and-channel table: every registered command and every button the bot posts (every
`bot.contract.Action` id), by every role, from every kind of channel, through signed requests at the
bot. The expectations are derived from the declarations (each command's `role` and `reach`,
`bot.policy.ACTION_ROLES`), so a new command or button cannot skip the table; the sensitive ones'
declarations are asserted on their own, so a wrong declaration fails too.

Decisions are read where the bot makes them, at the ack: the answer to a slash command, and what it
queued (RQ's queues, the timeline, a form opened). No worker runs during the table.
"""
from __future__ import annotations

import json

import pytest
from redis import Redis
from rq import Queue
from slack_sdk import WebClient

from bot import render
from bot.contract import IO_QUEUE, Action, Task
from bot.incidents import EventKind, IncidentStore
from bot.item import Scope
from bot.policy import ACTION_ROLES, Reach, Role
from bot.registry import Command, Registry
from bot.wording import forms
from nexy.registry import build_registry

OWN, OTHER, OUTSIDE, DM = "C0OPS", "C0DEV", "C0ELSE", "D0DIRECT"
CHANNELS = (OWN, OTHER, OUTSIDE, DM)
ALLOWED = (OWN, OTHER)
USERS = {"non-member": "U0NOBODY", "member": "U0MEMBER", "operator": "U0OPS", "approver": "U0APP"}
"""A non-member is in no allowed channel: typing in one would make them a member (Slack delivers only
from channels one is in), so in an allowed channel they are expected to be treated as a member."""

SAMPLES = {
    "version": "2.4.0.240",
    "title": "the database is slow",
    "root cause": "the disk was full",
    "count": "3",
    "incident": "INC-1",
    "duration": "30m",
    "command": "health",
}
"""A valid value for each argument name: a new argument needs one here, or its command fails the table."""

KEY = "AIza" + "A" * 35


def _settings(make_settings, **more):
    # Every role asks the same check from every channel: no per-person waiting limit in the way (the
    # queue's own rules are tests/jobs/test_queue_fairness.py).
    return make_settings(nexy_channels=f"{OWN},{OTHER}", nexy_operators=USERS["operator"],
                         nexy_approvers=USERS["approver"], nexy_max_waiting_per_user=100, **more)


def _work_jobs(redis: Redis) -> list[str]:
    """Every queued job that is work (not an ephemeral notice), by its task."""
    names = [q.name for q in Queue.all(connection=redis)]
    return [job.func_name for name in names for job in Queue(name, connection=redis).get_jobs()
            if job.func_name != Task.NOTIFY]


def _asked(redis: Redis) -> tuple[list[str], int]:
    """The work queued so far and the read-only checks admitted to a VM (a check identical to one
    still waiting joins it: no job of its own, yet it is queued; bot/vmqueue.py)."""
    waiting = sum(redis.hlen(key) for key in redis.scan_iter(match="nexy:vm:*:waiting"))
    return _work_jobs(redis), waiting


def _notices(redis: Redis) -> list[str]:
    """The texts of the ephemeral notices queued so far (answers to mentions and clicks)."""
    jobs = Queue(IO_QUEUE, connection=redis).get_jobs()
    return [str(job.kwargs.get("text", "")) for job in jobs if job.func_name == Task.NOTIFY]


def _words(command: Command) -> list[str]:
    """The command with a sample for each of its arguments (optional ones too): one per fix target."""
    if command.subcommands:
        return [" ".join(["fix", target, *(SAMPLES[a.name] for a in args)]) for target, args in command.subcommands]
    return [" ".join([command.name, *(SAMPLES[a.name] for a in command.args)])]


def _role_allows(role: Role | None, who: str, *, requester: str = "") -> bool:
    if role is Role.OPERATOR:
        return who == "operator"
    if role is Role.APPROVER:
        return who == "approver" or who == requester
    return True


def _expected_command(command: Command, who: str, channel: str) -> bool:
    """From the declaration: an allowed channel, the role, and a named incident only from its own channel."""
    if channel not in ALLOWED or not _role_allows(command.role, who):
        return False
    named = command.scope is Scope.RECORDED and bool(command.args)
    return not (command.reach is Reach.OWN and named and channel != OWN)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One case per command of the registry the bot builds (`name`)."""
    if metafunc.definition.name == "test_every_command_by_every_role_from_every_channel":
        metafunc.parametrize("name", list(build_registry().commands))


def test_sensitive_declarations(registry):
    """The commands and buttons that change the VM, silence the watch, read across channels or close an
    incident are declared for operators (or approvers), whatever the table derives from them."""
    commands = registry.commands
    for name in ("watch pause", "watch resume", "history all", "incident close", "fix", "restart"):
        assert commands[name].role is Role.OPERATOR, name
    assert commands["history all"].reach is Reach.ACROSS
    assert commands["export"].reach is Reach.OWN and commands["incident"].reach is Reach.OWN
    assert commands["history"].reach is Reach.OWN and commands["watch"].role is Role.MEMBER
    assert ACTION_ROLES[Action.APPROVE] is Role.APPROVER and ACTION_ROLES[Action.REJECT] is Role.APPROVER
    assert ACTION_ROLES[Action.CHECKLIST] is Role.OPERATOR


def test_every_command_by_every_role_from_every_channel(name, make_settings, serve_bot, slack, redis, registry):
    """Each command, typed (`/nexy`) and mentioned (`@nexy`), by each role, from its own allowed channel,
    another allowed one, one outside NEXY_CHANNELS and a DM: refused (said to that person, nothing queued
    or recorded; a mention outside the channels is ignored) exactly where its declaration says."""
    serve_bot(_settings(make_settings))
    assert "INC-1" in slack.slash_command("incident new first", user=USERS["member"], channel=OWN).json()["text"]
    store = IncidentStore(redis)
    command = registry.commands[name]
    wrong = []
    for words in _words(command):
        for who, user in USERS.items():
            for channel in CHANNELS:
                before, events = _asked(redis), len(store.timeline("INC-1"))
                response = slack.slash_command(words, user=user, channel=channel)
                assert response.status_code == 200, (words, who, channel)
                text = response.json().get("text", "") if response.content.strip() else ""
                refused = text.startswith(":no_entry:")
                if refused and (_asked(redis) != before or len(store.timeline("INC-1")) != events):
                    wrong.append(f"{words!r} by {who} in {channel}: refused, yet something was queued or recorded")
                if refused == _expected_command(command, who, channel):
                    wrong.append(f"{words!r} by {who} in {channel}: {'refused' if refused else 'allowed'}: {text}")
                before, notices = _asked(redis), len(_notices(redis))
                assert slack.app_mention(f"<@{slack.bot_user_id}> {words}", user=user, channel=channel).status_code == 200
                said = _notices(redis)[notices:]
                queued = _asked(redis) != before
                refused = not queued and not any(not t.startswith(":no_entry:") for t in said)
                if refused == _expected_command(command, who, channel):
                    wrong.append(f"@nexy {words} by {who} in {channel}: {'refused' if refused else 'allowed'}: {said}")
    assert not wrong, "\n".join(wrong)


# -- the buttons and the form ---------------------------------------------------------------

MESSAGE_BOUND = {Action.APPROVE, Action.REJECT, Action.CHECKLIST, Action.OPEN_FORM}
"""Buttons on one message: a click that claims another channel than the message's is refused. The
others act in the channel they come from, as the command they carry would there."""
ACTION_COMMAND = {Action.PLAN_FIX: "fix", Action.OPEN_FORM: "fix", Action.SECRET_FORM: "fix"}
"""The command a button with no role of its own is checked as."""


def _expected_action(registry: Registry, action: str, who: str, channel: str) -> bool:
    if channel not in ALLOWED or (action in MESSAGE_BOUND and channel != OWN):
        return False
    role = ACTION_ROLES[action] or registry.commands[ACTION_COMMAND[action]].role
    return _role_allows(role, who, requester="operator" if action == Action.REJECT else "")


def _bot_message(slack, text: str, blocks: list[dict]) -> str:
    """A message with these blocks, posted as the bot posts (its token, the Web API): its ts."""
    client = WebClient(token=slack.bot_token, base_url=slack.api_url)
    return client.chat_postMessage(channel=OWN, text=text, blocks=blocks)["ts"]


@pytest.fixture
def plan_ts(serve_bot, vm_settings, slack, work, vm):
    """A pending `fix config-perms` plan in C0OPS, asked by the operator: its message's ts."""
    settings = _settings(vm_settings)
    serve_bot(settings)
    vm.break_("config-perms")
    slack.slash_command("fix config-perms", user=USERS["operator"], channel=OWN)
    work(settings)
    return next(m for m in slack.messages(OWN) if m.text.startswith(":clipboard: Plan")).ts


def _clicks(action: str, slack, redis, request) -> tuple[callable, callable]:
    """How to press `action` as a user from a channel, and how many decisions it queued so far."""
    def made() -> int:
        return len(_work_jobs(redis)) + len(slack.calls_to("views.open"))

    request.getfixturevalue("serve_bot")(_settings(request.getfixturevalue("make_settings")))
    if action == Action.CHECKLIST:
        operator = USERS["operator"]
        slack.slash_command("incident new first", user=operator, channel=OWN)
        slack.slash_command("incident close the disk was full", user=operator, channel=OWN)
        request.getfixturevalue("work")()
        message = next(m for m in slack.messages(OWN) if "Final checklist" in m.text)
        box = next(e for b in message.blocks if b.get("type") == "actions" for e in b["elements"])
        return (lambda user, channel: slack.checkboxes(user=user, channel=channel, message_ts=message.ts,
                                                       action_id=box["action_id"], selected=["root-cause"])), made
    if action == Action.PLAN_FIX:
        ts = _bot_message(slack, "finding", [render.actions(render.button("Plan", Action.PLAN_FIX, "fix config-perms"))])
        return (lambda user, channel: slack.block_action(user=user, channel=channel, message_ts=ts,
                                                         action_id=action, value="fix config-perms")), made
    if action == Action.OPEN_FORM:
        metadata = json.dumps({"words": "fix api-key", "channel": OWN, "thread_ts": ""})
        ts = _bot_message(slack, *forms.open_form_prompt("fix api-key", metadata))
        return (lambda user, channel: slack.block_action(user=user, channel=channel, message_ts=ts,
                                                         action_id=action, value=metadata)), made
    assert action == Action.SECRET_FORM

    def submit(user: str, channel: str):
        metadata = json.dumps({"words": "fix api-key", "channel": channel, "thread_ts": ""})
        values = {forms.SECRET_BLOCK: {forms.SECRET_ACTION: {"type": "plain_text_input", "value": KEY}}}
        return slack.view_submission(user=user, callback_id=Action.SECRET_FORM, values=values,
                                     private_metadata=metadata)

    return submit, made


ACTION_CASES = [a for a in (*Action.ALL, Action.SECRET_FORM) if a not in Action.DECISIONS]
"""Approve and Reject are pressed on one plan, as buttons and as reactions (the test after this one)."""


def test_every_action_id_has_a_case():
    """The tables below cover every action id the bot posts and its form (a new one must be added)."""
    assert {*ACTION_CASES, *Action.DECISIONS} == set(ACTION_ROLES) and MESSAGE_BOUND <= set(ACTION_ROLES)
    assert {a for a in ACTION_CASES if ACTION_ROLES[a] is None} == set(ACTION_COMMAND)


@pytest.mark.parametrize("action", ACTION_CASES)
def test_every_action_by_every_role_from_every_channel(action, slack, redis, request, registry):
    """Each button (and the key form), by each role, from the message's own channel, another allowed
    one, one outside NEXY_CHANNELS and a DM: it queues work (or opens its form) exactly where the
    declarations allow it, and nothing otherwise."""
    press, made = _clicks(action, slack, redis, request)
    wrong = []
    for who, user in USERS.items():
        for channel in CHANNELS:
            before = made()
            response = press(user, channel)
            assert response.status_code == 200, (action, who, channel, response.text)
            allowed = made() > before
            if allowed != _expected_action(registry, action, who, channel):
                wrong.append(f"{action} by {who} in {channel}: {'allowed' if allowed else 'refused'} {response.text}")
    assert not wrong, "\n".join(wrong)


def test_plan_decisions_by_every_role_from_every_channel(plan_ts, slack, redis, registry):
    """Approve and Reject on a plan, as buttons and as :white_check_mark: / :x: reactions, by each role
    from each channel: a decision is queued exactly where the declarations allow it (approvers; the
    requester only withdraws), and each refusal on the plan itself is recorded as ignored, with who."""
    plan = next(b for b in slack.find(plan_ts).blocks if b.get("type") == "actions")["elements"][0]["value"]
    presses = {
        "button": lambda action, user, channel: slack.block_action(
            user=user, channel=channel, message_ts=plan_ts, action_id=action, value=plan),
        "reaction": lambda action, user, channel: slack.reaction_added(
            "white_check_mark" if action == Action.APPROVE else "x", user=user, channel=channel, ts=plan_ts),
    }
    wrong, refused_here = [], []
    for how, press in presses.items():
        for action in Action.DECISIONS:
            for who, user in USERS.items():
                for channel in CHANNELS:
                    before = _work_jobs(redis).count(Task.DECIDE)
                    assert press(action, user, channel).status_code == 200
                    allowed = _work_jobs(redis).count(Task.DECIDE) > before
                    if allowed != _expected_action(registry, action, who, channel):
                        wrong.append(f"{action} ({how}) by {who} in {channel}: {'allowed' if allowed else 'refused'}")
                    if channel == OWN and not allowed:
                        refused_here.append(user)
    assert not wrong, "\n".join(wrong)
    ignored = [e.who for e in IncidentStore(redis).timeline("INC-1") if e.kind is EventKind.IGNORED]
    # A click on the plan from another channel is ignored too (not on the plan's own message).
    clicked_elsewhere = [u for u in USERS.values() for _ in Action.DECISIONS]
    assert sorted(ignored) == sorted(refused_here + clicked_elsewhere)
