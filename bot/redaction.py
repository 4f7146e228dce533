"""Secret redaction: every text bound for Slack or a log passes through `redact` first.

Known token shapes (Slack, GitHub, Google API keys, Azure/JWT bearer tokens, private keys)
and the value of any `NAME=value` whose name says it is secret are replaced by a marker that
keeps only the name or kind, never a part of the value.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MARK = "[REDACTED]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S),
        f"{MARK}:private-key",
    ),
    (re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{8,}"), f"{MARK}:slack-token"),
    (re.compile(r"\bxapp-[A-Za-z0-9-]{8,}"), f"{MARK}:slack-app-token"),
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"), f"{MARK}:github-token"),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{20,}"), f"{MARK}:google-api-key"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), f"{MARK}:jwt"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {MARK}"),
    (re.compile(r"(?i)(https?://)[^/\s:@]+:[^/\s@]+@"), rf"\1{MARK}@"),
    # NAME=value / NAME: value / "name": "value" where NAME says secret
    (
        re.compile(
            r"""(?ix)
            (["']?\b(?:[A-Z0-9]+[_.-])*(?:API_?KEY|KEY|SECRET|TOKEN|PASSWORD|PASSWD|PWD|CREDENTIALS?|SIG|SAS)(?:[_.-][A-Z0-9]+)*["']?
             \s*[=:]\s*)
            (?!\[REDACTED)(["']?)[^\s"',;}]{4,}\2
            """
        ),
        rf"\1\2{MARK}\2",
    ),
)


def redact(text: str) -> str:
    """The text with every secret-looking value replaced by a marker."""
    if not text:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_json(value: Any) -> Any:
    """Redact every string inside a JSON-like value (Block Kit blocks, audit entries)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    if isinstance(value, tuple):
        return tuple(redact_json(item) for item in value)
    if isinstance(value, dict):
        return {key: redact_json(item) for key, item in value.items()}
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message (and drops args) of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the raw text, redacted
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def install_log_redaction() -> None:
    """Redact every record that reaches the root logger's handlers."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "rq.worker", "azure", "github"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
