"""What a runbook item's job sees: who asked for what, in which thread, and how to run a script
on the VM and post the report. Items receive one `Context` and return a short status; they know it
as the kernel's Protocol (bot/context.py), which this class implements (mypy checks it below)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from redis import Redis
from rq.job import Job

from bot import context as item_context
from bot import pending, render
from bot.context import OUTPUT_INLINE_CHARS, RunResult
from bot.contract import WorkItem
from bot.incidents import EventKind, Incident, IncidentStore
from bot.item import ScriptFile, patterns_parameter
from bot.plans import Plan, PlanStore
from bot.settings import Settings
from bot.wording import incident as incident_wording
from bot.wording import vm as vm_wording
from clients.runcommand import Script
from jobs.engine import run_on_vm
from jobs.runtime import Runtime
from jobs.thread import Thread, permalink

if TYPE_CHECKING:
    from bot.registry import Registry


def vm_parameters(settings: Settings) -> tuple[tuple[str, str], ...]:
    """The validated settings every VM script receives (never user text)."""
    return (
        ("NEXY_APP_DIR", settings.nexy_app_dir),
        ("NEXY_SERVICE", settings.nexy_service),
        ("NEXY_SERVICE_USER", settings.nexy_service_user),
        ("NEXY_JOURNAL_LINES", str(settings.nexy_journal_lines)),
    )


def verify_parameters(settings: Settings, patterns: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """What an apply script's verify needs: the health URLs, how long to wait (and how often to look), the
    symptoms that must be gone."""
    return (
        ("NEXY_VERIFY_URLS", ",".join(settings.nexy_vm_health_urls)),
        ("NEXY_VERIFY_WAIT_S", str(settings.nexy_verify_wait_s)),
        ("NEXY_VERIFY_POLL_S", f"{settings.nexy_verify_poll_s:g}"),
        ("NEXY_VERIFY_SETTLE_S", f"{settings.nexy_verify_settle_s:g}"),
        ("NEXY_SYMPTOMS", patterns_parameter(patterns)),
    )


class Context:
    """One request being run by a worker."""

    def __init__(self, runtime: Runtime, item: WorkItem, thread: Thread | None = None, *, runs: dict | None = None):
        self.runtime = runtime
        self.item = item
        self._thread = thread
        # A run that answers several requests (a check others joined): each script runs once on the
        # VM; the others' contexts get the same result (or the same error).
        self.runs = runs

    @property
    def thread(self) -> Thread:
        """The incident's thread (looked up when first used: `history` has no incident)."""
        if self._thread is None:
            self._thread = Thread(self.runtime, self.item.incident)
        return self._thread

    def record(self, kind: EventKind, **details: Any) -> None:
        """Append an event to the incident's timeline, as the person who asked."""
        self.runtime.store.record(self.item.incident, kind, self.item.user, **details)

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def registry(self) -> Registry:
        return self.runtime.registry

    @property
    def incidents(self) -> IncidentStore:
        return self.runtime.store

    @property
    def plans(self) -> PlanStore:
        return self.runtime.plans

    @property
    def redis(self) -> Redis:
        return self.runtime.redis

    def run(
        self,
        file: ScriptFile,
        *extra: tuple[str, str],
        secrets: tuple[tuple[str, str], ...] = (),
        includes: tuple[ScriptFile, ...] = (),
    ) -> RunResult:
        """Run one of the item's scripts on the VM (under the VM's lease), with the common parameters;
        `secrets` reach the script as parameters that are never in its text."""
        script = Script.of(file, (*vm_parameters(self.settings), *extra), secrets, includes)
        return run_on_vm(self.runtime, self.thread, self.item, script, shared=self.runs)

    def post(
        self, message: tuple[str, list[dict]], *, kind: str, duration_s: float | None = None, output: str = ""
    ) -> str | None:
        """Post a report in the thread with who asked (and the run-command's time); an `output` longer
        than a message shows inline is attached whole as a file. Its ts, or None while it waits in the
        incident's outbox."""
        text, blocks = message
        footer = (
            vm_wording.ran_on_vm(self.item.user, self.item.words, duration_s)
            if duration_s is not None
            else incident_wording.requested_by(self.item.user, self.item.words)
        )
        ts = self.thread.post(
            text,
            [*blocks, render.context(footer)],
            kind=EventKind.CHECK,
            user=self.item.user,
            report=kind,
            command=self.item.words,
            job=self.item.id,
        )
        if len(output) > OUTPUT_INLINE_CHARS:
            self.thread.attach(
                output,
                f"{self.item.command}-output.txt",
                f"The whole output of `{self.item.words}` ({len(output):,} characters).",
            )
        return ts

    def incomplete(self, result: RunResult, kind: str) -> str:
        """A script that failed or never reported: say so with its output; returns the job's status."""
        self.post(vm_wording.script_incomplete(result), kind=kind, output=result.output)
        return "failed" if result.exit_code is not None else "incomplete"

    def tell(self, text: str, blocks: list | None = None, *, in_thread: bool = True) -> None:
        """Answer the person who asked, only to them (in the thread they asked from, unless not `in_thread`)."""
        thread_ts = self.item.thread_ts if in_thread else None
        self.runtime.slack.ephemeral(self.item.channel, self.item.user, text, blocks, thread_ts=thread_ts)

    def announce(self, channel: str, text: str) -> None:
        """Say something in a channel (not in a thread)."""
        self.runtime.slack.post(channel, text)

    def permalink(self, incident: Incident) -> str:
        """A link to an incident's thread ('' if Slack cannot give one)."""
        return permalink(self.runtime, incident)

    def plan_link(self, plan: Plan) -> str:
        """A link to a plan's message ('' if Slack cannot give one): asked of Slack once, kept on the plan."""
        return pending.plan_link(self.runtime.plans, self.runtime.slack, plan)

    def may_request_fix(self) -> bool:
        """Whether the person who asked may ask for a fix's plan (the policy, user groups resolved)."""
        return bool(self.runtime.policy.can_request_fix(self.item.user).allowed)

    def plan(self, words: str, facts: dict[str, str], *, source: str = "") -> str:
        """Post the plan of the fix `words` for facts already gathered, in this thread, as this request."""
        from jobs import lifecycle  # lifecycle imports this module: a loop inside the engine, not across a layer

        command, *args = words.split()
        item = replace(self.item, command=command, args=tuple(args))
        fix = self.registry.fix_for(command, tuple(args))
        return lifecycle.propose(Context(self.runtime, item, self.thread), fix, facts, source=source)

    def expire_by_close(self, plan_id: str) -> None:
        """A pending plan that expired because this incident was resolved: its message loses its buttons."""
        from jobs import lifecycle  # lifecycle imports this module: a loop inside the engine, not across a layer

        lifecycle.expired_by_close(self.runtime, self.thread, plan_id)

    def start_probe(self, name: str) -> Job:
        """Start a declared probe on the io queue (so it runs while a run-command does); read its job."""
        return self.runtime.dispatcher.probe(name)

    def remember_diagnosis(self, facts: dict[str, str]) -> None:
        """Keep a diagnosis's facts a few minutes, so a plan asked meanwhile needs no run-command."""
        self.runtime.diagnoses.remember(self.item.incident, facts, self.settings.nexy_diagnosis_reuse_s)


if TYPE_CHECKING:  # the items know this class as the kernel's Protocol: mypy checks here that it implements it
    _ITEMS_SEE: type[item_context.Context] = Context
