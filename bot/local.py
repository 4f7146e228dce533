"""`nexy run`: every process on one machine.

Without Slack credentials it starts the sandbox (its own embedded Redis, never REDIS_URL; the Slack
emulator, a stand-in Nexy server, one worker, the web process on loopback) and the console in the
foreground. With credentials it runs the worker and the web (or Socket Mode) process against the
real workspace.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
from redis import Redis
from rq import Queue
from rq.registry import StartedJobRegistry

from bot.contract import IO_QUEUE, vm_queue_name
from bot.embedded_redis import EmbeddedRedis, free_port
from bot.errors import NexyError
from bot.processes import Children
from bot.settings import Settings

WEB_START_TIMEOUT_S = 30.0
"""How long the web process may take to answer /healthz."""


def queues_idle(redis: Redis, names: list[str]) -> bool:
    """No job waiting or running on any of the queues."""
    for name in names:
        if Queue(name, connection=redis).count or StartedJobRegistry(name, connection=redis).count:
            return False
    return True


def wait_until_up(url: str, children: Children, timeout: float = WEB_START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if children.exited():
            raise NexyError(f"{', '.join(children.exited())} exited during start-up; see the messages above")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise NexyError(f"{url} did not answer within {timeout:g} s")


def _own_redis(settings: Settings, persist: bool = True) -> tuple[str, EmbeddedRedis | None]:
    if settings.redis_url:
        return settings.redis_url, None
    server = EmbeddedRedis(settings.nexy_data_dir, persist=persist).start()
    return server.url, server


def run_sandbox(settings: Settings, scenario: str, vms: int = 1) -> int:
    """The local sandbox with the console in the foreground; everything stops with it."""
    from sandbox.console import Console
    from sandbox.stack import SandboxStack

    Path(settings.nexy_data_dir).mkdir(parents=True, exist_ok=True)
    if settings.redis_url:
        print(
            "nexy: the sandbox ignores REDIS_URL and uses its own embedded Redis; that database is not touched",
            file=sys.stderr,
        )
    children = Children()
    redis_server = None
    try:
        stack = SandboxStack(
            Path(settings.nexy_data_dir) / "sandbox",
            scenario,
            resource_group=settings.azure_resource_group,
            vm_name=settings.azure_vm_name,
            vms=vms,
        )
    except ValueError as exc:
        raise NexyError(str(exc)) from None
    try:
        stack.start()
        # Its own server, not persisted: it starts empty like the emulated Slack, so no incident
        # points at an old thread, and no database the sandbox does not own is ever written.
        redis_server = EmbeddedRedis(Path(settings.nexy_data_dir) / "sandbox", persist=False).start()
        redis_url = redis_server.url
        redis = Redis.from_url(redis_url)
        port = free_port()
        env = {
            **stack.env(),
            "REDIS_URL": redis_url,
            "PORT": str(port),
            "NEXY_BIND_HOST": "127.0.0.1",
            "NEXY_WEB_WORKERS": "1",
        }
        children.nexy("worker", "worker", env=env)
        children.nexy("web", "web", env=env)
        wait_until_up(f"http://127.0.0.1:{port}/healthz", children)
        stack.slack.bot_url = f"http://127.0.0.1:{port}/slack/events"
        queue_names = [IO_QUEUE, *(vm_queue_name(rg, name) for rg, name, _ in stack.vms.values())]
        console = Console(stack.slack, idle=lambda: queues_idle(redis, queue_names), sandbox=stack)
        return console.run(sys.stdin)
    except KeyboardInterrupt:
        return 130
    finally:
        children.stop()
        stack.stop()
        if redis_server is not None:
            redis_server.stop()


def run_connected(settings: Settings) -> int:
    """The worker and the web (or Socket Mode) process for a real workspace, until Ctrl-C."""
    from bot.contract import vm_job_timeout
    from bot.processes import supervise

    children = Children()
    redis_url, redis_server = _own_redis(settings)
    try:
        env = {"REDIS_URL": redis_url}
        children.nexy("worker", "worker", env=env)
        children.nexy("slack", "socket" if settings.slack_app_token else "web", env=env)
        return supervise(children, grace_s=vm_job_timeout(settings.nexy_conflict_max_wait_s))
    finally:
        children.stop()
        if redis_server:
            redis_server.stop()
