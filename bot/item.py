"""How a runbook item declares itself: the metadata the registry builds every table from.

A runbook item is one module in this package. It declares, with `@check` on a function or
`@fix` on a `Fix` subclass, its command words, runbook section, one-line help (the first line
of the docstring, so help cannot drift from the code; the rest of the docstring is what README's
command table says it does), argument grammar, route, scripts (files next to the module) and the
symptoms it owns. The decorators only tag what they decorate (nothing is recorded at import):
the composition root gives `bot.registry` the item modules, which builds the plain tables from
the tagged objects it finds in them and fails on a duplicate command or a reference to a command
that does not exist.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from bot.policy import Reach, Role

if TYPE_CHECKING:
    from bot.context import Context
    from bot.registry import Registry
    from bot.settings import Settings


class Route(str, Enum):
    """Where a command's work runs."""

    IO = "io"  # HTTP and GitHub probes: never wait behind a run-command
    VM = "vm"  # run-commands on the VM: one at a time
    VM_IF_REACHABLE = "vm-if-reachable"  # one run-command when scripts can reach the VM (its queue), else io
    INLINE = "inline"  # answered by the web process itself (help)


class Scope(str, Enum):
    """Which incident a command works on."""

    CHANNEL = "channel"  # the thread's or the channel's open incident, opened now if there is none
    NEW = "new"  # a new incident, even while one is open (`incident new`)
    CURRENT = "current"  # the thread's incident, or the channel's open one; never opens one
    RECORDED = "recorded"  # one named by id; else the current one; else the channel's latest
    NONE = "none"  # no incident (`history`)


@dataclass(frozen=True)
class Arg:
    """One positional argument: its name, a validating pattern and what it means. A `text` argument
    is free text, the rest of the words (always last): control characters are stripped, it is at
    most `max_chars` long, redacted, and never passed to a script."""

    name: str
    pattern: str
    description: str
    choices: tuple[str, ...] = ()
    optional: bool = False
    text: bool = False
    max_chars: int = 0

    def accepts(self, value: str) -> bool:
        if self.text:
            return 0 < len(value) <= self.max_chars
        if self.choices:
            return value in self.choices
        return re.fullmatch(self.pattern, value) is not None


def free_text(words: list[str] | tuple[str, ...]) -> str:
    """Words typed as free text, one line: control and format characters (bidi overrides,
    zero-width) removed, whitespace collapsed."""
    joined = " ".join(words)
    kept = "".join(ch for ch in joined if unicodedata.category(ch) not in ("Cc", "Cf"))
    return " ".join(kept.split())


@dataclass(frozen=True)
class Symptom:
    """A journal signature, the runbook section it means, and what fixes it.

    `pattern` is an extended regular expression that Python's `re` and `grep -E` read alike (no
    `(?:`, no `\\d`): the scripts receive the declared patterns as a generated parameter.
    `fix` names the command that fixes it (checked at start-up to be one the parser takes).
    `rank` orders Fast Branching: lower first, so a symptom that explains another comes before it.
    """

    section: str
    title: str
    pattern: str
    fix: str
    rank: int = 0

    def __post_init__(self) -> None:
        if "(?" in self.pattern or re.search(r"\\[dDwWsS]", self.pattern):
            raise ValueError(f"symptom {self.section}: {self.pattern!r} is not portable to grep -E")
        re.compile(self.pattern)

    def find(self, text: str) -> str | None:
        """The first line of text that shows this symptom."""
        compiled = re.compile(self.pattern)
        for line in text.splitlines():
            if compiled.search(line):
                return line.strip()
        return None


def patterns_parameter(patterns: list[str] | tuple[str, ...]) -> str:
    """Regular expressions as one script parameter: base64 of one pattern a line (`grep -E -f`).
    Base64 keeps the value inside the characters a parameter may carry."""
    return base64.b64encode("\n".join(patterns).encode()).decode()


