"""The one error tree of nexy-ops.

    NexyError
    ├── SettingsError        a setting is missing or invalid (start-up)
    ├── PolicyError          the user may not do this here
    ├── ExecutorError        a run-command could not be run or read
    │   ├── ConflictError    another run-command is in progress on the VM (runbook 6.4)
    │   └── AccessError      Azure refused the identity (401/403)
    └── ProbeError           a health, GitHub or Azure read failed
        └── GitHubError      GitHub refused or did not answer a read; says which token, permission or object
            ├── GitHubNotFound        404: that repository, workflow, branch, file or release is not there
            ├── GitHubPermissionError 403: the token lacks a permission (named in the text)
            └── GitHubRateLimited     the rate limit is spent until a reset time (the worker never sleeps on it)
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


class GitHubError(ProbeError):
    """A GitHub read failed: bad token, missing permission or object, rate limit, timeout."""


class GitHubNotFound(GitHubError):
    """GitHub answered 404: the object is not there, or the token cannot see it."""


class GitHubPermissionError(GitHubError):
    """GitHub answered 403: the token lacks the permission the text names."""

    def __init__(self, text: str, permission: str):
        super().__init__(text)
        self.permission = permission


class GitHubRateLimited(GitHubError):
    """GitHub's rate limit is spent; the text says until when."""
