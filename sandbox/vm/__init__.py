"""A simulated Nexy VM: the production tree under a directory, a real service, and the runbook's faults.

Local use and tests only. `SimulatedVM(root).create()` lays out what the deploy incident runbook
touches on the real VM, under `root`::

    home/azureuser/voice-assistant/   config.env  VERSION  server/main.py  server/requirements.txt
                                      server/updates/manifests/manifest.json
                                      scripts/update_server_version.sh
                                      venv/ (python3 -> the host's interpreter, pyvenv.cfg, activate,
                                             pip stand-in; installed versions in venv/sandbox-packages.txt)
    etc/systemd/system/voice-assistant.service   (the real production paths inside)
    etc/passwd, etc/group                        (root, azureuser)

and starts the service: `server/main.py` really runs (stdlib only), really fails in each fault,
and really serves `/health` and `/updates/health` on loopback ports chosen by the sandbox.

Scripts run ON the VM (`run_script`, or the Azure emulator's Run Command) with `env()`: PATH starts
with `sandbox/vm/bin`, whose stand-ins play the parts of the OS the runbook uses:

- ``systemctl``  start/stop/restart/status/is-active/is-failed/cat/show/daemon-reload/... . A unit
  is run from its LOADED copy: after editing the unit file, `restart` still uses the old ExecStart
  (and warns) until `daemon-reload`, as real systemd does. `restart` really starts ExecStart
  (paths mapped into the root, cwd = WorkingDirectory) in the background, as the unit's User=
  when the host runs as root and has that user, else as the current user.
- ``journalctl`` ``-u UNIT -n N --no-pager``, ``--since/--until``, ``-o cat``, ``-g``: the unit's journal,
  systemd-style lines (``Nov 27 08:00:00 Nexy python3[1234]: ...``).
- ``sudo``, ``sudo -u USER``; ``chown``/``chgrp``/``stat``/``test`` (permission overlay, below).

Files keep host paths (``$NEXY_APP_DIR/config.env`` is ``<root>/home/azureuser/...``): a script names
them through the bot's settings (`settings_env()`: NEXY_APP_DIR, NEXY_SERVICE, NEXY_SERVICE_USER,
NEXY_HEALTH_URLS) and finds the unit file with ``systemctl show -p FragmentPath --value UNIT``. Only
what a process prints is mapped back: the journal shows ``/home/azureuser/voice-assistant/...``.

Permission overlay
------------------
The runbook's 6.1 fault is "config.env is not readable by azureuser". Tests and CI run as root
(who reads anything) and the host usually has no user azureuser, so real permissions cannot show
it. The VM therefore keeps its own users and ownership:

- users/groups are the VM's ``etc/passwd`` / ``etc/group`` (root; azureuser, in group azureuser);
- ownership is an overlay, ``var/lib/sandbox/ownership.json`` (relative path -> [user, group]);
  a path not in it belongs to ``<user>:<user>`` under ``home/<user>/`` and to ``root:root`` elsewhere.
  The ``chown``/``chgrp`` stand-ins write the overlay (and also really chown when the host is root
  and has that user and group); ``stat -c '%U:%G %a'`` reads it;
- mode bits are REAL: ``chmod`` is the host's own chmod, and every judgement reads the real mode;
- a process runs as a VM user: root for Run Command, ``$NEXY_VM_AS_USER`` under ``sudo -u USER``,
  the unit's ``User=`` for the service. Reads are judged as that user against overlay + mode bits:
  the service's ``main.py`` does this before opening config.env (so root or not, the service is
  evaluated as azureuser and gets the real ``PermissionError: [Errno 13] Permission denied:
  '/home/azureuser/voice-assistant/config.env'``), and ``sudo -u azureuser test -r FILE`` does too.

The ``run-command-busy`` fault lives at the Azure emulator (``sandbox.azure_emulator``): it sets
`run_command_busy`, which the emulator honours by answering 409 to that many run commands.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import weakref
from pathlib import Path

from . import _vmlib as vmlib

__all__ = ["SCENARIOS", "SimulatedVM"]

SCENARIOS: dict[str, str] = {
    "healthy": "everything as deployed: the service is active and both health endpoints answer",
    "config-perms": "6.1: config.env is root:root 0600, the service (as azureuser) dies with PermissionError",
    "execstart-drift": "6.2: the unit's ExecStart runs server/server/main.py: python3 can't open file, exit 2",
    "execstart-root": "6.2: the unit's ExecStart runs main.py at the app's root: can't open file '.../main.py', exit 2",
    "api-key-expired": "6 / 6.3: Gemini answers 400 API key expired; TextProcessor fails to initialize, exit 1",
    "api-key-runtime": "6: the key expires while the service runs: it stays active, each Gemini call logs "
                       "API_KEY_INVALID",
    "textprocessor-init": "6.3: the key was revoked: LangChain's ChatGoogleGenerativeAIError at start-up, "
                          "TextProcessor fails to initialize, exit 1",
    "deps-mismatch": "3: the venv has protobuf 4.25.8 (requirements want >=6.31.1,<7): ImportError, exit 1",
    "stale-version": "4: VERSION and the updates manifest are older than expected; /health reports the old version",
    "service-down": "5: the service was stopped and is inactive; the journal shows it stopping",
    "run-command-busy": "6.4: (at the Azure emulator) the next run command(s) get 409 Conflict",
}

HERE = Path(__file__).resolve().parent
IMAGE = HERE / "image"
BIN = HERE / "bin"
PRODUCTION_APP_DIR = "/home/azureuser/voice-assistant"

REQUIREMENTS = """\
# =====================================================
# Nexy server dependencies
# =====================================================

