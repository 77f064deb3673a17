"""Every rule of the shared meaning of policy, one table row each."""

from __future__ import annotations

import pytest

from sekisho.model.types import (
    Cluster,
    ContainerPort,
    LabelSelector,
    NetworkPolicy,
    Peer,
    PolicyPort,
    Requirement,
    Rule,
)
from sekisho.semantics import Flow, resolve_endpoint, verdict

from .builders import block, cluster, namespaces, node, pod, sel

NODES = [node("n1", "192.168.0.1", "10.0.1.0/24"), node("n2", "192.168.0.2", "10.0.2.0/24")]
WEB_PORTS = (
    ContainerPort(80, "TCP", "http"),
    ContainerPort(53, "UDP", "dns"),
    ContainerPort(9000, "SCTP", "sig"),
)
DB_PORTS = (ContainerPort(5432, "TCP", "pg"), ContainerPort(8080, "TCP", "http"))
PODS = [
    pod("a/web", "10.0.1.10", "n1", WEB_PORTS, app="web"),
    pod("a/db", "10.0.2.10", "n2", DB_PORTS, app="db", tier="data"),
    pod("b/client", "10.0.1.20", "n1", app="client"),
    pod("b/other", "10.0.2.20", "n2", app="other"),
    pod("a/hn", "192.168.0.1", "n1", host_network=True, app="web"),
    pod("kube-system/proxy", "192.168.0.2", "n2", host_network=True, app="web"),
]
NS = namespaces(a={"team": "y"}, b={"team": "x"}, **{"kube-system": {}})

EVERYONE = LabelSelector()


def pol(
    ingress: tuple[Rule, ...] = (),
    egress: tuple[Rule, ...] = (),
    *,
    name: str = "p",
    namespace: str = "a",
    select: LabelSelector = EVERYONE,
    types: str = "Ingress",
) -> NetworkPolicy:
    return NetworkPolicy(
        namespace,
        name,
        select,
        ingress=ingress,
        egress=egress,
        affects_ingress="Ingress" in types,
        affects_egress="Egress" in types,
    )


def rule(*peers: Peer, ports: tuple[PolicyPort, ...] | None = None) -> Rule:
    return Rule(peers=peers or None, ports=ports)


def tcp(port: int | str | None, end: int | None = None) -> tuple[PolicyPort, ...]:
    return (PolicyPort("TCP", port, end),)


DENY_IN = pol()
DENY_OUT = pol(types="Egress")


def judge(policies: list[NetworkPolicy], src: str, dst: str, service: str):  # type: ignore[no-untyped-def]
    c: Cluster = cluster(PODS, policies, NODES, NS)
    proto, _, port = service.partition("/")
    flow = Flow(
        resolve_endpoint(c, src),
        resolve_endpoint(c, dst),
        proto,
        int(port) if port else None,  # type: ignore[arg-type]
    )
    return verdict(c, flow)


