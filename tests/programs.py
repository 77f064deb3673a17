"""Random policy programs (hypothesis strategies) over small clusters, for differential tests.

The programs are built directly as :class:`~sekisho.semantics.program.Program`
values, so they exercise what no single policy kind can: every action (allow,
deny, pass, log), several tiers with both end actions, orders and ties,
negated selectors, nets, ports and protocols, ICMP type and code, IP version,
named ports, selectors over namespace labels and node selectors. Consumers
(trace, matrix, the rendered rules) must agree on every pair of them.
"""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from sekisho.model.types import Cluster, ContainerPort, Namespace, Node, Pod
from sekisho.selectors.expr import ALL, Compare, Expr, Has, Not, conj, disj
from sekisho.semantics.labels import K8S_POD, NAMESPACE, NS_PREFIX
from sekisho.semantics.program import (
    CALICO_UNIVERSE,
    PROTOCOL_NUMBERS,
    Direction,
    EntityMatch,
    IcmpMatch,
    NamedPortSet,
    PortMatch,
    Program,
    Rule,
    SelectorSet,
    Tier,
    build_program,
    net_set,
)
from sekisho.semantics.program import Policy as ProgramPolicy

NODES = (
    Node(
        "n1",
        ipaddress.IPv4Address("192.168.0.1"),
        ipaddress.IPv4Network("10.0.1.0/24"),
        labels={"zone": "east"},
    ),
    Node(
        "n2",
        ipaddress.IPv4Address("192.168.0.2"),
        ipaddress.IPv4Network("10.0.2.0/24"),
        labels={"zone": "west"},
    ),
)
NAMESPACES = {
    "a": Namespace("a", {"kubernetes.io/metadata.name": "a", "team": "x"}),
    "b": Namespace("b", {"kubernetes.io/metadata.name": "b", "team": "y"}),
}
PORT_SETS = (
    (),
    (ContainerPort(80, "TCP", "http"),),
    (ContainerPort(8080, "TCP", "http"), ContainerPort(53, "UDP", "dns")),
    (ContainerPort(80, "SCTP", "sc"), ContainerPort(53, "UDP", "dns")),
)
NETS = ("10.0.0.0/16", "10.0.1.0/24", "10.0.2.0/25", "192.168.0.0/24", "0.0.0.0/0", "10.0.1.0/28")
PROBES: tuple[tuple[int | None, str], ...] = (
    (80, "TCP"),
    (8080, "TCP"),
    (53, "UDP"),
    (80, "SCTP"),
    (None, "ICMP"),
)

values = st.sampled_from(["1", "2"])


@st.composite
def label_terms(draw: st.DrawFn) -> Expr:
    key = draw(st.sampled_from(["app", "tier"]))
    kind = draw(st.sampled_from(["==", "!=", "in", "not in", "has", "!has", "starts with"]))
    if kind == "has":
        return Has(key)
    if kind == "!has":
        return Not(Has(key))
    if kind in ("in", "not in"):
        return Compare(key, kind, tuple(sorted(draw(st.sets(values, min_size=1, max_size=2)))))
    return Compare(key, kind, (draw(values),))  # type: ignore[arg-type]


@st.composite
def pod_selectors(draw: st.DrawFn) -> Expr:
    terms = draw(st.lists(label_terms(), max_size=2))
    base = conj(*terms) if draw(st.booleans()) or len(terms) < 2 else disj(*terms)
    scope = draw(st.sampled_from(["any", "ns-a", "ns-b", "team-x", "none"]))
    parts: list[Expr] = [K8S_POD]
    if scope == "ns-a":
        parts.append(Compare(NAMESPACE, "==", ("a",)))
    elif scope == "ns-b":
        parts.append(Compare(NAMESPACE, "==", ("b",)))
    elif scope == "team-x":
        parts.append(Compare(NS_PREFIX + "team", "==", ("x",)))
    return conj(*parts, base) if terms else conj(*parts)


@st.composite
def selector_sets(draw: st.DrawFn) -> SelectorSet:
    if draw(st.integers(0, 6)) == 0:
        zone = draw(st.sampled_from(["east", "west"]))
        return SelectorSet(Compare("zone", "==", (zone,)), frozenset(("node",)), "nodes")
    return SelectorSet(draw(pod_selectors()), CALICO_UNIVERSE, "pods")


@st.composite
def port_matches(draw: st.DrawFn, protocol: int, scope: SelectorSet | None) -> PortMatch:
    ranges = draw(
        st.lists(
            st.sampled_from([(80, 80), (53, 53), (8000, 8080), (1, 79), (1024, 65535)]),
            max_size=2,
        )
    )
    named: list[NamedPortSet] = []
    if draw(st.booleans()):
        named.append(NamedPortSet(draw(st.sampled_from(["http", "dns", "sc"])), protocol, scope))
    if not ranges and not named:
        ranges = [(80, 80)]
    return PortMatch(tuple(sorted(set(ranges))), tuple(named))


