"""The vectorized matrix agrees with :func:`verdict` on every pair of random clusters."""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sekisho.model.types import (
    Cluster,
    ContainerPort,
    LabelSelector,
    NetworkPolicy,
    Peer,
    Pod,
    PolicyPort,
    Requirement,
    Rule,
    in_family,
)
from sekisho.semantics import Flow, compute_matrix, pod_endpoint, verdict

from .builders import block, cluster, namespaces, node, pod

NODES = [node("n1", "192.168.0.1", "10.0.1.0/24"), node("n2", "192.168.0.2", "10.0.2.0/24")]
NS = namespaces(a={"team": "x"}, b={"team": "y"}, c={"team": "x", "env": "prod"})
PORT_SETS = [
    (),
    (ContainerPort(80, "TCP", "http"),),
    (ContainerPort(8080, "TCP", "http"), ContainerPort(53, "UDP", "dns")),
    (ContainerPort(80, "TCP", "web"), ContainerPort(9000, "SCTP", "sig")),
]
BLOCKS = [
    block("10.0.0.0/16", "10.0.1.0/24"),
    block("10.0.1.0/24"),
    block("10.0.2.0/25"),
    block("192.168.0.0/24"),
    block("0.0.0.0/0", "10.0.0.0/8"),
    block("10.0.1.0/28", "10.0.1.8/30"),
]
BLOCKS6 = [
    block("fd00:10::/32", "fd00:10:1::/64"),
    block("fd00:10:2::/64"),
    block("::/0", "fd00:10:1::/120"),
    block("fd00:192::/64"),
]
NODES46 = [
    dataclasses.replace(
        n,
        other_ips=(ipaddress.ip_address(f"fd00:192::{k}"),),
        other_pod_cidrs=(ipaddress.ip_network(f"fd00:10:{k}::/64"),),
    )
    for k, n in enumerate(NODES, start=1)
]
PROBES: list[tuple[int | None, str]] = [
    (80, "TCP"),
    (8080, "TCP"),
    (53, "UDP"),
    (9000, "SCTP"),
    (None, "ICMP"),
]

label_values = st.sampled_from(["1", "2", "3"])
labels = st.dictionaries(st.sampled_from(["app", "tier"]), label_values, max_size=2)


@st.composite
def selectors(draw: st.DrawFn, keys: tuple[str, ...] = ("app", "tier")) -> LabelSelector:
    match = draw(st.dictionaries(st.sampled_from(keys), label_values, max_size=1))
    exprs = []
    for _ in range(draw(st.integers(0, 1))):
        op = draw(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]))
        values = (
            tuple(sorted(draw(st.sets(label_values, min_size=1, max_size=2))))
            if op in ("In", "NotIn")
            else ()
        )
        exprs.append(Requirement(draw(st.sampled_from(keys)), op, values))
    return LabelSelector(tuple(sorted(match.items())), tuple(exprs))


@st.composite
def ns_selectors(draw: st.DrawFn) -> LabelSelector:
    return draw(selectors(("team", "env")))


@st.composite
def peers(draw: st.DrawFn, dual: bool = False) -> Peer:
    kind = draw(st.sampled_from(["pod", "ns", "both", "block"]))
    if kind == "block":
        return Peer(ip_block=draw(st.sampled_from(BLOCKS + BLOCKS6 if dual else BLOCKS)))
    return Peer(
        pod_selector=draw(selectors()) if kind in ("pod", "both") else None,
        namespace_selector=draw(ns_selectors()) if kind in ("ns", "both") else None,
    )


policy_ports = st.one_of(
    st.builds(
        PolicyPort,
        st.sampled_from(["TCP", "UDP", "SCTP"]),
        st.sampled_from([None, 80, 53, 8080, 9000]),
    ),
    st.builds(PolicyPort, st.just("TCP"), st.just(8000), st.just(8080)),
    st.builds(PolicyPort, st.sampled_from(["TCP", "UDP"]), st.sampled_from(["http", "dns", "web"])),
)


def rule_st(dual: bool = False) -> st.SearchStrategy[Rule]:
    return st.builds(
        Rule,
        st.one_of(st.none(), st.lists(peers(dual), min_size=1, max_size=2).map(tuple)),
        st.one_of(st.none(), st.lists(policy_ports, min_size=1, max_size=2).map(tuple)),
    )


rules = rule_st()


@st.composite
def policies(draw: st.DrawFn, name: str, dual: bool = False) -> NetworkPolicy:
    ingress = tuple(draw(st.lists(rule_st(dual), max_size=2)))
    egress = tuple(draw(st.lists(rule_st(dual), max_size=2)))
    types = draw(st.sampled_from(["I", "E", "IE"]))
    return NetworkPolicy(
        draw(st.sampled_from(["a", "b", "c"])),
        name,
        draw(selectors()),
        ingress=ingress,
        egress=egress,
        affects_ingress="I" in types,
        affects_egress="E" in types,
    )


