"""deploy/: the systemd units (checked by systemd-analyze where it runs, and parsed always), the
environment file, the reverse proxy and the container image say what the code needs."""
from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bot.contract import vm_job_timeout
from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNITS = ("nexy-web.service", "nexy-worker.service")
INSTALLED_NEXY = "/opt/nexy-ops/.venv/bin/nexy"


def unit(name: str) -> configparser.ConfigParser:
    """A unit file as sections of keys (systemd allows repeated keys: the last one is kept here)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    parser.optionxform = str  # keys are case-sensitive in systemd
    parser.read_string((DEPLOY / name).read_text())
    return parser


def seconds(span: str) -> float:
    """A systemd time span (`2h 10min`, `30`, `90s`) in seconds."""
    units = {"h": 3600, "min": 60, "m": 60, "s": 1, "": 1}
    total = 0.0
    for number, suffix in re.findall(r"(\d+(?:\.\d+)?)\s*(h|min|m|s|)", span):
        total += float(number) * units[suffix]
    return total


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("name", UNITS)
def test_units_pass_systemd_analyze_verify(tmp_path, name):
    """systemd's own check finds nothing to say (ExecStart pointed at this checkout's nexy, which must exist)."""
    nexy = Path(sys.executable).with_name("nexy")
    assert nexy.exists()
    copy = tmp_path / name
    copy.write_text((DEPLOY / name).read_text().replace(INSTALLED_NEXY, str(nexy)))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_verify_would_catch_a_broken_unit(tmp_path):
    """The systemd check is not vacuous: a bad time span or kill mode is reported."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    broken = tmp_path / "broken.service"
    text = (DEPLOY / "nexy-worker.service").read_text().replace(INSTALLED_NEXY, str(Path(sys.executable)))
    broken.write_text(text.replace("KillMode=mixed", "KillMode=gently"))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(broken)], capture_output=True, text=True,
                            timeout=60)
    assert "kill mode" in result.stderr


def test_units_run_nexy_with_the_environment_file_and_restart():
    """Both units run nexy as a service user with the environment file, restart on failure but not on a bad
    setting (exit 2), and start after the network and Redis."""
    for name, command in zip(UNITS, ("web", "worker"), strict=True):
        service = unit(name)["Service"]
        assert service["ExecStart"] == f"{INSTALLED_NEXY} {command}"
        assert service["EnvironmentFile"] == "/etc/nexy-ops/nexy.env"
        assert service["Restart"] == "on-failure" and service["RestartPreventExitStatus"] == "2"
        assert service["User"] == "nexy" and service["NoNewPrivileges"] == "yes"
        assert service["ReadWritePaths"] == service["WorkingDirectory"] == "/var/lib/nexy-ops"
        assert "redis-server.service" in unit(name)["Unit"]["After"]
        assert unit(name)["Install"]["WantedBy"] == "multi-user.target"


def test_worker_stop_timeout_outlives_a_run_command():
    """The worker unit signals only `nexy worker` (it stops in order) and waits longer than a VM job may run."""
    service = unit("nexy-worker.service")["Service"]
    assert service["KillMode"] == "mixed"
    assert seconds(service["TimeoutStopSec"]) >= vm_job_timeout(Settings.model_fields["nexy_conflict_max_wait_s"].default)
    assert seconds(unit("nexy-web.service")["Service"]["TimeoutStopSec"]) >= 10  # gunicorn's graceful timeout


def test_environment_file_names_only_real_settings():
    """Every variable of deploy/nexy.env.example is a setting (no typo), REDIS_URL is set, web binds loopback."""
    values = dict(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=(.*)$", (DEPLOY / "nexy.env.example").read_text(), re.M))
    fields = {name.upper() for name in Settings.model_fields}
    assert set(values) <= fields, set(values) - fields
    assert values["REDIS_URL"].startswith("redis://") and values["NEXY_BIND_HOST"] == "127.0.0.1"


def test_reverse_proxy_passes_slack_requests_to_nexy_web_over_tls():
    """nginx: port 80 redirects to https; 443 has TLS and proxies only /slack/events to nexy web's port."""
    conf = (DEPLOY / "nginx.conf").read_text()
    port = dict(re.findall(r"^([A-Z_]+)=(.*)$", (DEPLOY / "nexy.env.example").read_text(), re.M))["PORT"]
    assert re.search(r"listen 443 ssl;", conf) and "ssl_certificate " in conf and "ssl_certificate_key " in conf
    assert "return 301 https://$host$request_uri;" in conf
    location = re.search(r"location = /slack/events \{(.*?)\}", conf, re.S).group(1)
    assert f"proxy_pass http://127.0.0.1:{port};" in location
    assert conf.count("{") == conf.count("}")
    assert re.search(r"location / \{\s*return 404;", conf)  # /healthz and the rest stay on the host


def test_container_image_installs_the_package_and_serves_web():
    """The Dockerfile copies every package the project installs, runs as a non-root user, checks /healthz,
    and starts `nexy web` (the worker is the same image with `nexy worker`)."""
    instructions = [line.split(None, 1) for line in
                    re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text()).splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]
    known = {"FROM", "ENV", "RUN", "WORKDIR", "COPY", "USER", "EXPOSE", "STOPSIGNAL", "HEALTHCHECK", "CMD"}
    assert {word for word, _ in instructions} <= known
    by = {}
    for word, rest in instructions:
        by.setdefault(word, []).append(rest)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    python = re.search(r"python:(\d+\.\d+)", by["FROM"][0]).group(1)
    assert project["project"]["requires-python"] == f">={python}"
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {rest.split()[0] for rest in by["COPY"]}
    assert packages <= copied and "pyproject.toml" in by["COPY"][0]
    assert by["USER"] == ["nexy"] and by["EXPOSE"] == ["3000"] and by["CMD"] == ['["nexy", "web"]']
    assert "/healthz" in by["HEALTHCHECK"][0]
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text()
    assert all(f"!{package}/" in ignore for package in packages)