@dataclass(frozen=True)
class ScriptFile:
    """A shell script next to its item's module."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.stem


def script(module_file: str, name: str) -> ScriptFile:
    """The script `<name>.sh` in the folder of `module_file`; a missing one fails at import."""
    path = Path(module_file).resolve().parent / f"{name}.sh"
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name) or not path.is_file():
        raise ValueError(f"no script {name}.sh beside {module_file}")
    return ScriptFile(path)


def _help_line(thing: object) -> str:
    doc = (getattr(thing, "__doc__", None) or "").strip()
    if not doc:
        raise ValueError(f"{thing!r} needs a docstring: its first line is the command's help")
    first = doc.splitlines()[0].strip()
    return first.split(": ", 1)[1] if ": " in first else first


def _details(thing: object) -> str:
    """The docstring after its first line, as one line: what README's command table says the command
    does (the help line when the docstring has no more)."""
    rest = (getattr(thing, "__doc__", None) or "").strip().split("\n", 1)[1:]
    return " ".join(" ".join(rest).split()) or _help_line(thing)


@dataclass(frozen=True)
class Check:
    """A command that reads and reports: it changes nothing."""

    command: str
    section: str
    help: str
    route: Route
    run: Callable[[Context], str]
    args: tuple[Arg, ...] = ()
    scripts: tuple[ScriptFile, ...] = ()
    title: str = ""  # the runbook section's title
    scope: Scope = Scope.CHANNEL
    role: Role = Role.MEMBER  # who may run it (bot/policy.py)
    reach: Reach = Reach.OWN  # which incidents it may touch
    details: str = ""  # what it does, in full (README's command table): the docstring after its first line


def default_reach(scope: Scope) -> Reach:
    """A command about no incident touches none; the others touch their own channel's."""
    return Reach.NONE if scope is Scope.NONE else Reach.OWN


@dataclass(frozen=True)
class Assessment:
    """What a plan run found: whether to fix, what would change, and what must not change meanwhile."""

    needed: bool
    fingerprint: str = ""
    diff: tuple[str, ...] = ()
    blocked: str = ""  # a reason no plan can be made (nothing to approve)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SecretInput:
    """A value a fix needs that must never be typed in the channel (a new API key): asked in a modal,
    sealed until the apply, and passed to the scripts as the parameter `parameter`, never in their text."""

    parameter: str
    title: str  # the modal's title (at most 24 characters, Slack's limit)
    label: str
    hint: str
    pattern: str  # what a value must match, checked when the form is submitted
    expected: str  # the pattern in words, for the form's error

    def __post_init__(self) -> None:
        if len(self.title) > 24:
            raise ValueError(f"a modal title is at most 24 characters: {self.title!r}")


