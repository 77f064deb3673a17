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


def test_a_kubernetes_only_cluster_loads_no_pyyaml_nor_calico_nor_cluster_wide_policies(
    tmp_path: Path,
) -> None:
    # PyYAML (and sekisho's libyaml side) is imported only when a text goes the
    # libyaml way or a problem needs its line; Calico's and the cluster-wide policies'
    # modules (model and compiler) only when an object of their kinds is read. A
    # Kubernetes-only cluster in plain YAML is validated and analysed without any.
    manifest = tmp_path / "k8s.yaml"
    manifest.write_text(K8S_ONLY)
    yaml_side = ["yaml", "sekisho.model.libyaml"]
    calico = ["sekisho.model.calico", "sekisho.semantics.calico"]
    npa = ["sekisho.model.npa", "sekisho.semantics.npa"]
    # nor the file watcher's inotify (ctypes, subprocess): one-shot commands do not watch.
    names = [*yaml_side, *calico, *npa, "inotify_simple"]
    assert _modules_after(["validate", str(manifest)], names) == "0 []"
    assert _modules_after(["matrix", str(manifest), "-o", "summary"], names) == "0 []"
    # The controls: an anchor sends the text to libyaml, which loads PyYAML; a Calico
    # object and a cluster-wide policy load their modules.
    anchored = tmp_path / "anchored.yaml"
    anchored.write_text(K8S_ONLY.replace("app: a", "app: &x a\n    other: *x"))
    assert _modules_after(["validate", str(anchored)], names) == f"0 {yaml_side}"
    calico_file = tmp_path / "calico.yaml"
    calico_file.write_text(
        K8S_ONLY.replace("networking.k8s.io/v1", "projectcalico.org/v3").replace(
            "  podSelector: {}\n  policyTypes:\n  - Ingress\n", "  types:\n  - Ingress\n"
        )
    )
    assert _modules_after(["matrix", str(calico_file), "-o", "summary"], names) == f"0 {calico}"
    npa_file = tmp_path / "npa.yaml"
    npa_file.write_text(
        K8S_ONLY.split("---")[0]
        + "---\napiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\n"
        "metadata:\n  name: x\nspec:\n  tier: Admin\n  priority: 1\n  subject:\n"
        "    namespaces: {}\n  ingress:\n  - action: Deny\n    from:\n    - namespaces: {}\n"
    )
    assert _modules_after(["matrix", str(npa_file), "-o", "summary"], names) == f"0 {npa}"


def test_the_matrix_loads_no_walk_and_the_walk_no_matrix(tmp_path: Path) -> None:
    # The package `sekisho.semantics` imports each public name on first use: the matrix
    # needs neither the walk (its 5 record types) nor the endpoints, the walk (trace)
    # neither the matrix engine nor numpy. The control: each loads its own.
    manifest = tmp_path / "k8s.yaml"
    manifest.write_text(K8S_ONLY)
    walk = ["sekisho.semantics.verdict", "sekisho.semantics.endpoint"]
    table = ["sekisho.semantics.matrix", "numpy"]
    names = [*walk, *table]
    assert _modules_after(["matrix", str(manifest), "-o", "summary"], names) == f"0 {table}"
    trace = ["trace", str(manifest), "--from", "default/a", "--to", "default/a", "--port", "80"]
    assert _modules_after(trace, names) == f"0 {walk}"


def test_the_semantics_package_keeps_the_function_verdict() -> None:
    # Importing the module `sekisho.semantics.verdict` sets it on its package under the
    # name of the function; the package keeps the function, whatever was imported first.
    probe = (
        "import sekisho.semantics.verdict as module\n"
        "import sekisho.semantics\n"
        "from sekisho.semantics import verdict, walk\n"
        "import sys\n"
        "m = sys.modules['sekisho.semantics.verdict']\n"
        "print(verdict is m.verdict, module is m.verdict, sekisho.semantics.walk is m.walk,\n"
        "      walk is m.walk, sorted(sekisho.semantics.__all__) == sekisho.semantics.__all__,\n"
        "      all(hasattr(sekisho.semantics, n) for n in sekisho.semantics.__all__))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["True"] * 6, out


def test_the_matrix_builds_no_dataclass_at_import(tmp_path: Path) -> None:
    # A @dataclass compiles its generated methods at every start (0.6 ms a class, 1.4
    # ms frozen): the record types on the matrix's path are sekisho.records.Record
    # subclasses, whose methods are written; `dataclasses` itself, `json` (its
    # decoder's regexes) and orjson (which imports both) are imported on use only.
    manifest = tmp_path / "k8s.yaml"
    manifest.write_text(K8S_ONLY)
    probe = (
        "import dataclasses, sys\n"
        "built = []\n"
        "process = dataclasses._process_class\n"
        "def counted(cls, *args):\n"
        "    built.append(f'{cls.__module__}.{cls.__qualname__}')\n"
        "    return process(cls, *args)\n"
        "dataclasses._process_class = counted\n"
        "from sekisho.cli.main import main\n"
        f"status = main(['matrix', {str(manifest)!r}, '-o', 'summary'])\n"
        "print(status, sorted(b for b in built if b.startswith('sekisho.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.splitlines()[-1]
    assert out == "0 []", out
    names = ["dataclasses", "json", "orjson"]
    assert _modules_after(["matrix", str(manifest), "-o", "summary"], names) == "0 []"
    # The control: a JSON file is read by orjson.
    as_json = tmp_path / "k8s.json"
    as_json.write_text('{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}')
    assert _modules_after(["matrix", str(as_json), "-o", "summary"], names) == f"0 {names}"