# HTTP server for health checks
aiohttp>=3.12.15

# Google Gemini API (main LLM)
google-genai>=1.38.0

# LangChain integration
langchain>=0.3.27
langchain-core>=0.3.76
langchain-google-genai>=2.1.12

# Utilities
python-dotenv>=1.1.1

# gRPC and Protocol Buffers
grpcio>=1.75.1,<2
grpcio-tools>=1.75.1,<2
grpcio-status>=1.75.1,<2
protobuf>=6.31.1,<7

# Data validation
pydantic>=2.11.9
"""

HEALTHY_PACKAGES = {
    "aiohttp": "3.12.15", "google-genai": "1.38.0", "langchain": "0.3.27", "langchain-core": "0.3.76",
    "langchain-google-genai": "2.1.12", "python-dotenv": "1.1.1", "grpcio": "1.75.1",
    "grpcio-tools": "1.75.1", "grpcio-status": "1.75.1", "protobuf": "6.32.1", "pydantic": "2.11.9",
    "pydantic_core": "2.33.2", "googleapis-common-protos": "1.70.0", "typing_extensions": "4.15.0",
    "setuptools": "80.9.0",
}
BROKEN_PACKAGES = {"protobuf": "4.25.8", "grpcio-status": "1.62.3"}

PYPI_INDEX = {
    "aiohttp": ["3.11.18", "3.12.15", "3.13.2"],
    "google-genai": ["1.20.0", "1.38.0", "1.52.0"],
    "google-generativeai": ["0.8.5"],
    "langchain": ["0.3.25", "0.3.27"],
    "langchain-core": ["0.3.72", "0.3.76", "0.3.79"],
    "langchain-google-genai": ["2.1.9", "2.1.12"],
    "python-dotenv": ["1.0.1", "1.1.1", "1.2.1"],
    "grpcio": ["1.62.3", "1.71.0", "1.75.1", "1.76.0"],
    "grpcio-tools": ["1.62.3", "1.71.0", "1.75.1", "1.76.0"],
    "grpcio-status": ["1.62.3", "1.71.0", "1.75.1", "1.76.0"],
    "protobuf": ["4.25.8", "5.29.5", "6.31.1", "6.32.1", "6.33.1"],
    "pydantic": ["2.11.9", "2.12.4"],
    "pydantic_core": ["2.33.2", "2.41.5"],
    "googleapis-common-protos": ["1.70.0", "1.72.0"],
    "typing_extensions": ["4.15.0"],
    "setuptools": ["80.9.0"],
}

UNIT_TEMPLATE = """\
[Unit]
Description=Nexy Voice Assistant Server
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={user}
Group={user}
WorkingDirectory={app}
Environment=PYTHONUNBUFFERED=1
ExecStart={app}/venv/bin/python3 {script}

