"""The registry: every table the bot runs on, built once from what the item modules declared.

The composition root (`nexy.registry`) imports the item and message modules and gives them to
`Registry.from_modules`, which collects what they declare (tagged by `bot.item`'s decorators,
or named by `bot.wording.refs.command`) and builds: the command table with its help lines, the
route of each command, the runner of each check, the fixes, and the Fast Branching table of
symptoms. The result depends only on the modules given, never on the order they were imported.
A duplicate command, or a command named anywhere (a symptom's fix, a report's recommendation, a
shared message) that the parser would refuse, fails here, at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import ModuleType
from typing import Any

from bot.contract import Action
from bot.item import CHECK_TAG, FIX_TAG, PROBE_TAG, Arg, Check, DeclaredSymptom, Fix, Route, Scope, Symptom, free_text
from bot.policy import ACTION_LABELS, ACTION_ROLES, Reach, Role
from bot.redaction import redact
from bot.settings import Settings
from bot.wording.refs import CommandRef


@dataclass(frozen=True)
class Problem:
    """Why argument values do not bind: a wrong count (`arg` None), or a value an argument refuses."""

    words: str  # the command it concerns: `fix`, or `fix version`
    usage: str
    arg: Arg | None = None
    value: str = ""
    required: int = 0
    most: int = 0
    got: int = 0


def usage_of(words: str, args: tuple[Arg, ...]) -> str:
    """`/nexy fix version <X.Y.Z.Build>`: the words, then each argument (optional ones in brackets)."""
    parts = [f"/nexy {words}"]
    for arg in args:
        shown = "|".join(arg.choices) if arg.choices else arg.name
        parts.append(f"[{shown}]" if arg.optional else f"<{shown}>")
    return " ".join(parts)


def joined(args: tuple[Arg, ...], values: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The values as the arguments take them: a free-text argument (always last) is the rest of the
    words as one cleaned line."""
    if args and args[-1].text:
        fixed = len(args) - 1
        rest = free_text(values[fixed:])
        return (*values[:fixed], *((rest,) if rest else ()))
    return tuple(values)


def _bind(words: str, args: tuple[Arg, ...], values: list[str] | tuple[str, ...]) -> Problem | None:
    values = joined(args, values)
    required = sum(1 for arg in args if not arg.optional)
    if not required <= len(values) <= len(args):
        return Problem(words, usage_of(words, args), required=required, most=len(args), got=len(values))
    for arg, value in zip(args, values, strict=False):
        if not arg.accepts(value):
            return Problem(words, usage_of(words, args), arg=arg, value=value)
    return None


@dataclass(frozen=True)
class Command:
    """One command after `/nexy` (one word, or two: `incident close`): its help, route, runbook
    section, arguments, which incident it works on, and who may run it. A command with
    `subcommands` (`fix`) takes a target first, then that target's own arguments."""

    name: str
    summary: str
    route: Route
    section: str = ""
    args: tuple[Arg, ...] = ()
    changes_vm: bool = False  # a fix: it runs only once approved
    scope: Scope = Scope.CHANNEL
    role: Role = Role.MEMBER  # who may run it (bot/policy.py)
    reach: Reach = Reach.OWN  # which incidents it may touch
    subcommands: tuple[tuple[str, tuple[Arg, ...]], ...] = ()

    @property
    def usage(self) -> str:
        return usage_of(self.name, self.args)

    @property
    def on_vm(self) -> bool:
        """Whether it concerns one VM of the inventory (and so takes `--vm NAME`): its run-commands,
        and the reads about one VM from outside it (its health endpoints, its Azure resource, its queue)."""
        return self.route in (Route.VM, Route.VM_IF_REACHABLE) or self.name in VM_READS

    def bind(self, values: list[str] | tuple[str, ...]) -> Problem | None:
        """What is wrong with these argument values (None if they bind)."""
        if not self.subcommands:
            return _bind(self.name, self.args, values)
        if not values:
            return Problem(self.name, self.usage, required=1, most=1, got=0)
        target, own = self.args[0], dict(self.subcommands)
        if not target.accepts(values[0]):
            return Problem(self.name, self.usage, arg=target, value=values[0])
        return _bind(f"{self.name} {values[0]}", own[values[0]], values[1:])

    def values(self, values: list[str] | tuple[str, ...]) -> tuple[str, ...]:
        """The bound values to store and queue: free text redacted (a secret typed by mistake never
        reaches Redis, Slack or a log)."""
        bound = joined(self.args, values)
        if self.args and self.args[-1].text and len(bound) == len(self.args):
            return (*bound[:-1], redact(bound[-1]))
        return bound


@dataclass(frozen=True)
class Request:
    """A parsed, valid command: what the user asked for, with validated arguments only."""

    command: str
    args: tuple[str, ...] = ()
    vm: str = ""  # `--vm NAME` as typed (its shape checked); intake matches it against the inventory
    spec: Command = field(kw_only=True, compare=False, repr=False)  # the command, as the registry declares it
    section: str = field(kw_only=True, compare=False, repr=False)  # its runbook section (a fix target's own)

    @property
    def words(self) -> str:
        return " ".join((self.command, *self.args, *(("--vm", self.vm) if self.vm else ())))


