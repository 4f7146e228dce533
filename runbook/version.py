"""Runbook 4, Wrong Runtime Version In /health: VERSION, the deployed manifest and both health
endpoints, compared with each other and with the version expected.

The expected version is the argument, else NEXY_EXPECTED_VERSION, else the latest release's (the
`Update` release on NEXY_RELEASES_REPO, when GITHUB_TOKEN is set). Check: `version.sh` (one
run-command) and the health probes. Fix: `fix version X.Y.Z.Build` runs the server's own
`scripts/update_server_version.sh`, and verify reads both endpoints on the VM.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from bot import render
from bot.context import Context
from bot.errors import GitHubError
from bot.item import Arg, Assessment, Fix, Route, check, fix, probe, script
from bot.settings import Settings
from bot.wording import errors as error_wording
from clients import health as health_probe
from clients.github_client import GitHubClient
from clients.health import HealthReport
from runbook.release import read_release, release_version

SCRIPT = script(__file__, "version")

VERSION_ARG = Arg("version", r"[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,9}", "X.Y.Z.Build, e.g. 2.4.0.240")
"""A runtime version as the runbook's `update_server_version.sh` takes it."""


def normalize(release: str) -> str:
    """`2.4.0 build 240`, `2.4.0.240` and `2.4.0+240` name the same release: `2.4.0.240`."""
    return health_probe.normalize(release)


@dataclass(frozen=True)
class Expected:
    """The version the VM should run, and where that comes from (or why it is unknown)."""

    version: str | None
    source: str


def expected_version(settings: Settings, given: str | None = None) -> Expected:
    """The argument, else NEXY_EXPECTED_VERSION, else the latest release's (GitHub, when configured)."""
    if given:
        return Expected(normalize(given), "the argument")
    if settings.nexy_expected_version:
        return Expected(normalize(settings.nexy_expected_version), "NEXY_EXPECTED_VERSION")
    if not settings.github_token:
        return Expected(None, "none known: set NEXY_EXPECTED_VERSION, or GITHUB_TOKEN to read the latest release")
    try:
        with GitHubClient(settings) as client:
            found, missing = read_release(client, settings.nexy_releases_repo, settings.nexy_release_tag)
    except GitHubError as exc:
        return Expected(None, f"the latest release could not be read: {error_wording.github(exc)}")
    where = f"release `{settings.nexy_release_tag}` on `{settings.nexy_releases_repo}`"
    if found is None:
        return Expected(None, f"none known: {missing}")
    version, build = release_version(found)
    if not (version and build):
        return Expected(None, f"none known: {where} states no version and build")
    return Expected(f"{version}.{build}", where)


