"""The stand-in commands of the simulated VM: systemctl, journalctl, chown, chgrp, stat, test.

Run as ``python3 _tools.py NAME ARGS...`` by the POSIX-shell wrappers in ``sandbox/vm/bin``.
Each works on the VM rooted at ``$NEXY_VM_ROOT`` and answers (output, exit code, error texts)
like the real tool for the usages the runbook and the bot need; see ``sandbox/vm/__init__.py``.
"""
from __future__ import annotations

import os
import re
import stat as stat_mod
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _vmlib as vm  # noqa: E402

MUTATING = {"start", "stop", "restart", "try-restart", "reload-or-restart", "daemon-reload", "enable",
            "disable", "reset-failed", "kill"}


def err(text: str) -> None:
    sys.stderr.write(text + "\n")


def real_tool(name: str) -> str | None:
    """The host's own `name`, skipping this sandbox's bin directory."""
    ours = str(vm.BIN_DIR)
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if not entry or os.path.abspath(entry) == ours:
            continue
        candidate = os.path.join(entry, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    for entry in ("/usr/bin", "/bin"):
        candidate = os.path.join(entry, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def exec_real(name: str, args: list[str]) -> int:
    path = real_tool(name)
    if path is None:
        err(f"{name}: command not found")
        return 127
    os.execv(path, [name, *args])
    return 127  # not reached


# --------------------------------------------------------------------------- systemctl

def _since(ts: float | None) -> str:
    if not ts:
        return ""
    stamp = time.strftime("%a %Y-%m-%d %H:%M:%S %Z", time.localtime(ts))
    ago = max(0, int(time.time() - ts))
    if ago < 60:
        rel = f"{ago}s ago"
    elif ago < 3600:
        rel = f"{ago // 60}min {ago % 60}s ago"
    else:
        rel = f"{ago // 3600}h {ago % 3600 // 60}min ago"
    return f"since {stamp}; {rel}"


def _reload_warning(unit: str) -> str:
    return (f"Warning: The unit file, source configuration file or drop-ins of {unit} changed on disk. "
            "Run 'systemctl daemon-reload' to reload units.")


def _fragment(root: Path, unit: str) -> str:
    """The unit file's path: as the VM sees it when scripts run with the production paths mounted
    (NEXY_VM_PRODUCTION_PATHS), else the host path under the root."""
    path = vm.unit_file(root, unit)
    if not path.exists():
        return ""
    return vm.to_vm_path(root, path) if os.environ.get("NEXY_VM_PRODUCTION_PATHS") == "1" else str(path)


def _status(root: Path, unit: str, lines: int) -> int:
    if not vm.unit_exists(root, unit):
        err(f"Unit {unit} could not be found.")
        return 4
    text = vm.loaded_text(root, unit) or ""
    cfg = vm.parse_unit(text)
    state = vm.read_state(root, unit)
    active = vm.active_state(root, unit)
    fragment = vm.unit_file(root, unit)
    bullet = {"active": "●", "activating": "●", "failed": "×"}.get(active, "○")
    out = [f"{bullet} {unit} - {cfg['Description'] or unit}",
           f"     Loaded: loaded ({vm.to_vm_path(root, fragment)}; enabled; preset: enabled)"]
    since = _since(state.get("since"))
    if active == "active":
        out.append(f"     Active: active (running) {since}")
        out.append(f"   Main PID: {state.get('main_pid')} ({os.path.basename(vm.exec_argv(cfg['ExecStart'])[0])})")
        out.append("      Tasks: 3 (limit: 4915)")
        out.append(f"     CGroup: /system.slice/{unit}")
        out.append(f"             └─{state.get('main_pid')} {state.get('exec_start') or cfg['ExecStart']}")
    elif active == "activating":
        out.append(f"     Active: activating (start) {since}")
    elif active == "failed":
        out.append(f"     Active: failed (Result: {state.get('result') or 'exit-code'}) {since}")
        pid = state.get("last_pid")
        detail = f"(code={state.get('code') or 'exited'}, status={state.get('status') or '1/FAILURE'})"
        if pid:
            out.append(f"    Process: {pid} ExecStart={state.get('exec_start') or cfg['ExecStart']} {detail}")
            out.append(f"   Main PID: {pid} {detail}")
    else:
        out.append(f"     Active: inactive (dead) {since}".rstrip())
    if vm.needs_daemon_reload(root, unit):
        out.append("")
        out.append(_reload_warning(unit))
    entries = vm.journal_entries(root, [unit])[-lines:] if lines > 0 else []
    if entries:
        out.append("")
        host = vm.hostname(root)
        out.extend(vm.format_entry(e, host) for e in entries)
    print("\n".join(out))
    return 0 if active == "active" else 3


def _show(root: Path, unit: str, props: list[str], value_only: bool) -> None:
    loaded = vm.loaded_text(root, unit)
    cfg = vm.parse_unit(loaded or "")
    state = vm.read_state(root, unit)
    active = vm.active_state(root, unit) if loaded is not None else "inactive"
    sub = {"active": "running", "activating": "start", "failed": "failed"}.get(active, "dead")
    since = state.get("since")
    stamp = time.strftime("%a %Y-%m-%d %H:%M:%S %Z", time.localtime(since)) if since else ""
    values = {
        "Id": unit,
        "Names": unit,
        "Description": cfg["Description"] or unit,
        "LoadState": "loaded" if loaded is not None else "not-found",
        "ActiveState": active,
        "SubState": sub,
        "Result": state.get("result") or "success",
        "MainPID": str(state.get("main_pid") or 0) if active == "active" else "0",
        "ExecMainPID": str(state.get("last_pid") or 0),
        "ExecMainStatus": str(max(int(state.get("exit_status") or 0), 0)),
        "ExecStart": vm.format_exec_start(cfg["ExecStart"], state) if cfg["ExecStart"] else "",
        "FragmentPath": _fragment(root, unit),
        "UnitFileState": "enabled" if loaded is not None else "",
        "User": cfg["User"],
        "Group": cfg["Group"],
        "WorkingDirectory": cfg["WorkingDirectory"],
        "Type": cfg["Type"],
        "NRestarts": str(state.get("n_restarts") or 0),
        "NeedDaemonReload": "yes" if vm.needs_daemon_reload(root, unit) else "no",
        "ActiveEnterTimestamp": stamp if active == "active" else "",
        "StateChangeTimestamp": stamp,
    }
    for name in props or list(values):
        value = values.get(name, "")
        print(value if value_only else f"{name}={value}")


def systemctl(args: list[str]) -> int:
    root = vm.vm_root_from_env()
    quiet = value_only = False
    props: list[str] = []
    lines = 10
    words: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-p", "--property"):
            props.extend(p for p in args[i + 1].split(",") if p)
            i += 2
            continue
        if a.startswith("--property="):
            props.extend(p for p in a.split("=", 1)[1].split(",") if p)
        elif a.startswith("-p") and len(a) > 2:
            props.extend(p for p in a[2:].split(",") if p)
        elif a in ("-n", "--lines"):
            lines = int(args[i + 1])
            i += 2
            continue
        elif a.startswith("--lines="):
            lines = int(a.split("=", 1)[1])
        elif a.startswith("-n") and len(a) > 2 and a[2:].isdigit():
            lines = int(a[2:])
        elif a in ("-q", "--quiet"):
            quiet = True
        elif a == "--value":
            value_only = True
        elif a.startswith("-"):
            pass  # --no-pager, -l, --full, --no-legend, --plain, --system, --no-block, --now, -a ...
        else:
            words.append(a)
        i += 1
    if not words:
        err("sandbox systemctl: a verb is required")
        return 1
    verb, units = words[0], [vm.unit_name(u) for u in words[1:]]

    if verb in MUTATING and vm.effective_user() != "root":
        target = units[0] if units else ""
        err(f"Failed to {verb} {target}: Interactive authentication required.")
        return 1

    if verb == "daemon-reload":
        vm.daemon_reload(root)
        return 0
    if not units and verb not in ("list-units",):
        err("Too few arguments.")
        return 1

    if verb in ("start", "stop", "restart", "try-restart", "reload-or-restart"):
        rc = 0
        for unit in units:
            if not vm.unit_exists(root, unit):
                err(f"Failed to {verb} {unit}: Unit {unit} not found.")
                rc = 5
                continue
            if verb != "stop" and vm.needs_daemon_reload(root, unit):
                err(_reload_warning(unit))
            if verb == "try-restart" and vm.active_state(root, unit) != "active":
                continue
            if verb in ("stop", "restart", "try-restart", "reload-or-restart"):
                vm.unit_stop(root, unit)
            if verb != "stop":
                problem = vm.unit_start(root, unit)
                if problem:
                    err(f"Failed to {verb} {unit}: {problem}")
                    rc = 1
        return rc
    if verb == "is-active":
        states = [vm.active_state(root, u) if vm.unit_exists(root, u) else "inactive" for u in units]
        if not quiet:
            print("\n".join(states))
        return 0 if all(s == "active" for s in states) else 3
    if verb == "is-failed":
        states = [vm.active_state(root, u) if vm.unit_exists(root, u) else "inactive" for u in units]
        if not quiet:
            print("\n".join(states))
        return 0 if any(s == "failed" for s in states) else 1
    if verb == "is-enabled":
        found = [vm.unit_exists(root, u) for u in units]
        if not quiet:
            for ok, unit in zip(found, units):
                if ok:
                    print("enabled")
                else:
                    err(f"Failed to get unit file state for {unit}: No such file or directory")
        return 0 if all(found) else 1
    if verb in ("enable", "disable"):
        return 0 if all(vm.unit_exists(root, u) for u in units) else 1
    if verb == "reset-failed":
        for unit in units:
            state = vm.read_state(root, unit)
            if vm.active_state(root, unit) == "failed":
                state.update(state="inactive")
                vm.write_state(root, unit, state)
        return 0
    if verb == "status":
        rc = 0
        for n, unit in enumerate(units):
            if n:
                print()
            rc = max(rc, _status(root, unit, lines))
        return rc
    if verb == "cat":
        rc = 0
        for unit in units:
            path = vm.unit_file(root, unit)
            if not path.exists():
                err(f"No files found for {unit}.")
                rc = 1
                continue
            if vm.needs_daemon_reload(root, unit):
                print(f"# Warning: {unit} changed on disk, the version systemd has loaded is outdated.\n"
                      "# This output shows the current version of the unit's original fragment and drop-in files.\n"
                      "# If fragments or drop-ins were added or removed, they are not properly reflected in this output.\n"
                      "# Run 'systemctl daemon-reload' to reload units.")
            print(f"# {path}")
            sys.stdout.write(path.read_text(encoding="utf-8"))
        return rc
    if verb == "show":
        for n, unit in enumerate(units):
            if n and not props:
                print()
            _show(root, unit, props, value_only)
        return 0
    err(f"Unknown command verb {verb}.")
    return 1


# --------------------------------------------------------------------------- journalctl

_UNITS = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60, "minutes": 60,
          "h": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400}


def parse_time(text: str) -> float:
    text = text.strip()
    now = time.time()
    today = time.mktime(time.localtime(now)[:3] + (0, 0, 0, 0, 0, -1))
    if text == "now":
        return now
    if text == "today":
        return today
    if text == "yesterday":
        return today - 86400
    if text == "tomorrow":
        return today + 86400
    if text.startswith("@"):
        return float(text[1:])
    match = re.fullmatch(r"([+-])?\s*(\d+)\s*([a-z]+)(?:\s+ago)?", text)
    if match:
        sign, amount, unit = match.groups()
        if unit in _UNITS:
            delta = int(amount) * _UNITS[unit]
            return now + delta if sign == "+" else now - delta
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"):
        try:
            return time.mktime(time.strptime(text, fmt))
        except ValueError:
            pass
    for fmt in ("%H:%M:%S", "%H:%M"):
        try:
            parsed = time.strptime(text, fmt)
            return today + parsed.tm_hour * 3600 + parsed.tm_min * 60 + parsed.tm_sec
        except ValueError:
            pass
    raise ValueError(text)


def journalctl(args: list[str]) -> int:
    root = vm.vm_root_from_env()
    units: list[str] = []
    lines: int | None = None
    output = "short"
    since = until = None
    pattern = None
    reverse = quiet = False
    i = 0

    def take() -> str:
        nonlocal i
        i += 1
        if i >= len(args):
            raise SystemExit(err(f"journalctl: option '{args[i - 1]}' requires an argument") or 1)
        return args[i]

    try:
        while i < len(args):
            a = args[i]
            if a in ("-u", "--unit"):
                units.append(take())
            elif a.startswith("--unit="):
                units.append(a.split("=", 1)[1])
            elif a.startswith("-u") and len(a) > 2:
                units.append(a[2:])
            elif a in ("-n", "--lines"):
                value = take()
                lines = None if value == "all" else int(value.lstrip("+"))
            elif a.startswith("--lines="):
                value = a.split("=", 1)[1]
                lines = None if value == "all" else int(value.lstrip("+"))
            elif a.startswith("-n") and len(a) > 2:
                lines = int(a[2:])
            elif a == "-e" or a == "--pager-end":
                lines = 1000 if lines is None else lines
            elif a in ("-o", "--output"):
                output = take()
            elif a.startswith("--output="):
                output = a.split("=", 1)[1]
            elif a in ("-S", "--since"):
                since = parse_time(take())
            elif a.startswith("--since="):
                since = parse_time(a.split("=", 1)[1])
            elif a in ("-U", "--until"):
                until = parse_time(take())
            elif a.startswith("--until="):
                until = parse_time(a.split("=", 1)[1])
            elif a in ("-g", "--grep"):
                pattern = re.compile(take())
            elif a.startswith("--grep="):
                pattern = re.compile(a.split("=", 1)[1])
            elif a in ("-r", "--reverse"):
                reverse = True
            elif a in ("-q", "--quiet"):
                quiet = True
            elif a in ("-f", "--follow"):
                err("journalctl: --follow is not supported in the sandbox")
                return 1
            elif a.startswith("-") and a not in ("--no-pager", "-b", "--boot", "--no-hostname", "-a", "--all",
                                                   "-l", "--full", "-x", "--catalog", "--system", "--utc"):
                if a in ("-p", "--priority", "-t", "--identifier", "-D", "--directory"):
                    take()
            i += 1
    except ValueError as exc:
        err(f"Failed to parse timestamp: {exc}")
        return 1
    entries = vm.journal_entries(root, [vm.unit_name(u) for u in units] if units else None)
    if since is not None:
        entries = [e for e in entries if e["ts"] >= since]
    if until is not None:
        entries = [e for e in entries if e["ts"] <= until]
    if pattern is not None:
        entries = [e for e in entries if pattern.search(e["msg"])]
    if lines is not None:
        entries = entries[-lines:] if lines > 0 else []
    if reverse:
        entries.reverse()
    if not entries:
        if not quiet:
            print("-- No entries --")
        return 0
    host = vm.hostname(root)
    sys.stdout.write("".join(vm.format_entry(e, host, output) + "\n" for e in entries))
    return 0


# --------------------------------------------------------------------------- chown / chgrp

def _chown_common(tool: str, args: list[str]) -> int:
    root = vm.vm_root_from_env()
    recursive = verbose = silent = False
    rest: list[str] = []
    for a in args:
        if a in ("-R", "--recursive"):
            recursive = True
        elif a in ("-v", "--verbose", "-c", "--changes"):
            verbose = True
        elif a in ("-f", "--silent", "--quiet"):
            silent = True
        elif a in ("-h", "--no-dereference", "-H", "-L", "-P", "--dereference"):
            pass
        elif a.startswith("-") and a != "-" and not rest:
            err(f"{tool}: invalid option -- '{a.lstrip('-')}'")
            return 1
        else:
            rest.append(a)
    if len(rest) < 2:
        err(f"{tool}: missing operand")
        return 1
    spec, files = rest[0], rest[1:]
    users, groups = vm.vm_users(root), vm.vm_groups(root)
    if tool == "chgrp":
        user, group = None, spec
    elif ":" in spec or "." in spec and spec.split(".", 1)[0] in users:
        user, group = re.split(r"[:.]", spec, maxsplit=1)
        user = user or None
        if group == "" and user:
            group = vm.primary_group(root, user)
        group = group or None
    else:
        user, group = spec, None
    if user is not None and user not in users:
        err(f"{tool}: invalid user: '{spec}'")
        return 1
    if group is not None and group not in groups:
        err(f"chgrp: invalid group: '{group}'" if tool == "chgrp" else f"{tool}: invalid group: '{spec}'")
        return 1
    me = vm.effective_user()
    rc = 0
    for name in files:
        path = Path(name)
        if not os.path.lexists(path):
            if not silent:
                err(f"{tool}: cannot access '{name}': No such file or directory")
            rc = 1
            continue
        targets = [path]
        if recursive and path.is_dir() and not path.is_symlink():
            for dirpath, dirnames, filenames in os.walk(path):
                targets.extend(Path(dirpath) / n for n in dirnames + filenames)
        for target in targets:
            if me != "root":
                if not silent:
                    err(f"{tool}: changing ownership of '{target}': Operation not permitted")
                rc = 1
                continue
            before = vm.owner_of(root, target)
            vm.set_owner(root, target, user, group)
            if verbose:
                after = vm.owner_of(root, target)
                if after != before:
                    print(f"changed ownership of '{target}' from {before[0]}:{before[1]} to {after[0]}:{after[1]}")
    return rc


# --------------------------------------------------------------------------- stat

def _file_type(st: os.stat_result) -> str:
    mode = st.st_mode
    if stat_mod.S_ISREG(mode):
        return "regular empty file" if st.st_size == 0 else "regular file"
    if stat_mod.S_ISDIR(mode):
        return "directory"
    if stat_mod.S_ISLNK(mode):
        return "symbolic link"
    if stat_mod.S_ISFIFO(mode):
        return "fifo"
    if stat_mod.S_ISSOCK(mode):
        return "socket"
    return "weird file"


def _stamp(ts: float) -> str:
    ns = int(round((ts % 1) * 1e9))
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) + f".{ns:09d} " + time.strftime("%z", time.localtime(ts))


