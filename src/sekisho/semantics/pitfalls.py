"""``sekisho lint``: the pitfalls policy authors hit, each with a stable code and a fix.

Valid policies that probably do not do what their author meant, found on the
program (so every policy kind is covered where the pitfall applies to it) and,
for the Kubernetes shapes (two peers where one was meant), on the objects:

======  ==========================  ==================================================
code    name                        what
======  ==========================  ==================================================
SK001   egress-without-dns          egress isolated, DNS (53 UDP/TCP to kube-dns) denied
SK002   policy-selects-nothing      the policy applies to no pod
SK003   peer-selects-nothing        a rule's selector picks no pod, node or network set
SK004   split-peer                  namespaceSelector and podSelector as two peers (OR)
SK005   joined-peer                 one peer with both selects nothing; two would not
SK006   ipblock-covers-pods         an ipBlock holds pod addresses
SK007   ipblock-covers-services     an ipBlock holds service addresses
SK008   named-port-undeclared       a port name no pod on that side declares
SK009   shadowed-rule               a rule never decides: an earlier rule always does
SK010   node-traffic-unfiltered     the policy would deny a pod's own node; it cannot
======  ==========================  ==================================================

Codes never change meaning; new pitfalls get new codes.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from sekisho.model.types import Cluster, FlowProtocol, NetworkPolicy, Pod
from sekisho.selectors.expr import matches
from sekisho.semantics.compiler import compile_program
from sekisho.semantics.endpoint import Endpoint, Flow, node_endpoint, pod_endpoint
from sekisho.semantics.probe import Service, default_services
from sekisho.semantics.program import (
    Direction,
    Policy,
    Program,
    Rule,
    SelectorSet,
    Tier,
)
from sekisho.semantics.universe import Universe, universe_of
from sekisho.semantics.verdict import applies, rule_mismatch, walk

Severity = Literal["error", "warning", "note"]

CODES: dict[str, tuple[str, Severity, str]] = {
    "SK001": (
        "egress-without-dns",
        "warning",
        "add an egress rule to namespace kube-system, pods k8s-app=kube-dns, ports 53/UDP "
        "and 53/TCP",
    ),
    "SK002": (
        "policy-selects-nothing",
        "warning",
        "check the pod selector's labels against the pods' (kubectl get pods --show-labels)",
    ),
    "SK003": (
        "peer-selects-nothing",
        "warning",
        "namespaces carry kubernetes.io/metadata.name=NAME; check the labels against "
        "kubectl get ns,pods --show-labels",
    ),
    "SK004": (
        "split-peer",
        "warning",
        "to allow only those pods in those namespaces, write both selectors in one peer "
        "(no '-' before podSelector)",
    ),
    "SK005": (
        "joined-peer",
        "warning",
        "one peer with both selectors means pods matching podSelector in the selected "
        "namespaces; for either, write two peers ('- podSelector')",
    ),
    "SK006": (
        "ipblock-covers-pods",
        "warning",
        "select pods with podSelector/namespaceSelector: pod addresses change, and traffic "
        "through a proxy or NAT arrives from the proxy's or node's address (seed finding 5)",
    ),
    "SK007": (
        "ipblock-covers-services",
        "warning",
        "policy sees the pod a service forwards to, never the service address: select the "
        "service's pods instead",
    ),
    "SK008": (
        "named-port-undeclared",
        "warning",
        "name a port the pods declare (containers[].ports[].name) or use the number",
    ),
    "SK009": (
        "shadowed-rule",
        "warning",
        "move the rule before the one that shadows it (lower order, earlier tier) or "
        "narrow the earlier rule",
    ),
    "SK010": (
        "node-traffic-unfiltered",
        "note",
        "a pod's own node (kubelet probes, hostNetwork pods) always reaches it; "
        "restrict what runs on the node instead",
    ),
}
"""code -> (name, severity, fix hint)."""

DEFAULT_SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
"""kube-apiserver's ``--service-cluster-ip-range`` default (kubeadm's too)."""

DNS_LABELS = {"k8s-app": "kube-dns"}
"""The labels of the cluster DNS pods (kube-dns and CoreDNS keep the same)."""

SHADOW_LIMIT = 120
"""Identities above which SK009 looks at the first this many only (cost K^2 walks)."""


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    file: str
    line: int
    kind: str
    name: str
    path: str
    """Field path inside the object, e.g. ``spec.ingress[0].from[1]``."""
    message: str

    @property
    def rule_name(self) -> str:
        return CODES[self.code][0]

    @property
    def severity(self) -> Severity:
        return CODES[self.code][1]

    @property
    def hint(self) -> str:
        return CODES[self.code][2]

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        path = f" {self.path}" if self.path else ""
        return f"{where}: {self.code} {self.kind} {self.name}{path}: {self.message}"

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "rule": self.rule_name,
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "kind": self.kind,
            "name": self.name,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
        }


def lint_cluster(
    cluster: Cluster,
    *,
    service_cidr: ipaddress.IPv4Network | ipaddress.IPv6Network = DEFAULT_SERVICE_CIDR,
    only: Sequence[str] = (),
) -> list[Finding]:
    """Every finding on ``cluster``, ordered by file, line and code; ``only``: these codes."""
    program = compile_program(cluster)
    universe = universe_of(cluster)
    out: list[Finding] = []
    out += _selects_nothing(cluster, program, universe)
    out += _peer_shapes(cluster)
    out += _ipblocks(cluster, service_cidr)
    out += _named_ports(cluster)
    out += _dns(cluster, program)
    out += _shadowed(cluster, program, universe)
    out += _node_traffic(cluster, program, universe)
    if only:
        out = [f for f in out if f.code in only or f.rule_name in only]
    unique = list(dict.fromkeys(out))
    return sorted(unique, key=lambda f: (f.file, f.line, f.path, f.code, f.message))


# ----------------------------------------------------------------------------- helpers

_ORIGIN = re.compile(r"^(ingress|egress) rule (\d+)(?: \"[^\"]*\")?(?: peer (\d+))?")


def rule_path(rule: Rule) -> str:
    """``spec.ingress[0].from[1]`` from a rule's origin (``ingress rule 0 peer 1 TCP/80``)."""
    m = _ORIGIN.match(rule.origin)
    if m is None:
        return ""
    direction, i, j = m.group(1), m.group(2), m.group(3)
    path = f"spec.{direction}[{i}]"
    if j is not None:
        path += f".{'from' if direction == 'ingress' else 'to'}[{j}]"
    return path


