"""Reading on two cores (``sources/split.py``) gives exactly what reading in order gives:
the same objects, problems (with their lines) and texts, whatever the files hold and
whether or not the child succeeds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sekisho.model import load_paths
from sekisho.model.reader import read_paths
from sekisho.sources import split

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: p{n}
  namespace: ns{ns}
  labels: {{app: a{n}, tier: "t"}}
spec:
  containers:
  - name: c
    ports:
    - {{containerPort: 80, name: http}}
status:
  podIP: 10.0.{ns}.{n}
"""

ODD = {
    # What JSON cannot carry back exactly: the child sends these values as pickle.
    "nan.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: a}\n"
    "data: {v: .nan}\n",
    "when.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: t\n  namespace: a\n"
    "  annotations: {at: 2001-12-14}\n",
    "intkey.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: k\n  namespace: a\n"
    "  labels: {1: x}\n",
    "omap.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: o, namespace: a}\n"
    "data: !!omap [{a: 1}]\n",
    "null.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: n, namespace: a}\n"
    "data: {v: null, w: .inf}\n",
    # Problems, located by line, in both halves.
    "0-bad.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: first\n  namespace: a\n"
    "  labels: {a: [1]}\n",
    "0-broken.yaml": "kind: Pod\nmetadata: {name: [\n",
    "z-broken.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [oops\n",
    "z-bad.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\n  namespace: a\n",
    "z-binary.json": "{}\udcff",
}


def _cluster(tmp_path: Path, odd: bool) -> Path:
    root = tmp_path / "m"
    root.mkdir()
    for f in range(6):
        docs = [POD.format(n=n, ns=f) for n in range(1, 40)]
        (root / f"{f:02d}-pods.yaml").write_text("---\n".join(docs))
    (root / "ns.json").write_text('{"kind": "List", "items": []}')
    if odd:
        for name, text in ODD.items():
            (root / name).write_bytes(text.encode("utf-8", "surrogateescape"))
    return root


def _same(a: object, b: object) -> None:
    assert repr(a) == repr(b)  # NaN != NaN: compared as text, types included


@pytest.mark.parametrize("odd", [False, True])
def test_split_read_equals_reading_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, odd: bool
) -> None:
    root = _cluster(tmp_path, odd)
    monkeypatch.setattr(split, "SPLIT_FROM", 1)
    forked: list[int] = []
    start = split._start
    monkeypatch.setattr(split, "_start", lambda found: forked.append(len(found)) or start(found))
    got = split.read_paths([root])
    want = read_paths([root])
    assert forked and forked[0] < want.files
    _same(got, want)
    a = load_paths([root], reader=split.read_paths)
    b = load_paths([root])
    assert [str(p) for p in a.problems] == [str(p) for p in b.problems]
    assert (a.problems != ()) == odd
    for name in ("nan.yaml", "when.yaml", "intkey.yaml", "omap.yaml", "null.yaml") if odd else ():
        # Values JSON would change go as pickle; the pods' as JSON.
        one = read_paths([root / name])
        assert split._encode(one)[:8] == bytes(8)
        _same(split._decode(split._encode(one)), one)
    assert split._encode(read_paths([root / "00-pods.yaml"]))[:8] != bytes(8)
    _same(a.cluster, b.cluster)


def test_a_failed_child_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _cluster(tmp_path, True)
    monkeypatch.setattr(split, "SPLIT_FROM", 1)
    encode = split._encode
    truncated = encode(read_paths([root / "00-pods.yaml"]))[:-1]
    with pytest.raises(ValueError):
        split._decode(truncated)

    def broken(result: object) -> bytes:
        raise RuntimeError("the child fails")

    monkeypatch.setattr(split, "_encode", broken)  # in the forked child
    _same(split.read_paths([root]), read_paths([root]))


def test_small_inputs_and_stdin_are_read_here(tmp_path: Path) -> None:
    root = _cluster(tmp_path, False)
    assert split._cut([("a", root / "00-pods.yaml"), ("b", root / "01-pods.yaml")]) is None
    assert split._cut([("<stdin>", None), ("a", root / "00-pods.yaml")]) is None
    assert os.cpu_count() is not None


def test_the_child_is_reaped_when_reading_here_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _cluster(tmp_path, False)
    monkeypatch.setattr(split, "SPLIT_FROM", 1)
    children: list[int] = []
    start = split._start

    def started(found: object) -> tuple[int, int] | None:
        child = start(found)  # type: ignore[arg-type]
        assert child is not None
        children.append(child[0])
        return child

    def interrupted(found: object, stdin: object, result: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(split, "_start", started)
    monkeypatch.setattr(split, "read_found", interrupted)
    with pytest.raises(KeyboardInterrupt):
        split.read_paths([root])
    with pytest.raises(ChildProcessError):
        os.waitpid(children[0], os.WNOHANG)  # already reaped