@dataclass(frozen=True)
class ParseError:
    """Input that is not a valid command: what was wrong, and what to try instead."""

    problem: str
    usage: str = ""
    suggestion: str | None = None
    also: tuple[str, ...] = ()  # the usage of related commands (`incident new`, `incident close`)


VM_READS = ("health", "azure", "queue")
"""The io commands that read about one VM: they take `--vm NAME` as the run-commands do."""


@dataclass
class Declarations:
    """What a set of modules declares, in module-name order: the registry is built from it."""

    checks: list[Check] = field(default_factory=list)
    fixes: list[Fix] = field(default_factory=list)
    symptoms: list[tuple[Symptom, str]] = field(default_factory=list)  # (symptom, declaring module)
    probes: dict[str, Callable[[Settings], Any]] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)  # command words named in a message: its module


def declarations(modules: Iterable[ModuleType]) -> Declarations:
    """Collect the tagged objects at the top level of each module, in module-name order: an object
    another given module defines (re-exported, imported) counts once, in its own module."""
    given = sorted({module.__name__: module for module in modules}.items())
    names = {name for name, _ in given}
    found = Declarations()
    seen: set[int] = set()
    for name, module in given:
        for value in vars(module).values():
            owner = getattr(value, "__module__", name) if not isinstance(value, CommandRef) else name
            if id(value) in seen or (owner != name and owner in names):
                continue
            if isinstance(value, CommandRef):
                found.references.setdefault(value.words, name)
            elif isinstance(value, DeclaredSymptom):
                seen.add(id(value))
                found.symptoms.append((value, name))
            elif isinstance(value, type) and isinstance(fix := vars(value).get(FIX_TAG), Fix):
                seen.add(id(value))
                found.fixes.append(fix)
                found.symptoms.extend((symptom, name) for symptom in fix.symptoms)
            elif callable(value) and isinstance(getattr(value, CHECK_TAG, None), Check):
                seen.add(id(value))
                found.checks.append(getattr(value, CHECK_TAG))
            if callable(value) and isinstance(getattr(value, PROBE_TAG, None), str):
                seen.add(id(value))
                probe = getattr(value, PROBE_TAG)
                if probe in found.probes:
                    raise ValueError(f"two probes are named {probe!r}")
                found.probes[probe] = value
    return found


