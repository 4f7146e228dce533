"""Access policy: the one authorization model. Who may do what, from where, to which incident.

Every entry path asks `Policy.authorize` (through `for_command` or `for_action`): slash commands,
mentions, reactions, every button and checkbox, the key form, App Home, the watch's commands.
Each command declares its `Role` and `Reach` in its runbook declaration (`@check`, `@fix`); each
button's is declared here (`ACTION_ROLES`). The rules, in the order they are checked:

- the channel: only NEXY_CHANNELS (`*`: every channel and DM, set on purpose; empty: none, and a
  Slack-facing process refuses to start, see `channels_problem`);
- the role: `member` is anyone in an allowed channel; `operator` needs NEXY_OPERATORS; `approver`
  needs NEXY_APPROVERS, never the plan's requester unless NEXY_ALLOW_SELF_APPROVAL and the plan needs
  one approval only (the requester may still withdraw, i.e. reject, their own plan);
- the reach: a command about a named incident touches only an incident of the channel it was typed
  in; reading across channels (`history all`) is an operator's.

Requests from another workspace, or from a Slack Connect user of another organisation, are refused
before any of this (`outsider`). Entries are user ids or user-group handles; group members come from
a short Redis cache that workers fill from Slack (`usergroups.users.list`), so the web process
decides from Redis alone, and says "unknown" when a group is not cached yet (a worker then decides).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from redis import Redis

from bot.contract import Action
from bot.settings import ALL_CHANNELS, Settings

if TYPE_CHECKING:
    from bot.plans import Plan
    from bot.registry import Command

GROUP_CACHE_TTL_S = 300
"""How long a user group's members are trusted before Slack is asked again."""


class Role(str, Enum):
    """Who may run a command or press a button."""

    MEMBER = "member"  # anyone in an allowed channel
    OPERATOR = "operator"  # NEXY_OPERATORS
    APPROVER = "approver"  # NEXY_APPROVERS (a plan's requester only withdraws)


class Reach(str, Enum):
    """Which incidents a command may touch."""

    NONE = "none"  # no incident
    OWN = "own"  # only incidents of the channel it is typed in
    ACROSS = "across"  # reads every channel's incidents: operators only


ACTION_ROLES: dict[str, Role | None] = {
    Action.APPROVE: Role.APPROVER,
    Action.REJECT: Role.APPROVER,  # or the plan's requester, withdrawing it
    Action.PLAN_FIX: None,  # None: as the command the button asks for (a fix: an operator)
    Action.OPEN_FORM: None,
    Action.SECRET_FORM: None,
    Action.CHECKLIST: Role.OPERATOR,  # the final checklist is part of closing the incident
}
"""Who may press each button the bot posts (by `action_id`), and submit its form (`callback_id`)."""

ACTION_LABELS: dict[str, str] = {
    Action.APPROVE: "*Approve* button, :white_check_mark: reaction on a plan",
    Action.REJECT: "*Reject* button, :x: reaction on a plan",
    Action.PLAN_FIX: "a diagnosis finding's fix button",
    Action.OPEN_FORM: "the button that opens a fix's private form",
    Action.SECRET_FORM: "that form's submission (`fix api-key`)",
    Action.CHECKLIST: "the final checklist's boxes",
}
"""How the roles table (README) names each of them."""

if set(ACTION_ROLES) != {*Action.ALL, Action.SECRET_FORM} or set(ACTION_LABELS) != set(ACTION_ROLES):
    raise ValueError("every Action id needs its role and label in bot.policy.ACTION_ROLES and ACTION_LABELS")


@dataclass(frozen=True)
class Decision:
    """Allowed, refused, or unknown until a user group is resolved; why not, and who could do it instead."""

    allowed: bool | None
    reason: str = ""
    who: str = ""


def is_user_id(entry: str) -> bool:
    return entry[:1] in ("U", "W") and entry[1:].isalnum() and entry.upper() == entry


