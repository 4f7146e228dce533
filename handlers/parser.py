"""The command grammar: a parser that never raises, suggestions for typos, and help.

The table of commands is the registry's (`bot.registry`), given to the `Parser` by the
composition root: every command the bot knows, its arguments, help line and route come from the
runbook item that declares it.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import replace

from bot.item import SecretInput
from bot.registry import Command, ParseError, Registry, Request

HELP_USAGE = "/nexy help"

_MAX_INPUT = 500


def strip_controls(text: str) -> str:
    """The text without control or format characters (terminal escapes, NUL, bidi overrides, zero-width
    spaces): whatever is echoed back or recorded is what the person could see they typed."""
    return "".join((" " if ch.isspace() else "") if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in text)


VM_OPTION = "--vm"
_VM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")


def _vm_option(words: list[str]) -> tuple[list[str], str | ParseError]:
    """`--vm NAME` (or `--vm=NAME`) taken off anywhere in the words, its shape checked."""
    rest: list[str] = []
    vm: str | None = None
    i = 0
    while i < len(words):
        word = words[i]
        if word == VM_OPTION or word.startswith(VM_OPTION + "="):
            value = word.partition("=")[2] if "=" in word else (words[i + 1] if i + 1 < len(words) else "")
            i += 1 if "=" in word else 2
            if vm is not None:
                return rest, ParseError(f"`{VM_OPTION}` is given twice; name one VM.", usage=HELP_USAGE)
            if not _VM_NAME.fullmatch(value):
                return rest, ParseError(
                    f"`{VM_OPTION}` takes a VM name (letters, digits and . _ -); got `{_shown(value) or 'nothing'}`.",
                    usage=HELP_USAGE,
                )
            vm = value
            continue
        rest.append(word)
        i += 1
    return rest, vm or ""


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


class Parser:
    """The grammar of one registry: parses `/nexy` text, suggests commands for typos, gives help."""

    def __init__(self, registry: Registry):
        self.registry = registry

    def parse(self, text: object) -> Request | ParseError:
        """Parse the text after `/nexy` (or after `@nexy`); never raises, whatever the input."""
        try:
            return self._parse(text if isinstance(text, str) else "")
        except Exception:  # pragma: no cover - a last guard: parsing must never fail the ack
            return ParseError("I could not read that command.", usage=HELP_USAGE)

    def request(self, command: Command, values: tuple[str, ...] = (), vm: str = "") -> Request:
        """A valid request for this command and bound values, with its runbook section."""
        fix = command.name == "fix" and values
        section = self.registry.fix_for(command.name, values).section if fix else command.section
        return Request(command.name, values, vm, spec=command, section=section)

    def _parse(self, text: str) -> Request | ParseError:
        text = strip_controls(text)
        if len(text) > _MAX_INPUT:
            return ParseError(f"That is {len(text)} characters; a command is at most {_MAX_INPUT}.", usage=HELP_USAGE)
        words = text.replace("\u00a0", " ").split()
        words, vm = _vm_option(words)
        if isinstance(vm, ParseError):
            return vm
        if not words:
            return self.request(self.registry.commands["help"])
        command, values = self.registry.lookup(words)
        if command is None:
            name = words[0].lower()
            return ParseError(
                f"I don't know the command `{_shown(name)}`.", usage=HELP_USAGE, suggestion=self.suggest(name)
            )
        if vm and not command.on_vm:
            return ParseError(f"`{command.name}` does not concern one VM: it takes no `--vm`.", usage=command.usage)
        bound = self._bind(command, values)
        return replace(bound, vm=vm) if isinstance(bound, Request) and vm else bound

    def _bind(self, command: Command, values: list[str]) -> Request | ParseError:
        problem = command.bind(values)
        if problem is None:
            return self.request(command, command.values(values))
        family = self.registry.family(command)
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

    def suggest(self, word: str) -> str | None:
        """The known command closest to a mistyped one, if any is close."""
        return _closest(word, sorted(self.registry.commands))

    def secret_input(self, request: Request) -> SecretInput | None:
        """The private form a fix request needs before it can be planned (a new API key), if any."""
        if not request.spec.changes_vm:
            return None
        return self.registry.fix_for(request.command, request.args).secret

    def help_lines(self) -> list[str]:
        """One line a command, generated from the registry."""
        return self.registry.help_lines()
