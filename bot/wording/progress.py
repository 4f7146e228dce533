"""A job's status message in words: queued with its position, running for how long, done or failed.
The command's words may hold typed text (a title): they are escaped, so they ping no one."""

from __future__ import annotations

from bot import render


def queued(words: str, position: int, running: str | None, fix: bool = False) -> str:
    """Position `position` when queued: a fix waits only for the fixes ahead of it; a check may move
    back when a plan or apply is asked after it (they go first)."""
    ahead = f"`{running}` is running" if running else "a command is running"
    order = "plans and applies go ahead of waiting checks" if fix else "plans and applies asked later still go first"
    return (
        f":hourglass_flowing_sand: `{render.escape(words)}` waits for the VM: position {position} when queued "
        f"({ahead}; run-commands run one at a time; {order})."
    )


def running(words: str, elapsed_s: float, on_vm: bool) -> str:
    where = " on the VM" if on_vm else ""
    return f":arrow_forward: `{render.escape(words)}` is running{where}: {render.duration(elapsed_s)} so far."


def done(words: str, elapsed_s: float, waited_s: float) -> str:
    waited = f" (after waiting {render.duration(waited_s)})" if waited_s >= 1 else ""
    took = render.duration(elapsed_s)
    return f":white_check_mark: `{render.escape(words)}` done in {took}{waited}: its result is below."


def failed(words: str, elapsed_s: float) -> str:
    return f":x: `{render.escape(words)}` failed after {render.duration(elapsed_s)}: see below."
