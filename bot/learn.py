"""The runbook learns (runbook 10, "runbook updated"): journal lines of an incident that matched no
declared signature become proposed symptoms, with a ready-to-commit runbook item stub and its test.

Pure text: the journal lines come from the incident's run-command outputs (its timeline), the
declared signatures from the registry. A proposed pattern is an extended regular expression that
Python's `re` and `grep -E` read alike (the rule of `bot.item.Symptom`): the stable words of the
line, escaped, with numbers, hex ids and quoted values made general.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CONTEXT_LINES = ("Main process exited", "Failed with result", r"google\.genai")
"""Journal lines the VM scripts keep beside the symptoms' own: how the service ended (no section of
their own, so never proposed as a new symptom)."""

MAX_PROPOSALS = 5
"""How many new symptoms one incident proposes at most (the first distinct ones)."""

PATTERN_CHARS = 80
"""How much of a line's message a proposed pattern keeps: its stable beginning."""

JOURNAL_LINE = re.compile(
    r"^(?:[A-Z][a-z]{2} +[0-9]+ [0-9:.]+|[0-9]{4}-[0-9]{2}-[0-9]{2}T\S+) \S+ ([^\s:\[]+)(?:\[[0-9]+\])?: (.+)$"
)
"""`Dec 02 00:07:36 Nexy python3[4242]: message` (journalctl's short and short-iso output)."""

ERROR_LIKE = re.compile(r"Error|Exception|Traceback|CRITICAL|FATAL|[Ff]ailed")
"""A journal line worth learning from says something went wrong."""

_SPECIAL = set(".^$*+?()[]{}|\\")


@dataclass(frozen=True)
class Proposal:
    """A journal line no declared symptom matched, and the symptom pattern drawn from it."""

    line: str
    pattern: str


def journal_messages(outputs: Iterable[str]) -> list[str]:
    """The journal lines in run-command outputs, in order, each once."""
    seen: dict[str, None] = {}
    for output in outputs:
        for raw in output.splitlines():
            line = raw.strip()
            if JOURNAL_LINE.match(line):
                seen.setdefault(line, None)
    return list(seen)


def unmatched(outputs: Iterable[str], declared: Sequence[str], ignored: Sequence[str] = ()) -> list[Proposal]:
    """The error-like journal lines that no declared pattern (nor an ignored context pattern) matches,
    as proposals; lines that give the same pattern are proposed once."""
    known = [re.compile(p) for p in (*declared, *ignored)]
    proposals: dict[str, Proposal] = {}
    for line in journal_messages(outputs):
        message = JOURNAL_LINE.match(line).group(2)  # type: ignore[union-attr]  # matched above
        if not ERROR_LIKE.search(message) or any(k.search(line) for k in known):
            continue
        pattern = pattern_of(message)
        if pattern and pattern not in proposals:
            proposals[pattern] = Proposal(line, pattern)
        if len(proposals) == MAX_PROPOSALS:
            break
    return list(proposals.values())


def pattern_of(message: str) -> str:
    """The stable beginning of a message as a portable pattern: quoted values, hex ids and numbers made
    general, every other character literal."""
    text = message.strip()[:PATTERN_CHARS].rstrip()
    out: list[str] = []
    i = 0
    while i < len(text):
        quoted = re.match(r"'[^']*'|\"[^\"]*\"", text[i:])
        hexid = re.match(r"(?:0x)?[0-9a-f]{8,}\b", text[i:])
        number = re.match(r"[0-9]+", text[i:])
        if quoted:
            q = quoted.group(0)[0]
            out.append(f"{q}[^{q}]*{q}")
            i += len(quoted.group(0))
        elif hexid:
            out.append("[0-9a-fx]+")
            i += len(hexid.group(0))
        elif number:
            out.append("[0-9]+")
            i += len(number.group(0))
        else:
            out.append("\\" + text[i] if text[i] in _SPECIAL else text[i])
            i += 1
    return "".join(out)


def module_name(pattern: str) -> str:
    """A module name for the stub, from the pattern's first word (`learned_runtimeerror`)."""
    word = re.sub(r"[^a-z0-9]+", "_", re.sub(r"\[[^\]]*\]\+?", "", pattern).lower()).strip("_")
    return "learned_" + (word.split("_")[0] if word else "symptom")


def item_stub(proposal: Proposal, incident: str, sections: Sequence[str]) -> str:
    """A ready-to-commit runbook module declaring the symptom (its section, title and fix to be chosen).
    Journal text enters it only as string literals (`repr`) or as one-line comments: whatever the
    line holds (quotes, triple quotes, backslashes, newlines, `#`), the module stays one declaration."""
    return "\n".join(
        [
            f'"""A journal symptom learned at the close of {_word(incident)}: choose its section and title,',
            "and the fix that owns it (an existing fix command), then commit this module with its test.",
            '"""',
            "",
            f"# The line it was drawn from: {_comment(proposal.line)}",
            f"# Sections of the incident: {_comment(', '.join(sections))}",
            "",
            "from __future__ import annotations",
            "",
            "from bot.item import Symptom, symptom",
            "",
            "SYMPTOM = symptom(",
            f'    Symptom("5", {"Learned: " + _title(proposal)!r}, {proposal.pattern!r}, fix="restart", rank=9)',
            ")",
            "",
        ]
    )


def stub_test(proposal: Proposal, incident: str) -> str:
    """The test that goes with the stub: the registry's Fast Branching (the tests' `registry` fixture,
    built by discovery) finds the symptom in its line."""
    name = module_name(proposal.pattern)
    return "\n".join(
        [
            f'"""The symptom learned from {_word(incident)} is found in the line it was drawn from."""',
            "",
            f"from runbook.{name} import SYMPTOM",
            "",
            "",
            f"def test_{name}_is_found_in_its_line(registry):",
            f'    """Fast Branching names the learned symptom for the journal line of {_word(incident)}."""',
            f"    line = {proposal.line!r}",
            "    assert SYMPTOM in [s for s, _ in registry.fast_branching(line)]",
            "",
        ]
    )


def _comment(text: str) -> str:
    """Text safe on one comment line: `repr`'s escapes for every line break and control character."""
    return repr(text)[1:-1]


def _word(text: str) -> str:
    """An identifier such as an incident id, safe inside a docstring (anything else is dropped)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "", text)[:40] or "an incident"


def _title(proposal: Proposal) -> str:
    message = JOURNAL_LINE.match(proposal.line)
    text = message.group(2) if message else proposal.line
    return text[:40]
