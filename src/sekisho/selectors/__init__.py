"""Label selectors: vectorized evaluation and the per-identity pod index.

Public surface: :class:`LabelTable` (N label sets queried by selector),
:class:`SelectorIndex` (policy targets and peer pods of one cluster), and the
display helpers :func:`first_unsatisfied` and :func:`format_labels`.
"""

from __future__ import annotations

from sekisho.selectors.index import SelectorIndex
from sekisho.selectors.labels import BoolArray, LabelTable, first_unsatisfied, format_labels

__all__ = ["BoolArray", "LabelTable", "SelectorIndex", "first_unsatisfied", "format_labels"]
