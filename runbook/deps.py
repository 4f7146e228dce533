"""Runbook 3, Dependency Mismatch After Deploy: import errors after a deploy.

The symptom is declared here; the check and the fix are not commands yet, so Fast Branching
says the runbook's steps to run by hand.
"""

from __future__ import annotations

from bot.wording.refs import command
from runbook.item import Symptom, symptoms

RESTART = command("restart")

symptoms(
    __name__,
    Symptom(
        "3",
        "Dependency Mismatch After Deploy",
        r"ModuleNotFoundError|ImportError",
        rank=2,
        manual=(
            "in the app's venv, `pip install --upgrade -r server/requirements.txt` and the protobuf/grpcio "
            f"pins of section 3, then {RESTART}."
        ),
    ),
)
