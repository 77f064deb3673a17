"""The seed report's cluster (part 2 policies), built from the model types.

Used until (and beside) ``examples/seed``: the kernel goldens must not depend
on the loader's defaults, only on the renderer.
"""

from __future__ import annotations

import ipaddress

from sekisho.model.types import (
    Cluster,
    ContainerPort,
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

NODES = {
    "k8s-master1": ("192.168.110.11", "10.244.0.0/24"),
    "k8s-master2": ("192.168.110.12", "10.244.1.0/24"),
    "k8s-master3": ("192.168.110.13", "10.244.2.0/24"),
    "k8s-node1": ("192.168.110.21", "10.244.3.0/24"),
    "k8s-node2": ("192.168.110.22", "10.244.4.0/24"),
    "k8s-node3": ("192.168.110.23", "10.244.5.0/24"),
}

PODS = [
    ("dev", "blue", {"app": "blue", "environment": "dev"}, "10.244.3.6", "k8s-node1"),
    ("dev", "green", {"app": "green", "environment": "dev"}, "10.244.5.43", "k8s-node3"),
    ("dev", "red", {"app": "red", "environment": "dev"}, "10.244.4.6", "k8s-node2"),
    ("prod", "blue", {"app": "blue", "environment": "prod"}, "10.244.3.7", "k8s-node1"),
    ("prod", "green", {"app": "green", "environment": "prod"}, "10.244.5.44", "k8s-node3"),
    ("prod", "red", {"app": "red", "environment": "prod"}, "10.244.4.7", "k8s-node2"),
    (
        "kube-system",
        "nginx-ingress-controller",
        {"app": "nginx-ingress", "component": "controller", "release": "nginx-ingress"},
        "10.244.3.8",
        "k8s-node1",
    ),
]


def _sel(**labels: str) -> LabelSelector:
    return LabelSelector(match_labels=tuple(sorted(labels.items())))


def _in(key: str, *values: str) -> Requirement:
    return Requirement(key, "In", tuple(sorted(values)))


TCP80 = (PolicyPort("TCP", 80),)

POLICIES = (
    NetworkPolicy(
        namespace="dev",
        name="allow-tcp-80-from-blue-to-green",
        pod_selector=_sel(app="red", environment="dev"),
        ingress=(
            Rule(
                peers=(
                    Peer(
                        pod_selector=LabelSelector(
                            match_expressions=(_in("environment", "dev"), _in("app", "blue"))
                        )
                    ),
                ),
                ports=TCP80,
            ),
        ),
        egress=(
            Rule(
                peers=(
                    Peer(
                        pod_selector=LabelSelector(
                            match_expressions=(_in("environment", "dev"), _in("app", "green"))
                        )
                    ),
                ),
                ports=TCP80,
            ),
        ),
        affects_ingress=True,
        affects_egress=True,
    ),
    NetworkPolicy(
        namespace="prod",
        name="allow-ingresscontroller-traffic",
        pod_selector=_sel(app="green", environment="prod"),
        ingress=(
            Rule(
                peers=(
                    Peer(
                        pod_selector=_sel(app="nginx-ingress", component="controller"),
                        namespace_selector=_sel(project="kube-system"),
                    ),
                ),
                ports=TCP80,
            ),
        ),
    ),
)


def seed_cluster(policies: tuple[NetworkPolicy, ...] = POLICIES) -> Cluster:
    nodes = tuple(
        Node(name, ipaddress.IPv4Address(ip), ipaddress.IPv4Network(cidr))
        for name, (ip, cidr) in sorted(NODES.items())
    )
    namespaces = {
        "default": Namespace("default", {"kubernetes.io/metadata.name": "default"}),
        "dev": Namespace("dev", {"kubernetes.io/metadata.name": "dev"}),
        "kube-system": Namespace(
            "kube-system", {"kubernetes.io/metadata.name": "kube-system", "project": "kube-system"}
        ),
        "prod": Namespace("prod", {"kubernetes.io/metadata.name": "prod"}),
    }
    pods = tuple(
        sorted(
            (
                Pod(
                    namespace=ns,
                    name=name,
                    labels=labels,
                    node=node,
                    ip=ipaddress.IPv4Address(ip),
                    ports=(ContainerPort(80, "TCP", "http"),),
                )
                for ns, name, labels, ip, node in PODS
            ),
            key=lambda p: p.key,
        )
    )
    return Cluster(
        nodes=nodes,
        namespaces=namespaces,
        pods=pods,
        policies=tuple(sorted(policies, key=lambda p: p.key)),
    )
