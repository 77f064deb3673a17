"""The direct constructor gives exactly what ``yaml.load_all(CSafeLoader)`` gives."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import sekisho.model
from sekisho.model import fastyaml, load_paths


def _fast(text: str) -> list[object]:
    loader = fastyaml.Loader(text)
    out = []
    try:
        while loader.check_node():
            node = loader.get_node()
            assert node is not None
            out.append(fastyaml.construct(loader, node, []))
    finally:
        loader.dispose()
    return out


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a: 1\nb: '1'\nc: 0\nd: -3\ne: 1_000\nf: 0755\ng: 0x1F\n", id="ints"),
        pytest.param("a: 1.5\nb: .inf\nc: 1e3\n", id="floats"),
        pytest.param("a: yes\nb: No\nc: on\nd: TRUE\ne: false\nf: 'true'\n", id="bools"),
        pytest.param("a: ~\nb: null\nc:\nd: ''\n", id="nulls"),
        pytest.param("t: 2024-05-01T10:00:00Z\nd: 2024-05-01\n", id="timestamps"),
        pytest.param(
            "base: &b {x: 1, y: [1, 2]}\nuse: *b\nmerged:\n  <<: *b\n  z: 3\n", id="anchors-merge"
        ),
        pytest.param("a: !!str 80\nb: !!int '80'\n", id="explicit-tags"),
        pytest.param("- [a, {b: c}]\n- {1: one, 2: two}\n", id="nested-and-int-keys"),
        pytest.param("a: 1\n---\n---\nb: [x]\n", id="multi-doc-with-empty"),
        pytest.param("s: !!set {a, b}\n", id="set"),
    ],
)
def test_same_as_pyyaml(text: str) -> None:
    assert _fast(text) == list(yaml.load_all(text, Loader=yaml.CSafeLoader))


def test_duplicate_keys_are_reported(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  labels:\n    x: '1'\n    x: '2'\n"
    )
    result = load_paths([tmp_path / "m.yaml"])
    assert [str(p).split(": ", 1)[1] for p in result.problems] == [
        'Namespace a: metadata.labels.x: duplicate field "x" (the last one would win)'
    ]
    assert result.problems[0].line == 7


def test_json_problems_have_lines(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(
        '{\n  "apiVersion": "networking.k8s.io/v1",\n  "kind": "NetworkPolicy",\n'
        '  "metadata": {"name": "p"},\n  "spec": {\n    "podSelector": {},\n'
        '    "ingress": [{"ports": [{"port": 0}]}]\n  }\n}\n'
    )
    (problem,) = load_paths([tmp_path / "p.json"]).problems
    assert (problem.line, problem.path) == (7, "spec.ingress[0].ports[0].port")


def test_public_names_are_sorted_and_exported() -> None:
    names = sekisho.model.__all__
    # isort-style order: CONSTANTS, Classes, functions.
    assert names == sorted(names, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    for name in names:
        assert getattr(sekisho.model, name) is not None
