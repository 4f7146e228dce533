"""README's table of who may do what from where is the one the registry generates (`nexy commands
--markdown`), so a new command or a changed role cannot leave it stale."""
from __future__ import annotations

from nexy.cli import main
from tests.helpers import readme_table


def test_readme_roles_table_is_current(registry):
    """The table between README's roles markers is exactly what the registry's declarations generate."""
    assert readme_table("roles") == registry.roles_table(), "README's roles table is stale: run `make readme`"


def test_nexy_commands_prints_the_table(capsys, registry):
    """`nexy commands --markdown` prints the table, one row per registered command and per button."""
    assert main(["commands", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out == registry.roles_table()
    for command in registry.commands.values():
        assert f"`{'/nexy fix <target>' if command.subcommands else command.usage}`" in out
    assert "| `/nexy history all [count]` | `NEXY_OPERATORS` | every channel's (reads only) |" in out