def describe(entries: tuple[str, ...]) -> str:
    """A readable list of principals: `<@U1>`, `@oncall`."""
    if not entries:
        return "nobody (the list is empty)"
    return ", ".join(f"<@{e}>" if is_user_id(e) else f"@{e.lstrip('@')}" for e in entries)


def channels_problem(settings: Settings) -> str | None:
    """Why a process that answers Slack must not start with these channels (fail closed), or None."""
    if settings.has_slack_credentials and not settings.nexy_channels:
        return (
            "NEXY_CHANNELS is empty: set the channel ids where nexy answers (C0123,C0456), "
            "or `*` to answer in every channel and DM on purpose"
        )
    return None


def outsider(home_team: str, team: str, user_team: str) -> str:
    """Why a request comes from outside the app's workspace ('' when it does not): another workspace's
    request, or a Slack Connect user of another organisation in a shared channel."""
    if not home_team:
        return ""
    if team and team != home_team:
        return "this request comes from another Slack workspace"
    if user_team and user_team != home_team:
        return "nexy answers only people of its own workspace (not Slack Connect guests)"
    return ""


class GroupCache:
    """User-group members by handle, cached in Redis for a few minutes."""

    def __init__(self, redis: Redis):
        self.redis = redis

    def get(self, handle: str) -> set[str] | None:
        raw = self.redis.get(f"nexy:usergroup:{handle.lstrip('@')}")
        return set(json.loads(raw)) if raw is not None else None

    def put(self, handle: str, members: list[str]) -> None:
        self.redis.set(f"nexy:usergroup:{handle.lstrip('@')}", json.dumps(sorted(members)), ex=GROUP_CACHE_TTL_S)


