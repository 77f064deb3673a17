"""Kubernetes NetworkPolicy (networking.k8s.io/v1) compiled into the policy program.

Exactly as Calico's converter does it (``libcalico-go``'s
``K8sNetworkPolicyToCalico``): each policy becomes a policy named
``knp.default.<name>`` of order 1000 in the default tier, applying to
``projectcalico.org/orchestrator == 'k8s'`` plus its ``podSelector`` in its
namespace, for the directions of ``policyTypes``; every rule allows. A rule
becomes one program rule per protocol of its ports and per peer (Calico's
order: protocols sorted, then peers), so the walk stays first-match while
"the ingress rules for each are combined additively" still holds: they all
allow, and an endpoint a policy selects is denied at the end of the default
tier when none matches.

The API reference's words are quoted above the code that implements them;
this is their one home in sekisho (the model only parses and defaults).
"""

from __future__ import annotations

from sekisho.model.types import LabelSelector, NetworkPolicy, Peer, PolicyPort, Rule
from sekisho.selectors.expr import Expr, conj, from_label_selector
from sekisho.semantics.labels import K8S_POD, entity_selector, in_namespace
from sekisho.semantics.program import (
    ANY_ENTITY,
    CALICO_UNIVERSE,
    DEFAULT_TIER,
    PROTOCOL_NUMBERS,
    Direction,
    EntityMatch,
    NamedPortSet,
    PortMatch,
    SelectorSet,
    net_set,
)
from sekisho.semantics.program import Policy as ProgramPolicy
from sekisho.semantics.program import Rule as ProgramRule

ORDER = 1000.0
"""Calico gives every Kubernetes NetworkPolicy order 1000."""


def policy_key(namespace: str, name: str) -> str:
    """The program key of a Kubernetes NetworkPolicy (Felix's ``ns/knp.default.name``)."""
    return f"{namespace}/knp.default.{name}"


def compile_policy(policy: NetworkPolicy) -> ProgramPolicy:
    """One Kubernetes NetworkPolicy as a program policy of the default tier."""
    ns = policy.namespace
    # podSelector: "Selects the pods to which this NetworkPolicy object applies. The array
    # of ingress rules is applied to any pods selected by this field. ... An empty
    # podSelector matches all pods in this namespace." hostNetwork pods have no workload
    # endpoint, so no selector ever selects them (the entities do not include them).
    key = (ns, policy.pod_selector)
    selector = _SUBJECTS.get(key)
    if selector is None:
        selector = SelectorSet(
            conj(in_namespace(ns), K8S_POD, from_label_selector(policy.pod_selector)),
            CALICO_UNIVERSE,
            f"pods in namespace {ns} matching {policy.pod_selector}",
        )
        if len(_SUBJECTS) < _CACHE_MAX:
            _SUBJECTS[key] = selector
    # policyTypes: "If this field is not specified, it will default based on the existence
    # of ingress or egress rules; policies that contain an egress section are assumed to
    # affect egress, and all policies (whether or not they contain an ingress section) are
    # assumed to affect ingress." (applied by the model as affects_ingress/affects_egress)
    types: set[Direction] = set()
    if policy.affects_ingress:
        types.add("ingress")
    if policy.affects_egress:
        types.add("egress")
    return ProgramPolicy(
        key=policy_key(ns, policy.name),
        label=policy.key,
        kind="NetworkPolicy",
        tier=DEFAULT_TIER,
        order=ORDER,
        selector=selector,
        types=frozenset(types),
        # ingress/egress: "If this field is empty then this NetworkPolicy does not allow any
        # traffic (and serves solely to ensure that the pods it selects are isolated by
        # default)." No rule: the endpoint reaches the end of the default tier: denied.
        ingress=_rules(policy, "ingress", policy.ingress),
        egress=_rules(policy, "egress", policy.egress),
        namespace=ns,
        source=policy.source,
    )


