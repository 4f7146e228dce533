"""Internals of the simulated Nexy VM, shared by `SimulatedVM` and the stand-in executables.

Stdlib only. Imported as ``sandbox.vm._vmlib`` by :class:`sandbox.vm.SimulatedVM`, and as the
top-level module ``_vmlib`` by ``_tools.py`` / ``_supervisor.py``, which the stand-ins in
``sandbox/vm/bin`` run as plain scripts (so a VM script never needs this project importable).

Everything lives under the VM root (``NEXY_VM_ROOT``):

- ``etc/passwd``, ``etc/group``           the VM's users and groups (root, azureuser)
- ``etc/systemd/system/*.service``        unit files, with the real production paths inside
- ``run/sandbox-systemd/``                what "systemd" has loaded (``<unit>.loaded``), unit state
                                          (``<unit>.state.json``), supervisor spec and locks
- ``var/log/journal/<unit>.jsonl``        the journal, one JSON object a line
- ``var/lib/sandbox/vm.json``             sandbox facts: ports, hostname, owner pid
- ``var/lib/sandbox/ownership.json``      the ownership overlay (see ``sandbox/vm/__init__.py``)
"""
from __future__ import annotations

import contextlib
import fcntl
import grp
import json
import os
import pwd
import re
import shlex
import signal
import stat as stat_mod
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

HERE = Path(__file__).resolve().parent
BIN_DIR = HERE / "bin"

SANDBOX_DIR = "var/lib/sandbox"
STATE_DIR = "run/sandbox-systemd"
JOURNAL_DIR = "var/log/journal"
UNIT_DIR = "etc/systemd/system"
SYSTEMD_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# --------------------------------------------------------------------------- basics

def vm_root_from_env() -> Path:
    value = os.environ.get("NEXY_VM_ROOT")
    if not value:
        sys.stderr.write("sandbox stand-in: NEXY_VM_ROOT is not set (use SimulatedVM.env())\n")
        raise SystemExit(1)
    return Path(value)


def read_json(path: Path, default):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def write_json_atomic(path: Path, data) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def vm_config(root: Path) -> dict:
    return read_json(Path(root) / SANDBOX_DIR / "vm.json", {})


def hostname(root: Path) -> str:
    return vm_config(root).get("hostname", "Nexy")


def effective_user() -> str:
    """The user a VM command runs as: Run Command runs as root; `sudo -u X` sets NEXY_VM_AS_USER."""
    return os.environ.get("NEXY_VM_AS_USER") or "root"


def to_vm_path(root: Path, path: str | os.PathLike) -> str:
    """A host path under the VM root as the VM sees it (``<root>/etc/x`` -> ``/etc/x``)."""
    text = os.path.abspath(path)
    prefix = str(root)
    if text == prefix:
        return "/"
    if text.startswith(prefix + "/"):
        return text[len(prefix):]
    return text


def from_vm_path(root: Path, path: str, *, must_exist_parent: bool = False) -> str:
    """Map an absolute production path into the VM root when it lives there.

    Paths already under the root and paths that exist only on the host (``/usr/bin/env``) are
    left alone; so a unit may name either ``/home/azureuser/...`` or ``$NEXY_APP_DIR/...``.
    """
    if not path.startswith("/"):
        return path
    prefix = str(root)
    if path == prefix or path.startswith(prefix + "/"):
        return path
    mapped = Path(root) / path.lstrip("/")
    probe = mapped.parent if must_exist_parent else mapped
    if probe.exists() or os.path.lexists(mapped):
        return str(mapped)
    return path


_ROOT_RE_CACHE: dict[str, re.Pattern] = {}


def strip_root(root: Path, text: str) -> str:
    """Rewrite host paths under the VM root to the production paths the VM would print."""
    key = str(root)
    pattern = _ROOT_RE_CACHE.get(key)
    if pattern is None:
        pattern = _ROOT_RE_CACHE[key] = re.compile(re.escape(key) + r"(?=/)")
    return pattern.sub("", text)


# --------------------------------------------------------------------------- users and groups

def vm_users(root: Path) -> dict[str, dict]:
    users: dict[str, dict] = {}
    try:
        lines = (Path(root) / "etc/passwd").read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = ["root:x:0:0:root:/root:/bin/bash"]
    for line in lines:
        parts = line.split(":")
        if len(parts) >= 7 and parts[0]:
            users[parts[0]] = {"uid": int(parts[2]), "gid": int(parts[3]), "home": parts[5]}
    return users


def vm_groups(root: Path) -> dict[str, dict]:
    groups: dict[str, dict] = {}
    try:
        lines = (Path(root) / "etc/group").read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = ["root:x:0:"]
    for line in lines:
        parts = line.split(":")
        if len(parts) >= 4 and parts[0]:
            members = {m for m in parts[3].split(",") if m}
            groups[parts[0]] = {"gid": int(parts[2]), "members": members}
    return groups