@st.composite
def clusters(draw: st.DrawFn, dual: bool = False) -> Cluster:
    n = draw(st.integers(1, 7))
    pods: list[Pod] = []
    for i in range(n):
        host_network = draw(st.integers(0, 2)) == 0
        node_index = draw(st.integers(0, 1))
        ip = (
            f"192.168.0.{node_index + 1}"
            if host_network
            else f"10.0.{node_index + 1}.{draw(st.integers(2, 20)) + 20 * i}"
        )
        pods.append(
            pod(
                f"{draw(st.sampled_from(['a', 'b', 'c']))}/p{i}",
                ip,
                f"n{node_index + 1}",
                draw(st.sampled_from(PORT_SETS)),
                host_network,
                **draw(labels),
            )
        )
    pols = [draw(policies(f"pol{i}", dual)) for i in range(draw(st.integers(0, 4)))]
    if not dual:
        return cluster(pods, pols, NODES, NS)
    nodes = {n.name: n for n in NODES46}
    pods = [
        dataclasses.replace(
            p,
            other_ips=nodes[p.node].other_ips  # type: ignore[index]
            if p.host_network
            else (ipaddress.ip_address(f"fd00:10:{p.node[1:]}::{p.ip.packed[-1]}"),),  # type: ignore[index,union-attr]
        )
        for p in pods
    ]
    return cluster(pods, pols, NODES46, NS)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_matrix_equals_verdict_on_every_pair(c: Cluster) -> None:
    check_matrix(c)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters(dual=True))
def test_matrix_equals_verdict_per_family_on_dual_stack_clusters(c: Cluster) -> None:
    """A dual-stack cluster seen over IPv4 and over IPv6: the matrix and the walk agree
    in each (ipBlocks of one family, ICMP as ICMPv6 over IPv6)."""
    check_matrix(in_family(c, 4))
    check_matrix(in_family(c, 6))


def check_matrix(c: Cluster) -> None:
    from sekisho.semantics import matrix as engine

    # Identities in classes (what large clusters get) and one by one (small ones).
    before = engine.CLASSES_FROM
    engine.CLASSES_FROM = 0
    try:
        classed = compute_matrix(c, PROBES)
    finally:
        engine.CLASSES_FROM = before
    m = compute_matrix(c, PROBES)
    for a, b in zip(classed.probes, m.probes, strict=True):
        for name in ("ingress", "egress", "allowed"):
            assert (getattr(a, name) == getattr(b, name)).all()
            assert (a.identity_table(name) == b.identity_table(name)).all()
            assert a.pair_total(name) == b.pair_total(name)
    assert [p.key for p in m.pods] == sorted(p.key for p in c.pods)
    ends = [pod_endpoint(c, p) for p in m.pods]
    for probe in m.probes:
        expected = np.zeros_like(probe.allowed)
        for (i, s), (j, d) in itertools.product(enumerate(ends), repeat=2):
            v = verdict(c, Flow(s, d, probe.protocol, probe.port))  # type: ignore[arg-type]
            expected[i, j] = v.allowed
            eg = v.egress is None or v.egress.allowed
            ing = v.ingress is None or v.ingress.allowed
            assert bool(probe.egress[i, j]) is eg, (probe.protocol, probe.port, s.label, d.label)
            assert bool(probe.ingress[i, j]) is ing, (
                probe.protocol,
                probe.port,
                s.label,
                d.label,
                v.lines(),
            )
        assert (probe.allowed == expected).all()
    assert json.loads(b"".join(m.iter_json_bytes())) == m.to_json()


def test_selected_subset_of_pods() -> None:
    c = cluster(
        [pod("a/x", "10.0.1.2", "n1", app="1"), pod("a/y", "10.0.1.3", "n1", app="2")],
        [NetworkPolicy("a", "deny", LabelSelector())],
        NODES,
        NS,
    )
    m = compute_matrix(c, [(80, "TCP")], pods=[c.pods[1]])
    assert [p.key for p in m.pods] == ["a/y"]
    assert m.probes[0].allowed.tolist() == [[True]]
    full = compute_matrix(c, [(80, "TCP")])
    assert full.probes[0].allowed.tolist() == [[True, False], [False, True]]
    # the policy reads no label: both pods are one identity
    assert len(full.identities) == 1


