"""The run-command engine: one script at a time on a VM, whatever runs the workers.

Serialization is a guarantee, not a habit: a VM's jobs go through its own queue (one worker),
and every run also holds a Redis lease per VM, renewed while the command runs, so even a second
worker started by mistake waits instead of overlapping. A 409 from Azure (another run-command in
progress, runbook 6.4) is waited out with backoff, and the thread says so.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from contextlib import suppress

from redis import Redis
from redis.exceptions import LockError, RedisError

from bot import metrics, render
from bot.contract import VM_LOCK_WAIT_S, WorkItem, vm_lease_key, vm_running_key
from bot.errors import ConflictError, ExecutorError, ExecutorFailure
from bot.incidents import EventKind
from bot.wording import vm as vm_wording
from clients.runcommand import RunResult, Script
from jobs.operations import OperationWatch
from jobs.runtime import Runtime
from jobs.thread import Thread

log = logging.getLogger(__name__)

MAX_CONFLICT_DELAY_S = 120.0
"""The longest single wait between two tries after a 409."""

RECORDED_OUTPUT_CHARS = 4000
"""How much of a run-command's output (its end) the timeline keeps: what the VM said, months later."""


class VMLease:
    """Holds the VM's lock for one run-command; a thread renews it until released."""

    def __init__(self, redis: Redis, resource_group: str, vm: str, holder: dict, lease_s: float):
        self.redis = redis
        self.lease_s = lease_s
        self.holder = holder
        self.running = vm_running_key(resource_group, vm)
        # thread_local=False: the renewing thread must see the token the job thread acquired.
        self.lock = redis.lock(
            vm_lease_key(resource_group, vm),
            timeout=lease_s,
            sleep=0.05,
            blocking_timeout=VM_LOCK_WAIT_S,
            thread_local=False,
        )
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> VMLease:
        if not self.lock.acquire():
            holder = self.redis.get(self.running)
            words = json.loads(holder).get("words", "?") if holder else "unknown"
            raise ExecutorError(ExecutorFailure.LEASE, words, waited_s=VM_LOCK_WAIT_S)
        self.redis.set(self.running, json.dumps({**self.holder, "since": time.time()}), px=int(self.lease_s * 1000))
        self._renewer = threading.Thread(target=self._renew, name="vm-lease", daemon=True)
        self._renewer.start()
        return self

    def _renew(self) -> None:
        """Renew the lease every third of its time; a Redis blip is retried at once, not fatal."""
        interval = self.lease_s / 3
        while not self._stop.wait(interval):
            try:
                self.lock.extend(self.lease_s, replace_ttl=True)
                self.redis.pexpire(self.running, int(self.lease_s * 1000))
                interval = self.lease_s / 3
            except LockError:
                log.error("lost the VM lease %s while a command was running", self.lock.name)
                return
            except RedisError:
                log.warning("could not renew the VM lease %s; retrying", self.lock.name)
                interval = min(1.0, self.lease_s / 10)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._renewer:
            self._renewer.join(timeout=5)
        with suppress(RedisError):
            self.redis.delete(self.running)
        with suppress(LockError, RedisError):
            self.lock.release()


def run_on_vm(
    runtime: Runtime, thread: Thread, item: WorkItem, script: Script, shared: dict | None = None
) -> RunResult:
    """Run one script on the VM under its lease, waiting out run-command conflicts; audit the run.
    `shared`: the runs of a job that answers several requests; a script already run there is not
    run again (its result, or its error, is this request's too), and is audited in this request's
    incident as well."""
    if shared is not None and script in shared:
        earlier = shared[script]
        if isinstance(earlier, BaseException):
            raise earlier
        result = earlier
    else:
        try:
            result = _run_under_lease(runtime, thread, item, script)
        except Exception as exc:
            if shared is not None and not script.secrets:
                shared[script] = exc
            raise
        if shared is not None and not script.secrets:
            shared[script] = result
        metrics.run_command(runtime.settings.vm_name, script.name, result.duration_s)
    runtime.store.record(
        item.incident,
        EventKind.RUN_COMMAND,
        item.user,
        job=item.id,
        script=script.name,
        executor=runtime.executor.name,
        exit_code=result.exit_code,
        duration_s=result.duration_s,
        facts=result.facts,
        output=render.tail(result.output, RECORDED_OUTPUT_CHARS),
    )
    return result


def _run_under_lease(runtime: Runtime, thread: Thread, item: WorkItem, script: Script) -> RunResult:
    settings = runtime.settings
    holder = {"job": item.id, "words": item.words, "incident": item.incident, "user": item.user}
    with VMLease(
        runtime.redis, settings.azure_resource_group, settings.azure_vm_name, holder, settings.nexy_vm_lease_s
    ):
        watch = OperationWatch(runtime, thread, item, script.name, plan=_plan_of(item))
        try:
            return _run_through_conflicts(runtime, thread, script, watch)
        finally:
            watch.done()


def _plan_of(item: WorkItem) -> str:
    """The plan an apply job works on (its job id names it), for the operation record."""
    return item.id.removeprefix("apply-") if item.command == "apply" else ""


def _run_through_conflicts(runtime: Runtime, thread: Thread, script: Script, watch: OperationWatch) -> RunResult:
    settings = runtime.settings
    waited, delay, notice = 0.0, settings.nexy_conflict_retry_s, None
    while True:
        try:
            result = runtime.executor.run(script, watch)
            break
        except ConflictError:
            if waited + delay > settings.nexy_conflict_max_wait_s:
                if notice:
                    thread.update(notice, vm_wording.conflict_gave_up(script.name, waited))
                raise ConflictError(ExecutorFailure.CONFLICT_GAVE_UP, script.name, waited_s=waited) from None
            text = vm_wording.conflict_waiting(script.name, delay, waited)
            if notice is None:
                notice = f"conflict:{uuid.uuid4().hex}"  # the notice's ref: edited in place as the wait goes on
                thread.post(text, kind=EventKind.NOTE, ref=notice)
            else:
                thread.update(notice, text)
            time.sleep(delay)
            waited += delay
            delay = min(delay * 2, MAX_CONFLICT_DELAY_S)
    if notice:
        thread.update(notice, vm_wording.conflict_cleared(script.name, waited))
    return result
