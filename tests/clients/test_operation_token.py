"""What the worker keeps in Redis while Azure runs an apply: the poller's continuation token (a managed run
command's name, for a script with a secret). An
azure-core before 1.38 pickled the whole initial response into it, request body included (the
run-command's parameters: a new Gemini key); the pinned range excludes those, and a real
`fix api-key` through the Azure emulator leaves the key nowhere in Redis, during or after."""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

from clients.managed import is_managed_token
from sandbox.vm import new_gemini_key
from tests.helpers import APPROVER, OPERATOR, SECOND_APPROVER, bot_messages, redis_dump, type_key

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
_BASE64 = re.compile(r"[A-Za-z0-9+/=_-]{24,}")


def test_the_pinned_azure_core_keeps_no_request_body_in_its_token():
    """pyproject allows no azure-core before 1.38 (pickled tokens), and allows the installed one."""
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (pin,) = [Requirement(d) for d in dependencies if Requirement(d).name == "azure-core"]
    assert not pin.specifier.contains("1.37.0") and not pin.specifier.contains("1.32.0")
    assert pin.specifier.contains(version("azure-core"))


def _decoded(dump: str) -> str:
    """The dump and every base64 word in it decoded (a continuation token is base64)."""
    parts = [dump]
    for word in _BASE64.findall(dump):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                parts.append(decode(word + "=" * (-len(word) % 4)).decode("utf-8", "replace"))
            except (binascii.Error, ValueError):
                pass
    return "\n".join(parts)


def test_the_key_is_nowhere_in_redis_during_and_after_the_apply(serve_bot, vm_settings, slack, work, vm, azure, redis):
    """Every Redis key and value, base64 decoded too, read all along the apply and after: no key."""
    settings = vm_settings(nexy_operators=OPERATOR, nexy_approvers=f"{APPROVER},{SECOND_APPROVER}")
    serve_bot(settings)
    vm.break_("api-key-expired")
    key = new_gemini_key()
    slack.slash_command("fix api-key", user=OPERATOR)
    type_key(slack, key)
    work(settings)
    plan = bot_messages(slack)[-1]
    azure.delay_s = 2.0  # the apply stays in flight: its operation (and token) sits in Redis meanwhile
    dumps: list[str] = []
    done = threading.Event()

    tokens: list[str] = []

    def watch() -> None:
        while not done.is_set():
            # the cheap read first: a whole dump may take longer than the apply on a loaded machine
            tokens.extend(json.loads(raw)["token"] for raw in redis.hgetall("nexy:operations").values())
            dumps.append(redis_dump(redis) + "\n".join(k.decode() for k in redis.scan_iter()))
            done.wait(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    slack.reaction_added("white_check_mark", user=SECOND_APPROVER, channel="C0OPS", ts=plan.ts)  # fix api-key: two
    work(settings)
    done.set()
    watcher.join()
    dumps.append(redis_dump(redis))
    assert vm.gemini_key == key
    assert tokens, "the apply's operation was never seen in Redis"
    # a script with a secret runs as a managed run command: its token names the resource, nothing more
    assert all(is_managed_token(t) and key not in t for t in tokens), tokens
    for dump in dumps:
        assert key not in _decoded(dump)