class Policy:
    """Decides from settings and the group cache; `resolve` (worker only) fills the cache from Slack."""

    def __init__(self, settings: Settings, groups: GroupCache, resolve: Callable[[str], list[str]] | None = None):
        self.settings = settings
        self.groups = groups
        self.resolve = resolve

    # -- the one check ---------------------------------------------------------------------

    def authorize(
        self,
        user: str,
        channel: str,
        role: Role,
        *,
        what: str,
        reach: Reach = Reach.NONE,
        incident: str = "",
        incident_channel: str = "",
        requester: str | None = None,
        approvals: int = 1,
    ) -> Decision:
        """May `user`, in `channel`, do `what` (which needs `role`), to `incident` (of `incident_channel`)?
        An approver's `approvals` is how many distinct approvers the plan needs."""
        if not self.channel_allowed(channel):
            return Decision(False, self.channels_reason())
        if reach is Reach.OWN and incident and incident_channel and incident_channel != channel:
            return Decision(False, f"{incident} belongs to <#{incident_channel}>: {what} works there only")
        if role is Role.MEMBER:
            return Decision(True)
        if role is Role.APPROVER:
            return self.can_approve(user, requester, approvals)
        return self._operator(user, f"only operators may {what}")

    def for_command(
        self, command: Command, user: str, channel: str, *, incident: str = "", incident_channel: str = ""
    ) -> Decision:
        """The check of a command, as its declaration says (role, reach)."""
        what = "request fixes" if command.changes_vm else _WHAT.get(command.name, f"run `/nexy {command.name}`")
        return self.authorize(
            user,
            channel,
            command.role,
            what=what,
            reach=command.reach,
            incident=incident,
            incident_channel=incident_channel,
        )

    def for_decision(self, plan: Plan, user: str, approve: bool) -> Decision:
        """The check of an approval or a rejection of a plan (a reaction or a button), from the plan's channel:
        the web side's and the worker's (user groups resolved) alike."""
        return self.for_action(
            Action.APPROVE if approve else Action.REJECT,
            user,
            plan.channel,
            requester=plan.requester,
            incident=plan.incident,
            incident_channel=plan.channel,
            approvals=plan.approvals_needed,
        )

    def for_action(
        self,
        action_id: str,
        user: str,
        channel: str,
        *,
        requester: str | None = None,
        incident: str = "",
        incident_channel: str = "",
        approvals: int = 1,
    ) -> Decision:
        """The check of a button with a role of its own (ACTION_ROLES); the others are checked as their command
        (`approvals`: how many distinct approvers the plan decided on needs)."""
        role = ACTION_ROLES[action_id]
        assert role is not None, f"{action_id} is checked as the command it asks for"
        if action_id == Action.REJECT and requester is not None and user == requester:
            role = Role.MEMBER  # the requester withdraws their own plan
        what = "tick the final checklist" if action_id == Action.CHECKLIST else "approve or reject a plan"
        return self.authorize(
            user,
            channel,
            role,
            what=what,
            reach=Reach.OWN,
            incident=incident,
            incident_channel=incident_channel,
            requester=requester,
            approvals=approvals,
        )

    def for_home(self, user: str) -> Decision:
        """May the App Home show `user` the incidents (titles, root causes, who ran what)? Operators and
        approvers only: the Home tab has no channel to check, and anyone in the workspace may open it."""
        operator = self._member(user, self.settings.nexy_operators)
        approver = self._member(user, self.settings.nexy_approvers)
        who = (
            f"operators {describe(self.settings.nexy_operators)} (NEXY_OPERATORS) and approvers "
            f"{describe(self.settings.nexy_approvers)} (NEXY_APPROVERS)"
        )
        if operator or approver:
            return Decision(True, who=who)
        if operator is None or approver is None:
            return Decision(None, who=who)
        return Decision(False, "incident details are shown to operators and approvers only", who)

    # -- the parts -------------------------------------------------------------------------

    def channel_allowed(self, channel: str) -> bool:
        """NEXY_CHANNELS holds it, or is `*` (every channel and DM); empty allows nothing (fail closed)."""
        channels = self.settings.nexy_channels
        return bool(channel) and (channels == (ALL_CHANNELS,) or channel in channels)

    def channels_reason(self) -> str:
        channels = ", ".join(f"<#{c}>" for c in self.settings.nexy_channels)
        return f"I answer only in {channels}" if channels else "I answer in no channel (NEXY_CHANNELS is empty)"

    def _member(self, user: str, entries: tuple[str, ...]) -> bool | None:
        unknown = False
        for entry in entries:
            if is_user_id(entry):
                if entry == user:
                    return True
                continue
            members = self.groups.get(entry)
            if members is None and self.resolve is not None:
                members = set(self.resolve(entry))
                self.groups.put(entry, sorted(members))
            if members is None:
                unknown = True
            elif user in members:
                return True
        return None if unknown else False

    def can_request_fix(self, user: str) -> Decision:
        return self._operator(user, "only operators may request fixes")

    def _operator(self, user: str, refusal: str) -> Decision:
        who = f"{describe(self.settings.nexy_operators)} (NEXY_OPERATORS)"
        member = self._member(user, self.settings.nexy_operators)
        if member is None:
            return Decision(None, who=who)
        if not member:
            return Decision(False, refusal, who)
        return Decision(True, who=who)

    def can_approve(self, user: str, requester: str | None, approvals: int = 1) -> Decision:
        """May `user` approve a plan `requester` asked for, which needs `approvals` distinct approvers?"""
        who = f"{describe(self.settings.nexy_approvers)} (NEXY_APPROVERS)"
        if user == requester and approvals > 1:
            return Decision(
                False,
                f"you asked for this fix, and its plan needs {approvals} approvals from other people "
                "(the requester never counts toward several)",
                who,
            )
        if user == requester and not self.settings.nexy_allow_self_approval:
            return Decision(
                False,
                "you asked for this fix, and a plan needs a second person's approval (NEXY_ALLOW_SELF_APPROVAL is off)",
                who,
            )
        member = self._member(user, self.settings.nexy_approvers)
        if member is None:
            return Decision(None, who=who)
        if not member:
            return Decision(False, "only approvers may approve or reject a plan", who)
        return Decision(True, who=who)


_WHAT = {
    "incident close": "close an incident",
    "history all": "read incidents across channels (`/nexy history all`)",
    "watch pause": "pause the watch",
    "watch resume": "resume the watch",
}
"""How a refusal names what an operator's command does (default: run `/nexy <command>`)."""
