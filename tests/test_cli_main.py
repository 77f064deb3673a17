from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_start_up_imports_only_what_the_command_uses(tmp_path: Path) -> None:
    # Start-up is part of every command: the group imports no command, no layer and no
    # numpy, and validating manifests (selectors parsed, never evaluated over a table)
    # runs without numpy, nor OpenSSL's hashes (no pod here needs an address hashed).
    # A fresh interpreter, so what the tests imported does not count.
    manifest = tmp_path / "ns.yaml"
    manifest.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n")
    probe = (
        "import sys\n"
        "from sekisho.cli.main import main\n"
        "at_start = sorted(m for m in sys.modules if m == 'numpy' or m.startswith('sekisho.'))\n"
        f"status = main(['validate', {str(manifest)!r}])\n"
        "print(at_start, status, 'numpy' in sys.modules, 'hashlib' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines()[-1] == "['sekisho.cli', 'sekisho.cli.main'] 0 False False", out
