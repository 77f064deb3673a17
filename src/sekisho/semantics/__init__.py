"""THE meaning of policy: verdicts with explanations, and truth tables.

Public surface: :class:`Endpoint`, :class:`Flow`, :func:`resolve_endpoint`,
:func:`resolve_endpoints`, :func:`compile_program` (the policy program every
consumer reads), :func:`verdict` (-> :class:`Verdict` with a
:class:`DirectionVerdict` per evaluated side: the walk through tiers, policies
and rules), :func:`compute_matrix`
(-> :class:`Matrix` of :class:`ProbeMatrix`) and :func:`default_probes`.
Pure code: no I/O, no clock, no printing.
"""

from __future__ import annotations

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
from sekisho.semantics.verdict import (
    DirectionVerdict,
    PolicyVisit,
    RuleResult,
    TierVisit,
    Verdict,
    rule_mismatch,
    universe_of,
    verdict,
    walk,
)

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
