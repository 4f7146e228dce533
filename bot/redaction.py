"""Secret redaction: every text bound for Slack, a file in a thread, a log or the timeline passes
through `redact`, always on the WHOLE text, before anything cuts or tails it (a secret split by a
cut would survive as a fragment no pass recognises).

First the text is normalised (Unicode NFKC, format characters such as zero-width spaces removed,
percent-encoding decoded twice at most), so `ＧＥＭＩＮＩ_API_KEY`, `pass\u200bword=` and
`password%3Dhunter2` are read as what they say. Then five passes, each replacing a value by a
marker that keeps at most its kind, never a part of it:

1. the exact values of every secret this process holds (`remember`: its Slack, Azure and GitHub
   tokens, the signing secret, a key typed in a form, until it is `forget`-ten), wherever they appear;
2. known shapes: private keys (PEM, PGP, PuTTY: with their BEGIN line, or only their body when a
   cut took the head away), Slack, GitHub, Google, AWS and other tokens, JWTs, bearer/basic
   credentials, Slack/Discord/Teams webhook URLs, the user-info of a URL of any scheme;
3. by structure: the value of `name=value`, `name: value`, `"name": "value"` (env dumps, YAML,
   JSON, query strings, connection strings) and of `--name value` (CLI flags) whose name says
   secret in any case style (`DB_PASSWORD`, `SESSION_COOKIE`, `clientSecret`, `AccountKey`,
   `sig`, `dsn`, `webhook`); headers (`Authorization:`, `Cookie:`) to the end of their line; a name
   that only contains such a word (`KeyError`, `monkey`, `ssh_key_path`) is left alone, so
   tracebacks and symptom lines stay readable;
4. CLI credentials: `mysql -pSECRET`, `curl -u user:pass`, `docker login -p x`, `sshpass -p x`,
   `.netrc`'s `password x`;
5. a long high-entropy word right after a secret-looking word (`client secret is 8Q~...`).

A text in which nothing was found comes back exactly as it was (not normalised). Every pass is
linear in the text's length: a 1 MB line redacts in about a second.

No general-purpose detector (detect-secrets' entropy plugins) runs as a further pass: they flag
commit SHAs, sha256 digests and build ids, which the bot's reports must show as evidence.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
import unicodedata
from collections import Counter
from typing import Any
from urllib.parse import unquote

MARK = "[REDACTED]"

_FORMAT_CHARS = re.compile(
    "[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000e0001-\U000e007f]"
)
"""Unicode format characters (zero-width spaces and joiners, bidi controls, soft hyphens, tags):
invisible, so a secret split by one reads whole to a person but not to a pattern."""

_PRIVATE = r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
_PRIVATE_END = r"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"

# A scheme starts only where a token starts (the lookbehinds): tried inside every word, a match that
# crosses dots (`a.b.c...`) would be quadratic.
_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"{_PRIVATE}.*?(?:{_PRIVATE_END}|\Z)", re.S), f"{MARK}:private-key"),
    (re.compile(r"PuTTY-User-Key-File-[0-9]+:.*?(?:Private-MAC: *\S+|\Z)", re.S), f"{MARK}:private-key"),
    (re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{8,}"), f"{MARK}:slack-token"),
    (re.compile(r"\bxapp-[A-Za-z0-9-]{8,}"), f"{MARK}:slack-app-token"),
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"), f"{MARK}:github-token"),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"), f"{MARK}:gitlab-token"),
    (re.compile(r"\bnpm_[A-Za-z0-9]{30,}"), f"{MARK}:npm-token"),
    (re.compile(r"\bpypi-[A-Za-z0-9_-]{16,}"), f"{MARK}:pypi-token"),
    (re.compile(r"\b[rs]k_(?:live|test)_[0-9A-Za-z]{16,}"), f"{MARK}:stripe-key"),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), f"{MARK}:aws-access-key"),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{20,}"), f"{MARK}:google-api-key"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), f"{MARK}:jwt"),
    (re.compile(r"(?i)\b(bearer|basic)[ \t]+(?!\[REDACTED)[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {MARK}"),
    (
        re.compile(
            r"(?i)(?<![\w.-])(https?://(?:hooks\.slack\.com/(?:services|workflows|triggers)/"
            r"|(?:[\w-]+\.)?discord(?:app)?\.com/api/webhooks/|[\w.-]*webhook\.office\.com/|outlook\.office\.com/webhook/))"
            r"[^\s\"'<>|]+"
        ),
        rf"\1{MARK}:webhook",
    ),
    (re.compile(r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*://)(?:[^/\s:@]*:[^/\s@]+|[^/\s:@]{12,})@"), rf"\1{MARK}@"),
)

# Names whose LAST word says secret; and words that say it anywhere in a name.
_SECRET_LAST = frozenset(
    {
        "secret",
        "password",
        "passwd",
        "pass",
        "pwd",
        "passphrase",
        "token",
        "key",
        "apikey",
        "accesskey",
        "privatekey",
        "credential",
        "credentials",
        "creds",
        "auth",
        "authorization",
        "cookie",
        "cookies",
        "session",
        "sessionid",
        "webhook",
        "webhookurl",
        "dsn",
        "sig",
        "signature",
        "sas",
        "jwt",
        "connectionstring",
        "dockerconfigjson",
    }
)
_SECRET_ANY = frozenset({"password", "passwd", "secret", "credentials", "credential"})
_SECRET_SUFFIXES = ("password", "passwd", "secret", "token")
"""A one-word name that ends so (`PGPASSWORD`, `csrftoken`) says secret too."""
_WHOLE_LINE = frozenset({"authorization", "proxyauthorization", "cookie", "setcookie"})
"""Headers whose whole value is a credential, spaces and all (`Authorization: SharedKey acct:sig`)."""

# A name and its separator only: the value is read after a secret name, so that a value which is
# itself a name (`said: client_secret: x`) is never consumed by the pair before it.
# A name starts only where a token starts (the lookbehind): tried at every position inside a long
# word, the match was quadratic (a 50,000-character token took 49 s; now milliseconds).
_NAMED = re.compile(
    r"""(?<![A-Za-z0-9_.-])(?P<name>["']?[A-Za-z.][A-Za-z0-9_.-]*["']?)[ \t]*[=:][ \t]*"""
    r"""|(?P<flag>--[A-Za-z][A-Za-z0-9-]*)[ =]"""
)
_VALUE = re.compile(r""""[^"\n]*"|'[^'\n]*'|\{[^}\n]*\}|[^\s"',;}&)\]]+""")
_LINE_VALUE = re.compile(r""""[^"\n]*"|'[^'\n]*'|[^\n]*[^\s\n]""")
_FLAG_VALUE = re.compile(r"\S+")
_NEAR = re.compile(
    r"(?i)\b(?:secret|password|passwd|token|api[ _-]?key|credentials?)\b(?P<gap>(?:[^\w\n]+\w+){0,2}?[^\w\n]+)"
    r"(?P<value>[A-Za-z0-9+/_~.-]{20,}={0,2})(?![\w=:])"
)
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

# CLI credentials: `-p` means a password only for some commands (`mysql -pX`; `ssh -p 22` is a port).
_DASH_P = re.compile(r"(?<!\S)-p(?P<gap>[ \t]*)(?P<value>'[^'\n]*'|\"[^\"\n]*\"|[^\s'\"]+)")
_P_ATTACHED = re.compile(r"\b(?:mysql\w*|mariadb\w*)\b")
_P_SPACED = re.compile(r"\b(?:(?:docker|podman|nerdctl|buildah|helm|skopeo)\b.*\blogin|sshpass)\b")
_USER_PASS = re.compile(
    r"""(?<!\S)(?:-u|-U|--user|--proxy-user)(?:[ \t]+|=)?(?P<user>['"]?[^\s:'"]*):(?P<value>[^\s'"]+)"""
)
_NETRC = re.compile(
    r"(?im)(?:^[ \t]*|\b(?:machine[ \t]+\S+|default)(?:[ \t]+(?:login|account)[ \t]+\S+)*[ \t]+)"
    r"password[ \t]+(?P<value>\S+)"
)

# Key bodies whose BEGIN line is gone (cut by Azure's 4 KB tail): seen line by line.
_JOURNAL_PREFIX = re.compile(
    r"(?:[A-Z][a-z]{2} +[0-9]+ [0-9:.]+|[0-9]{4}-[0-9]{2}-[0-9]{2}T\S+) \S+ [^\s:\[]+(?:\[[0-9]+\])?: "
)
_BODY = re.compile(r"[A-Za-z0-9+/]+={0,3}|=[A-Za-z0-9+/]{4}")
_BODY_END = re.compile(rf"{_PRIVATE_END}|Private-MAC: *\S+")
_PUTTY_LINES = re.compile(r"Private-Lines: *([0-9]+)")
_BODY_WORD = re.compile(
    r"(?<![A-Za-z0-9+/=])(?:[A-Za-z0-9+/]{16,}={0,3}|[A-Za-z0-9+/]+={1,3}|=[A-Za-z0-9+/]{4})[ \t]*$"
)
"""The base64 word that ends a line of a key body (a PEM line, its short last line, PGP's checksum)."""

_known: dict[str, float] = {}
"""Values this process holds, and until when (monotonic seconds; inf: for its whole life)."""
_known_lock = threading.Lock()
_known_pattern: re.Pattern[str] | None = None
_next_expiry = math.inf


def remember(*values: str | None, ttl_s: float | None = None) -> None:
    """Redact these exact values from now on, wherever they appear (a secret this process holds);
    for `ttl_s` seconds only when given (a sealed value is forgotten when its seal expires)."""
    until = math.inf if ttl_s is None else time.monotonic() + ttl_s
    with _known_lock:
        changed = False
        for value in values:
            if value and len(value) >= 8 and _known.get(value, -math.inf) < until:
                changed |= value not in _known
                _known[value] = until
        _rebuild(changed)


def forget(*values: str | None) -> None:
    """Stop holding these values (a discarded key): they are no longer kept in this process's list."""
    with _known_lock:
        removed = [_known.pop(value) for value in values if value and value in _known]
        _rebuild(bool(removed))


def is_remembered(value: str) -> bool:
    """Whether this process still holds the value in its redaction list."""
    _expire()
    return value in _known


def _rebuild(changed: bool) -> None:
    global _known_pattern, _next_expiry
    now = time.monotonic()
    for value in [v for v, until in _known.items() if until <= now]:
        del _known[value]
        changed = True
    _next_expiry = min(_known.values(), default=math.inf)
    if changed:
        ordered = sorted(_known, key=len, reverse=True)
        _known_pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None


def _expire() -> None:
    if _next_expiry <= time.monotonic():
        with _known_lock:
            _rebuild(False)


def is_secret_name(name: str) -> bool:
    """Whether a key, variable or flag name says its value is secret, in any case style."""
    words = _name_words(name)
    if not words:
        return False
    last = words[-1]
    return (
        last in _SECRET_LAST
        or "".join(words[-2:]) in _SECRET_LAST
        or any(w in _SECRET_ANY for w in words)
        or (len(words) == 1 and last.endswith(_SECRET_SUFFIXES))
    )


def _name_words(name: str) -> list[str]:
    return [w.lower() for part in re.split(r"[_.\-\s]+", name.strip("\"'-.")) for w in _WORDS.findall(part)]


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
        if named.group("flag"):
            shape = _FLAG_VALUE
        elif "".join(_name_words(name)) in _WHOLE_LINE:
            shape = _LINE_VALUE
        else:
            shape = _VALUE
        found = shape.match(text, named.end())
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


def _command_line(text: str) -> str:
    """CLI credentials: `mysql -pX`, `docker login -p X`, `sshpass -p X`, `curl -u user:X`, `.netrc`."""
    out, pos, line_end, line_kind = [], 0, -1, ""
    for found in _DASH_P.finditer(text):
        if found.start() > line_end:  # judge each line once: a line of a thousand `-p` stays linear
            start = text.rfind("\n", max(line_end, 0), found.start()) + 1
            end = text.find("\n", found.start())
            line_end = end if end >= 0 else len(text)
            line = text[start:line_end]
            line_kind = "spaced" if _P_SPACED.search(line) else "attached" if _P_ATTACHED.search(line) else ""
        if not line_kind or (line_kind == "attached" and found.group("gap")) or found.group("value").startswith(MARK):
            continue
        out.append(text[pos : found.start("value")] + MARK)
        pos = found.end()
    out.append(text[pos:])
    text = "".join(out)
    text = _USER_PASS.sub(lambda m: m.group(0)[: m.start("value") - m.start()] + MARK, text)
    return _NETRC.sub(lambda m: m.group(0)[: m.start("value") - m.start()] + MARK, text)


def _key_bodies(text: str) -> str:
    """Private-key bodies without their BEGIN line: the base64 lines just before an END line (PEM,
    PGP) or a PuTTY `Private-MAC:` (a line may carry a prefix: a log level, the rest of a line a cut
    split; its base64 word is hidden), and the lines a PuTTY `Private-Lines: N` announces."""
    if "-----END" not in text and "Private-" not in text:
        return text
    lines = text.splitlines(keepends=True)
    hidden: dict[int, int] = {}  # line -> where its hidden part starts
    run: list[tuple[int, int]] = []
    announced = 0
    public = False
    for n, line in enumerate(lines):
        body = line.rstrip("\r\n")
        prefix = _JOURNAL_PREFIX.match(body)
        start = prefix.end() if prefix else len(body) - len(body.lstrip())
        content = body[start:].strip()
        if public:
            public = "-----END" not in content
            continue
        if "-----BEGIN" in content:  # a certificate or public key: evidence, not a secret
            public, run = True, []
            continue
        word = _BODY_WORD.search(body) if content else None
        if announced and word:
            hidden[n] = word.start()
            announced -= 1
            continue
        announced = 0
        putty = _PUTTY_LINES.match(content)
        if putty:
            announced, run = int(putty.group(1)), []
        elif end := _BODY_END.search(content):
            hidden.update(run)
            hidden[n] = body.index(end.group(0))
            run = []
        elif word:
            run.append((n, start if _BODY.fullmatch(content) else word.start()))
        else:
            run = []
    if not hidden:
        return text
    out = []
    for n, line in enumerate(lines):
        if n in hidden:
            body = line.rstrip("\r\n")
            line = body[: hidden[n]] + f"{MARK}:private-key" + line[len(body) :]
        out.append(line)
    return "".join(out)


def _near(match: re.Match[str]) -> str:
    value = match.group("value")
    mixed = any(c.isdigit() for c in value) and any(c.isalpha() for c in value)
    if not mixed or _entropy(value) < 3.5:  # words and paths are not secrets
        return match.group(0)
    return match.group(0)[: match.start("value") - match.start()] + MARK


def _decoded(text: str) -> str:
    for _ in range(2):  # `%253D` is `%3D` encoded again
        if "%" not in text:
            break
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return text


def normalise(text: str) -> str:
    """The text as a reader sees it: percent-encoding decoded, Unicode NFKC, format characters removed."""
    text = _decoded(text)
    if not text.isascii():
        text = _decoded(_FORMAT_CHARS.sub("", unicodedata.normalize("NFKC", text)))
    return text


def redact(text: str) -> str:
    """The text with every secret-looking value replaced by a marker (see the module docstring)."""
    if not text:
        return text
    source = text
    text = normalised = normalise(text) if ("%" in text or not text.isascii()) else text
    _expire()
    pattern = _known_pattern
    if pattern is not None:
        text = pattern.sub(f"{MARK}:known", text)
    for shape, replacement in _SHAPES:
        text = shape.sub(replacement, text)
    text = _key_bodies(text)
    text = _pairs(text)
    text = _command_line(text)
    text = _NEAR.sub(_near, text)
    return source if text == normalised else text


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