def test_identities_shared_by_replicas() -> None:
    pods = [pod(f"a/web-{i}", f"10.0.1.{i + 2}", "n1", app="web") for i in range(50)]
    c = cluster(pods, [NetworkPolicy("a", "deny", LabelSelector())], NODES, NS)
    m = compute_matrix(c, [(80, "TCP")])
    assert len(m.identities) == 1
    allowed = m.probes[0].allowed
    assert allowed.shape == (50, 50)
    assert allowed.sum() == 50  # only self


def test_hostnetwork_pods_in_matrix() -> None:
    allow_app1 = NetworkPolicy(
        "a",
        "from-app-1",
        LabelSelector((("app", "2"),)),
        ingress=(Rule(peers=(Peer(pod_selector=LabelSelector((("app", "1"),))),)),),
    )
    c = cluster(
        [
            pod("a/dst", "10.0.1.5", "n1", app="2"),
            pod("a/hn-far", "192.168.0.2", "n2", host_network=True, app="1"),
            pod("a/hn-near", "192.168.0.1", "n1", host_network=True, app="1"),
            pod("a/src", "10.0.2.5", "n2", app="1"),
        ],
        [allow_app1],
        NODES,
        NS,
    )
    allowed = compute_matrix(c, [(80, "TCP")]).probes[0].allowed
    # rows/columns: dst, hn-far, hn-near, src
    assert allowed[:, 0].tolist() == [
        True,
        False,
        True,
        True,
    ]  # far hn is its node; near is own node
    assert allowed[0].all()  # hostNetwork targets are never isolated


def test_json_bytes_of_empty_cluster() -> None:
    m = compute_matrix(cluster([], [], NODES, NS), [(80, "TCP"), (None, "ICMP")])
    doc = json.loads(b"".join(m.iter_json_bytes()))
    assert (
        doc
        == m.to_json()
        == {
            "pods": [],
            "probes": [
                {"port": 80, "protocol": "TCP", "ingress": [], "egress": [], "allowed": []},
                {"port": None, "protocol": "ICMP", "ingress": [], "egress": [], "allowed": []},
            ],
        }
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters(), st.lists(selectors(), min_size=1, max_size=4))
def test_label_table_and_expressions_equal_scalar_semantics(
    c: Cluster, some_selectors: list[LabelSelector]
) -> None:
    from sekisho.selectors import LabelTable, from_label_selector
    from sekisho.selectors.expr import matches, select

    table = LabelTable([p.labels for p in c.pods])
    for s in some_selectors:
        expected = [s.matches(p.labels) for p in c.pods]
        assert table.select(s).tolist() == expected
        e = from_label_selector(s)
        assert [matches(e, p.labels) for p in c.pods] == expected
        assert select(e, table).tolist() == expected


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), min_size=1, max_size=200))
def test_merging_rules_keeps_the_product(pairs: list[tuple[int, int]]) -> None:
    from sekisho.semantics.matrix import _any_product, _merge

    rows = [np.array([(v >> b) & 1 for b in range(3)], dtype=np.bool_) for v in range(8)]
    left = [rows[a] for a, _ in pairs]
    right = [rows[b] for _, b in pairs]
    expected = np.zeros((3, 3), dtype=np.bool_)
    for a, b in zip(left, right, strict=True):
        expected |= a[:, None] & b[None, :]
    merged_left, merged_right = _merge(np.asarray(left), np.asarray(right))
    assert len(merged_left) <= 8
    again = np.zeros((3, 3), dtype=np.bool_)
    for a, b in zip(merged_left, merged_right, strict=True):
        again |= a[:, None] & b[None, :]
    assert (again == expected).all()
    assert (_any_product(left, right, 3) == expected).all()


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda k: st.tuples(
            st.just(k),
            st.lists(
                st.tuples(st.integers(0, 2**k - 1), st.integers(0, 2**k - 1)),
                min_size=1,
                max_size=30,
            ),
        )
    )
)
def test_grouped_product_keeps_the_product(
    case: tuple[int, list[tuple[int, int]]],
) -> None:
    """The sparse ways of :func:`_any_product` (rows or columns grouped by the rules that
    reach them, the latter built transposed) give the dense product."""
    from sekisho.semantics.matrix import _grouped_product

    k, pairs = case
    a = np.array([[(x >> b) & 1 for b in range(k)] for x, _ in pairs], dtype=np.bool_)
    b = np.array([[(y >> i) & 1 for i in range(k)] for _, y in pairs], dtype=np.bool_)
    expected = (a.T.astype(np.int64) @ b.astype(np.int64)) > 0
    rows = np.flatnonzero(a.any(axis=0))
    cols = np.flatnonzero(b.any(axis=0))
    assert (_grouped_product(a, b, rows, k) == expected).all()
    assert (_grouped_product(b, a, cols, k, transposed=True) == expected).all()
