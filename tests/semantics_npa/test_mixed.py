"""Cluster-wide policies with Kubernetes NetworkPolicies in one cluster, in Calico's order:
the Admin tier (``kube-admin``, by priority), then the default tier (NetworkPolicies),
then the Baseline tier (``kube-baseline``); Pass hands over to the next tier.

One case per row: the policies, a flow, whether it is allowed and the words of
the explanation that must name what decided (``trace`` prints the same lines).
The matrix must agree with the walk on every pod-to-pod row.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from sekisho.model import Cluster, cluster_from_objects
from sekisho.model.types import FlowProtocol
from sekisho.semantics import Flow, compile_program, compute_matrix, resolve_endpoint, verdict

Manifest = dict[str, Any]
NS_A = {"namespaces": {"matchLabels": {"team": "a"}}}
NS_B = {"namespaces": {"matchLabels": {"team": "b"}}}
SERVER = {"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "server"}}}}
EVERYONE = {"namespaces": {}}


def _pod(ns: str, name: str, node: str, ip: str, *, host: bool = False) -> Manifest:
    spec: dict[str, Any] = {
        "nodeName": node,
        "containers": [
            {
                "name": "c",
                "ports": [
                    {"containerPort": 80, "name": "http"},
                    {"containerPort": 53, "protocol": "UDP", "name": "dns"},
                ],
            }
        ],
    }
    if host:
        spec["hostNetwork"] = True
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": spec,
        "status": {} if host else {"podIP": ip},
    }


def _node(name: str, ip: str, cidr: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"role": name}},
        "spec": {"podCIDR": cidr},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


BASE: list[Manifest] = [
    _node("n1", "172.18.0.2", "10.244.0.0/24"),
    _node("n2", "172.18.0.3", "10.244.1.0/24"),
    *(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"team": ns}}}
        for ns in ("a", "b")
    ),
    _pod("a", "client", "n1", "10.244.0.10"),
    _pod("a", "agent", "n1", "", host=True),
    _pod("b", "server", "n2", "10.244.1.10"),
    _pod("b", "other", "n2", "10.244.1.11"),
]


def cnp(name: str, tier: str, priority: int, **rules: Any) -> Manifest:
    subject = rules.pop("subject", {"pods": {"podSelector": {"matchLabels": {"app": "server"}}}})
    spec: dict[str, Any] = {"tier": tier, "priority": priority, "subject": subject, **rules}
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha2",
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


def anp(name: str, priority: int, **rules: Any) -> Manifest:
    subject = {"namespaces": {"matchLabels": {"team": "b"}}}
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": "AdminNetworkPolicy",
        "metadata": {"name": name},
        "spec": {"priority": priority, "subject": subject, **rules},
    }


def banp(**rules: Any) -> Manifest:
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": "BaselineAdminNetworkPolicy",
        "metadata": {"name": "default"},
        "spec": {"subject": {"namespaces": {"matchLabels": {"team": "b"}}}, **rules},
    }


def netpol(name: str, ingress: list[Any] | None = None) -> Manifest:
    """A NetworkPolicy isolating b/server for ingress, allowing ``ingress``."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "b"},
        "spec": {"podSelector": {"matchLabels": {"app": "server"}}, "ingress": ingress or []},
    }


