"""The bot's log lines: text as always, or with NEXY_LOG_FORMAT=json one JSON object a line, carrying
the incident, plan, job and VM the line is about when they are known.

What a line is about is held in context variables: a worker sets them around each job it runs
(`in_context`, in jobs/runtime.TaskJob), so every line logged while the job runs carries them,
whichever module logs it. Lines are redacted before they are formatted (bot/redaction.py's filter on
every root handler), the JSON ones too.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

FIELDS = ("incident", "plan", "job", "vm")
"""What a line may be about, in the order a JSON line gives them."""

_about: ContextVar[dict[str, str]] = ContextVar("nexy_log_about", default={})  # noqa: B039 (never mutated)


@contextmanager
def about(**fields: str) -> Iterator[None]:
    """Lines logged inside are about these (empty values are left out; outer ones stay)."""
    token = _about.set({**_about.get(), **{k: str(v) for k, v in fields.items() if k in FIELDS and v}})
    try:
        yield
    finally:
        _about.reset(token)


def current() -> dict[str, str]:
    return dict(_about.get())


def job_fields(job_id: str, args: Sequence[Any], kwargs: dict, vm: str) -> dict[str, str]:
    """What a job is about, from its id, its arguments (a request's payload names its incident; a
    decision, an apply or an expiry names its plan) and its VM."""
    payload = args[0] if args and isinstance(args[0], dict) else kwargs.get("payload") or {}
    plan = kwargs.get("plan_id") or (job_id.removeprefix("apply-") if job_id.startswith("apply-") else "")
    return {
        "job": job_id,
        "incident": str(payload.get("incident") or kwargs.get("incident") or ""),
        "plan": str(plan or ""),
        "vm": str(payload.get("vm") or vm or ""),
    }


def in_context(run: Callable[..., Any], fields: dict[str, str]) -> Callable[..., Any]:
    """`run`, which logs about these fields while it runs."""

    @functools.wraps(run)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with about(**fields):
            return run(*args, **kwargs)

    return wrapper


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, process, message, what the line is
    about, and the (redacted) traceback when there is one."""

    def __init__(self, process: str = ""):
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": self.process,
            "pid": os.getpid(),
            "message": record.getMessage(),
        }
        line.update(_about.get())
        if record.exc_text:  # set (redacted) by bot.redaction.RedactingFilter
            line["exception"] = record.exc_text
        elif record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def use_json(process: str) -> None:
    """Every root handler writes JSON lines from now on (install_log_redaction ran first: its filter
    redacts each record before this formats it)."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter(process))