def primary_group(root: Path, user: str) -> str | None:
    info = vm_users(root).get(user)
    if info is None:
        return None
    for name, group in vm_groups(root).items():
        if group["gid"] == info["gid"]:
            return name
    return None


def user_groups(root: Path, user: str) -> set[str]:
    names = {name for name, group in vm_groups(root).items() if user in group["members"]}
    primary = primary_group(root, user)
    if primary:
        names.add(primary)
    return names


def host_ids(user: str, group: str | None) -> tuple[int, int] | None:
    """(uid, gid) of user/group on the HOST, when both exist there."""
    try:
        uid = pwd.getpwnam(user).pw_uid
        gid = grp.getgrnam(group).gr_gid if group else pwd.getpwnam(user).pw_gid
    except KeyError:
        return None
    return uid, gid


# --------------------------------------------------------------------------- ownership overlay

def _overlay_path(root: Path) -> Path:
    return Path(root) / SANDBOX_DIR / "ownership.json"


def _rel(root: Path, path: str | os.PathLike) -> str | None:
    """The path relative to the VM root; a production path (``/home/azureuser/...``, as scripts see it
    with the production paths mounted) counts as the file under the root it names."""
    text = from_vm_path(root, os.path.abspath(path))
    prefix = str(root)
    if text == prefix:
        return "."
    if text.startswith(prefix + "/"):
        return text[len(prefix) + 1:]
    return None


def owner_of(root: Path, path: str | os.PathLike) -> tuple[str, str]:
    """(user, group) owning `path` inside the VM (overlay first, then the default rule)."""
    root = Path(root)
    rel = _rel(root, path)
    if rel is None:  # a host path outside the VM: its real owner
        st = os.stat(path)
        try:
            user = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            user = str(st.st_uid)
        try:
            group = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            group = str(st.st_gid)
        return user, group
    overlay = read_json(_overlay_path(root), {})
    if rel in overlay:
        user, group = overlay[rel]
        return user, group
    parts = rel.split("/")
    if len(parts) >= 2 and parts[0] == "home":
        users = vm_users(root)
        if parts[1] in users:
            return parts[1], primary_group(root, parts[1]) or parts[1]
    return "root", "root"


def set_owner(root: Path, path: str | os.PathLike, user: str | None, group: str | None) -> None:
    """chown inside the VM: record it in the overlay; also really chown when we can."""
    root = Path(root)
    rel = _rel(root, path)
    current_user, current_group = owner_of(root, path)
    new_user = user or current_user
    new_group = group or current_group
    if rel is not None:
        with file_lock(Path(root) / SANDBOX_DIR / ".ownership.lock"):
            overlay = read_json(_overlay_path(root), {})
            overlay[rel] = [new_user, new_group]
            write_json_atomic(_overlay_path(root), overlay)
    if os.geteuid() == 0:
        ids = host_ids(new_user, new_group)
        if ids is not None:
            with contextlib.suppress(OSError):
                os.chown(path, *ids, follow_symlinks=False)


def may_access(root: Path, path: str | os.PathLike, user: str, want: str) -> bool:
    """Would `user` (a VM user) get `want` ('r', 'w' or 'x') on `path`? Raises FileNotFoundError."""
    st = os.stat(path)
    perm = st.st_mode & 0o777
    if user == "root":
        if want == "x":
            return stat_mod.S_ISDIR(st.st_mode) or bool(perm & 0o111)
        return True
    owner, group = owner_of(root, path)
    if owner == user:
        bits = perm >> 6
    elif group in user_groups(root, user):
        bits = perm >> 3
    else:
        bits = perm
    return bool(bits & {"r": 4, "w": 2, "x": 1}[want])


# --------------------------------------------------------------------------- journal

def unit_name(name: str) -> str:
    return name if "." in name else f"{name}.service"


def journal_path(root: Path, unit: str) -> Path:
    return Path(root) / JOURNAL_DIR / f"{unit_name(unit)}.jsonl"


def journal_append(root: Path, unit: str, ident: str, pid: int, message: str, ts: float | None = None) -> None:
    path = journal_path(root, unit)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"ts": time.time() if ts is None else ts, "ident": ident, "pid": pid,
             "unit": unit_name(unit), "msg": message}
    data = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def systemd_log(root: Path, unit: str, message: str) -> None:
    journal_append(root, unit, "systemd", 1, message)


