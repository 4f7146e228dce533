"""The release check (runbook 7-9): release `Update` assets against `manifest.json`.

Reads the release NEXY_RELEASE_TAG on NEXY_RELEASES_REPO (its assets: Nexy.dmg / Nexy.pkg, sizes,
update times, upload state) and compares it field by field with a manifest: `version`, `build`,
`artifact.url` (and `artifact.version`, `artifact.build`, `artifact.size`, `artifact.sha256` when
the manifest has them).

The manifest is the one deployed on the VM, read by one run-command (`release-manifest.sh`, parsed
by `vm_manifest`); the server repository's copy (`read_repo_manifest`) is read only when the VM
cannot be reached by run-command, and the report says which copy it compared and why.
The fix (the publish script) runs on a release machine, not in the bot: the report shows it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from bot.errors import GitHubNotFound
from jobs.github_client import AssetInfo, GitHubClient, ReleaseInfo
from jobs.runcommand import RunResult

MANIFEST_PATH = "server/updates/manifests/manifest.json"
"""Where manifest.json lives, relative to the server repository and to NEXY_APP_DIR on the VM."""

VM_SCRIPT = "release-manifest"
"""The script that prints manifest.json as deployed on the VM (jobs/scripts/release-manifest.sh)."""

VM_MANIFEST_MARKER = "@@manifest.json"
"""The line the script prints before the manifest (itself on one line)."""

RELEASE_ASSETS = ("Nexy.dmg", "Nexy.pkg")
"""The installers the publish script uploads to the release (runbook 7)."""

_RELEASE_NAME = re.compile(r"(\d+(?:\.\d+){1,3})\s*(?:\(\s*(?:build\s*)?(\d+)\s*\)|build\s*(\d+))", re.I)


@dataclass(frozen=True)
class FieldCheck:
    """One manifest field against what the release says; `ok` is None when the release does not say."""

    field: str
    manifest: str | None
    release: str | None
    ok: bool | None


@dataclass(frozen=True)
class ManifestCopy:
    """manifest.json from one place: as deployed on the VM, or in the server repository."""

    manifest: dict[str, Any] | None
    error: str | None  # why it could not be read or is not a JSON object there
    source: str  # where, in words, e.g. "on the VM (`.../manifest.json`, read by Run Command)"
    on_vm: bool
    fallback: str = ""  # for the repository's copy: why the VM's copy was not read


@dataclass(frozen=True)
class ReleaseReport:
    """The release, its assets, and each manifest field compared with it."""

    repo: str
    tag: str
    release: ReleaseInfo | None
    release_missing: str  # why there is no release (404 text), or ""
    missing_assets: tuple[str, ...]
    unfinished_assets: tuple[str, ...]  # state "open": an upload that did not complete
    release_version: str | None
    release_build: str | None
    manifest_source: str
    manifest_error: str | None
    fields: tuple[FieldCheck, ...]
    manifest_on_vm: bool = False
    manifest_fallback: str = ""  # why the server repository's copy was compared instead of the VM's

    @property
    def manifest_where(self) -> str:
        return "on the VM" if self.manifest_on_vm else "in the server repository"

    @property
    def mismatched(self) -> tuple[FieldCheck, ...]:
        return tuple(f for f in self.fields if f.ok is False)

    @property
    def healthy(self) -> bool:
        return (self.release is not None and not self.missing_assets and not self.unfinished_assets
                and self.manifest_error is None and not self.mismatched)


def release_version(release: ReleaseInfo) -> tuple[str | None, str | None]:
    """(version, build) the release states: `version:` / `build:` lines in its notes, else its name or asset labels."""
    version = _line_value(release.body, "version")
    build = _line_value(release.body, "build")
    if version and build:
        return version, build
    for text in (release.name, *(a.label for a in release.assets)):
        found = _RELEASE_NAME.search(text or "")
        if found:
            return version or found.group(1), build or found.group(2) or found.group(3)
    return version, build


def _line_value(body: str, key: str) -> str | None:
    found = re.search(rf"(?im)^\s*{key}\s*[:=]\s*([0-9][0-9A-Za-z.+-]*)\s*$", body or "")
    return found.group(1) if found else None


def compare(release: ReleaseInfo | None, copy: ManifestCopy, *, repo: str, tag: str,
            release_missing: str = "") -> ReleaseReport:
    """Compare a manifest (the VM's or the server repository's copy) with the release."""
    manifest, manifest_error = copy.manifest, copy.error
    if manifest is not None and not isinstance(manifest, dict):
        manifest, manifest_error = None, "manifest.json is not a JSON object"
    missing = tuple(n for n in RELEASE_ASSETS if release is None or release.asset(n) is None)
    unfinished = tuple(a.name for a in release.assets if a.state != "uploaded") if release else ()
    version, build = release_version(release) if release else (None, None)
    fields: tuple[FieldCheck, ...] = ()
    if manifest is not None and release is not None:
        fields = _fields(release, manifest, version, build)
    return ReleaseReport(repo, tag, release, release_missing, missing, unfinished, version, build, copy.source,
                         manifest_error, fields, manifest_on_vm=copy.on_vm, manifest_fallback=copy.fallback)


def _fields(release: ReleaseInfo, manifest: dict[str, Any], version: str | None, build: str | None) -> tuple[FieldCheck, ...]:
    artifact = manifest.get("artifact") if isinstance(manifest.get("artifact"), dict) else {}
    url = _text(artifact.get("url"))
    asset = _asset_for(release, url)
    rows = [
        _row("version", _text(manifest.get("version")), version),
        _row("build", _text(manifest.get("build")), build),
        # the asset the url names is not on the release: a mismatch with nothing to show beside it
        _row("artifact.url", url, asset.download_url) if asset else FieldCheck("artifact.url", url, None, False),
    ]
    for key, wanted in (("version", version), ("build", build)):
        if key in artifact:
            rows.append(_row(f"artifact.{key}", _text(artifact.get(key)), wanted))
    if asset is not None and "size" in artifact:
        rows.append(_row("artifact.size", _text(artifact.get("size")), str(asset.size)))
    if asset is not None and asset.digest and artifact.get("sha256"):
        rows.append(_row("artifact.sha256", _text(artifact.get("sha256")), asset.digest.split(":", 1)[-1]))
    return tuple(rows)


def _row(name: str, manifest_value: str | None, release_value: str | None) -> FieldCheck:
    if release_value is None:
        return FieldCheck(name, manifest_value, None, None)
    return FieldCheck(name, manifest_value, release_value, manifest_value == release_value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value).strip()


def _asset_for(release: ReleaseInfo, url: str | None) -> AssetInfo | None:
    """The release asset the manifest's artifact.url names (by file name), else the .pkg."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) if url else ""
    return release.asset(name) or (None if name else release.asset("Nexy.pkg"))