@st.composite
def sides(draw: st.DrawFn, protocol: int | None, with_ports: bool) -> EntityMatch:
    nets = not_nets = selector = not_selector = None
    ports = not_ports = None
    if draw(st.integers(0, 3)) == 0:
        nets = net_set([ipaddress.ip_network(draw(st.sampled_from(NETS)))])
    if draw(st.integers(0, 4)) == 0:
        not_nets = net_set([ipaddress.ip_network(draw(st.sampled_from(NETS)))])
    if draw(st.integers(0, 3)) == 0:
        selector = draw(selector_sets())
    if draw(st.integers(0, 5)) == 0:
        not_selector = draw(selector_sets())
    if with_ports and protocol is not None and protocol != PROTOCOL_NUMBERS["ICMP"]:
        if draw(st.integers(0, 2)) == 0:
            ports = draw(port_matches(protocol, selector))
        elif draw(st.integers(0, 5)) == 0:
            not_ports = draw(port_matches(protocol, selector))
    return EntityMatch(nets, not_nets, selector, not_selector, ports, not_ports)


@st.composite
def rules(draw: st.DrawFn, origin: str) -> Rule:
    action = draw(st.sampled_from(["allow", "allow", "deny", "pass", "log"]))
    protocol = draw(st.sampled_from([None, 6, 6, 17, 132, 1]))
    not_protocol = None
    if protocol is None and draw(st.integers(0, 4)) == 0:
        not_protocol = draw(st.sampled_from([6, 17, 1]))
    icmp = not_icmp = None
    if protocol == 1 and draw(st.booleans()):
        m = IcmpMatch(draw(st.sampled_from([8, 0])), draw(st.sampled_from([None, 0, 1])))
        if draw(st.booleans()):
            icmp = m
        else:
            not_icmp = m
    # Source ports too: a probe's comes from the ephemeral range (32768-60999), which
    # these ranges hold all of or none of, and the names are declared below it.
    src = draw(sides(protocol, True))
    dst = draw(sides(protocol, True))
    ip_version = 4 if draw(st.integers(0, 6)) == 0 else None
    return Rule(
        action,  # type: ignore[arg-type]
        origin,
        protocol=protocol,
        not_protocol=not_protocol,
        icmp=icmp,
        not_icmp=not_icmp,
        ip_version=ip_version,
        src=src,
        dst=dst,
    )


@st.composite
def programs(draw: st.DrawFn) -> Program:
    tiers = [
        Tier("platform", 100.0, draw(st.sampled_from(["deny", "pass"]))),
        Tier("default", 1_000_000.0, "deny"),
        Tier("baseline", None, draw(st.sampled_from(["deny", "pass"]))),
    ]
    policies: list[ProgramPolicy] = []
    for i in range(draw(st.integers(1, 6))):
        types: set[Direction] = set(
            draw(st.sampled_from([["ingress"], ["egress"], ["ingress", "egress"]]))
        )  # type: ignore[arg-type]
        ingress = tuple(draw(rules(f"ingress rule {j}")) for j in range(draw(st.integers(0, 3))))
        egress = tuple(draw(rules(f"egress rule {j}")) for j in range(draw(st.integers(0, 3))))
        policies.append(
            ProgramPolicy(
                key=f"p{i}",
                label=f"p{i}",
                kind="test",
                tier=draw(st.sampled_from(["platform", "default", "baseline"])),
                order=draw(st.sampled_from([None, 10.0, 20.0, 20.0])),
                selector=SelectorSet(
                    draw(pod_selectors()) if draw(st.integers(0, 2)) == 0 else conj(K8S_POD),
                    CALICO_UNIVERSE,
                ),
                types=frozenset(types),
                ingress=ingress,
                egress=egress,
            )
        )
    return build_program(policies, tiers)


@st.composite
def clusters(draw: st.DrawFn) -> Cluster:
    n = draw(st.integers(1, 6))
    pods: list[Pod] = []
    for i in range(n):
        host_network = draw(st.integers(0, 3)) == 0
        node_index = draw(st.integers(0, 1))
        ip = (
            f"192.168.0.{node_index + 1}"
            if host_network
            else f"10.0.{node_index + 1}.{draw(st.integers(2, 20)) + 20 * i}"
        )
        labels = draw(st.dictionaries(st.sampled_from(["app", "tier"]), values, max_size=2))
        ns = draw(st.sampled_from(["a", "b"]))
        pods.append(
            Pod(
                ns,
                f"p{i}",
                labels,
                f"n{node_index + 1}",
                ipaddress.ip_address(ip),
                host_network,
                draw(st.sampled_from(PORT_SETS)),
            )
        )
    return Cluster(
        nodes=NODES,
        namespaces=dict(NAMESPACES),
        pods=tuple(sorted(pods, key=lambda p: (p.namespace, p.name))),
    )


ANY = ALL
