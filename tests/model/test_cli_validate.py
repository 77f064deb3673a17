"""``sekisho validate`` through the real command line entry point."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from sekisho.cli.main import main

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed"
DATA = Path(__file__).resolve().parent.parent / "data" / "manifests"

BAD = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web
  namespace: dev
spec:
  podSelector: {}
  ingress:
  - from:
    - podSelector: {}
    - ipBlock:
        cidr: 10.0.0.0/16
        except:
        - 192.168.0.0/24
"""


def test_seed_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SEED)]) == 0
    out = capsys.readouterr().out
    assert out == "ok: 4 files, 19 objects: 6 nodes, 3 namespaces, 7 pods, 3 policies (0 skipped)\n"


def test_problems_exit_2_one_line_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "policies.yaml").write_text(BAD)
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "policies.yaml"]) == 2
    captured = capsys.readouterr()
    assert captured.out == (
        "policies.yaml:14: NetworkPolicy dev/web: spec.ingress[0].from[1].ipBlock.except[0]: "
        "192.168.0.0/24 is not inside 10.0.0.0/16\n"
    )
    assert "invalid: 1 problem" in captured.err


def test_json_output_for_ci(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.yaml").write_text(BAD)
    assert (
        main(["validate", "-o", "json", str(tmp_path / "p.yaml"), str(SEED / "cluster.yaml")]) == 2
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is False
    assert doc["problems"] == [
        {
            "file": str(tmp_path / "p.yaml"),
            "line": 14,
            "kind": "NetworkPolicy",
            "name": "dev/web",
            "path": "spec.ingress[0].from[1].ipBlock.except[0]",
            "message": "192.168.0.0/24 is not inside 10.0.0.0/16",
        }
    ]
    assert doc["summary"]["files"] == 2


def test_json_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-o", "json", str(SEED)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is True and doc["problems"] == []
    assert doc["summary"] == {
        "files": 4,
        "objects": 19,
        "nodes": 6,
        "namespaces": 3,
        "pods": 7,
        "policies": 3,
        "skipped": 0,
        "unsupported": 0,
        "problems": 0,
        "warnings": 0,
    }
    assert doc["warnings"] == []


def test_verbose_lists_skipped(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-v", str(DATA / "mixed.yaml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(": ", 1)[1] for line in out[:3]] == [
        "skipped ConfigMap shop/web-config",
        "skipped Service shop/web",
        "skipped Ingress shop/web",
    ]
    assert out[3].endswith("(3 skipped)")


def test_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO((SEED / "cluster.yaml").read_text()))
    assert main(["validate", "-"]) == 0
    assert capsys.readouterr().out.startswith("ok: 1 file, 16 objects")


def test_no_path_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 2
