"""Wrong values anywhere never crash the loader: they become problems (or a valid cluster)."""

from __future__ import annotations

import copy
import io
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from sekisho.errors import ManifestError
from sekisho.model import cluster_from_objects, load_paths

ROOT = Path(__file__).resolve().parents[2]
FILES = [
    ROOT / "tests" / "data" / "manifests" / "mixed.yaml",
    ROOT / "tests" / "data" / "manifests" / "kubectl-get-all.yaml",
    ROOT / "examples" / "seed" / "cluster.yaml",
    ROOT / "examples" / "seed" / "part2" / "allow-tcp-80-from-blue-to-green.yaml",
    ROOT / "examples" / "seed" / "part2" / "allow-ingresscontroller-traffic.yaml",
]
WRONG: list[Any] = [
    None,
    0,
    -1,
    70000,
    "",
    "x",
    "10.0.0.1",
    True,
    1.5,
    [],
    {},
    [None],
    [{}],
    {"a": None},
]


def _objects() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in FILES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "List":
                out += doc["items"]
            elif doc:
                out.append(doc)
    return out


def _mutate(obj: Any, rng: random.Random) -> None:
    while isinstance(obj, dict | list) and obj:
        key = rng.choice(list(obj)) if isinstance(obj, dict) else rng.randrange(len(obj))
        if rng.random() < 0.4 or not isinstance(obj[key], dict | list):
            obj[key] = copy.deepcopy(rng.choice(WRONG))
            return
        obj = obj[key]


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed-{s}") for s in range(4)])
def test_mutated_objects_never_crash(seed: int) -> None:
    rng = random.Random(seed)
    base = _objects()
    for _ in range(60):
        objs = copy.deepcopy(base)
        for _ in range(rng.randint(1, 3)):
            _mutate(rng.choice(objs), rng)
        try:
            cluster_from_objects(objs)
        except ManifestError as exc:
            assert exc.problems and all(str(p) for p in exc.problems)


def test_mutated_text_never_crashes() -> None:
    rng = random.Random(7)
    texts = [p.read_text() for p in FILES]
    chars = list(" :-\n{}[]&*!|>'\"#%@`,?\t0aZ\\<")
    for _ in range(200):
        text = list(rng.choice(texts))
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(text))
            text[i] = rng.choice(chars)
        result = load_paths(["-"], stdin=io.StringIO("".join(text)))
        assert (result.cluster is None) == bool(result.problems)
