"""The worker processes of `nexy worker` and `nexy run`: exactly one for each VM of the inventory
(run-commands never overlap on a VM; VMs run in parallel; it takes the VM's plans and applies before
its checks), NEXY_IO_WORKERS for io, one for decisions (approvals, rejections, expiries: never behind
a probe), and the watch when NEXY_WATCH_CHANNEL is set, each its own process; started together,
awaited until RQ has registered the workers, and stopped as one stage in which a running run-command
is finished first.
"""

from __future__ import annotations

import json
import time

from redis import Redis
from redis.exceptions import RedisError
from rq import Worker

from bot.contract import DECISIONS_QUEUE, IO_QUEUE, vm_job_timeout, vm_running_key
from bot.settings import Settings
from nexy.processes import Children, Stage

READY_TIMEOUT_S = 30.0
"""How long the workers may take to register with RQ."""

VM_WORKER = "vm-worker"
DECISIONS_WORKER = "decisions-worker"


def start(children: Children, settings: Settings, env: dict[str, str] | None = None) -> list[str]:
    """Start a worker per VM, the io workers and the watch as children (`--child`: the parent checked
    Redis); `settings` are the children's (their inventory). Returns the workers' names."""
    names = []
    for vm in settings.vm_names:
        names.append(f"{VM_WORKER}-{vm}")
        children.nexy(names[-1], "worker", "--vm", vm, "--child", env=env)
    for n in range(settings.nexy_io_workers):
        names.append(f"io-worker-{n}")
        children.nexy(names[-1], "worker", "--queue", IO_QUEUE, "--child", env=env)
    names.append(DECISIONS_WORKER)
    children.nexy(DECISIONS_WORKER, "worker", "--queue", DECISIONS_QUEUE, "--child", env=env)
    if settings.nexy_watch_channel:
        children.nexy("watch", "watch", env=env)
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
    """The VMs a process works for, and how scripts reach them, for its ready line."""
    how = "Azure Run Command" if settings.nexy_executor == "azure" else "local bash"
    vms = ", ".join(f"{s.azure_resource_group}/{s.azure_vm_name}" for s in map(settings.for_vm, settings.vm_names))
    return f"VM{'s' if len(settings.vm_names) > 1 else ''} {vms} ({how})"


def ready_line(settings: Settings, redis_label: str) -> str:
    queues = ", ".join(settings.for_vm(vm).vm_queue for vm in settings.vm_names)
    watch = f"; the watch posts in {settings.nexy_watch_channel}" if settings.nexy_watch_channel else ""
    return (
        f"ready: 1 worker on {'each of ' if len(settings.vm_names) > 1 else ''}{queues} (fixes first), "
        f"{settings.nexy_io_workers} on {IO_QUEUE}, 1 on {DECISIONS_QUEUE}; Redis: {redis_label}; "
        f"{where(settings)}{watch}"
    )


def stage(settings: Settings, names: list[str]) -> Stage:
    """The workers' stop: RQ's warm shutdown lets a running run-command finish (killing the worker
    would abandon a command that goes on running on the VM), so they get as long as a VM job may run.
    The watch stops with them."""
    grace_s = vm_job_timeout(settings.nexy_conflict_max_wait_s)
    watch = ["watch"] if settings.nexy_watch_channel else []
    return Stage([*names, *watch], "workers stopped", grace_s=grace_s, runs_commands=True)


def running_command(redis: Redis, settings: Settings) -> str | None:
    """What runs on the VMs now, as `status` (INC-1, for 12 s), or None."""
    running = []
    for vm in map(settings.for_vm, settings.vm_names):
        try:
            raw = redis.get(vm_running_key(vm.azure_resource_group, vm.azure_vm_name))
            held = json.loads(raw) if raw else None
        except (RedisError, ValueError):
            continue
        if isinstance(held, dict):
            since = f", for {int(time.time() - float(held['since']))} s" if held.get("since") else ""
            running.append(f"`{held.get('words', '?')}` ({held.get('incident', '?')}{since})")
    return "; ".join(running) or None