CASES = [
    # (policies, src, dst, service, allowed, reason, explanation substring)
    pytest.param(
        [], "b/client", "a/web", "TCP/80", True, "not-isolated", None, id="no-policy-allows"
    ),
    pytest.param(
        [DENY_IN],
        "b/client",
        "a/web",
        "TCP/80",
        False,
        "ingress-denied",
        "no ingress rules",
        id="default-deny-ingress",
    ),
    pytest.param(
        [DENY_OUT],
        "a/web",
        "b/client",
        "TCP/80",
        False,
        "egress-denied",
        "no egress rules",
        id="default-deny-egress",
    ),
    pytest.param(
        [DENY_OUT],
        "b/client",
        "a/web",
        "TCP/80",
        True,
        "not-isolated",
        None,
        id="egress-only-policy-does-not-isolate-ingress",
    ),
    pytest.param(
        [pol((rule(Peer(pod_selector=sel(app="client"))),))],
        "b/client",
        "a/web",
        "TCP/80",
        False,
        "ingress-denied",
        "is in namespace b, not in namespace a",
        id="podselector-alone-is-own-namespace",
    ),
    pytest.param(
        [pol((rule(Peer(pod_selector=sel(app="db"))),))],
        "a/db",
        "a/web",
        "TCP/80",
        True,
        "policy",
        None,
        id="podselector-same-namespace",
    ),
    pytest.param(
        [pol((rule(Peer(namespace_selector=sel(team="x"))),))],
        "b/client",
        "a/web",
        "TCP/80",
        True,
        "policy",
        None,
        id="namespaceselector-alone",
    ),
    pytest.param(
        [pol((rule(Peer(namespace_selector=sel(team="x"))),))],
        "a/db",
        "a/web",
        "TCP/80",
        False,
        "ingress-denied",
        'namespace a labels {kubernetes.io/metadata.name: a, team: y} do not satisfy team == "x"',
        id="namespaceselector-mismatch",
    ),
    pytest.param(
        [pol((rule(Peer(pod_selector=sel(app="other"), namespace_selector=sel(team="x"))),))],
        "b/client",
        "a/web",
        "TCP/80",
        False,
        "ingress-denied",
        'labels {app: client} do not satisfy app == "other"',
        id="namespace-and-pod-selector-is-and",
    ),
    pytest.param(
        [pol((rule(Peer(pod_selector=sel(app="other"), namespace_selector=sel(team="x"))),))],
        "b/other",
        "a/web",
        "TCP/80",
        True,
        "policy",
        None,
        id="namespace-and-pod-selector-match",
    ),
    pytest.param(
        [pol((rule(Peer(namespace_selector=sel(team="x")), Peer(pod_selector=sel(app="db"))),))],
        "a/db",
        "a/web",
        "TCP/80",
        True,
        "policy",
        None,
        id="peers-are-ored",
    ),
    pytest.param(
        [pol((rule(Peer(pod_selector=EVERYONE)),))],
        "b/client",
        "a/web",
        "TCP/80",
        False,
        "ingress-denied",
        "not in namespace a",
        id="empty-podselector-own-namespace-only",
    ),
    pytest.param(
        [pol((rule(Peer(pod_selector=EVERYONE)),))],
        "a/db",
        "a/web",
        "TCP/80",
        True,
        "policy",
        None,
        id="empty-podselector-all-of-namespace",
    ),
    pytest.param(
        [pol((rule(Peer(namespace_selector=EVERYONE)),))],
        "b/client",
        "a/web",
        "TCP/80",
        True,
        "policy",
        None,
        id="empty-namespaceselector-all-pods",
    ),
    pytest.param(
        [pol((rule(Peer(namespace_selector=EVERYONE)),))],
        "n2",
        "a/web",
        "TCP/80",
        False,
        "ingress-denied",
        "selectors match only pods",
        id="selector-never-matches-node",
    ),
    pytest.param(
        [pol((rule(Peer(ip_block=block("10.0.0.0/16", "10.0.1.0/24"))),))],
        "b/client",
        "a/web",
        "TCP/80",
        False,
        "ingress-denied",
        "10.0.1.20 (b/client) is in excluded 10.0.1.0/24",
        id="ipblock-except-pod-ip",
    ),
    pytest.param(
        [pol((rule(Peer(ip_block=block("10.0.0.0/16", "10.0.1.0/24"))),))],
        "b/other",
        "a/web",
        "TCP/80",
        True,
        "policy",
        None,
        id="ipblock-matches-pod-ip",
    ),
    pytest.param(
        [pol((rule(Peer(ip_block=block("10.9.0.0/16"))),))],
        "b/other",
        "a/web",
        "TCP/80",
        False,
        "ingress-denied",
        "10.0.2.20 (b/other) is not in 10.9.0.0/16",
        id="ipblock-outside",
    ),
    pytest.param(
        [pol((rule(Peer(ip_block=block("192.168.0.0/24"))),))],
        "n2",
        "a/web",
        "TCP/80",
        True,
        "policy",
        None,
        id="ipblock-matches-node-ip",
    ),
    pytest.param(
        [DENY_IN], "n1", "a/web", "TCP/80", True, "same-node", None, id="own-node-never-filtered"
    ),
    pytest.param(
        [DENY_IN], "192.168.0.1", "a/web", "TCP/9999", True, "same-node", None, id="own-node-by-ip"
    ),
    pytest.param(
        [DENY_IN],
        "n2",
        "a/web",
        "TCP/80",
        False,
        "ingress-denied",
        None,
        id="other-node-is-filtered",
    ),
    pytest.param(
        [pol((rule(),))],
        "n2",
        "a/web",
        "TCP/80",
        True,
        "policy",
        None,
        id="any-peer-rule-matches-node",
    ),
    pytest.param(
        [DENY_IN],
        "a/hn",
        "a/web",
        "TCP/80",
        True,
        "same-node",
        None,
        id="hostnetwork-pod-on-same-node",
    ),
    pytest.param(
        [pol((rule(Peer(pod_selector=sel(app="web"))),))],
        "kube-system/proxy",
        "a/web",
        "TCP/80",
        False,
        "ingress-denied",
        "selectors match only pods",
        id="hostnetwork-pod-not-selectable",
    ),
    pytest.param(
        [pol((rule(Peer(namespace_selector=EVERYONE)),))],
        "kube-system/proxy",
        "a/web",
        "TCP/80",
        False,
        "ingress-denied",
        "192.168.0.2",
        id="hostnetwork-pod-is-its-node",
    ),
    pytest.param(
        [DENY_IN],
        "b/client",
        "a/hn",
        "TCP/80",
        True,
        "not-isolated",
        None,
        id="hostnetwork-pod-ingress-unfiltered",
    ),
    pytest.param(
        [DENY_IN],
        "b/other",
        "kube-system/proxy",
        "TCP/80",
        True,
        "not-isolated",
        None,
        id="hostnetwork-target-unfiltered",
    ),
    pytest.param(
        [pol((rule(ports=tcp(80)),))],
        "b/client",
        "a/web",
        "ICMP",
        False,
        "ingress-denied",
        "protocol ICMP is not TCP",
        id="icmp-never-matches-ports",
    ),
    pytest.param(
        [pol((rule(Peer(namespace_selector=sel(team="x"))),))],
        "b/client",
        "a/web",
        "ICMP",
        True,
        "policy",
        None,
        id="icmp-with-portless-rule",
    ),
    pytest.param(
        [pol((rule(ports=tcp(80)),))],
        "b/client",
        "a/web",
        "UDP/80",
        False,
        "ingress-denied",
        "protocol UDP is not TCP",
        id="protocol-must-match",
    ),
    pytest.param(
        [pol((rule(ports=tcp(80)),))],
        "b/client",
        "a/web",
        "TCP/81",
        False,
        "ingress-denied",
        "destination port 81 is not 80",
        id="port-number-must-match",
    ),
    pytest.param(
        [pol((rule(ports=(PolicyPort("UDP"),)),))],
        "b/client",
        "a/web",
        "UDP/53",
        True,
        "policy",
        None,
        id="portless-protocol-any-port",
    ),
    pytest.param(
        [pol((rule(ports=(PolicyPort("UDP"),)),))],
        "b/client",
        "a/web",
        "TCP/53",
        False,
        "ingress-denied",
        None,
        id="portless-protocol-other-protocol",
    ),
    pytest.param(
        [pol((rule(ports=tcp(8000, 9000)),))],
        "b/client",
        "a/web",
        "TCP/8000",
        True,
        "policy",
        None,
        id="endport-start-inclusive",
    ),
    pytest.param(
        [pol((rule(ports=tcp(8000, 9000)),))],
        "b/client",
        "a/web",
        "TCP/9000",
        True,
        "policy",
        None,
        id="endport-end-inclusive",
    ),
    pytest.param(
        [pol((rule(ports=tcp(8000, 9000)),))],
        "b/client",
        "a/web",
        "TCP/9001",
        False,
        "ingress-denied",
        "destination port 9001 is not 8000-9000",
        id="endport-outside",
    ),
    pytest.param(
        [pol((rule(ports=tcp("http")),))],
        "b/client",
        "a/web",
        "TCP/80",
        True,
        "policy",
        None,
        id="named-port-resolves-on-destination",
    ),
    pytest.param(
        [pol((rule(ports=tcp("http")),))],
        "b/client",
        "a/db",
        "TCP/8080",
        True,
        "policy",
        None,
        id="named-port-per-pod-number",
    ),
    pytest.param(
        [pol((rule(ports=tcp("http")),))],
        "b/client",
        "a/db",
        "TCP/80",
        False,
        "ingress-denied",
        "a/db declares http as TCP/8080",
        id="named-port-other-number",
    ),
    pytest.param(
        [pol((rule(ports=(PolicyPort("UDP", "http"),)),))],
        "b/client",
        "a/web",
        "UDP/80",
        False,
        "ingress-denied",
        "declares no UDP port named http",
        id="named-port-protocol-mismatch",
    ),
    pytest.param(
        [pol((rule(ports=(PolicyPort("UDP", "dns"),)),))],
        "b/client",
        "a/web",
        "UDP/53",
        True,
        "policy",
        None,
        id="named-port-udp",
    ),
    pytest.param(
        [pol(egress=(rule(ports=tcp("http")),), types="Egress")],
        "a/web",
        "8.8.8.8",
        "TCP/80",
        False,
        "egress-denied",
        "named ports never match",
        id="named-port-egress-to-external",
    ),
    pytest.param(
        [pol(egress=(rule(ports=tcp("http")),), types="Egress")],
        "a/web",
        "a/db",
        "TCP/8080",
        True,
        "policy",
        None,
        id="named-port-egress-to-pod",
    ),
    pytest.param(
        [pol((rule(ports=(PolicyPort("SCTP", 9000),)),))],
        "b/client",
        "a/web",
        "SCTP/9000",
        True,
        "policy",
        None,
        id="sctp",
    ),
    pytest.param(
        [pol((rule(ports=(PolicyPort("SCTP", 9000),)),))],
        "b/client",
        "a/web",
        "TCP/9000",
        False,
        "ingress-denied",
        None,
        id="sctp-is-not-tcp",
    ),
    pytest.param(
        [
            pol((rule(Peer(namespace_selector=sel(team="x")), ports=tcp(80)),), name="p1"),
            pol((rule(ports=(PolicyPort("UDP", 53),)),), name="p2"),
        ],
        "b/client",
        "a/web",
        "UDP/53",
        True,
        "policy",
        None,
        id="union-second-policy",
    ),
    pytest.param(
        [
            pol((rule(Peer(namespace_selector=sel(team="x")), ports=tcp(80)),), name="p1"),
            pol((rule(ports=(PolicyPort("UDP", 53),)),), name="p2"),
        ],
        "a/db",
        "a/web",
        "TCP/80",
        False,
        "ingress-denied",
        None,
        id="union-neither-policy",
    ),
    pytest.param(
        [pol((rule(Peer(pod_selector=sel(app="x")), ports=tcp(80)), rule(ports=tcp(80))))],
        "b/client",
        "a/web",
        "TCP/80",
        True,
        "policy",
        None,
        id="union-of-rules",
    ),
    pytest.param(
        [DENY_IN, DENY_OUT], "a/web", "a/web", "TCP/80", True, "self", None, id="self-always"
    ),
    pytest.param(
        [DENY_IN],
        "8.8.8.8",
        "a/web",
        "TCP/80",
        False,
        "ingress-denied",
        None,
        id="external-to-isolated-pod",
    ),
    pytest.param(
        [pol((rule(Peer(ip_block=block("0.0.0.0/0", "10.0.0.0/8"))),))],
        "8.8.8.8",
        "a/web",
        "TCP/80",
        True,
        "policy",
        None,
        id="external-by-ipblock",
    ),
    pytest.param(
        [DENY_OUT],
        "a/web",
        "8.8.8.8",
        "TCP/443",
        False,
        "egress-denied",
        None,
        id="egress-to-external-denied",
    ),
    pytest.param(
        [pol(egress=(rule(Peer(ip_block=block("8.8.8.0/24"))),), types="Egress")],
        "a/web",
        "8.8.8.8",
        "TCP/443",
        True,
        "policy",
        None,
        id="egress-ipblock-external",
    ),
    pytest.param(
        [DENY_OUT],
        "a/web",
        "n1",
        "TCP/10250",
        False,
        "egress-denied",
        None,
        id="pod-to-own-node-egress-policed",
    ),
    pytest.param(
        [DENY_IN, DENY_OUT],
        "n1",
        "n2",
        "TCP/22",
        True,
        "unfiltered",
        None,
        id="node-to-node-unfiltered",
    ),
    pytest.param(
        [
            pol(
                egress=(rule(Peer(pod_selector=sel(app="db"))),),
                types="Ingress,Egress",
                select=sel(app="web"),
            ),
            pol(name="q", select=sel(app="db")),
        ],
        "a/web",
        "a/db",
        "TCP/5432",
        False,
        "ingress-denied",
        None,
        id="needs-egress-and-ingress",
    ),
    pytest.param(
        [DENY_IN, DENY_OUT],
        "a/web",
        "a/db",
        "TCP/5432",
        False,
        "denied",
        None,
        id="both-sides-denied",
    ),
    pytest.param(
        [
            pol(
                (
                    rule(
                        Peer(
                            pod_selector=LabelSelector(
                                match_expressions=(Requirement("tier", "NotIn", ("data",)),)
                            )
                        )
                    ),
                )
            )
        ],
        "a/db",
        "a/web",
        "TCP/80",
        False,
        "ingress-denied",
        'do not satisfy tier not in {"data"}',
        id="expr-notin",
    ),
    pytest.param(
        [
            pol(
                (
                    rule(
                        Peer(
                            pod_selector=LabelSelector(
                                match_expressions=(Requirement("tier", "Exists"),)
                            )
                        )
                    ),
                )
            )
        ],
        "a/db",
        "a/web",
        "TCP/80",
        True,
        "policy",
        None,
        id="expr-exists",
    ),
    pytest.param(
        [
            pol(
                (
                    rule(
                        Peer(
                            pod_selector=LabelSelector(
                                match_expressions=(Requirement("tier", "DoesNotExist"),)
                            )
                        )
                    ),
                )
            )
        ],
        "a/db",
        "a/web",
        "TCP/80",
        False,
        "ingress-denied",
        "!has(tier)",
        id="expr-doesnotexist",
    ),
    pytest.param(
        [pol(select=sel(app="db"))],
        "b/client",
        "a/web",
        "TCP/80",
        True,
        "not-isolated",
        None,
        id="policy-selects-other-pods",
    ),
    pytest.param(
        [pol(namespace="b")],
        "b/client",
        "a/web",
        "TCP/80",
        True,
        "not-isolated",
        None,
        id="policy-in-other-namespace",
    ),
]


