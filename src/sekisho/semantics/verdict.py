"""THE meaning of policy for one flow: allowed or not, and why.

The field descriptions quoted in comments are from the networking.k8s.io/v1
API reference; the code under each quote implements it. Where Calico's
dataplane decides something the API leaves open (node traffic, hostNetwork
pods, ipBlock against pod IPs) the comment says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sekisho.model.types import Cluster, NetworkPolicy, Peer, Pod, PolicyPort, Rule
from sekisho.selectors.labels import first_unsatisfied, format_labels
from sekisho.semantics.endpoint import Endpoint, Flow

Direction = Literal["ingress", "egress"]


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """A rule that allowed the flow: which policy, rule, peer and port decided."""

    policy: NetworkPolicy
    direction: Direction
    rule: int
    peer: int | None
    """Index of the first matching peer; None when the rule has no peers (every peer)."""
    port: int | None
    """Index of the first matching port; None when the rule has no ports (every port)."""

    def __str__(self) -> str:
        rule = (
            self.policy.ingress[self.rule]
            if self.direction == "ingress"
            else self.policy.egress[self.rule]
        )
        peer = "any peer" if self.peer is None else f"peer {self.peer}"
        if self.port is None or rule.ports is None:
            port = "any port"
        else:
            port = f"port {self.port} ({rule.ports[self.port]})"
        return f"{self.policy.key} {self.direction} rule {self.rule}: {peer}, {port}"

    def to_json(self) -> dict[str, object]:
        return {
            "policy": self.policy.key,
            "rule": self.rule,
            "peer": self.peer,
            "port": self.port,
        }


@dataclass(frozen=True, slots=True)
class RuleExplanation:
    """Why one rule of a selecting policy did not match (rule None: the policy has no rules)."""

    policy: NetworkPolicy
    direction: Direction
    rule: int | None
    reasons: tuple[str, ...]

    def __str__(self) -> str:
        where = f"rule {self.rule}" if self.rule is not None else "no rules"
        return f"{self.policy.key} {self.direction} {where}: " + "; ".join(self.reasons)

    def to_json(self) -> dict[str, object]:
        return {"policy": self.policy.key, "rule": self.rule, "reasons": list(self.reasons)}


@dataclass(frozen=True, slots=True)
class DirectionVerdict:
    """One side of a flow: the source pod's egress or the destination pod's ingress."""

    direction: Direction
    endpoint: Endpoint
    """The pod whose isolation is judged."""
    allowed: bool
    isolated: bool
    policies: tuple[NetworkPolicy, ...]
    """The policies that select ``endpoint`` for this direction (in cluster order)."""
    matches: tuple[RuleMatch, ...]
    explanations: tuple[RuleExplanation, ...]
    """For each selecting policy, each rule that did not match and why."""

    def lines(self) -> list[str]:
        head = f"{self.direction} of {self.endpoint.label}"
        if not self.isolated:
            return [f"{head}: not isolated (no policy selects it for {self.direction}): allowed"]
        out = [
            f"{head}: isolated by {len(self.policies)} polic{'y' if len(self.policies) == 1 else 'ies'}"
        ]
        out += [f"  - {p.key} ({p.source})" for p in self.policies]
        out += [f"  allowed by {m}" for m in self.matches]
        if not self.matches:
            out += [f"  no match: {e}" for e in self.explanations]
            out.append(f"  {self.direction} denied: no rule of a selecting policy matches")
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "endpoint": self.endpoint.label,
            "allowed": self.allowed,
            "isolated": self.isolated,
            "policies": [{"name": p.key, "source": str(p.source)} for p in self.policies],
            "matches": [m.to_json() for m in self.matches],
            "explanations": [e.to_json() for e in self.explanations],
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a flow is allowed, the reason, and both sides' evaluation."""

    flow: Flow
    allowed: bool
    reason: str
    """``self``, ``same-node``, ``unfiltered``, ``not-isolated``, ``policy``,
    ``egress-denied``, ``ingress-denied`` or ``denied`` (both sides)."""
    egress: DirectionVerdict | None
    """None when the source is not a workload pod (its egress is not evaluated)."""
    ingress: DirectionVerdict | None
    """None when the destination is not a workload pod, or the source is its own node."""

    def lines(self) -> list[str]:
        f = self.flow
        out = [f"flow: {f.src.describe()} -> {f.dst.describe()} {f.service}"]
        if self.reason == "self":
            out.append("a pod's traffic to itself never leaves the pod: not filtered")
        elif self.reason == "same-node":
            who = (
                f"node {f.src.label} is"
                if f.src.kind == "node"
                else f"{f.src.label} (hostNetwork) runs on"
            )
            out.append(
                f"{who} {f.dst.label}'s own node: traffic from the local node is never filtered"
            )
        if self.egress is not None:
            out += self.egress.lines()
        elif self.reason != "self":
            out.append(f"egress: not evaluated ({_why_unfiltered(f.src, 'source')})")
        if self.ingress is not None:
            out += self.ingress.lines()
        elif self.reason not in ("self", "same-node"):
            out.append(f"ingress: not evaluated ({_why_unfiltered(f.dst, 'destination')})")
        out.append(f"verdict: {'ALLOWED' if self.allowed else 'DENIED'} ({self.reason})")
        if self.allowed:
            out.append(
                "replies of this connection are allowed (stateful: ESTABLISHED,RELATED accepted first)"
            )
        return out

    def to_json(self) -> dict[str, object]:
        f = self.flow
        return {
            "from": f.src.label,
            "to": f.dst.label,
            "protocol": f.protocol,
            "port": f.port,
            "allowed": self.allowed,
            "reason": self.reason,
            "replies_allowed": self.allowed,
            "egress": self.egress.to_json() if self.egress is not None else None,
            "ingress": self.ingress.to_json() if self.ingress is not None else None,
        }


