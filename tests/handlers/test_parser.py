"""The command grammar: typed requests from one table, help from it, and no input that raises."""
from __future__ import annotations

import random
import string

from handlers.parser import COMMANDS, REGISTRY, ParseError, Request, help_lines, parse


def test_known_command_parses_to_request():
    """`health` parses into a Request with no arguments."""
    assert parse("health") == Request("health")
    assert parse("  HEALTH ") == Request("health")


def test_empty_text_is_help():
    """Bare `/nexy` is help."""
    assert parse("") == Request("help")


def test_typo_gets_suggestion():
    """A near miss suggests the closest command."""
    result = parse("helth")
    assert isinstance(result, ParseError) and result.suggestion == "health"


def test_far_miss_gets_no_suggestion():
    """Gibberish gets help but no made-up suggestion."""
    result = parse("zzzzqqq")
    assert isinstance(result, ParseError) and result.suggestion is None


def test_user_text_quoted_back_is_defanged():
    """Backticks and mentions in a bad command are not echoed back raw."""
    result = parse("`<!channel>`")
    assert isinstance(result, ParseError)
    assert "<!channel>" not in result.problem and "``" not in result.problem


def test_help_lists_exactly_what_the_parser_takes():
    """Every help line shows a command the parser accepts, and every command and fix target has a line."""
    usages = [line.split("`")[1] for line in help_lines()]
    fixed_words = [" ".join(w for w in usage.split()[1:] if w[0] not in "<[") for usage in usages]
    named = set()
    for words in fixed_words:  # each parses, or only misses its required arguments
        parsed = parse(words)
        assert isinstance(parsed, Request) or " takes " in parsed.problem or " needs " in parsed.problem, (words, parsed)
        named.add(parsed.command if isinstance(parsed, Request) else REGISTRY.lookup(words.split())[0].name)
    assert named == set(COMMANDS)
    assert {w.split()[1] for w in fixed_words if w.startswith("fix ")} == set(COMMANDS["fix"].args[0].choices)


def test_parse_never_raises_on_random_input():
    """Two thousand random strings (unicode, control characters, long) all parse or fail cleanly."""
    rng = random.Random(7)
    alphabet = string.printable + "éü漢字🙂\u200b\u00a0\x00"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 700)))
        assert isinstance(parse(text), (Request, ParseError))
    for odd in (None, 42, b"health", ["health"]):
        assert isinstance(parse(odd), (Request, ParseError))
