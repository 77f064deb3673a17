"""The model's line-by-line reader of plain block YAML equals libyaml, or steps aside.

``sekisho.model.fastyaml.plain_documents`` reads manifests in the plain block
subset of YAML without building libyaml's node tree (the matrix command's
start-up on big files); for any text it returns either exactly what
``yaml.CSafeLoader`` gives (values, types, document lines) or None, and the
reader then parses with libyaml. These tests hold it to that on hand-written
edge cases and on random documents in several layouts, and check that loading
a realistic cluster through it gives the same cluster as libyaml.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sekisho.model import fastyaml, load_paths

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import generator


def libyaml(text: str) -> list[tuple[Any, int]] | None:
    """What the libyaml path gives: (value, 1-based line of the root node) per document."""
    try:
        loader = yaml.CSafeLoader(text)
        out = []
        try:
            while loader.check_node():
                node = loader.get_node()
                out.append((loader.construct_document(node), node.start_mark.line + 1))
        finally:
            loader.dispose()
    except yaml.YAMLError:
        return None
    return out


def same(a: object, b: object) -> bool:
    """Equal with equal types all the way down (True is not 1, 1 is not 1.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(
            same(k, k2) and same(a[k], b[k2]) for k, k2 in zip(a, b, strict=True)
        )
    if isinstance(a, list | tuple):
        assert isinstance(b, list | tuple)
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def agrees(text: str) -> bool:
    """The fast reader agrees with libyaml on ``text``; True when it took the text itself."""
    fast = fastyaml.plain_documents(text)
    if fast is None:
        return False
    want = libyaml(text)
    assert want is not None, f"fast path accepted invalid YAML:\n{text}"
    assert same([v for v, _ in fast], [v for v, _ in want]), text
    assert [n for _, n in fast] == [n for _, n in want], text
    return True


TAKEN = [
    "a: 1\n",
    "a: b\nc: d\n",
    "---\na: 1\n---\nb: 2\n",
    "# c\n---\n# c\na: 1\n\n\n# c\n---\nb: [ ]\n".replace("[ ]", "[]"),
    "a:\n  b: c\n  d:\n  - 1\n  - x\ne: {}\n",
    "a:\n- b: 1\n  c: 2\n-   d: 3\n    e: 4\n- - 5\n  - 6\n- x\n",
    "a:\n    - 1\n    - 2\nb: 3\n",
    "a: 'q: x#'\nb: \"it is\"\nc: ''\n",
    "a: yes\nb: No\nc: on\nd: ~\ne: null\nf: 'yes'\ng: 0\nh: 10\n",
    "a: x  \nb: c d  e\n",
    "80: a\ntrue: b\n",
    "- a\n- b\n",
    "a: x#y\nb: a[1]\nc: 'a''s'x\n".replace("'a''s'x", "v"),
    "kubernetes.io/metadata.name: x\napp.kubernetes.io/part-of: y\n",
    "a: -x\nb: 1-2\n",
]

EITHER = [
    "",
    "# only a comment\n",
    "a: 1 # comment\n",
    "a: 1.5\nb: 2026-01-01\nc: 0755\nd: -5\ne: +1\nf: 0x1F\ng: 1_000\nh: .inf\n",
    "a: |\n  text\n",
    "a: >\n  folded\n",
    "a: &x 1\nb: *x\n",
    "a: !!str 1\n",
    "a: [1, 2]\nb: {c: d}\n",
    "a:\nb: 1\n",
    "a: b\n  c\n",
    "a: 1\na: 2\n",
    "a:b\n",
    "a : b\n",
    "---\n---\na: 1\n",
    "a: 1\n---\n",
    "a: 1\n...\n",
    "--- a: 1\n",
    "%YAML 1.1\n---\na: 1\n",
    "a:\n\tb: 1\n",
    "a: 1\r\nb: 2\r\n",
    "a: é\n",
    "\ufeffa: 1\n",
    "a: 'it''s'\n",
    'a: "x\\ty"\n',
    "a: 'open\n",
    "a:\n  b: 1\n c: 2\n",
    "a:\n  - 1\n  b: 2\n",
    "- a\nb: 1\n",
    "  a: 1\n",
    "a: - b\n",
    "a: -\n",
    "? a\n: b\n",
    "<<: {a: 1}\n",
    "a: b: c\n",
    "a: x:\n",
    "a: @x\n",
    "a: `x\n",
    "a: %x\n",
    "a:\n  - b\n  -\n    c: 1\n",
    "-\n  a: 1\n",
    "- \n",
    "a: 1\n b: 2\n",
]


@pytest.mark.parametrize("text", TAKEN)
def test_plain_texts_are_read_by_the_fast_reader_and_agree(text: str) -> None:
    assert agrees(text)


@pytest.mark.parametrize("text", EITHER)
def test_other_texts_agree_or_go_to_libyaml(text: str) -> None:
    agrees(text)


plain_words = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,8}", fullmatch=True)
scalars = st.one_of(
    plain_words,
    plain_words,
    st.text(st.sampled_from("ab:-#' \"./_0195xyTRUEnul~[]{}@!&*|>%?,"), min_size=0, max_size=8),
    st.integers(-10, 10**6),
    st.booleans(),
    st.none(),
    st.sampled_from(["yes", "no", "on", "off", "0755", "1.5", "1e3", "2026-01-01", "-", "~"]),
)
keys = st.one_of(
    st.from_regex(r"[a-z][a-z0-9./-]{0,10}", fullmatch=True),
    st.sampled_from(["80", "true", "null", "a b", "1.5", "-x", "x:y"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=20,
)
documents = st.lists(st.dictionaries(keys, values, min_size=1, max_size=5), min_size=1, max_size=3)


class _IndentedDumper(yaml.SafeDumper):
    """Sequences indented under their key, as many hand-written manifests are."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, st.sampled_from(["safe", "indented", "wide", "start"]))
def test_random_documents_in_several_layouts(docs: list[dict[str, Any]], layout: str) -> None:
    if layout == "indented":
        text = yaml.dump_all(docs, Dumper=_IndentedDumper, default_flow_style=False)
    elif layout == "wide":
        text = yaml.safe_dump_all(docs, default_flow_style=False, indent=4)
    else:
        text = yaml.safe_dump_all(docs, default_flow_style=False, explicit_start=layout == "start")
    agrees(text)
    # and with comment lines and blank lines between every line
    agrees("\n".join(f"{line}\n\n# note" for line in text.split("\n")))


def test_a_realistic_cluster_takes_the_fast_path_and_loads_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objs = generator.generate(300, seed=4)
    generator.write(objs, tmp_path, fmt="yaml", one_file=True)
    text = (tmp_path / "cluster.yaml").read_text()
    assert agrees(text)
    fast = load_paths([tmp_path])
    monkeypatch.setattr(fastyaml, "plain_documents", lambda text: None)
    slow = load_paths([tmp_path])
    assert fast.cluster == slow.cluster
    assert fast.problems == slow.problems and fast.warnings == slow.warnings


def test_problems_keep_their_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n---\n# c\n"
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n"
        "  namespace: default\nspec:\n  podSelector:\n    matchLabels:\n      app: 5\n"
        "  policyTypes:\n  - Sideways\n"
    )
    assert fastyaml.plain_documents((tmp_path / "bad.yaml").read_text()) is not None
    fast = load_paths([tmp_path])
    monkeypatch.setattr(fastyaml, "plain_documents", lambda text: None)
    slow = load_paths([tmp_path])
    assert fast.problems and fast.problems == slow.problems


manifest_scalars = st.one_of(
    plain_words, st.integers(0, 70000), st.booleans(), st.none(), st.just(""), st.just("1.5")
)
manifest_keys = st.from_regex(r"[a-z][a-zA-Z0-9./-]{0,12}", fullmatch=True).filter(
    lambda k: yaml.safe_load(k) == k  # keys a dumper would quote (no, on, ...) go to libyaml
)
manifest_values = st.recursive(
    manifest_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(manifest_keys, inner, max_size=4)
    ),
    max_leaves=30,
)
manifests = st.lists(
    st.dictionaries(manifest_keys, manifest_values, min_size=1, max_size=6), min_size=1, max_size=3
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifests, st.booleans())
def test_manifest_like_documents_take_the_fast_path(
    docs: list[dict[str, Any]], indented: bool
) -> None:
    dumper = _IndentedDumper if indented else yaml.SafeDumper
    text = yaml.dump_all(docs, Dumper=dumper, default_flow_style=False, explicit_start=indented)
    assert agrees(text), text
