"""Commands named in messages: `command("status")` gives `` `/nexy status` `` and records the
words, so the registry refuses to start if a message recommends a command the parser refuses."""

from __future__ import annotations

import sys

REFERENCED: dict[str, str] = {}
"""Every command words named through `command()`, with the module that names them."""


def command(words: str) -> str:
    """`/nexy <words>` in backticks, recorded for the start-up check (call it at module level)."""
    REFERENCED.setdefault(words, sys._getframe(1).f_globals.get("__name__", "?"))
    return f"`/nexy {words}`"
