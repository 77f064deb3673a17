"""Golden files under tests/golden/: compare, or rewrite with SEKISHO_UPDATE_GOLDENS=1."""

from __future__ import annotations

import os
from pathlib import Path

from sekisho.model import load_cluster
from sekisho.model.types import Cluster

ROOT = Path(__file__).resolve().parent.parent.parent
GOLDEN = ROOT / "tests" / "golden"
SEED = ROOT / "examples" / "seed"


def seed_part2() -> Cluster:
    return load_cluster([SEED / "cluster.yaml", SEED / "part2"])


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("SEKISHO_UPDATE_GOLDENS"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"{path} missing: run with SEKISHO_UPDATE_GOLDENS=1 to create it"
    want = path.read_text()
    assert text == want, f"{path} differs (SEKISHO_UPDATE_GOLDENS=1 rewrites it)"
