"""THE meaning of policy: verdicts with explanations, and truth tables.

Public surface: :class:`Endpoint`, :class:`Flow`, :func:`resolve_endpoint`,
:func:`resolve_endpoints`, :func:`compile_program` (the policy program every
consumer reads), :func:`verdict` (-> :class:`Verdict` with a
:class:`DirectionVerdict` per evaluated side: the walk through tiers, policies
and rules), :func:`compute_matrix`
(-> :class:`Matrix` of :class:`ProbeMatrix`) and :func:`default_probes`.
Pure code: no I/O, no clock, no printing.

Each name is imported from its module on first use: importing any module of the
package runs this one, and the matrix needs neither the walk (:mod:`.verdict`) nor
the endpoints (:mod:`.endpoint`), nor the walk the matrix (start-up is part of
every command).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sekisho.semantics.compiler import compile_program
    from sekisho.semantics.endpoint import (
        Endpoint,
        Flow,
        node_endpoint,
        pod_endpoint,
        resolve_endpoint,
        resolve_endpoints,
    )
    from sekisho.semantics.matrix import (
        Identity,
        Matrix,
        Probe,
        ProbeMatrix,
        compute_matrix,
        default_probes,
    )
    from sekisho.semantics.program import Policy, Program, Tier
    from sekisho.semantics.universe import universe_of
    from sekisho.semantics.verdict import (
        DirectionVerdict,
        PolicyVisit,
        RuleResult,
        TierVisit,
        Verdict,
        rule_mismatch,
        verdict,
        walk,
    )

_HOMES: dict[str, str] = {
    "compile_program": "compiler",
    **dict.fromkeys(
        (
            "Endpoint",
            "Flow",
            "node_endpoint",
            "pod_endpoint",
            "resolve_endpoint",
            "resolve_endpoints",
        ),
        "endpoint",
    ),
    **dict.fromkeys(
        ("Identity", "Matrix", "Probe", "ProbeMatrix", "compute_matrix", "default_probes"),
        "matrix",
    ),
    **dict.fromkeys(("Policy", "Program", "Tier"), "program"),
    "universe_of": "universe",
    **dict.fromkeys(
        (
            "DirectionVerdict",
            "PolicyVisit",
            "RuleResult",
            "TierVisit",
            "Verdict",
            "rule_mismatch",
            "verdict",
            "walk",
        ),
        "verdict",
    ),
}
"""Each public name's module in this package."""


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))


class _Package(types.ModuleType):
    """This package, whose ``verdict`` is the function :func:`verdict`.

    Importing the module :mod:`sekisho.semantics.verdict` sets it on its package under
    the same name (after the module has run), which would hide the function for
    ``from sekisho.semantics import verdict``; the function is kept instead, as when
    this package imported every module at once.
    """

    def __setattr__(self, name: str, value: object) -> None:
        if name == "verdict" and isinstance(value, types.ModuleType):
            value = value.verdict
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = [
    "DirectionVerdict",
    "Endpoint",
    "Flow",
    "Identity",
    "Matrix",
    "Policy",
    "PolicyVisit",
    "Probe",
    "ProbeMatrix",
    "Program",
    "RuleResult",
    "Tier",
    "TierVisit",
    "Verdict",
    "compile_program",
    "compute_matrix",
    "default_probes",
    "node_endpoint",
    "pod_endpoint",
    "resolve_endpoint",
    "resolve_endpoints",
    "rule_mismatch",
    "universe_of",
    "verdict",
    "walk",
]
