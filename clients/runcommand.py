"""Scripts for the VM and what comes back from them.

A script is a file beside the runbook item that runs it (`runbook/*.sh`; the wrapper, the shared
library and the engine's own `noop` are under `clients/scripts/`). `Script.render()` wraps it (`_wrapper.sh`) with its
validated parameters as shell-quoted assignments; the wrapper prints the facts the script
recorded and its exit code as the LAST lines, because Azure returns only the last 4,096 bytes
and says "succeeded" whatever the exit code. `parse()` reads those lines back.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

# What a run told us is the kernel's (items see it); both stay importable from here, where the executors read them.
from bot.context import AZURE_OUTPUT_LIMIT as AZURE_OUTPUT_LIMIT
from bot.context import RunResult as RunResult
from bot.item import ScriptFile
from bot.redaction import redact

SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"
RESULT_PREFIX = "@@nexy-result "
FACT_PREFIX = "@@nexy-fact "
FRAGMENT_NOTE = "… (the start of this line was cut by Azure: left out)"
"""What stands for the first line of an output whose start Azure cut: a fragment is never shown."""

_PARAM_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_PARAM_VALUE = re.compile(r"^[A-Za-z0-9_./:@+=,-]{0,2048}$")
_MESSAGE = re.compile(r"\[stdout\]\n?(?P<stdout>.*?)\n?\[stderr\]\n?(?P<stderr>.*)\Z", re.S)


@dataclass(frozen=True)
class Script:
    """One script file and the validated parameters it runs with."""

    name: str
    parameters: tuple[tuple[str, str], ...] = ()
    directory: Path = SCRIPTS_DIR
    includes: tuple[Path, ...] = ()
    """Other scripts run after the body, each in its own subshell that may fail alone (a batched
    read such as `diagnose`: every fix's plan script in the same run-command)."""
    secrets: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """Parameters that are never in the script text (a new API key): sent only as run-command
    parameters (the environment, for the local executor); never logged, never in a repr."""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", self.name) or not (self.directory / f"{self.name}.sh").is_file():
            raise ValueError(f"no script {self.name!r} in {self.directory}")
        for key, value in (*self.parameters, *self.secrets):
            if not _PARAM_NAME.match(key) or not _PARAM_VALUE.match(value):
                raise ValueError(f"parameter {key} has a value outside the allowed characters")

    @classmethod
    def of(
        cls,
        file: ScriptFile,
        parameters: tuple[tuple[str, str], ...] = (),
        secrets: tuple[tuple[str, str], ...] = (),
        includes: tuple[ScriptFile, ...] = (),
    ) -> Script:
        """A runbook item's script file with its parameters (and the scripts it batches)."""
        return cls(file.name, parameters, file.path.parent, tuple(f.path for f in includes), secrets)

    @property
    def all_parameters(self) -> tuple[tuple[str, str], ...]:
        """What the executor hands to Run Command: the parameters, then the secret ones."""
        return (*self.parameters, *self.secrets)

    def body(self) -> str:
        parts = [(self.directory / f"{self.name}.sh").read_text()]
        for path in self.includes:
            parts.append(f"# --- {path.stem}\n(\n{path.read_text().rstrip()}\n) || true\n")
        return "\n".join(parts)

    def render(self) -> str:
        """The full script text sent to the VM: the wrapper, the parameters, the body."""
        wrapper = (SCRIPTS_DIR / "_wrapper.sh").read_text()
        assignments = "\n".join(f"{key}={shlex.quote(value)}; export {key}" for key, value in self.parameters)
        library = (SCRIPTS_DIR / "_lib.sh").read_text()
        return (
            wrapper.replace("# @@PARAMETERS@@", assignments)
            .replace("# @@LIBRARY@@", library)
            .replace("# @@BODY@@", self.body())
        )

    def lines(self) -> list[str]:
        return self.render().splitlines()


def split_message(message: str) -> tuple[str, str]:
    """stdout and stderr from Azure's `value[0].message` ("Enable succeeded: \\n[stdout]\\n...\\n[stderr]\\n...")."""
    match = _MESSAGE.search(message or "")
    if not match:
        return message or "", ""
    return match.group("stdout"), match.group("stderr")


def parse(script: str, stdout: str, stderr: str, *, limit: int | None = None, duration_s: float = 0.0) -> RunResult:
    """Read the wrapper's summary lines off the end of stdout; the rest is the script's own output,
    redacted whole here, before anything downstream cuts or tails it. Where Azure cut the start,
    the first line is a fragment whose beginning (a secret's name, a key's BEGIN line) is gone: it
    is dropped, and what follows is still redacted by shape."""
    cut = limit is not None and (len(stdout.encode()) >= limit - 1 or len(stderr.encode()) >= limit - 1)
    if limit is not None:
        stdout, stderr = _without_fragment(stdout, limit), _without_fragment(stderr, limit)
    facts: dict[str, str] = {}
    exit_code: int | None = None
    kept: list[str] = []
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            match = re.match(r"rc=(\d+)", line[len(RESULT_PREFIX) :])
            exit_code = int(match.group(1)) if match else None
        elif line.startswith(FACT_PREFIX):
            key, _, value = line[len(FACT_PREFIX) :].partition("=")
            facts[key.strip()] = redact(value.strip())
        else:
            kept.append(line)
    output = redact("\n".join(kept).strip("\n"))
    return RunResult(script, exit_code, facts, output, redact(stderr), cut, round(duration_s, 3))


def _without_fragment(text: str, limit: int) -> str:
    """The text without its first line when Azure cut it at the start (a line that began before the cut)."""
    if len(text.encode()) < limit - 1:
        return text
    _, newline, rest = text.partition("\n")
    return f"{FRAGMENT_NOTE}\n{rest}" if newline else FRAGMENT_NOTE
