"""The runbook as data: symptoms with the section that fits them, the 0.1 guardrails, and the
parameters every VM script receives. Adding an edge case is one entry here, one script, one test.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from bot.settings import Settings


@dataclass(frozen=True)
class Symptom:
    """A journal signature, the runbook section it means, and what to run next."""

    section: str
    title: str
    pattern: re.Pattern[str]
    next_step: str

    def find(self, text: str) -> str | None:
        """The first line of text that shows this symptom."""
        for line in text.splitlines():
            if self.pattern.search(line):
                return line.strip()
        return None


SYMPTOMS: tuple[Symptom, ...] = (
    Symptom("6.1", "Config Permission Denied",
            re.compile(r"PermissionError: \[Errno 13\] Permission denied: .*config\.env"), "/nexy fix config-perms"),
    Symptom("6.2", "ExecStart Path Drift", re.compile(r"can't open file '[^']*main\.py'"), "/nexy fix execstart"),
    Symptom("6.3", "TextProcessor Init Failure",
            re.compile(r"Не удалось инициализировать TextProcessor|TextProcessor.*(?:fail|error|Error)"), "/nexy fix api-key"),
    Symptom("6", "Gemini API Key Expired", re.compile(r"API_KEY_INVALID|API key expired"), "/nexy fix api-key"),
    Symptom("3", "Dependency Mismatch After Deploy", re.compile(r"ModuleNotFoundError|ImportError"), "/nexy fix deps"),
)


def match_symptoms(text: str) -> list[tuple[Symptom, str]]:
    """Every symptom present in text, most specific first, with the line that shows it."""
    found = []
    for symptom in SYMPTOMS:
        line = symptom.find(text)
        if line is not None:
            found.append((symptom, line))
    return found


@dataclass(frozen=True)
class Guardrail:
    """One section 0.1 guardrail: the fact the preflight script records, and the value that passes."""

    fact: str
    passing: str
    description: str

    def describe(self, settings: Settings) -> str:
        return self.description.format(app_dir=settings.nexy_app_dir, user=settings.nexy_service_user)


GUARDRAILS: tuple[Guardrail, ...] = (
    Guardrail("pf_config_exists", "yes", "`{app_dir}/config.env` exists"),
    Guardrail("pf_api_key", "present", "`GEMINI_API_KEY` is present and not a placeholder"),
    Guardrail("pf_config_readable", "yes", "`config.env` is readable by `{user}`"),
    Guardrail("pf_execstart_ok", "yes", "`ExecStart` points to `server/main.py`"),
)


def vm_parameters(settings: Settings) -> tuple[tuple[str, str], ...]:
    """The validated settings every VM script receives (never user text)."""
    return (
        ("NEXY_APP_DIR", settings.nexy_app_dir),
        ("NEXY_SERVICE", settings.nexy_service),
        ("NEXY_SERVICE_USER", settings.nexy_service_user),
        ("NEXY_JOURNAL_LINES", str(settings.nexy_journal_lines)),
    )
