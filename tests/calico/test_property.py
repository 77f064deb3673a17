"""Random Calico v3 objects (tiers with both default actions, policies of both scopes with
every action, orders and ties, selectors with namespace and service account scoping,
notSelector, nets and notNets, ports and notPorts with ranges and names, protocol and
notProtocol, ICMP, ipVersion; network sets; service accounts; host endpoints of the
hostNetwork pods' nodes, with and without an allowing profile, failsafe ports,
applyOnForward policies for traffic forwarded through them) with a Kubernetes
NetworkPolicy on the conformance cluster: the matrix engine equals the walk, pair by
pair, for the enforced program and for the pending one (staged policies applied)."""

from __future__ import annotations

import itertools
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npa_cases import CORPUS
from sekisho.model import cluster_from_objects
from sekisho.semantics import Flow, compile_program, compute_matrix, pod_endpoint, verdict

V3 = "projectcalico.org/v3"
BASE = [o for o in yaml.safe_load_all((CORPUS / "base" / "cluster.yaml").read_text()) if o]
HOUSES = ["gryffindor", "slytherin", "hufflepuff", "ravenclaw"]
NODE_IPS = {
    o["metadata"]["name"]: next(
        a["address"] for a in o["status"]["addresses"] if a["type"] == "InternalIP"
    )
    for o in BASE
    if o["kind"] == "Node"
}
NAMESPACES = [f"network-policy-conformance-{h}" for h in HOUSES]
PROBES = [(80, "TCP"), (53, "UDP"), (8080, "TCP"), (22, "TCP"), (None, "ICMP")]

selector = st.sampled_from(
    [
        "",
        "all()",
        "conformance-house == 'gryffindor'",
        "conformance-house in {'slytherin', 'hufflepuff'}",
        "!has(conformance-house)",
        "statefulset.kubernetes.io/pod-name ends with '-0'",
        "role == 'partners'",
        "conformance-house starts with 'r' || role contains 'part'",
        "has(hep)",
        "hep == 'node-1'",
    ]
)
ns_selector = st.sampled_from(
    ["all()", "global()", "conformance-house == 'slytherin'", "conformance-house != 'ravenclaw'"]
)
nets = st.lists(
    st.sampled_from(["10.244.0.0/23", "10.244.1.0/24", "10.244.3.10/32", "172.18.0.0/16"]),
    max_size=2,
    unique=True,
)
ports = st.lists(
    st.sampled_from([80, 53, "50:8080", "8080:9000", "1024:65535", "web", "dns"]),
    max_size=2,
    unique=True,
)


