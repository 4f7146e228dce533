"""The registry: every table is built from the item modules, and a command named anywhere must exist."""
from __future__ import annotations

import re
import subprocess
import types
from pathlib import Path

import pytest

from bot.item import Check, Route, Symptom
from bot.registry import Registry, declarations
from bot.wording.refs import command
from handlers.parser import Request
from nexy.registry import modules

ROOT = Path(__file__).resolve().parents[2]


def _ok(ctx) -> str:
    """ok: does nothing"""
    return "ok"


def test_every_item_module_is_discovered(registry):
    """Each runbook item of today is in the command table, built from its module alone."""
    assert {"health", "status", "preflight", "queue", "azure", "deploy", "release", "deps", "version", "restart",
            "fix", "help", "incident", "incident new", "incident close", "history", "history all",
            "export"} <= set(registry.commands)
    assert {"config-perms", "execstart", "restart", "deps", "version"} <= set(registry.fixes)
    assert [s.section for s in registry.symptoms] == ["6.1", "6.2", "6.3", "6", "3"]


def _declared():
    return declarations(modules())


def test_a_symptom_naming_a_missing_command_fails_the_build():
    """A symptom whose fix the parser refuses (`fix quantum`) stops the registry from building."""
    found = _declared()
    bad = Symptom("3", "Dependency Mismatch", r"ImportError", fix="fix quantum")
    Registry(found.checks, found.fixes, found.symptoms, found.probes, found.references)  # builds without it
    with pytest.raises(ValueError, match="fix quantum"):
        Registry(found.checks, found.fixes, [*found.symptoms, (bad, "test")], found.probes, found.references)


def test_a_duplicate_command_fails_the_build():
    """Two items declaring the same command stop the registry from building."""
    found = _declared()
    twin = Check("status", "5", "a second status", Route.VM, _ok)
    with pytest.raises(ValueError, match="duplicate command 'status'"):
        Registry([*found.checks, twin], found.fixes, found.symptoms)


def test_a_message_recommending_a_missing_command_fails_the_build():
    """A message module that names `/nexy fix quantum` (refused by the parser) stops the build."""
    message = types.ModuleType("bot.wording.quantum")
    message.QUANTUM = command("fix quantum")  # type: ignore[attr-defined]
    assert message.QUANTUM == "`/nexy fix quantum`"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"`/nexy fix quantum` \(in bot.wording.quantum\)"):
        Registry.from_modules([*modules(), message])


def test_the_registry_is_the_same_whatever_order_its_modules_come_in(registry):
    """Given in reverse, or with a module re-exporting another's items, the modules build the same tables."""
    given = modules()
    again = Registry.from_modules(reversed(given))
    assert list(again.commands) == list(registry.commands) and again.symptoms == registry.symptoms
    reexport = types.ModuleType("commands.again")
    vars(reexport).update({k: v for module in given if module.__name__.startswith("runbook.") for k, v in vars(module).items()})
    doubled = Registry.from_modules([*given, reexport])
    assert list(doubled.commands) == list(registry.commands) and list(doubled.fixes) == list(registry.fixes)
    assert doubled.symptoms == registry.symptoms and doubled.help_lines() == registry.help_lines()


def test_every_command_written_in_the_source_is_accepted(parser):
    """Every `/nexy <words>` written in the product code (messages, reports, help) parses as a command."""
    found = set()
    for folder in ("bot", "jobs", "runbook", "handlers"):
        for path in (ROOT / folder).rglob("*.py"):
            for words in re.findall(r"`/nexy ([a-z][a-z -]*[a-z])`", path.read_text(encoding="utf-8")):
                found.add(words.strip())
    assert found, "the scan found no command at all"
    for words in found:
        assert isinstance(parser.parse(words), Request), words


def test_symptom_patterns_read_the_same_in_grep(registry):
    """Each declared signature matches its runbook line in `grep -E` as it does in Python."""
    lines = {
        "6.1": "PermissionError: [Errno 13] Permission denied: '/home/azureuser/voice-assistant/config.env'",
        "6.2": "python3: can't open file '/home/azureuser/voice-assistant/main.py': [Errno 2]",
        "6.3": "ERROR Не удалось инициализировать TextProcessor",
        "6": "google.genai.errors.ClientError: 400 API_KEY_INVALID",
        "3": "ModuleNotFoundError: No module named 'grpc'",
    }
    for symptom in registry.symptoms:
        line = lines[symptom.section]
        assert symptom.find(line) == line
        grep = subprocess.run(["grep", "-E", symptom.pattern], input=line, capture_output=True, text=True)
        assert grep.returncode == 0, symptom.pattern


def test_every_script_beside_the_items_is_declared_by_one(registry):
    """Each runbook/*.sh is run by an item that declares it (no stray script), and each declared script exists."""
    declared = {file.path for item in registry.checks.values() for file in item.scripts}
    declared |= {file.path for fix in registry.fixes.values() for file in (fix.plan_script, fix.apply_script)}
    assert declared == set((ROOT / "runbook").glob("*.sh"))


def test_unportable_pattern_is_refused_at_declaration():
    """A pattern grep -E reads differently (`\\d`, `(?:`) is refused where it is declared."""
    with pytest.raises(ValueError, match="grep -E"):
        Symptom("9", "x", r"error \d+", fix="restart")


def test_every_button_leads_to_a_listener():
    """Every button the product code posts uses an action id the handlers listen for (bot.contract.Action)."""
    import ast

    from bot.contract import Action

    actions = []
    for folder in ("bot", "jobs", "runbook"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "button" and len(node.args) > 1:
                    actions.append((path.name, node.args[1]))
    assert len(actions) >= 3, "the scan found too few buttons"
    for where, action in actions:
        assert isinstance(action, ast.Attribute) and getattr(action.value, "id", "") == "Action", where
        assert getattr(Action, action.attr) in Action.ALL, (where, action.attr)


def test_runbook_command_lists_every_section_with_its_commands(bot, slack, parser):
    """`/nexy runbook` answers at once with each section, its symptoms and its commands, all of which parse."""
    text = slack.slash_command("runbook").json()["text"]
    for section in ("*0.1 Incident Guardrails*", "*3 Dependency Mismatch", "*6.1 Config Permission Denied*",
                    "*6.3 TextProcessor Init Failure*", "*7-9 Release"):
        assert section in text, section
    assert "→ `/nexy fix api-key`" in text and "one run-command" in text
    for words in re.findall(r"`/nexy ([a-z][a-z -]*[a-z])", text):
        parsed = parser.parse(words)
        assert isinstance(parsed, Request) or " takes " in parsed.problem or " needs " in parsed.problem, words