def _rules(
    policy: NetworkPolicy, direction: Direction, rules: tuple[Rule, ...]
) -> tuple[ProgramRule, ...]:
    out: list[ProgramRule] = []
    for i, rule in enumerate(rules):
        # NetworkPolicyIngressRule: "The traffic must match both ports and from."
        # NetworkPolicyEgressRule: "The traffic must match both ports and to."
        # from/to: "If this field is empty or missing, this rule matches all sources
        # (destinations) (traffic not restricted by source (destination)). If this field is
        # present and contains at least one item, this rule allows traffic only if the
        # traffic matches at least one item in the from (to) list."
        peers: tuple[tuple[int | None, Peer | None], ...] = (
            ((None, None),) if rule.peers is None else tuple(enumerate(rule.peers))
        )
        for protocol, ports, what in _protocol_ports(rule.ports):
            for j, peer in peers:
                side = _peer(policy.namespace, peer)
                port_match = _port_match(
                    ports, protocol, side if direction == "egress" else ANY_ENTITY
                )
                origin = f"{direction} rule {i} " + ("any peer" if j is None else f"peer {j}")
                if what:
                    origin += " " + what
                if direction == "egress":
                    src, dst = ANY_ENTITY, _with_ports(side, port_match)
                else:
                    src, dst = side, _with_ports(ANY_ENTITY, port_match)
                out.append(
                    ProgramRule(
                        action="allow",
                        origin=origin,
                        protocol=None if protocol is None else PROTOCOL_NUMBERS[protocol],
                        src=src,
                        dst=dst,
                    )
                )
    return tuple(out)


# Thousands of policies repeat a few shapes: the parts of a rule that do not depend on
# where it is written (or only on its namespace) are built once and shared (the program
# is immutable). Bounded, like the selector parser's cache.
_CACHE_MAX = 65536
_PORTS: dict[
    tuple[PolicyPort, ...] | None,
    list[tuple[str | None, tuple[PolicyPort, ...] | None, str]],
] = {}
_PEERS: dict[tuple[str | None, Peer], EntityMatch] = {}
_SUBJECTS: dict[tuple[str, LabelSelector], SelectorSet] = {}
_PORT_MATCHES: dict[tuple[tuple[PolicyPort, ...], str, int], tuple[object, PortMatch | None]] = {}
_DST: dict[tuple[int, int], tuple[object, object, EntityMatch]] = {}


def _with_ports(side: EntityMatch, ports: PortMatch | None) -> EntityMatch:
    """The destination side: a peer's nets and selector (egress) and the rule's ports."""
    if ports is None and side is ANY_ENTITY:
        return ANY_ENTITY
    key = (id(side), id(ports))
    got = _DST.get(key)
    if got is None:
        made = EntityMatch(
            nets=side.nets, not_nets=side.not_nets, selector=side.selector, ports=ports
        )
        got = (side, ports, made)  # keeps both alive, so their ids stay theirs
        if len(_DST) < _CACHE_MAX:
            _DST[key] = got
    return got[2]


def _protocol_ports(
    ports: tuple[PolicyPort, ...] | None,
) -> list[tuple[str | None, tuple[PolicyPort, ...] | None, str]]:
    """(protocol, its ports; None = every port of it, how the origin names them), protocols
    sorted; (None, None, "") = any."""
    got = _PORTS.get(ports)
    if got is None:
        got = [
            (proto, listed, "" if proto is None else _describe(proto, listed))
            for proto, listed in _split_ports(ports)
        ]
        if len(_PORTS) < _CACHE_MAX:
            _PORTS[ports] = got
    return got


def _split_ports(
    ports: tuple[PolicyPort, ...] | None,
) -> list[tuple[str | None, tuple[PolicyPort, ...] | None]]:
    # ports: "If this field is empty or missing, this rule matches all ports (traffic not
    # restricted by port). If this field is present and contains at least one item, then
    # this rule allows traffic only if the traffic matches at least one port in the list."
    if ports is None:
        return [(None, None)]
    by_proto: dict[str, list[PolicyPort] | None] = {}
    for pp in ports:
        # protocol: "The protocol (TCP, UDP, or SCTP) which traffic must match. If not
        # specified, this field defaults to TCP." (defaulted by the model)
        # port: "If this field is not provided, this matches all port names and numbers."
        if pp.port is None:
            by_proto[pp.protocol] = None
        elif pp.protocol not in by_proto or by_proto[pp.protocol] is not None:
            listed = by_proto.setdefault(pp.protocol, [])
            assert listed is not None
            listed.append(pp)
    return [
        (proto, None if listed is None else tuple(listed))
        for proto, listed in sorted(by_proto.items())
    ]


