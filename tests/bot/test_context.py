"""Items see one surface: a runbook item or a bot command is declared with the kernel and the clients only,
so importing every one of them loads none of the engine, the web side or the composition root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

IMPORT_EVERY_ITEM = """
import importlib, pkgutil, sys
import commands, runbook
for package in (runbook, commands):
    for found in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{found.name}")
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in ("jobs", "handlers", "nexy"))))
"""


def test_importing_every_item_loads_no_engine_module():
    """A fresh interpreter that imports every module of runbook/ and commands/ has no jobs, handlers or nexy module."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERY_ITEM], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == []
