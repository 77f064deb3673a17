"""The upstream Kubernetes e2e NetworkPolicy cases, as data.

Transcribed by hand from kubernetes ``test/e2e/network/netpol/network_policy.go``
(the ``Netpol`` suites for TCP, UDP and SCTP) and its model (``model.go``,
``reachability.go``). Upstream builds, per case, three namespaces x, y, z and
pods a, b, c in each; every pod serves ports 80 and 81 over TCP, UDP and SCTP,
one container per port and protocol (``cont-80-tcp``) whose port is named
``serve-80-tcp``. A case creates policies, then checks a truth table of every
(client, server) pair for one port and protocol; loopback cells are ignored.

Here a case is a list of steps' worth of data: the policies in force, the label
changes upstream makes, the probes, and the expected reachability per probe as
the set of DENIED (from, to) pairs (``"x/a"`` style names). Self pairs are never
listed: upstream ignores loopback and sekisho always allows a pod to itself.

Expectations are derived from the upstream ``reachability.Expect*`` statements
of each case, applied to the full 3x3 model (newer upstream creates only the
pods a case needs; the statements are written per peer and carry over). Where
the full model has a pod the trimmed upstream case does not, the note says how
its cells follow. Steps of a case that updates policies or labels are separate
entries (``-step1``, ``-step2``). Cases whose ``upstream`` is empty are ours:
probes or variants upstream does not run (endPort, ipBlock ingress, ...), with
expectations derived from the API reference by hand.

Consumers: ``tests/semantics_e2e`` (against the semantics) and the lab (the same
cluster with real packets): ``model_cluster_objects()`` gives the Nodes,
Namespaces and Pods; ``E2ECase.objects()`` adds the case's policies.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Manifest = dict[str, Any]
Probe = tuple[int | None, str]
"""(port, protocol), protocol as the API spells it: TCP, UDP, SCTP; ``(None, "ICMP")`` for ping."""
Pair = tuple[str, str]
"""(from, to) as ``namespace/pod``."""

NAMESPACES = ("x", "y", "z")
POD_NAMES = ("a", "b", "c")
PODS = tuple(f"{ns}/{p}" for ns in NAMESPACES for p in POD_NAMES)
"""The nine model pods in upstream's order (which is also sorted order)."""
PORTS = (80, 81)
PROTOCOLS = ("TCP", "UDP", "SCTP")

NODES = (
    # name, InternalIP, podCIDR
    ("node1", "192.168.110.11", "10.244.1.0/24"),
    ("node2", "192.168.110.12", "10.244.2.0/24"),
    ("node3", "192.168.110.13", "10.244.3.0/24"),
)
# A Latin square: every namespace and every pod letter spans all three nodes,
# so each case has same-node and cross-node pairs.
POD_NODE = {
    "x/a": 0, "x/b": 1, "x/c": 2,
    "y/a": 1, "y/b": 2, "y/c": 0,
    "z/a": 2, "z/b": 0, "z/c": 1,
}  # fmt: skip


def pod_ip(pod: str) -> str:
    """The model pod's IP: 10.244.<node>.<10*(ns index+1) + pod index+1>, e.g. x/a = 10.244.1.11."""
    ns, name = pod.split("/")
    node = POD_NODE[pod] + 1
    return f"10.244.{node}.{10 * (NAMESPACES.index(ns) + 1) + POD_NAMES.index(name) + 1}"


def pod_ip6(pod: str) -> str:
    """The model pod's IPv6 address in a dual-stack model: fd00:10:244:<node>::<host>, the
    IPv4 address's numbers (x/a = fd00:10:244:1::11)."""
    _, _, node, host = pod_ip(pod).split(".")
    return f"fd00:10:244:{node}::{host}"


def pod_node(pod: str) -> str:
    return NODES[POD_NODE[pod]][0]


