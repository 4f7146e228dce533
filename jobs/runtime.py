"""What every task runs with: one `Runtime` per worker process, passed to each task as its first
argument by `TaskJob` (so no task looks anything up globally or rebuilds a store per job)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, ClassVar

from redis import Redis
from rq.job import Job

from bot.diagnoses import DiagnosisStore
from bot.dispatch import Dispatcher
from bot.errors import SettingsError
from bot.incidents import IncidentStore, Limits
from bot.logs import in_context, job_fields
from bot.plans import PlanStore, approvals_problem
from bot.policy import GroupCache, Policy
from bot.sealed import SealedStore
from bot.settings import Settings
from bot.slack_client import SlackClient, web_client

if TYPE_CHECKING:
    from bot.registry import Registry
    from clients.executors import Executor


@dataclass
class Runtime:
    """Settings, Redis, the stores, the policy, Slack and the registry: built once per worker."""

    settings: Settings
    redis: Redis
    registry: Registry
    store: IncidentStore = field(init=False)
    plans: PlanStore = field(init=False)
    dispatcher: Dispatcher = field(init=False)
    sealed: SealedStore = field(init=False)
    diagnoses: DiagnosisStore = field(init=False)
    _vms: dict[str, Runtime] = field(init=False, default_factory=dict, repr=False)

    def for_vm(self, name: str) -> Runtime:
        """The runtime of one VM of the inventory: the same Redis and registry, that VM's settings (so its
        queue, lease, executor, health URLs and paths). Built once per VM, on first use."""
        settings = self.settings.for_vm(name)
        if settings is self.settings:
            return self
        if settings.vm_name not in self._vms:
            self._vms[settings.vm_name] = Runtime(settings, self.redis, self.registry)
        return self._vms[settings.vm_name]

    def __post_init__(self) -> None:
        problem = approvals_problem(self.settings, self.registry.fixes)
        if problem:  # a worker with a mistyped NEXY_APPROVALS refuses to start, naming the fixes
            raise SettingsError(problem)
        self.store = IncidentStore(self.redis, Limits.of(self.settings))
        self.plans = PlanStore(self.redis)
        self.dispatcher = Dispatcher(self.settings, self.redis)
        self.sealed = SealedStore.of(self.redis, self.settings)
        self.diagnoses = DiagnosisStore(self.redis)

    @cached_property
    def slack(self) -> SlackClient:
        return SlackClient(web_client(self.settings))

    @cached_property
    def policy(self) -> Policy:
        """The access policy, resolving user groups through Slack (workers only)."""
        return Policy(self.settings, GroupCache(self.redis), resolve=self.slack.usergroup_members)

    @cached_property
    def executor(self) -> Executor:
        """Where scripts run: Azure Run Command, or bash on this host (NEXY_EXECUTOR=local)."""
        from clients.executors import executor_for

        return executor_for(self.settings)


class TaskJob(Job):
    """An RQ job that calls its task with the worker's runtime first: `task(runtime, *args, **kwargs)`.
    A worker binds its runtime with `TaskJob.bound(runtime)` (RQ's public `job_class` option).

    Only public RQ API: the job's `func`, which RQ's `Job.perform` calls with the job's arguments,
    is the task with its runtime already bound (tests/jobs/test_runtime.py checks RQ still does so)."""

    runtime: ClassVar[Runtime | None] = None

    @classmethod
    def bound(cls, runtime: Runtime) -> type[TaskJob]:
        return type("BoundTaskJob", (cls,), {"runtime": runtime})

    @property
    def func(self) -> Callable[..., Any]:
        task = super().func
        if self.runtime is None or not task:
            raise RuntimeError("a TaskJob runs only in a nexy worker (TaskJob.bound(runtime))")
        # The job names its VM (bot.dispatch); a VM unknown to this worker's inventory (a stale job
        # after the inventory changed) runs with the worker's own VM rather than not at all.
        vm = (self.meta or {}).get("vm", "")
        runtime = self.runtime
        if vm and runtime.settings.find_vm(vm):
            runtime = runtime.for_vm(vm)
        # Every line logged while it runs says which job, incident, plan and VM (NEXY_LOG_FORMAT=json).
        return in_context(partial(task, runtime), job_fields(self.id, self.args, self.kwargs, runtime.settings.vm_name))
