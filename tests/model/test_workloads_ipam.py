"""Workload expansion, placement and IPAM: deterministic, and independent of file order."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from sekisho.model import cluster_from_objects


def node(name: str, cidr: str | None = None, ip: str | None = None, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
    obj["spec"] = dict(spec)
    if cidr:
        obj["spec"]["podCIDR"] = cidr
    if ip:
        obj["status"] = {"addresses": [{"type": "InternalIP", "address": ip}]}
    return obj


def workload(
    kind: str, name: str, spec: dict[str, Any] | None = None, **template: Any
) -> dict[str, Any]:
    api = "batch/v1" if kind == "Job" else "apps/v1"
    body: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {
                "containers": [{"name": "c", "ports": [{"containerPort": 8080, "name": "web"}]}],
                **template,
            },
        },
    }
    if kind == "Job":
        del body["selector"]
    body.update(spec or {})
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name, "namespace": "ns"},
        "spec": body,
    }


def pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": spec,
    }


NODES = [
    node("n2", "10.244.2.0/24", "192.168.110.12"),
    node("n1", "10.244.1.0/24", "192.168.110.11"),
    node("m1", "10.244.0.0/24", "192.168.110.10", unschedulable=True),
]


@pytest.mark.parametrize(
    ("obj", "names"),
    [
        pytest.param(
            workload("StatefulSet", "db", {"replicas": 3}),
            ["db-0", "db-1", "db-2"],
            id="statefulset",
        ),
        pytest.param(workload("ReplicaSet", "rs", {"replicas": 2}), 2, id="replicaset"),
        pytest.param(workload("Deployment", "web"), 1, id="deployment-default-one"),
        pytest.param(workload("Deployment", "zero", {"replicas": 0}), 0, id="deployment-zero"),
        pytest.param(workload("DaemonSet", "agent"), 2, id="daemonset-on-schedulable-nodes"),
        pytest.param(workload("Job", "batch", {"parallelism": 4, "completions": 2}), 2, id="job"),
        pytest.param(workload("Job", "once"), 1, id="job-default-one"),
    ],
)
def test_workload_expansion(obj: dict[str, Any], names: list[str] | int) -> None:
    cluster = cluster_from_objects([*NODES, obj])
    pods = cluster.pods
    if isinstance(names, int):
        assert len(pods) == names
    else:
        assert [p.name for p in pods] == names
    name = obj["metadata"]["name"]
    for p in pods:
        assert p.labels["app"] == name
        assert p.workload == f"{obj['kind']}/{name}"
        assert p.named_port("web", "TCP") == 8080
        assert p.name.startswith(name + "-")
        assert p.node in ("n1", "n2")


def test_deployment_names_follow_the_controller_pattern_and_are_stable() -> None:
    objs = [*NODES, workload("Deployment", "web", {"replicas": 3})]
    first = cluster_from_objects(objs)
    again = cluster_from_objects(list(reversed(objs)))
    assert [(p.name, p.ip, p.node) for p in first.pods] == [
        (p.name, p.ip, p.node) for p in again.pods
    ]
    hashes = {p.labels["pod-template-hash"] for p in first.pods}
    assert len(hashes) == 1
    (h,) = hashes
    assert len(h) == 10
    for p in first.pods:
        prefix, template_hash, suffix = p.name.rsplit("-", 2)
        assert (prefix, template_hash, len(suffix)) == ("web", h, 5)


def test_statefulset_and_job_labels() -> None:
    cluster = cluster_from_objects([workload("StatefulSet", "db"), workload("Job", "j")])
    db, job = cluster.pods
    assert db.labels["statefulset.kubernetes.io/pod-name"] == "db-0"
    assert job.labels["job-name"] == "j"


def test_daemonset_runs_one_pod_per_schedulable_node() -> None:
    cluster = cluster_from_objects([*NODES, workload("DaemonSet", "agent", hostNetwork=True)])
    assert sorted(p.node for p in cluster.pods) == ["n1", "n2"]
    for p in cluster.pods:
        node_obj = cluster.node(p.node or "")
        assert node_obj is not None
        assert p.host_network and p.ip == node_obj.internal_ip


def test_pods_without_node_are_placed_round_robin_over_schedulable_nodes() -> None:
    cluster = cluster_from_objects([*NODES, *(pod(f"p{i}") for i in range(5))])
    assert [p.node for p in cluster.pods] == ["n1", "n2", "n1", "n2", "n1"]


def test_a_workloads_replicas_go_round_robin_from_a_node_of_its_own() -> None:
    """The i-th replica on the (start + i)-th schedulable node, start from the workload's
    hash; Pods given without a node are placed round robin among themselves."""
    three = [*NODES, node("n3", "10.244.3.0/24", "192.168.110.13")]
    cluster = cluster_from_objects([*three, workload("StatefulSet", "db", {"replicas": 5})])
    order = ["n1", "n2", "n3"]
    start = order.index(cluster.pods[0].node or "")
    assert [p.node for p in cluster.pods] == [order[(start + i) % 3] for i in range(5)]
    mixed = cluster_from_objects([*NODES, pod("a"), workload("ReplicaSet", "rs"), pod("b")])
    assert [p.node for p in mixed.pods if p.workload is None] == ["n1", "n2"]


def test_a_workload_change_moves_no_other_pod() -> None:
    """Another workload added, or one's replicas or labels changed: every other pod keeps
    its node and address (what lets the agent patch such a change: model/patch.py). An
    address can still move when a pod passed over another's hashed address (none does
    in this cluster); the patch checks for that and loads whole then."""
    stay = [
        workload("Deployment", "web", {"replicas": 4}),
        workload("StatefulSet", "db", {"replicas": 3}),
        pod("solo"),
    ]
    before = cluster_from_objects([*NODES, *stay, workload("ReplicaSet", "rs", {"replicas": 2})])
    kept = {p.key: (p.node, p.ip) for p in before.pods if not p.name.startswith("rs-")}
    for rs in (
        None,
        workload("ReplicaSet", "rs", {"replicas": 5}),
        workload("ReplicaSet", "rs", {"replicas": 1}, hostNetwork=True),
    ):
        after = cluster_from_objects([*NODES, *stay, *([rs] if rs else [])])
        got = {p.key: (p.node, p.ip) for p in after.pods if not p.name.startswith("rs-")}
        assert got == kept


def test_pod_ips_come_from_the_node_pod_cidr_and_are_unique() -> None:
    pods = [pod(f"p{i}", nodeName="n1") for i in range(200)]
    cluster = cluster_from_objects([*NODES, *pods])
    ips = [p.ip for p in cluster.pods]
    assert len(set(ips)) == 200
    net = ipaddress.ip_network("10.244.1.0/24")
    for ip in ips:
        assert ip in net
        assert ip not in (net.network_address, net.broadcast_address)


def test_pod_ip_is_stable_when_other_pods_come_and_go() -> None:
    before = cluster_from_objects([*NODES, pod("a", nodeName="n1"), pod("b", nodeName="n1")])
    after = cluster_from_objects([*NODES, pod("b", nodeName="n1"), pod("c", nodeName="n1")])
    assert before.pod("ns/b") is not None and after.pod("ns/b") is not None
    assert before.pod("ns/b").ip == after.pod("ns/b").ip  # type: ignore[union-attr]


def test_given_ips_are_kept_and_not_handed_out_again() -> None:
    given = [
        {**pod(f"g{i}", nodeName="n1"), "status": {"podIP": f"10.244.1.{i}"}} for i in range(1, 255)
    ]
    # The /24 is full but for .0 and .255: a new pod cannot get an address.
    objs = [*NODES, *given[:-1], pod("new", nodeName="n1")]
    cluster = cluster_from_objects(objs)
    new = cluster.pod("ns/new")
    assert new is not None and str(new.ip) == "10.244.1.254"


def test_full_pod_cidr_is_a_problem() -> None:
    from sekisho.errors import ManifestError

    given = [
        {**pod(f"g{i}", nodeName="n1"), "status": {"podIP": f"10.244.1.{i}"}} for i in range(1, 255)
    ]
    with pytest.raises(ManifestError, match=r"no free address left in 10\.244\.1\.0/24"):
        cluster_from_objects([*NODES, *given, pod("new", nodeName="n1")])


def test_nodes_without_addresses_get_them_deterministically() -> None:
    cluster = cluster_from_objects(
        [node("c"), node("a", "10.244.0.0/24", "192.168.110.1"), node("b")]
    )
    got = {n.name: (str(n.internal_ip), str(n.pod_cidr)) for n in cluster.nodes}
    assert got == {
        "a": ("192.168.110.1", "10.244.0.0/24"),
        "b": ("192.168.110.2", "10.244.1.0/24"),
        "c": ("192.168.110.3", "10.244.2.0/24"),
    }


def test_cluster_cidr_option() -> None:
    cluster = cluster_from_objects([node("a")], cluster_cidr="10.42.0.0/16")
    assert str(cluster.nodes[0].pod_cidr) == "10.42.0.0/24"
    assert str(cluster.cluster_cidr) == "10.42.0.0/16"


def test_no_nodes_pods_get_ips_from_the_cluster_cidr_and_no_node() -> None:
    cluster = cluster_from_objects([pod("a"), pod("b", nodeName="somewhere")])
    a, b = cluster.pods
    assert cluster.nodes == ()
    assert a.node is None and b.node == "somewhere"
    assert a.ip in cluster.cluster_cidr and b.ip in cluster.cluster_cidr
    assert a.ip is not None and int(a.ip) & 0xFF != 0


def test_all_nodes_unschedulable_leaves_pods_without_node() -> None:
    cluster = cluster_from_objects([node("m", unschedulable=True), pod("a")])
    assert cluster.pods[0].node is None
    assert cluster.pods[0].ip in cluster.cluster_cidr
