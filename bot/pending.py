"""The plans waiting for a person, per VM: what `/nexy queue`, App Home and the reminder show."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

from bot.plans import Plan, PlanStore
from bot.policy import is_user_id
from bot.wording.pending import Pending

if TYPE_CHECKING:
    from bot.item import Fix
    from bot.settings import Settings
    from bot.slack_client import SlackClient

log = logging.getLogger(__name__)


def waiting_plans(
    plans: PlanStore,
    settings: Settings,
    fixes: Mapping[str, Fix],
    link: Callable[[Plan], str] | None,
    now: float,
) -> list[Pending]:
    """The VM's plans waiting for approvers (`settings` is that VM's), oldest first, each with its
    approvals so far and needed, and its link (`link(plan)`; the stored one when no `link` is given)."""
    found = []
    for plan in plans.pending(settings.vm_queue, fixes, now):
        if plan.fix not in fixes:  # a fix this registry no longer has
            continue
        shown = link(plan) if link is not None else plans.link(plan.id)
        found.append(Pending(plan, plan.approvals_needed, plan.approved_by, shown))
    return found


def plan_link(plans: PlanStore, slack: SlackClient, plan: Plan) -> str:
    """The plan message's permalink: kept on the plan once Slack gave it; '' if it cannot."""
    link = plans.link(plan.id)
    if link or not plan.message_ts:
        return link
    try:
        link = slack.permalink(plan.channel, plan.message_ts)
    except SlackApiError as exc:
        log.warning("no permalink for plan %s: %s", plan.id, exc.response.get("error"))
        return ""
    plans.remember_link(plan.id, link)
    return link


def approver_mentions(entries: tuple[str, ...], slack: SlackClient) -> str:
    """The approvers as Slack mentions: `<@U2>` for a person, `<!subteam^S1>` for a user group Slack knows
    (its handle otherwise)."""
    if not entries:
        return "No approver is configured (NEXY_APPROVERS)"
    mentions = []
    for entry in entries:
        if is_user_id(entry):
            mentions.append(f"<@{entry}>")
            continue
        try:
            group = slack.usergroup_id(entry)
        except SlackApiError:
            group = ""
        mentions.append(f"<!subteam^{group}>" if group else f"@{entry.lstrip('@')}")
    return "Approvers " + ", ".join(mentions)
