"""Child processes of `nexy run` and `nexy worker`: started together, stopped together.

Every child gets SIGTERM if its parent dies (PR_SET_PDEATHSIG), and `stop()` terminates, then
kills, whatever is left, so Ctrl-C never leaves an orphaned worker or redis-server behind.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

log = logging.getLogger("nexy")

STOP_GRACE_S = 8.0
"""How long children get to finish after SIGTERM before they are killed."""


def die_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies, so no worker or redis-server is orphaned."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Children:
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    commands: dict[str, tuple[list[str], dict]] = field(default_factory=dict)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        full_env = {**os.environ, **(env or {})}
        self.commands[name] = (args, full_env)
        process = subprocess.Popen(args, env=full_env, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        self.processes[name] = process
        return process

    def nexy(self, name: str, *words: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start `nexy <words>` as a child, with the same interpreter."""
        return self.start(name, [sys.executable, "-m", "bot.cli", *words], env)

    def exited(self) -> list[str]:
        return [name for name, p in self.processes.items() if p.poll() is not None]

    def restart(self, name: str) -> None:
        args, env = self.commands[name]
        self.processes[name] = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM every child, wait up to grace_s for them to finish, then kill what is left."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + grace_s
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.processes.clear()


def supervise(children: Children, grace_s: float | None = None) -> int:
    """Wait until SIGTERM/SIGINT, restarting a child that died; then stop all children, giving them
    grace_s to finish what they run."""
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    try:
        while not stopping:
            for name in children.exited():
                log.warning("%s exited; restarting it", name)
                children.restart(name)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        if grace_s:
            log.warning("stopping: a running run-command is finished first (Ctrl-C again to abandon it)")
            children.stop(grace_s)
        else:
            children.stop()
    return 0
