"""The sandbox console: interactive input never waits for the bot (so the queue can be seen), its own
commands are in its help, and an unknown command is said to be unknown."""
from __future__ import annotations

import io
import time

from sandbox.console import Console


def test_interactive_console_does_not_wait_so_the_queue_shows_what_waits(slack, work, vm_settings, serve_bot):
    """Three commands typed at once are all sent before any runs; `/nexy queue` then lists two waiting, in order."""
    settings = vm_settings()
    serve_bot(settings)
    out = io.StringIO()
    console = Console(slack, out=out, idle=lambda: False)  # the bot is never idle: a waiting console would hang
    started = time.monotonic()
    console.run(io.StringIO("/nexy status\n/nexy preflight\n/nexy queue\n"), interactive=True)
    assert time.monotonic() - started < 10
    assert out.getvalue().count("is queued") == 3
    work(settings)
    text = out.getvalue()
    assert "1. `status` (INC-1, @alice), waiting" in text and "2. `preflight` (INC-1, @alice), waiting" in text
    assert "Status (runbook 5)" in text and "Preflight (runbook 0.1)" in text  # then both ran


def test_help_lists_the_console_commands_and_unknown_ones_are_named(slack):
    """`/help` lists /as, /react, /click, /who, /scenario; `/frob` is called unknown; `/react` alone shows its usage."""
    out = io.StringIO()
    console = Console(slack, out=out)
    console.handle("/help")
    for usage in ("/as <user-id> [name]", "/react <n> [emoji]", "/click <n> <button>", "/who", "/scenario [name]",
                  "/channel <id>", "/quit"):
        assert usage in out.getvalue()
    console.handle("/frob now")
    assert "(unknown console command '/frob'; /help lists them, /nexy help lists the bot's)" in out.getvalue()
    console.handle("/react")
    assert "(usage: /react <n> [emoji])" in out.getvalue()
    console.handle("/who")
    assert "(you are alice <U0ALICE> in #C0OPS)" in out.getvalue()
