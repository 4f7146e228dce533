"""Several VMs: the inventory and its errors, `--vm NAME` on every VM command, one queue and lease per
VM, workers per VM; VMs run in parallel while each stays strictly serialized."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bot.contract import DECISIONS_QUEUE, IO_QUEUE
from bot.errors import SettingsError
from bot.settings import load_settings
from handlers.parser import ParseError, Request
from tests.helpers import APPROVER, OPERATOR, RG, bot_messages, settings_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fleet_settings(serve_bot, vm_settings, three_vms):
    settings = vm_settings(nexy_vms_file=three_vms[1], nexy_operators=OPERATOR, nexy_approvers=APPROVER)
    serve_bot(settings)
    return settings


def _inventory_error(tmp_path, text: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError) as error:
        load_settings(_env_file=None, nexy_vms_file=str(path))
    return str(error.value)


def test_a_bad_inventory_is_refused_with_a_clear_line(tmp_path):
    """Unknown keys, bad values, duplicate VMs, bad TOML and a missing file each name the file, the VM and why."""
    assert "unknown key(s) app" in _inventory_error(tmp_path, '[vm.a]\napp = "/x"\n')
    assert "[vm.a] vm_name: an Azure resource name" in _inventory_error(tmp_path, '[vm.a]\nvm_name = "x y"\n')
    assert "[vm.a] app_dir: an absolute path" in _inventory_error(tmp_path, '[vm.a]\napp_dir = "rel"\n')
    assert "the same VM as [vm.a]" in _inventory_error(tmp_path, '[vm.a]\nvm_name = "X"\n[vm.b]\nvm_name = "X"\n')
    assert "not valid TOML" in _inventory_error(tmp_path, "[vm.a\n")
    assert "one [vm.NAME] table per VM" in _inventory_error(tmp_path, "x = 1\n")
    with pytest.raises(SettingsError, match="cannot read it"):
        load_settings(_env_file=None, nexy_vms_file=str(tmp_path / "none.toml"))


def test_todays_single_vm_settings_are_an_inventory_of_one():
    """Without an inventory file the VM of AZURE_RESOURCE_GROUP / AZURE_VM_NAME is the only one."""
    settings = load_settings(_env_file=None, azure_vm_name="Prod")
    assert settings.vm_names == ("Prod",) and settings.for_vm("prod").vm_queue == f"vm:{settings.azure_resource_group}:Prod"


def test_vm_is_taken_off_anywhere_in_the_words(parser):
    """`--vm NAME` (or `--vm=NAME`) binds wherever it is; a command about no VM refuses it."""
    fix, status = parser.parse("fix --vm vm2 version 2.4.0.240"), parser.parse("status --vm=vm3")
    assert isinstance(fix, Request) and (fix.command, fix.args, fix.vm) == ("fix", ("version", "2.4.0.240"), "vm2")
    assert isinstance(status, Request) and (status.command, status.args, status.vm) == ("status", (), "vm3")
    assert isinstance(parser.parse("status --vm"), ParseError)
    assert isinstance(parser.parse("status --vm a --vm b"), ParseError)
    refused = parser.parse("history --vm vm1")
    assert isinstance(refused, ParseError) and "takes no `--vm`" in refused.problem


def test_several_vms_and_no_vm_asks_which(fleet_settings, slack):
    """With three VMs a VM command without `--vm` asks which one, naming each; an unknown name lists them."""
    text = slack.slash_command("status").json()["text"]
    assert "Which VM?" in text and all(f"`/nexy status --vm {n}`" in text for n in ("vm1", "vm2", "vm3"))
    text = slack.slash_command("status --vm vm9").json()["text"]
    assert "no VM named `vm9`" in text and "`vm3`" in text
    assert "queued" in slack.slash_command("history").json()["text"]


def test_three_vms_run_in_parallel_each_strictly_serialized(fleet_settings, slack, azure, three_vms, tmp_path):
    """Commands to three VMs at once, one `nexy worker --vm` each: never two run-commands at once on one VM,
    while different VMs run at the same time; each report names its VM."""
    azure.delay_s = 0.4
    for n, words in enumerate(("status", "preflight", "deps", "version")):  # identical waiting checks would be joined
        for name in ("vm1", "vm2", "vm3"):
            assert "queued" in slack.slash_command(f"{words} --vm {name}", user=f"U0USER{n}").json()["text"]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "NEXY_", "AZURE_"))},
           **settings_env(fleet_settings), "PYTHONPATH": str(ROOT)}
    logs = [tmp_path / f"worker-{name}.log" for name in ("vm1", "vm2", "vm3")]
    workers = [subprocess.Popen([sys.executable, "-m", "nexy.cli", "worker", "--vm", name, "--burst"], env=env,
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log.open("w"))
               for name, log in zip(("vm1", "vm2", "vm3"), logs, strict=True)]
    for worker, log in zip(workers, logs, strict=True):
        assert worker.wait(timeout=120) == 0, log.read_text()[-2000:]
    keys = [(RG.lower(), name.lower()) for _, name, _ in three_vms[0].values()]
    assert [azure.run_count[key] for key in keys] == [4, 4, 4]
    assert [azure.max_concurrency[key] for key in keys] == [1, 1, 1]
    runs = azure.history
    overlapping = {frozenset((a["vm"], b["vm"])) for a in runs for b in runs
                   if a["vm"] != b["vm"] and a["start"] < b["end"] and b["start"] < a["end"]}
    assert len(overlapping) == 3, overlapping  # every pair of VMs ran at the same time
    footers = " ".join(str(m.blocks) for m in bot_messages(slack))
    assert all(f"status --vm {name}" in footers for name in ("vm1", "vm2", "vm3"))


def test_a_fix_on_one_vm_is_planned_applied_and_verified_there(fleet_settings, slack, work, azure, three_vms):
    """`fix config-perms --vm vm2`: the plan, the apply and the verify run on vm2 only; one approval heals it."""
    vms = three_vms[0]
    vm2 = vms["vm2"][2]
    vm2.break_("config-perms")
    queues = [DECISIONS_QUEUE, IO_QUEUE, *fleet_settings.vm_queues]
    assert "queued" in slack.slash_command("fix config-perms --vm vm2", user=OPERATOR).json()["text"]
    work(fleet_settings, queues)
    plan = bot_messages(slack)[-1]
    assert "owner root:azureuser  mode 640" in str(plan.blocks), str(plan.blocks)
    slack.reaction_added("white_check_mark", user=APPROVER, channel="C0OPS", ts=plan.ts)
    work(fleet_settings, queues)
    text = "\n".join(f"{m.text}\n{m.blocks}" for m in bot_messages(slack))
    assert "Fixed and verified" in text, text[-3000:]
    assert vm2.service_active() and httpx.get(vm2.health_urls[0]).status_code == 200
    assert {h["vm"] for h in azure.history} == {"Nexy2"} and len(azure.history) == 2


def test_home_and_queue_name_each_vm(fleet_settings, slack, work):
    """The Home tab has a section per VM with what waits for it; `/nexy queue --vm vm3` lists vm3's queue only."""
    slack.slash_command("status --vm vm2")
    slack.slash_command("queue --vm vm3")
    slack.app_home_opened(user="U0BOB", event_id="Ev0HOMEVMS")
    work(fleet_settings, [IO_QUEUE])
    text = str(slack.home_views["U0BOB"]["blocks"])
    assert all(f"On the VM `{name}`" in text for name in ("vm1", "vm2", "vm3"))
    assert text.index("On the VM `vm2`") < text.index("`status --vm vm2`") < text.index("On the VM `vm3`")
    listing = next(m for m in slack.messages("C0OPS") if "Run-command queue" in m.text)
    assert "vm3" in listing.text and "nothing waiting" in listing.text


def test_a_worker_for_an_unknown_vm_refuses_naming_the_vms(fleet_settings, tmp_path):
    """`nexy worker --vm nope` exits 2 at once, naming the inventory's VMs; nothing is served."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "NEXY_", "AZURE_"))},
           **settings_env(fleet_settings), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "nexy.cli", "worker", "--vm", "nope", "--burst"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "the VMs are vm1, vm2, vm3" in done.stderr
