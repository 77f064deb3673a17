"""The network-policy-api's cluster-wide policies compiled into the policy program, in
Calico's tiers.

ClusterNetworkPolicy (``v1alpha2``) says where each policy sits: "Policy tiers
are evaluated in the following order: Admin tier, NetworkPolicy tier, Baseline
tier." AdminNetworkPolicy and BaselineAdminNetworkPolicy (``v1alpha1``) are the
Admin and the Baseline tier of the older API. Calico implements them as its
converter does (``libcalico-go`` ``K8sClusterNetworkPolicyToCalico``), and so
does this module:

* each policy becomes a global policy of tier ``kube-admin`` (order 1000) or
  ``kube-baseline`` (order 10,000,000), around the ``default`` tier (order
  1,000,000) where Kubernetes NetworkPolicies live; both tiers end with Pass;
* its order inside the tier is its ``priority`` ("Policies with lower priority
  values have higher precedence"); a BaselineAdminNetworkPolicy has none (there is
  only one) and comes last in its tier;
* it applies to ``projectcalico.org/orchestrator == 'k8s'`` pods of the subject,
  for the directions that have rules ("The ANP Tiers are default-Pass so the only
  reason to enable a policy type is if we have rules");
* a rule becomes one program rule per protocol of its ports (sorted) and per
  peer, in that order, each with the rule's action: Accept/Allow allows, Deny
  denies, Pass goes on to the next tier.

Where Calico's converter refuses a field (``nodes`` peers, named ports,
``domainNames``: it drops the rule, or replaces a Deny/Pass rule by a deny-all),
sekisho follows the API text instead: a ``nodes`` peer matches the addresses of
the selected nodes ("node" entities; a hostNetwork pod is its node), a named port
matches the destination pod's container port of that name whatever its protocol.
A ``domainNames`` peer (Accept/Allow rules only) cannot be resolved offline: it
matches no traffic, which is the API's "fail closed" for an Accept rule, and the
program's notes say so.
"""

from __future__ import annotations

from sekisho.model.npa import ClusterPeer, ClusterPolicy, ClusterPort, ClusterRule, NamespacedPods
from sekisho.model.types import PROTOCOLS, LabelSelector
from sekisho.selectors.expr import Expr, conj, from_label_selector
from sekisho.semantics.labels import K8S_POD, namespace_selector
from sekisho.semantics.program import (
    ANY_ENTITY,
    CALICO_UNIVERSE,
    KUBE_ADMIN_TIER,
    KUBE_ADMIN_TIER_ORDER,
    KUBE_BASELINE_TIER,
    KUBE_BASELINE_TIER_ORDER,
    PROTOCOL_NUMBERS,
    Action,
    Direction,
    EntityKind,
    EntityMatch,
    NamedPortSet,
    PortMatch,
    SelectorSet,
    Tier,
    net_set,
)
from sekisho.semantics.program import Policy as ProgramPolicy
from sekisho.semantics.program import Rule as ProgramRule

TIERS = (
    Tier(KUBE_ADMIN_TIER, KUBE_ADMIN_TIER_ORDER, "pass"),
    Tier(KUBE_BASELINE_TIER, KUBE_BASELINE_TIER_ORDER, "pass"),
)
"""The tiers of the cluster-wide policies (the default tier sits between them)."""

NODES: frozenset[EntityKind] = frozenset(("node",))

_KEY_PREFIX = {
    ("ClusterNetworkPolicy", "Admin"): "kcnp.kube-admin.",
    ("ClusterNetworkPolicy", "Baseline"): "kcnp.kube-baseline.",
    ("AdminNetworkPolicy", "Admin"): "kanp.adminnetworkpolicy.",
    ("BaselineAdminNetworkPolicy", "Baseline"): "kbanp.baselineadminnetworkpolicy.",
}
"""Felix's policy names (``names.K8sCNPAdminTierNamePrefix`` and the others)."""

_ACTIONS: dict[str, Action] = {"Accept": "allow", "Allow": "allow", "Deny": "deny", "Pass": "pass"}


def policy_key(policy: ClusterPolicy) -> str:
    """The program key of a cluster-wide policy (Felix's name, e.g. ``kcnp.kube-admin.x``)."""
    return _KEY_PREFIX[(policy.kind, policy.tier)] + policy.name


