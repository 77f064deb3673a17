"""The seed report's findings 2, 4 and 5 as expectations."""

from __future__ import annotations

import pytest

from sekisho.semantics import Flow, compute_matrix, default_probes, resolve_endpoint, verdict
from sekisho.semantics.probe import Service

from .builders import seed_cluster

SEED = seed_cluster()


def check(src: str, dst: str, proto: str, port: int | None) -> bool:
    flow = Flow(resolve_endpoint(SEED, src), resolve_endpoint(SEED, dst), proto, port)  # type: ignore[arg-type]
    return verdict(SEED, flow).allowed


FINDINGS = [
    # finding 4: allow-tcp-80-from-blue-to-green in dev
    pytest.param("dev/blue", "dev/red", "ICMP", None, False, id="f4-dev-blue-red-ping-fails"),
    pytest.param("dev/blue", "dev/red", "TCP", 80, True, id="f4-dev-blue-red-curl-works"),
    pytest.param("dev/green", "dev/red", "ICMP", None, False, id="f4-dev-green-red-ping-fails"),
    pytest.param("dev/green", "dev/red", "TCP", 80, False, id="f4-dev-green-red-curl-fails"),
    pytest.param("dev/red", "dev/blue", "ICMP", None, False, id="f4-dev-red-blue-ping-fails"),
    pytest.param("dev/red", "dev/blue", "TCP", 80, False, id="f4-dev-red-blue-curl-fails"),
    pytest.param("dev/red", "dev/green", "ICMP", None, False, id="f4-dev-red-green-ping-fails"),
    pytest.param("dev/red", "dev/green", "TCP", 80, True, id="f4-dev-red-green-curl-works"),
    # finding 5: allow-ingresscontroller-traffic in prod (namespaceSelector AND podSelector)
    pytest.param(
        "kube-system/nginx-ingress-controller",
        "prod/green",
        "TCP",
        80,
        True,
        id="f5-controller-reaches-prod-green",
    ),
    pytest.param("prod/blue", "prod/green", "TCP", 80, False, id="f5-prod-blue-blocked"),
    pytest.param("dev/blue", "prod/green", "TCP", 80, False, id="f5-dev-blue-blocked"),
    pytest.param(
        "kube-system/nginx-ingress-controller",
        "prod/green",
        "ICMP",
        None,
        False,
        id="f5-controller-ping-blocked",
    ),
    # finding 2: a pod's own node is never filtered; another node is
    pytest.param("k8s-node2", "dev/red", "ICMP", None, True, id="f2-own-node-ping-works"),
    pytest.param("k8s-node1", "dev/red", "ICMP", None, False, id="f2-other-node-ping-blocked"),
]


@pytest.mark.parametrize(("src", "dst", "proto", "port", "allowed"), FINDINGS)
def test_seed_findings(src: str, dst: str, proto: str, port: int | None, allowed: bool) -> None:
    assert check(src, dst, proto, port) is allowed


@pytest.mark.parametrize(("src", "dst", "proto", "port", "allowed"), FINDINGS[:12])
def test_seed_findings_in_matrix(
    src: str, dst: str, proto: str, port: int | None, allowed: bool
) -> None:
    m = compute_matrix(SEED, [(port, proto)])
    keys = [p.key for p in m.pods]
    assert bool(m.probes[0].allowed[keys.index(src), keys.index(dst)]) is allowed


def test_finding_4_explanations() -> None:
    flow = Flow(resolve_endpoint(SEED, "dev/green"), resolve_endpoint(SEED, "dev/red"), "TCP", 80)
    text = "\n".join(verdict(SEED, flow).lines())
    assert (
        'peer 0 TCP/80: source dev/green: labels {app: green, environment: dev} do not satisfy app in {"blue"}'
        in text
    )
    flow = Flow(resolve_endpoint(SEED, "dev/blue"), resolve_endpoint(SEED, "dev/red"), "ICMP", None)
    assert "protocol ICMP is not TCP" in "\n".join(verdict(SEED, flow).lines())


def test_finding_5_namespace_explanation() -> None:
    flow = Flow(resolve_endpoint(SEED, "dev/blue"), resolve_endpoint(SEED, "prod/green"), "TCP", 80)
    text = "\n".join(verdict(SEED, flow).lines())
    assert (
        'namespace dev labels {kubernetes.io/metadata.name: dev} do not satisfy project == "kube-system"'
        in text
    )


def test_default_probes_are_ports_then_icmp() -> None:
    assert default_probes(SEED) == [Service("TCP", 80), Service("ICMP")]


def test_matrix_json_is_the_documented_object() -> None:
    doc = compute_matrix(SEED, default_probes(SEED)).to_json()
    assert list(doc) == ["pods", "probes"]
    pods = doc["pods"]
    assert pods == sorted(pods) and "dev/blue" in pods  # type: ignore[type-var,operator]
    probes = doc["probes"]
    assert isinstance(probes, list) and len(probes) == 2
    for probe in probes:
        assert list(probe) == ["port", "protocol", "ingress", "egress", "allowed"]
        for key in ("ingress", "egress", "allowed"):
            table = probe[key]
            assert len(table) == 7 and all(len(row) == 7 for row in table)
            assert all(type(cell) is bool for row in table for cell in row)
            assert all(table[i][i] for i in range(7))
    assert probes[1]["port"] is None and probes[1]["protocol"] == "ICMP"
