"""Runbook 6 and 6.3: the Gemini API key expired, and the TextProcessor (LLM) failing at start-up.

The symptoms are declared here; the fix (a new key typed in a modal) is not a command yet, so
Fast Branching says the runbook's steps to run by hand.
"""

from __future__ import annotations

from bot.wording.refs import command
from runbook.item import Symptom, symptoms

RESTART = command("restart")

_BY_HAND = f"update `GEMINI_API_KEY` in `config.env` on the VM, check a minimal Gemini call works, then {RESTART}."

symptoms(
    __name__,
    Symptom(
        "6.3",
        "TextProcessor Init Failure",
        r"Не удалось инициализировать TextProcessor|TextProcessor.*(fail|error|Error)",
        manual=_BY_HAND,
    ),
    Symptom("6", "Gemini API Key Expired", r"API_KEY_INVALID|API key expired", rank=1, manual=_BY_HAND),
)
