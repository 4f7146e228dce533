"""Posting into an incident's thread: the parent message once, then every result beneath it, all
through the incident's outbox (jobs/outbox.py), so a Slack fault delays what is said but never
loses it, doubles it, or changes what the job did.

What is posted is also appended to the incident's timeline as a typed event (redacted), with the
readable text of its blocks, so the record stays whole even where Slack's own history does not.
Output longer than a message can show goes up as a file in the thread (`files_upload_v2`).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError

from bot import render
from bot.contract import KEY_PREFIX, RESULT_TTL_S
from bot.incidents import EventKind, Incident
from bot.wording import incident as incident_wording
from jobs.outbox import Kind, Outbox
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

    def ensure(self) -> str | None:
        """The thread's ts, queueing the incident's parent message first if nobody has yet; None while
        the parent waits in the outbox (what is said meanwhile follows it there)."""
        if self.incident.thread_ts:
            return self.incident.thread_ts
        store = self.runtime.store
        fresh = store.get(self.incident.id)
        if fresh and fresh.thread_ts:
            self.incident = fresh
            return fresh.thread_ts
        # One parent per incident, however many jobs want the thread at once.
        if self.runtime.redis.set(
            f"{KEY_PREFIX}:incident:{self.incident.id}:parent-queued", 1, nx=True, ex=RESULT_TTL_S
        ):
            text, blocks = incident_wording.parent(self.incident)
            self._outbox.send(
                self.incident.id, self.channel, Kind.PARENT, text, blocks, ref=f"parent:{self.incident.id}"
            )
        fresh = store.get(self.incident.id)
        if fresh and fresh.thread_ts:
            self.incident = fresh
        return self.incident.thread_ts or None

    def post(
        self,
        text: str,
        blocks: list | None = None,
        *,
        kind: EventKind | None = EventKind.NOTE,
        user: str | None = None,
        ref: str = "",
        **details: Any,
    ) -> str | None:
        """Say something in the thread, through the incident's outbox (kept until Slack took it, in
        order), and append it to the timeline as `kind` (None: the caller recorded the event itself);
        the message's ts, or None while it waits. `ref` names the post for later edits."""
        self.ensure()
        ts = self._outbox.send(self.incident.id, self.channel, Kind.POST, text, blocks, ref=ref)
        if kind is not None:
            self.runtime.store.record(self.incident.id, kind, user, text=render.plain(blocks) or text, ts=ts, **details)
        return ts

    def update(self, target: str, text: str, blocks: list | None = None) -> None:
        """Edit a message of the thread (by its ts, or the ref it was posted under), through the outbox."""
        self._outbox.send(self.incident.id, self.channel, Kind.UPDATE, text, blocks, target=target)

    @property
    def _outbox(self) -> Outbox:
        return Outbox(self.runtime)

    def attach(self, content: str, filename: str, comment: str) -> None:
        """Upload a whole output as a file in the thread (redacted), and record that it was. Best effort:
        the report that goes with it (through the outbox) already shows the output's end."""
        thread_ts = self.ensure()
        if thread_ts is None:
            log.warning("%s not uploaded: the thread of %s is not posted yet", filename, self.incident.id)
            return
        try:
            self.runtime.slack.upload(self.channel, thread_ts, content, filename, comment)
        except (SlackApiError, OSError) as exc:
            log.warning("%s not uploaded to %s: %s", filename, self.incident.id, type(exc).__name__)
            return
        self.runtime.store.record(self.incident.id, EventKind.FILE, None, filename=filename, chars=len(content))

    def permalink(self) -> str:
        """A link to the thread (its parent message); '' if Slack cannot give one."""
        self.ensure()
        return permalink(self.runtime, self.incident)


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
