"""The bot's help: `/nexy runbook` and `/nexy help`, answered at once by the web process from the
registry it was given (`handlers.intake`); declared here as every other command is, so the parser,
help and the README's tables take them from the registry like the rest."""

from __future__ import annotations

from bot.context import Context
from bot.item import Arg, Route, Scope, check

ANSWERED_INLINE = "answered by the web process itself, never queued"


@check("runbook", route=Route.INLINE, scope=Scope.NONE)
def runbook(ctx: Context) -> str:
    """runbook: each runbook section: its symptoms, the commands for it and where they run"""
    raise NotImplementedError(ANSWERED_INLINE)


@check(
    "help",
    route=Route.INLINE,
    args=(Arg("command", "", "a command name", optional=True, text=True, max_chars=40),),
    scope=Scope.NONE,
)
def help_(ctx: Context) -> str:
    """the command list, or one command's usage"""
    raise NotImplementedError(ANSWERED_INLINE)