[Install]
WantedBy=multi-user.target
"""

_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


def new_gemini_key() -> str:
    """A fake key shaped like a real Google API key (AIza + 35 characters)."""
    return "AIzaSy" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(33))


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out to outgoing connections and `bind(0)` (Linux: 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _free_port() -> int:
    """A free loopback port below the ephemeral range: the service binds it only when it starts, and
    in between an ephemeral port may become any process's outgoing connection (the service would
    then fail with `Address already in use`); below the range only another `_free_port` could take
    it, and the reservations below keep those apart."""
    low = _ephemeral_low()
    for _ in range(100):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError("no free port below the ephemeral range")


_PORTS = Path(tempfile.gettempdir()) / "nexy-sandbox-ports"
"""One lock file per port a simulated VM's service will listen on, held while that VM lives: the
service binds its ports only when it starts, so two VMs (in two processes, say two test workers)
must not both be handed the same free port in between."""


class _PortReservations:
    """The ports one simulated VM holds (flocks on files under _PORTS), released together."""

    def __init__(self) -> None:
        self._held: dict[int, int] = {}

    def take(self, wanted: int | None = None) -> int:
        """Reserve `wanted` (kept even when another holds it: it was asked for), or a free port."""
        _PORTS.mkdir(exist_ok=True)
        for _ in range(100):
            port = wanted or _free_port()
            if port in self._held:
                if wanted:
                    return port
                continue
            fd = os.open(_PORTS / f"{port}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if wanted:
                    return wanted
                continue
            self._held[port] = fd
            return port
        raise OSError("no free port could be reserved for the simulated VM")

    def release(self) -> None:
        for port, fd in self._held.items():
            with contextlib.suppress(OSError):
                os.unlink(_PORTS / f"{port}.lock")
            os.close(fd)
        self._held.clear()


def _stale(version: str, build: str) -> tuple[str, str]:
    parts = [int(p) if p.isdigit() else 0 for p in version.split(".")]
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] > 0:
            parts[i] -= 1
            break
    old_build = str(max(int(build) - 7, 1)) if build.isdigit() else f"{build}-old"
    return ".".join(map(str, parts)), old_build


def _stop_all(root: Path) -> None:
    for unit in vmlib.all_units(root):
        state = vmlib.read_state(root, unit)
        if vmlib.pid_alive(state.get("supervisor_pid")) or vmlib.pid_alive(state.get("main_pid")):
            with contextlib.suppress(Exception):
                vmlib.unit_stop(root, unit, timeout_s=3.0, quiet=True)
            state = vmlib.read_state(root, unit)
            vmlib.kill_group(state)


class SimulatedVM:
    """The Nexy production VM under `root`; see the module docstring."""

    def __init__(self, root: Path, *, health_port: int = 0, updates_port: int = 0, version: str = "2.4.0",
                 build: str = "240", service: str = "voice-assistant", service_user: str = "azureuser",
                 hostname: str = "Nexy", production_paths: bool = False) -> None:
        self.root = Path(root).resolve()
        self.version = version
        self.build = build
        self.service = service
        self.service_user = service_user
        self.hostname = hostname
        self._health_port = health_port
        self._updates_port = updates_port
        self.run_command_busy = 0
        """Run commands the Azure emulator still answers with 409 (set by break_("run-command-busy"))."""
        self.production_paths = production_paths and _namespaces_work()
        """Run-commands see the tree at its production paths (/home/<user>/voice-assistant, the unit in
        /etc/systemd/system) through a private mount namespace, so scripts and plans show the paths
        of the real VM; off where mount namespaces cannot be had (then the host paths show)."""
        self._finalizer: weakref.finalize | None = None
        self._ports = _PortReservations()

    # ----------------------------------------------------------------- paths and settings

    @property
    def app_dir(self) -> Path:
        return self.root / "home" / self.service_user / "voice-assistant"

    @property
    def unit_path(self) -> Path:
        return self.root / "etc/systemd/system" / f"{self.service}.service"

    @property
    def production_app_dir(self) -> str:
        return f"/home/{self.service_user}/voice-assistant"

    @property
    def expected_version(self) -> str:
        """The release this VM should run, as `X.Y.Z.Build` (what VERSION holds when healthy)."""
        return f"{self.version}.{self.build}"

    @property
    def stale_version(self) -> str:
        """The older `X.Y.Z.Build` the stale-version fault leaves behind."""
        return ".".join(_stale(self.version, self.build))

    @property
    def ports(self) -> tuple[int, int]:
        config = vmlib.vm_config(self.root)
        return int(config.get("health_port") or self._health_port), int(config.get("updates_port") or self._updates_port)

    @property
    def health_urls(self) -> list[str]:
        health, updates = self.ports
        return [f"http://127.0.0.1:{health}/health", f"http://127.0.0.1:{updates}/updates/health"]

    @property
    def gemini_state(self) -> Path:
        """The sandbox Gemini's state (model, expired and revoked keys), shared with `GeminiEmulator`."""
        return self.root / vmlib.SANDBOX_DIR / "gemini.json"

    @property
    def gemini_key(self) -> str | None:
        for line in (self.app_dir / "config.env").read_text(encoding="utf-8").splitlines():
            if line.startswith("GEMINI_API_KEY="):
                return line.split("=", 1)[1].strip()
        return None

    def env(self) -> dict[str, str]:
        """The environment a script runs with ON this VM (as root, like Run Command)."""
        host_path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        env = {
            "PATH": f"{BIN}:{vmlib.SYSTEMD_DEFAULT_PATH}:{host_path}",
            "NEXY_VM_ROOT": str(self.root),
            "NEXY_VM_PYTHON": sys.executable,
            "HOME": str(self.root / "root"),
            "USER": "root", "LOGNAME": "root", "SHELL": "/bin/bash",
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        }
        return env

    def settings_env(self) -> dict[str, str]:
        """What the BOT is configured with to work on this VM."""
        return {
            "NEXY_APP_DIR": self.production_app_dir if self.production_paths else str(self.app_dir),
            "NEXY_SERVICE": self.service,
            "NEXY_SERVICE_USER": self.service_user,
            "NEXY_HEALTH_URLS": ",".join(self.health_urls),
            "NEXY_EXPECTED_VERSION": self.expected_version,
        }

    # ----------------------------------------------------------------- lifecycle

    def create(self) -> "SimulatedVM":
        """Lay out a healthy production tree (once; later calls keep it) and start the service."""
        marker = self.root / vmlib.SANDBOX_DIR / "created"
        self._write_vm_config()
        if not marker.exists():
            self._lay_out()
            marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%S") + "\n")
        if self._finalizer is None:  # no service outlives this object or the interpreter
            self._finalizer = weakref.finalize(self, _stop_all, self.root)
        if not self.service_active():
            self._systemctl("restart")
        self.wait_healthy()
        return self

    def stop(self) -> None:
        """Stop every service of this VM and kill what is left of their processes."""
        _stop_all(self.root)
        self._ports.release()

    def __enter__(self) -> "SimulatedVM":
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _write_vm_config(self) -> None:
        path = self.root / vmlib.SANDBOX_DIR / "vm.json"
        config = vmlib.read_json(path, {})
        health = self._ports.take(self._health_port or config.get("health_port"))
        updates = self._ports.take(self._updates_port or config.get("updates_port"))
        while updates == health:
            updates = self._ports.take()
        config.update(health_port=health, updates_port=updates, hostname=self.hostname, owner_pid=os.getpid(),
                      service=self.service, service_user=self.service_user)
        vmlib.write_json_atomic(path, config)

    def _lay_out(self) -> None:
        root, app, user = self.root, self.app_dir, self.service_user
        for d in ("etc/systemd/system", "run", "tmp", "root", "var/log/journal", vmlib.SANDBOX_DIR,
                  "var/lib/waagent/run-command/download"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "etc/passwd").write_text(
            "root:x:0:0:root:/root:/bin/bash\n"
            f"{user}:x:1000:1000:{user}:/home/{user}:/bin/bash\n")
        (root / "etc/group").write_text(
            f"root:x:0:\nadm:x:4:syslog,{user}\nsudo:x:27:{user}\n{user}:x:1000:\n")
        (root / "etc/hostname").write_text(self.hostname + "\n")
        # application tree
        shutil.copytree(IMAGE / "server", app / "server", dirs_exist_ok=True)
        shutil.copytree(IMAGE / "scripts", app / "scripts", dirs_exist_ok=True)
        (app / "scripts/update_server_version.sh").chmod(0o755)
        (app / "server/requirements.txt").write_text(REQUIREMENTS, encoding="utf-8")
        (app / "server/updates/manifests").mkdir(parents=True, exist_ok=True)
        self._write_release(self.version, self.build)
        self._write_config(new_gemini_key())
        self._make_venv()
        vmlib.write_json_atomic(root / vmlib.SANDBOX_DIR / "pypi-index.json", PYPI_INDEX)
        vmlib.write_json_atomic(root / vmlib.SANDBOX_DIR / "gemini.json",
                                {"model": "gemini-2.5-flash", "expired_keys": [], "revoked_keys": []})
        self.unit_path.write_text(self._unit_text("server/main.py"), encoding="utf-8")
        vmlib.daemon_reload(root)
        self._set_owner(app / "config.env", "root", user, 0o640)

    def _unit_text(self, script: str) -> str:
        return UNIT_TEMPLATE.format(user=self.service_user, app=self.production_app_dir, script=script)

    def _write_release(self, version: str, build: str) -> None:
        """VERSION, and manifest.json as deployed: what the publish script wrote for release `Update`
        (the same file the GitHub emulator's healthy server repository holds)."""
        from sandbox.github_emulator import published_manifest

        app = self.app_dir
        (app / "VERSION").write_text(f"{version}.{build}\n", encoding="utf-8")
        manifest = published_manifest(version, build)
        path = app / "server/updates/manifests/manifest.json"
        path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

    def deploy_manifest(self, manifest: dict) -> None:
        """Write manifest.json as a deploy of the server repository brings it (VERSION stays)."""
        path = self.app_dir / "server/updates/manifests/manifest.json"
        path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

    def _set_runtime_version(self, version: str, build: str) -> None:
        """VERSION and the manifest's version/build only, as `scripts/update_server_version.sh` sets them:
        the artifact (url, size, sha256) stays what the publish script wrote."""
        app = self.app_dir
        (app / "VERSION").write_text(f"{version}.{build}\n", encoding="utf-8")
        path = app / "server/updates/manifests/manifest.json"
        manifest = json.loads(path.read_text(encoding="utf-8"))
        manifest.update(version=version, build=build)
        manifest.setdefault("artifact", {}).update(version=version, build=build)
        path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

    def _write_config(self, key: str) -> None:
        path = self.app_dir / "config.env"
        lines = ["# Nexy voice-assistant runtime configuration", f"GEMINI_API_KEY={key}",
                 "GEMINI_MODEL=gemini-2.5-flash", "GRPC_HOST=0.0.0.0", "GRPC_PORT=50051",
                 "HEALTH_PORT=8080", "UPDATES_PORT=8081", "LOG_LEVEL=INFO"]
        if path.exists():
            old = path.read_text(encoding="utf-8").splitlines()
            lines = [f"GEMINI_API_KEY={key}" if line.startswith("GEMINI_API_KEY=") else line for line in old]
            if not any(line.startswith("GEMINI_API_KEY=") for line in lines):
                lines.insert(1, f"GEMINI_API_KEY={key}")
        # write in place: the file keeps its owner and mode, like an editor or `sed -i` as root
        with open(path, "a+", encoding="utf-8") as handle:
            handle.seek(0)
            handle.truncate()
            handle.write("\n".join(lines) + "\n")

    def _make_venv(self) -> None:
        venv = self.app_dir / "venv"
        (venv / "bin").mkdir(parents=True, exist_ok=True)
        base = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
        pyver = f"{sys.version_info[0]}.{sys.version_info[1]}"
        (venv / "lib" / f"python{pyver}" / "site-packages").mkdir(parents=True, exist_ok=True)
        (venv / "pyvenv.cfg").write_text(
            f"home = {os.path.dirname(base)}\ninclude-system-site-packages = false\n"
            f"version = {sys.version_info[0]}.{sys.version_info[1]}.{sys.version_info[2]}\n"
            f"executable = {base}\ncommand = {base} -m venv {venv}\n")
        for name in ("python3", "python", f"python{pyver}"):
            link = venv / "bin" / name
            if os.path.lexists(link):
                link.unlink()
        (venv / "bin" / "python3").symlink_to(base)
        (venv / "bin" / "python").symlink_to("python3")
        (venv / "bin" / f"python{pyver}").symlink_to("python3")
        shutil.copy2(IMAGE / "venv/lib/sandbox_pip.py", venv / "lib/sandbox_pip.py")
        for name in ("pip", "pip3", f"pip{pyver}"):
            shutil.copy2(IMAGE / "venv/bin/pip", venv / "bin" / name)
            (venv / "bin" / name).chmod(0o755)
        activate = (IMAGE / "venv/bin/activate").read_text(encoding="utf-8").replace("@VIRTUAL_ENV@", str(venv))
        (venv / "bin/activate").write_text(activate, encoding="utf-8")
        self._write_packages(HEALTHY_PACKAGES)

    def _write_packages(self, packages: dict[str, str]) -> None:
        lines = [f"{name}=={version}" for name, version in sorted(packages.items(), key=lambda p: p[0].lower())]
        (self.app_dir / "venv/sandbox-packages.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def _packages(self) -> dict[str, str]:
        path = self.app_dir / "venv/sandbox-packages.txt"
        result = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if "==" in line:
                name, version = line.split("==", 1)
                result[name] = version
        return result

    def _set_owner(self, path: Path, user: str, group: str, mode: int) -> None:
        vmlib.set_owner(self.root, path, user, group)
        os.chmod(path, mode)

    def _systemctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "systemctl"), *args, self.service], env=self.env(),
                              capture_output=True, text=True, timeout=30)

    # ----------------------------------------------------------------- running things on the VM

    def run_script(self, script: str, parameters: list[tuple[str, str]] | tuple = (),
                   timeout: float = 600, *, environment: dict[str, str] | None = None,
                   download: str = "var/lib/waagent/run-command/download",
                   started=None) -> tuple[int, str, str]:
        """Run `script` with bash on this VM, as Run Command's RunShellScript does.

        Like the Linux Run Command handler, the script is written to a numbered download directory
        and run as ``/bin/bash -c <dir>/script.sh`` in that directory, as root, stdout and stderr
        going to files. Parameters are put at the top of the script the way Azure does it:
        ``export name1='v1' name2='v2'`` (names that are shell identifiers) then ``set -- 'v1' 'v2'``,
        so they reach the script both as environment variables and as $1, $2, ...
        `environment` is how the managed Run Command handler passes named parameters (protected
        ones too): set in the script's environment, never written into script.sh; `download` is
        the handler's download directory under the VM's root; `started(proc)` is told the
        script's process (its group can be killed: a managed run command deleted while it runs).
        Returns (exit code, stdout, stderr); a timeout kills the script's process group (exit 124).
        """
        download = self.root / download
        download.mkdir(parents=True, exist_ok=True)
        seq = 0
        while True:
            workdir = download / str(seq)
            try:
                workdir.mkdir()
                break
            except FileExistsError:
                seq += 1
        body = script.replace("\r\n", "\n")
        prelude = parameters_prelude(parameters)
        script_path = workdir / "script.sh"
        script_path.write_text(prelude + body + ("" if body.endswith("\n") else "\n"), encoding="utf-8")
        script_path.chmod(0o500)
        with open(workdir / "stdout", "wb") as out, open(workdir / "stderr", "wb") as err:
            proc = subprocess.Popen(self._runner(script_path), cwd=workdir,
                                    env={**self._script_env(), **(environment or {})},
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
            if started is not None:
                started(proc)
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                proc.wait()
                rc = 124
        stdout = (workdir / "stdout").read_bytes().decode("utf-8", errors="replace")
        stderr = (workdir / "stderr").read_bytes().decode("utf-8", errors="replace")
        return rc, stdout, stderr

    def _script_env(self) -> dict[str, str]:
        return {**self.env(), "NEXY_VM_PRODUCTION_PATHS": "1"} if self.production_paths else self.env()

    def _runner(self, script_path: Path) -> list[str]:
        """bash, in a private mount namespace showing the tree at its production paths when on."""
        if not self.production_paths:
            return ["/bin/bash", "-c", str(script_path)]
        return [*_unshare(), "/bin/bash", "-c", _mount_production_paths(self.root, self.service_user) + 'exec /bin/bash -c "$0"',
                str(script_path)]

    # ----------------------------------------------------------------- faults

    def break_(self, scenario: str, *, times: int = 1) -> None:
        """Put the VM into a runbook fault (on top of its current state) and wait for the symptom."""
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
        if scenario == "healthy":
            self.heal()
            return
        if scenario == "run-command-busy":
            self.run_command_busy = times
            return
        if scenario == "stale-version":
            self._set_runtime_version(*_stale(self.version, self.build))
            self.wait_healthy()
            return
        if scenario == "service-down":
            self._systemctl("stop")
            self.wait_state("inactive")
            return
        if scenario == "config-perms":
            self._set_owner(self.app_dir / "config.env", "root", "root", 0o600)
        elif scenario in ("execstart-drift", "execstart-root"):
            script = "server/server/main.py" if scenario == "execstart-drift" else "main.py"
            self.unit_path.write_text(self._unit_text(script), encoding="utf-8")
            vmlib.daemon_reload(self.root)
        elif scenario in ("api-key-expired", "api-key-runtime", "textprocessor-init"):
            self._mark_key("revoked_keys" if scenario == "textprocessor-init" else "expired_keys")
            if scenario == "api-key-runtime":  # no restart: the running service meets it on its next call
                self.wait_journal("API_KEY_INVALID")
                return
        elif scenario == "deps-mismatch":
            self._write_packages({**self._packages(), **BROKEN_PACKAGES})
        self._systemctl("restart")
        self.wait_state("failed")

    def _mark_key(self, kind: str) -> None:
        """Make the sandbox's Gemini refuse the current key: `expired_keys` or `revoked_keys`."""
        gemini = vmlib.read_json(self.gemini_state, {})
        gemini.setdefault(kind, [])
        key = self.gemini_key
        if key and key not in gemini[kind]:
            gemini[kind].append(key)
        vmlib.write_json_atomic(self.gemini_state, gemini)

    def wait_journal(self, text: str, timeout: float = 10.0) -> None:
        """Wait until the service's journal shows `text`."""
        deadline = time.monotonic() + timeout
        while text not in self.journal(50):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} did not reach the journal within {timeout:g} s")
            time.sleep(0.05)

    def heal(self) -> None:
        """Put the VM back to healthy (the fix of every fault at once) and wait until it serves."""
        self.run_command_busy = 0
        config = self.app_dir / "config.env"
        self._set_owner(config, "root", self.service_user, 0o640)
        if self.unit_path.read_text(encoding="utf-8") != self._unit_text("server/main.py"):
            self.unit_path.write_text(self._unit_text("server/main.py"), encoding="utf-8")
        vmlib.daemon_reload(self.root)
        gemini = vmlib.read_json(self.root / vmlib.SANDBOX_DIR / "gemini.json", {})
        key = self.gemini_key
        if (not key or key in gemini.get("expired_keys", []) or key in gemini.get("revoked_keys", [])
                or len(key) != 39 or not key.startswith("AIza")):
            self._write_config(new_gemini_key())
        packages = self._packages()
        if any(packages.get(name) == version for name, version in BROKEN_PACKAGES.items()):
            self._write_packages({**packages, **{n: HEALTHY_PACKAGES[n] for n in BROKEN_PACKAGES}})
        self._write_release(self.version, self.build)
        self._systemctl("restart")
        self.wait_healthy()

    # ----------------------------------------------------------------- observing

    def service_state(self) -> str:
        """active | activating | inactive | failed, as `systemctl is-active` says."""
        return vmlib.active_state(self.root, vmlib.unit_name(self.service))

    def service_active(self) -> bool:
        return self.service_state() == "active"

    def log(self, message: str, ident: str = "python3", pid: int = 4242) -> None:
        """Append one line to the service's journal, as the service would write it."""
        vmlib.journal_append(self.root, vmlib.unit_name(self.service), ident, pid, message)

    def journal(self, lines: int = 200) -> str:
        entries = vmlib.journal_entries(self.root, [vmlib.unit_name(self.service)])[-lines:]
        return "\n".join(vmlib.format_entry(e, self.hostname) for e in entries)

    def health(self, timeout: float = 2.0) -> list[dict]:
        """GET every health URL; raises OSError (URLError) when one does not answer 200."""
        bodies = []
        for url in self.health_urls:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                bodies.append(json.loads(response.read()))
        return bodies

    def wait_state(self, state: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.service_state() != state:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.service} is {self.service_state()}, not {state}\n{self.journal(30)}")
            time.sleep(0.02)

    def wait_healthy(self, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.service_active():
                    return self.health(timeout=1.0)
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline or self.service_state() == "failed":
                raise TimeoutError(f"{self.service} is not healthy ({self.service_state()})\n{self.journal(30)}")
            time.sleep(0.02)


def _unshare() -> list[str]:
    """`unshare` for a private mount namespace (mapping the caller to root when it is not root)."""
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    return ["unshare", *user, "--mount", "--propagation", "private", "--"]


def _mount_production_paths(root: Path, user: str) -> str:
    """Shell that, inside the namespace, shows <root>/home/<user> at /home/<user> (over an empty
    /home) and the VM's unit files at /etc/systemd/system where the host has that folder. Only this
    namespace sees it: the host's /home and /etc are untouched."""
    home, units = shlex.quote(str(root / "home" / user)), shlex.quote(str(root / vmlib.UNIT_DIR))
    return (f"mount -t tmpfs -o mode=755 nexy-vm-home /home && mkdir -p /home/{user} "
            f"&& mount --bind {home} /home/{user} "
            f"&& {{ [ ! -d /etc/systemd/system ] || mount --bind {units} /etc/systemd/system; }} || exit 125; ")


_NAMESPACES: bool | None = None


def _namespaces_work() -> bool:
    """Whether this host lets us make a private mount namespace and mount in it (checked once)."""
    global _NAMESPACES
    if _NAMESPACES is None:
        try:
            done = subprocess.run([*_unshare(), "/bin/sh", "-c", "mount -t tmpfs nexy-probe /home"],
                                  capture_output=True, timeout=10)
            _NAMESPACES = done.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            _NAMESPACES = False
    return _NAMESPACES


def parameters_prelude(parameters) -> str:
    """The lines Azure puts at the top of a RunShellScript for its parameters (empty without any)."""
    params = [(str(name), str(value)) for name, value in parameters or ()]
    if not params:
        return ""
    exports = [f"{name}={shlex.quote(value)}" for name, value in params if name.isidentifier() and name.isascii()]
    lines = []
    if exports:
        lines.append("export " + " ".join(exports))
    lines.append("set -- " + " ".join(shlex.quote(value) for _, value in params))
    return "\n".join(lines) + "\n"