def journal_entries(root: Path, units: list[str] | None = None) -> list[dict]:
    directory = Path(root) / JOURNAL_DIR
    if units:
        paths = [journal_path(root, u) for u in units]
    else:
        paths = sorted(directory.glob("*.jsonl")) if directory.is_dir() else []
    entries: list[dict] = []
    for path in paths:
        try:
            raw = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue
        for line in raw.splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    entries.sort(key=lambda e: e.get("ts", 0))
    return entries


def format_entry(entry: dict, host: str, output: str = "short") -> str:
    if output == "cat":
        return entry["msg"]
    ts = entry["ts"]
    if output == "short-iso":
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(ts))
    elif output == "short-precise":
        stamp = time.strftime("%b %d %H:%M:%S", time.localtime(ts)) + f".{int((ts % 1) * 1e6):06d}"
    else:
        stamp = time.strftime("%b %d %H:%M:%S", time.localtime(ts))
    return f"{stamp} {host} {entry['ident']}[{entry['pid']}]: {entry['msg']}"


# --------------------------------------------------------------------------- units

def unit_file(root: Path, unit: str) -> Path:
    return Path(root) / UNIT_DIR / unit_name(unit)


def _state_dir(root: Path) -> Path:
    return Path(root) / STATE_DIR


def loaded_path(root: Path, unit: str) -> Path:
    return _state_dir(root) / f"{unit_name(unit)}.loaded"


def state_path(root: Path, unit: str) -> Path:
    return _state_dir(root) / f"{unit_name(unit)}.state.json"


def unit_lock(root: Path, unit: str):
    return file_lock(_state_dir(root) / f"{unit_name(unit)}.lock")


def daemon_reload(root: Path) -> None:
    """What `systemctl daemon-reload` does: load the unit files as they are on disk now."""
    directory = Path(root) / UNIT_DIR
    state_dir = _state_dir(root)
    state_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(directory.glob("*.service")) if directory.is_dir() else []:
        loaded_path(root, path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    for stale in state_dir.glob("*.loaded"):
        if not (directory / stale.name[: -len(".loaded")]).exists():
            stale.unlink()


def loaded_text(root: Path, unit: str) -> str | None:
    """The unit as systemd has it loaded (first use loads it from disk, like boot does)."""
    loaded = loaded_path(root, unit)
    if loaded.exists():
        return loaded.read_text(encoding="utf-8")
    path = unit_file(root, unit)
    if not path.exists():
        return None
    text = path.read_text(encoding="utf-8")
    loaded.parent.mkdir(parents=True, exist_ok=True)
    loaded.write_text(text, encoding="utf-8")
    return text


def needs_daemon_reload(root: Path, unit: str) -> bool:
    path = unit_file(root, unit)
    loaded = loaded_path(root, unit)
    if not loaded.exists():
        return False
    if not path.exists():
        return True
    return path.read_text(encoding="utf-8") != loaded.read_text(encoding="utf-8")


def parse_unit(text: str) -> dict:
    """The keys of a unit file this sandbox uses (section-aware, last assignment wins)."""
    cfg: dict = {"Description": "", "ExecStart": "", "User": "", "Group": "", "WorkingDirectory": "",
                 "Environment": {}, "Type": "simple"}
    section = ""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():  # join backslash continuations
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        lines.append(pending + raw)
        pending = ""
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if section == "Unit" and key == "Description":
            cfg["Description"] = value
        elif section == "Service":
            if key == "Environment":
                for item in shlex.split(value):
                    if "=" in item:
                        k, v = item.split("=", 1)
                        cfg["Environment"][k] = v
            elif key in ("ExecStart", "User", "Group", "WorkingDirectory", "Type"):
                cfg[key] = value
    return cfg


def exec_argv(exec_start: str) -> list[str]:
    value = exec_start.strip()
    while value[:1] in ("-", "@", "+", "!", ":"):
        value = value[1:]
    return shlex.split(value)


def read_state(root: Path, unit: str) -> dict:
    return read_json(state_path(root, unit), {"state": "inactive"})


def write_state(root: Path, unit: str, state: dict) -> None:
    write_json_atomic(state_path(root, unit), state)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by whoever adopted it) is not alive
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return fields[0] != "Z"
    except (OSError, IndexError):
        return True


def active_state(root: Path, unit: str) -> str:
    """active | activating | inactive | failed (a vanished supervisor counts as failed)."""
    state = read_state(root, unit)
    value = state.get("state", "inactive")
    if value in ("active", "activating", "deactivating") and not pid_alive(state.get("supervisor_pid")):
        return "failed"
    return value


def unit_exists(root: Path, unit: str) -> bool:
    return unit_file(root, unit).exists() or loaded_path(root, unit).exists()