def _finding(code: str, pol: Policy, path: str, message: str) -> Finding:
    name = pol.label.removeprefix(f"{pol.kind} ")
    return Finding(code, pol.source.file, pol.source.line, pol.kind, name, path, message)


def _np_finding(code: str, pol: NetworkPolicy, path: str, message: str) -> Finding:
    return Finding(code, pol.source.file, pol.source.line, "NetworkPolicy", pol.key, path, message)


def _selected(universe: Universe, s: SelectorSet) -> list[str]:
    out = [e.key for e in universe.entities if e.kind in s.kinds and matches(s.selector, e.labels)]
    if "networkset" in s.kinds:
        out += [e.key for e in universe.netsets if matches(s.selector, e.labels)]
    return out


def _subject_pods(cluster: Cluster, universe: Universe, pol: Policy) -> list[Pod]:
    keys = set(_selected(universe, pol.selector))
    return [p for p in cluster.pods if not p.host_network and p.key in keys]


# ----------------------------------------------------------------------------- SK002, SK003


def _selects_nothing(cluster: Cluster, program: Program, universe: Universe) -> Iterator[Finding]:
    if not any(not p.host_network for p in cluster.pods):
        return  # no pods in the manifests: nothing to tell selectors apart with
    for pol in program.policies():
        if not _selected(universe, pol.selector):
            path = "spec.podSelector" if pol.kind == "NetworkPolicy" else "spec.subject"
            yield _finding(
                "SK002", pol, path, f"applies to no pod ({pol.selector.description or 'selector'})"
            )
        reported: set[tuple[str, str]] = set()
        for direction in ("ingress", "egress"):
            for rule in pol.rules(direction):
                for side in (rule.src, rule.dst):
                    s = side.selector
                    if s is None or (rule_path(rule), s.key) in reported:
                        continue
                    if not _selected(universe, s):
                        reported.add((rule_path(rule), s.key))
                        what = s.description or s.selector.canonical()
                        yield _finding(
                            "SK003", pol, rule_path(rule), f"the peer selects nothing: {what}"
                        )


