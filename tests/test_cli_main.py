from __future__ import annotations

import subprocess
import sys

from sekisho.cli.main import COMMANDS, main


def test_help_lists_every_command_without_importing_them(capsys: object) -> None:
    before = set(sys.modules)
    assert main(["--help"]) == 0
    loaded = set(sys.modules) - before
    assert not any(m.startswith("sekisho.cli.") and m != "sekisho.cli.main" for m in loaded)


def test_python_dash_m_runs_the_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sekisho", "--version"], capture_output=True, text=True, check=True
    )
    assert "sekisho" in out.stdout


def test_command_table_names_modules_under_cli() -> None:
    for module, _attr, _help in COMMANDS.values():
        assert module.startswith("sekisho.cli.")
