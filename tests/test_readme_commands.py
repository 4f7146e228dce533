"""README's command table is the one the registry generates (`nexy commands --markdown --table commands`,
from each item's docstring), so a new command or a changed description cannot leave it stale."""
from __future__ import annotations

from nexy.cli import main
from tests.helpers import readme_table


def test_readme_commands_table_is_current(registry):
    """The table between README's commands markers is exactly what the registry's declarations generate."""
    assert readme_table("commands") == registry.commands_table(), "README's command table is stale: run `make readme`"


def test_nexy_commands_prints_the_commands_table(capsys, registry):
    """`--table commands` prints a row per command and per fix target, each saying what its docstring says."""
    assert main(["commands", "--markdown", "--table", "commands"]) == 0
    out = capsys.readouterr().out
    assert out == registry.commands_table()
    rows = out.splitlines()[2:]
    fix_targets = registry.commands["fix"].args[0].choices
    assert len(rows) == len(registry.commands) - 1 + len(fix_targets)
    status = next(row for row in rows if row.startswith("| `/nexy status` |"))
    assert "Fast Branching section" in status and status.endswith("| 5 |")
    assert "| `/nexy fix version <version>` | the version (X.Y.Z.Build) validated strictly;" in out


def test_readme_option_rewrites_both_tables_between_their_markers(tmp_path, capsys, registry):
    """`--readme FILE` puts the current tables between the markers, leaves the rest alone, and refuses
    a file without them."""
    stale = tmp_path / "README.md"
    stale.write_text(
        "# x\n<!-- roles:begin -->\nold\n<!-- roles:end -->\nmiddle\n<!-- commands:begin -->\n<!-- commands:end -->\nend\n"
    )
    assert main(["commands", "--readme", str(stale)]) == 0
    assert stale.read_text() == (
        f"# x\n<!-- roles:begin -->\n{registry.roles_table()}<!-- roles:end -->\nmiddle\n"
        f"<!-- commands:begin -->\n{registry.commands_table()}<!-- commands:end -->\nend\n"
    )
    bare = tmp_path / "bare.md"
    bare.write_text("# no markers\n")
    assert main(["commands", "--readme", str(bare)]) == 2
    assert bare.read_text() == "# no markers\n"
    assert "no <!-- roles:begin --> ... <!-- roles:end --> markers" in capsys.readouterr().err
