"""The one error tree of nexy-ops.

    NexyError
    ├── SettingsError        a setting is missing or invalid (start-up)
    ├── PolicyError          the user may not do this here
    ├── ExecutorError        a run-command could not be run or read
    │   ├── ConflictError    another run-command is in progress on the VM (runbook 6.4)
    │   └── AccessError      Azure refused the identity (401/403)
    └── ProbeError           a health or GitHub probe failed
"""
from __future__ import annotations


class NexyError(Exception):
    """Base of every error this project raises on purpose; its text is safe to show."""


class SettingsError(NexyError):
    """A setting is missing or invalid."""


class PolicyError(NexyError):
    """The user may not run this command here."""


class ExecutorError(NexyError):
    """A run-command could not be started or its result could not be read."""


class ConflictError(ExecutorError):
    """The VM is busy with another run-command (HTTP 409)."""


class AccessError(ExecutorError):
    """Azure refused the identity (HTTP 401/403)."""


class ProbeError(NexyError):
    """A health or GitHub probe failed."""
