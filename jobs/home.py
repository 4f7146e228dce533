"""The App Home tab: gathered from Redis and the VM's queue, published for one user."""

from __future__ import annotations

import functools
import time

from bot.pending import plan_link, waiting_plans
from bot.waiting import waiting
from bot.wording import home as wording
from jobs.runtime import Runtime
from jobs.thread import permalink

OPEN_SHOWN = 10
"""How many open incidents the Home tab lists."""
RECENT_SHOWN = 10
"""How many of the last incidents it lists."""


def publish(runtime: Runtime, user: str) -> str:
    """Publish `user`'s Home tab: open incidents, each VM now and what waits for it, the last incidents.
    Only operators and approvers see incidents (bot/policy.py); anyone else sees the VMs' queues with
    no incident, person or typed text in them."""
    now = time.time()
    vms = []
    for name in runtime.settings.vm_names:
        vm = runtime.for_vm(name)
        link = functools.partial(plan_link, vm.plans, runtime.slack)
        pending = waiting_plans(vm.plans, vm.settings, runtime.registry.fixes, link, now)
        vms.append((name, vm.dispatcher.running_on_vm(), waiting(vm.redis, vm.settings, vm.plans), pending))
    decision = runtime.policy.for_home(user)  # a worker: user groups are resolved here
    if not decision.allowed:
        runtime.slack.publish_home(user, wording.limited_view(vms, decision.who, now))
        return "limited"
    store = runtime.store
    open_incidents = store.open_incidents()[:OPEN_SHOWN]
    recent = store.history(None, RECENT_SHOWN)
    links = {i.id: permalink(runtime, i) for i in (*open_incidents, *recent)}
    blocks = wording.view(open_incidents, recent, links, vms, now)
    runtime.slack.publish_home(user, blocks)
    return f"{len(open_incidents)} open, {len(recent)} recent"
