"""Calico v3 policies with Kubernetes NetworkPolicies and cluster-wide policies in one
cluster, in Felix's order: tiers by order (kube-admin 1000, user tiers, default
1,000,000, kube-baseline 10,000,000), policies by order (none: last) then name,
rules first match with Allow, Deny, Pass and Log.

One case per row: the policies, a flow, whether it is allowed and the words of the
explanation that must name what decided (``trace`` prints the same lines). The
matrix must agree with the walk on every case.
"""

from __future__ import annotations

from typing import Any

import pytest

from sekisho.model import Cluster, cluster_from_objects
from sekisho.semantics import Flow, compile_program, compute_matrix, resolve_endpoint, verdict
from sekisho.semantics.staged import pending_verdict
from semantics_npa.test_mixed import BASE, FROM_A, NS_A, banp, check_case, cnp, netpol, rule

Manifest = dict[str, Any]
V3 = "projectcalico.org/v3"


def tier(name: str, order: float | None = None, action: str | None = None) -> Manifest:
    spec: dict[str, Any] = {}
    if order is not None:
        spec["order"] = order
    if action is not None:
        spec["defaultAction"] = action
    return {"apiVersion": V3, "kind": "Tier", "metadata": {"name": name}, "spec": spec}


def gnp(name: str, selector: str = "app == 'server'", **spec: Any) -> Manifest:
    return {
        "apiVersion": V3,
        "kind": "GlobalNetworkPolicy",
        "metadata": {"name": name},
        "spec": {"selector": selector, **spec},
    }


def cnpv3(name: str, ns: str = "b", selector: str = "app == 'server'", **spec: Any) -> Manifest:
    return {
        "apiVersion": V3,
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": selector, **spec},
    }


def staged(kind: str, name: str, ns: str | None = "b", **spec: Any) -> Manifest:
    meta: dict[str, Any] = {"name": name}
    if ns is not None:
        meta["namespace"] = ns
    return {"apiVersion": V3, "kind": kind, "metadata": meta, "spec": spec}


def allow(**extra: Any) -> dict[str, Any]:
    return {"action": "Allow", **extra}


def deny(**extra: Any) -> dict[str, Any]:
    return {"action": "Deny", **extra}


FROM_NS_A = {"source": {"namespaceSelector": "team == 'a'"}}
TCP80 = {"protocol": "TCP", "destination": {"ports": [80]}}