# ----------------------------------------------------------------------------- SK004, SK005


def _peer_shapes(cluster: Cluster) -> Iterator[Finding]:
    pods = [p for p in cluster.pods if not p.host_network]
    for pol in cluster.policies:
        for direction, rules in (("ingress", pol.ingress), ("egress", pol.egress)):
            field = "from" if direction == "ingress" else "to"
            for i, rule in enumerate(rules):
                peers = rule.peers or ()
                ns_only = [
                    j
                    for j, p in enumerate(peers)
                    if p.namespace_selector is not None and p.pod_selector is None
                ]
                pod_only = [
                    j
                    for j, p in enumerate(peers)
                    if p.pod_selector is not None
                    and p.namespace_selector is None
                    and not p.pod_selector.is_empty
                ]
                for j in ns_only:
                    for k in pod_only:
                        if abs(j - k) != 1:
                            continue
                        yield _np_finding(
                            "SK004",
                            pol,
                            f"spec.{direction}[{i}].{field}[{min(j, k)}]",
                            f"{field}[{j}] (namespaceSelector {peers[j].namespace_selector}) and "
                            f"{field}[{k}] (podSelector {peers[k].pod_selector}) are two peers: "
                            "every pod of those namespaces OR those pods of "
                            f"{pol.namespace} is allowed",
                        )
                if not pods:
                    continue
                for j, p in enumerate(peers):
                    if p.namespace_selector is None or p.pod_selector is None:
                        continue
                    nss = {
                        n
                        for n in cluster.namespaces
                        if p.namespace_selector.matches(cluster.namespace_labels(n))
                    }
                    pod_sel = p.pod_selector
                    both = [q for q in pods if q.namespace in nss and pod_sel.matches(q.labels)]
                    either = [q for q in pods if pod_sel.matches(q.labels)]
                    if nss and not both and either:
                        where = sorted({q.namespace for q in either})
                        yield _np_finding(
                            "SK005",
                            pol,
                            f"spec.{direction}[{i}].{field}[{j}]",
                            f"no pod matches podSelector {pod_sel} in the namespaces matching "
                            f"{p.namespace_selector} ({', '.join(sorted(nss))}); pods matching "
                            f"it are in {', '.join(where)}",
                        )


# ----------------------------------------------------------------------------- SK006, SK007


def _ipblocks(
    cluster: Cluster, service_cidr: ipaddress.IPv4Network | ipaddress.IPv6Network
) -> Iterator[Finding]:
    pod_nets = [cluster.cluster_cidr] + [net for n in cluster.nodes for net in n.pod_cidrs]
    for pol in cluster.policies:
        for direction, rules in (("ingress", pol.ingress), ("egress", pol.egress)):
            field = "from" if direction == "ingress" else "to"
            for i, rule in enumerate(rules):
                for j, p in enumerate(rule.peers or ()):
                    b = p.ip_block
                    if b is None:
                        continue
                    path = f"spec.{direction}[{i}].{field}[{j}].ipBlock"

                    hits = [
                        n
                        for n in pod_nets
                        if n.version == b.cidr.version
                        and b.cidr.overlaps(n)
                        and not _covered(n, b.excepts)
                    ]
                    pods_in = [
                        q.key
                        for q in cluster.pods
                        if not q.host_network
                        and (ip := q.ip_of(b.cidr.version)) is not None  # a dual-stack pod's too
                        and ip in b.cidr
                        and not any(ip.version == e.version and ip in e for e in b.excepts)
                    ]
                    if hits or pods_in:
                        shown = ", ".join(pods_in[:3]) + (", ..." if len(pods_in) > 3 else "")
                        nets = ", ".join(str(n) for n in dict.fromkeys(hits))
                        yield _np_finding(
                            "SK006",
                            pol,
                            path,
                            f"{b.cidr} holds pod addresses ({nets or shown}"
                            + (f"; pods {shown}" if nets and pods_in else "")
                            + ")",
                        )
                    if (
                        service_cidr.version == b.cidr.version
                        and b.cidr.overlaps(service_cidr)
                        and not _covered(service_cidr, b.excepts)
                    ):
                        yield _np_finding(
                            "SK007",
                            pol,
                            path,
                            f"{b.cidr} holds service addresses ({service_cidr}): "
                            "services are translated to pod addresses before policy sees them",
                        )