@probe("health")
def probe_with_expected(settings: Settings, given: str | None = None) -> HealthReport:
    """The health probes, with the expected version looked up at the same time."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        expected = pool.submit(expected_version, settings, given)
        report = health_probe.probe(settings.nexy_health_urls, settings.nexy_health_timeout_s)
        wanted = expected.result()
    return HealthReport(report.endpoints, wanted.version, wanted.source)


@dataclass(frozen=True)
class VersionReport:
    runtime: str  # VERSION on the VM
    manifest: str  # the deployed manifest's version.build
    health: HealthReport

    @property
    def seen(self) -> dict[str, str]:
        """Every place that states a version, with what it states (normalized)."""
        places = {"`VERSION`": normalize(self.runtime), "manifest.json": normalize(self.manifest)}
        for e in self.health.endpoints:
            places[f"`{e.url}`"] = normalize(e.release) if e.release else ("down" if not e.up else "no version")
        return places

    @property
    def agree(self) -> bool:
        return len(set(self.seen.values())) == 1

    @property
    def ok(self) -> bool:
        expected = self.health.expected
        return self.agree and (expected is None or set(self.seen.values()) == {normalize(expected)})


def next_step(expected: str | None, registry_accepts: Callable[[str], bool]) -> str:
    """`/nexy fix version <expected>` when the parser takes it, else its usage."""
    words = f"fix version {expected}" if expected else ""
    if words and registry_accepts(words):
        return f"Next: `/nexy {words}` (the runbook's `update_server_version.sh`, approved)."
    return "Next: `/nexy fix version <X.Y.Z.Build>` with the version this VM should run."


def render_report(r: VersionReport, recommendation: str) -> tuple[str, list[dict]]:
    expected = r.health.expected
    if r.ok:
        headline = f":large_green_circle: *Version (runbook 4)*: every place says `{next(iter(r.seen.values()))}`"
        headline += f", as expected ({r.health.expected_source})." if expected else "."
    else:
        want = (
            f"expected `{normalize(expected)}` ({r.health.expected_source})"
            if expected
            else (f"no expected version ({r.health.expected_source})")
        )
        headline = f":red_circle: *Version (runbook 4)*: the versions {'agree' if r.agree else 'disagree'}; {want}."
    lines = []
    for place, value in r.seen.items():
        good = (expected is not None and value == normalize(expected)) or (expected is None and r.agree)
        lines.append(f"{':white_check_mark:' if good else ':x:'} {place}: `{value}`")
    blocks = [render.section(headline), render.section("\n".join(lines))]
    if not r.ok:
        blocks.append(render.section(recommendation))
    return headline.replace("*", ""), blocks


@check(
    "version",
    section="4",
    title="Wrong Runtime Version In /health",
    route=Route.VM,
    args=(replace(VERSION_ARG, optional=True),),
    scripts=(SCRIPT,),
)
def version(ctx: Context) -> str:
    """version: VERSION, the manifest and both health endpoints against the expected version

    one run-command and the health probes: `VERSION`, the deployed manifest, `/health` and `/updates/health` against
    each other and the expected version (the argument, X.Y.Z.Build, else `NEXY_EXPECTED_VERSION`, else the latest
    release's on GitHub)
    """
    given = ctx.item.args[0] if ctx.item.args else None
    with ThreadPoolExecutor(max_workers=1) as pool:
        health = pool.submit(probe_with_expected, ctx.settings, given)
        result = ctx.run(SCRIPT)
        report_health = health.result()
    if result.exit_code is None:
        return ctx.incomplete(result, kind="version")
    facts = result.facts
    manifest = f"{facts.get('manifest_version', '?')}.{facts.get('manifest_build', '?')}"
    report = VersionReport(facts.get("runtime_version", "missing"), manifest, report_health)
    recommendation = next_step(report_health.expected, ctx.registry.accepts)
    ctx.post(render_report(report, recommendation), kind="version", duration_s=result.duration_s)
    return "ok" if report.ok else "mismatch"


@fix
class Version(Fix):
    """fix version: set the runtime version with the runbook's update_server_version.sh, then verify /health

    the version (X.Y.Z.Build) validated strictly; plan: both files' change; apply: the server's
    `scripts/update_server_version.sh`; verify: both endpoints on the VM report it
    """

    command = "fix version"
    section = "4"
    title = "Wrong Runtime Version In /health"
    plan_script = SCRIPT
    apply_script = script(__file__, "version_apply")
    args = (VERSION_ARG,)

    def commands(self, settings: Settings, args: tuple[str, ...] = ()) -> list[str]:
        target = args[0] if args else "X.Y.Z.Build"
        curls = [f"curl -fsS {url}  (latest_version/latest_build = {target})" for url in settings.nexy_vm_health_urls]
        return [f"cd {settings.nexy_app_dir} && bash scripts/update_server_version.sh {target}", *curls]

    def assess(self, facts: dict[str, str], settings: Settings, args: tuple[str, ...] = ()) -> Assessment:
        target = normalize(args[0]) if args else ""
        runtime = facts.get("runtime_version", "missing")
        manifest = f"{facts.get('manifest_version', '?')}.{facts.get('manifest_build', '?')}"
        if not target:
            return Assessment(False, blocked="name the version: `fix version X.Y.Z.Build`.")
        if runtime == "missing" and facts.get("manifest_version") == "missing":
            return Assessment(False, blocked=f"neither VERSION nor the manifest is in `{settings.nexy_app_dir}`.")
        if normalize(runtime) == target and normalize(manifest) == target:
            return Assessment(False)
        return Assessment(
            True,
            fingerprint=facts.get("version_fingerprint", ""),
            diff=(
                f"- VERSION {runtime}",
                f"- manifest.json {manifest}",
                f"+ VERSION {target}",
                f"+ manifest.json {target}",
            ),
            notes=("the health endpoints read both files on every request: no restart",),
        )

    def apply_parameters(self, settings: Settings, args: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        return (("NEXY_TARGET_VERSION", normalize(args[0])),)

    def before(self, state: dict[str, str]) -> str:
        return f"VERSION {state.get('runtime_version', '?')}"