CASES = [
    # (policies, from, to, service, allowed, words of the deciding step)
    pytest.param(
        [gnp("deny-a", order=10, ingress=[deny(**FROM_NS_A)]), netpol("allow-a", FROM_A)],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "denied by GlobalNetworkPolicy deny-a ingress rule 0 (Deny) (tier default)",
        id="lower-order-deny-beats-networkpolicy-allow",
    ),
    pytest.param(
        [
            gnp("deny-a", order=10, ingress=[deny(**FROM_NS_A)]),
            gnp("allow-a", order=2000, ingress=[allow(**FROM_NS_A)]),
        ],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "denied by GlobalNetworkPolicy deny-a ingress rule 0 (Deny) (tier default)",
        id="higher-order-allow-comes-too-late",
    ),
    pytest.param(
        [gnp("allow-a", order=2000, ingress=[allow(**FROM_NS_A)]), netpol("isolate")],
        "a/client",
        "b/server",
        "TCP/80",
        True,
        "allowed by GlobalNetworkPolicy allow-a ingress rule 0 (Allow) (tier default)",
        id="a-policy-that-matches-nothing-falls-through-in-its-tier",
    ),
    pytest.param(
        [gnp("deny-a", ingress=[deny(**FROM_NS_A)]), netpol("allow-a", FROM_A)],
        "a/client",
        "b/server",
        "TCP/80",
        True,
        "allowed by b/allow-a ingress rule 0 peer 0 (tier default)",
        id="no-order-is-last",
    ),
    pytest.param(
        [
            tier("platform", 100),
            gnp("platform.deny-a", tier="platform", ingress=[deny(**FROM_NS_A)]),
            netpol("allow-a", FROM_A),
        ],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "denied by GlobalNetworkPolicy platform.deny-a ingress rule 0 (Deny) (tier platform)",
        id="platform-tier-before-default",
    ),
    pytest.param(
        [
            tier("platform", 100),
            gnp("platform.pass-a", tier="platform", ingress=[{"action": "Pass", **FROM_NS_A}]),
            netpol("allow-a", FROM_A),
        ],
        "a/client",
        "b/server",
        "TCP/80",
        True,
        "allowed by b/allow-a ingress rule 0 peer 0",
        id="pass-to-the-default-tier",
    ),
    pytest.param(
        [tier("platform", 100), gnp("platform.other", tier="platform", ingress=[deny(**TCP80)])],
        "a/client",
        "b/server",
        "UDP/53",
        False,
        "end of tier platform: no rule matched: denied",
        id="tier-default-deny",
    ),
    pytest.param(
        [
            tier("platform", 100, "Pass"),
            gnp("platform.other", tier="platform", ingress=[deny(**TCP80)]),
        ],
        "a/client",
        "b/server",
        "UDP/53",
        True,
        "every tier passed: the profile allows",
        id="tier-default-pass",
    ),
    pytest.param(
        [
            tier("late", 5_000_000),
            gnp("late.deny", tier="late", ingress=[deny()]),
            netpol("allow-a", FROM_A),
        ],
        "a/client",
        "b/server",
        "TCP/80",
        True,
        "allowed by b/allow-a ingress rule 0 peer 0 (tier default)",
        id="tier-after-default-never-reached",
    ),
    pytest.param(
        [
            cnp("pass-all", "Admin", 1, ingress=[rule("Pass", NS_A)]),
            tier("platform", 100),
            gnp("platform.deny", tier="platform", ingress=[deny(**FROM_NS_A)]),
        ],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "denied by GlobalNetworkPolicy platform.deny ingress rule 0 (Deny) (tier platform)",
        id="kube-admin-pass-then-calico-tier",
    ),
    pytest.param(
        [
            cnp("deny", "Admin", 1, ingress=[rule("Deny", NS_A)]),
            tier("platform", 2000),
            gnp("platform.allow", tier="platform", ingress=[allow(**FROM_NS_A)]),
        ],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "denied by ClusterNetworkPolicy deny ingress rule 0 peer 0 (tier kube-admin)",
        id="kube-admin-before-a-tier-of-higher-order",
    ),
    pytest.param(
        [
            cnp("deny", "Admin", 1, ingress=[rule("Deny", NS_A)]),
            tier("platform", 100),
            gnp("platform.allow", tier="platform", ingress=[allow(**FROM_NS_A)]),
        ],
        "a/client",
        "b/server",
        "TCP/80",
        True,
        "allowed by GlobalNetworkPolicy platform.allow ingress rule 0 (Allow) (tier platform)",
        id="a-tier-of-order-below-1000-comes-before-kube-admin",
    ),
    pytest.param(
        [
            gnp("pass", order=1, ingress=[{"action": "Pass"}]),
            banp(ingress=[{"action": "Deny", "from": [NS_A]}]),
        ],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "denied by BaselineAdminNetworkPolicy default ingress rule 0 peer 0 (tier kube-baseline)",
        id="default-tier-pass-reaches-kube-baseline",
    ),
    pytest.param(
        [
            cnpv3("log-then-allow", order=1, ingress=[{"action": "Log"}, allow(**FROM_NS_A)]),
        ],
        "a/client",
        "b/server",
        "TCP/80",
        True,
        "logged by NetworkPolicy b/log-then-allow ingress rule 0 (Log)",
        id="log-goes-on",
    ),
    pytest.param(
        [cnpv3("local-only", ingress=[allow(source={"selector": "all()"})])],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "is in namespace a, not in namespace b",
        id="namespaced-rule-selector-is-scoped",
    ),
    pytest.param(
        [cnpv3("not-a", ingress=[allow(source={"notSelector": "app == 'client'"})])],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        'matches notSelector app == "client"',
        id="not-selector-is-not-scoped",
    ),
    pytest.param(
        [
            cnpv3(
                "nets",
                ingress=[allow(source={"nets": ["10.244.0.0/24"], "notNets": ["10.244.0.10/32"]})],
            )
        ],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "is in excluded 10.244.0.10/32",
        id="not-nets",
    ),
    pytest.param(
        [cnpv3("ports", ingress=[allow(protocol="TCP", destination={"notPorts": ["1:100"]})])],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "is one of the excluded ports 1-100",
        id="not-ports",
    ),
    pytest.param(
        [cnpv3("named", ingress=[allow(protocol="TCP", destination={"ports": ["http"]})])],
        "a/client",
        "b/server",
        "TCP/80",
        True,
        "allowed by NetworkPolicy b/named ingress rule 0 (Allow)",
        id="named-port",
    ),
    # A probe's source port is one the kernel picks from 32768-60999: a source port
    # match is known when it holds all of that range or none of it (a name declared
    # only below it holds none), else "not known" and the rule does not match.
    pytest.param(
        [cnpv3("sport", ingress=[allow(protocol="TCP", source={"notPorts": ["http"]})])],
        "a/client",
        "b/server",
        "TCP/80",
        True,
        "allowed by NetworkPolicy b/sport ingress rule 0 (Allow)",
        id="source-not-ports-named-below-the-ephemeral-range",
    ),
    pytest.param(
        [cnpv3("sport", ingress=[allow(protocol="TCP", source={"ports": ["http"]})])],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "source port: a probe's ephemeral port (32768-60999) is not http",
        id="source-ports-named-below-the-ephemeral-range",
    ),
    pytest.param(
        [cnpv3("sport", ingress=[allow(protocol="TCP", source={"ports": ["1024:65535"]})])],
        "a/client",
        "b/server",
        "TCP/80",
        True,
        "allowed by NetworkPolicy b/sport ingress rule 0 (Allow)",
        id="source-ports-holding-the-ephemeral-range",
    ),
    pytest.param(
        [cnpv3("sport", ingress=[allow(protocol="TCP", source={"notPorts": ["40000:50000"]})])],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "is not known to be outside 40000-50000",
        id="source-ports-holding-part-of-the-ephemeral-range",
    ),
    pytest.param(
        [cnpv3("notproto", ingress=[allow(notProtocol="UDP")])],
        "a/client",
        "b/server",
        "UDP/53",
        False,
        "is the excluded protocol UDP",
        id="not-protocol",
    ),
    pytest.param(
        [cnpv3("v6", ingress=[allow(ipVersion=6)])],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "the flow is IPv4, the rule IPv6",
        id="ip-version",
    ),
    pytest.param(
        [
            cnpv3(
                "sa",
                ingress=[
                    allow(
                        source={
                            "serviceAccounts": {"names": ["builder"]},
                            "namespaceSelector": "all()",
                        }
                    )
                ],
            )
        ],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "do not satisfy",
        id="service-account-names",
    ),
    pytest.param(
        [
            {
                "apiVersion": V3,
                "kind": "GlobalNetworkSet",
                "metadata": {"name": "clients", "labels": {"kind": "clients"}},
                "spec": {"nets": ["10.244.0.0/24"]},
            },
            cnpv3(
                "from-set",
                ingress=[
                    allow(source={"selector": "kind == 'clients'", "namespaceSelector": "global()"})
                ],
            ),
        ],
        "a/client",
        "b/server",
        "TCP/80",
        True,
        "allowed by NetworkPolicy b/from-set ingress rule 0 (Allow)",
        id="global-network-set-by-selector",
    ),
    pytest.param(
        [
            gnp(
                "egress",
                selector="app == 'client'",
                namespaceSelector="team == 'a'",
                egress=[
                    deny(
                        protocol="TCP",
                        destination={"selector": "app == 'server'", "namespaceSelector": "all()"},
                    )
                ],
            )
        ],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "denied by GlobalNetworkPolicy egress egress rule 0 (Deny)",
        id="gnp-namespace-selector-egress",
    ),
]


