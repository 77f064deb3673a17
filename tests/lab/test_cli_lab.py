"""``sekisho lab`` commands end to end through the CLI: up, apply, probe (table/json), exec, down."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, SEED, cli_env, lab_namespaces

pytestmark = pytest.mark.privileged


def _sekisho(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sekisho", *args],
        cwd=ROOT, env=cli_env(root), capture_output=True, text=True, timeout=360, check=False,
    )  # fmt: skip


def test_lab_commands(lab_name: str, lab_root: Path) -> None:
    n = ["--name", lab_name]
    up = _sekisho(lab_root, "lab", "up", str(SEED / "cluster.yaml"), str(SEED / "part1"), *n)
    try:
        assert up.returncode == 0, up.stderr
        assert "6 nodes, 7 pods" in up.stdout
        state = json.loads((lab_root / lab_name / "state.json").read_text())
        assert set(state["namespaces"]) == set(lab_namespaces(lab_name))

        probe = _sekisho(
            lab_root, "lab", "probe", *n, "--probe", "80/TCP", "--probe", "ICMP", "-o", "json"
        )
        assert probe.returncode == 0, probe.stdout + probe.stderr
        doc = json.loads(probe.stdout)
        assert doc["pods"] == sorted(doc["pods"]) and len(doc["pods"]) == 7
        assert [(p["port"], p["protocol"]) for p in doc["probes"]] == [(80, "TCP"), (None, "ICMP")]
        for p in doc["probes"]:
            assert set(p) == {
                "port",
                "protocol",
                "ingress",
                "egress",
                "allowed",
                "observed",
                "logs",
                "logs_wrong",
            }
            assert p["logs"] == p["logs_wrong"] == []  # the seed has no Log rule
        icmp = doc["probes"][1]
        blue = doc["pods"].index("dev/blue")
        prod_blue = doc["pods"].index("prod/blue")
        assert icmp["observed"][blue][prod_blue] == "dropped"  # part1: only TCP 80 into prod
        assert doc["probes"][0]["observed"][blue][prod_blue] == "allowed"

        applied = _sekisho(lab_root, "lab", "apply", str(SEED / "part2"), *n)
        assert applied.returncode == 0, applied.stderr
        table = _sekisho(
            lab_root, "lab", "probe", *n, "--port", "80", "--from", "dev", "--to", "dev/red"
        )
        assert table.returncode == 0, table.stdout
        assert "OK: 0 wrong" in table.stdout

        ex = _sekisho(
            lab_root,
            "lab",
            "exec",
            *n,
            "dev/blue",
            "--",
            "curl",
            "-s",
            "-m",
            "2",
            "http://10.244.4.6/",
        )
        assert ex.returncode == 0
        assert json.loads(ex.stdout)["client"].startswith("10.244.3.6:")

        bad = _sekisho(
            lab_root, "lab", "apply", *n, str(SEED / "cluster.yaml"), str(ROOT / "nope.yaml")
        )
        assert bad.returncode != 0 and "nope.yaml" in bad.stderr
    finally:
        down = _sekisho(lab_root, "lab", "down", *n)
    assert down.returncode == 0, down.stderr
    assert not lab_namespaces(lab_name)


def test_probe_without_lab(lab_root: Path) -> None:
    res = _sekisho(lab_root, "lab", "probe", "--name", "nosuchlab")
    assert res.returncode == 1
    assert "no lab named 'nosuchlab' is up" in res.stderr


def test_offline_reason_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    from sekisho.lab import netns

    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    why = netns.namespaces_supported()
    assert why is not None and "root" in why