def compile_policies(
    policies: tuple[ClusterPolicy, ...] | list[ClusterPolicy],
) -> tuple[list[ProgramPolicy], list[str]]:
    """Every cluster-wide policy as a program policy, and the notes of what they cannot say."""
    out: list[ProgramPolicy] = []
    notes: list[str] = []
    for p in policies:
        out.append(compile_policy(p, notes))
    return out, notes


def compile_policy(policy: ClusterPolicy, notes: list[str] | None = None) -> ProgramPolicy:
    """One cluster-wide policy as a program policy of its tier."""
    notes = notes if notes is not None else []
    label = f"{policy.kind} {policy.name}"
    ingress = _rules(policy, label, "ingress", policy.ingress, notes)
    egress = _rules(policy, label, "egress", policy.egress, notes)
    # "The ANP Tiers are default-Pass so the only reason to enable a policy type is if we
    # have rules." ("CNPs with no ingress rules do not affect ingress traffic.")
    types: set[Direction] = set()
    if ingress:
        types.add("ingress")
    if egress:
        types.add("egress")
    return ProgramPolicy(
        key=policy_key(policy),
        label=label,
        kind=policy.kind,
        tier=KUBE_ADMIN_TIER if policy.tier == "Admin" else KUBE_BASELINE_TIER,
        # priority: "Policies with lower priority values have higher precedence, and are
        # checked before policies with higher priority values in the same tier."
        order=None if policy.priority is None else float(policy.priority),
        selector=_subject(policy),
        types=frozenset(types),
        ingress=ingress,
        egress=egress,
        source=policy.source,
    )


def _subject(policy: ClusterPolicy) -> SelectorSet:
    # subject: "Subject defines the pods to which this ClusterNetworkPolicy applies. ...
    # Note that host-networked pods are not included in subject selection." (they are no
    # workload endpoints). Calico: NamespaceSelector from the subject, Selector
    # "projectcalico.org/orchestrator == 'k8s'" plus the pod selector.
    if policy.subject_namespaces is not None:
        nss = policy.subject_namespaces
        expr = conj(_namespaces(nss), K8S_POD)
        what = f"pods in namespaces matching {nss}"
    else:
        assert policy.subject_pods is not None
        expr = _pods(policy.subject_pods)
        what = _describe_pods(policy.subject_pods)
    return SelectorSet(expr, CALICO_UNIVERSE, what)


def _namespaces(sel: LabelSelector) -> Expr:
    """A namespace label selector over endpoint labels (``pcns.`` keys; {} is every namespace)."""
    return namespace_selector(from_label_selector(sel))


def _pods(pods: NamespacedPods) -> Expr:
    # NamespacedPod: "NamespaceSelector follows standard label selector semantics; if
    # empty, it selects all Namespaces." "PodSelector is used to explicitly select pods
    # within a namespace; if empty, it selects all Pods."
    return conj(
        _namespaces(pods.namespace_selector), K8S_POD, from_label_selector(pods.pod_selector)
    )


def _describe_pods(pods: NamespacedPods) -> str:
    return f"pods matching {pods.pod_selector} in namespaces matching {pods.namespace_selector}"


def _peer(peer: ClusterPeer) -> EntityMatch | None:
    """A peer as a rule side; None for a peer that matches nothing offline (domainNames)."""
    if peer.namespaces is not None:
        # namespaces: "Namespaces defines a way to select all pods within a set of
        # Namespaces. Note that host-networked pods are not included in this type of peer."
        what = f"pods in namespaces matching {peer.namespaces}"
        return EntityMatch(
            selector=SelectorSet(_namespaces(peer.namespaces), CALICO_UNIVERSE, what)
        )
    if peer.pods is not None:
        # pods: "Pods defines a way to select a set of pods in a set of namespaces. Note that
        # host-networked pods are not included in this type of peer."
        return EntityMatch(
            selector=SelectorSet(_pods(peer.pods), CALICO_UNIVERSE, _describe_pods(peer.pods))
        )
    if peer.nodes is not None:
        # nodes: "Nodes defines a way to select a set of nodes in the cluster (based on the
        # node's labels). It selects the nodeIPs as the peer type by matching on the IPs
        # present in the node.Status.Addresses field of the node."
        what = f"nodes matching {peer.nodes}"
        return EntityMatch(selector=SelectorSet(from_label_selector(peer.nodes), NODES, what))
    if peer.networks:
        # networks: "Networks defines a way to select peers via CIDR blocks. ... note that
        # cluster-internal traffic will be checked against the rule as well. So if you
        # Accept or Deny traffic to "0.0.0.0/0", that will allow or deny all IPv4
        # pod-to-pod traffic as well."
        return EntityMatch(nets=net_set(list(peer.networks)))
    return None