def model_cluster_objects(
    extra_ns_labels: Mapping[str, Mapping[str, str]] | None = None,
    extra_pod_labels: Mapping[str, Mapping[str, str]] | None = None,
    *,
    dual_stack: bool = False,
) -> list[Manifest]:
    """Nodes, Namespaces and Pods of the 3x3 model as manifest dicts.

    ``extra_ns_labels`` maps ``"y"`` to labels added to namespace y;
    ``extra_pod_labels`` maps ``"x/b"`` to labels added to pod x/b;
    ``dual_stack``: nodes and pods also have an IPv6 address (:func:`pod_ip6`; node
    ``fd00:192:168:110::1N``, pod CIDR ``fd00:10:244:N::/64``).
    """
    ns_extra = extra_ns_labels or {}
    pod_extra = extra_pod_labels or {}
    objs: list[Manifest] = []
    for k, (name, ip, cidr) in enumerate(NODES, start=1):
        cidrs, addresses = [cidr], [{"type": "InternalIP", "address": ip}]
        if dual_stack:
            cidrs.append(f"fd00:10:244:{k}::/64")
            addresses.append({"type": "InternalIP", "address": f"fd00:192:168:110::1{k}"})
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                "spec": {"podCIDR": cidr, "podCIDRs": cidrs},
                "status": {"addresses": addresses},
            }
        )
    for ns in NAMESPACES:
        labels = {"ns": ns, "kubernetes.io/metadata.name": ns, **ns_extra.get(ns, {})}
        objs.append(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}
        )
    for pod in PODS:
        ns, name = pod.split("/")
        containers = [
            {
                "name": f"cont-{port}-{proto.lower()}",
                "image": "registry.k8s.io/e2e-test-images/agnhost:2.47",
                "ports": [
                    {
                        "containerPort": port,
                        "name": f"serve-{port}-{proto.lower()}",
                        "protocol": proto,
                    }
                ],
            }
            for port in PORTS
            for proto in PROTOCOLS
        ]
        ip = pod_ip(pod)
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "labels": {"pod": name, **pod_extra.get(pod, {})},
                },
                "spec": {"nodeName": pod_node(pod), "containers": containers},
                "status": {
                    "phase": "Running",
                    "hostIP": NODES[POD_NODE[pod]][1],
                    "podIP": ip,
                    "podIPs": [{"ip": ip}] + ([{"ip": pod_ip6(pod)}] if dual_stack else []),
                },
            }
        )
    return objs


# --- small builders for policy manifests (upstream's GenNetworkPolicy* helpers) ---


def _sel(labels: Mapping[str, str] | None = None, **exprs: Any) -> Manifest:
    out: Manifest = {}
    if labels:
        out["matchLabels"] = dict(labels)
    if exprs.get("expr"):
        out["matchExpressions"] = [
            {"key": k, "operator": op, "values": list(vs)} for k, op, vs in exprs["expr"]
        ]
    return out


def _policy(
    ns: str,
    name: str,
    pod_selector: Manifest,
    *,
    ingress: list[Manifest] | None = None,
    egress: list[Manifest] | None = None,
) -> Manifest:
    """``ingress``/``egress`` None: direction not in policyTypes; [] : isolate, allow nothing."""
    spec: Manifest = {"podSelector": pod_selector, "policyTypes": []}
    if ingress is not None:
        spec["policyTypes"].append("Ingress")
        spec["ingress"] = ingress
    if egress is not None:
        spec["policyTypes"].append("Egress")
        spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def _ns(name: str) -> Manifest:
    return {"namespaceSelector": _sel({"kubernetes.io/metadata.name": name})}


def _pod(name: str) -> Manifest:
    return {"podSelector": _sel({"pod": name})}


def _ns_pod(ns: Manifest, pod: Manifest) -> Manifest:
    return {"namespaceSelector": ns, "podSelector": pod}


def _port(
    port: int | str | None = None, protocol: str | None = None, end: int | None = None
) -> Manifest:
    out: Manifest = {}
    if protocol is not None:
        out["protocol"] = protocol
    if port is not None:
        out["port"] = port
    if end is not None:
        out["endPort"] = end
    return out


A = _sel({"pod": "a"})
ALL: Manifest = {}


# --- expectations ---


def denied(*patterns: str) -> frozenset[Pair]:
    """Expand ``"from>to"`` patterns (fnmatch on ``ns/pod``, e.g. ``"*>x/*"``) into pairs.

    Self pairs are dropped: loopback is not part of any expectation.
    A pattern prefixed with ``!`` removes the pairs it matches (applied in order,
    like upstream's ``Expect(..., true)`` after ``ExpectAllIngress(..., false)``).
    """
    out: set[Pair] = set()
    for pattern in patterns:
        remove = pattern.startswith("!")
        src_pat, dst_pat = pattern.lstrip("!").split(">")
        matched = {
            (s, d)
            for s in PODS
            for d in PODS
            if s != d and fnmatch.fnmatchcase(s, src_pat) and fnmatch.fnmatchcase(d, dst_pat)
        }
        if not matched:
            raise ValueError(f"pattern {pattern!r} matches no pair")
        out = out - matched if remove else out | matched
    return frozenset(out)


NONE: frozenset[Pair] = frozenset()


