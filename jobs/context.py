"""What a runbook item's job sees: who asked for what, in which thread, and how to run a script
on the VM and post the report. Items receive one `Context` and return a short status."""

from __future__ import annotations

from typing import Any

from bot import render
from bot.contract import WorkItem
from bot.incidents import EventKind
from bot.item import ScriptFile, patterns_parameter
from bot.settings import Settings
from bot.wording import incident as incident_wording
from bot.wording import vm as vm_wording
from clients.runcommand import RunResult, Script
from jobs.engine import run_on_vm
from jobs.runtime import Runtime
from jobs.thread import Thread

OUTPUT_INLINE_CHARS = 2800
"""How much of a script's output a message shows inline; the whole of a longer one goes up as a file."""


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


def output_excerpt(output: str) -> str:
    """The end of an output as a code block, saying when the whole is attached as a file."""
    if len(output) <= OUTPUT_INLINE_CHARS:
        return render.code(output)
    return render.code(render.tail(output, OUTPUT_INLINE_CHARS)) + "\n_The whole output is attached below._"
