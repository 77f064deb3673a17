"""Every policy kind of a cluster compiled into one :class:`~sekisho.semantics.program.Program`.

A new policy kind is a compiler module beside :mod:`sekisho.semantics.kubernetes`
and one line here; nothing downstream changes.
"""

from __future__ import annotations

from sekisho.model.types import Cluster, NetworkPolicy
from sekisho.semantics import kubernetes
from sekisho.semantics.program import (
    DEFAULT_TIER,
    DEFAULT_TIER_ORDER,
    Policy,
    Program,
    Tier,
    build_program,
)

_last: tuple[Cluster, Program] | None = None
_compiled: dict[int, tuple[NetworkPolicy, Policy]] = {}
"""id(model policy) -> (that policy, its compiled program policy), for the last cluster's
NetworkPolicies: a snapshot that shares policy objects with the last one (the agent's
patched loads) compiles only the policies that changed. Holding the object keeps its id."""


def program_inputs(cluster: Cluster) -> tuple[object, ...]:
    """What of a cluster the program is compiled from (equal inputs, equal programs).

    A compiler that reads another part of the cluster adds it here.
    """
    return (cluster.policies, cluster.cluster_policies, cluster.calico)


def compile_program(cluster: Cluster) -> Program:
    """The program of ``cluster`` (the last result is kept for the same snapshot object)."""
    global _last, _compiled
    if _last is not None and _last[0] is cluster:
        return _last[1]
    known, memo = _compiled, {}
    policies = []
    for p in cluster.policies:
        hit = known.get(id(p))
        if hit is None or hit[0] is not p:
            hit = (p, kubernetes.compile_policy(p))
        memo[id(p)] = hit
        policies.append(hit[1])
    _compiled = memo
    tiers = [Tier(DEFAULT_TIER, DEFAULT_TIER_ORDER)]
    notes: list[str] = []
    # Cluster-wide policies' and Calico's compilers are imported only for a cluster that
    # has such objects.
    if cluster.cluster_policies:
        from sekisho.semantics import npa

        cluster_wide, notes = npa.compile_policies(cluster.cluster_policies)
        policies += cluster_wide
        tiers += npa.TIERS
    staged: list[Policy] = []
    if cluster.calico is not None:
        from sekisho.semantics import calico

        enforced, staged, calico_notes = calico.compile_resources(cluster.calico)
        policies += enforced
        tiers += calico.tiers(cluster.calico)
        notes += calico_notes
    program = build_program(policies, tiers, staged=staged, notes=tuple(notes))
    _last = (cluster, program)
    return program