def read_release(client: GitHubClient, repo: str, tag: str) -> tuple[ReleaseInfo | None, str]:
    """The release, or (None, why it is not there): a missing release is a finding, not a failure."""
    try:
        return client.release(repo, tag), ""
    except GitHubNotFound as exc:
        return None, str(exc)


def read_repo_manifest(client: GitHubClient, repo: str, ref: str, *, fallback: str = "") -> ManifestCopy:
    """manifest.json from the server repository at `ref`; `fallback` says why not the VM's copy."""
    source = f"from the server repository (`{repo}` `{MANIFEST_PATH}` at `{ref}`)"
    try:
        text = client.file_text(repo, MANIFEST_PATH, ref)
    except GitHubNotFound:
        return ManifestCopy(None, f"`{MANIFEST_PATH}` is not in `{repo}` at `{ref}`", source, False, fallback)
    return ManifestCopy(*_parse(text), source, False, fallback)


def vm_manifest(result: RunResult, app_dir: str) -> ManifestCopy | str:
    """manifest.json as the release-manifest script read it on the VM; a str is why it gave no copy to compare."""
    path = f"{app_dir}/{MANIFEST_PATH}"
    if result.exit_code is None:
        return "the run-command's result did not come back complete"
    if result.exit_code != 0:
        return f"the `{VM_SCRIPT}` script failed on the VM (exit {result.exit_code})"
    facts = result.facts
    state = facts.get("manifest", "")
    details = [f"`{path}`"]
    if facts.get("manifest_modified", "unknown") != "unknown":
        details.append(f"changed {facts['manifest_modified']}")
    if facts.get("runtime_version"):
        details.append(f"VERSION `{facts['runtime_version']}`")
    source = f"on the VM ({', '.join(details)}; read by Run Command)"
    if state == "present":
        lines = result.stdout.splitlines()
        text = next((lines[i + 1] for i, line in enumerate(lines[:-1]) if line.strip() == VM_MANIFEST_MARKER), None)
        if text is None:
            return "the manifest did not come back in the run-command's output"
        return ManifestCopy(*_parse(text), source, True)
    if state == "missing":
        return ManifestCopy(None, f"`{path}` is not on the VM", source, True)
    if state == "unreadable":
        return ManifestCopy(None, f"`{path}` cannot be read on the VM", source, True)
    if state == "too-large":
        return (f"the VM's manifest.json is {facts.get('manifest_bytes', '?')} bytes, more than a run-command "
                "can bring back")
    return f"the `{VM_SCRIPT}` script did not say whether the manifest is there"


def _parse(text: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        return None, f"`{MANIFEST_PATH}` is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if not isinstance(manifest, dict):
        return None, "manifest.json is not a JSON object"
    return manifest, None

