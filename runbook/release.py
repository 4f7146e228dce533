"""Runbook 7-9, release and manifest: release `Update` assets against `manifest.json`.

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

from rq import get_current_job

from bot import render
from bot.context import Context, RunResult
from bot.errors import ExecutorError, GitHubError, GitHubNotFound, SettingsError
from bot.item import Route, check, script
from bot.settings import Settings, run_command_unavailable
from bot.wording import errors as error_wording
from bot.wording.refs import command
from clients.github_client import AssetInfo, GitHubClient, ReleaseInfo

DEPLOY = command("deploy")

MANIFEST_PATH = "server/updates/manifests/manifest.json"
"""Where manifest.json lives, relative to the server repository and to NEXY_APP_DIR on the VM."""

VM_SCRIPT = script(__file__, "release_manifest")
"""The script that prints manifest.json as deployed on the VM."""

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
        return (
            self.release is not None
            and not self.missing_assets
            and not self.unfinished_assets
            and self.manifest_error is None
            and not self.mismatched
        )


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


def compare(
    release: ReleaseInfo | None, copy: ManifestCopy, *, repo: str, tag: str, release_missing: str = ""
) -> ReleaseReport:
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
    return ReleaseReport(
        repo,
        tag,
        release,
        release_missing,
        missing,
        unfinished,
        version,
        build,
        copy.source,
        manifest_error,
        fields,
        manifest_on_vm=copy.on_vm,
        manifest_fallback=copy.fallback,
    )


def _fields(
    release: ReleaseInfo, manifest: dict[str, Any], version: str | None, build: str | None
) -> tuple[FieldCheck, ...]:
    artifact: dict[str, Any] = manifest["artifact"] if isinstance(manifest.get("artifact"), dict) else {}
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
        return None, error_wording.github(exc)


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
        return f"the `{VM_SCRIPT.name}` script failed on the VM (exit {result.exit_code})"
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
        return (
            f"the VM's manifest.json is {facts.get('manifest_bytes', '?')} bytes, more than a run-command "
            "can bring back"
        )
    return f"the `{VM_SCRIPT.name}` script did not say whether the manifest is there"


def _parse(text: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"`{MANIFEST_PATH}` is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if not isinstance(manifest, dict):
        return None, "manifest.json is not a JSON object"
    return manifest, None


# -- the report -----------------------------------------------------------------------------


def render_report(r: ReleaseReport) -> tuple[str, list[dict]]:
    problems = []
    if r.release is None:
        problems.append(f"release `{r.tag}` is not on `{r.repo}`")
    if r.release is not None and r.missing_assets:
        problems.append(f"`{r.tag}` lacks {render.listed(r.missing_assets)}")
    if r.unfinished_assets:
        problems.append(f"the upload of {render.listed(r.unfinished_assets)} did not finish")
    if r.mismatched:
        problems.append(
            f"manifest.json {r.manifest_where} does not match the release: "
            + render.listed((f.field for f in r.mismatched), 10)
            + (" differ" if len(r.mismatched) > 1 else " differs")
        )
    if r.manifest_error:
        problems.append(f"manifest.json {r.manifest_where} could not be read ({r.manifest_error})")
    release_name = f" ({r.release_version} build {r.release_build})" if r.release_version and r.release_build else ""
    if problems:
        icon = ":red_circle:" if r.release is None or r.missing_assets or r.mismatched else ":large_orange_circle:"
        headline = f"{icon} *Release (runbook 7-9)*: " + "; ".join(problems) + "."
    else:
        compared = ", ".join(f"`{f.field}`" for f in r.fields if f.ok)
        assets = render.listed(a.name for a in (r.release.assets if r.release else ()))
        headline = (
            f":large_green_circle: *Release (runbook 7-9)*: `{r.tag}`{release_name} has "
            f"{assets}, and manifest.json {r.manifest_where} "
            f"matches it ({compared})."
        )

    details = []
    if r.release is not None:
        rel = r.release
        states = (
            f"states {r.release_version or 'no version'} build {r.release_build or '?'}"
            if r.release_version or r.release_build
            else "states no version or build"
        )
        details.append(
            f"*Release* {render.link(rel.html_url, rel.tag)} “{rel.name}” on `{r.repo}`, "
            f"published {render.utc_time(rel.published_at)}; {states}"
        )
        lines = []
        for asset in rel.assets:
            mark = ":white_check_mark:" if asset.state == "uploaded" else ":warning:"
            state = "" if asset.state == "uploaded" else f", upload *{asset.state}* (unfinished)"
            lines.append(
                f"{mark} `{asset.name}` {render.size(asset.size)}, updated {render.utc_time(asset.updated_at)}{state}"
            )
        for name in r.missing_assets:
            lines.append(f":x: `{name}` missing")
        details.append("*Assets*\n" + ("\n".join(lines) or "none"))
    else:
        details.append(f"*Release* {r.release_missing}")
    if r.manifest_error:
        details.append(f"*manifest.json* {r.manifest_source}: {r.manifest_error}")
    elif r.fields:
        rows = []
        for f in r.fields:
            if f.ok:
                rows.append(f":white_check_mark: `{f.field}` {render.cut(f.manifest or '', 200)}")
            elif f.ok is None:
                rows.append(f":grey_question: `{f.field}` manifest {f.manifest}; the release states none")
            elif f.release is None:
                rows.append(f":x: `{f.field}` manifest `{f.manifest}`; the release has no such asset")
            else:
                rows.append(f":x: `{f.field}` manifest `{f.manifest}`, release `{f.release}`")
        details.append(f"*manifest.json* {r.manifest_source}, field by field\n" + "\n".join(rows))
    if r.manifest_fallback:
        details.append(
            f":warning: This is the server repository's copy, not the one deployed on the VM: {r.manifest_fallback}."
        )
    blocks = [render.section(headline), render.section("\n\n".join(details))]

    if r.release is None or r.missing_assets or r.unfinished_assets:
        blocks.append(
            render.section(
                "*Fix (runbook 7, 8)*, on the release machine (the publish script does not run in the bot): put "
                "`Nexy.dmg` and/or `Nexy.pkg` in `release_inbox`, try it, publish, and check:\n"
                + render.code(_publish_commands(r, inbox=True))
                + "\nIf the upload fails with 401/403: `gh auth status`, then `gh auth login` (runbook 8)."
            )
        )
    elif r.mismatched or r.manifest_error:
        blocks.append(
            render.section(
                "*Fix (runbook 9)*, on the release machine (the publish script does not run in the bot): "
                "publish again so that manifest.json is rewritten from the release assets:\n"
                + render.code(_publish_commands(r, inbox=False))
                + (_vm_behind_hint(r) if r.manifest_on_vm and r.mismatched else "")
            )
        )
    if problems:
        blocks.append(
            render.context(
                "Verify (runbook 9): `artifact.url`/`version`/`build` in manifest.json match "
                "the release assets; `/nexy release` shows it."
            )
        )
    return headline.replace("*", ""), blocks


def _vm_behind_hint(r: ReleaseReport) -> str:
    """When only the VM's copy is behind: the deploy (runbook 2) or the runtime version (runbook 4) is the fix."""
    target = f"{r.release_version}.{r.release_build}" if r.release_version and r.release_build else "X.Y.Z.Build"
    return (
        "\nIf the server repository's manifest.json already matches the release, the VM is behind it: "
        "check the deploy with {DEPLOY} (runbook 2), or set the runtime version on the VM (runbook 4): "
        f"`bash scripts/update_server_version.sh {target}`."
    )