FROM_A = [{"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}]}]


def rule(action: str, peer: Any, **extra: Any) -> dict[str, Any]:
    return {"action": action, "from": [peer], **extra}


def out(action: str, *peers: Any, **extra: Any) -> dict[str, Any]:
    return {"action": action, "to": list(peers), **extra}


CASES = [
    # (policies, from, to, service, allowed, words of the deciding step)
    pytest.param(
        [cnp("deny-a", "Admin", 10, ingress=[rule("Deny", NS_A)]), netpol("allow-a", FROM_A)],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "denied by ClusterNetworkPolicy deny-a ingress rule 0 peer 0 (tier kube-admin)",
        id="admin-deny-beats-networkpolicy-allow",
    ),
    pytest.param(
        [cnp("accept-a", "Admin", 10, ingress=[rule("Accept", NS_A)]), netpol("isolate")],
        "a/client",
        "b/server",
        "TCP/80",
        True,
        "allowed by ClusterNetworkPolicy accept-a ingress rule 0 peer 0 (tier kube-admin)",
        id="admin-accept-beats-networkpolicy-isolation",
    ),
    pytest.param(
        [cnp("pass-a", "Admin", 10, ingress=[rule("Pass", NS_A)]), netpol("allow-a", FROM_A)],
        "a/client",
        "b/server",
        "TCP/80",
        True,
        "allowed by b/allow-a ingress rule 0 peer 0 (tier default)",
        id="admin-pass-then-networkpolicy-allows",
    ),
    pytest.param(
        [
            cnp("pass-a", "Admin", 10, ingress=[rule("Pass", NS_A)]),
            netpol("allow-b", [{"from": [{"podSelector": {}}]}]),
        ],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "end of tier default: no rule matched: denied",
        id="admin-pass-then-networkpolicy-isolates",
    ),
    pytest.param(
        [
            cnp("pass-a", "Admin", 10, ingress=[rule("Pass", NS_A)]),
            cnp("base-deny", "Baseline", 10, ingress=[rule("Deny", EVERYONE)]),
        ],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "denied by ClusterNetworkPolicy base-deny ingress rule 0 peer 0 (tier kube-baseline)",
        id="admin-pass-without-networkpolicy-reaches-baseline",
    ),
    pytest.param(
        [
            cnp("base-deny", "Baseline", 10, ingress=[rule("Deny", NS_A)]),
            netpol("allow-a", FROM_A),
        ],
        "a/client",
        "b/server",
        "TCP/80",
        True,
        "allowed by b/allow-a ingress rule 0 peer 0 (tier default)",
        id="networkpolicy-overrides-baseline-deny",
    ),
    pytest.param(
        [
            cnp("base-accept", "Baseline", 10, ingress=[rule("Accept", NS_A)]),
            netpol("isolate"),
        ],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "end of tier default: no rule matched: denied",
        id="networkpolicy-isolation-beats-baseline-accept",
    ),
    pytest.param(
        [
            cnp(
                "egress-accept",
                "Admin",
                10,
                subject={"namespaces": {"matchLabels": {"team": "a"}}},
                egress=[out("Accept", NS_B)],
            ),
            netpol("isolate"),
        ],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "end of tier default: no rule matched: denied",
        id="egress-accept-leaves-the-destination-ingress-to-its-policies",
    ),
    pytest.param(
        [
            anp("anp-deny", 5, ingress=[rule("Deny", NS_A)]),
            cnp("cnp-accept", "Admin", 10, ingress=[rule("Accept", NS_A)]),
        ],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "denied by AdminNetworkPolicy anp-deny ingress rule 0 peer 0 (tier kube-admin)",
        id="anp-and-cnp-share-the-admin-tier-by-priority",
    ),
    pytest.param(
        [
            anp("anp-deny", 20, ingress=[rule("Deny", NS_A)]),
            cnp("cnp-accept", "Admin", 10, ingress=[rule("Accept", NS_A)]),
        ],
        "a/client",
        "b/server",
        "TCP/80",
        True,
        "allowed by ClusterNetworkPolicy cnp-accept ingress rule 0 peer 0 (tier kube-admin)",
        id="lower-priority-value-first",
    ),
    pytest.param(
        [banp(ingress=[rule("Deny", NS_A)]), netpol("allow-a", FROM_A)],
        "a/client",
        "b/server",
        "TCP/80",
        True,
        "allowed by b/allow-a",
        id="banp-after-networkpolicy",
    ),
    pytest.param(
        [banp(ingress=[rule("Deny", NS_A)])],
        "a/client",
        "b/other",
        "TCP/80",
        False,
        "denied by BaselineAdminNetworkPolicy default ingress rule 0 peer 0 (tier kube-baseline)",
        id="banp-deny",
    ),
    pytest.param(
        [cnp("only-b", "Admin", 10, ingress=[rule("Deny", NS_B)])],
        "a/client",
        "b/server",
        "TCP/80",
        True,
        "every tier passed: the profile allows",
        id="admin-tier-without-a-match-passes",
    ),
    pytest.param(
        [
            cnp(
                "named",
                "Admin",
                10,
                ingress=[
                    rule("Accept", NS_A, protocols=[{"destinationNamedPort": "http"}]),
                    rule("Deny", NS_A),
                ],
            )
        ],
        "a/client",
        "b/server",
        "TCP/80",
        True,
        "allowed by ClusterNetworkPolicy named ingress rule 0 peer 0 TCP/http",
        id="named-port-matches-the-declared-port",
    ),
    pytest.param(
        [
            cnp(
                "named",
                "Admin",
                10,
                ingress=[
                    rule("Accept", NS_A, protocols=[{"destinationNamedPort": "http"}]),
                    rule("Deny", NS_A),
                ],
            )
        ],
        "a/client",
        "b/server",
        "UDP/80",
        False,
        "denied by ClusterNetworkPolicy named ingress rule 1 peer 0",
        id="named-port-keeps-its-protocol",
    ),
    pytest.param(
        [
            cnp(
                "ranges",
                "Admin",
                10,
                ingress=[
                    rule(
                        "Deny",
                        NS_A,
                        protocols=[
                            {"udp": {"destinationPort": {"range": {"start": 50, "end": 60}}}}
                        ],
                    )
                ],
            )
        ],
        "a/client",
        "b/server",
        "UDP/53",
        False,
        "denied by ClusterNetworkPolicy ranges ingress rule 0 peer 0 UDP/50-60",
        id="port-range-inclusive",
    ),
    pytest.param(
        [cnp("no-hosts", "Admin", 10, ingress=[rule("Deny", EVERYONE)])],
        "a/agent",
        "b/server",
        "TCP/80",
        True,
        "every tier passed: the profile allows",
        id="host-networked-pods-are-no-namespaces-peer",
    ),
    pytest.param(
        [
            cnp(
                "to-nodes",
                "Admin",
                10,
                subject={"namespaces": {"matchLabels": {"team": "a"}}},
                egress=[out("Deny", {"nodes": {"matchLabels": {"role": "n2"}}})],
            )
        ],
        "a/client",
        "n2",
        "TCP/10250",
        False,
        "denied by ClusterNetworkPolicy to-nodes egress rule 0 peer 0",
        id="nodes-peer-matches-the-node-address",
    ),
    pytest.param(
        [
            cnp(
                "to-nodes",
                "Admin",
                10,
                subject={"namespaces": {"matchLabels": {"team": "a"}}},
                egress=[out("Deny", {"nodes": {"matchLabels": {"role": "n2"}}})],
            )
        ],
        "a/client",
        "b/server",
        "TCP/80",
        True,
        "every tier passed",
        id="nodes-peer-is-not-the-pods-on-the-node",
    ),
    pytest.param(
        [
            cnp(
                "to-net",
                "Admin",
                10,
                subject={"namespaces": {"matchLabels": {"team": "a"}}},
                egress=[out("Deny", {"networks": ["10.244.1.10/32"]})],
            )
        ],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "denied by ClusterNetworkPolicy to-net egress rule 0 peer 0",
        id="networks-peer-matches-pod-ips",
    ),
    pytest.param(
        [
            cnp(
                "fqdn",
                "Admin",
                10,
                subject={"namespaces": {"matchLabels": {"team": "a"}}},
                egress=[
                    out("Accept", {"domainNames": ["example.com"]}),
                    out("Deny", {"networks": ["0.0.0.0/0"]}),
                ],
            )
        ],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "denied by ClusterNetworkPolicy fqdn egress rule 1 peer 0",
        id="domain-names-match-nothing-offline",
    ),
]


def _cluster(policies: list[Manifest]) -> Cluster:
    return cluster_from_objects([*BASE, *policies], source="mixed")


@pytest.mark.parametrize(("policies", "src", "dst", "service", "allowed", "words"), CASES)
def test_tiers_in_calico_order(
    policies: list[Manifest], src: str, dst: str, service: str, allowed: bool, words: str
) -> None:
    check_case(_cluster(policies), src, dst, service, allowed, words)


def check_case(
    cluster: Cluster, src: str, dst: str, service: str, allowed: bool, words: str
) -> None:
    """The walk allows (or denies) ``src`` -> ``dst`` on ``service`` and says ``words``;
    the matrix agrees when both ends are pods."""
    proto, _, port = service.partition("/")
    flow = Flow(
        resolve_endpoint(cluster, src),
        resolve_endpoint(cluster, dst),
        cast(FlowProtocol, proto),
        int(port),
    )
    v = verdict(cluster, flow)
    sides = [d for d in (v.egress, v.ingress) if d is not None]
    text = "\n".join([*v.lines(), *(d.because() for d in sides)])
    assert v.allowed == allowed, text
    assert words in text, text
    if flow.dst.pod is not None and flow.src.pod is not None:
        matrix = compute_matrix(cluster, [(int(port), proto)])
        keys = [p.key for p in matrix.pods]
        cell = matrix.probes[0].allowed[keys.index(src), keys.index(dst)]
        assert bool(cell) == allowed


def test_tier_order_and_default_actions() -> None:
    program = compile_program(
        _cluster(
            [
                cnp("x", "Admin", 7, ingress=[rule("Deny", NS_A)]),
                cnp("y", "Baseline", 3, ingress=[rule("Deny", NS_A)]),
                netpol("allow-a", FROM_A),
            ]
        )
    )
    assert [(t.name, t.order, t.default_action) for t in program.tiers] == [
        ("kube-admin", 1000.0, "pass"),
        ("default", 1_000_000.0, "deny"),
        ("kube-baseline", 10_000_000.0, "pass"),
    ]
    assert [p.key for p in program.policies()] == [
        "kcnp.kube-admin.x",
        "b/knp.default.allow-a",
        "kcnp.kube-baseline.y",
    ]
    admin = program.tiers[0].policies[0]
    assert admin.order == 7.0 and admin.types == frozenset({"ingress"})


def test_domain_names_leave_a_note() -> None:
    program = compile_program(
        _cluster(
            [
                cnp(
                    "fqdn",
                    "Admin",
                    10,
                    subject={"namespaces": {}},
                    egress=[out("Accept", {"domainNames": ["example.com"]}, NS_B)],
                )
            ]
        )
    )
    (note,) = program.notes
    assert note.startswith(
        "ClusterNetworkPolicy fqdn egress rule 0 to[0]: domainNames (example.com)"
    )
    # The rule's other peer still accepts.
    (pol,) = program.policies()
    assert [r.origin for r in pol.egress] == ["egress rule 0 peer 1"]


def test_a_rule_is_one_program_rule_per_protocol_then_per_peer() -> None:
    program = compile_program(
        _cluster(
            [
                cnp(
                    "multi",
                    "Admin",
                    1,
                    ingress=[
                        {
                            "name": "web",
                            "action": "Deny",
                            "from": [NS_A, NS_B],
                            "protocols": [
                                {"udp": {"destinationPort": {"number": 53}}},
                                {"tcp": {"destinationPort": {"number": 80}}},
                                {
                                    "tcp": {
                                        "destinationPort": {"range": {"start": 8000, "end": 8080}}
                                    }
                                },
                            ],
                        }
                    ],
                )
            ]
        )
    )
    (pol,) = program.policies()
    assert [r.origin for r in pol.ingress] == [
        'ingress rule 0 "web" peer 0 TCP/80,8000-8080',
        'ingress rule 0 "web" peer 1 TCP/80,8000-8080',
        'ingress rule 0 "web" peer 0 UDP/53',
        'ingress rule 0 "web" peer 1 UDP/53',
    ]
    assert {r.action for r in pol.ingress} == {"deny"}
