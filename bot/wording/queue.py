"""The VM queue's answers to a person: a check that joined an identical waiting run, a check refused
because too many of theirs wait, and the position wording of a job that waits."""

from __future__ import annotations

import time
from collections.abc import Sequence

from bot import render
from bot.vmqueue import Waiting
from bot.wording.refs import command

QUEUE = command("queue")


def joined(words: str, incident: str, position: int | None, riders: int) -> str:
    """The ack of a check that rides on an identical run still waiting for the VM."""
    where = f" (position {position} for the VM now)" if position else ""
    return (
        f":link: `{render.escape(words)}` joined the identical request already waiting for the VM{where}: "
        f"one run-command answers {riders + 1} requests; the result goes to {incident or 'you'}'s thread."
    )


def refused(words: str, vm: str, limit: int, waiting: Sequence[Waiting], now: float | None = None) -> str:
    """The ack of a check refused because the person has `limit` requests waiting for the VM."""
    now = time.time() if now is None else now
    theirs = "; ".join(
        f"`{render.escape(w.words)}` ({w.incident or 'no incident'}, waiting {render.duration(now - w.since)})"
        for w in waiting
    )
    return (
        f":no_entry: `{render.escape(words)}` was not queued: you already have {len(waiting)} requests waiting "
        f"for the VM `{vm}` (at most {limit} a person): {theirs}. {QUEUE} shows the order; ask again once "
        "one of them has run."
    )