@pytest.mark.parametrize(("policies", "src", "dst", "service", "allowed", "reason", "why"), CASES)
def test_verdict(
    policies: list[NetworkPolicy],
    src: str,
    dst: str,
    service: str,
    allowed: bool,
    reason: str,
    why: str | None,
) -> None:
    v = judge(policies, src, dst, service)
    assert (v.allowed, v.reason) == (allowed, reason), "\n".join(v.lines())
    if why is not None:
        assert why in "\n".join(v.lines())


def test_match_names_policy_rule_peer_and_port() -> None:
    p = pol(
        (
            rule(
                Peer(pod_selector=sel(app="x")),
                Peer(namespace_selector=sel(team="x")),
                ports=(PolicyPort("UDP", 53), PolicyPort("TCP", 80)),
            ),
        )
    )
    v = judge([p], "b/client", "a/web", "TCP/80")
    assert v.ingress is not None
    decided = v.ingress.decided
    assert decided is not None and decided.rule.action == "allow"
    # Calico's order: one program rule per protocol (sorted), then per peer.
    assert (decided.policy.label, decided.rule.origin) == ("a/p", "ingress rule 0 peer 1 TCP/80")
    assert v.ingress.isolated and [q.label for q in v.ingress.policies] == ["a/p"]
    assert v.egress is not None and not v.egress.isolated


