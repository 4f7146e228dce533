"""Posting into an incident's thread: the parent message once, then every result beneath it.

Everything posted is also appended to the incident's audit log (redacted). Output longer than a
message can show goes up as a file in the thread (`files_upload_v2`), with an excerpt inline.
"""

from __future__ import annotations

from bot.incidents import Incident
from bot.wording import incident as incident_wording
from jobs.runtime import Runtime


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
            self.incident = store.set_thread(self.incident, ts)
            store.record(self.incident.id, "thread", None, ts=ts)
        return ts

    def post(self, text: str, blocks: list | None = None, *, kind: str = "post", user: str | None = None) -> str:
        """Post in the thread and record it in the audit log; returns the message ts."""
        ts = self.runtime.slack.post(self.channel, text, blocks, thread_ts=self.ensure())
        self.runtime.store.record(self.incident.id, kind, user, text=text, ts=ts)
        return ts

    def update(self, ts: str, text: str, blocks: list | None = None) -> None:
        self.runtime.slack.update(self.channel, ts, text, blocks)

    def attach(self, content: str, filename: str, comment: str) -> None:
        """Upload a whole output as a file in the thread (redacted), and record that it was."""
        self.runtime.slack.upload(self.channel, self.ensure(), content, filename, comment)
        self.runtime.store.record(self.incident.id, "file", None, filename=filename, chars=len(content))
