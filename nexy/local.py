"""`nexy run`: every process on one machine.

Without Slack credentials it starts the sandbox (its own embedded Redis, never REDIS_URL; the Slack
emulator, a stand-in Nexy server, one worker, the web process on loopback) and the console in the
foreground. With credentials it runs the worker and the web (or Socket Mode) process against the
real workspace. Either way Ctrl-C (or SIGTERM) stops everything in order, one line a step: the
process that takes Slack's requests, then the workers (a running run-command is finished first),
then the emulators and Redis.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time
from pathlib import Path

import httpx
from redis import Redis
from rq import Queue
from rq.registry import StartedJobRegistry

from bot.contract import DECISIONS_QUEUE, IO_QUEUE, fixes_queue_name
from bot.errors import NexyError
from bot.settings import Settings, load_settings
from nexy import workers
from nexy.embedded_redis import EmbeddedRedis, free_port
from nexy.processes import Children, Stage, announcer, stop_in_order, supervise

WEB_START_TIMEOUT_S = 30.0
"""How long the web process may take to answer /healthz (and the workers to register)."""

WEB_STOP_S = 15.0
"""How long `nexy web` gets to stop (gunicorn's graceful timeout is 10 s)."""


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


def wait_connected(slack, children: Children, timeout: float = WEB_START_TIMEOUT_S) -> None:
    """Until the bot has opened its Socket Mode connection to the emulated Slack."""
    deadline = time.monotonic() + timeout
    while not slack.socket.connections:
        if children.exited():
            raise NexyError(f"{', '.join(children.exited())} exited during start-up; see the messages above")
        if time.monotonic() > deadline:
            raise NexyError(f"the bot did not connect over Socket Mode within {timeout:g} s")
        time.sleep(0.05)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _lock_sandbox(folder: Path) -> int:
    """One sandbox per data folder: the second would reset the first one's simulated VM."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "run.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise NexyError(
            f"another `nexy run` sandbox is running on NEXY_DATA_DIR={folder.parent}; stop it, or set another "
            "NEXY_DATA_DIR"
        ) from None
    return fd


def run_sandbox(settings: Settings, scenario: str, *, socket_mode: bool = False, vms: int = 1) -> int:
    """The local sandbox with the console in the foreground; everything stops with it. With
    socket_mode the bot runs as `nexy socket` and the emulated Slack delivers over Socket Mode."""
    from sandbox.console import Console
    from sandbox.stack import SandboxStack

    say = announcer("run")
    if settings.redis_url:
        print(
            "nexy: the sandbox ignores REDIS_URL and uses its own embedded Redis; that database is not touched",
            file=sys.stderr,
        )
    folder = Path(settings.nexy_data_dir) / "sandbox"
    try:
        stack = SandboxStack(
            folder,
            scenario,
            resource_group=settings.azure_resource_group,
            vm_name=settings.azure_vm_name,
            run_command_delay_s=settings.nexy_sandbox_run_command_s,
            vms=vms,
        )
    except ValueError as exc:
        raise NexyError(str(exc)) from None
    lock = _lock_sandbox(folder)
    slack_process = "socket" if socket_mode else "web"
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    children = Children()
    redis_server = redis = None
    names: list[str] = []
    served = settings  # the children's settings (the sandbox's VMs), once the sandbox runs
    try:
        stack.start()
        # Its own server, not persisted: it starts empty like the emulated Slack, so no incident
        # points at an old thread, and no database the sandbox does not own is ever written.
        redis_server = EmbeddedRedis(folder, persist=False).start()
        redis = Redis.from_url(redis_server.url)
        port = free_port()
        env = {
            **stack.env(),
            "REDIS_URL": redis_server.url,
            "PORT": str(port),
            "NEXY_BIND_HOST": "127.0.0.1",
            "NEXY_WEB_WORKERS": "1",
            # Its channels are set, never left empty (a Slack-facing process refuses that): the
            # emulated workspace's, unless NEXY_CHANNELS names others.
            "NEXY_CHANNELS": ",".join(settings.nexy_channels or tuple(stack.slack.channels)),
        }
        served = load_settings(**{name.lower(): value for name, value in env.items()})
        # --child: a not-persisted Redis is what the sandbox wants, not something to warn about.
        names = workers.start(children, served, env)
        if socket_mode:
            children.nexy(slack_process, "socket", "--child", env={**env, "SLACK_APP_TOKEN": stack.slack.app_token})
            wait_connected(stack.slack, children)
            stack.slack.socket_mode = True
        else:
            children.nexy(slack_process, "web", "--child", env=env)
            wait_until_up(f"http://127.0.0.1:{port}/healthz", children)
            stack.slack.bot_url = f"http://127.0.0.1:{port}/slack/events"
        if not workers.registered(redis, children, names):
            raise NexyError("the workers did not start; see the messages above")
        say(workers.ready_line(served, redis_server.url))
        queue_names = [DECISIONS_QUEUE, IO_QUEUE, *(q for vm in served.vm_queues for q in (fixes_queue_name(vm), vm))]
        console = Console(
            stack.slack,
            idle=lambda: queues_idle(redis, queue_names),
            sandbox=stack,
            history=folder / "console_history",
        )
        return console.run(sys.stdin)
    except KeyboardInterrupt:
        if sys.stdin.isatty():
            print(file=sys.stderr)  # end the prompt's line: the steps follow
        return 130
    finally:
        running = (lambda: workers.running_command(redis, served)) if redis is not None else None
        stop_in_order(children, _stages(slack_process, served, names), say, running)
        stack.stop()
        if redis_server is not None:
            redis_server.stop()
            say("sandbox stopped (emulators and its redis-server)")
        os.close(lock)


def _stages(slack_process: str, settings: Settings, names: list[str]) -> list[Stage]:
    """Stop what takes Slack's requests first, then the workers."""
    return [
        Stage([slack_process], f"{slack_process} stopped (no new requests)", grace_s=WEB_STOP_S),
        workers.stage(settings, names),
    ]


def run_connected(settings: Settings) -> int:
    """The worker and the web (or Socket Mode) process for a real workspace, until Ctrl-C."""
    from nexy.redis import connect
    from nexy.web import check_redis

    say = announcer("run")
    # This process uses the embedded Redis too (when REDIS_URL is unset), so the server outlives
    # its children and stops last, when this process leaves it.
    redis_label = check_redis(settings, say)
    redis = connect(settings)
    slack_process = "socket" if settings.slack_app_token else "web"
    children = Children()
    names = workers.start(children, settings)
    children.nexy(slack_process, slack_process, "--child")
    if workers.registered(redis, children, names):
        say(workers.ready_line(settings, redis_label))
    return supervise(
        children,
        _stages(slack_process, settings, names),
        say,
        running=lambda: workers.running_command(redis, settings),
    )