def _publish_commands(r: ReleaseReport, *, inbox: bool) -> str:
    lines = ["test -d release_inbox && ls -la release_inbox"] if inbox else []
    lines += [
        "python3 scripts/publish_assets_and_sync.py --dry-run",
        "python3 scripts/publish_assets_and_sync.py",
        f"gh release view {r.tag} -R {r.repo}",
    ]
    return "\n".join(lines)


@check(
    "release",
    section="7-9",
    title="Release Assets And manifest.json",
    route=Route.VM_IF_REACHABLE,
    scripts=(VM_SCRIPT,),
)
def release(ctx: Context) -> str:
    """release: release `Update` assets (Nexy.dmg, Nexy.pkg) against the VM's manifest.json: url, version, build

    release `NEXY_RELEASE_TAG` (`Update`) on `NEXY_RELEASES_REPO`: `Nexy.dmg` / `Nexy.pkg` present, sizes, update
    times, unfinished uploads; `manifest.json` **as deployed on the VM**
    (`$NEXY_APP_DIR/server/updates/manifests/manifest.json`, read by one run-command), or, only when run-commands
    cannot reach the VM (e.g. `NEXY_EXECUTOR=azure` without `AZURE_SUBSCRIPTION_ID`, or Azure refusing the
    run-command), the server repository's copy on `NEXY_DEPLOY_BRANCH`; the report names the copy it compared and
    why. Compared field by field: `version`, `build`, `artifact.url` (and `artifact.version/build/size/sha256`); a
    gap or mismatch names the field and shows the publish commands to run on the release machine
    """
    settings = ctx.settings
    try:
        with GitHubClient(settings) as client:
            found, missing = read_release(client, settings.nexy_releases_repo, settings.nexy_release_tag)
            why_not = _why_not_vm(settings)
            copy, duration_s = (why_not, None) if why_not else _vm_manifest(ctx)
            if isinstance(copy, str):  # no copy from the VM, and why: compare the repository's
                copy = read_repo_manifest(client, settings.nexy_server_repo, settings.nexy_deploy_branch, fallback=copy)
    except GitHubError as exc:
        ctx.post(error_wording.check_failed("Release", "7-9", error_wording.github(exc)), kind="release")
        return "failed"
    report = compare(
        found, copy, repo=settings.nexy_releases_repo, tag=settings.nexy_release_tag, release_missing=missing
    )
    ctx.post(render_report(report), kind="release", duration_s=duration_s)
    return "ok" if report.healthy else "attention"


def _why_not_vm(settings: Settings) -> str | None:
    """Why the VM's manifest cannot be read by this job, or None. A job on io never runs a run-command."""
    unavailable = run_command_unavailable(settings)
    if unavailable:
        return f"the VM cannot be reached by run-command ({unavailable})"
    job = get_current_job()
    if job is not None and job.origin != settings.vm_queue:
        return f"this request ran on the `{job.origin}` queue, where no run-command may run"
    return None


def _vm_manifest(ctx: Context) -> tuple[ManifestCopy | str, float | None]:
    """The VM's manifest.json through the engine (the VM's lease, 409s waited out); a str says why there is none."""
    try:
        result = ctx.run(VM_SCRIPT)
    except (ExecutorError, SettingsError) as exc:
        return f"the run-command failed: {error_wording.reason(exc)}", None
    return vm_manifest(result, ctx.settings.nexy_app_dir), result.duration_s
