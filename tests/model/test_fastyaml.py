"""The direct constructor gives exactly what ``yaml.load_all(CSafeLoader)`` gives."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import sekisho.model
from sekisho.model import fastyaml, libyaml, load_paths


def _fast(text: str) -> list[object]:
    loader = libyaml.Loader(text)
    out = []
    try:
        while loader.check_node():
            node = loader.get_node()
            assert node is not None
            out.append(libyaml.construct(loader, node, []))
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


# --- the Rust fast path reads exactly what the libyaml path reads ---------------------------

REPO = Path(__file__).resolve().parents[2]
YAML_FILES = sorted(
    p
    for top in ("examples", "tests/data")
    for p in (REPO / top).rglob("*")
    if p.suffix in (".yaml", ".yml")
)


def _both(text: str) -> tuple[object, object, bool]:
    from sekisho.model.reader import ReadResult, read_text

    fast, slow = ReadResult(), ReadResult()
    read_text(text, "f.yaml", fast)
    read_text(text, "f.yaml", slow, fast=False)
    took = fastyaml.fast_documents(text) is not None
    return (fast.objects, fast.issues), (slow.objects, slow.issues), took


def test_fast_path_equals_libyaml_on_every_manifest_here() -> None:
    taken = 0
    for path in YAML_FILES:
        fast, slow, took = _both(path.read_text())
        assert fast == slow, path
        taken += took
    assert taken > len(YAML_FILES) // 2, "the fast path should take most plain manifests"


@pytest.mark.parametrize(
    "text",
    [
        "a: yes\n",
        "a: 0755\nb: 089\n",
        "a: 1:30\n",
        "a: 1e3\nb: 5e12345678\n",
        "a: 0o17\n",
        "a: !!str 80\n",
        "base: &b {x: 1}\nuse: *b\n",
        "a: {<<: {b: 1}}\n",
        "%YAML 1.1\n---\na: 1\n",
        "a: 1\n...\nb: 2\n",
        "a:\n\tb: 1\n",
        "a: 1\na: 2\n",
        "- 1\n- 2\n",
        "---\n- 1\n---\na: 1\n",
        "apiVersion: v1\nkind: List\nitems: [{kind: Namespace}]\n",
        "a: b: c\n",
        "a: [1, 2\n",
        "\ufeffa: 1\n",
        "a: 'x\u2028y'\n",
    ],
)
def test_what_the_fast_path_leaves_to_libyaml(text: str) -> None:
    assert fastyaml.fast_documents(text) is None
    fast, slow, _ = _both(text)
    assert fast == slow


@pytest.mark.parametrize(
    "indicator", [i for _, group in fastyaml._INDICATORS for i in group], ids=repr
)
def test_every_indicator_is_left_to_libyaml(indicator: str) -> None:
    """Each indicator is found, behind the shorter text searched first for it."""
    assert fastyaml._text_agrees("kind: Pod\nmetadata:\n  name: x\n")
    assert not fastyaml._text_agrees("kind: Pod\nmetadata:\n  name: x" + indicator + "y\n")


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\n",
        "---\n# comment\n\napiVersion: v1\nkind: Pod\n---\nkind: X\n",
        "---\na: 1\n--- # c\n\nc: 3\n---\na: {}\nb: []\n",
        "---\n---\nkind: A\n---\n",
        "a: 'it''s'\nb: \"\\u00e9\"\nc: |\n  x\n  y\nd: >-\n  p\n  q\n",
        "a: ~\nb: null\nc:\nd: true\nf: -3\ng: 0x1F\nh: 2024-05-01T10:00:00Z\n",
        "image: nginx:1.25\nhash: 029c4fc908\ncpu: 100m\nport: 8080\n",
    ],
)
def test_fast_path_takes_plain_manifests(text: str) -> None:
    assert fastyaml.fast_documents(text) is not None
    fast, slow, _ = _both(text)
    assert fast == slow


@pytest.mark.parametrize("seed", range(3))
def test_fast_path_equals_libyaml_on_mutated_manifests(seed: int) -> None:
    import random

    rng = random.Random(seed)
    texts = [p.read_text() for p in YAML_FILES if p.stat().st_size < 20_000]
    chars = list(" :-\n{}[]&*!|>'\"#%@`,?\t0aZ\\<yn1e.")
    took = 0
    for _ in range(300):
        text = list(rng.choice(texts))
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(text))
            text[i] = rng.choice(chars)
        mutated = "".join(text)
        fast, slow, taken = _both(mutated)
        assert fast == slow, mutated
        took += taken
    assert took > 30


def test_the_leading_zero_scan_skips_only_zeros_that_cannot_start_a_number() -> None:
    # The scan leaves out zeros whose preceding text rules a leading-zero number out;
    # the answer is the one of checking every zero before a digit or "o".
    import random
    import re

    every_zero = re.compile(r"0[0-9_oO]")

    def checked_everywhere(text: str) -> bool:
        return any(
            fastyaml._LEADING_ZERO.match(text, at)
            or (at and text[at - 1] in "+-" and fastyaml._LEADING_ZERO.match(text, at - 1))
            for at in (hit.start() for hit in every_zero.finditer(text))
        )

    rng = random.Random(13)
    chars = "00001o7_-+ .:/'\"a\n"
    found = 0
    for _ in range(20_000):
        text = "".join(rng.choice(chars) for _ in range(rng.randint(1, 12)))
        expected = checked_everywhere(text)
        assert fastyaml._has_leading_zero(text) == expected, text
        found += expected
    assert found > 1000
