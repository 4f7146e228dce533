"""Posting into an incident's thread: the parent message once, then every result beneath it.

What is posted is also appended to the incident's timeline as a typed event (redacted), with the
readable text of its blocks, so the record stays whole even where Slack's own history does not.
Output longer than a message can show goes up as a file in the thread (`files_upload_v2`).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError

from bot import render
from bot.incidents import EventKind, Incident
from bot.wording import incident as incident_wording
from jobs.runtime import Runtime

log = logging.getLogger(__name__)


class Thread:
    """One incident's thread, seen from a job."""

    def __init__(self, runtime: Runtime, incident_id: str):
        self.runtime = runtime
        incident = runtime.store.get(incident_id)
        if incident is None:
            raise LookupError(f"incident {incident_id} is not in the store")
        self.incident: Incident = incident

    @property
    def channel(self) -> str:
        return self.incident.channel

    def ensure(self) -> str:
        """The thread's ts, posting the incident's parent message first if nobody has yet."""
        if self.incident.thread_ts:
            return self.incident.thread_ts
        store = self.runtime.store
        with store.thread_lock(self.incident.id):
            fresh = store.get(self.incident.id)
            if fresh and fresh.thread_ts:
                self.incident = fresh
                return fresh.thread_ts
            text, blocks = incident_wording.parent(self.incident)
            ts = self.runtime.slack.post(self.channel, text, blocks)
            self.incident = store.set_thread(self.incident, ts, self._fetch_permalink(ts))
            store.record(self.incident.id, EventKind.THREAD, None, ts=ts, permalink=self.incident.permalink)
        return ts

    def post(
        self,
        text: str,
        blocks: list | None = None,
        *,
        kind: EventKind | None = EventKind.NOTE,
        user: str | None = None,
        **details: Any,
    ) -> str:
        """Post in the thread and append it to the timeline as `kind` (None: the caller recorded the
        event itself, before posting); returns the message ts."""
        ts = self.runtime.slack.post(self.channel, text, blocks, thread_ts=self.ensure())
        if kind is not None:
            self.runtime.store.record(self.incident.id, kind, user, text=render.plain(blocks) or text, ts=ts, **details)
        return ts

    def post_durable(self, text: str, blocks: list | None = None) -> str | None:
        """Post a result through the incident's outbox: kept in Redis until Slack confirmed it, retried
        with backoff meanwhile; its ts, or None while it waits for a retry."""
        from jobs.outbox import Outbox

        return Outbox(self.runtime.redis, self.runtime.slack).send(
            self.incident.id, self.channel, self.ensure(), text, blocks
        )

    def update(self, ts: str, text: str, blocks: list | None = None) -> None:
        self.runtime.slack.update(self.channel, ts, text, blocks)

    def attach(self, content: str, filename: str, comment: str) -> None:
        """Upload a whole output as a file in the thread (redacted), and record that it was."""
        self.runtime.slack.upload(self.channel, self.ensure(), content, filename, comment)
        self.runtime.store.record(self.incident.id, EventKind.FILE, None, filename=filename, chars=len(content))

    def permalink(self) -> str:
        """A link to the thread (its parent message); '' if Slack cannot give one."""
        return permalink(self.runtime, self.incident)

    def _fetch_permalink(self, ts: str) -> str:
        try:
            return self.runtime.slack.permalink(self.channel, ts)
        except SlackApiError as exc:
            log.warning("no permalink for %s: %s", self.incident.id, exc.response.get("error"))
            return ""


def permalink(runtime: Runtime, incident: Incident) -> str:
    """The incident's thread link: kept in the record once Slack gave it (`chat.getPermalink`)."""
    if incident.permalink or not incident.thread_ts:
        return incident.permalink
    try:
        link = runtime.slack.permalink(incident.channel, incident.thread_ts)
    except SlackApiError as exc:
        log.warning("no permalink for %s: %s", incident.id, exc.response.get("error"))
        return ""
    runtime.store.set_permalink(incident.id, link)
    return link
