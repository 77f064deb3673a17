"""THE meaning of policy: verdicts with explanations, and truth tables.

Public surface: :class:`Endpoint`, :class:`Flow`, :func:`resolve_endpoint`,
:func:`resolve_endpoints`, :func:`verdict` (-> :class:`Verdict` with a
:class:`DirectionVerdict` per evaluated side), :func:`compute_matrix`
(-> :class:`Matrix` of :class:`ProbeMatrix`) and :func:`default_probes`.
Pure code: no I/O, no clock, no printing.
"""

from __future__ import annotations

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
from sekisho.semantics.verdict import (
    DirectionVerdict,
    RuleExplanation,
    RuleMatch,
    Verdict,
    evaluate_direction,
    peer_mismatch,
    port_mismatch,
    selecting_policies,
    verdict,
)

__all__ = [
    "DirectionVerdict",
    "Endpoint",
    "Flow",
    "Identity",
    "Matrix",
    "Probe",
    "ProbeMatrix",
    "RuleExplanation",
    "RuleMatch",
    "Verdict",
    "compute_matrix",
    "default_probes",
    "evaluate_direction",
    "node_endpoint",
    "peer_mismatch",
    "pod_endpoint",
    "port_mismatch",
    "resolve_endpoint",
    "resolve_endpoints",
    "selecting_policies",
    "verdict",
]
