"""The sandbox's run-commands see the simulated VM at its production paths (a private mount
namespace), so scripts, plans and reports show /home/azureuser/voice-assistant and
/etc/systemd/system, never the sandbox's folders, and the fixes still heal the VM."""
from __future__ import annotations

import pytest

from sandbox.vm import SimulatedVM
from tests.helpers import approve, ask, bot_messages


@pytest.fixture
def vm(tmp_path):
    """A simulated VM whose run-commands run at the production paths (skipped where namespaces are refused)."""
    machine = SimulatedVM(tmp_path / "vm", production_paths=True).create()
    if not machine.production_paths:
        machine.stop()
        pytest.skip("this host refuses private mount namespaces")
    yield machine
    machine.stop()


@pytest.mark.parametrize("scenario, path", [
    ("config-perms", "/home/azureuser/voice-assistant/config.env"),
    ("execstart-drift", "/etc/systemd/system/voice-assistant.service"),
    ("deps-mismatch", "cd /home/azureuser/voice-assistant"),
    ("stale-version", "cd /home/azureuser/voice-assistant && bash scripts/update_server_version.sh"),
])
def test_plans_and_reports_show_production_paths_and_heal(fix_settings, slack, work, vm, scenario, path):
    """Diagnose, plan and apply name the production paths only, and the VM is healed."""
    vm.break_(scenario)
    ask(slack, work, fix_settings, "diagnose")
    plan = bot_messages(slack)[-1]
    assert plan.text.startswith(":clipboard: Plan") and path in str(plan.blocks)
    text = approve(slack, work, fix_settings, plan)
    assert "Fixed and verified" in text, text[-3000:]
    assert str(vm.root) not in text + str(plan.blocks)
    assert vm.service_active()