def _cluster(policies: list[Manifest]) -> Cluster:
    return cluster_from_objects([*BASE, *policies], source="calico")


@pytest.mark.parametrize(("policies", "src", "dst", "service", "allowed", "words"), CASES)
def test_calico_in_felix_order(
    policies: list[Manifest], src: str, dst: str, service: str, allowed: bool, words: str
) -> None:
    check_case(_cluster(policies), src, dst, service, allowed, words)


@pytest.mark.parametrize(
    "policies",
    [
        pytest.param(c.values[0], id=c.id)
        for c in CASES
        if c.id is not None and c.id.startswith("source-") and "part-of" not in c.id
    ],
)
def test_known_source_ports_agree_with_the_rendered_rules(policies: list[Manifest]) -> None:
    """Where the walk knows a probe's source port against a rule, the interpreter over
    both backends' rules (a probe packet's source port is an ephemeral one) agrees, for
    every pair (a partial range is "not known": no single answer holds)."""
    from render.test_program_differential import check

    cluster = _cluster(policies)
    check(cluster, compile_program(cluster))


def test_tier_order() -> None:
    program = compile_program(
        _cluster(
            [
                cnp("x", "Admin", 7, ingress=[rule("Deny", NS_A)]),
                tier("platform", 100),
                tier("last"),
                gnp("platform.b", tier="platform", order=5),
                gnp("platform.a", tier="platform", order=5),
                gnp("platform.first", tier="platform", order=1),
                gnp("platform.none", tier="platform"),
                gnp("last.x", tier="last"),
                netpol("allow-a", FROM_A),
                cnpv3("c", order=1000),
            ]
        )
    )
    assert [(t.name, t.order, t.default_action) for t in program.tiers] == [
        ("platform", 100.0, "deny"),
        ("kube-admin", 1000.0, "pass"),
        ("default", 1_000_000.0, "deny"),
        ("kube-baseline", 10_000_000.0, "pass"),
        ("last", None, "deny"),
    ]
    assert [p.key for p in program.tiers[0].policies] == [
        "platform.first",
        "platform.a",
        "platform.b",
        "platform.none",
    ]
    # Equal orders: by key; a Kubernetes policy and a Calico one of order 1000 in the
    # default tier sort by Felix's names.
    assert [p.key for p in program.tiers[2].policies] == [
        "b/default.c",
        "b/knp.default.allow-a",
    ]