@dataclass(frozen=True)
class E2ECase:
    """One upstream e2e case (or one step of it) as data."""

    id: str
    """pytest id: short, unique, kebab-case."""
    policies: list[Manifest]
    """Every NetworkPolicy in force during this step."""
    expected: dict[Probe, frozenset[Pair]]
    """Per probe, the (from, to) pairs that must be denied; every other non-self pair is allowed."""
    upstream: str = ""
    """The upstream ``It(...)`` title; empty for our own cases."""
    ns_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    """Labels added to namespaces (``"y": {"ns2": "updated"}``) as upstream does mid-case."""
    pod_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    """Labels added to pods (``"x/b": {"pod2": "updated"}``)."""
    note: str = ""

    @property
    def probes(self) -> list[Probe]:
        return list(self.expected)

    def objects(self) -> list[Manifest]:
        """The whole cluster for this case: model nodes, namespaces, pods, then the policies."""
        return model_cluster_objects(self.ns_labels, self.pod_labels) + list(self.policies)

    def allowed(self, probe: Probe, src: str, dst: str) -> bool:
        """The expected verdict of one cell (self is always allowed)."""
        return src == dst or (src, dst) not in self.expected[probe]


def table(cells: Mapping[Pair, str] | Iterable[Pair], *, title: str = "") -> str:
    """An upstream-style 9x9 truth table.

    ``cells`` maps (from, to) to a mark, or is an iterable of denied pairs
    (rendered ``X``, others ``.``, self ``-``). Rows are sources, columns destinations.
    """
    marks: dict[Pair, str]
    if isinstance(cells, Mapping):
        marks = dict(cells)
    else:
        deny = set(cells)
        marks = {
            (s, d): ("-" if s == d else "X" if (s, d) in deny else ".") for s in PODS for d in PODS
        }
    width = 5
    lines = [title] if title else []
    lines.append(" " * width + "".join(f"{d:>{width}}" for d in PODS))
    for s in PODS:
        lines.append(f"{s:<{width}}" + "".join(f"{marks.get((s, d), '?'):>{width}}" for d in PODS))
    return "\n".join(lines)


T80: Probe = (80, "TCP")
T81: Probe = (81, "TCP")
U80: Probe = (80, "UDP")
U81: Probe = (81, "UDP")
S80: Probe = (80, "SCTP")
S81: Probe = (81, "SCTP")
ICMP: Probe = (None, "ICMP")

_deny_ingress_x = _policy("x", "deny-ingress", ALL, ingress=[])
_deny_all_x = _policy("x", "deny-all", ALL, ingress=[], egress=[])
_allow_81_from_y = _policy(
    "x", "allow-client-a-via-ns-selector", A,
    ingress=[{"from": [_ns("y")], "ports": [_port(81, "TCP")]}],
)  # fmt: skip
_allow_80_from_y = _policy(
    "x", "allow-client-a-via-ns-selector-80", A,
    ingress=[{"from": [_ns("y")], "ports": [_port(80, "TCP")]}],
)  # fmt: skip
_egress_cidr_except = _policy(
    "x", "allow-client-a-via-cidr-egress-rule", A,
    egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/4", "except": [pod_ip("x/b") + "/32"]}}]}],
)  # fmt: skip
_egress_to_ya = _policy(
    "x", "allow-to-ns-y-pod-a", A, egress=[{"to": [_ns_pod(_ns("y")["namespaceSelector"], A)]}]
)
_not_in_x = _sel(expr=[("kubernetes.io/metadata.name", "NotIn", ["x"])])

