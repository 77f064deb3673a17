"""The incremental matrix equals a full computation after every change, and does not
recompute everything for a pod change."""

from __future__ import annotations

import dataclasses
import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from programs import PROBES, clusters, programs
from sekisho.model.types import Cluster, Pod
from sekisho.semantics import compute_matrix
from sekisho.semantics.incremental import IncrementalMatrix
from sekisho.semantics.program import Program


def same(inc: IncrementalMatrix, c: Cluster, program: Program) -> None:
    got = inc.matrix()
    want = compute_matrix(c, PROBES, program=program)
    assert [p.key for p in got.pods] == [p.key for p in want.pods]
    for a, b in zip(got.probes, want.probes, strict=True):
        for which in ("ingress", "egress", "allowed"):
            assert (getattr(a, which) == getattr(b, which)).all(), (a.protocol, a.port, which)
        assert a.pair_total("allowed") == b.pair_total("allowed")


changes = st.lists(
    st.tuples(
        st.sampled_from(["relabel", "add", "remove", "move", "shuffle"]),
        st.integers(0, 10),
        st.dictionaries(
            st.sampled_from(["app", "tier", "other"]), st.sampled_from(["1", "2", "3"]), max_size=2
        ),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters(), programs(), changes)
def test_incremental_equals_full(
    c: Cluster, program: Program, steps: list[tuple[str, int, dict[str, str]]]
) -> None:
    inc = IncrementalMatrix(c, PROBES, program=program)
    same(inc, c, program)
    pods = list(c.pods)
    for n, (what, at, labels) in enumerate(steps):
        if what == "relabel" and pods:
            i = at % len(pods)
            pods[i] = dataclasses.replace(pods[i], labels=labels)
        elif what == "add":
            pods.append(
                Pod("a", f"new{n}", labels, "n2", ipaddress.ip_address(f"10.0.2.{200 + n}"))
            )
        elif what == "remove" and len(pods) > 1:
            pods.pop(at % len(pods))
        elif what == "move" and pods:
            # To the other node (a hostNetwork pod takes that node's address): the pairs
            # of a node's own traffic change.
            i = at % len(pods)
            node = "n2" if pods[i].node == "n1" else "n1"
            ip = pods[i].ip
            if pods[i].host_network:
                ip = ipaddress.ip_address(f"192.168.0.{node[1]}")
            pods[i] = dataclasses.replace(pods[i], node=node, ip=ip)
        ordered = sorted(pods, key=lambda p: (p.namespace, p.name))
        if what == "shuffle":
            # A snapshot need not list its pods in order.
            ordered.reverse()
            pods = ordered[:]
        c = dataclasses.replace(c, pods=tuple(ordered))
        inc.update(c)
        same(inc, c, program)
    assert inc.full_computations == 1  # pod changes never recompute everything


def test_a_policy_change_recomputes() -> None:
    from programs import NAMESPACES, NODES

    pod = Pod("a", "x", {"app": "1"}, "n1", ipaddress.ip_address("10.0.1.2"))
    c = Cluster(nodes=NODES, namespaces=dict(NAMESPACES), pods=(pod,))
    inc = IncrementalMatrix(c, PROBES)
    from sekisho.model.types import LabelSelector, NetworkPolicy

    c2 = dataclasses.replace(c, policies=(NetworkPolicy("a", "deny", LabelSelector()),))
    inc.update(c2)
    assert inc.full_computations == 2