def _why_unfiltered(end: Endpoint, role: str) -> str:
    if end.pod is not None and end.pod.host_network:
        return f"{end.label} is a hostNetwork pod: policy treats it as its node {end.node_name}"
    if end.kind == "node":
        if role == "source":
            return f"node {end.label} sends from the host: it passes no pod's endpoint chain"
        return f"node {end.label} is not a pod: only the source's egress applies"
    if role == "source":
        return f"{end.label} is outside the cluster: it has no egress policy"
    return f"{end.label} is outside the cluster: only the source's egress applies"


# --- peers ---------------------------------------------------------------------------------------


def peer_mismatch(
    cluster: Cluster, policy: NetworkPolicy, peer: Peer, other: Endpoint
) -> str | None:
    """None when ``peer`` (of a rule of ``policy``) matches the endpoint ``other``, else why not."""
    if peer.ip_block is not None:
        # "IPBlock defines policy on a particular IPBlock. If this field is set then
        # neither of the other fields can be." / "cidr is a string representing the
        # IPBlock" / "except is a slice of CIDRs that should not be included within an
        # IPBlock". Calico and upstream conformance match
        # ipBlocks against pod IPs as well as against node and external IPs.
        block = peer.ip_block
        ip = other.ip
        if ip.version != block.cidr.version or ip not in block.cidr:
            return f"{ip} is not in ipBlock {block.cidr}"
        for ex in block.excepts:
            if ip in ex:
                return f"{ip} is in except {ex} of ipBlock {block.cidr}"
        return None
    # Selector peers select pods, and only pods with their own network namespace:
    # a node, an external address or a hostNetwork pod (which is its node) never matches.
    pod = other.pod
    if pod is None or pod.host_network:
        return f"{other.describe()} is not a pod network endpoint; selectors match only pods"
    if peer.namespace_selector is not None:
        # namespaceSelector: "Selects Namespaces using cluster-scoped labels. This field
        # follows standard label selector semantics; if present but empty, it selects all
        # namespaces. If PodSelector is also set, then the NetworkPolicyPeer as a whole
        # selects the Pods matching PodSelector in the Namespaces selected by
        # NamespaceSelector. Otherwise it selects all Pods in the Namespaces selected by
        # NamespaceSelector."
        ns_labels = cluster.namespace_labels(pod.namespace)
        req = first_unsatisfied(peer.namespace_selector, ns_labels)
        if req is not None:
            return (
                f"namespace {pod.namespace} labels {format_labels(ns_labels)} do not satisfy {req}"
            )
    elif pod.namespace != policy.namespace:
        # podSelector: "... Otherwise it selects the Pods matching PodSelector in the
        # policy's own Namespace."
        return f"pod {pod.key} is not in the policy's namespace {policy.namespace}"
    if peer.pod_selector is not None:
        # podSelector: "This is a label selector which selects Pods. This field follows
        # standard label selector semantics; if present but empty, it selects all pods."
        req = first_unsatisfied(peer.pod_selector, pod.labels)
        if req is not None:
            return f"pod labels {format_labels(pod.labels)} do not satisfy {req}"
    return None