def test_json_shape() -> None:
    v = judge([DENY_IN], "b/client", "a/web", "TCP/80")
    doc = v.to_json()
    assert doc["allowed"] is False and doc["reason"] == "ingress-denied"
    assert doc["from"] == "b/client" and doc["to"] == "a/web" and doc["port"] == 80
    ingress = doc["ingress"]
    assert isinstance(ingress, dict)
    assert ingress["isolated"] is True and ingress["policies"] == [
        {
            "name": "a/p",
            "kind": "NetworkPolicy",
            "tier": "default",
            "order": 1000.0,
            "source": "<built>",
        }
    ]
    assert ingress["ending"] == "end-of-tier" and ingress["decided_by"] is None
    assert ingress["because"] == "end of tier default: no rule matched: denied"
    tiers = ingress["tiers"]
    assert isinstance(tiers, list) and len(tiers) == 1
    assert tiers[0]["tier"] == "default" and tiers[0]["outcome"] == "end-deny"
    assert tiers[0]["policies"][0]["rules"] == []


def test_replies_line_only_when_allowed() -> None:
    assert any("replies" in line for line in judge([], "b/client", "a/web", "TCP/80").lines())
    assert not any(
        "replies" in line for line in judge([DENY_IN], "b/client", "a/web", "TCP/80").lines()
    )
