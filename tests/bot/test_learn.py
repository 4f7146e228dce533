"""The runbook learns: at `/nexy incident close`, journal lines that matched no declared symptom are
offered as proposed symptoms, and the export holds a ready-to-commit runbook item and its test."""

from __future__ import annotations

import ast
import types
import re

import pytest

from bot.item import Symptom
from bot.learn import Proposal, item_stub, module_name, pattern_of, stub_test, unmatched
from bot.registry import Registry
from nexy.registry import modules
from tests.helpers import OPERATOR, bot_messages

LINE = "Dec 02 00:07:36 Nexy python3[4242]: RuntimeError: websocket pool exhausted after 512 sessions in 'eu-1'"


def test_a_pattern_is_portable_and_general():
    """Numbers, hex ids and quoted values are made general, the rest is literal; `grep -E` and `re` read it alike."""
    pattern = pattern_of("RuntimeError: pool (id 0xdeadbeef01) exhausted after 512 sessions in 'eu-1'.")
    assert pattern == r"RuntimeError: pool \(id [0-9a-fx]+\) exhausted after [0-9]+ sessions in '[^']*'\."
    assert re.search(pattern, "RuntimeError: pool (id 0xabcdef0123) exhausted after 7 sessions in 'us-2'.")
    Symptom("5", "t", pattern, fix="restart")  # refuses what grep -E would not read


def test_only_error_lines_no_symptom_matches_are_proposed_once(registry):
    """Declared symptoms, context lines and lines that are not errors are left out; a repeat is proposed once."""
    outputs = [
        "\n".join(
            [
                LINE,
                LINE.replace("512", "600"),
                "Dec 02 00:07:37 Nexy python3[4242]: PermissionError: [Errno 13] Permission denied: '/x/config.env'",
                "Dec 02 00:07:38 Nexy python3[4242]: Health server listening on 8080",
                "RESULT rc=0",
            ]
        )
    ]
    (proposal,) = unmatched(outputs, registry.journal_patterns)
    assert proposal.line == LINE
    assert proposal.pattern == r"RuntimeError: websocket pool exhausted after [0-9]+ sessions in '[^']*'"


def test_the_stub_and_its_test_are_valid_python_and_the_symptom_finds_its_line():
    """The export's item stub compiles, declares a portable Symptom that matches its line; its test compiles."""
    proposal = Proposal(LINE, pattern_of(LINE.split(": ", 1)[1]))
    stub = item_stub(proposal, "INC-3", ("5", "6.1"))
    compile(stub, "learned.py", "exec")
    compile(stub_test(proposal, "INC-3"), "test_learned.py", "exec")
    declared = re.search(r"Symptom\((.*)\)", stub)
    assert declared is not None
    symptom = eval(f"Symptom({declared.group(1)})", {"Symptom": Symptom})  # noqa: S307 - our own generated text
    assert symptom.find(LINE) == LINE


def test_the_learned_module_joins_the_registry_and_its_test_passes():
    """Committed as `runbook/<name>.py`, the stub is found by the registry and its generated test passes."""
    proposal = Proposal(LINE, pattern_of(LINE.split(": ", 1)[1]))
    name = f"runbook.{module_name(proposal.pattern)}"
    learned = types.ModuleType(name)
    exec(compile(item_stub(proposal, "INC-3", ("5",)), f"{name}.py", "exec"), vars(learned))  # noqa: S102
    registry = Registry.from_modules([*modules(), learned])
    assert learned.SYMPTOM in registry.symptoms and learned.SYMPTOM.section == "5"
    source = stub_test(proposal, "INC-3").replace(f"from {name} import SYMPTOM", "")
    namespace = {"SYMPTOM": learned.SYMPTOM}
    exec(compile(source, "test_learned.py", "exec"), namespace)  # noqa: S102
    namespace[f"test_{module_name(proposal.pattern)}_is_found_in_its_line"](registry)