# --- ports ---------------------------------------------------------------------------------------


def port_mismatch(pp: PolicyPort, flow: Flow, dst: Endpoint) -> str | None:
    """None when the policy port matches the flow to ``dst``, else a short reason."""
    # protocol: "The protocol (TCP, UDP, or SCTP) which traffic must match. If not
    # specified, this field defaults to TCP." ICMP (or any other protocol) can never
    # match a rule that lists ports.
    if flow.protocol != pp.protocol:
        return f"{flow.service} is not {pp}"
    # port: "The port on the given protocol. This can either be a numerical or named
    # port on a pod. If this field is not provided, this matches all port names and
    # numbers. If present, only traffic on the specified protocol AND port will be matched."
    if pp.port is None:
        return None
    assert flow.port is not None
    if isinstance(pp.port, int):
        # endPort: "indicates that the range of ports from port to endPort if set,
        # inclusive, should be allowed by the policy."
        end = pp.end_port if pp.end_port is not None else pp.port
        if pp.port <= flow.port <= end:
            return None
        return f"{flow.service} is not {pp}"
    # A named port is resolved against the destination pod's container ports with the
    # same name and protocol; a non-pod destination has no named ports.
    pod = dst.pod
    if pod is None or pod.host_network:
        return f"{flow.service} is not {pp} ({dst.label} is not a pod: named ports never match)"
    number = pod.named_port(pp.port, pp.protocol)
    if number is None:
        return (
            f"{flow.service} is not {pp} ({pod.key} declares no {pp.protocol} port named {pp.port})"
        )
    if number != flow.port:
        return (
            f"{flow.service} is not {pp} ({pod.key} declares {pp.port} as {pp.protocol}/{number})"
        )
    return None


# --- one direction -------------------------------------------------------------------------------


def selecting_policies(
    cluster: Cluster, pod: Pod, direction: Direction
) -> tuple[NetworkPolicy, ...]:
    """The policies that select ``pod`` and affect ``direction``."""
    # podSelector: "Selects the pods to which this NetworkPolicy object applies. ...
    # Multiple network policies can select the same set of pods. In this case, the
    # ingress rules for each are combined additively. ... An empty podSelector matches
    # all pods in this namespace." hostNetwork pods are never selected (they are their node).
    # policyTypes: "If this field is not specified, it will default based on the existence
    # of ingress or egress rules" (applied by the model as affects_ingress/affects_egress).
    if pod.host_network:
        return ()
    out = []
    for pol in cluster.policies:
        affects = pol.affects_ingress if direction == "ingress" else pol.affects_egress
        if affects and pol.namespace == pod.namespace and pol.pod_selector.matches(pod.labels):
            out.append(pol)
    return tuple(out)


def _rule(
    cluster: Cluster,
    policy: NetworkPolicy,
    direction: Direction,
    index: int,
    rule: Rule,
    other: Endpoint,
    flow: Flow,
) -> RuleMatch | RuleExplanation:
    # NetworkPolicyIngressRule: "The traffic must match both ports and from."
    # NetworkPolicyEgressRule: "The traffic must match both ports and to."
    reasons: list[str] = []
    peer_hit: int | None = None
    if rule.peers is not None:
        # from/to: "If this field is empty or missing, this rule matches all sources
        # (traffic not restricted by source). If this field is present and contains at
        # least one item, this rule allows traffic only if the traffic matches at least
        # one item in the from list."
        # to: "If this field is empty or missing, this rule matches all destinations
        # (traffic not restricted by destination). If this field is present and contains
        # at least one item, this rule allows traffic only if the traffic matches at least
        # one item in the to list."
        for i, peer in enumerate(rule.peers):
            why = peer_mismatch(cluster, policy, peer, other)
            if why is None:
                peer_hit = i
                break
            reasons.append(f"peer {i}: {why}")
        if peer_hit is None:
            reasons = reasons or ["no peers"]
    port_hit: int | None = None
    if rule.ports is not None:
        # ports: "If this field is empty or missing, this rule matches all ports (traffic
        # not restricted by port). If this field is present and contains at least one item,
        # then this rule allows traffic only if the traffic matches at least one port in the list."
        port_reasons = []
        for i, pp in enumerate(rule.ports):
            why = port_mismatch(pp, flow, flow.dst)
            if why is None:
                port_hit = i
                break
            port_reasons.append(why)
        if port_hit is None:
            reasons.append("ports: " + _join_port_reasons(flow, rule.ports, port_reasons))
    peers_ok = rule.peers is None or peer_hit is not None
    ports_ok = rule.ports is None or port_hit is not None
    if peers_ok and ports_ok:
        return RuleMatch(policy, direction, index, peer_hit, port_hit)
    return RuleExplanation(policy, direction, index, tuple(reasons))


