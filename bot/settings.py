"""Configuration: every setting of the external contract, read from the environment.

The names are a fixed external contract (the README's "Configuration" table); outside tests drive
the bot through them. `load_settings()` turns a bad value into one readable `SettingsError` line
per setting.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, ValidationError, field_serializer, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.contract import vm_queue_name
from bot.errors import SettingsError
from bot.redaction import remember

CommaList = Annotated[tuple[str, ...], NoDecode]

_SLACK_ID = re.compile(r"^[UWBSC][A-Z0-9]{2,}$")

ALL_CHANNELS = "*"
"""NEXY_CHANNELS set to this alone: the bot answers in every channel and DM (on purpose, never by default)."""


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


class Settings(BaseSettings):
    """The bot's settings; field names are the environment variable names, lower-cased."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    port: int = Field(3000, ge=1, le=65535)
    redis_url: str | None = None

    azure_subscription_id: str | None = None
    azure_resource_group: str = "NetworkWatcherRG"
    azure_vm_name: str = "Nexy"
    azure_arm_url: str = "https://management.azure.com"
    azure_access_token: str | None = None

    github_token: str | None = None
    github_api_url: str = "https://api.github.com"
    nexy_server_repo: str = "Seregawpn/Nexy_server"
    nexy_releases_repo: str = "Seregawpn/Nexy_production"
    nexy_deploy_workflow: str = "deploy.yml"
    nexy_deploy_branch: str = "main"
    nexy_release_tag: str = "Update"
    nexy_github_timeout_s: int = Field(10, ge=1, le=60)

    nexy_gemini_url: str = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    nexy_gemini_timeout_s: float = Field(15.0, gt=0, le=120)

    nexy_health_urls: CommaList = ("http://127.0.0.1:8080/health", "http://127.0.0.1:8081/updates/health")
    nexy_expected_version: str | None = None
    nexy_health_timeout_s: float = Field(5.0, gt=0, le=60)
    nexy_app_dir: str = "/home/azureuser/voice-assistant"
    nexy_service: str = "voice-assistant"
    nexy_service_user: str = "azureuser"

    nexy_operators: CommaList = ()
    nexy_approvers: CommaList = ()
    nexy_channels: CommaList = ()
    nexy_approval_ttl_s: int = Field(900, ge=1, le=86400)
    nexy_allow_self_approval: bool = False
    # Distinct approvers a fix's plan needs, per fix, over the fix's own `approvals`: `api-key=2,deps=1`.
    # The fix names are checked against the registry where a worker starts (bot.plans.approvals_problem).
    nexy_approvals: Annotated[dict[str, int], NoDecode] = Field(default_factory=dict)

    nexy_executor: Literal["azure", "local"] = "azure"
    nexy_azure_poll_s: float = Field(5.0, ge=0.01, le=60)
    nexy_conflict_retry_s: float = Field(15.0, ge=0.01, le=600)
    nexy_conflict_max_wait_s: float = Field(900.0, ge=0, le=5400)
    nexy_vm_lease_s: float = Field(60.0, ge=1, le=3600)
    nexy_max_waiting_per_user: int = Field(3, ge=1, le=100)
    nexy_runcommand_slow_s: float = Field(600.0, ge=0.05, le=5400)
    nexy_runcommand_timeout_s: float = Field(5400.0, ge=0.1, le=5400)
    nexy_heartbeat_s: float = Field(15.0, ge=0.2, le=600)
    nexy_journal_lines: int = Field(15, ge=1, le=100)
    nexy_vm_health_urls: CommaList = ("http://127.0.0.1:8080/health", "http://127.0.0.1:8081/updates/health")
    nexy_diagnosis_reuse_s: int = Field(600, ge=0, le=3600)
    nexy_verify_wait_s: int = Field(30, ge=1, le=600)
    nexy_verify_poll_s: float = Field(1.0, ge=0.01, le=60)
    nexy_verify_settle_s: float = Field(1.0, ge=0, le=60)
    nexy_progress_every_s: float = Field(15.0, ge=0.05, le=600)
    nexy_max_events_per_incident: int = Field(1000, ge=0, le=1_000_000)
    nexy_max_incidents_per_hour: int = Field(20, ge=0, le=10_000)
    nexy_retention_days: int = Field(30, ge=0, le=3650)

    nexy_vms_file: str | None = None

    nexy_watch_channel: str | None = None
    nexy_watch_interval_s: float = Field(60.0, ge=0.05, le=3600)
    nexy_watch_failures: int = Field(2, ge=1, le=100)
    nexy_watch_flap_window_s: float = Field(900.0, ge=0, le=86400)
    nexy_watch_pause_budget_s: int = Field(8 * 3600, ge=60, le=86400)

    nexy_data_dir: str = ".nexy"
    # The key that seals a secret typed in a form (bot/sealed.py): a Fernet key (44 characters, urlsafe
    # base64). Unset: generated once in NEXY_DATA_DIR/seal.key (mode 600), shared by the processes of
    # one machine; web and worker on different machines need this setting, the same on both.
    nexy_seal_key: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{43}=$")
    _seal_key_unset = field_validator("nexy_seal_key", mode="before")(lambda value: value or None)
    nexy_sandbox_run_command_s: float = Field(2.0, ge=0, le=600)
    nexy_io_workers: int = Field(1, ge=1, le=16)
    nexy_web_workers: int = Field(2, ge=1, le=32)
    nexy_bind_host: str = "0.0.0.0"
    # Prometheus metrics (nexy/metrics.py): `nexy web` serves GET /metrics; `nexy worker` on this port too (0: off).
    nexy_metrics: bool = True
    nexy_metrics_port: int = Field(0, ge=0, le=65535)
    nexy_log_format: Literal["text", "json"] = "text"

    _split = field_validator(
        "nexy_health_urls", "nexy_vm_health_urls", "nexy_operators", "nexy_approvers", "nexy_channels", mode="before"
    )(_split_commas)

    @field_validator("nexy_health_urls", "nexy_vm_health_urls")
    @classmethod
    def _urls_are_http(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            if not re.match(r"^https?://[^/\s]+", url):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return urls

    @field_validator("nexy_vm_health_urls")
    @classmethod
    def _vm_urls_are_plain(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            if not re.fullmatch(r"[A-Za-z0-9_./:@+=-]+", url):
                raise ValueError(f"{url!r}: letters, digits and _ . / : @ + = - only (it is passed to a VM script)")
        return urls

    @field_validator("nexy_watch_channel")
    @classmethod
    def _watch_channel(cls, channel: str | None) -> str | None:
        if channel and not re.fullmatch(r"[CG][A-Z0-9]{2,}", channel):
            raise ValueError("a channel id (C...), where the watch opens its incidents")
        return channel or None

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token_shape(cls, token: str | None) -> str | None:
        if token and not token.startswith("xoxb-"):
            raise ValueError("a bot token starts with 'xoxb-'")
        return token or None

    @field_validator("slack_app_token")
    @classmethod
    def _app_token_shape(cls, token: str | None) -> str | None:
        if token and not token.startswith("xapp-"):
            raise ValueError("an app-level token (Socket Mode) starts with 'xapp-'")
        return token or None

    @field_validator("slack_api_url")
    @classmethod
    def _api_url_slash(cls, url: str) -> str:
        return url if url.endswith("/") else url + "/"

    @field_validator("nexy_service", "nexy_service_user")
    @classmethod
    def _unit_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", name):
            raise ValueError("letters, digits and . _ @ - only")
        return name

    @field_validator("nexy_app_dir")
    @classmethod
    def _absolute_path(cls, path: str) -> str:
        if not re.fullmatch(r"/[A-Za-z0-9_./-]*", path):
            raise ValueError("an absolute path of letters, digits and . _ - /")
        return path.rstrip("/") or "/"

    @field_validator("azure_resource_group", "azure_vm_name")
    @classmethod
    def _azure_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.()-]{1,90}", name):
            raise ValueError("an Azure resource name: letters, digits and . _ ( ) -")
        return name

    @field_validator("nexy_server_repo", "nexy_releases_repo")
    @classmethod
    def _github_repo(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,39}/[A-Za-z0-9_.-]{1,100}", name):
            raise ValueError("a GitHub repository as owner/name")
        return name

    @field_validator("nexy_gemini_url")
    @classmethod
    def _gemini_url(cls, url: str) -> str:
        # The new key rides on the smoke call (and goes to the VM as a parameter): https, or loopback.
        if not re.fullmatch(r"https?://[A-Za-z0-9_.:@/+=-]+", url):
            raise ValueError(f"{url!r} is not an http(s) URL of letters, digits and _ . : @ / + = -")
        return _https_or_loopback(url)

    @field_validator("github_api_url")
    @classmethod
    def _github_url(cls, url: str) -> str:
        # The token rides on every request: plain http only to a loopback emulator.
        if not re.match(r"^https?://([^/:\s]+|\[[^\]]+\])", url):
            raise ValueError(f"{url!r} is not an http(s) URL")
        return _https_or_loopback(url).rstrip("/")

    @field_validator("nexy_deploy_workflow")
    @classmethod
    def _workflow_file(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}\.ya?ml", name):
            raise ValueError("a workflow file name under .github/workflows, e.g. deploy.yml")
        return name

    @field_validator("nexy_deploy_branch", "nexy_release_tag")
    @classmethod
    def _git_ref(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}", name) or ".." in name or name.endswith((".", "/")):
            raise ValueError("a branch or tag name: letters, digits and . _ - /")
        return name

    @field_validator("nexy_channels")
    @classmethod
    def _channels(cls, items: tuple[str, ...]) -> tuple[str, ...]:
        if ALL_CHANNELS in items and items != (ALL_CHANNELS,):
            raise ValueError("`*` (every channel) stands alone, or list channel ids")
        for item in items:
            if item != ALL_CHANNELS and not re.fullmatch(r"[CGD][A-Z0-9]{2,}", item):
                raise ValueError(f"{item!r} is not a channel id (C..., G..., D...) nor `*`")
        return items

    @field_validator("nexy_approvals", mode="before")
    @classmethod
    def _approvals(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        approvals: dict[str, int] = {}
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            name, _, count = (part.strip() for part in item.partition("="))
            if not re.fullmatch(r"[a-z][a-z0-9-]*", name) or not re.fullmatch(r"-?[0-9]+", count):
                raise ValueError(f"{item!r} is not FIX=N (e.g. api-key=2,deps=1: a fix's name, = and a number)")
            if name in approvals:
                raise ValueError(f"{name} is named twice")
            approvals[name] = int(count)
        return approvals

    @field_validator("nexy_approvals")
    @classmethod
    def _approvals_at_least_one(cls, approvals: dict[str, int]) -> dict[str, int]:
        for name, count in approvals.items():
            if count < 1:
                raise ValueError(f"{name}={count}: a fix needs at least 1 approval (N >= 1)")
        return approvals

    @field_serializer("nexy_approvals")
    def _approvals_as_written(self, approvals: dict[str, int]) -> str:
        # Dumped as the variable is written, so that a dump read back as the environment gives the same.
        return ",".join(f"{name}={count}" for name, count in approvals.items())

    @field_validator("nexy_operators", "nexy_approvers")
    @classmethod
    def _principals(cls, items: tuple[str, ...]) -> tuple[str, ...]:
        for item in items:
            if not (_SLACK_ID.match(item) or re.fullmatch(r"@?[a-z0-9._-]+", item)):
                raise ValueError(f"{item!r} is neither a Slack user id (U...) nor a user-group handle")
        return items

    # The inventory: each VM's name and the settings it overrides (validated); `_vm` names the VM
    # these settings target ("" for the base settings, whose VM is the inventory's first).
    _inventory: dict[str, dict[str, Any]] = PrivateAttr(default_factory=dict)
    _vm: str = PrivateAttr(default="")
    _per_vm: dict[str, Settings] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _load_inventory(self) -> Settings:
        if not self.nexy_vms_file:
            self._inventory = {self.azure_vm_name: {}}
            return self
        self._inventory = read_inventory(self, self.nexy_vms_file)
        # The base settings target the first VM, so that whatever reads them alone reads one real VM.
        for setting, value in next(iter(self._inventory.values())).items():
            setattr(self, setting, value)
        return self

    @property
    def vm_names(self) -> tuple[str, ...]:
        """Every VM of the inventory, by name, in its order (the first is the default)."""
        return tuple(self._inventory)

    @property
    def vm_name(self) -> str:
        """The name of the VM these settings target."""
        return self._vm or self.vm_names[0]

    def find_vm(self, name: str) -> str | None:
        """The inventory's spelling of a VM name (names match whatever their case), or None."""
        return next((known for known in self._inventory if known.lower() == name.lower()), None)

    def for_vm(self, name: str | None = None) -> Settings:
        """These settings aimed at one VM of the inventory (the first when no name is given): its
        resource group, VM name, health URLs, app dir, service and service user."""
        known = self.find_vm(name) if name else self.vm_names[0]
        if known is None:
            raise KeyError(f"no VM named {name!r}; known: {', '.join(self.vm_names)}")
        if known == self._vm:
            return self
        if known not in self._per_vm:
            copy = self.model_copy(update=self._inventory[known])
            copy._vm = known
            copy._per_vm = {}
            self._per_vm[known] = copy
        return self._per_vm[known]

    @property
    def has_slack_credentials(self) -> bool:
        """Whether a real (or configured) Slack workspace is set up."""
        return bool(self.slack_bot_token and self.slack_signing_secret)

    @property
    def vm_queue(self) -> str:
        """The queue of the target VM: exactly one worker serves it."""
        return vm_queue_name(self.azure_resource_group, self.azure_vm_name)

    @property
    def vm_queues(self) -> tuple[str, ...]:
        """The queue of every VM of the inventory."""
        return tuple(self.for_vm(name).vm_queue for name in self.vm_names)


VM_KEYS = {
    "resource_group": "azure_resource_group",
    "vm_name": "azure_vm_name",
    "health_urls": "nexy_health_urls",
    "vm_health_urls": "nexy_vm_health_urls",
    "app_dir": "nexy_app_dir",
    "service": "nexy_service",
    "service_user": "nexy_service_user",
}
"""What an inventory entry may set (TOML key: the setting it overrides for that VM)."""

_VM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")


def read_inventory(base: Settings, path: str) -> dict[str, dict[str, Any]]:
    """The VMs of a TOML inventory (`[vm.NAME]` tables of `VM_KEYS`; a key left out takes the
    global setting), each validated by the same rules as the global settings."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ValueError(f"NEXY_VMS_FILE {path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"NEXY_VMS_FILE {path}: not valid TOML ({exc})") from None
    vms = data.get("vm")
    if set(data) - {"vm"} or not isinstance(vms, dict) or not vms:
        raise ValueError(f"NEXY_VMS_FILE {path}: expected one [vm.NAME] table per VM and nothing else")
    defaults = base.model_dump(exclude={"nexy_vms_file"})
    inventory: dict[str, dict[str, Any]] = {}
    seen: dict[tuple[str, str], str] = {}
    for name, entry in vms.items():
        where = f"NEXY_VMS_FILE {path}: [vm.{name}]"
        if not _VM_NAME.fullmatch(name) or any(known.lower() == name.lower() for known in inventory):
            raise ValueError(f"{where}: a VM name is letters, digits and . _ - (at most 40), unique whatever its case")
        if not isinstance(entry, dict) or set(entry) - set(VM_KEYS):
            unknown = ", ".join(sorted(set(entry) - set(VM_KEYS))) if isinstance(entry, dict) else "not a table"
            raise ValueError(f"{where}: unknown key(s) {unknown}; known: {', '.join(VM_KEYS)}")
        overrides = {VM_KEYS[key]: value for key, value in entry.items()}
        try:
            # nexy_vms_file given as None: pydantic-settings would read it from the environment again.
            checked = Settings.model_validate({**defaults, **overrides, "nexy_vms_file": None})
        except ValidationError as exc:
            error = exc.errors()[0]
            field = next((k for k, v in VM_KEYS.items() if error["loc"] and v == error["loc"][0]), "?")
            raise ValueError(f"{where} {field}: {str(error['msg']).removeprefix('Value error, ')}") from None
        values = {setting: getattr(checked, setting) for setting in VM_KEYS.values()}
        target = (values["azure_resource_group"], values["azure_vm_name"])
        if target in seen:
            raise ValueError(f"{where}: the same VM as [vm.{seen[target]}] ({target[0]}/{target[1]})")
        seen[target] = name
        inventory[name] = values
    return inventory


def _https_or_loopback(url: str) -> str:
    """A credential rides on requests to this URL: plain http only to a loopback emulator."""
    if url.startswith("http://") and not is_loopback_url(url):
        raise ValueError("plain http is allowed for loopback emulators only; use https")
    return url


def is_loopback_url(url: str) -> bool:
    """Whether an http(s) URL names this host (127.0.0.0/8, localhost, ::1): the emulators."""
    host = (urlsplit(url.strip()).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def azure_settings_problem(settings: Settings) -> str | None:
    """What keeps the bot from calling Azure Resource Manager as configured (no call is made), or None."""
    if not settings.azure_subscription_id:
        return "AZURE_SUBSCRIPTION_ID is required to reach the VM through Azure"
    url = settings.azure_arm_url.rstrip("/")
    if not url.startswith("https://"):
        if not is_loopback_url(url):
            return "AZURE_ARM_URL: plain http is allowed for loopback emulators only"
        if not settings.azure_access_token:
            return "AZURE_ACCESS_TOKEN is required with a loopback http AZURE_ARM_URL"
    return None


def run_command_unavailable(settings: Settings) -> str | None:
    """Why scripts cannot reach the VM as configured (NEXY_EXECUTOR=azure without usable Azure settings), or None."""
    return None if settings.nexy_executor == "local" else azure_settings_problem(settings)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings; a bad value raises SettingsError naming the variable and what it expects."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = str(error["loc"][0]).upper() if error["loc"] else "settings"
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{name}: {message}" if error["loc"] else message)
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None
    # Whatever this process holds is redacted by value from now on, wherever it would appear.
    remember(
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
        settings.azure_access_token,
        settings.github_token,
        settings.nexy_seal_key,
        os.environ.get("AZURE_CLIENT_SECRET"),
    )
    return settings