def _unescape(text: str) -> str:
    return text.encode("utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")


def _render(root: Path, fmt: str, name: str, st: os.stat_result, deref: bool) -> str:
    owner, group = vm.owner_of(root, os.path.realpath(name) if deref else name)
    users, groups = vm.vm_users(root), vm.vm_groups(root)

    def field(c: str) -> str:
        if c == "a":
            return f"{stat_mod.S_IMODE(st.st_mode):o}"
        if c == "A":
            return stat_mod.filemode(st.st_mode)
        if c == "U":
            return owner
        if c == "G":
            return group
        if c == "u":
            return str(users.get(owner, {}).get("uid", st.st_uid))
        if c == "g":
            return str(groups.get(group, {}).get("gid", st.st_gid))
        if c == "n":
            return name
        if c == "N":
            if stat_mod.S_ISLNK(st.st_mode):
                return f"'{name}' -> '{os.readlink(name)}'"
            return f"'{name}'"
        if c == "s":
            return str(st.st_size)
        if c == "F":
            return _file_type(st)
        if c == "i":
            return str(st.st_ino)
        if c == "h":
            return str(st.st_nlink)
        if c == "y":
            return _stamp(st.st_mtime)
        if c == "Y":
            return str(int(st.st_mtime))
        if c == "x":
            return _stamp(st.st_atime)
        if c == "X":
            return str(int(st.st_atime))
        if c == "z":
            return _stamp(st.st_ctime)
        if c == "Z":
            return str(int(st.st_ctime))
        if c == "b":
            return str(getattr(st, "st_blocks", 0))
        if c == "%":
            return "%"
        return "?"

    return re.sub(r"%(.)", lambda m: field(m.group(1)), fmt)


