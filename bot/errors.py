"""The one error tree of nexy-ops.

    NexyError
    ├── SettingsError        a setting is missing or invalid (start-up)
    ├── ExecutorError        a run-command could not be run or read; `.code` says how (ExecutorFailure)
    │   ├── ConflictError    another run-command is in progress on the VM (runbook 6.4)
    │   └── AccessError      Azure refused the identity (401/403)
    ├── GitHubError          GitHub refused or did not answer a read; `.code` says how (GitHubFailure)
    │   ├── GitHubNotFound        404: that repository, workflow, branch, file or release is not there
    │   └── GitHubPermissionError 403: the token lacks a permission (`.permission`)
    └── IncidentLimitError   a channel opened NEXY_MAX_INCIDENTS_PER_HOUR incidents in the last hour

The clients raise these with codes and facts, never Slack text: `bot.wording.errors` words them.
"""

from __future__ import annotations

from enum import Enum


class NexyError(Exception):
    """Base of every error this project raises on purpose; its text is safe to log."""


class SettingsError(NexyError):
    """A setting is missing or invalid; its text names the variable (shown as it is)."""


class ExecutorFailure(str, Enum):
    """How a run-command failed."""

    CONFLICT = "conflict"  # 409: another run-command is in progress (6.4)
    CONFLICT_GAVE_UP = "conflict-gave-up"  # still busy after NEXY_CONFLICT_MAX_WAIT_S: not run
    AUTH = "auth"  # 401: token missing, expired or for another tenant
    FORBIDDEN = "forbidden"  # 403: the identity lacks the run-command action
    NOT_FOUND = "not-found"  # 404: subscription, resource group or VM
    HTTP = "http"  # another HTTP error from ARM
    UNREACHABLE = "unreachable"  # nothing was sent: the command did not start
    LOST = "lost"  # sent, but the answer was lost: it may still be running
    ACCEPTED_UNKNOWN = "accepted-unknown"  # Azure accepted it; reading its state failed: it ran or runs
    RUN_TIMEOUT = "run-timeout"  # Azure accepted it and it was still running past Azure's 90 minutes
    TIMEOUT = "timeout"  # the local executor stopped a script that ran too long
    LEASE = "lease"  # another worker held the VM's lease for too long: not run


class ExecutorError(NexyError):
    """A run-command could not be started or its result could not be read."""

    def __init__(
        self,
        code: ExecutorFailure,
        detail: str = "",
        *,
        status: int | None = None,
        waited_s: float = 0.0,
        where: str = "",
    ):
        super().__init__(f"{code.value}: {detail}" if detail else code.value)
        self.code = code
        self.detail = detail  # redacted text from Azure, or what held the lease
        self.status = status
        self.waited_s = waited_s
        self.where = where  # the ARM URL, for UNREACHABLE


class ConflictError(ExecutorError):
    """The VM is busy with another run-command (HTTP 409)."""


class AccessError(ExecutorError):
    """Azure refused the identity (HTTP 401/403)."""


class GitHubFailure(str, Enum):
    """How a GitHub read failed."""

    NO_TOKEN = "no-token"  # 401 without GITHUB_TOKEN
    BAD_TOKEN = "bad-token"  # 401: wrong, expired or revoked
    NOT_FOUND = "not-found"  # 404
    FORBIDDEN = "forbidden"  # 403: a missing token permission
    RATE_LIMITED = "rate-limited"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    HTTP = "http"


class GitHubError(NexyError):
    """A GitHub read failed: what was read, how it failed, and the facts to explain it."""

    def __init__(
        self,
        code: GitHubFailure,
        what: str,
        *,
        status: int | None = None,
        message: str = "",
        hint: str = "",
        permission: str = "",
        retry_after_s: int | None = None,
        reset_at: float | None = None,
        timeout_s: float = 0.0,
        api_url: str = "",
    ):
        super().__init__(f"{code.value}: {what}" + (f" ({message})" if message else ""))
        self.code = code
        self.what = what
        self.status = status
        self.message = message  # GitHub's own message, redacted
        self.hint = hint  # the setting that names the object
        self.permission = permission  # the token permission that is missing, e.g. "Secrets: read"
        self.retry_after_s = retry_after_s
        self.reset_at = reset_at
        self.timeout_s = timeout_s
        self.api_url = api_url


class GitHubNotFound(GitHubError):
    """GitHub answered 404: the object is not there, or the token cannot see it."""


class GitHubPermissionError(GitHubError):
    """GitHub answered 403: the token lacks the permission `.permission` names."""


class IncidentLimitError(NexyError):
    """A channel opened `limit` incidents in the last hour: no new one there before `retry_at`."""

    def __init__(self, channel: str, limit: int, retry_at: float):
        super().__init__(f"{channel} opened {limit} incidents in the last hour; next at {retry_at:.0f}")
        self.channel = channel
        self.limit = limit
        self.retry_at = retry_at
