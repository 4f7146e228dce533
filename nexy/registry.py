"""The registry of this process, built once here, in the composition root, and passed down.

Discovery imports every module of the shared messages (`bot.wording`), of the runbook and of the
bot's own commands (so adding an item is adding a module) and gives them to the kernel's
`Registry.from_modules`; nothing below this layer imports them or keeps a registry of its own.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from bot.registry import Registry

PACKAGES = ("bot.wording", "runbook", "commands")
"""The packages whose modules declare commands, fixes, symptoms, probes or name commands in messages."""


def modules(packages: tuple[str, ...] = PACKAGES) -> list[ModuleType]:
    """Every module of these packages (not `_private` ones), imported, in name order."""
    found = []
    for name in packages:
        package = importlib.import_module(name)
        for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if not module.name.startswith("_"):
                found.append(importlib.import_module(f"{name}.{module.name}"))
    return found


def build_registry() -> Registry:
    """The registry of every declared item: build it once per process and pass it in."""
    return Registry.from_modules(modules())
