"""The command grammar: one table of `/nexy` commands, a parser that never raises, and help.

Every command the bot knows is one `Command` entry in `COMMANDS`; the help text, the
suggestions for typos and the routing to a queue all come from that table.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from enum import Enum


class Route(str, Enum):
    """Where a command's work runs."""

    IO = "io"  # HTTP and GitHub probes: never wait behind a run-command
    VM = "vm"  # run-commands on the VM: one at a time
    VM_IF_REACHABLE = "vm-if-reachable"  # one run-command when scripts can reach the VM (its queue), else io
    INLINE = "inline"  # answered by the web process itself (help)


@dataclass(frozen=True)
class Arg:
    """One positional argument: its name, a validating pattern and what it means."""

    name: str
    pattern: str
    description: str
    choices: tuple[str, ...] = ()
    optional: bool = False

    def accepts(self, value: str) -> bool:
        if self.choices:
            return value in self.choices
        return re.fullmatch(self.pattern, value) is not None


@dataclass(frozen=True)
class Command:
    """One `/nexy` command: its name, one-line summary, route, runbook section and arguments."""

    name: str
    summary: str
    route: Route
    section: str = ""
    args: tuple[Arg, ...] = ()
    changes_vm: bool = False  # a fix: only operators may request it, and it runs only once approved

    @property
    def usage(self) -> str:
        parts = [f"/nexy {self.name}"]
        for arg in self.args:
            shown = "|".join(arg.choices) if arg.choices else arg.name
            parts.append(f"[{shown}]" if arg.optional else f"<{shown}>")
        return " ".join(parts)


@dataclass(frozen=True)
class Request:
    """A parsed, valid command: what the user asked for, with validated arguments only."""

    command: str
    args: tuple[str, ...] = ()

    @property
    def spec(self) -> Command:
        return COMMANDS[self.command]

    @property
    def words(self) -> str:
        return " ".join((self.command, *self.args))


@dataclass(frozen=True)
class ParseError:
    """Input that is not a valid command: what was wrong, and what to try instead."""

    problem: str
    usage: str = ""
    suggestion: str | None = None


COMMANDS: dict[str, Command] = {}

FIX_TARGETS = ("config-perms", "execstart")
"""What `/nexy fix` can fix; jobs/fixes.py holds one entry for each (a test keeps them equal)."""


def _register(*commands: Command) -> None:
    for command in commands:
        if command.name in COMMANDS:
            raise ValueError(f"duplicate command {command.name!r}")
        COMMANDS[command.name] = command


_register(
    Command("health", "8080 /health and 8081 /updates/health: status, version and build", Route.IO, "4"),
    Command("status", "service state, the journal lines that matter, and where the runbook branches", Route.VM, "5"),
    Command("preflight", "the four guardrails that must pass before any restart", Route.VM, "0.1"),
    Command("queue", "what runs on the VM now, since when, and what waits", Route.IO),
    Command("fix", "plan a runbook fix; it runs only after an approver reacts :white_check_mark: on the plan",
            Route.VM, "6", args=(Arg("target", r"[a-z-]+", "a fix", choices=FIX_TARGETS),), changes_vm=True),
    Command("restart", "plan a service restart (only if the 0.1 preflight passes); runs once approved",
            Route.VM, "5", changes_vm=True),
    Command("azure", "Azure access: credential, subscription, the VM's power and provisioning state, "
                     "run-command permission", Route.IO, "1"),
    Command("deploy", "the deploy workflow: triggers, the latest commit against its runs, "
                      "the AZURE_CREDENTIALS secret", Route.IO, "2"),
    Command("release", "release `Update` assets (Nexy.dmg, Nexy.pkg) against manifest.json as deployed on the VM: "
                       "url, version, build", Route.VM_IF_REACHABLE, "7-9"),
    Command(
        "help",
        "the command list, or one command's usage",
        Route.INLINE,
        args=(Arg("command", r"[a-z-]{1,32}", "a command name", optional=True),),
    ),
)

_MAX_INPUT = 500


def parse(text: object) -> Request | ParseError:
    """Parse the text after `/nexy` (or after `@nexy`); never raises, whatever the input."""
    try:
        return _parse(text if isinstance(text, str) else "")
    except Exception:  # pragma: no cover - a last guard: parsing must never fail the ack
        return ParseError("I could not read that command.", usage=help_usage())


def _parse(text: str) -> Request | ParseError:
    if len(text) > _MAX_INPUT:
        return ParseError(f"That is {len(text)} characters; a command is at most {_MAX_INPUT}.", usage=help_usage())
    words = text.replace("\u00a0", " ").split()
    if not words:
        return Request("help")
    name, values = words[0].lower(), words[1:]
    command = COMMANDS.get(name)
    if command is None:
        return ParseError(
            f"I don't know the command `{_shown(name)}`.",
            usage=help_usage(),
            suggestion=suggest(name),
        )
    return _bind(command, values)


def _bind(command: Command, values: list[str]) -> Request | ParseError:
    required = [arg for arg in command.args if not arg.optional]
    if len(values) < len(required) or len(values) > len(command.args):
        expected = _count(len(required), len(command.args))
        return ParseError(
            f"`{command.name}` takes {expected}; got {len(values)}.", usage=command.usage
        )
    for arg, value in zip(command.args, values):
        if not arg.accepts(value):
            allowed = ", ".join(f"`{c}`" for c in arg.choices) if arg.choices else arg.description
            return ParseError(
                f"`{_shown(value)}` is not a valid {arg.name} for `{command.name}`: expected {allowed}.",
                usage=command.usage,
                suggestion=_closest(value, arg.choices),
            )
    return Request(command.name, tuple(values))


def _count(low: int, high: int) -> str:
    if high == 0:
        return "no arguments"
    if low == high:
        return f"{low} argument" + ("s" if low != 1 else "")
    return f"{low} to {high} arguments"


def _shown(word: str) -> str:
    """A user word made safe to quote back: short, no backticks or mentions."""
    cleaned = re.sub(r"[`<>*_~]", "", word)
    return cleaned[:40] + ("…" if len(cleaned) > 40 else "")


def _closest(word: str, candidates: tuple[str, ...] | list[str]) -> str | None:
    matches = difflib.get_close_matches(word.lower(), list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def suggest(word: str) -> str | None:
    """The known command closest to a mistyped one, if any is close."""
    return _closest(word, sorted(COMMANDS))


def help_usage() -> str:
    return "/nexy help"


def help_lines() -> list[str]:
    """One line a command, generated from the table, in table order."""
    lines = []
    for command in COMMANDS.values():
        section = f" (runbook {command.section})" if command.section else ""
        lines.append(f"`{command.usage}`: {command.summary}{section}")
    return lines
