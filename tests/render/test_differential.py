"""The rendered rules, interpreted, say exactly what the semantics says (both backends).

Random clusters (2 nodes, a few pods with random labels, named ports, some on
the host network) and random policies (selectors, namespace selectors, ipBlocks
with except, named ports, ranges, protocols); for every ordered pair of
endpoints (pods, nodes, an external address) and a handful of services, the
interpreter walking the packet through each node on its path must agree with
``sekisho.semantics.verdict``. Replies (ESTABLISHED) always pass. The same for
IPv6 clusters (IPv6 nodes, pods and external host; ipBlocks of both families):
ICMP there is ICMPv6. And for dual-stack clusters (every node and pod with an
address of each family), over each family in turn (``in_family``): the rules of
one family never let the other family's addresses through.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from render.seed_cluster import seed_cluster
from sekisho.model.types import (
    Cluster,
    ContainerPort,
    IPBlock,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Node,
    Peer,
    Pod,
    PolicyPort,
    Requirement,
    Rule,
    in_family,
)
from sekisho.render import BACKENDS, Backend, render_node
from sekisho.render.interpret import Decision, Packet, program
from sekisho.render.path import cluster_nodes, enforce
from sekisho.semantics import Endpoint, Flow, node_endpoint, pod_endpoint, verdict

NODES = (
    Node("n1", ipaddress.IPv4Address("192.168.0.1"), ipaddress.IPv4Network("10.0.1.0/24")),
    Node("n2", ipaddress.IPv4Address("192.168.0.2"), ipaddress.IPv4Network("10.0.2.0/24")),
)
NAMESPACES = ("a", "b")
EXTERNAL = ipaddress.IPv4Address("8.8.8.8")
SERVICES: tuple[tuple[str, int | None], ...] = (
    ("TCP", 80),
    ("TCP", 8080),
    ("UDP", 53),
    ("SCTP", 80),
    ("ICMP", None),
)
CONTAINER_PORTS = (
    ContainerPort(80, "TCP", "http"),
    ContainerPort(8080, "TCP", "http"),
    ContainerPort(53, "UDP", "dns"),
    ContainerPort(80, "SCTP", "sc"),
)
BLOCKS = (
    IPBlock(ipaddress.IPv4Network("10.0.0.0/16"), (ipaddress.IPv4Network("10.0.1.0/28"),)),
    IPBlock(ipaddress.IPv4Network("10.0.1.0/24")),
    IPBlock(ipaddress.IPv4Network("0.0.0.0/0"), (ipaddress.IPv4Network("10.0.2.0/24"),)),
    IPBlock(
        ipaddress.IPv4Network("0.0.0.0/0"),
        (ipaddress.IPv4Network("10.0.0.0/8"), ipaddress.IPv4Network("192.168.0.2/32")),
    ),
    IPBlock(ipaddress.IPv4Network("192.168.0.0/24")),
    IPBlock(ipaddress.IPv4Network("8.8.8.8/32")),
    IPBlock(ipaddress.IPv4Network("10.0.1.0/24"), (ipaddress.IPv4Network("10.0.1.12/30"),)),
    IPBlock(
        ipaddress.IPv4Network("10.0.0.0/8"),
        (ipaddress.IPv4Network("10.0.2.8/29"), ipaddress.IPv4Network("10.0.1.11/32")),
    ),
    IPBlock(ipaddress.IPv6Network("fd00::/64")),
)

NODES6 = (
    Node("n1", ipaddress.IPv6Address("fd00:192::1"), ipaddress.IPv6Network("fd00:10:1::/64")),
    Node("n2", ipaddress.IPv6Address("fd00:192::2"), ipaddress.IPv6Network("fd00:10:2::/64")),
)
EXTERNAL6 = ipaddress.IPv6Address("2001:db8::8")
BLOCKS6 = (
    IPBlock(ipaddress.IPv6Network("fd00:10::/32"), (ipaddress.IPv6Network("fd00:10:1::/120"),)),
    IPBlock(ipaddress.IPv6Network("fd00:10:1::/64")),
    IPBlock(ipaddress.IPv6Network("::/0"), (ipaddress.IPv6Network("fd00:10:2::/64"),)),
    IPBlock(
        ipaddress.IPv6Network("::/0"),
        (ipaddress.IPv6Network("fd00::/16"), ipaddress.IPv6Network("fd00:192::2/128")),
    ),
    IPBlock(ipaddress.IPv6Network("fd00:192::/64")),
    IPBlock(ipaddress.IPv6Network("2001:db8::8/128")),
    IPBlock(ipaddress.IPv6Network("fd00:10:1::/64"), (ipaddress.IPv6Network("fd00:10:1::c/126"),)),
    IPBlock(ipaddress.IPv4Network("0.0.0.0/0")),
    IPBlock(ipaddress.IPv4Network("10.0.0.0/8")),
)
NODES46 = tuple(
    dataclasses.replace(n, other_ips=(n6.internal_ip,), other_pod_cidrs=(n6.pod_cidr,))
    for n, n6 in zip(NODES, NODES6, strict=True)
)
FAMILY = {
    4: (NODES, BLOCKS, EXTERNAL),
    6: (NODES6, BLOCKS6, EXTERNAL6),
    46: (NODES46, BLOCKS[:-1] + BLOCKS6[:-2], EXTERNAL),
}
"""46: dual stack (IPv4 first, an IPv6 address beside it)."""

labels_st = st.dictionaries(
    st.sampled_from(["app", "tier"]), st.sampled_from(["x", "y"]), max_size=2
)


@st.composite
def selectors(draw: st.DrawFn) -> LabelSelector:
    ml = draw(labels_st)
    exprs: list[Requirement] = []
    if draw(st.booleans()):
        op = draw(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]))
        key = draw(st.sampled_from(["app", "tier", "team"]))
        vals = (
            tuple(sorted(set(draw(st.lists(st.sampled_from(["x", "y"]), min_size=1)))))
            if op in ("In", "NotIn")
            else ()
        )
        exprs.append(Requirement(key, op, vals))
    return LabelSelector(tuple(sorted(ml.items())), tuple(exprs))


@st.composite
def peers(draw: st.DrawFn, family: int = 4) -> Peer:
    shape = draw(st.sampled_from(["pod", "ns", "both", "block", "block"]))
    if shape == "block":
        return Peer(ip_block=draw(st.sampled_from(FAMILY[family][1])))
    pod = draw(selectors()) if shape in ("pod", "both") else None
    ns = draw(selectors()) if shape in ("ns", "both") else None
    return Peer(pod_selector=pod, namespace_selector=ns)


@st.composite
def policy_ports(draw: st.DrawFn) -> PolicyPort:
    proto = draw(st.sampled_from(["TCP", "UDP", "SCTP"]))
    kind = draw(st.sampled_from(["none", "num", "range", "named"]))
    if kind == "none":
        return PolicyPort(proto)
    if kind == "num":
        return PolicyPort(proto, draw(st.sampled_from([53, 80, 8080, 443])))
    if kind == "range":
        return PolicyPort(proto, 79, draw(st.sampled_from([81, 8080])))
    return PolicyPort(proto, draw(st.sampled_from(["http", "dns", "sc", "nope"])))


@st.composite
def rules(draw: st.DrawFn, family: int = 4) -> Rule:
    ps = draw(st.none() | st.lists(peers(family), min_size=1, max_size=2).map(tuple))
    ports = draw(st.none() | st.lists(policy_ports(), min_size=1, max_size=3).map(tuple))
    return Rule(ps, ports)


@st.composite
def policies(draw: st.DrawFn, index: int, family: int = 4) -> NetworkPolicy:
    ingress = tuple(draw(st.lists(rules(family), max_size=2)))
    egress = tuple(draw(st.lists(rules(family), max_size=2)))
    affects = draw(st.sampled_from([(True, False), (False, True), (True, True)]))
    return NetworkPolicy(
        namespace=draw(st.sampled_from(NAMESPACES)),
        name=f"p{index}",
        pod_selector=draw(selectors()),
        ingress=ingress,
        egress=egress,
        affects_ingress=affects[0],
        affects_egress=affects[1],
    )


@st.composite
def clusters(draw: st.DrawFn, family: int = 4) -> Cluster:
    nodes = FAMILY[family][0]
    n_pods = draw(st.integers(2, 5))
    pods = []
    for i in range(n_pods):
        node = draw(st.sampled_from(nodes))
        host = draw(st.integers(0, 7)) == 0
        ip = node.internal_ip if host else node.pod_cidr[10 + i]
        others = node.other_ips if host else tuple(c[10 + i] for c in node.other_pod_cidrs)
        ports = tuple(
            draw(st.lists(st.sampled_from(CONTAINER_PORTS), max_size=2, unique_by=lambda p: p.name))
        )
        pods.append(
            Pod(
                namespace=draw(st.sampled_from(NAMESPACES)),
                name=f"pod{i}",
                labels=draw(labels_st),
                node=node.name,
                ip=ip,
                host_network=host,
                ports=ports,
                other_ips=others,
            )
        )
    namespaces = {
        ns: Namespace(ns, {"kubernetes.io/metadata.name": ns, **draw(labels_st)})
        for ns in NAMESPACES
    }
    n_pol = draw(st.integers(1, 3))
    pols = [draw(policies(i, family)) for i in range(n_pol)]
    return Cluster(
        nodes=nodes,
        namespaces=namespaces,
        pods=tuple(sorted(pods, key=lambda p: p.key)),
        policies=tuple(sorted(pols, key=lambda p: p.key)),
    )


def _endpoints(cluster: Cluster) -> list[Endpoint]:
    eps = [pod_endpoint(cluster, p) for p in cluster.pods]
    eps += [node_endpoint(n) for n in cluster.nodes]
    external = (
        EXTERNAL6 if cluster.nodes and cluster.nodes[0].internal_ip.version == 6 else EXTERNAL
    )
    eps.append(Endpoint("external", None, None, external, str(external)))
    return eps


def _evaluator(cluster: Cluster, backend: Backend):  # type: ignore[no-untyped-def]
    @cache
    def prog(node: str):  # type: ignore[no-untyped-def]
        return program(render_node(cluster, node, backend=backend).render_text())

    def evaluate(node: str, packet: Packet) -> Decision:
        return prog(node).evaluate(packet)  # type: ignore[no-any-return]

    return evaluate


def check_cluster(cluster: Cluster) -> None:
    eps = _endpoints(cluster)
    for backend in BACKENDS:
        evaluate = _evaluator(cluster, backend)
        for node in cluster_nodes(cluster):
            evaluate(node, Packet("1.1.1.1", "1.1.1.2"))  # every node renders and parses
        for src in eps:
            for dst in eps:
                if src.kind != "pod" and dst.kind != "pod":
                    continue
                for proto, port in SERVICES:
                    flow = Flow(src, dst, proto, port)  # type: ignore[arg-type]
                    want = verdict(cluster, flow)
                    got, trail = enforce(flow, evaluate)
                    assert got == want.allowed, (
                        f"{backend}: {src.label} -> {dst.label} {flow.service}: "
                        f"semantics {want.allowed} ({want.reason}), rules {got}: "
                        + " / ".join(
                            f"{h.node} {h.packet.hook}: {d.verdict} {d.rule}" for h, d in trail
                        )
                    )
                    replies, _ = enforce(flow, evaluate, state="ESTABLISHED")
                    assert replies, f"{backend}: reply {src.label} -> {dst.label} dropped"


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
@given(clusters())
def test_rendered_rules_agree_with_semantics(cluster: Cluster) -> None:
    check_cluster(cluster)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
@given(clusters(family=6))
def test_rendered_rules_agree_with_semantics_ipv6(cluster: Cluster) -> None:
    """IPv6 flows (ICMP is ICMPv6) through both backends' IPv6 rules."""
    check_cluster(cluster)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)
