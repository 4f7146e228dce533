"""The Slack Web API client: the only module that calls Slack.

Every text and block goes through redaction and `render.fit` before it leaves, so nothing
posted can carry a secret or be rejected for its size. 429s are retried as Slack asks
(`Retry-After`), through slack_sdk's own retry handler.
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from bot import render
from bot.redaction import redact, redact_json
from bot.settings import Settings

log = logging.getLogger(__name__)

RATE_LIMIT_RETRIES = 5
"""How many 429 answers one call waits out before it gives up."""
LOOKUP_PAGE_SIZE = 200
"""Messages asked for per page when the outbox looks a post up (Slack recommends at most 200; an app
distributed outside the Marketplace gets 15 whatever it asks)."""
LOOKUP_PAGES = 25
"""Pages the outbox's lookup reads at most: 5,000 messages since the entry was written, at 200 a page."""


def web_client(settings: Settings) -> WebClient:
    """A slack_sdk WebClient for the configured workspace (or the sandbox), retrying 429s."""
    return WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=15,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        ],
    )


OUTBOX_EVENT = "nexy_outbox"
"""The message metadata event type that carries an outbox entry's id: how a post that may have
landed is found again instead of posted twice."""


class SlackClient:
    """Posting, updating and uploading into channels and threads; redacted and clamped."""

    def __init__(self, client: WebClient):
        self.client = client
        # For the outbox: one 429 waited out here, then the outbox keeps the entry and honours
        # Retry-After itself (a job never sits in a rate-limit storm); no blind retry after a dropped
        # connection (the message may have been stored): the outbox looks it up by its metadata.
        self.once = WebClient(
            token=client.token,
            base_url=client.base_url,
            timeout=client.timeout,
            retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)],
        )

    def post_tagged(self, channel: str, text: str, blocks: list | None, thread_ts: str | None, tag: str) -> str:
        """Post once, with the outbox id in the message metadata; returns its ts."""
        text, blocks = render.fit(redact(text), redact_json(blocks))
        response = self.once.chat_postMessage(
            channel=channel,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            unfurl_links=False,
            metadata={"event_type": OUTBOX_EVENT, "event_payload": {"id": tag}},
        )
        return response["ts"]

    def find_tagged(self, channel: str, thread_ts: str | None, tag: str, since: float) -> str | None:
        """The ts of a message posted with this outbox id since `since` (in the thread, else at the
        channel's top level), if any. Slack answers a page at a time: the thread oldest first, the
        channel newest first, each from `since` on; the lookup follows Slack's cursor for at most
        LOOKUP_PAGES pages, then says so and gives up (the caller posts: a rare copy shown twice is
        better than a report lost)."""
        cursor = ""
        for _ in range(LOOKUP_PAGES):
            if thread_ts:
                page = self.once.conversations_replies(
                    channel=channel,
                    ts=thread_ts,
                    oldest=f"{since:.6f}",
                    include_all_metadata=True,
                    limit=LOOKUP_PAGE_SIZE,
                    cursor=cursor or None,
                )
            else:
                page = self.once.conversations_history(
                    channel=channel,
                    oldest=f"{since:.6f}",
                    include_all_metadata=True,
                    limit=LOOKUP_PAGE_SIZE,
                    cursor=cursor or None,
                )
            for message in page.get("messages") or []:
                meta = message.get("metadata") or {}
                if meta.get("event_type") == OUTBOX_EVENT and (meta.get("event_payload") or {}).get("id") == tag:
                    return str(message["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or ""
            if not cursor:
                return None
        log.warning("outbox entry %s not found in %d pages of %s: posted (may show twice)", tag, LOOKUP_PAGES, channel)
        return None

    def post(self, channel: str, text: str, blocks: list | None = None, thread_ts: str | None = None) -> str:
        """Post a message (in a thread when thread_ts is given); returns its ts."""
        text, blocks = render.fit(redact(text), redact_json(blocks))
        response = self.client.chat_postMessage(
            channel=channel, text=text, blocks=blocks, thread_ts=thread_ts, unfurl_links=False
        )
        return response["ts"]

    def update(self, channel: str, ts: str, text: str, blocks: list | None = None) -> None:
        """Edit a message (safe to repeat: the outbox retries it as it is)."""
        text, blocks = render.fit(redact(text), redact_json(blocks))
        self.once.chat_update(channel=channel, ts=ts, text=text, blocks=blocks or [])

    def ephemeral(
        self, channel: str, user: str, text: str, blocks: list | None = None, thread_ts: str | None = None
    ) -> None:
        text, blocks = render.fit(redact(text), redact_json(blocks))
        self.client.chat_postEphemeral(channel=channel, user=user, text=text, blocks=blocks, thread_ts=thread_ts)

    def upload(self, channel: str, thread_ts: str | None, content: str, filename: str, comment: str) -> None:
        """Attach long output as a file in the thread (files_upload_v2), redacted."""
        self.client.files_upload_v2(
            channel=channel,
            thread_ts=thread_ts,
            content=redact(content),
            filename=filename,
            title=filename,
            initial_comment=render.cut(redact(comment), render.MAX_SECTION_TEXT),
        )

    def permalink(self, channel: str, ts: str) -> str:
        """A message's permalink (`chat.getPermalink`; a reply's link opens its thread)."""
        return str(self.client.chat_getPermalink(channel=channel, message_ts=ts)["permalink"])

    def publish_home(self, user: str, blocks: list) -> None:
        """Publish a user's App Home tab (`views.publish`), redacted and clamped to a view's 100 blocks."""
        _, fitted = render.fit(" ", redact_json(blocks), max_blocks=render.MAX_VIEW_BLOCKS)
        self.client.views_publish(user_id=user, view={"type": "home", "blocks": fitted or []})

    def usergroup_id(self, handle: str) -> str:
        """The id of a user group given by its handle (`@oncall` or `oncall`), for a mention; '' if unknown."""
        handle = handle.lstrip("@")
        groups = self.client.usergroups_list()["usergroups"]
        return next((str(group["id"]) for group in groups if group.get("handle") == handle), "")

    def usergroup_members(self, handle: str) -> list[str]:
        """Members of a user group given by its handle (`@oncall` or `oncall`); [] if unknown."""
        handle = handle.lstrip("@")
        groups = self.client.usergroups_list(include_users=True)["usergroups"]
        for group in groups:
            if group.get("handle") == handle:
                return list(self.client.usergroups_users_list(usergroup=group["id"])["users"])
        return []
