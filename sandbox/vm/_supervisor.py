"""The process that plays systemd for one running unit of the simulated VM.

Started by ``systemctl start`` (``_vmlib.unit_start``) in its own session, with the unit's spec as
argv[1]. It starts ExecStart (paths mapped into the VM root, cwd = WorkingDirectory, as the
unit's User= when the host is root and has that user, else as the current user), writes every
output line of it to the unit's journal the way journald would (``python3[pid]: ...``, host
paths under the VM root shown as the production paths), and when the main process ends writes
the systemd lines (``Main process exited, code=exited, status=1/FAILURE`` ...) and the state.

If the process that owns the VM (``owner_pid`` in vm.json) goes away, the service is stopped:
a crashed test run leaves no service behind.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _vmlib as vm  # noqa: E402


def _fail(root: Path, unit: str, state: dict, journal: list[str], status: str) -> int:
    for line in journal:
        vm.systemd_log(root, unit, line)
    vm.systemd_log(root, unit, f"{unit}: Main process exited, code=exited, status={status}")
    vm.systemd_log(root, unit, f"{unit}: Failed with result 'exit-code'.")
    with vm.unit_lock(root, unit):
        state.update(state="failed", result="exit-code", code="exited", status=status, main_pid=0,
                     exit_status=int(status.split("/")[0]), since=time.time(), stopping=False)
        vm.write_state(root, unit, state)
    return 1


def _reachable(program: str, workdir: str, user: str, uid: int, gid: int) -> bool:
    """Can host user uid reach the program and the working directory? (A root-only temp dir
    above the VM root would make the service fail for reasons that are not the VM's.)"""
    gids = set(os.getgrouplist(user, gid))

    def allowed(st: os.stat_result, bit_user: int, bit_group: int, bit_other: int) -> bool:
        if st.st_uid == uid:
            return bool(st.st_mode & bit_user)
        if st.st_gid in gids:
            return bool(st.st_mode & bit_group)
        return bool(st.st_mode & bit_other)

    for target in (workdir, os.path.dirname(os.path.realpath(program))):
        path = os.path.realpath(target)
        while True:
            if not allowed(os.stat(path), stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
                return False
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
    return allowed(os.stat(os.path.realpath(program)), stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    root = Path(spec["root"])
    unit = spec["unit"]
    description = spec["description"]
    user = spec["user"] or "root"
    state = vm.read_state(root, unit)
    state.update(supervisor_pid=os.getpid(), pgid=os.getpgid(0), exec_start=spec["exec_start"])

    cfg = {"ExecStart": spec["exec_start"], "WorkingDirectory": spec["working_directory"], "User": user}
    argv, workdir = vm.resolve_exec(root, cfg)
    shown = vm.exec_argv(spec["exec_start"])[0]

    users = vm.vm_users(root)
    if user not in users:
        return _fail(root, unit, state, [
            f"{unit}: Failed to determine user credentials: No such process",
            f"{unit}: Failed at step USER spawning {shown}: No such process"], "217/USER")
    if not os.path.isdir(workdir):
        return _fail(root, unit, state, [
            f"{unit}: Changing to the requested working directory failed: No such file or directory",
            f"{unit}: Failed at step CHDIR spawning {shown}: No such file or directory"], "200/CHDIR")
    if not (os.path.isfile(argv[0]) and os.access(argv[0], os.X_OK)):
        return _fail(root, unit, state, [
            f"{unit}: Failed to locate executable {shown}: No such file or directory",
            f"{unit}: Failed at step EXEC spawning {shown}: No such file or directory"], "203/EXEC")

    home = users[user]["home"]
    env = {
        "PATH": vm.SYSTEMD_DEFAULT_PATH, "LANG": "C.UTF-8", "HOME": home, "USER": user, "LOGNAME": user,
        "SHELL": "/bin/bash", "INVOCATION_ID": os.urandom(16).hex(), "JOURNAL_STREAM": "8:1",
        # sandbox glue, not systemd: where the VM root is, and which VM user this process is
        "NEXY_VM_ROOT": str(root), "PYTHONIOENCODING": "utf-8",
    }
    if user != "root":
        env["NEXY_VM_AS_USER"] = user
    env.update(spec.get("environment") or {})

    preexec = None
    if os.geteuid() == 0 and user != "root":
        ids = vm.host_ids(user, spec.get("group") or None)
        if ids is not None and _reachable(argv[0], workdir, user, *ids):
            uid, gid = ids

            def preexec() -> None:  # run as the service user, as systemd would
                os.setgid(gid)
                os.initgroups(user, gid)
                os.setuid(uid)

    try:
        child = subprocess.Popen(argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=preexec)
    except OSError as exc:
        return _fail(root, unit, state, [f"{unit}: Failed at step EXEC spawning {shown}: {exc.strerror}"],
                     "203/EXEC")

    ident = os.path.basename(shown) or "unknown"
    with vm.unit_lock(root, unit):
        current = vm.read_state(root, unit)
        state.update(state="active", main_pid=child.pid, last_pid=child.pid, since=time.time(), result="success",
                     code=None, status=None, stopping=bool(current.get("stopping")))
        vm.write_state(root, unit, state)
    vm.systemd_log(root, unit, f"Started {unit} - {description}.")

    owner = int(spec.get("owner_pid") or 0)
    if owner:
        def watchdog() -> None:
            while child.poll() is None:
                if not vm.pid_alive(owner):
                    with contextlib.suppress(ProcessLookupError):
                        child.send_signal(signal.SIGTERM)
                    time.sleep(2)
                    with contextlib.suppress(ProcessLookupError):
                        child.kill()
                    return
                time.sleep(0.5)

        threading.Thread(target=watchdog, daemon=True).start()

    assert child.stdout is not None
    for raw in child.stdout:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        vm.journal_append(root, unit, ident, child.pid, vm.strip_root(root, line))
    rc = child.wait()

    with vm.unit_lock(root, unit):
        state = vm.read_state(root, unit)
        stopping = bool(state.get("stopping"))
        if stopping or rc == 0 or (rc == -signal.SIGTERM and stopping):
            vm.systemd_log(root, unit, f"{unit}: Deactivated successfully.")
            if stopping:
                vm.systemd_log(root, unit, f"Stopped {unit} - {description}.")
            state.update(state="inactive", result="success", code="exited", status=f"{max(rc, 0)}/SUCCESS",
                         main_pid=0, exit_status=rc, since=time.time(), stopping=False)
        else:
            if rc < 0:
                signame = signal.Signals(-rc).name[3:]
                code, status, result = "killed", f"{-rc}/{signame}", "signal"
            else:
                code, status, result = "exited", f"{rc}/FAILURE", "exit-code"
            vm.systemd_log(root, unit, f"{unit}: Main process exited, code={code}, status={status}")
            vm.systemd_log(root, unit, f"{unit}: Failed with result '{result}'.")
            state.update(state="failed", result=result, code=code, status=status, main_pid=0,
                         exit_status=rc, since=time.time(), stopping=False)
        vm.write_state(root, unit, state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