class Registry:
    """The tables, built from the declarations."""

    def __init__(
        self,
        checks: Iterable[Check],
        fixes: Iterable[Fix],
        symptoms: Iterable[tuple[Symptom, str]],
        probes: Mapping[str, Callable[[Settings], Any]] | None = None,
        references: Mapping[str, str] | None = None,
    ):
        self.probes = dict(probes or {})
        self.references = dict(references or {})
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
                    role=item.role,
                    reach=item.reach,
                )
            )
            self.checks[item.command] = item
        targets = []
        for fix in fixes:
            if fix.name in self.fixes:
                raise ValueError(f"two fixes are named {fix.name!r}")
            self.fixes[fix.name] = fix
            if fix.command.startswith("fix "):
                targets.append(fix)
            else:
                self._add(
                    Command(fix.command, fix.help, Route.VM, fix.section, fix.args, changes_vm=True, role=fix.role)
                )
        if targets:
            self._add(
                Command(
                    "fix",
                    "plan a runbook fix; it runs only after an approver reacts :white_check_mark: on the plan",
                    Route.VM,
                    "",
                    (Arg("target", r"[a-z-]+", "a fix", choices=tuple(f.name for f in targets)),),
                    changes_vm=True,
                    role=Role.OPERATOR,
                    subcommands=tuple((f.name, f.args) for f in targets),
                )
            )
        # Help lists the commands in runbook order; those of no section (queue, incident) last, and last
        # of all those the web process answers itself (runbook, help).
        self.commands = dict(
            sorted(
                self.commands.items(),
                key=lambda pair: (_section_key(pair[1].section), pair[1].route is Route.INLINE),
            )
        )
        self.symptoms: tuple[Symptom, ...] = tuple(
            s for s, _ in sorted(symptoms, key=lambda pair: (pair[0].rank, pair[0].section))
        )
        self._check_references()

    @classmethod
    def from_modules(cls, modules: Iterable[ModuleType]) -> Registry:
        """The registry of what these modules declare (see `declarations`)."""
        found = declarations(modules)
        return cls(found.checks, found.fixes, found.symptoms, found.probes, found.references)

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
        return command is not None and command.bind(values) is None

    def _check_references(self) -> None:
        named: list[tuple[str, str]] = [(words, f"in {where}") for words, where in sorted(self.references.items())]
        named.extend((s.fix, f"symptom {s.section}") for s in self.symptoms)
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
                    lines.append(f"`{usage_of(fix.command, fix.args)}`: {fix.help} (runbook {fix.section})")
                continue
            section = f" (runbook {command.section})" if command.section else ""
            lines.append(f"`{command.usage}`: {command.summary}{section}")
        return lines

    def sections(self) -> list[Section]:
        """The runbook as the registry holds it, in section order (`/nexy runbook`)."""
        found: dict[str, dict[str, Any]] = {}

        def entry(section: str, title: str) -> dict[str, Any]:
            item = found.setdefault(section, {"title": "", "symptoms": [], "commands": []})
            item["title"] = item["title"] or title
            return item

        for check in self.checks.values():
            if check.section:
                entry(check.section, check.title)["commands"].append(
                    (usage_of(check.command, check.args), _WHERE[check.route])
                )
        for fix in self.fixes.values():
            where = "VM queue: a plan (one run-command), an approval, then apply and verify (one run-command)"
            entry(fix.section, fix.title)["commands"].append((usage_of(fix.command, fix.args), where))
        for symptom in self.symptoms:
            entry(symptom.section, symptom.title)["symptoms"].append(symptom)
        return [
            Section(key, item["title"], tuple(item["symptoms"]), tuple(item["commands"]))
            for key, item in sorted(found.items(), key=lambda pair: _section_key(pair[0]))
        ]

    def commands_table(self) -> str:
        """Every command (a row per fix target), what it does and its runbook section, in runbook order,
        as the declarations say: the docstring after its help line (README's "Commands")."""
        rows: list[tuple[str, str, str]] = []  # (usage, what it does, section)
        for command in self.commands.values():
            if command.subcommands:
                rows.extend(
                    (usage_of(fix.command, fix.args), fix.details, fix.section)
                    for fix in (self.fixes[name] for name in command.args[0].choices)
                )
            elif command.name in self.checks:
                rows.append((command.usage, self.checks[command.name].details, command.section))
            elif command.changes_vm:
                rows.append((command.usage, self.fix_for(command.name, ()).details, command.section))
            else:
                rows.append((command.usage, command.summary, command.section))
        lines = ["| command | what it does | runbook |", "|---|---|---|"]
        for usage, details, section in sorted(rows, key=lambda row: _section_key(row[2])):
            cells = (f"`{usage}`", details, section)
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        return "\n".join(lines) + "\n"

    def roles_table(self) -> str:
        """Who may run each command and press each button, and which incidents each touches, as the
        declarations say (a Markdown table: README's "Who may do what from where")."""
        who = {
            Role.MEMBER: "anyone in `NEXY_CHANNELS`",
            Role.OPERATOR: "`NEXY_OPERATORS`",
            Role.APPROVER: "`NEXY_APPROVERS`",
        }
        reach = {
            Reach.NONE: "none",
            Reach.OWN: "its own channel's",
            Reach.ACROSS: "every channel's (reads only)",
        }
        rows = ["| command or button | who may | incidents it touches |", "|---|---|---|"]
        for command in self.commands.values():
            usage = ("/nexy fix <target>" if command.subcommands else command.usage).replace("|", "\\|")
            rows.append(f"| `{usage}` | {who[command.role]} | {reach[command.reach]} |")
        for action, role in ACTION_ROLES.items():
            if action == Action.REJECT:
                allowed = f"{who[Role.APPROVER]}, or the plan's requester (withdraws it)"
            elif action == Action.APPROVE:
                allowed = (
                    f"{who[Role.APPROVER]}, not the requester (unless `NEXY_ALLOW_SELF_APPROVAL` and the fix needs "
                    "one approval); a fix that needs N (`NEXY_APPROVALS`) applies at the N-th distinct approver"
                )
            else:
                allowed = who[role] if role is not None else "as the command it asks for"
            rows.append(f"| {ACTION_LABELS[action]} | {allowed} | its own channel's |")
        rows.append(f"| App Home tab | incidents shown to {who[Role.OPERATOR]} and {who[Role.APPROVER]} only | - |")
        return "\n".join(rows) + "\n"

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
    """`0.1` < `1` < `5` < `6.2` < `7-9` < `all` < no section."""
    if not section:
        return (float("inf"), 1)
    try:
        return tuple(float(part) for part in section.split("-")[0].split("."))
    except ValueError:
        return (float("inf"), 0)


@dataclass(frozen=True)
class Section:
    """One runbook section as the registry knows it: its title, symptoms, and the commands for it."""

    section: str
    title: str
    symptoms: tuple[Symptom, ...]
    commands: tuple[tuple[str, str], ...]  # (usage, where it runs)


_WHERE = {
    Route.IO: "io queue, no run-command",
    Route.VM: "VM queue, one run-command",
    Route.VM_IF_REACHABLE: "VM queue, one run-command (io when the VM cannot be reached)",
    Route.INLINE: "answered at once",
}