def stat_cmd(args: list[str]) -> int:
    root = vm.vm_root_from_env()
    fmt: str | None = None
    printf = False
    deref = False
    files: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-c", "--format"):
            fmt = args[i + 1]
            i += 2
            continue
        if a.startswith("--format="):
            fmt = a.split("=", 1)[1]
        elif a.startswith("--printf="):
            fmt, printf = a.split("=", 1)[1], True
        elif a == "--printf":
            fmt, printf = args[i + 1], True
            i += 2
            continue
        elif a in ("-L", "--dereference"):
            deref = True
        elif a in ("-f", "--file-system") or a.startswith("-t") or a == "--terse":
            return exec_real("stat", args)
        elif a.startswith("-c") and len(a) > 2:
            fmt = a[2:]
        elif a == "--":
            files.extend(args[i + 1:])
            break
        else:
            files.append(a)
        i += 1
    if not files:
        err("stat: missing operand")
        return 1
    rc = 0
    for name in files:
        try:
            st = os.stat(name) if deref else os.lstat(name)
        except FileNotFoundError:
            err(f"stat: cannot statx '{name}': No such file or directory")
            rc = 1
            continue
        if fmt is not None:
            text = _render(root, _unescape(fmt) if printf else fmt, name, st, deref)
            sys.stdout.write(text if printf else text + "\n")
            continue
        mode = stat_mod.S_IMODE(st.st_mode)
        owner, group = vm.owner_of(root, name)
        uid = vm.vm_users(root).get(owner, {}).get("uid", st.st_uid)
        gid = vm.vm_groups(root).get(group, {}).get("gid", st.st_gid)
        print(f"  File: {name}")
        print(f"  Size: {st.st_size:<10}\tBlocks: {getattr(st, 'st_blocks', 0):<10} IO Block: 4096   {_file_type(st)}")
        print(f"Device: {os.major(st.st_dev)},{os.minor(st.st_dev)}\tInode: {st.st_ino:<11} Links: {st.st_nlink}")
        print(f"Access: ({mode:04o}/{stat_mod.filemode(st.st_mode)})  Uid: ({uid:>5}/{owner:>8})   Gid: ({gid:>5}/{group:>8})")
        print(f"Access: {_stamp(st.st_atime)}")
        print(f"Modify: {_stamp(st.st_mtime)}")
        print(f"Change: {_stamp(st.st_ctime)}")
        print(" Birth: -")
    return rc


# --------------------------------------------------------------------------- test

def test_cmd(args: list[str]) -> int:
    """`test -r/-w/-x FILE` judged as the VM user (`sudo -u azureuser test -r f`); else the real test."""
    root = vm.vm_root_from_env()
    user = vm.effective_user()
    negate = False
    rest = list(args)
    if rest[:1] == ["!"]:
        negate, rest = True, rest[1:]
    if user == "root" or len(rest) != 2 or rest[0] not in ("-r", "-w", "-x"):
        return exec_real("test", args)
    try:
        ok = vm.may_access(root, rest[1], user, rest[0][1])
    except (FileNotFoundError, NotADirectoryError):
        ok = False
    return 0 if ok != negate else 1


TOOLS = {"systemctl": systemctl, "journalctl": journalctl, "stat": stat_cmd, "test": test_cmd,
         "chown": lambda a: _chown_common("chown", a), "chgrp": lambda a: _chown_common("chgrp", a)}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in TOOLS:
        err(f"usage: _tools.py {{{','.join(TOOLS)}}} ARGS...")
        return 2
    try:
        return TOOLS[sys.argv[1]](sys.argv[2:])
    except BrokenPipeError:
        return 141


if __name__ == "__main__":
    sys.exit(main())
