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


# --- hostile input: refused within a second, located, exit 2 ---------------------------------


def _laughs(levels: int, fanout: int = 9, kind: str = "ConfigMap") -> str:
    """A "billion laughs": each anchor a list of ``fanout`` aliases of the one before."""
    lines = [
        "apiVersion: v1",
        f"kind: {kind}",
        "metadata: {name: lol, namespace: default}",
        "data:",
        "  a0: &a0 [" + ", ".join(['"lol"'] * fanout) + "]",
    ]
    for i in range(1, levels + 1):
        lines.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fanout) + "]")
    return "\n".join(lines) + "\n"


def _validate(tmp_path: Path, name: str, data: str | bytes) -> tuple[int, str]:
    from sekisho.cli.main import main

    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    out = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(["validate", str(path)])
    return code, out.getvalue()


def test_billion_laughs_in_a_skipped_configmap_is_refused_fast(tmp_path: Path) -> None:
    # 9**9 = 387 million strings if expanded; the API server refuses it, so does sekisho.
    code, out = _validate(tmp_path, "laughs.yaml", _laughs(9))
    assert code == 2
    first = out.splitlines()[0]
    assert first.startswith(f"{tmp_path / 'laughs.yaml'}:7: YAML error: excessive aliasing")
    assert "document contains excessive aliasing" in first


def test_billion_laughs_in_a_pod_and_the_next_document_still_read(tmp_path: Path) -> None:
    text = _laughs(8, kind="Pod") + "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n"
    result = load_paths([_write(tmp_path, "pod.yaml", text)])
    assert [(p.line, p.message.split(":")[0]) for p in result.problems] == [(7, "YAML error")]


def test_self_containing_anchor_is_refused(tmp_path: Path) -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: &x {b: *x}\n"
    result = load_paths([_write(tmp_path, "loop.yaml", text)])
    assert [(p.line, p.message) for p in result.problems] == [
        (4, "YAML error: an anchor's value contains an alias of itself (column 7)")
    ]


def test_aliases_the_api_server_takes_are_read(tmp_path: Path) -> None:
    # Ordinary reuse of labels, and two levels of ten aliases (1,320 of 1,373 nodes
    # from aliases: 96%) are accepted by go-yaml's limit; a third level (99.5%) is not.
    labels = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: Pod, metadata: {name: a, namespace: d, labels: &l {app: web}},"
        " spec: {containers: [{name: c}]}}\n"
        "- {apiVersion: v1, kind: Pod, metadata: {name: b, namespace: d, labels: *l},"
        " spec: {containers: [{name: c}]}}\n"
    )
    result = load_paths([_write(tmp_path, "ok.yaml", labels)])
    assert result.valid and result.cluster is not None
    assert [p.labels for p in result.cluster.pods] == [{"app": "web"}] * 2
    assert load_paths([_write(tmp_path, "two.yaml", _laughs(2, fanout=10))]).valid
    assert not load_paths([_write(tmp_path, "three.yaml", _laughs(3, fanout=10))]).valid


@pytest.mark.parametrize(
    ("name", "data", "where", "message"),
    [
        ("deep.yaml", "[" * 100_000, ":1:", "exceeded maximum nesting depth"),
        ("deep.json", "[" * 100_000 + "]" * 100_000, ":1:", "exceeded maximum nesting depth"),
        ("deepmap.yaml", "x: " + "{a: " * 5000 + "1" + "}" * 5000, ":1:", "nesting depth"),
        ("indent.yaml", "".join("  " * i + "- \n" for i in range(3000)), ":1000:", "nesting"),
        ("binary.yaml", bytes(range(256)) * 100, ":2:", "byte 0x80 at column 118"),
        ("nul.yaml", "apiVersion: v1\nkind: Pod\x00\n", ":2:", "#x0000: control characters"),
        ("late.yaml", b"kind: Pod\nmetadata:\n  name: \xff\n", ":3:", "byte 0xff at column 9"),
    ],
)
def test_deep_nesting_and_garbage_are_located_problems(
    tmp_path: Path, name: str, data: str | bytes, where: str, message: str
) -> None:
    code, out = _validate(tmp_path, name, data)
    assert code == 2
    first = out.splitlines()[0]
    assert first.startswith(str(tmp_path / name) + where), first
    assert message in first


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("seed", range(3))
def test_random_bytes_are_a_located_problem(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    garbage = bytes(rng.randrange(256) for _ in range(50_000))
    printable = bytes(rng.choice(b" :-\n{}[]&*!|>'\"#%@`,?\t0aZ\\<\x01\x7f") for _ in range(50_000))
    for name, data in (("bin.yaml", garbage), ("bin.json", garbage), ("noise.yaml", printable)):
        code, out = _validate(tmp_path, name, data)
        assert code == 2
        assert out.startswith(f"{tmp_path / name}:"), out[:200]
        assert out.split(":")[1].isdigit(), out[:200]
