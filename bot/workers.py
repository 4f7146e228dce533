"""The worker processes of `nexy worker` and `nexy run`: exactly one for the VM queue (run-commands
never overlap) and NEXY_IO_WORKERS for io, each its own process; started together, awaited until
RQ has registered them, and stopped as one stage in which a running run-command is finished first.
"""

from __future__ import annotations

import json
import time

from redis import Redis
from redis.exceptions import RedisError
from rq import Worker

from bot.contract import IO_QUEUE, vm_job_timeout, vm_running_key
from bot.processes import Children, Stage
from bot.settings import Settings

READY_TIMEOUT_S = 30.0
"""How long the workers may take to register with RQ."""

VM_WORKER = "vm-worker"


def start(children: Children, settings: Settings, env: dict[str, str] | None = None) -> list[str]:
    """Start the VM worker and the io workers as children (`--child`: the parent checked Redis)."""
    children.nexy(VM_WORKER, "worker", "--queue", settings.vm_queue, "--child", env=env)
    names = [VM_WORKER]
    for n in range(settings.nexy_io_workers):
        names.append(f"io-worker-{n}")
        children.nexy(names[-1], "worker", "--queue", IO_QUEUE, "--child", env=env)
    return names


def registered(redis: Redis, children: Children, names: list[str], timeout: float = READY_TIMEOUT_S) -> bool:
    """Wait until every worker of names has registered with RQ (False if one exited or time ran out)."""
    pids = {children.processes[name].pid for name in names}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not set(children.exited()) & set(names):
        try:
            if pids <= {worker.pid for worker in Worker.all(connection=redis)}:
                return True
        except RedisError:
            pass
        time.sleep(0.05)
    return False


def where(settings: Settings) -> str:
    """The VM a process works for, and how scripts reach it, for its ready line."""
    how = "Azure Run Command" if settings.nexy_executor == "azure" else "local bash"
    return f"VM {settings.azure_resource_group}/{settings.azure_vm_name} ({how})"


def ready_line(settings: Settings, redis_label: str) -> str:
    return (
        f"ready: 1 worker on {settings.vm_queue}, {settings.nexy_io_workers} on {IO_QUEUE}; Redis: {redis_label}; "
        f"{where(settings)}"
    )


def stage(settings: Settings, names: list[str]) -> Stage:
    """The workers' stop: RQ's warm shutdown lets a running run-command finish (killing the worker
    would abandon a command that goes on running on the VM), so they get as long as a VM job may run."""
    grace_s = vm_job_timeout(settings.nexy_conflict_max_wait_s)
    return Stage(names, "workers stopped", grace_s=grace_s, runs_commands=True)


def running_command(redis: Redis, settings: Settings) -> str | None:
    """What runs on the VM now, as `status` (INC-1, for 12 s), or None."""
    try:
        raw = redis.get(vm_running_key(settings.azure_resource_group, settings.azure_vm_name))
        held = json.loads(raw) if raw else None
    except (RedisError, ValueError):
        return None
    if not isinstance(held, dict):
        return None
    since = f", for {int(time.time() - float(held['since']))} s" if held.get("since") else ""
    return f"`{held.get('words', '?')}` ({held.get('incident', '?')}{since})"
