"""Selectors: Calico's selector language and label sets evaluated at once.

Public surface: :mod:`sekisho.selectors.expr` (parse, evaluate, explain and
convert selector expressions), :class:`LabelTable` (N label sets queried by
selector or expression), and the display helpers :func:`first_unsatisfied`
and :func:`format_labels`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sekisho.selectors.expr import Expr, SelectorSyntaxError, from_label_selector, parse

if TYPE_CHECKING:
    from sekisho.selectors.labels import BoolArray, LabelTable, first_unsatisfied, format_labels

_LABELS = frozenset({"BoolArray", "LabelTable", "first_unsatisfied", "format_labels"})


def __getattr__(name: str) -> Any:
    """The label tables' names, imported on first use: they bring numpy, which reading and
    validating manifests (they parse selectors, never evaluate them over a table) do not need."""
    if name not in _LABELS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from sekisho.selectors import labels

    value = getattr(labels, name)
    globals()[name] = value
    return value


__all__ = [
    "BoolArray",
    "Expr",
    "LabelTable",
    "SelectorSyntaxError",
    "first_unsatisfied",
    "format_labels",
    "from_label_selector",
    "parse",
]
