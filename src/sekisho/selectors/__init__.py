"""Selectors: Calico's selector language and label sets evaluated at once.

Public surface: :mod:`sekisho.selectors.expr` (parse, evaluate, explain and
convert selector expressions), :class:`LabelTable` (N label sets queried by
selector or expression), and the display helpers :func:`first_unsatisfied`
and :func:`format_labels`.
"""

from __future__ import annotations

from sekisho.selectors.expr import Expr, SelectorSyntaxError, from_label_selector, parse
from sekisho.selectors.labels import BoolArray, LabelTable, first_unsatisfied, format_labels

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