def unit_start(root: Path, unit: str, wait_s: float = 5.0) -> str | None:
    """Start the unit from its loaded definition; returns an error message or None."""
    root = Path(root)
    unit = unit_name(unit)
    with unit_lock(root, unit):
        if active_state(root, unit) in ("active", "activating"):
            return None
        text = loaded_text(root, unit)
        if text is None:
            return f"Unit {unit} not found."
        cfg = parse_unit(text)
        if not cfg["ExecStart"]:
            return f"Unit {unit} has a bad unit file setting."
        previous = read_state(root, unit)
        spec = {
            "root": str(root), "unit": unit, "description": cfg["Description"] or unit,
            "exec_start": cfg["ExecStart"], "user": cfg["User"] or "root", "group": cfg["Group"],
            "working_directory": cfg["WorkingDirectory"], "environment": cfg["Environment"],
            "owner_pid": int(vm_config(root).get("owner_pid") or 0),
        }
        spec_path = _state_dir(root) / f"{unit}.spec.json"
        write_json_atomic(spec_path, spec)
        log = open(_state_dir(root) / f"{unit}.supervisor.log", "ab")
        try:
            proc = subprocess.Popen(
                [sys.executable, str(HERE / "_supervisor.py"), str(spec_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/",
                start_new_session=True, close_fds=True,
            )
        finally:
            log.close()
        write_state(root, unit, {
            "state": "activating", "supervisor_pid": proc.pid, "pgid": proc.pid, "since": time.time(),
            "exec_start": cfg["ExecStart"], "n_restarts": previous.get("n_restarts", 0),
        })
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if read_state(root, unit).get("state") != "activating" or not pid_alive(proc.pid):
            break
        time.sleep(0.01)
    return None


def unit_stop(root: Path, unit: str, timeout_s: float = 5.0, *, quiet: bool = False) -> None:
    root = Path(root)
    unit = unit_name(unit)
    with unit_lock(root, unit):
        state = read_state(root, unit)
        current = active_state(root, unit)
        if current not in ("active", "activating"):
            if current == "failed" and state.get("state") != "failed":
                state.update(state="failed", result=state.get("result") or "exit-code")
                write_state(root, unit, state)
            return
        state["stopping"] = True
        write_state(root, unit, state)
        if not quiet:
            cfg = parse_unit(loaded_text(root, unit) or "")
            systemd_log(root, unit, f"Stopping {unit} - {cfg['Description'] or unit}...")
    main_pid = state.get("main_pid")
    supervisor = state.get("supervisor_pid")
    if main_pid and pid_alive(main_pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(main_pid, signal.SIGTERM)
    elif supervisor:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(state.get("pgid") or supervisor, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and pid_alive(supervisor):
        time.sleep(0.01)
    if pid_alive(supervisor) or pid_alive(main_pid):
        kill_group(state)
        with unit_lock(root, unit):
            systemd_log(root, unit, f"{unit}: State 'stop-sigterm' timed out. Killing.")
            state = read_state(root, unit)
            state.update(state="inactive", result="timeout", stopping=False, main_pid=0)
            write_state(root, unit, state)


def kill_group(state: dict, wait_s: float = 2.0) -> None:
    """SIGKILL a unit's supervisor process group and its main process."""
    for pid, group in ((state.get("pgid") or state.get("supervisor_pid"), True), (state.get("main_pid"), False)):
        if not pid:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and (pid_alive(state.get("supervisor_pid")) or pid_alive(state.get("main_pid"))):
        time.sleep(0.01)


def all_units(root: Path) -> list[str]:
    names = set()
    directory = Path(root) / UNIT_DIR
    if directory.is_dir():
        names.update(p.name for p in directory.glob("*.service"))
    state_dir = _state_dir(root)
    if state_dir.is_dir():
        names.update(p.name[: -len(".state.json")] for p in state_dir.glob("*.state.json"))
    return sorted(names)


def resolve_exec(root: Path, cfg: dict) -> tuple[list[str], str]:
    """ExecStart argv and working directory with production paths mapped into the VM root."""
    argv = exec_argv(cfg["ExecStart"])
    mapped = [from_vm_path(root, argv[0])] + [from_vm_path(root, a, must_exist_parent=True) for a in argv[1:]]
    workdir = cfg["WorkingDirectory"].lstrip("-") or "/"
    if workdir == "~":
        workdir = vm_users(root).get(cfg["User"] or "root", {}).get("home", "/")
    return mapped, from_vm_path(root, workdir)


def format_exec_start(exec_start: str, state: dict | None = None) -> str:
    argv = exec_argv(exec_start)
    state = state or {}
    return ("{ path=%s ; argv[]=%s ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; "
            "pid=%s ; code=%s ; status=%s }") % (
        argv[0] if argv else "", " ".join(argv), state.get("main_pid") or 0,
        state.get("code") or "(null)", state.get("status") or "0/0")