def _join_port_reasons(flow: Flow, ports: tuple[PolicyPort, ...], reasons: list[str]) -> str:
    details = [r.partition(" (")[2].rstrip(")") for r in reasons]
    text = f"{flow.service} is not " + ", ".join(str(p) for p in ports)
    extra = [d for d in details if d]
    return text + (f" ({'; '.join(extra)})" if extra else "")


def evaluate_direction(
    cluster: Cluster, direction: Direction, subject: Endpoint, other: Endpoint, flow: Flow
) -> DirectionVerdict:
    """Judge one side: ``subject`` is the pod whose policies count, ``other`` the far end."""
    assert subject.pod is not None
    policies = selecting_policies(cluster, subject.pod, direction)
    matches: list[RuleMatch] = []
    explanations: list[RuleExplanation] = []
    for pol in policies:
        rules = pol.ingress if direction == "ingress" else pol.egress
        if not rules:
            # ingress/egress: "If this field is empty then this NetworkPolicy does not allow
            # any traffic (and serves solely to ensure that the pods it selects are isolated
            # by default)."
            explanations.append(
                RuleExplanation(pol, direction, None, (f"no {direction} rules: it only isolates",))
            )
            continue
        for i, rule in enumerate(rules):
            result = _rule(cluster, pol, direction, i, rule, other, flow)
            if isinstance(result, RuleMatch):
                matches.append(result)
            else:
                explanations.append(result)
    # "Traffic is allowed to a pod if there are no NetworkPolicies selecting the pod ...
    # OR if the traffic matches at least one ingress rule across all of the NetworkPolicy
    # objects whose podSelector matches the pod." (and the same for egress)
    isolated = bool(policies)
    allowed = not isolated or bool(matches)
    return DirectionVerdict(
        direction, subject, allowed, isolated, policies, tuple(matches), tuple(explanations)
    )


# --- the flow ------------------------------------------------------------------------------------


def verdict(cluster: Cluster, flow: Flow) -> Verdict:
    """Whether ``flow`` is allowed, with the reason and both sides' evaluation."""
    src, dst = flow.src, flow.dst
    # A pod to itself never leaves the pod.
    if src.pod is not None and dst.pod is not None and src.pod.key == dst.pod.key:
        return Verdict(flow, True, "self", None, None)
    # Egress is policed only for workload pods (hostNetwork pods are their node, and
    # node-originated traffic does not pass an endpoint chain).
    egress = evaluate_direction(cluster, "egress", src, dst, flow) if src.is_workload else None
    # "Traffic is allowed to a pod if ... the traffic source is the pod's local node":
    # a node (or hostNetwork pod) reaching a pod on the same node is never filtered.
    same_node = (
        dst.is_workload
        and src.is_node_like
        and src.node_name is not None
        and dst.pod is not None
        and src.node_name == dst.pod.node
    )
    ingress = None
    if dst.is_workload and not same_node:
        ingress = evaluate_direction(cluster, "ingress", dst, src, flow)
    eg_ok = egress is None or egress.allowed
    in_ok = ingress is None or ingress.allowed
    allowed = eg_ok and in_ok
    if not eg_ok and not in_ok:
        reason = "denied"
    elif not eg_ok:
        reason = "egress-denied"
    elif not in_ok:
        reason = "ingress-denied"
    elif same_node and egress is None:
        reason = "same-node"
    elif egress is None and ingress is None:
        reason = "unfiltered"
    elif (egress is not None and egress.isolated) or (ingress is not None and ingress.isolated):
        reason = "policy"
    else:
        reason = "not-isolated"
    return Verdict(flow, allowed, reason, egress, ingress)
