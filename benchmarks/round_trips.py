"""Run-command round trips per flow: what the bot needs, counted at the Azure emulator, beside what
the manual runbook needs for the same flow (each `az vm run-command invoke` of its Check, Fix and
Verify steps, the section 0.1 preflight before a restart included).

Each run-command costs 20 s to a minute on the real VM, so this count is the main cost of an
incident. The bot runs for real: signed Slack requests to its WSGI app, the worker in this process,
azure-mgmt-compute against the Run Command emulator, the simulated VM in each fault. Prints JSON.

    .venv/bin/python benchmarks/round_trips.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis import Redis  # noqa: E402

from bot.contract import IO_QUEUE  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from jobs.worker import build_runtime, serve  # noqa: E402
from nexy.registry import build_registry  # noqa: E402
from nexy.embedded_redis import EmbeddedRedis  # noqa: E402
from nexy.web import wsgi_app  # noqa: E402
from sandbox.azure_emulator import AzureEmulator  # noqa: E402
from sandbox.gemini_emulator import GeminiEmulator  # noqa: E402
from sandbox.slack_emulator import SlackEmulator  # noqa: E402
from sandbox.vm import SimulatedVM, new_gemini_key  # noqa: E402

RG, VM_NAME = "NetworkWatcherRG", "Nexy"
OPERATOR, APPROVER = "U0ALICE", "U0BOB"

# The manual runbook's run-commands for each flow, step by step (deploy-incident-runbook.md).
MANUAL = {
    "diagnose": ["5 check: systemctl status + journal", "0.1 guardrails: config.env, key, readable, ExecStart",
                 "6.1 check: stat config.env", "6.2 check: systemctl cat | grep ExecStart",
                 "6/6.3 check: journal grep for the key and TextProcessor", "3 check: python -V, pip freeze",
                 "4 check: cat VERSION and the manifest"],
    "config-perms": ["5 check: systemctl status + journal (finds 6.1)", "0.1 preflight before the restart",
                     "6.1 fix: chown, chmod, restart", "6.1 verify: is-active, curl /health"],
    "execstart-drift": ["5 check: systemctl status + journal (finds 6.2)", "6.2 check: systemctl cat",
                        "0.1 preflight before the restart", "6.2 fix: sed, daemon-reload, restart",
                        "6.2 verify: is-active, curl /health"],
    "deps-mismatch": ["5 check: systemctl status + journal (finds 3)", "3 check: python -V, pip freeze",
                      "3 fix: pip install -r requirements, pins", "0.1 preflight before the restart",
                      "restart", "3 verify: is-active"],
    "stale-version": ["4 check: cat VERSION and the manifest", "4 fix: update_server_version.sh"],
    "api-key-expired": ["5 check: systemctl status + journal (finds 6.3)", "6 check: journal grep for the key",
                        "6 fix: edit GEMINI_API_KEY", "0.1 preflight: grep GEMINI_API_KEY",
                        "6.3 fix: Gemini smoke before restart", "restart", "6 verify: no key errors in new logs"],
    "service-down": ["5 check: systemctl status + journal", "0.1 preflight before the restart", "restart",
                     "5 verify: is-active"],
}

FIX_WORDS = {"config-perms": "fix config-perms", "execstart-drift": "fix execstart", "deps-mismatch": "fix deps",
             "stale-version": "fix version {expected}", "api-key-expired": "fix api-key", "service-down": "restart"}


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class Bench:
    """The bot, the emulators and a burst worker, in this process."""

    def __init__(self, data: Path, redis_url: str, slack: SlackEmulator, vm: SimulatedVM, azure: AzureEmulator,
                 gemini: GeminiEmulator):
        self.slack, self.vm, self.azure = slack, vm, azure
        self.settings = load_settings(
            _env_file=None, slack_bot_token=slack.bot_token, slack_signing_secret=slack.signing_secret,
            slack_api_url=slack.api_url, redis_url=redis_url, nexy_data_dir=str(data / "data"),
            azure_subscription_id=azure.subscription_id, azure_arm_url=azure.url, azure_access_token=azure.token,
            azure_resource_group=RG, azure_vm_name=VM_NAME, nexy_azure_poll_s=0.02,
            nexy_vm_health_urls=",".join(vm.health_urls), nexy_verify_wait_s=10, nexy_gemini_url=gemini.url,
            nexy_operators=OPERATOR, nexy_approvers=APPROVER, nexy_channels="*",
            **{k.lower(): v for k, v in vm.settings_env().items()})
        self.redis = Redis.from_url(redis_url)
        registry = build_registry()
        self.server = make_server("127.0.0.1", 0, wsgi_app(self.settings, registry), _Server, handler_class=_Quiet)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        slack.bot_url = f"http://127.0.0.1:{self.server.server_address[1]}/slack/events"
        self.runtime = build_runtime(self.settings, self.redis, registry)

    def work(self) -> None:
        serve(self.runtime, [IO_QUEUE, self.settings.vm_queue], burst=True)

    def count(self) -> int:
        return self.azure.run_count.get((RG.lower(), VM_NAME.lower()), 0)

    def last(self, channel: str):
        return [m for m in self.slack.messages(channel) if m.user == self.slack.bot_user_id and not m.ephemeral_to][-1]

    def ask(self, words: str, channel: str) -> None:
        self.slack.slash_command(words, user=OPERATOR, channel=channel)
        self.work()

    def approve_last_plan(self, channel: str) -> str:
        plan = self.last(channel)
        assert plan.text.startswith(":clipboard: Plan"), plan.text
        self.slack.reaction_added("white_check_mark", user=APPROVER, channel=channel, ts=plan.ts)
        self.work()
        return self.last(channel).text

    def type_key(self) -> None:
        values = {"secret": {"value": {"type": "plain_text_input", "value": new_gemini_key()}}}
        self.slack.view_submission(user=OPERATOR, callback_id="secret_form", values=values)
        self.work()

    def fix_flow(self, scenario: str, channel: str) -> tuple[int, str]:
        """`/nexy <fix>`: plan, approval, apply and verify."""
        before = self.count()
        words = FIX_WORDS[scenario].format(expected=self.vm.expected_version)
        self.ask(words, channel)
        if words == "fix api-key":
            self.type_key()
        outcome = self.approve_last_plan(channel)
        return self.count() - before, outcome

    def diagnose_flow(self, scenario: str, channel: str) -> tuple[int, str]:
        """`/nexy diagnose`, the posted plan approved (api-key: the finding's button, the form)."""
        before = self.count()
        self.ask("diagnose", channel)
        if scenario == "api-key-expired":
            diagnosis = next(m for m in self.slack.messages(channel) if "Diagnosis" in m.text)
            self.slack.block_action(user=OPERATOR, channel=channel, message_ts=diagnosis.ts, action_id="fix_plan",
                                    value="fix api-key")
            self.type_key()
        outcome = self.approve_last_plan(channel)
        return self.count() - before, outcome


def main() -> int:
    flows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis", persist=False) as redis, \
            SlackEmulator() as slack, SimulatedVM(Path(tmp) / "vm") as vm, \
            AzureEmulator(delay_s=0.0) as azure, GeminiEmulator(vm.gemini_state) as gemini:
        azure.add_vm(RG, VM_NAME, vm)
        bench = Bench(Path(tmp), redis.url, slack, vm, azure, gemini)
        before = bench.count()
        bench.ask("diagnose", "C0DIAG")
        flows["diagnose (healthy VM)"] = {"bot": bench.count() - before, "manual": len(MANUAL["diagnose"]),
                                          "manual_steps": MANUAL["diagnose"]}
        for n, scenario in enumerate(FIX_WORDS):
            for kind, run in (("fix", bench.fix_flow), ("diagnose to verified fix", bench.diagnose_flow)):
                vm.heal()
                vm.break_(scenario)
                started = time.monotonic()
                count, outcome = run(scenario, f"C0{kind[:3].upper()}{n}")
                manual = MANUAL[scenario] if kind == "fix" else [*MANUAL["diagnose"], *MANUAL[scenario][1:]]
                flows[f"{kind}: {scenario}"] = {
                    "bot": count, "manual": len(manual), "verified": "Fixed and verified" in outcome,
                    "seconds_here": round(time.monotonic() - started, 2), "manual_steps": manual}
        bench.server.shutdown()
        bench.server.server_close()
    print(json.dumps({
        "benchmark": "round_trips",
        "unit": "run-commands on the VM (each 20 s to a minute on Azure)",
        "flows": flows,
        "bot_total": sum(f["bot"] for f in flows.values()),
        "manual_total": sum(f["manual"] for f in flows.values()),
        "ratio": round(sum(f["bot"] for f in flows.values()) / sum(f["manual"] for f in flows.values()), 3),
    }, indent=2, ensure_ascii=False))
    return 0 if all(f.get("verified", True) for f in flows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
