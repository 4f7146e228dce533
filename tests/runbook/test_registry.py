"""The registry: every table is built from the item modules, and a command named anywhere must exist."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from bot.commands import Request, parse
from bot.wording.refs import REFERENCED
from runbook.item import DECLARED, Check, Route, Symptom
from runbook.registry import REGISTRY, Registry

ROOT = Path(__file__).resolve().parents[2]


def _ok(ctx) -> str:
    """ok: does nothing"""
    return "ok"


def test_every_item_module_is_discovered():
    """Each runbook item of today is in the command table, built from its module alone."""
    assert set(REGISTRY.commands) == {"health", "status", "preflight", "queue", "azure", "deploy", "release",
                                      "restart", "fix", "help", "incident", "incident new", "incident close",
                                      "history", "history all", "export"}
    assert set(REGISTRY.fixes) == {"config-perms", "execstart", "restart"}
    assert [s.section for s in REGISTRY.symptoms] == ["6.1", "6.2", "6.3", "6", "3"]


def test_a_symptom_naming_a_missing_command_fails_the_build():
    """A symptom whose fix the parser refuses (`fix deps` today) stops the registry from building."""
    bad = Symptom("3", "Dependency Mismatch", r"ImportError", fix="fix deps")
    with pytest.raises(ValueError, match="fix deps"):
        Registry(DECLARED.checks, DECLARED.fixes, [*DECLARED.symptoms, (bad, "test")])


def test_a_duplicate_command_fails_the_build():
    """Two items declaring the same command stop the registry from building."""
    twin = Check("status", "5", "a second status", Route.VM, _ok)
    with pytest.raises(ValueError, match="duplicate command 'status'"):
        Registry([*DECLARED.checks, twin], DECLARED.fixes, DECLARED.symptoms)


def test_a_message_recommending_a_missing_command_fails_the_build():
    """A shared message that names `/nexy fix api-key` (refused by the parser) stops the build."""
    REFERENCED["fix api-key"] = "a test message"
    try:
        with pytest.raises(ValueError, match="fix api-key"):
            Registry(DECLARED.checks, DECLARED.fixes, DECLARED.symptoms)
    finally:
        del REFERENCED["fix api-key"]


def test_every_command_written_in_the_source_is_accepted():
    """Every `/nexy <words>` written in the product code (messages, reports, help) parses as a command."""
    found = set()
    for folder in ("bot", "jobs", "runbook", "handlers"):
        for path in (ROOT / folder).rglob("*.py"):
            for words in re.findall(r"`/nexy ([a-z][a-z -]*[a-z])`", path.read_text(encoding="utf-8")):
                found.add(words.strip())
    assert found, "the scan found no command at all"
    for words in found:
        assert isinstance(parse(words), Request), words


def test_symptom_patterns_read_the_same_in_grep():
    """Each declared signature matches its runbook line in `grep -E` as it does in Python."""
    lines = {
        "6.1": "PermissionError: [Errno 13] Permission denied: '/home/azureuser/voice-assistant/config.env'",
        "6.2": "python3: can't open file '/home/azureuser/voice-assistant/main.py': [Errno 2]",
        "6.3": "ERROR Не удалось инициализировать TextProcessor",
        "6": "google.genai.errors.ClientError: 400 API_KEY_INVALID",
        "3": "ModuleNotFoundError: No module named 'grpc'",
    }
    for symptom in REGISTRY.symptoms:
        line = lines[symptom.section]
        assert symptom.find(line) == line
        grep = subprocess.run(["grep", "-E", symptom.pattern], input=line, capture_output=True, text=True)
        assert grep.returncode == 0, symptom.pattern


def test_every_script_beside_the_items_is_declared_by_one():
    """Each runbook/*.sh is run by an item that declares it (no stray script), and each declared script exists."""
    declared = {file.path for item in REGISTRY.checks.values() for file in item.scripts}
    declared |= {file.path for fix in REGISTRY.fixes.values() for file in (fix.plan_script, fix.apply_script)}
    assert declared == set((ROOT / "runbook").glob("*.sh"))


def test_unportable_pattern_is_refused_at_declaration():
    """A pattern grep -E reads differently (`\\d`, `(?:`) is refused where it is declared."""
    with pytest.raises(ValueError, match="grep -E"):
        Symptom("9", "x", r"error \d+", manual="by hand")
    with pytest.raises(ValueError, match="by hand"):
        Symptom("9", "x", r"error", fix=None)


def test_every_button_leads_to_a_listener():
    """Every button the product code posts uses an action id the handlers listen for (bot.contract.Action)."""
    from bot.contract import Action

    calls = []
    for folder in ("bot", "jobs", "runbook"):
        for path in (ROOT / folder).rglob("*.py"):
            calls += re.findall(r"render\.button\(([^)]*)\)", path.read_text(encoding="utf-8"))
    assert calls, "the scan found no button at all"
    for call in calls:
        action = call.split(",")[1].strip()
        assert action.startswith("Action.") and getattr(Action, action.split(".")[1]) in Action.ALL, call
