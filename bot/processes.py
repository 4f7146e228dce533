"""Child processes of `nexy run` and `nexy worker`: started together, stopped together.

Every child gets SIGTERM if its parent dies (PR_SET_PDEATHSIG), and `stop()` terminates, then
kills, whatever is left, so Ctrl-C never leaves an orphaned worker or redis-server behind.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

from bot.embedded_redis import _die_with_parent

STOP_GRACE_S = 8.0
"""How long children get to finish after SIGTERM before they are killed."""


@dataclass
class Children:
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    commands: dict[str, tuple[list[str], dict]] = field(default_factory=dict)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        full_env = {**os.environ, **(env or {})}
        self.commands[name] = (args, full_env)
        process = subprocess.Popen(args, env=full_env, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        self.processes[name] = process
        return process

    def nexy(self, name: str, *words: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start `nexy <words>` as a child, with the same interpreter."""
        return self.start(name, [sys.executable, "-m", "bot.cli", *words], env)

    def exited(self) -> list[str]:
        return [name for name, p in self.processes.items() if p.poll() is not None]

    def restart(self, name: str) -> None:
        args, env = self.commands[name]
        self.processes[name] = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)

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
