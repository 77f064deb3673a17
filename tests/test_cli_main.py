from __future__ import annotations

import os
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


def test_a_one_shot_command_flushes_before_its_process_ends(tmp_path: Path) -> None:
    # The console script ends a one-shot command's process without the interpreter's
    # exit: what it printed, on both streams, and its status must all get out first.
    good = tmp_path / "good.yaml"
    good.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: A_\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # pipes buffer
    ok = subprocess.run(
        [sys.executable, "-m", "sekisho", "validate", str(good)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert (ok.returncode, ok.stdout.splitlines()[-1][:3]) == (0, "ok:"), ok
    failed = subprocess.run(
        [sys.executable, "-m", "sekisho", "validate", str(bad)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert failed.returncode == 2, failed
    assert "DNS-1123" in failed.stdout + failed.stderr, failed


K8S_ONLY = """\
apiVersion: v1
kind: Pod
metadata:
  name: a
  namespace: default
  labels:
    app: a
spec:
  containers:
  - name: c
    image: nginx
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: deny
  namespace: default
spec:
  podSelector: {}
  policyTypes:
  - Ingress
"""


def _modules_after(argv: list[str], names: list[str]) -> str:
    probe = (
        "import sys\n"
        "from sekisho.cli.main import main\n"
        f"status = main({argv!r})\n"
        f"print(status, [m for m in {names!r} if m in sys.modules])\n"
    )
    return subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.splitlines()[-1]


def test_a_file_the_rust_parser_reads_loads_no_pyyaml(tmp_path: Path) -> None:
    # PyYAML (and sekisho's libyaml side) is imported only when a text goes the
    # libyaml way or a problem needs its line; a Kubernetes-only cluster in plain
    # YAML is read, validated and analysed without it.
    manifest = tmp_path / "k8s.yaml"
    manifest.write_text(K8S_ONLY)
    names = ["yaml", "sekisho.model.libyaml"]
    assert _modules_after(["validate", str(manifest)], names) == "0 []"
    assert _modules_after(["matrix", str(manifest), "-o", "summary"], names) == "0 []"
    # The control: an anchor sends the text to libyaml, which loads it.
    anchored = tmp_path / "anchored.yaml"
    anchored.write_text(K8S_ONLY.replace("app: a", "app: &x a\n    other: *x"))
    assert _modules_after(["validate", str(anchored)], names) == f"0 {names}"
