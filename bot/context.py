"""All a runbook item or a bot command sees: one `Context` (a Protocol; the engine's `jobs/context.py`
implements it), the incident's `Thread`, and what a script run told us (`RunResult`).

An item imports this module, the rest of the kernel and the clients, nothing of the engine: what it
does with the VM, Slack, the incident record and the fix lifecycle goes through the members below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from bot import render
from bot.incidents import EventKind

if TYPE_CHECKING:
    from redis import Redis
    from rq.job import Job

    from bot.contract import WorkItem
    from bot.incidents import Incident, IncidentStore
    from bot.item import ScriptFile
    from bot.plans import Plan, PlanStore
    from bot.registry import Registry
    from bot.settings import Settings

AZURE_OUTPUT_LIMIT = 4096
"""Azure Run Command keeps only the last 4,096 bytes of each of stdout and stderr."""

OUTPUT_INLINE_CHARS = 2800
"""How much of a script's output a message shows inline; the whole of a longer one goes up as a file."""


@dataclass(frozen=True)
class RunResult:
    """What a script run told us: exit code (None if its result line never came back), facts, output."""

    script: str
    exit_code: int | None
    facts: dict[str, str] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    cut: bool = False
    duration_s: float = 0.0

    @property
    def output(self) -> str:
        """stdout and stderr as one readable text, with a note when Azure cut the start."""
        parts = []
        if self.cut:
            parts.append(f"(only the last {AZURE_OUTPUT_LIMIT} bytes came back: the start was cut)")
        if self.stdout.strip():
            parts.append(self.stdout.rstrip())
        if self.stderr.strip():
            parts.append("[stderr]\n" + self.stderr.rstrip())
        return "\n".join(parts)


def output_excerpt(output: str) -> str:
    """The end of an output as a code block, saying when the whole is attached as a file."""
    if len(output) <= OUTPUT_INLINE_CHARS:
        return render.code(output)
    return render.code(render.tail(output, OUTPUT_INLINE_CHARS)) + "\n_The whole output is attached below._"


class Thread(Protocol):
    """One incident's thread: everything said there goes through the incident's outbox and its timeline."""

    incident: Incident

    def ensure(self) -> str | None:
        """The thread's ts, its parent message queued first if need be; None while the parent waits."""
        ...

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
        """Say something in the thread and record it in the timeline as `kind` (None: recorded already)."""
        ...

    def update(self, target: str, text: str, blocks: list | None = None) -> None:
        """Edit a message of the thread (by its ts, or the ref it was posted under)."""
        ...

    def attach(self, content: str, filename: str, comment: str) -> None:
        """Upload a whole text as a file in the thread (redacted), and record that it was."""
        ...

    def permalink(self) -> str:
        """A link to the thread; '' if Slack cannot give one."""
        ...


class Context(Protocol):
    """One request being run by a worker, as its item sees it."""

    @property
    def item(self) -> WorkItem:
        """Who asked for what, where (the request's words, validated arguments, incident, thread)."""
        ...

    @property
    def settings(self) -> Settings:
        """The settings of the VM the request runs for."""
        ...

    @property
    def registry(self) -> Registry:
        """Every declared command, fix and symptom."""
        ...

    @property
    def thread(self) -> Thread:
        """The incident's thread."""
        ...

    @property
    def incidents(self) -> IncidentStore:
        """The incident record: timelines, history, closing."""
        ...

    @property
    def plans(self) -> PlanStore:
        """The fixes' plans (what waits for the VM names them)."""
        ...

    @property
    def redis(self) -> Redis:
        """The bot's Redis, for the kernel's state helpers (the VM's queue, the watch's pause)."""
        ...

    def run(
        self,
        file: ScriptFile,
        *extra: tuple[str, str],
        secrets: tuple[tuple[str, str], ...] = (),
        includes: tuple[ScriptFile, ...] = (),
    ) -> RunResult:
        """Run one of the item's scripts on the VM (one at a time, under the VM's lease) with the common
        parameters and `extra`; `secrets` reach the script as parameters that are never in its text."""
        ...

    def post(
        self, message: tuple[str, list[dict]], *, kind: str, duration_s: float | None = None, output: str = ""
    ) -> str | None:
        """Post a report in the thread with who asked (and the run-command's time); a long `output` is
        attached whole as a file. Its ts, or None while it waits in the outbox."""
        ...

    def record(self, kind: EventKind, **details: Any) -> None:
        """Append an event to the incident's timeline, as the person who asked."""
        ...

    def incomplete(self, result: RunResult, kind: str) -> str:
        """A script that failed or never reported: say so with its output; returns the job's status."""
        ...

    def tell(self, text: str, blocks: list | None = None, *, in_thread: bool = True) -> None:
        """Answer the person who asked, only to them (in the thread they asked from, unless not `in_thread`)."""
        ...

    def announce(self, channel: str, text: str) -> None:
        """Say something in a channel (not in a thread)."""
        ...

    def permalink(self, incident: Incident) -> str:
        """A link to an incident's thread ('' if Slack cannot give one)."""
        ...

    def plan_link(self, plan: Plan) -> str:
        """A link to a plan's message ('' if Slack cannot give one)."""
        ...

    def may_request_fix(self) -> bool:
        """Whether the person who asked may ask for a fix's plan (the policy, user groups resolved)."""
        ...

    def plan(self, words: str, facts: dict[str, str], *, source: str = "") -> str:
        """Post the plan of the fix `words` (`fix config-perms`, `restart`) for facts already gathered, in
        this thread, as this request; the plan id, or what there was instead of a plan."""
        ...

    def expire_by_close(self, plan_id: str) -> None:
        """A pending plan that expired because this incident was resolved: its message loses its buttons."""
        ...

    def start_probe(self, name: str) -> Job:
        """Start a declared probe on the io queue (so it runs while a run-command does); read its job."""
        ...

    def remember_diagnosis(self, facts: dict[str, str]) -> None:
        """Keep a diagnosis's facts a few minutes, so a plan asked meanwhile needs no run-command."""
        ...
