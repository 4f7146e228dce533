"""Output is redacted whole before anything cuts it: a private key whose BEGIN line Azure's 4 KB
tail cut away, and a secret cut in half by a later tail, leave no fragment anywhere."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

from bot import render
from clients.executors import AzureExecutor
from clients.runcommand import AZURE_OUTPUT_LIMIT, Script, parse

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures_scripts"


def _key_lines(n: int) -> list[str]:
    return [base64.b64encode(secrets.token_bytes(48)).decode() for _ in range(n)]


def test_a_key_body_whose_begin_line_azure_cut_leaves_no_line(vm_settings):
    """Azure keeps the last 4 KB; the key's BEGIN line is gone, yet none of its body lines comes back."""
    lines = _key_lines(28)
    result = AzureExecutor(vm_settings()).run(
        Script("key-at-the-tail", (("NEXY_KEY_LINES", ",".join(lines)),), directory=FIXTURES)
    )
    assert result.cut and "BEGIN RSA PRIVATE KEY" not in result.output, result.output[:300]
    assert "RuntimeError: TLS context failed to load the deploy key" in result.output
    for line in lines:
        for piece in (line[:16], line[24:40], line[-16:]):
            assert piece not in result.output, piece


def test_a_line_azure_cut_at_its_start_is_left_out():
    """The first line of a cut output began before the cut (a secret without its name): it is not shown."""
    stdout = "ssword=hunter2-the-rest-of-it\n" + "x" * (AZURE_OUTPUT_LIMIT - 40) + "\nlast line\n@@nexy-result rc=0"
    result = parse("x", stdout, "", limit=AZURE_OUTPUT_LIMIT)
    assert result.cut and "hunter2" not in result.output and "last line" in result.output


def test_a_tail_that_cuts_a_secret_in_half_shows_no_half():
    """Redaction runs on the whole output before the inline tail: the tail cannot start mid-secret."""
    secret = "AIzaSy" + "Q" * 33
    stdout = f"GEMINI_API_KEY={secret}\n" + "y" * 30 + "\n@@nexy-result rc=0"
    output = parse("x", stdout, "").output
    for limit in range(20, len(output)):
        assert "QQQQQQQQ" not in render.tail(output, limit)
