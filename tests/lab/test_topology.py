"""The lab's plan as data: names, addresses and routes, no kernel needed."""

from __future__ import annotations

import ipaddress

import pytest

from sekisho.errors import LabError
from sekisho.lab.topology import (
    PREFIX,
    check_lab_name,
    node_script,
    plan,
    pod_script,
)
from sekisho.model import cluster_from_objects
from sekisho.model.types import endpoint_interface

from .conftest import SEED, node_object


def _pod(ns: str, name: str, ip: str, node: str | None = None) -> dict[str, object]:
    spec: dict[str, object] = {
        "containers": [
            {
                "name": "c",
                "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
            }
        ]
    }
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
        "status": {"podIP": ip},
    }


def test_seed_plan_names_and_interfaces() -> None:
    from sekisho.model import load_cluster

    cluster = load_cluster([SEED / "cluster.yaml"])
    p = plan(cluster, "seed")
    assert len(p.nodes) == 6
    assert [x.key for x in p.pods] == sorted(x.key for x in cluster.pods)
    for ns in p.namespaces:
        assert ns.startswith(f"{PREFIX}seed-")
    assert len(set(p.namespaces)) == len(p.namespaces)
    blue = p.pod("dev/blue")
    assert blue is not None
    assert blue.host_if == endpoint_interface("dev", "blue")
    assert len(blue.host_if) <= 15
    assert blue.tcp == (80,)
    assert p.resolve("k8s-node1") == p.node("k8s-node1").netns  # type: ignore[union-attr]
    with pytest.raises(LabError, match="neither a node nor a pod"):
        p.resolve("nope/nope")


@pytest.mark.parametrize(
    ("pods", "node", "want"),
    [
        pytest.param(
            [("a", "p", "10.244.2.5", "n2")],
            "n1",
            [("10.244.2.0/24", "192.168.110.12")],
            id="pod-inside-podcidr-routed-per-cidr",
        ),
        pytest.param(
            [("a", "p", "10.244.9.5", "n2")],
            "n1",
            [("10.244.9.5/32", "192.168.110.12")],
            id="pod-outside-podcidr-routed-per-32",
        ),
        pytest.param(
            [("a", "p", "10.244.1.77", "n2"), ("a", "q", "10.244.2.3", "n2")],
            "n1",
            [("10.244.2.0/24", "192.168.110.12"), ("10.244.1.77/32", "192.168.110.12")],
            id="pod-in-my-cidr-on-other-node-gets-32",
        ),
        pytest.param([("a", "p", "10.244.1.5", "n1")], "n1", [], id="local-only"),
    ],
)
def test_routes(
    pods: list[tuple[str, str, str, str]], node: str, want: list[tuple[str, str]]
) -> None:
    objs = [
        node_object("n1", "192.168.110.11", "10.244.1.0/24"),
        node_object("n2", "192.168.110.12", "10.244.2.0/24"),
    ] + [_pod(*x) for x in pods]
    p = plan(cluster_from_objects(objs), "r")
    n = p.node(node)
    assert n is not None
    assert sorted(n.routes) == sorted(want)


def test_default_nodes_and_round_robin() -> None:
    objs = [_pod("a", f"p{i}", f"10.244.{i + 1}.9") for i in range(4)]
    p = plan(cluster_from_objects(objs), "d")
    assert len(p.nodes) >= 1
    assert all(pod.node in {n.name for n in p.nodes} for pod in p.pods)


def test_scripts_are_calico_like() -> None:
    objs = [
        node_object("n1", "192.168.110.11", "10.244.1.0/24"),
        _pod("a", "p", "10.244.1.5", "n1"),
    ]
    p = plan(cluster_from_objects(objs), "s")
    pod = p.pods[0]
    text = node_script(p, p.nodes[0])
    assert f"ip route add 10.244.1.5/32 dev {pod.host_if}" in text
    assert f"net.ipv4.conf.{pod.host_if}.proxy_arp=1" in text
    assert "net.ipv4.ip_forward=1" in text
    assert "masquerade" in text and "sekisho_lab_nat" in text
    assert "default via 169.254.1.1 dev eth0" in pod_script(pod)
    assert ipaddress.ip_address("203.0.113.10") == p.external_ip


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("Upper", id="upper"),
        pytest.param("waytoolongname", id="too-long"),
        pytest.param("a-b", id="dash"),
    ],
)
def test_bad_lab_names(name: str) -> None:
    with pytest.raises(LabError, match="lab name"):
        check_lab_name(name)
