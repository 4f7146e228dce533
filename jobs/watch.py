"""The watch: it notices a failing VM by itself, opens the incident, diagnoses it and posts the plan,
so that a person only approves.

`nexy watch` (its own process, started by `nexy worker` when NEXY_WATCH_CHANNEL is set) calls
`Watch.tick()` every NEXY_WATCH_INTERVAL_S. A tick probes each VM's health endpoints from here, the
io side (never a run-command), and keeps each VM's state in Redis, so a restarted watch goes on
where it was and `/nexy watch` reads it from any process. Rules:

- NEXY_WATCH_FAILURES failures in a row, or endpoints that answer with another version than the
  expected one (NEXY_EXPECTED_VERSION), open an incident in NEXY_WATCH_CHANNEL and queue ONE
  `diagnose` on the VM's queue; it posts the findings and the top fix's plan. The watch asks as the
  bot itself, so any approver may approve that plan (nobody is its requester but the bot).
- One open watch incident per VM: a failure while it is open goes to its timeline; failing again
  within NEXY_WATCH_FLAP_WINDOW_S of recovering is said once ("flapping"), then only recorded.
- No second diagnose by itself: more is a person's decision.
- Recovery without an apply is posted ("recovered by itself after N min") and the incident is left
  open for a person to close.
- `/nexy watch pause <duration>` stops the probes until then (planned maintenance); `resume`. The
  state in Redis, and the pause, are the kernel's (bot/watchstate.py).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from enum import Enum

from bot import metrics
from bot.contract import KEY_PREFIX, WATCH_SOURCE, WorkItem
from bot.errors import IncidentLimitError
from bot.incidents import EventKind, IncidentStatus
from bot.item import Route
from bot.watchstate import VMWatch, paused
from bot.wording import watch as wording
from clients.health import HealthReport, probe
from jobs.runtime import Runtime
from jobs.thread import Thread

log = logging.getLogger(__name__)

TICK_LOCK = f"{KEY_PREFIX}:watch:tick"
"""Held for most of an interval by the watch that ticks: a second watch process started by mistake skips."""


class Outcome(str, Enum):
    """What one tick found for one VM."""

    OK = "ok"
    FAILING = "failing"  # failing, not (yet) an incident, or already in the open one
    OPENED = "opened"  # an incident was opened and its diagnose queued
    FLAPPING = "flapping"  # failing again soon after recovering: said once
    RECOVERED = "recovered"  # healthy again while its incident is open
    PAUSED = "paused"


def problem_of(report: HealthReport) -> str:
    """What is wrong with a VM's health answer ('' when healthy): down endpoints, or the version."""
    down = [e for e in report.endpoints if not e.up]
    if down:
        return "; ".join(f"{e.url} {e.error or 'down'}" for e in down)
    if not report.agree:
        return "the endpoints report different versions: " + ", ".join(sorted(report.releases))
    if report.matches_expected is False:
        return f"version {', '.join(sorted(report.releases))} differs from the expected {report.expected}"
    return ""


def headline(report: HealthReport, problem: str) -> str:
    """The problem in a few words, for the incident's title."""
    down = sum(1 for e in report.endpoints if not e.up)
    return f"{down} of {len(report.endpoints)} health endpoints down" if down else problem


