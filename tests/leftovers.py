"""Which processes of ours are still running: the brief's `ps | grep -E 'redis-server|nexy'`, made
exact. redis-server rewrites its command line to `redis-server 127.0.0.1:<port>`, so it is found by
its working directory (it runs in its --dir)."""
from __future__ import annotations

import os
from pathlib import Path


def alive_under(root: str | Path) -> list[str]:
    """Every process whose command line names root, or whose working directory is under it."""
    root = str(Path(root).resolve())
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if int(pid) != os.getpid() and (root in args or cwd == root or cwd.startswith(root + "/")):
            found.append(f"{pid} {args} (in {cwd})")
    return found
