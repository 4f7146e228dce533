"""Runbook 6, Gemini API Key Expired, and 6.3, TextProcessor Init Failure: a new key.

The key is typed in a Slack modal (never in the channel), sealed until the apply
(`bot/sealed.py`), smoke-tested against Gemini when the plan is made (from the worker) and again
on the VM before anything changes, and sent to the VM as a managed Run Command's protected parameter, never inside
the script text. Plan: `api_key_plan.sh` (the guardrails, a fingerprint of config.env, whether it
already holds this key). Apply: `api_key_apply.sh` (smoke test, the key replaced in place,
restart under the 0.1 preflight, verify the journal is free of both symptoms).
"""

from __future__ import annotations

import re

from bot.item import Assessment, Fix, SecretInput, Symptom, fix, script
from bot.settings import Settings
from clients import gemini_client
from runbook.restart import verify_commands

KEY_SHAPE = r"AIza[0-9A-Za-z_-]{35}"
"""A Google API key: `AIza` and 35 letters, digits, `_` or `-`."""


@fix
class ApiKey(Fix):
    """fix api-key: a new GEMINI_API_KEY typed in a private form, smoke-tested, then restart under the preflight

    the new key is typed in a private Slack form (never in the channel), smoke-tested against Gemini
    (`NEXY_GEMINI_URL`) before any plan, sealed until the apply (with `NEXY_SEAL_KEY` or the generated
    `NEXY_DATA_DIR/seal.key`) and sent to the VM as a protected parameter of a managed Run Command (never an action
    Run Command's parameters), never in the script text and never on a
    VM command line (the scripts compare and write it with bash builtins; curl reads its header from stdin);
    forgotten and its seal deleted once the plan is applied, rejected, superseded or expired; apply: a smoke test
    from the VM before any change, the key replaced in place (no temporary copy of `config.env`), restart under the
    preflight, verify the journal is free of `API_KEY_INVALID` and TextProcessor errors (runbook 6 and 6.3)
    """

    command = "fix api-key"
    section = "6"
    title = "Gemini API Key Expired / TextProcessor Init Failure"
    approvals = 2  # it restarts with a new key: two people approve
    plan_script = script(__file__, "api_key_plan")
    apply_script = script(__file__, "api_key_apply")
    symptoms = (
        Symptom(
            "6.3",
            "TextProcessor Init Failure",
            r"Не удалось инициализировать TextProcessor|TextProcessor.*(fail|error|Error)|ChatGoogleGenerativeAIError",
            fix="fix api-key",
        ),
        Symptom("6", "Gemini API Key Expired", r"API_KEY_INVALID|API key expired", fix="fix api-key", rank=1),
    )
    secret = SecretInput(
        parameter="NEXY_GEMINI_KEY",
        title="New Gemini API key",
        label="GEMINI_API_KEY",
        hint=(
            "It is never posted: it goes to the VM as a protected run-command parameter after a smoke test, "
            "and the plan waits for an approver."
        ),
        pattern=KEY_SHAPE,
        expected="a Google API key: AIza and 35 letters, digits, _ or -",
    )

    def check_secret(self, settings: Settings, value: str) -> str:
        """The smoke test before any plan: a key Gemini refuses gets no plan and no run-command."""
        if not re.fullmatch(KEY_SHAPE, value):
            return f"that is not {self.secret.expected if self.secret else 'a key'}."
        result = gemini_client.smoke(settings.nexy_gemini_url, value, settings.nexy_gemini_timeout_s)
        if result.passed:
            return ""
        if result.outcome is gemini_client.SmokeOutcome.REFUSED:
            return f"Gemini refused the new key (HTTP {result.status}: {result.detail}). Nothing changed; type another."
        status = f", HTTP {result.status}" if result.status else ""
        detail = f": {result.detail}" if result.detail else ""
        return (
            f"the smoke test could not reach Gemini ({result.outcome.value}{status}{detail}); "
            "nothing changed. Check NEXY_GEMINI_URL and the worker's network, then try again."
        )

    def commands(self, settings: Settings, args: tuple[str, ...] = ()) -> list[str]:
        cfg = f"{settings.nexy_app_dir}/config.env"
        return [
            f"curl -X POST {settings.nexy_gemini_url}  (smoke test with the new key, from the VM)",
            f"GEMINI_API_KEY=<the new key> in {cfg} (in place: owner and mode kept)",
            "preflight (runbook 0.1); restart only if it passes",
            f"sudo systemctl restart {settings.nexy_service}",
            *verify_commands(settings),
        ]

    def assess(self, facts: dict[str, str], settings: Settings, args: tuple[str, ...] = ()) -> Assessment:
        cfg = f"{settings.nexy_app_dir}/config.env"
        if facts.get("config_sha", "missing") == "missing":
            return Assessment(False, blocked=f"`{cfg}` does not exist: restore it first (runbook 0.1).")
        if facts.get("key_matches") == "yes" and facts.get("active") == "active":
            return Assessment(False)
        state = {
            "present": "set",
            "placeholder": "a placeholder",
            "missing": "missing",
            "unreadable": "unreadable",
        }.get(facts.get("pf_api_key", ""), "unknown")
        notes = [
            "the new key passed a Gemini smoke test; it is tested again on the VM before any change",
            f"service is {facts.get('active', 'unknown')}",
        ]
        failing = facts.get("pf_failed", "")
        if failing and failing != "api_key":
            notes.append(
                f"the 0.1 guardrail `{failing}` fails: the key would be written but the service not "
                "restarted until it passes"
            )
        return Assessment(
            True,
            fingerprint=facts.get("config_sha", ""),
            diff=(
                f"- GEMINI_API_KEY in {cfg}: the current key ({state})",
                f"+ GEMINI_API_KEY in {cfg}: the key typed in the form",
            ),
            notes=tuple(notes),
        )

    def apply_parameters(self, settings: Settings, args: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        return (("NEXY_GEMINI_URL", settings.nexy_gemini_url),)

    def before(self, state: dict[str, str]) -> str:
        return f"GEMINI_API_KEY {state.get('pf_api_key', 'unknown')}"
