"""Staged policies: what they would change, shown beside what is enforced.

Calico never enforces a staged policy (StagedNetworkPolicy,
StagedGlobalNetworkPolicy, StagedKubernetesNetworkPolicy); its flow logs show,
beside each enforced verdict, the verdict the staged policies would give
("pending"). Here that is :meth:`Program.pending` (the program as if every
staged policy were applied: ``Set`` replaces or adds the policy of the same
name, ``Delete`` removes it) walked by the same :func:`verdict` and evaluated
by the same :func:`compute_matrix`; this module only compares the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sekisho.model.types import Cluster
from sekisho.semantics.compiler import compile_program
from sekisho.semantics.probe import Service

if TYPE_CHECKING:
    from sekisho.semantics.endpoint import Flow
    from sekisho.semantics.matrix import Matrix
    from sekisho.semantics.verdict import Verdict

# The walk (trace) and the matrix each import only their own engine here: a trace
# loads no numpy, a matrix no walk (start-up is part of every command).


def staged_labels(cluster: Cluster) -> list[str]:
    """How each staged policy of the cluster is named, with what it would do."""
    return [
        f"{p.label} ({'delete' if p.staged == 'delete' else 'set'})"
        for p in compile_program(cluster).staged
    ]


def pending_verdict(cluster: Cluster, flow: Flow) -> Verdict | None:
    """The verdict with every staged policy applied; None when there are none."""
    from sekisho.semantics.verdict import verdict

    if not compile_program(cluster).staged:
        return None
    return verdict(cluster, flow, pending=True)


def verdict_lines(enforced: Verdict, pending: Verdict, cluster: Cluster) -> list[str]:
    """Text for a pending verdict, under the enforced one."""
    word = "ALLOWED" if pending.allowed else "DENIED"
    staged_met = [
        p.label
        for side in (pending.egress, pending.ingress)
        if side is not None
        for p in side.policies
        if p.kind.startswith("Staged")
    ]
    if pending.allowed == enforced.allowed and not staged_met:
        return [f"staged (not enforced): {', '.join(staged_labels(cluster))}: no change here"]
    change = (
        "the same verdict"
        if pending.allowed == enforced.allowed
        else f"would change {'DENIED' if pending.allowed else 'ALLOWED'} to {word}"
    )
    out = [
        f"staged (not enforced): {', '.join(staged_labels(cluster))}",
        f"pending verdict: {word} ({pending.reason}): {change}",
    ]
    for side in (pending.egress, pending.ingress):
        if side is not None and side.isolated:
            out.append(f"  {side.direction} of {side.endpoint.label}: {side.because()}")
    return out


def pending_matrix(cluster: Cluster, probes: Sequence[Service], enforced: Matrix) -> Matrix | None:
    """The matrix with every staged policy applied (same pods and probes); None if none."""
    from sekisho.semantics.matrix import compute_matrix

    program = compile_program(cluster)
    if not program.staged:
        return None
    return compute_matrix(cluster, probes, pods=enforced.pods, program=program.pending())


def matrix_changes(enforced: Matrix, pending: Matrix, limit: int = 20) -> list[str]:
    """Per probe, the pairs whose verdict the staged policies would change."""
    import numpy as np

    out: list[str] = []
    names = [p.key for p in enforced.pods]
    for e, p in zip(enforced.probes, pending.probes, strict=True):
        now, then = e.allowed, p.allowed
        denied = np.argwhere(now & ~then)
        allowed = np.argwhere(~now & then)
        head = f"{e.service}: {len(denied)} pairs would be denied, {len(allowed)} allowed"
        out.append(head)
        shown = 0
        for pairs, word in ((denied, "allowed -> denied"), (allowed, "denied -> allowed")):
            for i, j in pairs.tolist():
                if shown == limit:
                    break
                out.append(f"  {names[i]} -> {names[j]}: {word}")
                shown += 1
        if len(denied) + len(allowed) > shown:
            out.append(f"  ... {len(denied) + len(allowed) - shown} more")
    return out