class Fix:
    """A runbook fix: a plan script that captures the state, an apply script that re-checks it,
    changes it, restarts under the 0.1 preflight and verifies. Subclasses set the class attributes
    and `commands`/`assess`; the docstring's first line is the help."""

    command: ClassVar[str]  # the words that ask for it: "fix config-perms", or "restart"
    section: ClassVar[str]
    title: ClassVar[str]
    plan_script: ClassVar[ScriptFile]
    apply_script: ClassVar[ScriptFile]
    symptoms: ClassVar[tuple[Symptom, ...]] = ()
    args: ClassVar[tuple[Arg, ...]] = ()  # its own arguments after the command words (`fix version <X.Y.Z.Build>`)
    secret: ClassVar[SecretInput | None] = None  # a value typed in a private form (a modal), never in the channel
    role: ClassVar[Role] = Role.OPERATOR  # a fix changes the VM: only operators may ask for one
    approvals: ClassVar[int] = 1  # distinct approvers a plan needs (NEXY_APPROVALS overrides it per fix)

    @property
    def name(self) -> str:
        """The fix's name in plans and job ids: `config-perms`, `restart`."""
        return self.command.removeprefix("fix ")

    @property
    def words(self) -> str:
        return self.command

    @property
    def help(self) -> str:
        return _help_line(type(self))

    @property
    def details(self) -> str:
        """What it does, in full (README's command table): the docstring after its first line."""
        return _details(type(self))

    def commands(self, settings: Settings, args: tuple[str, ...] = ()) -> list[str]:
        """The exact commands the apply runs, as shown in the plan."""
        raise NotImplementedError

    def assess(self, facts: dict[str, str], settings: Settings, args: tuple[str, ...] = ()) -> Assessment:
        """Read the plan script's facts: is there anything to do, the diff, the fingerprint."""
        raise NotImplementedError

    def plan_parameters(self) -> tuple[tuple[str, str], ...]:
        """What the plan script receives besides the common parameters."""
        return ()

    def apply_parameters(self, settings: Settings, args: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        """What the apply script receives besides the common parameters (validated argument values)."""
        return ()

    def check_secret(self, settings: Settings, value: str) -> str:
        """For a fix with a `secret`: why this value gets no plan ('' when it may be planned)."""
        return ""

    def before(self, state: dict[str, str]) -> str:
        """The state the plan captured that the apply changes (the `-` line of the apply's diff)."""
        return ""

    def state_line(self, value: str) -> str:
        """A captured or read-back state as the apply report's diff shows it."""
        return value

    def verify_patterns(self, registry: Registry) -> tuple[str, ...]:
        """The journal signatures that must be gone after the restart: this fix's own symptoms."""
        return tuple(s.pattern for s in self.symptoms)


CHECK_TAG = "__nexy_check__"
"""The attribute `@check` sets on a function: its `Check`."""

FIX_TAG = "__nexy_fix__"
"""The attribute `@fix` sets on a `Fix` subclass: its instance (read from the class's own namespace,
so no subclass is declared by inheritance)."""

PROBE_TAG = "__nexy_probe__"
"""The attribute `probe(name)` sets on a function: the probe's name."""


@dataclass(frozen=True)
class DeclaredSymptom(Symptom):
    """A journal symptom declared by a module of its own (`symptom(...)`), owned by an existing fix."""


F = TypeVar("F", bound=Callable[..., Any])
FixT = TypeVar("FixT", bound=Fix)


def check(
    command: str,
    *,
    section: str = "",
    title: str = "",
    route: Route,
    args: tuple[Arg, ...] = (),
    scripts: tuple[ScriptFile, ...] = (),
    scope: Scope = Scope.CHANNEL,
    role: Role = Role.MEMBER,
    reach: Reach | None = None,
) -> Callable[[F], F]:
    """Declare a command that changes nothing on the VM; the decorated function runs it
    (`run(ctx) -> status`). A command may be two words (`incident close`). `role` says who may run it,
    `reach` which incidents it may touch (default: none for `Scope.NONE`, else its own channel's;
    `Reach.ACROSS` is an operator's). The commands its report recommends are named with
    `bot.wording.refs.command` (checked at start-up)."""
    if any(arg.text for arg in args[:-1]) or (args and args[-1].text and any(a.optional for a in args[:-1])):
        raise ValueError(f"{command}: a free-text argument comes last, after required arguments only")
    reached = reach or default_reach(scope)
    if reached is Reach.ACROSS and role is not Role.OPERATOR:
        raise ValueError(f"{command}: reading across channels is an operator's (role=Role.OPERATOR)")

    def attach(run: F) -> F:
        declared = Check(
            command, section, _help_line(run), route, run, args, scripts, title, scope, role, reached, _details(run)
        )
        setattr(run, CHECK_TAG, declared)
        return run

    return attach


def probe(name: str) -> Callable[[F], F]:
    """Declare a read from outside the VM (HTTP, GitHub) that other jobs run on the io queue, never
    behind a run-command: `probe(settings) -> a picklable report` (a diagnosis's health probes)."""

    def attach(read: F) -> F:
        setattr(read, PROBE_TAG, name)
        return read

    return attach


def symptom(declared: Symptom) -> DeclaredSymptom:
    """Declare a journal symptom from a module of its own, owned by an existing fix (a symptom the runbook
    learned at an incident's close: `bot/learn.py` writes such a module). Assign it at module level: the
    registry finds it there."""
    return DeclaredSymptom(declared.section, declared.title, declared.pattern, declared.fix, declared.rank)


def fix(cls: type[FixT]) -> type[FixT]:
    """Declare a `Fix` subclass (instantiated here, so a broken one fails at import); its symptoms are
    declared with it."""
    setattr(cls, FIX_TAG, cls())
    return cls