@given(clusters(family=46))
def test_dual_stack_rules_agree_with_semantics_per_family(cluster: Cluster) -> None:
    """A dual-stack cluster probed over IPv4, then over IPv6: each family's flows meet
    that family's rules (ipBlocks of the other family never match them)."""
    check_cluster(in_family(cluster, 4))
    check_cluster(in_family(cluster, 6))


def test_seed_agrees_with_semantics() -> None:
    check_cluster(seed_cluster())


def _generator():  # type: ignore[no-untyped-def]
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "generator.py"
    spec = importlib.util.spec_from_file_location("sekisho_bench_generator", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed-{s}") for s in (1, 2)])
def test_generated_cluster_agrees_with_semantics(seed: int) -> None:
    """A realistic cluster (named ports, namespace selectors, ipBlock with except, DNS
    egress, default deny) from bench/generator.py: sampled flows, both backends."""
    import random

    from sekisho.model import cluster_from_objects

    cluster = cluster_from_objects(_generator().generate(300, policies=40, seed=seed))
    eps = _endpoints(cluster)
    services = [*SERVICES, ("TCP", 8080), ("TCP", 9090), ("TCP", 5432), ("TCP", 50051)]
    rng = random.Random(seed)
    sample = [(rng.choice(eps), rng.choice(eps), rng.choice(services)) for _ in range(1500)]
    denied = 0
    for backend in BACKENDS:
        evaluate = _evaluator(cluster, backend)
        for src, dst, (proto, port) in sample:
            if src.kind != "pod" and dst.kind != "pod":
                continue
            flow = Flow(src, dst, proto, port)  # type: ignore[arg-type]
            want = verdict(cluster, flow)
            got, trail = enforce(flow, evaluate)
            denied += not got
            assert got == want.allowed, (
                f"{backend}: {src.label} -> {dst.label} {flow.service}: semantics "
                f"{want.allowed} ({want.reason}), rules {got}: "
                + " / ".join(f"{h.node} {h.packet.hook}: {d.verdict} {d.rule}" for h, d in trail)
            )
    assert denied > 100, "the sample must exercise denials"
