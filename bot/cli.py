"""`nexy`: the entry points. `web` (HTTP), `socket` (Socket Mode), `worker` (the VM worker and
the io workers), `run` (all on one machine; the sandbox and a console without Slack credentials),
and `audit verify <incident>` (recompute an incident's hash chain)."""

from __future__ import annotations

import argparse
import logging
import sys

from bot.errors import NexyError, SettingsError
from bot.redaction import install_log_redaction
from bot.settings import Settings, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nexy", description=__doc__)
    sub = parser.add_subparsers(dest="process", required=True)
    run = sub.add_parser("run", help="everything on one machine; the sandbox and a console without Slack credentials")
    run.add_argument(
        "--scenario", default="healthy", help="sandbox: start in this runbook fault (NAME@vm2: on that VM)"
    )
    run.add_argument("--vms", type=int, default=1, help="sandbox: how many simulated VMs (vm1, vm2, ...; 1 to 9)")
    sub.add_parser("web", help="serve Slack's HTTP requests (gunicorn) on PORT")
    sub.add_parser("socket", help="connect to Slack over Socket Mode (SLACK_APP_TOKEN)")
    worker = sub.add_parser("worker", help="the VM worker and the io worker(s), each in its own process")
    worker.add_argument("--queue", help="serve only this queue, in this process")
    worker.add_argument("--vm", help="serve only this VM of the inventory (its queue; no io worker)")
    worker.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    sub.add_parser("watch", help="probe each VM's health endpoints; a failing VM gets an incident, a diagnosis, a plan")
    audit = sub.add_parser("audit", help="check an incident's timeline").add_subparsers(dest="audit", required=True)
    verify = audit.add_parser("verify", help="recompute an incident's hash chain; exit 1 if it was tampered with")
    verify.add_argument("incident", help="the incident id, e.g. INC-3")
    verify.add_argument("--head", default="", help="a chain head from an export or the closing checklist")
    args = parser.parse_args(argv)

    install_log_redaction()
    logging.getLogger().setLevel(logging.INFO)
    try:
        settings = load_settings()
        if args.process == "web":
            return _web(settings)
        if args.process == "socket":
            return _socket(settings)
        if args.process == "worker":
            return _worker(settings, args.queue, args.burst, args.vm)
        if args.process == "watch":
            return _watch(settings)
        if args.process == "audit":
            return _audit_verify(settings, args.incident, args.head)
        return _run(settings, args.scenario, args.vms)
    except SettingsError as exc:
        print(f"nexy: {exc}", file=sys.stderr)
        return 2
    except NexyError as exc:
        print(f"nexy: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _web(settings: Settings) -> int:
    from bot.web import serve

    serve(settings, host=settings.nexy_bind_host)
    return 0


def _socket(settings: Settings) -> int:
    if not settings.slack_app_token:
        raise SettingsError("SLACK_APP_TOKEN: Socket Mode needs an app-level token (xapp-...)")
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.app import create_app

    SocketModeHandler(create_app(settings), settings.slack_app_token).start()
    return 0


def _worker(settings: Settings, queue: str | None, burst: bool, vm: str | None = None) -> int:
    from bot.redis_conn import connect

    if vm is not None:
        known = settings.find_vm(vm)
        if known is None:
            raise SettingsError(f"--vm {vm}: no such VM in the inventory; the VMs are {', '.join(settings.vm_names)}")
        queue = settings.for_vm(known).vm_queue
    if queue:
        from jobs.worker import build_runtime, serve

        serve(build_runtime(settings, connect(settings)), [queue], burst=burst)
        return 0
    from bot.contract import IO_QUEUE, vm_job_timeout
    from bot.processes import Children, supervise

    children = Children()
    for name in settings.vm_names:  # one worker per VM: VMs run in parallel, each strictly serialized
        children.nexy(f"vm-worker-{name}", "worker", "--vm", name)
    for n in range(settings.nexy_io_workers):
        children.nexy(f"io-worker-{n}", "worker", "--queue", IO_QUEUE)
    if settings.nexy_watch_channel:
        children.nexy("watch", "watch")
    # A stopping VM worker first finishes the run-command it is running (RQ's warm shutdown):
    # killing it would abandon a command that goes on running on the VM.
    return supervise(children, grace_s=vm_job_timeout(settings.nexy_conflict_max_wait_s))


def _watch(settings: Settings) -> int:
    """The watch in the foreground until SIGTERM or Ctrl-C (its own process: its ticks never wait behind
    io jobs, and a stuck probe never holds a worker)."""
    import signal
    import threading

    from bot.redis_conn import connect
    from jobs.watch import Watch
    from jobs.worker import build_runtime

    if not settings.nexy_watch_channel:
        raise SettingsError("NEXY_WATCH_CHANNEL: the watch needs a channel for its incidents (unset: the watch is off)")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    Watch(build_runtime(settings, connect(settings))).run(stop)
    return 0


def _audit_verify(settings: Settings, incident: str, head: str) -> int:
    """0: the chain is intact; 1: an event was edited, reordered or removed (the first is named);
    2: no such incident, or Redis unreachable."""
    from redis.exceptions import RedisError

    from bot.incidents import IncidentStore
    from bot.redis_conn import connect

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


def _run(settings: Settings, scenario: str, vms: int = 1) -> int:
    if not settings.has_slack_credentials:
        from bot.local import run_sandbox

        return run_sandbox(settings, scenario, vms)
    from bot.local import run_connected

    return run_connected(settings)


if __name__ == "__main__":
    sys.exit(main())