def _covered(
    net: ipaddress.IPv4Network | ipaddress.IPv6Network,
    excepts: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> bool:
    """Whether an ``except`` entry holds all of ``net``."""
    return any(
        e.version == net.version and net.subnet_of(e)  # type: ignore[arg-type]
        for e in excepts
    )


# ----------------------------------------------------------------------------- SK008


def _named_ports(cluster: Cluster) -> Iterator[Finding]:
    pods = [p for p in cluster.pods if not p.host_network]
    if not pods:
        return
    for pol in cluster.policies:
        own = [
            p for p in pods if p.namespace == pol.namespace and pol.pod_selector.matches(p.labels)
        ]
        for direction, rules in (("ingress", pol.ingress), ("egress", pol.egress)):
            for i, rule in enumerate(rules):
                if direction == "ingress":
                    targets = own
                    where = "the pods this policy selects"
                elif rule.peers is None:
                    targets = pods
                    where = "any pod"
                else:
                    targets = []
                    for p in rule.peers:
                        if p.ip_block is not None:
                            continue
                        for q in pods:
                            in_ns = (
                                q.namespace == pol.namespace
                                if p.namespace_selector is None
                                else p.namespace_selector.matches(
                                    cluster.namespace_labels(q.namespace)
                                )
                            )
                            if in_ns and (
                                p.pod_selector is None or p.pod_selector.matches(q.labels)
                            ):
                                targets.append(q)
                    where = "the pods of this rule's peers"
                for k, port in enumerate(rule.ports or ()):
                    if not isinstance(port.port, str):
                        continue
                    if not any(q.named_port(port.port, port.protocol) is not None for q in targets):
                        yield _np_finding(
                            "SK008",
                            pol,
                            f"spec.{direction}[{i}].ports[{k}].port",
                            f"no {port.protocol} port named {port.port!r} on {where} "
                            f"({len(targets)} pods): the rule matches nothing",
                        )


# ----------------------------------------------------------------------------- SK001


def _dns_cluster(cluster: Cluster) -> tuple[Cluster, list[Pod]]:
    """The cluster with its DNS pods; when the manifests have none, one assumed
    ``kube-system`` pod labelled ``k8s-app=kube-dns`` serving 53/UDP and 53/TCP."""
    found = [
        p
        for p in cluster.pods
        if p.namespace == "kube-system" and all(p.labels.get(k) == v for k, v in DNS_LABELS.items())
    ]
    if found:
        return cluster, found
    from sekisho.model.types import ContainerPort, Namespace

    taken = {p.ip for p in cluster.pods}
    net = cluster.cluster_cidr
    ip = None
    for candidate in (
        net.broadcast_address - 1,
        net.broadcast_address - 2,
        net.broadcast_address - 3,
    ):
        if candidate not in taken:
            ip = candidate
            break
    dns = Pod(
        "kube-system",
        "kube-dns (assumed)",
        dict(DNS_LABELS),
        None,
        ip,
        False,
        (ContainerPort(53, "UDP", "dns"), ContainerPort(53, "TCP", "dns-tcp")),
    )
    namespaces = dict(cluster.namespaces)
    namespaces.setdefault(
        "kube-system", Namespace("kube-system", {"kubernetes.io/metadata.name": "kube-system"})
    )
    out = dataclasses.replace(cluster, pods=(*cluster.pods, dns), namespaces=namespaces)
    return out, [dns]


def _dns(cluster: Cluster, program: Program) -> Iterator[Finding]:
    egress_policies = [p for p in program.policies() if "egress" in p.types]
    if not egress_policies:
        return
    with_dns, dns_pods = _dns_cluster(cluster)
    universe = Universe(with_dns)
    dns_keys = {p.key for p in dns_pods}
    dst = pod_endpoint(with_dns, dns_pods[0])
    denied_by: dict[str, list[str]] = {}
    for pod in with_dns.pods:
        if pod.host_network or pod.key in dns_keys:
            continue
        src = pod_endpoint(with_dns, pod)
        entity = universe.by_key[("workload", pod.key)]
        if not any(applies(p, entity, "egress") for p in egress_policies):
            continue
        dv = walk(program, universe, "egress", src, Flow(src, dst, "UDP", 53))
        if not dv.allowed:
            for p in dv.policies:
                denied_by.setdefault(p.key, []).append(pod.key)
    for key, pods in denied_by.items():
        pol = program.policy(key)
        assert pol is not None
        shown = ", ".join(pods[:3]) + (", ..." if len(pods) > 3 else "")
        yield _finding(
            "SK001",
            pol,
            "spec.egress" if pol.kind == "NetworkPolicy" else "spec",
            f"isolates egress of {len(pods)} pod{'s' if len(pods) != 1 else ''} ({shown}) "
            f"and denies {'it' if len(pods) == 1 else 'them'} DNS ({dns_pods[0].key}, "
            "53/UDP): name lookups will fail",
        )


# ----------------------------------------------------------------------------- SK009


def _representatives(cluster: Cluster, program: Program) -> tuple[list[Pod], list[Service]]:
    from sekisho.semantics.matrix import compute_matrix

    services = default_services(cluster)
    # Ports the rules name as numbers are probed too (first port of each range).
    seen: set[tuple[str, int | None]] = {(s.protocol, s.port) for s in services}
    for pol in program.policies():
        for r in (*pol.ingress, *pol.egress):
            for pm in (r.dst.ports,):
                if pm is None or r.protocol not in (6, 17):
                    continue
                proto: FlowProtocol = "TCP" if r.protocol == 6 else "UDP"
                for a, _b in pm.ranges:
                    if (proto, a) not in seen:
                        seen.add((proto, a))
                        services.append(Service(proto, a))
    pods = [p for p in cluster.pods if not p.host_network]
    if not pods:
        return [], services
    m = compute_matrix(cluster, [Service("ICMP")], pods=pods)
    reps: dict[int, Pod] = {}
    for pod, ident in zip(m.pods, m.pod_identity.tolist(), strict=True):
        reps.setdefault(int(ident), pod)
    return list(reps.values())[:SHADOW_LIMIT], services


def _shadowed(cluster: Cluster, program: Program, universe: Universe) -> Iterator[Finding]:
    reps, services = _representatives(cluster, program)
    if not reps:
        return
    # per rule (policy key, direction, index): flows it matches, flows it decides,
    # and the rules that decided instead
    matched: dict[tuple[str, str, int], int] = {}
    decided: dict[tuple[str, str, int], int] = {}
    shadows: dict[tuple[str, str, int], dict[tuple[str, str, int], str]] = {}
    rules_of: dict[tuple[str, str, int], tuple[Policy, Rule]] = {}
    ends = [pod_endpoint(cluster, p) for p in reps]
    for direction in ("ingress", "egress"):
        d: Direction = direction
        for subject in ends:
            assert subject.pod is not None
            entity = universe.by_key[("workload", subject.pod.key)]
            order = [
                (tier, pol)
                for tier in program.tiers
                for pol in tier.policies
                if applies(pol, entity, d)
            ]
            if not order:
                continue
            for peer in ends:
                if peer is subject:
                    continue
                for svc in services:
                    port = svc.port_on(subject.pod if d == "ingress" else peer.pod)
                    if svc.protocol != "ICMP" and port is None:
                        continue
                    src, dst = (peer, subject) if d == "ingress" else (subject, peer)
                    flow = Flow(src, dst, svc.protocol, port)
                    _shadow_walk(
                        program,
                        universe,
                        d,
                        subject,
                        flow,
                        order,
                        matched,
                        decided,
                        shadows,
                        rules_of,
                    )
    for key, n in matched.items():
        if not n or decided.get(key, 0):
            continue
        by = shadows.get(key, {})
        pol, rule = rules_of[key]
        if not by:
            continue
        actions = set(by.values())
        if actions == {"allow"} and rule.action == "allow":
            continue  # an allow behind allows: redundant, not wrong
        names = ", ".join(sorted(by_name(k, rules_of) for k in by))
        yield _finding(
            "SK009",
            pol,
            rule_path(rule),
            f"{key[1]} {rule.action} rule ({rule.origin}) never decides: on every flow it "
            f"matches, {names} decides first",
        )


def by_name(
    key: tuple[str, str, int], rules_of: dict[tuple[str, str, int], tuple[Policy, Rule]]
) -> str:
    pol, rule = rules_of[key]
    return f"{pol.label} {rule.origin} ({rule.action}, tier {pol.tier})"


def _shadow_walk(
    program: Program,
    universe: Universe,
    direction: Direction,
    subject: Endpoint,
    flow: Flow,
    order: Sequence[tuple[Tier, Policy]],
    matched: dict[tuple[str, str, int], int],
    decided: dict[tuple[str, str, int], int],
    shadows: dict[tuple[str, str, int], dict[tuple[str, str, int], str]],
    rules_of: dict[tuple[str, str, int], tuple[Policy, Rule]],
) -> None:
    dv = walk(program, universe, direction, subject, flow)
    # The deciding rule of each tier walked (pass decisions too); rules after it in its
    # tier, and every rule of the tiers never reached, are shadowed by it where they match.
    deciders: dict[str, tuple[str, str, int]] = {}
    for tv in dv.tiers:
        for pv in tv.policies:
            if pv.decided is not None:
                deciders[tv.tier.name] = (pv.policy.key, direction, pv.decided.index)
    final = (dv.decided.policy.key, direction, dv.decided.index) if dv.decided is not None else None
    walked = {tv.tier.name for tv in dv.tiers}
    for tier, pol in order:
        tier_name = tier.name
        for idx, rule in enumerate(pol.rules(direction)):
            if rule.action == "log":
                continue
            key = (pol.key, direction, idx)
            rules_of[key] = (pol, rule)
            if rule_mismatch(universe, rule, flow):
                continue
            matched[key] = matched.get(key, 0) + 1
            by = deciders.get(tier_name) if tier_name in walked else final
            if by == key:
                decided[key] = decided.get(key, 0) + 1
            elif by is not None:
                winner = program.policy(by[0])
                assert winner is not None
                rules_of[by] = (winner, winner.rules(direction)[by[2]])
                shadows.setdefault(key, {})[by] = winner.rules(direction)[by[2]].action


# ----------------------------------------------------------------------------- SK010


def _node_traffic(cluster: Cluster, program: Program, universe: Universe) -> Iterator[Finding]:
    """A policy whose rules would deny a pod's own node (were it filtered) on some probe."""
    reported: set[str] = set()
    services = default_services(cluster)
    for pod in cluster.pods:
        if pod.host_network or pod.node is None:
            continue
        node = cluster.node(pod.node)
        if node is None:
            continue
        dst = pod_endpoint(cluster, pod)
        src = node_endpoint(node)
        for svc in services:
            port = svc.port_on(pod)
            if svc.protocol != "ICMP" and port is None:
                continue
            dv = walk(program, universe, "ingress", dst, Flow(src, dst, svc.protocol, port))
            if dv.allowed or not dv.policies:
                continue
            # The policy whose rule denies, or those of the tier whose end denies.
            deciders = (
                (dv.decided.policy,)
                if dv.decided is not None
                else tuple(pv.policy for pv in dv.tiers[-1].policies)
            )
            for pol in deciders:
                if pol.key in reported:
                    continue
                reported.add(pol.key)
                yield _finding(
                    "SK010",
                    pol,
                    "spec.ingress" if pol.kind == "NetworkPolicy" else "spec",
                    f"would deny {svc} from node {node.name} to {pod.key}, but a pod's own node "
                    "is never filtered: it gets through (seed finding 2)",
                )
