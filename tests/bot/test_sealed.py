"""A key typed in the form: sealed with a key of its own (NEXY_SEAL_KEY, else a generated file of
mode 600 under NEXY_DATA_DIR), and forgotten everywhere once its plan is applied, rejected or
superseded: its sealed copy is deleted and no redaction list keeps the value."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.redaction import is_remembered
from bot.sealed import KEY_FILE, SealedStore
from sandbox.vm import new_gemini_key
from tests.helpers import APPROVER, OPERATOR, approve, bot_messages, type_key


def _plan_for(slack, work, settings, key: str):
    slack.slash_command("fix api-key", user=OPERATOR)
    type_key(slack, key)
    work(settings)
    return next(m for m in reversed(bot_messages(slack)) if m.text.startswith(":clipboard: Plan"))


def _sealed(redis) -> list[bytes]:
    return list(redis.scan_iter("nexy:sealed:*"))


def test_a_rejected_key_is_forgotten_and_its_seal_deleted(fix_settings, slack, work, vm, redis):
    """Rejected: the sealed copy is gone and this process (web and worker alike) holds the key no more."""
    vm.break_("api-key-expired")
    key = new_gemini_key()
    plan = _plan_for(slack, work, fix_settings, key)
    assert _sealed(redis)
    slack.reaction_added("x", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(fix_settings)
    assert not _sealed(redis) and not is_remembered(key)


def test_an_applied_key_is_forgotten(fix_settings, slack, work, vm, redis):
    """Applied: the key is on the VM, nowhere sealed, and in no redaction list."""
    vm.break_("api-key-expired")
    key = new_gemini_key()
    plan = _plan_for(slack, work, fix_settings, key)
    approve(slack, work, fix_settings, plan)
    assert vm.gemini_key == key
    assert not _sealed(redis) and not is_remembered(key)


def test_a_superseded_key_is_forgotten(fix_settings, slack, work, vm, redis):
    """A second key typed for the same fix supersedes the first plan: the first key is forgotten."""
    vm.break_("api-key-expired")
    first, second = new_gemini_key(), new_gemini_key()
    _plan_for(slack, work, fix_settings, first)
    _plan_for(slack, work, fix_settings, second)
    assert not is_remembered(first) and len(_sealed(redis)) == 1


def test_the_seal_key_is_a_private_file_of_its_own(make_settings, redis, tmp_path):
    """Without NEXY_SEAL_KEY, one generated file (mode 600) keys web and worker alike; the signing secret does not."""
    settings = make_settings(nexy_data_dir=str(tmp_path / "data"))
    web, worker = SealedStore.of(redis, settings), SealedStore.of(redis, settings)
    ref = web.seal("plain-looking-value-0042", 60)
    assert worker.unseal(ref) == "plain-looking-value-0042"
    path = Path(settings.nexy_data_dir) / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and [p.name for p in path.parent.iterdir()] == [KEY_FILE]
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"nexy-ops sealed secrets v1").derive(
        (settings.slack_signing_secret or "").encode()
    )
    with pytest.raises(InvalidToken):
        Fernet(base64.urlsafe_b64encode(derived)).decrypt(redis.get(f"nexy:sealed:{ref}"))


def test_nexy_seal_key_is_used_when_set(make_settings, redis, tmp_path):
    """With NEXY_SEAL_KEY set no key file is written, and that key opens the seal."""
    chosen = Fernet.generate_key().decode()
    settings = make_settings(nexy_data_dir=str(tmp_path / "data"), nexy_seal_key=chosen)
    ref = SealedStore.of(redis, settings).seal("plain-looking-value-0043", 60)
    assert Fernet(chosen.encode()).decrypt(redis.get(f"nexy:sealed:{ref}")) == b"plain-looking-value-0043"
    assert not (Path(settings.nexy_data_dir) / KEY_FILE).exists()
