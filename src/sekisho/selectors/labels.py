"""Label selectors evaluated over many label sets at once (numpy columns).

A :class:`LabelTable` holds N label sets (one per identity, namespace or pod
group) as one integer column per label key (value code, -1 when the key is
absent). A selector then costs a handful of vector operations, whatever N is,
and its result is cached by the selector's canonical string (Cilium's selector
cache, in miniature).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from sekisho.model.types import LabelSelector, Requirement

if TYPE_CHECKING:
    from sekisho.selectors.expr import Expr

BoolArray = npt.NDArray[np.bool_]


class LabelTable:
    """N label sets, queryable by label selector in O(requirements) vector operations."""

    def __init__(self, label_sets: Sequence[Mapping[str, str]]) -> None:
        self.size = len(label_sets)
        self._values: dict[str, dict[str, int]] = {}
        # A mapping given for several rows (callers share equal label maps) is read once.
        row_of: dict[int, int] = {}
        rows = [row_of.setdefault(id(m), len(row_of)) for m in label_sets]
        distinct = len(row_of)
        columns: dict[str, list[int]] = {}
        seen = 0
        for labels, r in zip(label_sets, rows, strict=True):
            if r < seen:
                continue
            seen = r + 1
            for key, value in labels.items():
                codes = self._values.setdefault(key, {})
                code = codes.setdefault(value, len(codes))
                col = columns.get(key)
                if col is None:
                    col = columns[key] = [-1] * distinct
                col[r] = code
        self._columns: dict[str, npt.NDArray[np.int32]] = {
            key: np.asarray(col, dtype=np.int32) for key, col in columns.items()
        }
        if distinct < self.size:
            index = np.asarray(rows, dtype=np.int64)
            self._columns = {key: col[index] for key, col in self._columns.items()}
        self._cache: dict[str, BoolArray] = {}

    def requirement(self, req: Requirement) -> BoolArray:
        """Which label sets satisfy one requirement."""
        col = self._columns.get(req.key)
        if col is None:
            # The key appears nowhere: In and Exists select nothing, the others everything.
            value = req.operator in ("NotIn", "DoesNotExist")
            return np.full(self.size, value, dtype=np.bool_)
        if req.operator == "Exists":
            return col >= 0
        if req.operator == "DoesNotExist":
            return col < 0
        known = self._values[req.key]
        codes = [known[v] for v in req.values if v in known]
        hit: BoolArray = np.isin(col, np.asarray(codes, dtype=np.int32))
        return hit if req.operator == "In" else ~hit

    def present(self, key: str) -> BoolArray:
        """Which label sets have ``key``."""
        col = self._columns.get(key)
        if col is None:
            return np.zeros(self.size, dtype=np.bool_)
        out: BoolArray = col >= 0
        return out

    def value_in(self, key: str, values: Sequence[str]) -> BoolArray:
        """Which label sets have ``key`` with one of ``values``."""
        col = self._columns.get(key)
        if col is None:
            return np.zeros(self.size, dtype=np.bool_)
        known = self._values[key]
        codes = [known[v] for v in values if v in known]
        if not codes:
            return np.zeros(self.size, dtype=np.bool_)
        out: BoolArray = (
            col == codes[0] if len(codes) == 1 else np.isin(col, np.asarray(codes, dtype=np.int32))
        )
        return out

    def value_where(self, key: str, test: Callable[[str], bool]) -> BoolArray:
        """Which label sets have ``key`` with a value for which ``test`` is true."""
        known = self._values.get(key, {})
        return self.value_in(key, [v for v in known if test(v)])

    def expr(self, expression: Expr) -> BoolArray:
        """Which label sets satisfy a selector expression (read-only, cached by canonical text)."""
        from sekisho.selectors.expr import select

        key = "expr " + expression.canonical()
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        out = select(expression, self)
        out.flags.writeable = False
        self._cache[key] = out
        return out

    def select(self, selector: LabelSelector) -> BoolArray:
        """Which label sets the selector matches (read-only, cached by canonical string)."""
        key = selector.canonical()
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        out = np.ones(self.size, dtype=np.bool_)
        for req in selector.requirements:
            out &= self.requirement(req)
        out.flags.writeable = False
        self._cache[key] = out
        return out


class JoinedTable:
    """N label sets made of two parts: each row's own labels, and the labels of a group it
    belongs to (a namespace) for the keys ``group_key`` says are the group's.

    Selectors over both parts cost what they cost on the small tables plus a gather,
    instead of copying every group label into every row.
    """

    def __init__(
        self,
        own: LabelTable,
        groups: LabelTable,
        group_of: npt.NDArray[np.int64],
        group_key: Callable[[str], bool],
    ) -> None:
        self.size = own.size
        self.own = own
        self.groups = groups
        self.group_of = group_of
        self.group_key = group_key
        self._cache: dict[str, BoolArray] = {}

    def _pick(self, key: str) -> tuple[LabelTable, bool]:
        return (self.groups, True) if self.group_key(key) else (self.own, False)

    def _gather(self, col: BoolArray, grouped: bool) -> BoolArray:
        if not grouped:
            return col
        out: BoolArray = col[self.group_of]
        return out

    def present(self, key: str) -> BoolArray:
        table, grouped = self._pick(key)
        return self._gather(table.present(key), grouped)

    def value_in(self, key: str, values: Sequence[str]) -> BoolArray:
        table, grouped = self._pick(key)
        return self._gather(table.value_in(key, values), grouped)

    def value_where(self, key: str, test: Callable[[str], bool]) -> BoolArray:
        table, grouped = self._pick(key)
        return self._gather(table.value_where(key, test), grouped)

    def expr(self, expression: Expr) -> BoolArray:
        """Which rows satisfy a selector expression (read-only, cached by canonical text)."""
        from sekisho.selectors.expr import select

        key = expression.canonical()
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        out = select(expression, self)
        out.flags.writeable = False
        self._cache[key] = out
        return out


def first_unsatisfied(selector: LabelSelector, labels: Mapping[str, str]) -> str | None:
    """The first condition of ``selector`` that ``labels`` fail, as written, or None.

    ``matchLabels`` entries read ``key=value``; ``matchExpressions`` read ``key In [a, b]``.
    """
    for key, value in selector.match_labels:
        if labels.get(key) != value:
            return f"{key}={value}"
    plain = dict(labels)
    for req in selector.match_expressions:
        if not req.matches(plain):
            return str(req)
    return None


def format_labels(labels: Mapping[str, str]) -> str:
    """Labels as ``{a: 1, b: 2}``, keys sorted (``{}`` when there are none)."""
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(labels.items())) + "}"