def _port_match(
    ports: tuple[PolicyPort, ...] | None, protocol: str | None, peer: EntityMatch
) -> PortMatch | None:
    if ports is None or protocol is None:
        return None
    key = (ports, protocol, id(peer.selector))
    got = _PORT_MATCHES.get(key)
    if got is None:
        got = (peer.selector, _make_port_match(ports, protocol, peer))  # keeps the id alive
        if len(_PORT_MATCHES) < _CACHE_MAX:
            _PORT_MATCHES[key] = got
    return got[1]


def _make_port_match(ports: tuple[PolicyPort, ...], protocol: str, peer: EntityMatch) -> PortMatch:
    ranges: list[tuple[int, int]] = []
    named: list[NamedPortSet] = []
    for pp in ports:
        if isinstance(pp.port, str):
            # port: "The port on the given protocol. This can either be a numerical or named
            # port on a pod." A named port matches the destination's declared container port
            # of that name and protocol (Calico: an IP set of (address, port) of the
            # endpoints the rule's destination selects that declare it).
            named.append(NamedPortSet(pp.port, PROTOCOL_NUMBERS[protocol], peer.selector))
        else:
            assert pp.port is not None
            # endPort: "indicates that the range of ports from port to endPort if set,
            # inclusive, should be allowed by the policy."
            ranges.append((pp.port, pp.end_port if pp.end_port is not None else pp.port))
    return PortMatch(tuple(sorted(set(ranges))), tuple(named))


def _describe(protocol: str, ports: tuple[PolicyPort, ...] | None) -> str:
    if ports is None:
        return f"{protocol}/*"
    return f"{protocol}/" + ",".join(
        str(p.port) if p.end_port is None else f"{p.port}-{p.end_port}" for p in ports
    )


def _peer(namespace: str, peer: Peer | None) -> EntityMatch:
    """A peer as a rule side: an ipBlock's nets and not-nets, or a scoped pod selector."""
    if peer is None:
        return ANY_ENTITY
    # Only a peer without a namespaceSelector (or ipBlock) depends on the namespace.
    scope = namespace if peer.namespace_selector is None and peer.ip_block is None else None
    key = (scope, peer)
    got = _PEERS.get(key)
    if got is None:
        got = _make_peer(namespace, peer)
        if len(_PEERS) < _CACHE_MAX:
            _PEERS[key] = got
    return got


def _make_peer(namespace: str, peer: Peer) -> EntityMatch:
    if peer.ip_block is not None:
        # ipBlock: "IPBlock defines policy on a particular IPBlock. If this field is set then
        # neither of the other fields can be." cidr: "a string representing the IPBlock";
        # except: "a slice of CIDRs that should not be included within an IPBlock". Calico
        # matches the addresses, pod IPs included (as the upstream conformance tests do).
        block = peer.ip_block
        return EntityMatch(
            nets=net_set([block.cidr]),
            not_nets=net_set(list(block.excepts)) if block.excepts else None,
        )
    # podSelector: "This is a label selector which selects Pods. This field follows standard
    # label selector semantics; if present but empty, it selects all pods. If
    # namespaceSelector is also set, then the NetworkPolicyPeer as a whole selects the Pods
    # matching podSelector in the Namespaces selected by NamespaceSelector. Otherwise it
    # selects the Pods matching podSelector in the policy's own Namespace."
    # namespaceSelector: "Selects Namespaces using cluster-scoped labels. This field follows
    # standard label selector semantics; if present but empty, it selects all namespaces."
    pods: Expr = K8S_POD
    if peer.pod_selector is not None:
        pods = conj(K8S_POD, from_label_selector(peer.pod_selector))
    nss = None if peer.namespace_selector is None else from_label_selector(peer.namespace_selector)
    selector = entity_selector(namespace, pods, nss)
    assert selector is not None
    if peer.namespace_selector is None:
        what = f"pods in namespace {namespace} matching {peer.pod_selector or '{}'}"
    else:
        what = f"pods matching {peer.pod_selector or '{}'} in namespaces matching {peer.namespace_selector}"
    return EntityMatch(selector=SelectorSet(selector, CALICO_UNIVERSE, what))