class Watch:
    """Ticks over every VM of the inventory with the worker's runtime."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.settings = runtime.settings
        self._requester = ""

    @property
    def channel(self) -> str:
        return self.settings.nexy_watch_channel or ""

    def requester(self) -> str:
        """Who asks for the watch's diagnose: the bot's own user (from auth.test, once)."""
        if not self._requester:
            self._requester = str(self.runtime.slack.client.auth_test()["user_id"])
        return self._requester

    def tick(self, now: float | None = None) -> dict[str, Outcome]:
        """Probe every VM once and act on what changed; returns each VM's outcome."""
        now = time.time() if now is None else now
        if paused(self.runtime.redis):
            return {name: Outcome.PAUSED for name in self.settings.vm_names}
        outcomes = {}
        for name in self.settings.vm_names:
            try:
                outcomes[name] = self._one(name, now)
            except Exception:  # one VM's trouble (Slack, Redis blip) must not stop the others' watch
                log.exception("the watch of %s failed this tick", name)
        return outcomes

    def _one(self, name: str, now: float) -> Outcome:
        runtime = self.runtime.for_vm(name)
        settings, store, redis = runtime.settings, runtime.store, runtime.redis
        state = VMWatch.load(redis, name)
        report = probe(settings.nexy_health_urls, settings.nexy_health_timeout_s, settings.nexy_expected_version)
        problem = problem_of(report)
        metrics.watch_probe(name, failed=bool(problem))
        state.last_probe_at = now
        incident = store.get(state.incident) if state.incident else None
        if incident is None or incident.status is not IncidentStatus.OPEN:
            state.incident, state.recovered_at, state.flapping_said = "", 0.0, False
            incident = None
        outcome = Outcome.OK
        if problem:
            if state.last_ok is not False:
                state.failing_since = now if incident is None else state.failing_since or now
            state.failures += 1
            state.problem = problem
            outcome = Outcome.FAILING
            if incident is not None and state.last_ok is not False:
                outcome = self._failing_again(runtime, state, incident.id, problem, now)
            elif incident is None and (state.failures >= self.settings.nexy_watch_failures or report.all_up):
                opened = self._open(runtime, state, problem, headline(report, problem))
                outcome = Outcome.OPENED if opened else Outcome.FAILING
            state.last_ok = False
        else:
            if incident is not None and state.last_ok is False:
                self._recovered(runtime, state, incident.id, now)
                outcome = Outcome.RECOVERED
            state.failures, state.problem, state.last_ok = 0, "", True
        state.save(redis)
        return outcome

    def _open(self, runtime: Runtime, state: VMWatch, problem: str, title: str) -> bool:
        """Open the VM's watch incident, say why, and queue its one diagnose on the VM. Past the channel's
        hourly limit of new incidents, the channel's open incident is the VM's watch incident; with none
        open, nothing is opened (the next tick tries again): whether it opened or found one."""
        requester = self.requester()
        several = len(self.settings.vm_names) > 1
        interval = self.settings.nexy_watch_interval_s
        try:
            incident = runtime.store.open_new(self.channel, requester, wording.title(state.vm, title, several))
            said = wording.opened(state.vm, problem, state.failures, interval)
        except IncidentLimitError as limit:
            current = runtime.store.current(self.channel)
            if current is None:
                log.warning(
                    "the watch found %s failing, but %s may open no incident before %.0f",
                    state.vm,
                    limit.channel,
                    limit.retry_at,
                )
                return False
            incident = current
            said = wording.opened_here(state.vm, problem, state.failures, interval, limit.limit)
        thread = Thread(runtime, incident.id)
        thread.post(said, kind=EventKind.NOTE, watch=Outcome.OPENED.value, vm=state.vm)
        item = WorkItem.new(
            "diagnose",
            (),
            user=requester,
            channel=self.channel,
            incident=incident.id,
            source=WATCH_SOURCE,
            vm=state.vm if several else "",
        )
        runtime.store.record(incident.id, EventKind.COMMAND, requester, command=item.words, source=WATCH_SOURCE)
        runtime.dispatcher.submit(item, Route.VM, fix=False)
        state.incident, state.recovered_at, state.flapping_said = incident.id, 0.0, False
        return True

    def _failing_again(self, runtime: Runtime, state: VMWatch, incident: str, problem: str, now: float) -> Outcome:
        """A failure while the VM's watch incident is open: its timeline; flapping is said once."""
        recently = state.recovered_at and now - state.recovered_at <= self.settings.nexy_watch_flap_window_s
        state.recovered_at = 0.0
        if recently and not state.flapping_said:
            state.flapping_said = True
            Thread(runtime, incident).post(wording.flapping(state.vm, problem), kind=EventKind.NOTE, watch="flapping")
            return Outcome.FLAPPING
        runtime.store.record(incident, EventKind.NOTE, None, watch=Outcome.FAILING.value, vm=state.vm, problem=problem)
        return Outcome.FAILING

    def _recovered(self, runtime: Runtime, state: VMWatch, incident: str, now: float) -> None:
        """Healthy again: said in the thread when no fix was applied (a fix's verify already said so)."""
        state.recovered_at = now
        applied = any(e.kind is EventKind.APPLY for e in runtime.store.timeline(incident))
        if applied or state.flapping_said:  # a fix's verify said so already; a flapping VM is not told each time
            runtime.store.record(incident, EventKind.NOTE, None, watch="healthy", vm=state.vm)
            return
        text = wording.recovered_by_itself(state.vm, max(0.0, now - state.failing_since))
        Thread(runtime, incident).post(text, kind=EventKind.NOTE, watch="recovered", vm=state.vm)

    def run(self, stop: threading.Event) -> None:
        """Tick every interval until `stop` is set; of several watch processes only one ticks at a time."""
        interval = self.settings.nexy_watch_interval_s
        while not stop.is_set():
            started = time.monotonic()
            if self.runtime.redis.set(TICK_LOCK, os.getpid(), nx=True, px=max(1, int(interval * 900))):
                self.tick()
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
