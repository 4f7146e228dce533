"""Child processes of `nexy run` and `nexy worker`: started together, stopped in order.

Each child runs in its own session, so a Ctrl-C at the terminal reaches only the parent (before,
it reached every worker and the redis-server at once, and the workers died mid-command against a
dead Redis). The parent then stops the children in stages, one line each: first what takes
Slack's requests, then the workers (a running run-command is finished first, unless a second
Ctrl-C abandons it), and the caller stops Redis last. Every child also gets SIGTERM if its parent
dies (PR_SET_PDEATHSIG), so nothing is orphaned.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

STOP_GRACE_S = 8.0
"""How long children get to finish after SIGTERM before they are killed (`Children.stop`)."""

RQ_SECOND_SIGNAL_S = 1.1
"""RQ ignores a second stop signal that comes within a second of the first: wait this long."""

ABANDON_WAIT_S = 15.0
"""After the second Ctrl-C: how long a worker gets to record its abandoned job before it is killed."""

EARLY_EXIT_S = 10.0
"""A child that exits this soon after it started, three times in a row, is not restarted again."""


def die_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies, so no worker or redis-server is orphaned."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def announcer(role: str) -> Callable[[str], None]:
    """One line on stderr, prefixed with the process's role (`nexy worker: ...`)."""

    def say(line: str) -> None:
        with suppress(OSError):  # stderr is gone (a closed terminal): the stop goes on all the same
            print(f"nexy {role}: {line}", file=sys.stderr, flush=True)

    return say


@dataclass
class Children:
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    commands: dict[str, tuple[list[str], dict]] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    early_exits: dict[str, int] = field(default_factory=dict)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        full_env = {**os.environ, **(env or {})}
        self.commands[name] = (args, full_env)
        return self._spawn(name)

    def _spawn(self, name: str) -> subprocess.Popen:
        args, env = self.commands[name]
        process = subprocess.Popen(
            args, env=env, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent, start_new_session=True
        )
        self.processes[name] = process
        self.started[name] = time.monotonic()
        return process

    def nexy(self, name: str, *words: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start `nexy <words>` as a child, with the same interpreter."""
        return self.start(name, [sys.executable, "-m", "nexy.cli", *words], env)

    def exited(self) -> list[str]:
        return [name for name, p in self.processes.items() if p.poll() is not None]

    def restart(self, name: str) -> bool:
        """Start an exited child again; False (and not restarted) when it keeps exiting at start."""
        early = time.monotonic() - self.started.get(name, 0.0) < EARLY_EXIT_S
        self.early_exits[name] = self.early_exits.get(name, 0) + 1 if early else 0
        if self.early_exits[name] >= 3:
            return False
        self._spawn(name)
        return True

    def signal(self, names: list[str], sig: int) -> None:
        for name in names:
            process = self.processes.get(name)
            if process is not None and process.poll() is None:
                process.send_signal(sig)

    def all_exited(self, names: list[str]) -> bool:
        return all(self.processes[n].poll() is not None for n in names if n in self.processes)

    def kill(self, names: list[str]) -> None:
        """SIGKILL whatever of names is still running, and reap them."""
        for name in names:
            process = self.processes.pop(name, None)
            if process is None:
                continue
            if process.poll() is None:
                process.kill()
            process.wait(5)

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM every child, wait up to grace_s for them to finish, then kill what is left."""
        names = list(self.processes)
        self.signal(names, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while not self.all_exited(names) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.kill(names)


@dataclass
class Stage:
    """A step of an ordered stop: these children get SIGTERM together and up to grace_s to exit."""

    names: list[str]
    done: str | None  # the line said once they are gone (None: a child says it itself)
    grace_s: float = STOP_GRACE_S
    runs_commands: bool = False  # a VM worker is among them: a second Ctrl-C abandons its command


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Ctrl-C, a stop (systemd, kill), and a closed terminal: each starts the ordered stop."""


class Stopping:
    """While stopping, the stop signals no longer interrupt: they are counted (a second Ctrl-C)."""

    def __init__(self) -> None:
        self.again = 0
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._count)

    def _count(self, *_: object) -> None:
        self.again += 1


def stop_in_order(
    children: Children,
    stages: list[Stage],
    say: Callable[[str], None],
    running: Callable[[], str | None] | None = None,
) -> None:
    """Stop the children stage by stage, one line per step. `running` says which run-command runs
    on the VM now (or None); only then is its wait announced."""
    stopping = Stopping()
    for stage in stages:
        if not [n for n in stage.names if n in children.processes]:
            continue
        what = running() if (running and stage.runs_commands) else None
        if what:
            say(f"waiting for the running run-command {what} to finish; Ctrl-C again to abandon it")
        first, seen = time.monotonic(), stopping.again
        children.signal(stage.names, signal.SIGTERM)
        deadline = first + stage.grace_s
        abandoned = False
        while not children.all_exited(stage.names) and time.monotonic() < deadline:
            if stopping.again > seen and not abandoned:
                abandoned = True
                if stage.runs_commands:
                    time.sleep(max(0.0, first + RQ_SECOND_SIGNAL_S - time.monotonic()))
                    children.signal(stage.names, signal.SIGTERM)  # RQ's cold shutdown: the job fails now
                    if what:
                        say("abandoning it: the command goes on on the VM; its thread will say the state is unknown")
                deadline = min(deadline, time.monotonic() + ABANDON_WAIT_S)
            time.sleep(0.05)
        children.kill(stage.names)
        if stage.done:
            say(stage.done)


def supervise(
    children: Children,
    stages: list[Stage],
    say: Callable[[str], None],
    running: Callable[[], str | None] | None = None,
) -> int:
    """Wait until a stop signal, restarting a child that died; then stop the children in order."""
    requested: list[int] = []
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda number, _frame: requested.append(number))
    failed = False
    while not requested and not failed:
        for name in children.exited():
            if children.restart(name):
                say(f"{name} exited; restarted it")
            else:
                say(f"{name} keeps exiting as it starts; stopping (see the messages above)")
                failed = True
        time.sleep(0.2)
    stop_in_order(children, stages, say, running)
    return 1 if failed else 0