def test_staged_policies_are_pending_only() -> None:
    cluster = _cluster(
        [
            netpol("allow-a", FROM_A),
            staged(
                "StagedNetworkPolicy",
                "deny-a",
                selector="app == 'server'",
                order=1,
                ingress=[deny()],
            ),
            staged("StagedKubernetesNetworkPolicy", "allow-a", stagedAction="Delete"),
        ]
    )
    program = compile_program(cluster)
    assert [p.key for p in program.policies()] == ["b/knp.default.allow-a"]
    assert sorted(p.key for p in program.staged) == [
        "b/staged:default.deny-a",
        "b/staged:knp.default.allow-a",
    ]
    flow = Flow(
        resolve_endpoint(cluster, "a/client"), resolve_endpoint(cluster, "b/server"), "TCP", 80
    )
    assert verdict(cluster, flow).allowed
    pending = pending_verdict(cluster, flow)
    assert pending is not None and not pending.allowed
    assert pending.ingress is not None
    assert "StagedNetworkPolicy b/deny-a" in pending.ingress.because()
    pend = program.pending()
    assert [p.key for p in pend.policies()] == ["b/default.deny-a"]
    matrix = compute_matrix(cluster, [(80, "TCP")], program=pend)
    keys = [p.key for p in matrix.pods]
    assert not matrix.probes[0].allowed[keys.index("a/client"), keys.index("b/server")]
