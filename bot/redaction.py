"""Secret redaction: every text bound for Slack, a file in a thread, or a log passes through `redact`.

Four passes, each replacing a value by a marker that keeps at most its kind, never a part of it:

1. the exact values of every secret this process holds (`remember`: its Slack, Azure and GitHub
   tokens, the signing secret, a key typed in a form), wherever they appear;
2. known shapes: private keys, Slack, GitHub and Google keys, JWTs, bearer/basic credentials,
   the user-info of a URL of any scheme (`redis://:pass@host`);
3. by structure: the value of `name=value`, `name: value` and `"name": "value"` (env dumps,
   YAML, JSON, query strings) and of `--name value` (CLI flags) whose name says secret in any
   case style (`GEMINI_API_KEY`, `clientSecret`, `client-secret`, `accessToken`, `AccountKey`,
   `sig`, `sas`); a name that only contains such a word (`KeyError`, `monkey`, `ssh_key_path`) is
   left alone, so tracebacks and symptom lines stay readable;
4. a long high-entropy word right after a secret-looking word (`client secret is 8Q~...`).

No general-purpose detector (detect-secrets' entropy plugins) runs as a further pass: they flag
commit SHAs, sha256 digests and build ids, which the bot's reports must show as evidence.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import Counter
from typing import Any

MARK = "[REDACTED]"

_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
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
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]*:[^/\s@]+@"), rf"\1{MARK}@"),
)

# Names whose LAST word says secret; and words that say it anywhere in a name.
_SECRET_LAST = frozenset(
    {
        "secret",
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "token",
        "key",
        "apikey",
        "accesskey",
        "credential",
        "credentials",
        "sig",
        "signature",
        "sas",
        "connectionstring",
    }
)
_SECRET_ANY = frozenset({"password", "passwd", "secret", "credentials", "credential"})

# A name and its separator only: the value is read after a secret name, so that a value which is
# itself a name (`said: client_secret: x`) is never consumed by the pair before it.
# A name starts only where a token starts (the lookbehind): tried at every position inside a long
# word, the match was quadratic (a 50,000-character token took 49 s; now milliseconds).
_NAMED = re.compile(
    r"""(?<![A-Za-z0-9_.-])(?P<name>["']?[A-Za-z][A-Za-z0-9_.-]*["']?)[ \t]*[=:][ \t]*"""
    r"""|(?P<flag>--[A-Za-z][A-Za-z0-9-]*)[ =]"""
)
_VALUE = re.compile(r""""[^"\n]*"|'[^'\n]*'|[^\s"',;}&)\]]+""")
_FLAG_VALUE = re.compile(r"\S+")
_NEAR = re.compile(
    r"(?i)\b(?:secret|password|passwd|token|api[ _-]?key|credentials?)\b(?P<gap>(?:[^\w\n]+\w+){0,2}?[^\w\n]+)"
    r"(?P<value>[A-Za-z0-9+/_~.-]{20,}={0,2})(?![\w=:])"
)
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

_known: set[str] = set()
_known_lock = threading.Lock()
_known_pattern: re.Pattern[str] | None = None


def remember(*values: str | None) -> None:
    """Redact these exact values from now on, wherever they appear (a secret this process holds)."""
    global _known_pattern
    with _known_lock:
        added = {v for v in values if v and len(v) >= 8} - _known
        if added:
            _known.update(added)
            ordered = sorted(_known, key=len, reverse=True)
            _known_pattern = re.compile("|".join(map(re.escape, ordered)))


def is_secret_name(name: str) -> bool:
    """Whether a key, variable or flag name says its value is secret, in any case style."""
    words = [w.lower() for part in re.split(r"[_.\-\s]+", name.strip("\"'-")) for w in _WORDS.findall(part)]
    if not words:
        return False
    return words[-1] in _SECRET_LAST or "".join(words[-2:]) in _SECRET_LAST or any(w in _SECRET_ANY for w in words)


def _entropy(word: str) -> float:
    counts = Counter(word)
    return -sum(n / len(word) * math.log2(n / len(word)) for n in counts.values())


def _pairs(text: str) -> str:
    """Redact the value after every secret-looking `name=`, `name:` or `--name`."""
    out, pos = [], 0
    for named in _NAMED.finditer(text):
        name = named.group("name") or named.group("flag")
        if named.start() < pos or not is_secret_name(name):
            continue
        found = (_FLAG_VALUE if named.group("flag") else _VALUE).match(text, named.end())
        if found is None:
            continue
        value = found.group(0)
        quote = value[0] if value[:1] in ("'", '"') and value[-1:] == value[:1] and len(value) > 1 else ""
        inner = value[1:-1] if quote else value
        if not inner or text.startswith(MARK, found.start() + len(quote)):
            continue
        out.append(text[pos : found.start()] + f"{quote}{MARK}{quote}")
        pos = found.end()
    out.append(text[pos:])
    return "".join(out)


def _near(match: re.Match[str]) -> str:
    value = match.group("value")
    mixed = any(c.isdigit() for c in value) and any(c.isalpha() for c in value)
    if not mixed or _entropy(value) < 3.5:  # words and paths are not secrets
        return match.group(0)
    return match.group(0)[: match.start("value") - match.start()] + MARK


def redact(text: str) -> str:
    """The text with every secret-looking value replaced by a marker."""
    if not text:
        return text
    pattern = _known_pattern
    if pattern is not None:
        text = pattern.sub(f"{MARK}:known", text)
    for shape, replacement in _SHAPES:
        text = shape.sub(replacement, text)
    text = _pairs(text)
    return _NEAR.sub(_near, text)


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
