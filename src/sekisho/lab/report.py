"""The lab's report: headed sections of PASS/FAIL lines, counted.

Used by the demo with real packets (:mod:`sekisho.lab.demo`) and by its
offline counterpart (:mod:`sekisho.lab.offline`); neither imports the other
for it (an import-linter contract keeps it so).
"""

from __future__ import annotations

from collections.abc import Callable

Out = Callable[[str], None]
"""Where a report's lines go (``print``, ``click.echo``, ``list.append``)."""


class Report:
    """Collects PASS/FAIL and prints sections through ``out``."""

    def __init__(self, out: Out) -> None:
        self.out = out
        self.passed = 0
        self.failed = 0

    def heading(self, text: str) -> None:
        self.out("")
        self.out(f"== {text}")

    def verdict(self, ok: bool, text: str) -> None:
        self.passed += ok
        self.failed += not ok
        self.out(f"  {'PASS' if ok else 'FAIL'}  {text}")


def conclusion(passed: int, failed: int, how: str = "") -> str:
    """The last line: ``ALL PASS`` or ``FAILED``, then ``how`` and the counts."""
    return f"{'ALL PASS' if failed == 0 else 'FAILED'}{how}: {passed} passed, {failed} failed"
