"""Small builders for clusters made directly from the model types."""

from __future__ import annotations

import ipaddress

from sekisho.model.types import (
    Cluster,
    ContainerPort,
    IPBlock,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Node,
    Peer,
    Pod,
    PolicyPort,
    Requirement,
    Rule,
)


def sel(**labels: str) -> LabelSelector:
    return LabelSelector(match_labels=tuple(sorted(labels.items())))


def expr(key: str, op: str, *values: str) -> LabelSelector:
    return LabelSelector(match_expressions=(Requirement(key, op, tuple(sorted(values))),))  # type: ignore[arg-type]


def block(cidr: str, *excepts: str) -> IPBlock:
    return IPBlock(ipaddress.ip_network(cidr), tuple(ipaddress.ip_network(e) for e in excepts))


def node(name: str, ip: str, cidr: str) -> Node:
    return Node(name, ipaddress.ip_address(ip), ipaddress.ip_network(cidr))


def pod(
    key: str,
    ip: str,
    node_name: str,
    ports: tuple[ContainerPort, ...] = (ContainerPort(80, "TCP", "http"),),
    host_network: bool = False,
    **labels: str,
) -> Pod:
    ns, _, name = key.partition("/")
    return Pod(ns, name, dict(labels), node_name, ipaddress.ip_address(ip), host_network, ports)


def namespaces(**extra: dict[str, str]) -> dict[str, Namespace]:
    return {
        n: Namespace(n, {"kubernetes.io/metadata.name": n, **labels}) for n, labels in extra.items()
    }


def cluster(
    pods: list[Pod],
    policies: list[NetworkPolicy],
    nodes: list[Node] | None = None,
    ns: dict[str, Namespace] | None = None,
) -> Cluster:
    all_ns = dict(ns or {})
    for p in pods:
        all_ns.setdefault(
            p.namespace, Namespace(p.namespace, {"kubernetes.io/metadata.name": p.namespace})
        )
    return Cluster(
        nodes=tuple(nodes or ()),
        namespaces=all_ns,
        pods=tuple(sorted(pods, key=lambda p: (p.namespace, p.name))),
        policies=tuple(sorted(policies, key=lambda p: (p.namespace, p.name))),
    )


SEED_NODES = [
    node("k8s-master1", "192.168.110.11", "10.244.0.0/24"),
    node("k8s-master2", "192.168.110.12", "10.244.1.0/24"),
    node("k8s-master3", "192.168.110.13", "10.244.2.0/24"),
    node("k8s-node1", "192.168.110.21", "10.244.3.0/24"),
    node("k8s-node2", "192.168.110.22", "10.244.4.0/24"),
    node("k8s-node3", "192.168.110.23", "10.244.5.0/24"),
]


def seed_cluster() -> Cluster:
    """The seed report's cluster and its two policies (findings 4 and 5)."""
    pods = [
        pod("dev/blue", "10.244.3.6", "k8s-node1", app="blue", environment="dev"),
        pod("dev/green", "10.244.5.43", "k8s-node3", app="green", environment="dev"),
        pod("dev/red", "10.244.4.6", "k8s-node2", app="red", environment="dev"),
        pod("prod/blue", "10.244.3.7", "k8s-node1", app="blue", environment="prod"),
        pod("prod/green", "10.244.5.44", "k8s-node3", app="green", environment="prod"),
        pod("prod/red", "10.244.4.7", "k8s-node2", app="red", environment="prod"),
        pod(
            "kube-system/nginx-ingress-controller",
            "10.244.3.8",
            "k8s-node1",
            app="nginx-ingress",
            component="controller",
            release="nginx-ingress",
        ),
    ]
    dev_policy = NetworkPolicy(
        "dev",
        "allow-tcp-80-from-blue-to-green",
        sel(app="red", environment="dev"),
        ingress=(
            Rule(
                peers=(
                    Peer(
                        pod_selector=LabelSelector(
                            match_expressions=(
                                Requirement("environment", "In", ("dev",)),
                                Requirement("app", "In", ("blue",)),
                            )
                        )
                    ),
                ),
                ports=(PolicyPort("TCP", 80),),
            ),
        ),
        egress=(
            Rule(
                peers=(
                    Peer(
                        pod_selector=LabelSelector(
                            match_expressions=(
                                Requirement("environment", "In", ("dev",)),
                                Requirement("app", "In", ("green",)),
                            )
                        )
                    ),
                ),
                ports=(PolicyPort("TCP", 80),),
            ),
        ),
        affects_ingress=True,
        affects_egress=True,
    )
    prod_policy = NetworkPolicy(
        "prod",
        "allow-ingresscontroller-traffic",
        sel(app="green", environment="prod"),
        ingress=(
            Rule(
                peers=(
                    Peer(
                        pod_selector=sel(app="nginx-ingress", component="controller"),
                        namespace_selector=sel(project="kube-system"),
                    ),
                ),
                ports=(PolicyPort("TCP", 80),),
            ),
        ),
    )
    ns = namespaces(dev={}, prod={}, **{"kube-system": {"project": "kube-system"}})
    return cluster(pods, [dev_policy, prod_policy], SEED_NODES, ns)
