"""The registry: every table the bot runs on, built once from what the item modules declared.

Start-up imports every module of this package (so adding an item is adding a module), then
builds: the command table with its help lines, the route of each command, the runner of each
check, the fixes, and the Fast Branching table of symptoms. A duplicate command, or a command
named anywhere (a symptom's fix, a report's recommendation, a shared message) that the parser
would refuse, fails here, at import.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from bot.redaction import redact
from bot.wording.refs import REFERENCED
from runbook.item import DECLARED, Arg, Check, Fix, Route, Scope, Symptom, free_text

_NOT_ITEMS = {"item", "registry"}

WRONG_COUNT = "#count"
"""What `Command.problem` says when the number of arguments is wrong (no argument has this name)."""


@dataclass(frozen=True)
class Command:
    """One command after `/nexy` (one word, or two: `incident close`): its help, route, runbook
    section, arguments, which incident it works on, and who may run it."""

    name: str
    summary: str
    route: Route
    section: str = ""
    args: tuple[Arg, ...] = ()
    changes_vm: bool = False  # a fix: only operators may request it, and it runs only once approved
    scope: Scope = Scope.CHANNEL
    operator: bool = False  # only operators may run it (closing an incident)

    @property
    def usage(self) -> str:
        parts = [f"/nexy {self.name}"]
        for arg in self.args:
            shown = "|".join(arg.choices) if arg.choices else arg.name
            parts.append(f"[{shown}]" if arg.optional else f"<{shown}>")
        return " ".join(parts)

    def bind(self, values: list[str] | tuple[str, ...]) -> tuple[str, ...]:
        """The argument values as the command takes them: a free-text argument is the rest of the
        words as one cleaned line."""
        if self.args and self.args[-1].text:
            fixed = len(self.args) - 1
            rest = free_text(values[fixed:])
            return (*values[:fixed], *((rest,) if rest else ()))
        return tuple(values)

    def problem(self, values: list[str] | tuple[str, ...]) -> str | None:
        """What is wrong with these argument values (None if they bind)."""
        bound = self.bind(values)
        required = [arg for arg in self.args if not arg.optional]
        if not len(required) <= len(bound) <= len(self.args):
            return WRONG_COUNT
        for arg, value in zip(self.args, bound, strict=False):
            if not arg.accepts(value):
                return arg.name
        return None

    def values(self, values: list[str] | tuple[str, ...]) -> tuple[str, ...]:
        """The bound values to store and queue: free text redacted (a secret typed by mistake never
        reaches Redis, Slack or a log)."""
        bound = self.bind(values)
        if self.args and self.args[-1].text and len(bound) == len(self.args):
            return (*bound[:-1], redact(bound[-1]))
        return bound


HELP = Command(
    "help",
    "the command list, or one command's usage",
    Route.INLINE,
    args=(Arg("command", "", "a command name", optional=True, text=True, max_chars=40),),
)


class Registry:
    """The tables, built from the declarations."""

    def __init__(self, checks: Iterable[Check], fixes: Iterable[Fix], symptoms: Iterable[tuple[Symptom, str]]):
        self.checks: dict[str, Check] = {}
        self.fixes: dict[str, Fix] = {}
        self.commands: dict[str, Command] = {}
        for item in checks:
            self._add(
                Command(
                    item.command,
                    item.help,
                    item.route,
                    item.section,
                    item.args,
                    scope=item.scope,
                    operator=item.operator,
                )
            )
            self.checks[item.command] = item
        targets = []
        for fix in fixes:
            if fix.name in self.fixes:
                raise ValueError(f"two fixes are named {fix.name!r}")
            self.fixes[fix.name] = fix
            if fix.command.startswith("fix "):
                targets.append(fix.name)
            else:
                self._add(Command(fix.command, fix.help, Route.VM, fix.section, changes_vm=True))
        if targets:
            self._add(
                Command(
                    "fix",
                    "plan a runbook fix; it runs only after an approver reacts :white_check_mark: on the plan",
                    Route.VM,
                    "",
                    (Arg("target", r"[a-z-]+", "a fix", choices=tuple(targets)),),
                    changes_vm=True,
                )
            )
        self._add(HELP)
        # Help lists the commands in runbook order; those of no section (queue, help) last.
        self.commands = dict(sorted(self.commands.items(), key=lambda pair: _section_key(pair[1].section)))
        self.symptoms: tuple[Symptom, ...] = tuple(
            s for s, _ in sorted(symptoms, key=lambda pair: (pair[0].rank, pair[0].section))
        )
        self._check_references()

    def _add(self, command: Command) -> None:
        if command.name in self.commands:
            raise ValueError(f"duplicate command {command.name!r}")
        self.commands[command.name] = command

    def lookup(self, words: list[str]) -> tuple[Command | None, list[str]]:
        """The command the words name (two words before one: `incident close`), and the rest."""
        if len(words) > 1 and (pair := self.commands.get(f"{words[0].lower()} {words[1].lower()}")):
            return pair, words[2:]
        return self.commands.get(words[0].lower()) if words else None, words[1:]

    def family(self, command: Command) -> list[Command]:
        """The two-word commands that start with this one's word (`incident new`, `incident close`)."""
        return [c for c in self.commands.values() if c.name.startswith(command.name + " ")]

    def accepts(self, words: str) -> bool:
        """Whether `/nexy <words>` is a command the parser takes."""
        command, values = self.lookup(words.split())
        return command is not None and command.problem(values) is None

    def _check_references(self) -> None:
        named: list[tuple[str, str]] = [(words, f"in {where}") for words, where in sorted(REFERENCED.items())]
        named.extend((s.fix, f"symptom {s.section}") for s in self.symptoms if s.fix)
        missing = [f"`/nexy {words}` ({where})" for words, where in named if not self.accepts(words)]
        if missing:
            raise ValueError("commands named but not accepted by the parser: " + ", ".join(missing))

    # -- what the rest of the bot reads ------------------------------------------------------

    def fix_for(self, command: str, args: tuple[str, ...]) -> Fix:
        """The fix a `fix <target>` or `restart` request asks for."""
        return self.fixes[args[0]] if command == "fix" else next(f for f in self.fixes.values() if f.command == command)

    def fix_command(self, command: str) -> bool:
        return self.commands[command].changes_vm

    def help_lines(self) -> list[str]:
        """One line a command (a line per fix target), in declaration order."""
        lines = []
        for command in self.commands.values():
            if command.name == "fix":
                for name in command.args[0].choices:
                    fix = self.fixes[name]
                    lines.append(f"`/nexy {fix.command}`: {fix.help} (runbook {fix.section})")
                continue
            section = f" (runbook {command.section})" if command.section else ""
            lines.append(f"`{command.usage}`: {command.summary}{section}")
        return lines

    @cached_property
    def journal_patterns(self) -> tuple[str, ...]:
        """Every declared symptom's signature, for the scripts that filter the journal."""
        return tuple(s.pattern for s in self.symptoms)

    def fast_branching(self, text: str) -> list[tuple[Symptom, str]]:
        """Every symptom present in text, in Fast Branching order, with the line that shows it."""
        found = []
        for symptom in self.symptoms:
            line = symptom.find(text)
            if line is not None:
                found.append((symptom, line))
        return found


def _section_key(section: str) -> tuple[float, ...]:
    """`0.1` < `1` < `5` < `6.2` < `7-9` < no section."""
    if not section:
        return (float("inf"),)
    return tuple(float(part) for part in section.split("-")[0].split("."))


def discover() -> None:
    """Import every item module of this package (each declares itself on import), and every shared
    message module (each names the commands it recommends on import)."""
    for name in ("bot.wording", "runbook"):
        package = importlib.import_module(name)
        for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if module.name not in _NOT_ITEMS and not module.name.startswith("_"):
                importlib.import_module(f"{name}.{module.name}")


def build() -> Registry:
    discover()
    return Registry(DECLARED.checks, DECLARED.fixes, DECLARED.symptoms)


REGISTRY = build()
"""The tables of this process, built at import."""
