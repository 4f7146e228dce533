"""The command grammar: typed requests from one table, help from it, and no input that raises."""
from __future__ import annotations

import random
import string

from handlers.parser import ParseError, Request


def test_known_command_parses_to_request(parser):
    """`health` parses into a Request with no arguments."""
    for text in ("health", "  HEALTH "):
        parsed = parser.parse(text)
        assert isinstance(parsed, Request) and (parsed.command, parsed.args, parsed.vm) == ("health", (), "")


def test_empty_text_is_help(parser):
    """Bare `/nexy` is help."""
    parsed = parser.parse("")
    assert isinstance(parsed, Request) and (parsed.command, parsed.args) == ("help", ())


def test_typo_gets_suggestion(parser):
    """A near miss suggests the closest command."""
    result = parser.parse("helth")
    assert isinstance(result, ParseError) and result.suggestion == "health"


def test_far_miss_gets_no_suggestion(parser):
    """Gibberish gets help but no made-up suggestion."""
    result = parser.parse("zzzzqqq")
    assert isinstance(result, ParseError) and result.suggestion is None


def test_user_text_quoted_back_is_defanged(parser):
    """Backticks and mentions in a bad command are not echoed back raw."""
    result = parser.parse("`<!channel>`")
    assert isinstance(result, ParseError)
    assert "<!channel>" not in result.problem and "``" not in result.problem


def test_help_lists_exactly_what_the_parser_takes(parser):
    """Every help line shows a command the parser accepts, and every command and fix target has a line."""
    usages = [line.split("`")[1] for line in parser.help_lines()]
    fixed_words = [" ".join(w for w in usage.split()[1:] if w[0] not in "<[") for usage in usages]
    named = set()
    for words in fixed_words:  # each parses, or only misses its required arguments
        parsed = parser.parse(words)
        assert isinstance(parsed, Request) or " takes " in parsed.problem or " needs " in parsed.problem, (words, parsed)
        named.add(parsed.command if isinstance(parsed, Request) else parser.registry.lookup(words.split())[0].name)
    assert named == set(parser.registry.commands)
    assert {w.split()[1] for w in fixed_words if w.startswith("fix ")} == set(parser.registry.commands["fix"].args[0].choices)


def test_parse_never_raises_on_random_input(parser):
    """Two thousand random strings (unicode, control characters, long) all parse or fail cleanly."""
    rng = random.Random(7)
    alphabet = string.printable + "éü漢字🙂\u200b\u00a0\x00"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 700)))
        assert isinstance(parser.parse(text), (Request, ParseError))
    for odd in (None, 42, b"health", ["health"]):
        assert isinstance(parser.parse(odd), (Request, ParseError))
