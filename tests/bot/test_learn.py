"""The runbook learns: at `/nexy incident close`, journal lines that matched no declared symptom are
offered as proposed symptoms, and the export holds a ready-to-commit runbook item and its test."""
from __future__ import annotations

import re

from bot.learn import Proposal, item_stub, pattern_of, stub_test, unmatched
from runbook.item import Symptom
from runbook.registry import REGISTRY
from tests.runbook.test_fixes import OPERATOR, bot_messages

LINE = "Dec 02 00:07:36 Nexy python3[4242]: RuntimeError: websocket pool exhausted after 512 sessions in 'eu-1'"


def test_a_pattern_is_portable_and_general():
    """Numbers, hex ids and quoted values are made general, the rest is literal; `grep -E` and `re` read it alike."""
    pattern = pattern_of("RuntimeError: pool (id 0xdeadbeef01) exhausted after 512 sessions in 'eu-1'.")
    assert pattern == r"RuntimeError: pool \(id [0-9a-fx]+\) exhausted after [0-9]+ sessions in '[^']*'\."
    assert re.search(pattern, "RuntimeError: pool (id 0xabcdef0123) exhausted after 7 sessions in 'us-2'.")
    Symptom("5", "t", pattern, fix="restart")  # refuses what grep -E would not read


def test_only_error_lines_no_symptom_matches_are_proposed_once():
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
    (proposal,) = unmatched(outputs, REGISTRY.journal_patterns)
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
    assert "from runbook.item import Symptom, symptom" in document and "def test_learned_runtimeerror" in document