def _rules(
    policy: ClusterPolicy,
    label: str,
    direction: Direction,
    rules: tuple[ClusterRule, ...],
    notes: list[str],
) -> tuple[ProgramRule, ...]:
    # ingress/egress: "The relative precedence of ingress rules within a single CNP object
    # (all of which share the priority) will be determined by the order in which the rule
    # is written. Thus, a rule that appears at the top of the ingress rules would take the
    # highest precedence."
    out: list[ProgramRule] = []
    peers_field = "from" if direction == "ingress" else "to"
    for i, rule in enumerate(rules):
        # action: "Accept: Accepts the selected traffic ... Deny: Drops the selected
        # traffic ... Pass: Skips all further ClusterNetworkPolicy rules in the current tier
        # for the selected traffic, and passes evaluation to the next tier."
        action = _ACTIONS[rule.action]
        named = f' "{rule.name}"' if rule.name else ""
        sides: list[tuple[int, EntityMatch]] = []
        for j, peer in enumerate(rule.peers):
            side = _peer(peer)
            if side is None:
                notes.append(
                    f"{label} {direction} rule {i}{named} {peers_field}[{j}]: domainNames "
                    f"({', '.join(peer.domain_names)}) are not resolved offline: this peer "
                    "matches no traffic (its Accept applies to the rule's other peers only)"
                )
                continue
            sides.append((j, side))
        # from/to: "If any element matches the source (destination) of ... traffic then the
        # specified action is applied." protocols/ports: "If unspecified, protocol-specific
        # attributes will not be used to match traffic."
        for protocol, ports in _protocol_ports(rule.ports):
            for j, side in sides:
                scope = side.selector if direction == "egress" else None
                port_match = _port_match(ports, protocol, scope)
                origin = f"{direction} rule {i}{named} peer {j}"
                if protocol is not None:
                    origin += f" {protocol}/{_describe(ports)}"
                peer_side = side if direction == "egress" else ANY_ENTITY
                out.append(
                    ProgramRule(
                        action=action,
                        origin=origin,
                        protocol=None if protocol is None else PROTOCOL_NUMBERS[protocol],
                        src=side if direction == "ingress" else ANY_ENTITY,
                        dst=EntityMatch(
                            nets=peer_side.nets,
                            selector=peer_side.selector,
                            ports=port_match,
                        ),
                    )
                )
    return tuple(out)


def _protocol_ports(
    ports: tuple[ClusterPort, ...] | None,
) -> list[tuple[str | None, tuple[ClusterPort, ...] | None]]:
    """(protocol, its ports), protocols sorted (Calico's ``unpackCNPProtocols``); (None,
    None) when the rule has no ports: every protocol, every port.

    A named port has no protocol of its own: "DestinationNamedPort selects a destination
    port on a pod based on the ContainerPort name", and the container port says TCP, UDP
    or SCTP; so it joins every protocol, and matches only where the pod declares it so.
    """
    if ports is None:
        return [(None, None)]
    by_proto: dict[str, list[ClusterPort]] = {}
    for p in ports:
        for proto in (p.protocol,) if p.protocol is not None else PROTOCOLS:
            by_proto.setdefault(proto, []).append(p)
    return [(proto, tuple(listed)) for proto, listed in sorted(by_proto.items())]


def _describe(ports: tuple[ClusterPort, ...] | None) -> str:
    if ports is None:
        return "*"
    return ",".join(
        p.name if p.name is not None else str(p.start) if p.start == p.end else f"{p.start}-{p.end}"
        for p in ports
    )


def _port_match(
    ports: tuple[ClusterPort, ...] | None, protocol: str | None, scope: SelectorSet | None
) -> PortMatch | None:
    if ports is None or protocol is None:
        return None
    ranges: list[tuple[int, int]] = []
    named: list[NamedPortSet] = []
    for p in ports:
        if p.name is not None:
            # A named port is the set of (address, port) of the destination endpoints (in the
            # rule's destination selector, for egress) that declare it with this protocol.
            named.append(NamedPortSet(p.name, PROTOCOL_NUMBERS[protocol], scope))
        else:
            assert p.start is not None and p.end is not None
            # range: "PortRange defines an inclusive range of ports from the assigned Start
            # value to End value."
            ranges.append((p.start, p.end))
    return PortMatch(tuple(sorted(set(ranges))), tuple(named))
