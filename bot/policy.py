"""Access policy: who may run checks, request fixes, close incidents, and approve plans.

Everyone in the allowed channels (NEXY_CHANNELS, empty = all) may run checks. Fixes and closing
an incident need an operator (NEXY_OPERATORS); plans need an approver (NEXY_APPROVERS), never the requester unless
NEXY_ALLOW_SELF_APPROVAL. Entries are user ids or user-group handles; group members come from
a short Redis cache that workers fill from Slack (`usergroups.users.list`), so the web process
decides from Redis alone, and says "unknown" when a group is not cached yet.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis import Redis

from bot.settings import Settings

if TYPE_CHECKING:
    from runbook.registry import Command

GROUP_CACHE_TTL_S = 300
"""How long a user group's members are trusted before Slack is asked again."""


@dataclass(frozen=True)
class Decision:
    """Allowed, refused, or unknown until a user group is resolved; and who could do it instead."""

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

    def for_command(self, command: Command, user: str) -> Decision | None:
        """The operator check a command needs (None: anyone in the channels may run it)."""
        if command.changes_vm:
            return self.can_request_fix(user)
        if command.operator:
            return self.can_close(user)
        return None

    def can_request_fix(self, user: str) -> Decision:
        return self._operator(user, "only operators may request fixes")

    def can_close(self, user: str) -> Decision:
        """Closing an incident (the root cause, the final checklist) is an operator's call."""
        return self._operator(user, "only operators may close an incident")

    def _operator(self, user: str, refusal: str) -> Decision:
        who = describe(self.settings.nexy_operators)
        member = self._member(user, self.settings.nexy_operators)
        if member is None:
            return Decision(None, who=who)
        if not member:
            return Decision(False, refusal, who)
        return Decision(True, who=who)

    def can_approve(self, user: str, requester: str) -> Decision:
        who = describe(self.settings.nexy_approvers)
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
