"""The command grammar: a parser that never raises, suggestions for typos, and help.

The table of commands is the registry's (`runbook.registry`): every command the bot knows, its
arguments, help line and route come from the runbook item that declares it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from runbook.item import SecretInput
from runbook.registry import REGISTRY, Command

COMMANDS: dict[str, Command] = REGISTRY.commands
"""Every `/nexy` command, by its first word."""

HELP_USAGE = "/nexy help"

_MAX_INPUT = 500


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

    @property
    def section(self) -> str:
        """The runbook section it belongs to (a fix's own section for `fix <target>`)."""
        if self.command == "fix" and self.args:
            return REGISTRY.fix_for(self.command, self.args).section
        return self.spec.section


@dataclass(frozen=True)
class ParseError:
    """Input that is not a valid command: what was wrong, and what to try instead."""

    problem: str
    usage: str = ""
    suggestion: str | None = None
    also: tuple[str, ...] = ()  # the usage of related commands (`incident new`, `incident close`)


def parse(text: object) -> Request | ParseError:
    """Parse the text after `/nexy` (or after `@nexy`); never raises, whatever the input."""
    try:
        return _parse(text if isinstance(text, str) else "")
    except Exception:  # pragma: no cover - a last guard: parsing must never fail the ack
        return ParseError("I could not read that command.", usage=HELP_USAGE)


def _parse(text: str) -> Request | ParseError:
    if len(text) > _MAX_INPUT:
        return ParseError(f"That is {len(text)} characters; a command is at most {_MAX_INPUT}.", usage=HELP_USAGE)
    words = text.replace("\u00a0", " ").split()
    if not words:
        return Request("help")
    command, values = REGISTRY.lookup(words)
    if command is None:
        name = words[0].lower()
        return ParseError(f"I don't know the command `{_shown(name)}`.", usage=HELP_USAGE, suggestion=suggest(name))
    return _bind(command, values)


def _bind(command: Command, values: list[str]) -> Request | ParseError:
    problem = command.bind(values)
    if problem is None:
        return Request(command.name, command.values(values))
    family = REGISTRY.family(command)
    also = tuple(c.usage for c in family)
    text_arg = command.args[-1] if command.args and command.args[-1].text else None
    if problem.arg is None:
        if text_arg is not None:
            return ParseError(f"`{problem.words}` needs {text_arg.description}.", usage=problem.usage, also=also)
        expected = _count(problem.required, problem.most)
        closest = _closest(values[0], [c.name.split(" ", 1)[1] for c in family]) if family and values else None
        return ParseError(
            f"`{problem.words}` takes {expected}; got {problem.got}.",
            usage=problem.usage,
            suggestion=f"{command.name} {closest}" if closest else None,
            also=also,
        )
    arg = problem.arg
    if arg.text:
        return ParseError(
            f"The {arg.name} is {len(problem.value)} characters; `{problem.words}` takes at most {arg.max_chars}.",
            usage=problem.usage,
        )
    allowed = ", ".join(f"`{c}`" for c in arg.choices) if arg.choices else arg.description
    return ParseError(
        f"`{_shown(problem.value)}` is not a valid {arg.name} for `{problem.words}`: expected {allowed}.",
        usage=problem.usage,
        suggestion=_closest(problem.value, arg.choices),
    )


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


def secret_input(request: Request) -> SecretInput | None:
    """The private form a fix request needs before it can be planned (a new API key), if any."""
    if not request.spec.changes_vm:
        return None
    return REGISTRY.fix_for(request.command, request.args).secret


def help_lines() -> list[str]:
    """One line a command, generated from the registry."""
    return REGISTRY.help_lines()
