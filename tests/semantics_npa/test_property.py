"""Random cluster-wide policies (both APIs, every action, peer and port kind) with random
NetworkPolicies on the conformance cluster: the matrix engine equals the walk, pair by
pair, and every generated object passes validation."""

from __future__ import annotations

import itertools
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npa_cases import CORPUS
from sekisho.model import cluster_from_objects
from sekisho.semantics import Flow, compute_matrix, pod_endpoint, verdict

BASE = [o for o in yaml.safe_load_all((CORPUS / "base" / "cluster.yaml").read_text()) if o]
HOUSES = ["gryffindor", "slytherin", "hufflepuff", "ravenclaw", "forbidden-forrest"]
PROBES = [(80, "TCP"), (8080, "TCP"), (53, "UDP"), (9003, "SCTP"), (34345, "TCP")]

house = st.sampled_from(HOUSES)
ns_sel = st.one_of(st.just({}), house.map(lambda h: {"matchLabels": {"conformance-house": h}}))
pod_peer = st.builds(
    lambda n, h: {
        "pods": {"namespaceSelector": n, "podSelector": {"matchLabels": {"conformance-house": h}}}
    },
    ns_sel,
    house,
)
selector_peer = st.one_of(ns_sel.map(lambda n: {"namespaces": n}), pod_peer)
host_peer = st.one_of(
    st.sampled_from([{}, {"matchLabels": {"kubernetes.io/hostname": "node-2"}}]).map(
        lambda n: {"nodes": n}
    ),
    st.lists(
        st.sampled_from(["0.0.0.0/0", "10.244.0.0/23", "10.244.3.10/32", "172.18.0.3/32"]),
        min_size=1,
        max_size=2,
        unique=True,
    ).map(lambda nets: {"networks": nets}),
)


def cnp_port(named: bool) -> st.SearchStrategy[dict[str, Any]]:
    numbered = st.one_of(
        st.sampled_from([80, 8080, 53, 9003, 34345]).map(lambda p: {"number": p}),
        st.just({"range": {"start": 50, "end": 8080}}),
    )
    proto = st.builds(
        lambda k, d: {k: {"destinationPort": d}}, st.sampled_from(["tcp", "udp", "sctp"]), numbered
    )
    if not named:
        return proto
    return st.one_of(
        proto, st.sampled_from(["web", "dns"]).map(lambda n: {"destinationNamedPort": n})
    )


def anp_port(named: bool) -> st.SearchStrategy[dict[str, Any]]:
    protocol = st.sampled_from(["TCP", "UDP", "SCTP"])
    number = st.builds(
        lambda p, n: {"portNumber": {"protocol": p, "port": n}},
        protocol,
        st.sampled_from([80, 8080, 53, 9003]),
    )
    rng = st.builds(lambda p: {"portRange": {"protocol": p, "start": 50, "end": 8080}}, protocol)
    if not named:
        return st.one_of(number, rng)
    return st.one_of(number, rng, st.sampled_from(["web", "dns"]).map(lambda n: {"namedPort": n}))


@st.composite
def rule(draw: st.DrawFn, api: str, direction: str, actions: list[str]) -> dict[str, Any]:
    if direction == "egress":
        peers = draw(st.lists(st.one_of(selector_peer, host_peer), min_size=1, max_size=2))
    else:
        peers = draw(st.lists(selector_peer, min_size=1, max_size=2))
    named = not any("nodes" in p or "networks" in p for p in peers)
    out: dict[str, Any] = {
        "action": draw(st.sampled_from(actions)),
        "from" if direction == "ingress" else "to": peers,
    }
    field, port = (
        ("protocols", cnp_port(named)) if api == "v1alpha2" else ("ports", anp_port(named))
    )
    ports = draw(st.one_of(st.none(), st.lists(port, min_size=1, max_size=2)))
    if ports is not None:
        out[field] = ports
    return out


@st.composite
def cluster_wide(draw: st.DrawFn, kind: str, name: str) -> dict[str, Any]:
    api = "v1alpha2" if kind == "ClusterNetworkPolicy" else "v1alpha1"
    subject = draw(st.one_of(ns_sel.map(lambda n: {"namespaces": n}), pod_peer))
    spec: dict[str, Any] = {"subject": subject}
    if kind == "ClusterNetworkPolicy":
        spec["tier"] = draw(st.sampled_from(["Admin", "Baseline"]))
        actions = ["Accept", "Deny", "Pass"]
    elif kind == "AdminNetworkPolicy":
        actions = ["Allow", "Deny", "Pass"]
    else:
        actions = ["Allow", "Deny"]
    if kind != "BaselineAdminNetworkPolicy":
        spec["priority"] = draw(st.integers(0, 3))
    for direction in ("ingress", "egress"):
        rules = draw(st.lists(rule(api, direction, actions), max_size=3))
        if rules:
            spec[direction] = rules
    return {
        "apiVersion": f"policy.networking.k8s.io/{api}",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }


@st.composite
def network_policy(draw: st.DrawFn, i: int) -> dict[str, Any]:
    h = draw(st.sampled_from(HOUSES[:4]))
    peers = draw(
        st.lists(
            house.map(lambda x: {"namespaceSelector": {"matchLabels": {"conformance-house": x}}}),
            max_size=2,
        )
    )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"np{i}", "namespace": f"network-policy-conformance-{h}"},
        "spec": {"podSelector": {}, "ingress": [{"from": peers}] if peers else []},
    }


@st.composite
def policies(draw: st.DrawFn) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["ClusterNetworkPolicy", "AdminNetworkPolicy"]))
        out.append(draw(cluster_wide(kind, f"p{i}")))
    if draw(st.booleans()):
        out.append(draw(cluster_wide("BaselineAdminNetworkPolicy", "default")))
    out += [draw(network_policy(i)) for i in range(draw(st.integers(0, 2)))]
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies())
def test_matrix_equals_walk_on_random_cluster_wide_policies(objects: list[dict[str, Any]]) -> None:
    c = cluster_from_objects([*BASE, *objects], source="random")
    m = compute_matrix(c, PROBES)
    ends = [pod_endpoint(c, p) for p in m.pods]
    for probe in m.probes:
        for (i, s), (j, d) in itertools.product(enumerate(ends), repeat=2):
            v = verdict(c, Flow(s, d, probe.protocol, probe.port))  # type: ignore[arg-type]
            where = (probe.protocol, probe.port, s.label, d.label)
            assert bool(probe.allowed[i, j]) is v.allowed, (where, v.lines())