def test_closing_offers_the_unmatched_line_and_the_export_holds_the_stub(serve_bot, vm_settings, slack, work, vm):
    """A journal line no symptom matches, seen by `status`, is offered at close and exported as an item stub."""
    settings = vm_settings(nexy_operators=OPERATOR)
    serve_bot(settings)
    vm.log("RuntimeError: websocket pool exhausted after 512 sessions")
    slack.slash_command("status", user=OPERATOR)
    work(settings)
    slack.slash_command("incident close the websocket pool ran out", user=OPERATOR)
    work(settings)
    offer = next(m for m in bot_messages(slack) if "The runbook could learn" in m.text)
    assert "RuntimeError: websocket pool exhausted after [0-9]+ sessions" in offer.text
    slack.slash_command("export INC-1", user=OPERATOR)
    work(settings)
    upload = next(m for m in slack.messages("C0OPS") if m.files)
    document = upload.files[0]["content"]
    assert "## Runbook updated: proposed symptoms" in document
    assert "from bot.item import Symptom, symptom" in document and "def test_learned_runtimeerror" in document


HOSTILE = [
    'Dec 02 00:07:36 Nexy python3[4242]: RuntimeError: """ + __import__(\'os\').system(\'touch /tmp/pwned\') + """',
    "Dec 02 00:07:36 Nexy python3[4242]: ValueError: ''' ; __import__('os').system('id') ; '''",
    "Dec 02 00:07:36 Nexy python3[4242]: KeyError: \\\" \\' \\\\ trailing backslash \\",
    "Dec 02 00:07:36 Nexy python3[4242]: OSError: # comment\nimport os; os.system('id')\n#",
    "Dec 02 00:07:36 Nexy python3[4242]: TypeError: \")\nSYMPTOM = __import__('os').system('id')\n(\"",
    "Dec 02 00:07:36 Nexy python3[4242]: Error: \r__import__('subprocess').run(['id'])\x0c\u2028\x00",
    "Dec 02 00:07:36 Nexy python3[4242]: Failed: {__import__('os').system('id')} f\"{exec('1')}\"",
]


def _names(tree: ast.AST) -> set[str]:
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def _imports(body: list[ast.stmt]) -> list[tuple[str | None, list[str]]]:
    return [(n.module, [a.name for a in n.names]) for n in body if isinstance(n, ast.ImportFrom | ast.Import)]


@pytest.mark.parametrize("line", HOSTILE)
def test_a_hostile_journal_line_stays_a_literal_in_the_stub_and_its_test(line):
    """Quotes, triple quotes, backslashes, newlines and `__import__` in a line never become code."""
    message = line.split(": ", 1)[1]
    proposal = Proposal(line, pattern_of(message))
    stub = ast.parse(item_stub(proposal, 'INC-3"""\n__import__(\'os\')', ("5", "6.1\nimport os")))
    docstring, *statements = stub.body
    assert isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant)
    assert _imports(statements) == [("__future__", ["annotations"]), ("bot.item", ["Symptom", "symptom"])]
    (declaration,) = [s for s in statements if not isinstance(s, ast.ImportFrom)]
    assert isinstance(declaration, ast.Assign) and [t.id for t in declaration.targets] == ["SYMPTOM"]  # type: ignore[attr-defined]
    allowed = (ast.Call, ast.Name, ast.Load, ast.Store, ast.Constant, ast.keyword)
    assert all(isinstance(node, allowed) for node in ast.walk(declaration.value))
    assert _names(stub) == {"SYMPTOM", "symptom", "Symptom"}
    literals = [n.value for n in ast.walk(declaration.value) if isinstance(n, ast.Constant)]
    assert proposal.pattern in literals
    test = ast.parse(stub_test(proposal, "INC-3\n__import__('os')"))
    assert _imports(test.body) == [
        (f"runbook.{module_name(proposal.pattern)}", ["SYMPTOM"]),
    ]
    (function,) = [s for s in test.body if isinstance(s, ast.FunctionDef)]
    assert len(test.body) == 3 and [a.arg for a in function.args.args] == ["registry"] and not function.decorator_list
    assert _names(test) == {"SYMPTOM", "registry", "line", "s", "_"}
    calls = [ast.unparse(n.func) for n in ast.walk(test) if isinstance(n, ast.Call)]
    assert calls == ["registry.fast_branching"]
    assert line in [n.value for n in ast.walk(test) if isinstance(n, ast.Constant)]