@st.composite
def entity(draw: st.DrawFn, proto: str | int | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, strat in (
        ("selector", selector.filter(bool)),
        ("notSelector", selector.filter(bool)),
        ("namespaceSelector", ns_selector),
    ):
        if draw(st.integers(0, 3)) == 0:
            out[key] = draw(strat)
    if draw(st.integers(0, 4)) == 0:
        sa: dict[str, Any] = {}
        if draw(st.booleans()):
            sa["names"] = ["default"]
        if draw(st.booleans()) or not sa:
            sa["selector"] = draw(st.sampled_from(["team == 'a'", "all()", "!has(team)"]))
        out["serviceAccounts"] = sa
    for key in ("nets", "notNets"):
        got = draw(nets)
        if got and draw(st.integers(0, 2)) == 0:
            out[key] = got
    if proto in ("TCP", "UDP"):
        for key in ("ports", "notPorts"):
            # A probe's source port is ephemeral (32768-60999): these numbers and ranges
            # hold all of it or none, and the names are declared below it (80, 53), so the
            # walk knows the answer; a range holding part of it would make a rule match
            # "depending on the port the kernel picks", which the walk never assumes.
            got = draw(ports)
            if got and draw(st.booleans()):
                out[key] = got
    return out


@st.composite
def rule(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {"action": draw(st.sampled_from(["Allow", "Deny", "Pass", "Log"]))}
    proto = draw(st.sampled_from([None, "TCP", "UDP", "ICMP", 6]))
    if proto is not None:
        out["protocol"] = proto
    elif draw(st.integers(0, 3)) == 0:
        out["notProtocol"] = draw(st.sampled_from(["TCP", "UDP"]))
    if proto == "ICMP" and draw(st.booleans()):
        out["icmp" if draw(st.booleans()) else "notICMP"] = draw(
            st.sampled_from([{"type": 8}, {"type": 8, "code": 0}, {"type": 0}])
        )
    if draw(st.integers(0, 5)) == 0 and proto != "ICMP":
        out["ipVersion"] = 4
    for side in ("source", "destination"):
        e = draw(entity("TCP" if proto == 6 else proto))
        if e:
            out[side] = e
    return out


@st.composite
def objects(
    draw: st.DrawFn,
    hosts: bool = True,
    policies: tuple[int, int] = (1, 4),
    stages: bool = False,
) -> list[dict[str, Any]]:
    """``hosts``: host endpoints too; ``policies``: how many (at least, at most), the
    Kubernetes NetworkPolicy aside (a test that pays for each program, as the kernel
    test does, asks for more rules in each); ``stages``: GlobalNetworkPolicies may also
    be doNotTrack or preDNAT ones (Felix's raw and mangle stages)."""
    out: list[dict[str, Any]] = [
        {
            "apiVersion": V3,
            "kind": "GlobalNetworkSet",
            "metadata": {"name": "partners", "labels": {"role": "partners"}},
            "spec": {"nets": ["10.244.1.0/24"]},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": NAMESPACES[0], "labels": {"team": "a"}},
        },
    ]
    host_nodes = st.lists(
        st.sampled_from(["node-1", "node-2"]), min_size=int(stages), max_size=2, unique=True
    )
    for node in draw(host_nodes) if hosts else []:
        # The hostNetwork centaurs run on node-1 and node-2: their node's host endpoint
        # polices their traffic.
        hep_spec: dict[str, Any] = {"node": node, "interfaceName": "eth0"}
        if draw(st.booleans()):
            hep_spec["profiles"] = ["projectcalico-default-allow"]
        if draw(st.booleans()):
            # With its address, a selector that selects it holds the node's address and
            # its named ports.
            hep_spec["expectedIPs"] = [NODE_IPS[node]]
            if draw(st.booleans()):
                hep_spec["ports"] = [{"name": "web", "protocol": "TCP", "port": 80}]
        out.append(
            {
                "apiVersion": V3,
                "kind": "HostEndpoint",
                "metadata": {"name": f"{node}-eth0", "labels": {"hep": node}},
                "spec": hep_spec,
            }
        )
    tiers = ["default"]
    for name in draw(st.lists(st.sampled_from(["t1", "t2"]), max_size=2, unique=True)):
        spec: dict[str, Any] = {}
        order = draw(st.sampled_from([None, 100, 1500, 2_000_000]))
        if order is not None:
            spec["order"] = order
        spec["defaultAction"] = draw(st.sampled_from(["Deny", "Pass"]))
        out.append({"apiVersion": V3, "kind": "Tier", "metadata": {"name": name}, "spec": spec})
        tiers.append(name)
    for i in range(draw(st.integers(*policies))):
        kind = draw(
            st.sampled_from(
                ["NetworkPolicy", "GlobalNetworkPolicy", "StagedNetworkPolicy"]
                + ["GlobalNetworkPolicy"] * 2 * stages
            )
        )
        tier = draw(st.sampled_from(tiers))
        name = f"p{i}" if tier == "default" else f"{tier}.p{i}"
        spec = {"tier": tier, "selector": draw(selector)}
        order = draw(st.sampled_from([None, 1, 1000, 2000]))
        if order is not None:
            spec["order"] = order
        for direction in ("ingress", "egress"):
            rules = draw(st.lists(rule(), max_size=3))
            if rules:
                spec[direction] = rules
        if draw(st.booleans()):
            spec["types"] = draw(st.sampled_from([["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
        meta: dict[str, Any] = {"name": name}
        if kind == "GlobalNetworkPolicy":
            if draw(st.integers(0, 2)) == 0:
                spec["applyOnForward"] = True
            early = draw(st.sampled_from(["", "doNotTrack", "preDNAT"])) if stages else ""
            if early:
                spec[early] = True
                spec["applyOnForward"] = True
                spec["selector"] = draw(st.sampled_from(["has(hep)", "hep == 'node-2'", "all()"]))
            if early == "doNotTrack" and draw(st.booleans()):
                # A plain Allow first, one way or both: requests accepted untracked, their
                # replies accepted untracked too or left to each node's conntrack.
                proto = draw(st.sampled_from([None, "TCP", "UDP", "ICMP"]))
                allow = {"action": "Allow"} | ({"protocol": proto} if proto else {})
                for way in draw(st.sampled_from([["ingress"], ["egress"], ["ingress", "egress"]])):
                    spec[way] = [allow, *spec.get(way, [])]
                spec.pop("types", None)
            if early == "preDNAT":
                spec.pop("egress", None)
                spec["types"] = ["Ingress"]
            if draw(st.booleans()):
                spec["namespaceSelector"] = draw(ns_selector.filter(lambda s: s != "global()"))
        else:
            meta["namespace"] = draw(st.sampled_from(NAMESPACES))
        if draw(st.integers(0, 3)) == 0:
            spec["serviceAccountSelector"] = draw(st.sampled_from(["team == 'a'", "all()"]))
        out.append({"apiVersion": V3, "kind": kind, "metadata": meta, "spec": spec})
    if draw(st.booleans()):
        out.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": "np", "namespace": draw(st.sampled_from(NAMESPACES))},
                "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]},
            }
        )
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects())
def test_matrix_equals_walk_on_random_calico_objects(objs: list[dict[str, Any]]) -> None:
    c = cluster_from_objects([*BASE, *objs], source="random")
    for pending in (False, True):
        program = compile_program(c)
        m = compute_matrix(c, PROBES, program=program.pending() if pending else program)
        ends = [pod_endpoint(c, p) for p in m.pods]
        for probe in m.probes:
            for (i, s), (j, d) in itertools.product(enumerate(ends), repeat=2):
                flow = Flow(s, d, probe.protocol, probe.port)  # type: ignore[arg-type]
                v = verdict(c, flow, pending=pending)
                where = (pending, probe.protocol, probe.port, s.label, d.label)
                assert bool(probe.allowed[i, j]) is v.allowed, (where, v.lines())