CASES: list[E2ECase] = [
    E2ECase(
        "default-deny-ingress",
        [_deny_ingress_x],
        {T80: denied("*>x/*"), U80: denied("*>x/*")},
        upstream="should support a 'default-deny-ingress' policy",
        note="U80 is ours: an ingress policy without rules denies every protocol.",
    ),
    E2ECase(
        "default-deny-all",
        [_deny_all_x],
        {T80: denied("*>x/*", "x/*>*"), ICMP: denied("*>x/*", "x/*>*")},
        upstream="should support a 'default-deny-all' policy",
        note="ICMP is ours: a policy without rules denies ping too.",
    ),
    E2ECase(
        "podselector-same-ns",
        [_policy("x", "x-a-allows-x-b", A, ingress=[{"from": [_pod("b")]}])],
        {T80: denied("*>x/a", "!x/b>x/a")},
        upstream="should enforce policy to allow traffic from pods within server namespace based on PodSelector",
    ),
    E2ECase(
        "allow-ingress-for-target",
        [
            _policy("x", "deny-all", ALL, ingress=[]),
            _policy("x", "allow-all-to-a", A, ingress=[{"from": [_ns_pod(ALL, ALL)]}]),
        ],
        {T80: denied("*>x/b", "*>x/c")},
        upstream="should enforce policy to allow ingress traffic for a target",
        note="x/c (absent upstream) is isolated by deny-all like x/b.",
    ),
    E2ECase(
        "ingress-from-all-namespaces",
        [
            _policy(
                "x", "allow-from-another-ns", A, ingress=[{"from": [{"namespaceSelector": ALL}]}]
            )
        ],
        {T80: NONE},
        upstream="should enforce policy to allow ingress traffic from pods in all namespaces",
    ),
    E2ECase(
        "namespaceselector-other-ns",
        [_policy("x", "allow-client-a-via-ns-selector", A, ingress=[{"from": [_ns("y")]}])],
        {T80: denied("x/*>x/a", "z/*>x/a")},
        upstream="should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector",
    ),
    E2ECase(
        "podselector-match-expressions",
        [
            _policy(
                "x",
                "x-a-allows-x-b",
                A,
                ingress=[{"from": [{"podSelector": _sel(expr=[("pod", "In", ["b"])])}]}],
            )
        ],
        {T80: denied("*>x/a", "!x/b>x/a")},
        upstream="should enforce policy based on PodSelector with MatchExpressions",
    ),
    E2ECase(
        "namespaceselector-match-expressions",
        [
            _policy(
                "x",
                "allow-ns-y-match-selector",
                A,
                ingress=[
                    {
                        "from": [
                            {
                                "namespaceSelector": _sel(
                                    expr=[("kubernetes.io/metadata.name", "In", ["y"])]
                                )
                            }
                        ]
                    }
                ],
            )
        ],
        {T80: denied("x/*>x/a", "z/*>x/a")},
        upstream="should enforce policy based on NamespaceSelector with MatchExpressions",
    ),
    E2ECase(
        "podselector-or-namespaceselector",
        [
            _policy(
                "x",
                "allow-ns-y-match-selector",
                A,
                ingress=[{"from": [{"namespaceSelector": _not_in_x}, _pod("b")]}],
            )
        ],
        {T80: denied("x/c>x/a")},
        upstream="should enforce policy based on PodSelector or NamespaceSelector",
    ),
    E2ECase(
        "podselector-and-namespaceselector",
        [
            _policy(
                "x",
                "allow-ns-y-podselector-and-nsselector",
                A,
                ingress=[{"from": [_ns_pod(_not_in_x, _sel({"pod": "b"}))]}],
            )
        ],
        {T80: denied("*>x/a", "!y/b>x/a", "!z/b>x/a")},
        upstream="should enforce policy based on PodSelector and NamespaceSelector",
    ),
    E2ECase(
        "multiple-podselectors-and-namespaceselectors",
        [
            _policy(
                "x",
                "allow-ns-y-z-pod-b-c",
                A,
                ingress=[{"from": [_ns_pod(_not_in_x, _sel(expr=[("pod", "In", ["b", "c"])]))]}],
            )
        ],
        {T80: denied("x/*>x/a", "y/a>x/a", "z/a>x/a")},
        upstream="should enforce policy based on Multiple PodSelectors and NamespaceSelectors",
        note="z/a (absent upstream) matches the namespace but not the pod selector, like y/a.",
    ),
    E2ECase(
        "any-podselectors",
        [_policy("x", "allow-ns-x-pod-b-c", A, ingress=[{"from": [_pod("b"), _pod("c")]}])],
        {T80: denied("*>x/a", "!x/b>x/a", "!x/c>x/a")},
        upstream="should enforce policy based on any PodSelectors",
    ),
    E2ECase(
        "pod-in-other-namespace",
        [
            _policy(
                "x",
                "allow-ns-y-pod-a-via-namespace-pod-selector",
                A,
                ingress=[{"from": [_ns_pod(_ns("y")["namespaceSelector"], A)]}],
            )
        ],
        {T80: denied("*>x/a", "!y/a>x/a")},
        upstream="should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector",
    ),
    E2ECase(
        "ports",
        [_allow_81_from_y],
        {T81: denied("x/*>x/a", "z/*>x/a"), T80: denied("*>x/a"), ICMP: denied("*>x/a")},
        upstream="should enforce policy based on Ports",
        note="T80 as in the stacked-policies case (same policy); ICMP is ours: a rule with ports never matches ICMP.",
    ),
    E2ECase(
        "stacked-policies-step1",
        [_allow_81_from_y],
        {T81: denied("x/*>x/a", "z/*>x/a"), T80: denied("*>x/a")},
        upstream="should enforce multiple, stacked policies with overlapping podSelectors",
    ),
    E2ECase(
        "stacked-policies-step2",
        [_allow_81_from_y, _allow_80_from_y],
        {T81: denied("x/*>x/a", "z/*>x/a"), T80: denied("x/*>x/a", "z/*>x/a")},
        upstream="should enforce multiple, stacked policies with overlapping podSelectors",
    ),
    E2ECase(
        "allow-all",
        [_policy("x", "allow-all", ALL, ingress=[{}])],
        {T80: NONE, T81: NONE, ICMP: NONE},
        upstream="should support allow-all policy",
        note="ICMP is ours: a rule without ports matches every protocol.",
    ),
    E2ECase(
        "ingress-named-port",
        [_policy("x", "allow-all", ALL, ingress=[{"ports": [_port("serve-81-tcp")]}])],
        {T81: NONE, T80: denied("*>x/*"), U81: denied("*>x/*")},
        upstream="should allow ingress access on one named port",
        note="U81 is ours: serve-81-tcp names the TCP port only.",
    ),
    E2ECase(
        "ingress-from-namespace-named-port",
        [
            _policy(
                "x",
                "allow-client-a-via-ns-selector-80",
                A,
                ingress=[{"from": [_ns("y")], "ports": [_port("serve-80-tcp", "TCP")]}],
            )
        ],
        {T80: denied("x/*>x/a", "z/*>x/a"), T81: denied("*>x/a")},
        upstream="should allow ingress access from namespace on one named port",
    ),
    E2ECase(
        "egress-named-port",
        [_policy("x", "allow-egress", ALL, egress=[{"ports": [_port("serve-80-tcp")]}])],
        {T80: NONE, T81: denied("x/*>*")},
        upstream="should allow egress access on one named port",
    ),
    E2ECase(
        "updated-policy-step1",
        [_policy("x", "allow-all-mutate-to-deny-all", ALL, ingress=[{}])],
        {T81: NONE},
        upstream="should enforce updated policy",
    ),
    E2ECase(
        "updated-policy-step2",
        [_policy("x", "allow-all-mutate-to-deny-all", ALL, ingress=[])],
        {T81: denied("*>x/*")},
        upstream="should enforce updated policy",
    ),
    E2ECase(
        "updated-namespace-step1",
        [
            _policy(
                "x",
                "allow-client-a-via-ns-selector",
                A,
                ingress=[{"from": [{"namespaceSelector": _sel({"ns2": "updated"})}]}],
            )
        ],
        {T80: denied("*>x/a")},
        upstream="should allow ingress access from updated namespace",
    ),
    E2ECase(
        "updated-namespace-step2",
        [
            _policy(
                "x",
                "allow-client-a-via-ns-selector",
                A,
                ingress=[{"from": [{"namespaceSelector": _sel({"ns2": "updated"})}]}],
            )
        ],
        {T80: denied("*>x/a", "!y/*>x/a")},
        upstream="should allow ingress access from updated namespace",
        ns_labels={"y": {"ns2": "updated"}},
    ),
    E2ECase(
        "updated-pod-step1",
        [
            _policy(
                "x",
                "allow-client-a-via-pod-selector",
                A,
                ingress=[{"from": [{"podSelector": _sel({"pod": "b", "pod2": "updated"})}]}],
            )
        ],
        {T80: denied("*>x/a")},
        upstream="should allow ingress access from updated pod",
    ),
    E2ECase(
        "updated-pod-step2",
        [
            _policy(
                "x",
                "allow-client-a-via-pod-selector",
                A,
                ingress=[{"from": [{"podSelector": _sel({"pod": "b", "pod2": "updated"})}]}],
            )
        ],
        {T80: denied("*>x/a", "!x/b>x/a")},
        upstream="should allow ingress access from updated pod",
        pod_labels={"x/b": {"pod2": "updated"}},
    ),
    E2ECase(
        "deny-from-other-namespaces",
        [_policy("x", "deny-empty-policy", ALL, ingress=[{"from": [{"podSelector": ALL}]}])],
        {T80: denied("y/*>x/*", "z/*>x/*")},
        upstream="should deny ingress from pods on other namespaces",
    ),
    E2ECase(
        "deny-updated-pod-step1",
        [_policy("x", "deny-ingress-via-label-selector", _sel({"target": "isolated"}), ingress=[])],
        {T80: NONE},
        upstream="should deny ingress access to updated pod",
    ),
    E2ECase(
        "deny-updated-pod-step2",
        [_policy("x", "deny-ingress-via-label-selector", _sel({"target": "isolated"}), ingress=[])],
        {T80: denied("*>x/a")},
        upstream="should deny ingress access to updated pod",
        pod_labels={"x/a": {"target": "isolated"}},
    ),
    E2ECase(
        "deny-egress-podselector",
        [_policy("x", "deny-egress-pod-a", A, egress=[])],
        {T80: denied("x/a>*")},
        upstream="should deny egress from pods based on PodSelector",
    ),
    E2ECase(
        "deny-egress-namespace",
        [_policy("x", "deny-egress-ns-x", ALL, egress=[])],
        {T80: denied("x/*>*")},
        upstream="should deny egress from all pods in a namespace",
    ),
    E2ECase(
        "ingress-and-egress-together",
        [
            _policy(
                "x",
                "allow-client-a-via-pod-selector",
                A,
                ingress=[{"from": [_pod("b")]}],
                egress=[{"ports": [_port(80)]}],
            )
        ],
        {T80: denied("*>x/a", "!x/b>x/a"), T81: denied("*>x/a", "!x/b>x/a", "x/a>*")},
        upstream="should work with Ingress, Egress specified together",
    ),
    E2ECase(
        "deny-egress-client-side",
        [
            _egress_to_ya,
            _policy(
                "y",
                "allow-from-xa-on-ya-match-selector",
                A,
                ingress=[{"from": [_ns_pod(_ns("x")["namespaceSelector"], A)]}],
            ),
            _policy(
                "y",
                "allow-from-xa-on-yb-match-selector",
                _sel({"pod": "b"}),
                ingress=[{"from": [_ns_pod(_ns("x")["namespaceSelector"], A)]}],
            ),
        ],
        {T80: denied("x/a>*", "*>y/a", "!x/a>y/a", "*>y/b")},
        upstream="should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)",
    ),
    E2ECase(
        "egress-to-pod-in-other-namespace",
        [_egress_to_ya],
        {T80: denied("x/a>*", "!x/a>y/a")},
        upstream="should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector",
    ),
    E2ECase(
        "ingress-any-port-one-protocol",
        [_policy("x", "allow-ingress-by-proto", A, ingress=[{"ports": [_port(protocol="TCP")]}])],
        {T80: NONE, T81: NONE, U80: denied("*>x/a"), ICMP: denied("*>x/a")},
        upstream="should enforce ingress policy allowing any port traffic to a server on a specific protocol",
        note="T81 and ICMP are ours: no port means every TCP port, and never ICMP.",
    ),
    E2ECase(
        "ingress-allow-all-precedence-step1",
        [_policy("x", "allow-ingress-port-80", ALL, ingress=[{"ports": [_port(80)]}])],
        {T81: denied("*>x/*"), T80: NONE},
        upstream="should enforce multiple ingress policies with ingress allow-all policy taking precedence",
        note="T80 is ours.",
    ),
    E2ECase(
        "ingress-allow-all-precedence-step2",
        [
            _policy("x", "allow-ingress-port-80", ALL, ingress=[{"ports": [_port(80)]}]),
            _policy("x", "allow-ingress", ALL, ingress=[{}]),
        ],
        {T81: NONE},
        upstream="should enforce multiple ingress policies with ingress allow-all policy taking precedence",
    ),
    E2ECase(
        "egress-allow-all-precedence-step1",
        [_policy("x", "allow-egress-port-80", ALL, egress=[{"ports": [_port(80)]}])],
        {T81: denied("x/*>*"), T80: NONE},
        upstream="should enforce multiple egress policies with egress allow-all policy taking precedence",
        note="T80 is ours.",
    ),
    E2ECase(
        "egress-allow-all-precedence-step2",
        [
            _policy("x", "allow-egress-port-80", ALL, egress=[{"ports": [_port(80)]}]),
            _policy("x", "allow-egress", ALL, egress=[{}]),
        ],
        {T81: NONE},
        upstream="should enforce multiple egress policies with egress allow-all policy taking precedence",
    ),
    E2ECase(
        "deleted-policy-step1",
        [_deny_all_x],
        {T80: denied("x/*>*", "*>x/*")},
        upstream="should stop enforcing policies after they are deleted",
    ),
    E2ECase(
        "deleted-policy-step2",
        [],
        {T80: NONE},
        upstream="should stop enforcing policies after they are deleted",
    ),
    E2ECase(
        "egress-cidr",
        [
            _policy(
                "x",
                "allow-client-a-via-cidr-egress-rule",
                A,
                egress=[{"to": [{"ipBlock": {"cidr": pod_ip("y/b") + "/32"}}]}],
            )
        ],
        {T80: denied("x/a>*", "!x/a>y/b"), ICMP: denied("x/a>*", "!x/a>y/b")},
        upstream="should allow egress access to server in CIDR block",
        note="ICMP is ours.",
    ),
    E2ECase(
        "egress-cidr-except",
        [_egress_cidr_except],
        {T80: denied("x/a>x/b")},
        upstream="should enforce except clause while egress access to server in CIDR block",
        note="The CIDR is the /4 holding x/b's IP (upstream makeLargeCIDRForIP): 0.0.0.0/4.",
    ),
    E2ECase(
        "cidr-and-except-overlap-step1",
        [_egress_cidr_except],
        {T80: denied("x/a>x/b")},
        upstream="should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed",
    ),
    E2ECase(
        "cidr-and-except-overlap-step2",
        [
            _policy(
                "x",
                "allow-client-a-via-cidr-egress-rule",
                A,
                egress=[{"to": [{"ipBlock": {"cidr": pod_ip("x/b") + "/32"}}]}],
            )
        ],
        {T80: denied("x/a>*", "!x/a>x/b")},
        upstream="should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed",
        note="Upstream UPDATES the policy of the same name, so only the /32 rule remains.",
    ),
    E2ECase(
        "ingress-egress-independent-step1",
        [_policy("x", "allow-egress-for-target", A, egress=[{}])],
        {T80: NONE},
        upstream="should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector",
    ),
    E2ECase(
        "ingress-egress-independent-step2",
        [
            _policy("x", "allow-egress-for-target", A, egress=[{}]),
            _policy("x", "deny-ingress-via-label-selector", A, ingress=[]),
        ],
        {T80: denied("*>x/a")},
        upstream="should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector",
    ),
    E2ECase(
        "sctp-is-not-tcp",
        [
            _deny_ingress_x,
            _policy(
                "x",
                "allow-only-sctp-ingress-on-port-81",
                A,
                ingress=[{"ports": [_port(81, "SCTP")]}],
            ),
        ],
        {T81: denied("*>x/*"), S81: denied("*>x/b", "*>x/c")},
        upstream="should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP",
        note="S81 is ours.",
    ),
    E2ECase(
        "sctp-policy-isolates",
        [
            _policy(
                "x",
                "allow-only-sctp-ingress-on-port-80",
                A,
                ingress=[{"ports": [_port(80, "SCTP")]}],
            )
        ],
        {T81: denied("*>x/a"), S80: NONE, S81: denied("*>x/a")},
        upstream="should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP",
        note="S80 and S81 are ours.",
    ),
    E2ECase(
        "udp-policy-not-tcp",
        [
            _policy(
                "x",
                "allow-only-udp-ingress-on-port-81",
                A,
                ingress=[{"ports": [_port(81, "UDP")]}],
            )
        ],
        {T81: denied("*>x/a"), U81: NONE},
        upstream="should not allow access by TCP when a policy specifies only UDP",
        note="U81 is ours.",
    ),
    E2ECase(
        "default-ns-label-match-labels",
        [
            _policy(
                "x",
                "allow-client-a-via-ns-selector-for-immutable-ns-label",
                A,
                ingress=[{"from": [_ns("y")]}],
            )
        ],
        {T80: denied("x/*>x/a", "z/*>x/a")},
        upstream="should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label",
    ),
    E2ECase(
        "default-ns-label-match-expressions-egress",
        [
            _policy(
                "x",
                "allow-ns-y-match-selector-for-immutable-ns-label",
                A,
                egress=[
                    {
                        "to": [
                            {
                                "namespaceSelector": _sel(
                                    expr=[("kubernetes.io/metadata.name", "NotIn", ["y"])]
                                )
                            }
                        ]
                    }
                ],
            )
        ],
        {T80: denied("x/a>y/*")},
        upstream="should enforce policy based on NamespaceSelector with MatchExpressions using default ns label",
    ),
    # --- the UDP suite ---
    E2ECase(
        "udp-default-deny-ingress",
        [_policy("x", "deny-all", ALL, ingress=[])],
        {U80: denied("*>x/*")},
        upstream="[UDP] should support a 'default-deny-ingress' policy",
    ),
    E2ECase(
        "udp-ports",
        [
            _policy(
                "x",
                "allow-ingress-on-port-81-ns-x",
                A,
                ingress=[{"from": [_ns("y")], "ports": [_port(81, "UDP")]}],
            )
        ],
        {U81: denied("x/*>x/a", "z/*>x/a"), U80: denied("*>x/a"), T81: denied("*>x/a")},
        upstream="[UDP] should enforce policy based on Ports",
        note="U80 and T81 are ours.",
    ),
    E2ECase(
        "udp-pod-in-other-namespace",
        [
            _policy(
                "x",
                "allow-ns-y-pod-a-via-namespace-pod-selector",
                A,
                ingress=[{"from": [_ns_pod(_ns("y")["namespaceSelector"], A)]}],
            )
        ],
        {U80: denied("*>x/a", "!y/a>x/a")},
        upstream="[UDP] should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector",
    ),
    # --- the SCTP suite ---
    E2ECase(
        "sctp-default-deny-ingress",
        [_policy("x", "deny-all", ALL, ingress=[])],
        {S80: denied("*>x/*")},
        upstream="[SCTP] should support a 'default-deny-ingress' policy",
    ),
    E2ECase(
        "sctp-ports",
        [
            _policy(
                "x",
                "allow-ingress-on-port-81-ns-x",
                A,
                ingress=[{"from": [_ns("y")], "ports": [_port(81, "SCTP")]}],
            )
        ],
        {S81: denied("x/*>x/a", "z/*>x/a"), S80: denied("*>x/a")},
        upstream="[SCTP] should enforce policy based on Ports",
        note="S80 is ours.",
    ),
    E2ECase(
        "sctp-pod-in-other-namespace",
        [
            _policy(
                "x",
                "allow-ns-y-pod-a-via-namespace-pod-selector",
                A,
                ingress=[{"from": [_ns_pod(_ns("y")["namespaceSelector"], A)]}],
            )
        ],
        {S80: denied("*>x/a", "!y/a>x/a")},
        upstream="[SCTP] should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector",
    ),
    # --- ours: what upstream's current suite does not probe ---
    E2ECase(
        "endport-range",
        [
            _policy(
                "x",
                "allow-80-81-from-y",
                A,
                ingress=[{"from": [_ns("y")], "ports": [_port(80, "TCP", end=81)]}],
            )
        ],
        {
            T80: denied("x/*>x/a", "z/*>x/a"),
            T81: denied("x/*>x/a", "z/*>x/a"),
            U80: denied("*>x/a"),
        },
        note="endPort: 80..81 inclusive, TCP only.",
    ),
    E2ECase(
        "endport-range-excludes-start",
        [_policy("x", "allow-81-82", ALL, ingress=[{"ports": [_port(81, "TCP", end=82)]}])],
        {T80: denied("*>x/*"), T81: NONE},
        note="A range starting at 81 does not hold 80.",
    ),
    E2ECase(
        "ingress-ipblock-pod-ip",
        [
            _policy(
                "x",
                "allow-from-ya-ip",
                A,
                ingress=[{"from": [{"ipBlock": {"cidr": pod_ip("y/a") + "/32"}}]}],
            )
        ],
        {T80: denied("*>x/a", "!y/a>x/a")},
        note="An ipBlock matches pod IPs too (Calico and upstream conformance).",
    ),
    E2ECase(
        "ingress-ipblock-except-pod-ip",
        [
            _policy(
                "x",
                "allow-from-pods-but-yb",
                ALL,
                ingress=[
                    {
                        "from": [
                            {
                                "ipBlock": {
                                    "cidr": "10.244.0.0/16",
                                    "except": [pod_ip("y/b") + "/32"],
                                }
                            }
                        ]
                    }
                ],
            )
        ],
        {T80: denied("y/b>x/*")},
    ),
    E2ECase(
        "named-port-protocol-mismatch",
        [
            _policy(
                "x",
                "egress-udp-serve-80-tcp",
                ALL,
                egress=[{"ports": [_port("serve-80-tcp", "UDP")]}],
            )
        ],
        {T80: denied("x/*>*"), U80: denied("x/*>*")},
        note="A named port resolves by name AND protocol: no UDP port is called serve-80-tcp.",
    ),
    E2ECase(
        "egress-named-port-udp",
        [
            _policy(
                "x", "egress-serve-81-udp", ALL, egress=[{"ports": [_port("serve-81-udp", "UDP")]}]
            )
        ],
        {U81: NONE, U80: denied("x/*>*"), T81: denied("x/*>*")},
    ),
    E2ECase(
        "multiple-policies-union",
        [
            _policy("x", "a-from-y", A, ingress=[{"from": [_ns("y")], "ports": [_port(80)]}]),
            _policy(
                "x",
                "a-from-z-c",
                A,
                ingress=[{"from": [_ns_pod(_ns("z")["namespaceSelector"], _sel({"pod": "c"}))]}],
            ),
        ],
        {T80: denied("x/*>x/a", "z/a>x/a", "z/b>x/a"), T81: denied("*>x/a", "!z/c>x/a")},
        note="Two policies selecting x/a: their rules add up.",
    ),
    E2ECase(
        "egress-and-ingress-both-needed",
        [
            _policy("x", "a-egress-to-y", A, egress=[{"to": [_ns("y")]}]),
            _policy(
                "y",
                "y-from-x-b",
                ALL,
                ingress=[{"from": [_ns_pod(_ns("x")["namespaceSelector"], _sel({"pod": "b"}))]}],
            ),
        ],
        {T80: denied("x/a>*", "*>y/*", "!x/b>y/*")},
        note="x/a may send only to y, but y admits only x/b (not even y's own pods).",
    ),
]
