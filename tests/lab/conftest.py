"""Fixtures of the lab tests: unique lab names, a private state root, leak checks."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sekisho.lab.topology import PREFIX

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed"


def lab_namespaces(name: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [
        line.split()[0]
        for line in out.stdout.splitlines()
        if line.strip() and line.split()[0].startswith(f"{PREFIX}{name}-")
    ]


def node_object(name: str, ip: str, cidr: str) -> dict[str, Any]:
    """A Node manifest with one InternalIP and one pod CIDR, as the small labs write it."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": {"podCIDR": cidr},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


def unique_name() -> str:
    return "t" + os.urandom(4).hex()[:7]


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def lab_root(tmp_path: Path) -> Path:
    return tmp_path / "labs"


@pytest.fixture
def lab_name() -> Iterator[str]:
    """A fresh lab name; whatever a test leaves behind under it is removed, then reported."""
    name = unique_name()
    yield name
    left = lab_namespaces(name)
    for ns in left:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    assert not left, f"namespaces left behind: {left}"


def cli_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["SEKISHO_LAB_ROOT"] = str(root)
    return env
