"""``sekisho lab test`` and ``sekisho lab diff`` end to end through the CLI on the seed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from .conftest import ROOT, SEED, cli_env, lab_namespaces

pytestmark = pytest.mark.privileged

PART1 = [str(SEED / "cluster.yaml"), str(SEED / "part1")]
PART2 = [str(SEED / "cluster.yaml"), str(SEED / "part2")]
EXPECT = str(SEED.parent / "expect" / "seed-part2.yaml")


def _sekisho(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sekisho", *args],
        cwd=ROOT, env=cli_env(root), capture_output=True, text=True, timeout=480, check=False,
    )  # fmt: skip


def test_lab_test(lab_name: str, lab_root: Path, tmp_path: Path) -> None:
    ok = _sekisho(lab_root, "lab", "test", EXPECT, *PART2, "--name", lab_name)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok: 7 of 7 expectations hold (50 of 50 pairs)" in ok.stdout
    junit = tmp_path / "lab.xml"
    bad = _sekisho(
        lab_root, "lab", "test", EXPECT, *PART1, "--name", lab_name, "--junit", str(junit)
    )
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "seed-part2.yaml:9: dev/green -> dev/red TCP/80: expected deny, got allow" in bad.stdout
    assert "FAIL: 2 of 7 expectations hold" in bad.stdout
    assert ET.parse(junit).getroot().find("testsuite") is not None
    assert not lab_namespaces(lab_name)  # removed on exit


def test_lab_diff(lab_name: str, lab_root: Path) -> None:
    done = _sekisho(lab_root, "lab", "diff", *PART1, "--against", *PART2, "--name", lab_name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 of 4 lost pairs as diff says" in done.stdout
    assert done.stdout.count("open connection kept working") == 4
    assert not lab_namespaces(lab_name)
