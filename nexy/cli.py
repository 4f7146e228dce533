"""`nexy`: the entry points. `web` (HTTP), `socket` (Socket Mode), `worker` (the VM worker, the io
workers and the decisions worker), `run` (all on one machine; the sandbox and a console without Slack credentials),
`audit verify <incident>` (recompute an incident's hash chain), `manifest` (the Slack app
manifest for this bot's commands) and `commands` (README's command and roles tables)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bot.errors import NexyError, SettingsError
from bot.redaction import install_log_redaction
from bot.settings import Settings, load_settings
from nexy.processes import announcer


class _Scenarios:
    """The sandbox's scenarios, for argparse's `choices`: read only when checked or listed, so that
    `nexy web` never imports the emulators."""

    def _names(self) -> list[str]:
        from sandbox.stack import scenarios

        return sorted(scenarios())

    def __contains__(self, name: object) -> bool:
        # NAME@vm2: the scenario on that VM alone (--vms); SandboxStack checks the VM's name
        return isinstance(name, str) and name.split("@", 1)[0] in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


README_TABLES = ("roles", "commands")
"""The tables `nexy commands` prints, each generated from the registry and held in README.md."""


def _version() -> str:
    try:
        return version("nexy-ops")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nexy", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="process", required=True, metavar="command")

    def add(name: str, summary: str, details: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, description=f"{summary[0].upper()}{summary[1:]}. {details}")

    run = add(
        "run",
        "everything on one machine",
        "Without Slack credentials: the local sandbox (Slack, Azure and GitHub emulators, a simulated VM) "
        "and a console where you type /nexy commands. With them: the worker and the web (or Socket Mode) "
        "process. Ctrl-C stops everything in order.",
    )
    run.add_argument(
        "--scenario",
        default="healthy",
        choices=_Scenarios(),
        metavar="NAME",
        help="sandbox: start the simulated VM in this runbook fault, one of: %(choices)s (default: %(default)s); "
        "NAME@vm2 puts only that VM into it (with --vms)",
    )
    run.add_argument("--vms", type=int, default=1, help="sandbox: how many simulated VMs (vm1, vm2, ...; 1 to 9)")
    run.add_argument(
        "--socket-mode",
        action="store_true",
        help="sandbox: the bot runs as `nexy socket` and the emulated Slack talks to it over Socket Mode",
    )
    web = add(
        "web",
        "serve Slack's HTTP requests",
        "gunicorn on NEXY_BIND_HOST:PORT: POST /slack/events (signed requests), GET /healthz. Checks the "
        "Slack token and Redis first; says one line when it listens.",
    )
    socket = add(
        "socket",
        "connect to Slack over Socket Mode",
        "No public URL needed: needs SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET and the app-level SLACK_APP_TOKEN "
        "(xapp-, connections:write).",
    )
    worker = add(
        "worker",
        "run the VM worker, the io worker(s) and the decisions worker",
        "Exactly one worker for the VM queue vm:<resource-group>:<vm> (run-commands never overlap; it takes "
        "the VM's plans and applies, queue vm:<resource-group>:<vm>:fixes, first), NEXY_IO_WORKERS for io "
        "and one for decisions (approvals, rejections, expiries), each its own process, restarted if it "
        "dies. On Ctrl-C or SIGTERM a running run-command is finished first.",
    )
    worker.add_argument(
        "--queue", help="serve only this queue, in this process (a VM's queue: with its fixes queue, first)"
    )
    worker.add_argument("--vm", help="serve only this VM of the inventory (its queue; no io worker), in this process")
    worker.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    add(
        "watch",
        "watch every VM's health endpoints",
        "Every NEXY_WATCH_INTERVAL_S; a VM failing NEXY_WATCH_FAILURES probes in a row (or reporting another "
        "version than expected) gets an incident in NEXY_WATCH_CHANNEL, one diagnosis and the top fix's plan. "
        "`nexy worker` starts it when NEXY_WATCH_CHANNEL is set.",
    )
    for child in (web, socket, worker):
        # Set by a parent nexy process that already checked Redis's configuration.
        child.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    audit = add(
        "audit",
        "check an incident's timeline",
        "Each timeline event carries a hash chained to the one before; verify recomputes the chain.",
    ).add_subparsers(dest="audit", required=True, metavar="check")
    verify = audit.add_parser(
        "verify",
        help="recompute an incident's hash chain; exit 1 if it was tampered with",
        description="Recompute an incident's hash chain: exit 0 intact, 1 tampered with (the first edited, "
        "reordered or removed event is named), 2 no such incident or Redis unreachable.",
    )
    verify.add_argument("incident", help="the incident id, e.g. INC-3")
    verify.add_argument("--head", default="", help="a chain head from an export or the closing checklist")
    manifest = add(
        "manifest",
        "print the Slack app manifest",
        "Generated, never committed: its /nexy usage hint lists the runbook's commands, its scopes are the "
        "fewest the code needs. Paste it at https://api.slack.com/apps (Create New App, From an app manifest).",
    )
    manifest.add_argument("--url", default=None, help="the public base URL of `nexy web` (HTTP mode)")
    manifest.add_argument("--socket-mode", action="store_true", help="for `nexy socket`: no request URLs")
    commands = add(
        "commands",
        "print the command tables README.md holds",
        "From the runbook's declarations: `--table roles` (default), who may run each command and press each "
        "button and which incidents it touches (bot/policy.py checks them); `--table commands`, what each "
        "command does and its runbook section (the docstring after its help line). README.md holds each "
        "between its `<!-- NAME:begin -->` and `<!-- NAME:end -->` markers; `--readme FILE` rewrites both there.",
    )
    commands.add_argument("--markdown", action="store_true", help="as a Markdown table (the only format)")
    commands.add_argument("--table", choices=README_TABLES, default="roles", help="which table (default: roles)")
    commands.add_argument("--readme", metavar="FILE", help="rewrite every table between its markers in FILE")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.process == "manifest":
        from nexy.manifest import DEFAULT_URL, render
        from nexy.registry import build_registry

        print(render(build_registry(), args.url or DEFAULT_URL, socket_mode=args.socket_mode), end="")
        return 0
    if args.process == "commands":
        from nexy.registry import build_registry

        registry = build_registry()
        tables = {"roles": registry.roles_table(), "commands": registry.commands_table()}
        if args.readme:
            path = Path(args.readme)
            try:
                path.write_text(with_tables(path.read_text(), tables))
            except (OSError, ValueError) as exc:
                print(f"nexy: {args.readme}: {exc}", file=sys.stderr)
                return 2
            return 0
        print(tables[args.table], end="")
        return 0

    install_log_redaction()
    logging.getLogger().setLevel(logging.INFO)
    say = announcer(args.process)
    settings: Settings | None = None
    failed = False
    try:
        settings = load_settings()
        if args.process != "audit":
            _observe(settings, args.process)
        if args.process == "web":
            return _web(settings, args.child)
        if args.process == "socket":
            return _socket(settings, args.child)
        if args.process == "worker":
            return _worker(settings, args.queue, args.burst, args.child, say, args.vm)
        if args.process == "watch":
            return _watch(settings)
        if args.process == "audit":
            return _audit_verify(settings, args.incident, args.head)
        return _run(settings, args.scenario, args.socket_mode, args.vms)
    except SettingsError as exc:
        failed = True
        print(f"nexy: {exc}", file=sys.stderr)
        return 2
    except NexyError as exc:
        failed = True
        print(f"nexy: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if settings is not None and not settings.redis_url:
            # A failed start stops the server it started, without a word: its one line said what failed;
            # so does a one-off read (audit).
            quiet = failed or getattr(args, "child", False) or args.process == "audit"
            _leave_redis(settings, None if quiet else say)


def with_tables(text: str, tables: dict[str, str]) -> str:
    """The text with each table put between its `<!-- NAME:begin -->` and `<!-- NAME:end -->` markers."""
    for name, table in tables.items():
        begin, end = f"<!-- {name}:begin -->\n", f"<!-- {name}:end -->"
        start, stop = text.find(begin), text.find(end)
        if start < 0 or stop < start:
            raise ValueError(f"no {begin.strip()} ... {end} markers to put the {name} table between")
        text = text[: start + len(begin)] + table + text[stop:]
    return text


def _leave_redis(settings: Settings, say: Callable[[str], None] | None) -> None:
    """This process stops using the shared embedded Redis; the last one stops the server."""
    from nexy.embedded_redis import leave

    if leave(settings.nexy_data_dir) and say is not None:
        say(f"redis-server stopped (its data stays under {settings.nexy_data_dir}/redis)")


def _observe(settings: Settings, process: str) -> None:
    from nexy.metrics import setup

    setup(settings, process)


def _web(settings: Settings, child: bool) -> int:
    from nexy.web import serve

    serve(settings, host=settings.nexy_bind_host, check_durability=not child)
    return 0


def _socket(settings: Settings, child: bool) -> int:
    from nexy.socket_mode import serve

    serve(settings, child=child)
    return 0


def _worker(
    settings: Settings, queue: str | None, burst: bool, child: bool, say: Callable[[str], None], vm: str | None = None
) -> int:
    from nexy.redis import connect
    from nexy.web import check_redis
    from nexy.workers import where

    redis_label = check_redis(settings, None if child else say)
    if not child:
        _metrics_port(settings, say)
    if vm is not None:  # one VM of the inventory: its queue only, from any host sharing the Redis
        known = settings.find_vm(vm)
        if known is None:
            raise SettingsError(f"--vm {vm}: no such VM in the inventory; the VMs are {', '.join(settings.vm_names)}")
        queue = settings.for_vm(known).vm_queue
    if queue:
        from jobs.worker import build_runtime, serve
        from nexy.registry import build_registry

        if not child:
            say(f"ready: serving queue {queue}; Redis: {redis_label}; {where(settings)}")
        serve(build_runtime(settings, connect(settings), build_registry()), [queue], burst=burst)
        return 0
    from nexy import workers
    from nexy.processes import Children, supervise

    children = Children()
    names = workers.start(children, settings)
    redis = connect(settings)
    if workers.registered(redis, children, names):
        say(workers.ready_line(settings, redis_label))
    else:
        say(f"the workers did not register within {workers.READY_TIMEOUT_S:g} s; see the messages above")
    return supervise(
        children, [workers.stage(settings, names)], say, running=lambda: workers.running_command(redis, settings)
    )


def _metrics_port(settings: Settings, say: Callable[[str], None]) -> None:
    from nexy.metrics import serve_worker_port
    from nexy.redis import connect

    where = serve_worker_port(settings, connect(settings))
    if where:
        say(f"metrics on {where}")


def _audit_verify(settings: Settings, incident: str, head: str) -> int:
    """0: the chain is intact; 1: an event was edited, reordered or removed (the first is named);
    2: no such incident, or Redis unreachable."""
    from redis.exceptions import RedisError

    from bot.incidents import IncidentStore
    from nexy.redis import connect

    try:
        check = IncidentStore(connect(settings)).verify(incident.upper(), head.strip().lower())
    except LookupError as exc:
        print(f"nexy: {exc}", file=sys.stderr)
        return 2
    except RedisError as exc:
        print(f"nexy: cannot read Redis ({type(exc).__name__})", file=sys.stderr)
        return 2
    if check.intact:
        print(f"{check.incident}: {check.events} events, chain intact; head {check.head}")
        return 0
    print(f"{check.incident}: TAMPERED ({check.tamper.value if check.tamper else '?'}): {check.detail}")
    return 1


def _watch(settings: Settings) -> int:
    """The watch in the foreground until SIGTERM or Ctrl-C (its own process: its ticks never wait behind
    io jobs, and a stuck probe never holds a worker)."""
    import signal
    import threading

    from jobs.watch import Watch
    from jobs.worker import build_runtime
    from nexy.redis import connect
    from nexy.registry import build_registry

    if not settings.nexy_watch_channel:
        raise SettingsError("NEXY_WATCH_CHANNEL: the watch needs a channel for its incidents (unset: the watch is off)")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends a watch run by hand
        Watch(build_runtime(settings, connect(settings), build_registry())).run(stop)
    return 0


def _run(settings: Settings, scenario: str, socket_mode: bool, vms: int = 1) -> int:
    if not settings.has_slack_credentials:
        from nexy.local import run_sandbox

        return run_sandbox(settings, scenario, socket_mode=socket_mode, vms=vms)
    from nexy.local import run_connected

    return run_connected(settings)


if __name__ == "__main__":
    sys.exit(main())
