"""Host endpoints: a node's own traffic under policy, as Felix applies it.

A policy that selects a node's host endpoint polices what the node (or a
hostNetwork pod, which is its node) sends and receives; Felix's failsafe ports
come first; with no policy and no allowing profile the host endpoint drops; and
the seed's finding 2 stays true: a node reaching its own pods is never filtered,
host endpoint or not, and trace says why.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from sekisho.errors import UsageError
from sekisho.model import Cluster, cluster_from_objects
from sekisho.model.types import FlowProtocol
from sekisho.semantics import Flow, compute_matrix, pod_endpoint, resolve_endpoint, verdict
from semantics_npa.test_mixed import BASE

Manifest = dict[str, Any]
V3 = "projectcalico.org/v3"


def hep(node: str, *profiles: str, iface: str = "eth0") -> Manifest:
    spec: dict[str, Any] = {"node": node, "interfaceName": iface}
    if profiles:
        spec["profiles"] = list(profiles)
    return {
        "apiVersion": V3,
        "kind": "HostEndpoint",
        "metadata": {"name": f"{node}-eth0", "labels": {"host": node}},
        "spec": spec,
    }


def gnp(name: str, selector: str, **spec: Any) -> Manifest:
    return {
        "apiVersion": V3,
        "kind": "GlobalNetworkPolicy",
        "metadata": {"name": name},
        "spec": {"selector": selector, **spec},
    }


ALLOW = "projectcalico-default-allow"

CASES = [
    # (objects, from, to, service, allowed, words)
    pytest.param(
        [hep("n2", ALLOW), gnp("deny-in", "host == 'n2'", ingress=[{"action": "Deny"}])],
        "a/client",
        "n2",
        "TCP/10250",
        False,
        "denied by GlobalNetworkPolicy deny-in ingress rule 0 (Deny) (tier default)",
        id="node-ingress-denied-by-policy",
    ),
    pytest.param(
        [hep("n2", ALLOW), gnp("deny-in", "host == 'n2'", ingress=[{"action": "Deny"}])],
        "a/client",
        "n2",
        "TCP/22",
        True,
        "a failsafe port of Felix (FailsafeInboundHostPorts)",
        id="failsafe-inbound-ssh",
    ),
    pytest.param(
        [hep("n2")],
        "a/client",
        "n2",
        "TCP/10250",
        False,
        "host endpoint n2-eth0 has no profile that allows",
        id="no-policy-no-profile-drops",
    ),
    pytest.param(
        [
            hep("n2", ALLOW, iface="*"),
            gnp("deny-in", "host == 'n2'", ingress=[{"action": "Deny", "protocol": "TCP"}]),
        ],
        "a/client",
        "n2",
        "TCP/10250",
        False,
        "denied by GlobalNetworkPolicy deny-in ingress rule 0 (Deny)",
        id="all-interfaces-host-endpoint",
    ),
    pytest.param(
        [hep("n2", ALLOW)],
        "a/client",
        "n2",
        "TCP/10250",
        True,
        "no policy applies for ingress: its profile projectcalico-default-allow allows",
        id="default-allow-profile",
    ),
    pytest.param(
        [hep("n1"), gnp("deny-out", "host == 'n1'", egress=[{"action": "Deny"}])],
        "a/agent",
        "a/client",
        "TCP/80",
        True,
        "not even by host endpoint n1-eth0: Felix returns early in OUTPUT",
        id="finding-2-node-to-own-pod",
    ),
    pytest.param(
        [hep("n1"), gnp("deny-out", "host == 'n1'", egress=[{"action": "Deny"}])],
        "n1",
        "b/server",
        "TCP/80",
        False,
        "denied by GlobalNetworkPolicy deny-out egress rule 0 (Deny)",
        id="node-egress-to-remote-pod",
    ),
    pytest.param(
        [hep("n1"), gnp("deny-out", "host == 'n1'", egress=[{"action": "Deny"}])],
        "n1",
        "b/server",
        "UDP/53",
        True,
        "FailsafeOutboundHostPorts",
        id="failsafe-outbound-dns",
    ),
    pytest.param(
        [hep("n1")],
        "a/client",
        "n1",
        "TCP/10250",
        True,
        "traffic from a pod to its own node passes the pod's egress",
        id="pod-to-own-node-not-under-host-ingress",
    ),
    pytest.param(
        [
            hep("n2"),
            gnp(
                "from-nodes",
                "host == 'n2'",
                ingress=[{"action": "Allow", "source": {"selector": "has(host)"}}],
            ),
        ],
        "b/server",
        "n2",
        "TCP/10250",
        True,
        "traffic from a pod to its own node",
        id="selector-selects-host-endpoints",
    ),
]


FORWARD_CASES = [
    pytest.param(
        [
            hep("n2"),
            gnp(
                "fwd-in",
                "host == 'n2'",
                applyOnForward=True,
                ingress=[{"action": "Deny", "protocol": "TCP", "destination": {"ports": [80]}}],
            ),
        ],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "forwarded into node n2 through host endpoint n2-eth0 (ingress, applyOnForward policies)",
        id="apply-on-forward-ingress-deny",
    ),
    pytest.param(
        [
            hep("n2"),
            gnp(
                "fwd-in",
                "host == 'n2'",
                applyOnForward=True,
                ingress=[{"action": "Deny", "protocol": "TCP", "destination": {"ports": [80]}}],
            ),
        ],
        "a/client",
        "b/server",
        "UDP/53",
        False,
        "end of tier default: no rule matched: denied",
        id="apply-on-forward-policy-applies-no-rule-allows",
    ),
    pytest.param(
        [hep("n2"), gnp("local-only", "host == 'n2'", ingress=[{"action": "Deny"}])],
        "a/client",
        "b/server",
        "TCP/80",
        True,
        "verdict: ALLOWED",
        id="without-apply-on-forward-forwarded-traffic-passes",
    ),
    pytest.param(
        [
            hep("n1"),
            gnp(
                "fwd-out",
                "host == 'n1'",
                applyOnForward=True,
                egress=[{"action": "Allow", "destination": {"nets": ["10.244.1.10/32"]}}],
            ),
        ],
        "a/client",
        "b/other",
        "TCP/80",
        False,
        "forwarded out of node n1 through host endpoint n1-eth0",
        id="apply-on-forward-egress",
    ),
    pytest.param(
        [
            hep("n2"),
            gnp(
                "fwd-in",
                "host == 'n2'",
                applyOnForward=True,
                ingress=[{"action": "Deny"}],
            ),
        ],
        "n2",
        "b/server",
        "TCP/80",
        True,
        "traffic from the local node is never filtered",
        id="own-node-is-not-forwarded",
    ),
]


@pytest.mark.parametrize(("objects", "src", "dst", "service", "allowed", "words"), FORWARD_CASES)
def test_apply_on_forward(
    objects: list[Manifest], src: str, dst: str, service: str, allowed: bool, words: str
) -> None:
    test_host_endpoints(objects, src, dst, service, allowed, words)


def _cluster(objects: list[Manifest]) -> Cluster:
    return cluster_from_objects([*BASE, *objects], source="hosts")


@pytest.mark.parametrize(("objects", "src", "dst", "service", "allowed", "words"), CASES)
def test_host_endpoints(
    objects: list[Manifest], src: str, dst: str, service: str, allowed: bool, words: str
) -> None:
    cluster = _cluster(objects)
    proto, _, port = service.partition("/")
    flow = Flow(
        resolve_endpoint(cluster, src),
        resolve_endpoint(cluster, dst),
        cast(FlowProtocol, proto),
        int(port),
    )
    v = verdict(cluster, flow)
    text = "\n".join(v.lines())
    assert v.allowed == allowed, text
    assert words in text, text


def test_node_source_matched_by_host_endpoint_selector() -> None:
    # A rule selecting host endpoints holds their expected IPs: the node's own address.
    cluster = _cluster(
        [
            {
                "apiVersion": V3,
                "kind": "HostEndpoint",
                "metadata": {"name": "n1-eth0", "labels": {"host": "n1"}},
                "spec": {
                    "node": "n1",
                    "interfaceName": "eth0",
                    "expectedIPs": ["172.18.0.2"],
                    "profiles": [ALLOW],
                },
            },
            gnp(
                "nodes-only",
                "app == 'server'",
                ingress=[{"action": "Allow", "source": {"selector": "host == 'n1'"}}],
            ),
        ]
    )
    ok = verdict(
        cluster,
        Flow(resolve_endpoint(cluster, "n1"), resolve_endpoint(cluster, "b/server"), "TCP", 80),
    )
    assert ok.allowed, "\n".join(ok.lines())
    no = verdict(
        cluster,
        Flow(
            resolve_endpoint(cluster, "a/client"), resolve_endpoint(cluster, "b/server"), "TCP", 80
        ),
    )
    assert not no.allowed


@pytest.mark.parametrize(
    "objects",
    [case.values[0] for case in CASES + FORWARD_CASES],
    ids=[str(case.id) for case in CASES + FORWARD_CASES],
)
def test_matrix_equals_walk_with_host_endpoints(objects: list[Manifest]) -> None:
    # a/agent is hostNetwork on n1: its node's host endpoint polices its traffic.
    check_matrix_equals_walk(objects)


def check_matrix_equals_walk(objects: list[Manifest]) -> None:
    """The matrix equals the walk for every pair and probe (node n1 gets a host endpoint
    when ``objects`` has none): allowed, and each direction's table against the walk's
    sides and the early stages (doNotTrack, preDNAT) of that direction."""
    has_n1 = any(o["kind"] == "HostEndpoint" and o["spec"]["node"] == "n1" for o in objects)
    cluster = _cluster([*objects, *([] if has_n1 else [hep("n1", ALLOW)])])
    probes = [(80, "TCP"), (22, "TCP"), (53, "UDP"), (10250, "TCP"), (None, "ICMP")]
    m = compute_matrix(cluster, probes)
    ends = [pod_endpoint(cluster, p) for p in m.pods]
    for probe in m.probes:
        for i, s in enumerate(ends):
            for j, d in enumerate(ends):
                v = verdict(cluster, Flow(s, d, probe.protocol, probe.port))  # type: ignore[arg-type]
                assert bool(probe.allowed[i, j]) is v.allowed, (probe.service, v.lines())
                for table, direction, sides in (
                    (probe.egress, "egress", (v.egress, v.forward_egress)),
                    (probe.ingress, "ingress", (v.ingress, v.forward_ingress)),
                ):
                    staged = [st for st in v.stages if st.direction == direction]
                    if direction == "ingress":
                        staged += v.replies  # counted on the ingress side (matrix.py)
                    ok = all(x is None or x.allowed for x in (*sides, *staged))
                    assert bool(table[i, j]) is ok, v.lines()


@pytest.mark.parametrize(
    "objects",
    [case.values[0] for case in CASES + FORWARD_CASES],
    ids=[str(case.id) for case in CASES + FORWARD_CASES],
)
def test_rendered_rules_equal_walk_with_host_endpoints(objects: list[Manifest]) -> None:
    """The rendered rules of both backends (host endpoint chains, failsafe ports,
    applyOnForward) through the interpreter: what the walk and the matrix say, for every
    pair of pods, nodes and external addresses and every probe (failsafe ones too)."""
    from render.test_program_differential import check
    from sekisho.semantics import compile_program

    has_n1 = any(o["kind"] == "HostEndpoint" and o["spec"]["node"] == "n1" for o in objects)
    cluster = _cluster([*objects, *([] if has_n1 else [hep("n1")])])
    probes = [(80, "TCP"), (22, "TCP"), (53, "UDP"), (68, "UDP"), (10250, "TCP"), (None, "ICMP")]
    check(cluster, compile_program(cluster), probes)


def test_incremental_matrix_refuses_hostnetwork_pods_under_host_endpoints() -> None:
    from sekisho.semantics.incremental import IncrementalMatrix

    cluster = _cluster([hep("n1", ALLOW)])
    with pytest.raises(UsageError, match="a/agent"):
        IncrementalMatrix(cluster, [(80, "TCP")])


def test_unknown_profiles_are_refused() -> None:
    from sekisho.errors import ManifestError

    with pytest.raises(ManifestError, match=r'profile "kns\.default" is not read by sekisho'):
        _cluster([hep("n1", "kns.default")])


def test_what_the_renderer_does_not_draw_is_refused() -> None:
    """A second host endpoint of a node is not drawn: enforcing without it would enforce
    less than the manifests say (preDNAT and doNotTrack policies are drawn: the raw and
    mangle stages, ``tests/calico/test_stages.py``)."""
    from sekisho.errors import ManifestError
    from sekisho.sources.files import refuse_unrendered

    assert refuse_unrendered(_cluster([hep("n1"), hep("n2")])) is not None
    second = {**hep("n1"), "metadata": {"name": "n1-eth1", "labels": {}}}
    second["spec"] = {"node": "n1", "interfaceName": "eth1"}
    with pytest.raises(ManifestError, match="node n1 has another host endpoint, n1-eth0"):
        refuse_unrendered(_cluster([hep("n1"), second]))


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_trace_node_says_why_finding_2_holds(backend: str) -> None:
    """``trace --node``: the node's OUTPUT returns before its host endpoint for its own
    pods (the rule that let it through is named), and other traffic meets the endpoint."""
    from sekisho.render.explain import explain_enforcement

    cluster = _cluster([hep("n1"), gnp("deny-out", "host == 'n1'", egress=[{"action": "Deny"}])])
    node = resolve_endpoint(cluster, "n1")
    own = "\n".join(
        explain_enforcement(
            cluster, Flow(node, resolve_endpoint(cluster, "a/client"), "TCP", 80), "n1", backend
        )
    )
    assert "(because: sekisho: to a local endpoint: not policed (Felix returns early))" in own
    assert "rules say: allowed" in own
    remote = "\n".join(
        explain_enforcement(
            cluster, Flow(node, resolve_endpoint(cluster, "b/server"), "TCP", 80), "n1", backend
        )
    )
    assert "n1 OUTPUT out=eth0: DROP by: policy GlobalNetworkPolicy deny-out" in remote, remote
