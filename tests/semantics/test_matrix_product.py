"""The engine's rule products (``_any_product``: merged rows, grouped by rows or by
columns, dense) equal the plain OR of outer products they stand for (the grouped
ways alone: ``test_matrix_property.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from sekisho.semantics import matrix as engine


def _reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros((a.shape[1], b.shape[1]), dtype=np.bool_)
    for left, right in zip(a, b, strict=True):
        out |= left[:, None] & right[None, :]
    return out


def _rows(rng: np.random.Generator, n: int, k: int, density: float, distinct: int) -> np.ndarray:
    # Rows drawn from a few patterns, so merging rows has something to merge.
    patterns = rng.random((distinct, k)) < density
    return patterns[rng.integers(0, distinct, n)]


@pytest.mark.parametrize("seed", range(12))
def test_any_product_equals_outer_products(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "GATHER_ROWS", engine.GATHER_ROWS)
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 140))
    n = int(rng.choice([1, 3, 65, 200]))
    sparse_left, sparse_right = rng.choice([0.01, 0.3, 0.9], 2)
    a = _rows(rng, n, k, sparse_left, int(rng.integers(1, 40)))
    b = _rows(rng, n, k, sparse_right, int(rng.integers(1, 40)))
    split = int(rng.integers(0, n + 1))
    got = engine._any_product([a[:split], a[split:]], [b[:split], b[split:]], k)
    assert got.dtype == np.bool_ and got.shape == (k, k)
    assert (got == _reference(a, b)).all()
    # OR-ed into a table in place (blocks of rows smaller than the table, too).
    base = rng.random((k, k)) < 0.2
    into = base.copy()
    engine.GATHER_ROWS = int(rng.integers(1, 300))
    assert engine._any_product([a[:split], a[split:]], [b[:split], b[split:]], k, into) is into
    assert (into == (base | _reference(a, b))).all()


def test_merge_keeps_the_product() -> None:
    rng = np.random.default_rng(3)
    a = _rows(rng, 300, 77, 0.2, 5)
    b = _rows(rng, 300, 77, 0.2, 50)
    left, right = engine._merge(a, b)
    assert len(left) < len(a)
    assert (_reference(left, right) == _reference(a, b)).all()


@pytest.mark.parametrize("transposed", [False, True])
def test_grouped_product_into_a_table(transposed: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(11)
    k = 150
    a = _rows(rng, 90, k, 0.05, 30)
    b = _rows(rng, 90, k, 0.4, 30)
    want = _reference(a, b)
    base = rng.random((k, k)) < 0.2
    monkeypatch.setattr(engine, "GATHER_ROWS", 7)
    into = base.copy()
    rows = np.flatnonzero(a.any(axis=0))
    got = engine._grouped_product(a, b, rows, k, transposed=transposed, into=into)
    assert got is into
    assert (into == (base | (want.T if transposed else want))).all()
