"""A deterministic generator of realistic clusters, as Kubernetes manifest dicts.

    python bench/generator.py --pods 1000 --out DIR [--policies N] [--replicas 5] [--seed 0]

The cluster looks like one a platform team runs:

* ``Node`` objects, about one per 100 pods, each owning a /24 of 10.244.0.0/14
  (``spec.podCIDR``) with an InternalIP on 192.168.0.0/16;
* ``kube-system`` (CoreDNS, label ``k8s-app: kube-dns``), ``monitoring``
  (Prometheus) and team namespaces labelled ``team``/``env``;
* per team namespace, apps of three tiers (``frontend``, ``backend``, ``db``):
  one Deployment each with ``replicas`` pods labelled ``app``/``tier``/``team``
  and named container ports (``http`` 8080, ``metrics`` 9090, ``grpc`` 50051,
  ``postgres`` 5432);
* policies: default-deny (ingress and egress) per namespace, DNS egress to
  kube-system on UDP and TCP 53, Prometheus allowed to scrape ``metrics``,
  same-namespace isolation for "open" namespaces, and for "strict" ones
  frontend -> backend on named ports, backend -> db, a frontend egress to the
  internet as an ``ipBlock`` with ``except``, and cross-team calls with a
  namespaceSelector AND podSelector peer using ``matchExpressions``.

Pods are emitted as ``Pod`` objects (as ``kubectl get pods -o yaml`` shows them:
IP, ``nodeName``, ``hostIP``), so that every analyzer sees exactly the same
pods: our loader and NCA (which also accepts Deployments but would invent its
own pod names and at most two replicas of each). The ``Deployment`` objects
themselves are not emitted, for the same reason. With ``owner_refs=True`` the
pods carry ``ownerReferences`` to their ReplicaSet like live pods do (NCA then
folds replicas of one workload together); the default leaves them out, so every
pod is its own endpoint for every tool.

Every ``ipBlock`` lies outside the cluster's pod and node networks, so the
Calico/upstream reading (an ipBlock also matches pod IPs) and NCA's reading
(ipBlocks never match pods) agree on every generated cluster.

This module depends on PyYAML only, so other bench scripts and tests can load
it by path without installing anything.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import random
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]

CLUSTER_CIDR = ipaddress.IPv4Network("10.244.0.0/14")
"""Node i owns 10.(244 + i // 256).(i % 256).0/24: up to 1,024 nodes (256 below 64,000 pods)."""
NODE_NETWORK = ipaddress.IPv4Network("192.168.0.0/16")
PODS_PER_NODE = 100
MAX_PODS_PER_NODE = 250  # a /24 holds 254 usable addresses; keep a margin
NAMESPACE_DEPLOYMENTS = 12  # deployments per team namespace (4 apps of 3 tiers)

TEAMS = ("payments", "search", "identity", "catalog", "checkout", "ads", "media", "ledger")
ENVS = ("prod", "staging", "dev")
TIERS = ("frontend", "backend", "db")
# name, number, protocol, which tiers declare it
PORTS: tuple[tuple[str, int, str, tuple[str, ...]], ...] = (
    ("http", 8080, "TCP", ("frontend", "backend")),
    ("metrics", 9090, "TCP", ("frontend", "backend", "db")),
    ("grpc", 50051, "TCP", ("backend",)),
    ("postgres", 5432, "TCP", ("db",)),
)
_ALNUM = "bcdfghjklmnpqrstvwxz2456789"  # what Kubernetes uses for generated name suffixes

__all__ = ["generate", "generate_apps", "main", "write", "write_by_namespace"]


def _suffix(rng: random.Random, n: int, alphabet: str = _ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _node_cidr(i: int) -> str:
    return f"10.{244 + i // 256}.{i % 256}.0/24"


def _labels_selector(labels: dict[str, str]) -> Manifest:
    return {"matchLabels": dict(labels)}


def _policy(
    namespace: str,
    name: str,
    pod_selector: Manifest,
    *,
    ingress: list[Manifest] | None = None,
    egress: list[Manifest] | None = None,
    types: Iterable[str] = (),
) -> Manifest:
    spec: Manifest = {"podSelector": pod_selector}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    if types:
        spec["policyTypes"] = list(types)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


class _Deployment:
    """One workload before its pods are placed: namespace, name, labels, ports, replicas."""

    def __init__(
        self,
        namespace: str,
        name: str,
        labels: dict[str, str],
        ports: list[Manifest],
        replicas: int,
        image: str,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.labels = labels
        self.ports = ports
        self.replicas = replicas
        self.image = image


def _container_ports(tier: str) -> list[Manifest]:
    return [
        {"name": name, "containerPort": number, "protocol": proto}
        for name, number, proto, tiers in PORTS
        if tier in tiers
    ]


def _namespace(name: str, labels: dict[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}},
    }


def _team_policies(
    namespace: str, team: str, strict: bool, apps: list[str], teams: list[str]
) -> tuple[list[Manifest], list[Manifest]]:
    """(namespace-wide policies in priority order, per-deployment policies)."""
    dns_peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }
    prometheus_peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app": "prometheus"}},
    }
    wide = [
        _policy(namespace, "default-deny", {}, types=("Ingress", "Egress")),
        _policy(
            namespace,
            "allow-dns-egress",
            {},
            egress=[
                {
                    "to": [dns_peer],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                }
            ],
            types=("Egress",),
        ),
        _policy(
            namespace,
            "allow-prometheus-scrape",
            {},
            ingress=[{"from": [prometheus_peer], "ports": [{"port": "metrics"}]}],
        ),
    ]
    if not strict:
        wide.append(
            _policy(
                namespace,
                "allow-same-namespace",
                {},
                ingress=[{"from": [{"podSelector": {}}]}],
                egress=[{"to": [{"podSelector": {}}]}],
                types=("Ingress", "Egress"),
            )
        )
    wide.append(
        _policy(
            namespace,
            "frontend-internet-egress",
            {"matchLabels": {"tier": "frontend"}},
            egress=[
                {
                    "to": [
                        {
                            "ipBlock": {
                                "cidr": "0.0.0.0/0",
                                "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
                            }
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": 443}],
                }
            ],
            types=("Egress",),
        )
    )
    per_app: list[Manifest] = []
    others = [t for t in teams if t != team] or [team]
    for i, app in enumerate(apps):
        front = {"app": f"{app}-frontend"}
        back = {"app": f"{app}-backend"}
        db = {"app": f"{app}-db"}
        callers = sorted({others[i % len(others)], others[(i + 3) % len(others)]})
        per_app += [
            _policy(
                namespace,
                f"{app}-frontend",
                _labels_selector(front),
                ingress=[
                    {
                        "from": [
                            {"namespaceSelector": {}},
                            {"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.128/25"]}},
                        ],
                        "ports": [{"port": "http"}],
                    }
                ],
                egress=[
                    {
                        "to": [{"podSelector": _labels_selector(back)}],
                        "ports": [{"port": "grpc"}, {"port": "http"}],
                    },
                    {
                        "to": [
                            {
                                "namespaceSelector": {
                                    "matchExpressions": [{"key": "team", "operator": "Exists"}]
                                },
                                "podSelector": {"matchLabels": {"tier": "backend"}},
                            }
                        ],
                        "ports": [{"port": "grpc"}],
                    },
                ],
                types=("Ingress", "Egress"),
            ),
            _policy(
                namespace,
                f"{app}-backend",
                _labels_selector(back),
                ingress=[
                    {
                        "from": [
                            {"podSelector": _labels_selector(front)},
                            {
                                "namespaceSelector": {
                                    "matchExpressions": [
                                        {"key": "team", "operator": "In", "values": callers},
                                        {"key": "env", "operator": "NotIn", "values": ["dev"]},
                                    ]
                                },
                                "podSelector": {"matchLabels": {"tier": "frontend"}},
                            },
                        ],
                        "ports": [
                            {"port": "grpc"},
                            {"protocol": "TCP", "port": 8000, "endPort": 8080},
                        ],
                    }
                ],
                egress=[{"to": [{"podSelector": _labels_selector(db)}], "ports": [{"port": 5432}]}],
                types=("Ingress", "Egress"),
            ),
            _policy(
                namespace,
                f"{app}-db",
                _labels_selector(db),
                ingress=[
                    {
                        "from": [{"podSelector": _labels_selector(back)}],
                        "ports": [{"port": "postgres"}],
                    }
                ],
            ),
        ]
    return wide, per_app


def generate(
    pods: int,
    *,
    policies: int | None = None,
    replicas: int = 5,
    seed: int = 0,
    owner_refs: bool = False,
) -> list[Manifest]:
    """A realistic cluster of exactly ``pods`` pods and ``policies`` policies (default ~pods/10).

    Deterministic: the same arguments give the same objects, in the same order
    (nodes, namespaces, pods, policies).
    """
    if pods < 4:
        raise ValueError(f"pods must be at least 4 (kube-dns, prometheus, one app), got {pods}")
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, got {replicas}")
    rng = random.Random(seed)
    want_policies = max(1, round(pods / 10)) if policies is None else policies

    # System workloads first, then team apps until the pod count is reached.
    deployments: list[_Deployment] = [
        _Deployment(
            "kube-system",
            "coredns",
            {"k8s-app": "kube-dns"},
            [
                {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                {"name": "metrics", "containerPort": 9153, "protocol": "TCP"},
            ],
            2,
            "registry.k8s.io/coredns/coredns:v1.11.1",
        ),
        _Deployment(
            "monitoring",
            "prometheus",
            {"app": "prometheus"},
            [{"name": "web", "containerPort": 9090, "protocol": "TCP"}],
            1,
            "quay.io/prometheus/prometheus:v2.51.0",
        ),
    ]
    remaining = pods - 3
    n_deploy = math.ceil(remaining / replicas)
    n_ns = max(1, math.ceil(n_deploy / NAMESPACE_DEPLOYMENTS))
    namespaces: list[Manifest] = [
        _namespace("kube-system", {}),
        _namespace("monitoring", {"team": "platform"}),
    ]
    ns_meta: list[tuple[str, str, bool, list[str]]] = []  # name, team, strict, apps
    team_of: list[str] = []
    for k in range(n_ns):
        team = TEAMS[k % len(TEAMS)]
        env = ENVS[(k // len(TEAMS)) % len(ENVS)]
        name = f"{team}-{env}" + (
            f"-{k // (len(TEAMS) * len(ENVS))}" if k >= len(TEAMS) * len(ENVS) else ""
        )
        strict = rng.random() < 0.6
        namespaces.append(_namespace(name, {"team": team, "env": env}))
        ns_meta.append((name, team, strict, []))
        team_of.append(team)
    for d in range(n_deploy):
        k, slot = divmod(d, NAMESPACE_DEPLOYMENTS)
        ns_name, team, _, apps = ns_meta[k]
        app_idx, tier_idx = divmod(slot, len(TIERS))
        app = f"app{app_idx}"
        if tier_idx == 0:
            apps.append(app)
        tier = TIERS[tier_idx]
        count = min(replicas, remaining)
        remaining -= count
        image = {
            "frontend": "nginx:1.25",
            "backend": f"{team}/{app}:1.{d % 7}",
            "db": "postgres:16",
        }[tier]
        deployments.append(
            _Deployment(
                ns_name,
                f"{app}-{tier}",
                {"app": f"{app}-{tier}", "tier": tier, "team": team},
                _container_ports(tier),
                count,
                image,
            )
        )

    # Nodes: about one per PODS_PER_NODE pods, each a /24 of the pod network.
    per_node = max(PODS_PER_NODE, math.ceil(pods / 1024))
    if per_node > MAX_PODS_PER_NODE:
        raise ValueError(f"{pods} pods do not fit in {CLUSTER_CIDR} at {MAX_PODS_PER_NODE} per /24")
    n_nodes = max(1, math.ceil(pods / per_node))
    nodes: list[Manifest] = []
    for i in range(n_nodes):
        node_ip = NODE_NETWORK.network_address + 10 + i
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": f"node-{i:03d}",
                    "labels": {
                        "kubernetes.io/hostname": f"node-{i:03d}",
                        "topology.kubernetes.io/zone": f"zone-{'abc'[i % 3]}",
                    },
                },
                "spec": {"podCIDR": _node_cidr(i), "podCIDRs": [_node_cidr(i)]},
                "status": {"addresses": [{"type": "InternalIP", "address": str(node_ip)}]},
            }
        )

    # Place pods: a seeded shuffle of node slots so replicas spread over nodes.
    slots = [i % n_nodes for i in range(pods)]
    rng.shuffle(slots)
    used = [0] * n_nodes
    pod_objs: list[Manifest] = []
    for dep in deployments:
        rs_hash = _suffix(rng, 10)  # as the ReplicaSet controller spells it (SafeEncodeString)
        for _ in range(dep.replicas):
            node = slots[len(pod_objs)]
            used[node] += 1
            ip = _node_cidr(node).replace(".0/24", f".{used[node] + 1}")
            metadata: Manifest = {
                "name": f"{dep.name}-{rs_hash}-{_suffix(rng, 5)}",
                "namespace": dep.namespace,
                "labels": {**dep.labels, "pod-template-hash": rs_hash},
            }
            if owner_refs:
                metadata["ownerReferences"] = [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": f"{dep.name}-{rs_hash}",
                        "uid": f"00000000-0000-4000-8000-{len(pod_objs):012d}",
                        "controller": True,
                    }
                ]
            pod_objs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": metadata,
                    "spec": {
                        "nodeName": f"node-{node:03d}",
                        "containers": [
                            {
                                "name": dep.name.split("-")[-1],
                                "image": dep.image,
                                "ports": dep.ports,
                            }
                        ],
                    },
                    "status": {
                        "phase": "Running",
                        "hostIP": nodes[node]["status"]["addresses"][0]["address"],
                        "podIP": ip,
                        "podIPs": [{"ip": ip}],
                    },
                }
            )

    # Policies: rank by importance and take round-robin over namespaces so a
    # small budget still gives every namespace its default-deny first.
    ranked: list[list[Manifest]] = []
    all_teams = sorted(set(team_of))
    for ns_name, team, strict, apps in ns_meta:
        wide, per_app = _team_policies(ns_name, team, strict, apps, all_teams)
        ranked.append(wide + per_app)
    chosen: list[Manifest] = []
    depth = max(len(r) for r in ranked)
    for level in range(depth):
        for r in ranked:
            if level < len(r) and len(chosen) < want_policies:
                chosen.append(r[level])
    # More policies than the realistic set: per-deployment variants allowing
    # one more port from one more team, numbered so names stay unique.
    extra = 0
    while len(chosen) < want_policies:
        ns_name, team, _, apps = ns_meta[extra % len(ns_meta)]
        app = apps[(extra // len(ns_meta)) % len(apps)] if apps else "app0"
        chosen.append(
            _policy(
                ns_name,
                f"{app}-extra-{extra}",
                {"matchLabels": {"app": f"{app}-backend"}},
                ingress=[
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"team": all_teams[extra % len(all_teams)]}
                                },
                                "podSelector": {
                                    "matchExpressions": [{"key": "tier", "operator": "Exists"}]
                                },
                            }
                        ],
                        "ports": [{"protocol": "TCP", "port": 8000 + extra % 1000}],
                    }
                ],
            )
        )
        extra += 1
    return nodes + namespaces + pod_objs + chosen


# --- the second shape: applications as teams ship them ---------------------------------------

_SIDECARS: tuple[tuple[str, list[Manifest]], ...] = (
    (
        "envoy",
        [
            {"name": "envoy-admin", "containerPort": 15000},
            {"name": "envoy-http", "containerPort": 15001},
        ],
    ),
    ("exporter", [{"name": "metrics", "containerPort": 9102}]),
    ("log-shipper", []),
)
_EXTRA_LABELS = (
    ("app.kubernetes.io/managed-by", ("Helm", "argocd")),
    ("security.example.com/tier", ("pci", "internal", "public")),
    ("cost-center", ("cc-100", "cc-200", "cc-300", "cc-400")),
    ("sidecar.istio.io/inject", ("true", "false")),
)


def generate_apps(
    pods: int,
    *,
    policies: int | None = None,
    replicas: int = 5,
    seed: int = 0,
    deployments: bool = False,
) -> list[Manifest]:
    """The second shape (issue 13): about 100 pods a namespace, Deployments of ``replicas``
    pods, 6 to 10 labels a pod (the ``app.kubernetes.io`` set, a per-Deployment
    ``pod-template-hash``, a version, and some of a few organisation labels), 2 to 4
    containers a pod with named ports (the app's ``http``/``grpc``, sidecars'
    ``envoy-admin``, ``metrics``...). Policies per namespace: default-deny, DNS egress,
    metrics scraping from ``monitoring``, and per Deployment an ingress from two other
    components of the namespace on a named port and one from a labelled namespace.

    With ``deployments=True`` the Deployments are emitted instead of their pods, for
    sekisho to expand (NCA would invent its own pods for them).
    """
    rng = random.Random(seed)
    n_ns = max(1, math.ceil(pods / 100))
    want_policies = max(1, round(pods / 10)) if policies is None else policies
    namespaces = [
        _namespace("kube-system", {}),
        _namespace("monitoring", {"team": "platform", "purpose": "observability"}),
    ]
    per_node = max(PODS_PER_NODE, math.ceil(pods / 1024))
    n_nodes = max(1, math.ceil(pods / per_node))
    nodes = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": f"node-{i:03d}",
                "labels": {"kubernetes.io/hostname": f"node-{i:03d}"},
            },
            "spec": {"podCIDR": _node_cidr(i), "podCIDRs": [_node_cidr(i)]},
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": str(NODE_NETWORK.network_address + 10 + i)}
                ]
            },
        }
        for i in range(n_nodes)
    ]
    out_pods: list[Manifest] = []
    out_deploys: list[Manifest] = []
    out_policies: list[list[Manifest]] = []
    used = [0] * n_nodes
    made = 0
    components = ("web", "api", "worker", "cache", "gateway", "auth", "search", "billing")
    for k in range(n_ns):
        team = TEAMS[k % len(TEAMS)]
        ns = f"{team}-{k:03d}"
        namespaces.append(
            _namespace(ns, {"team": team, "env": ENVS[k % len(ENVS)], "tenant": f"t{k % 7}"})
        )
        comps: list[str] = []
        ns_pods = min(100, pods - made) if k < n_ns - 1 else pods - made
        d = 0
        while ns_pods > 0:
            comp = components[d % len(components)] + (
                str(d // len(components)) if d >= len(components) else ""
            )
            comps.append(comp)
            count = min(replicas, ns_pods)
            ns_pods -= count
            d += 1
            labels = {
                "app.kubernetes.io/name": comp,
                "app.kubernetes.io/instance": f"{ns}-{comp}",
                "app.kubernetes.io/component": ("frontend", "backend", "data")[d % 3],
                "app.kubernetes.io/part-of": team,
                "app.kubernetes.io/version": f"1.{rng.randrange(20)}.{rng.randrange(10)}",
            }
            for key, values in _EXTRA_LABELS[: rng.randrange(len(_EXTRA_LABELS) + 1)]:
                labels[key] = rng.choice(values)
            containers = [
                {
                    "name": comp[:50],
                    "image": f"registry.example.com/{team}/{comp}:1.{d}",
                    "ports": [
                        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                        {"name": "grpc", "containerPort": 9000 + d % 3, "protocol": "TCP"},
                    ],
                }
            ]
            for name, ports in _SIDECARS[: 1 + rng.randrange(len(_SIDECARS))]:
                containers.append(
                    {"name": name, "image": f"registry.example.com/{name}:2", "ports": ports}
                )
            rs_hash = _suffix(rng, 10)
            if deployments:
                out_deploys.append(
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "metadata": {"name": comp, "namespace": ns, "labels": dict(labels)},
                        "spec": {
                            "replicas": count,
                            "selector": {
                                "matchLabels": {"app.kubernetes.io/instance": f"{ns}-{comp}"}
                            },
                            "template": {
                                "metadata": {"labels": labels},
                                "spec": {"containers": containers},
                            },
                        },
                    }
                )
                made += count
                continue
            for _ in range(count):
                node = made % n_nodes
                used[node] += 1
                ip = _node_cidr(node).replace(".0/24", f".{used[node] + 1}")
                out_pods.append(
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {
                            "name": f"{comp}-{rs_hash}-{_suffix(rng, 5)}",
                            "namespace": ns,
                            "labels": {**labels, "pod-template-hash": rs_hash},
                        },
                        "spec": {"nodeName": f"node-{node:03d}", "containers": containers},
                        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
                    }
                )
                made += 1
        wide = [
            _policy(ns, "default-deny", {}, types=("Ingress", "Egress")),
            _policy(
                ns,
                "allow-dns",
                {},
                egress=[
                    {
                        "to": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                                }
                            }
                        ],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    }
                ],
                types=("Egress",),
            ),
            _policy(
                ns,
                "allow-scrape",
                {},
                ingress=[
                    {
                        "from": [
                            {"namespaceSelector": {"matchLabels": {"purpose": "observability"}}}
                        ],
                        "ports": [{"port": "metrics"}, {"port": "envoy-admin"}],
                    }
                ],
            ),
        ]
        per = []
        for i, comp in enumerate(comps):
            callers = [comps[(i + 1) % len(comps)], comps[(i + 2) % len(comps)]]
            per.append(
                _policy(
                    ns,
                    f"{comp}-ingress",
                    {"matchLabels": {"app.kubernetes.io/name": comp}},
                    ingress=[
                        {
                            "from": [
                                {
                                    "podSelector": {
                                        "matchExpressions": [
                                            {
                                                "key": "app.kubernetes.io/name",
                                                "operator": "In",
                                                "values": sorted(set(callers)),
                                            }
                                        ]
                                    }
                                },
                                {
                                    "namespaceSelector": {
                                        "matchLabels": {"tenant": f"t{(k + i) % 7}"}
                                    },
                                    "podSelector": {
                                        "matchLabels": {"app.kubernetes.io/component": "frontend"}
                                    },
                                },
                            ],
                            "ports": [{"port": "http"}, {"port": "grpc"}],
                        }
                    ],
                )
            )
        out_policies.append(wide + per)
    chosen: list[Manifest] = []
    depth = max((len(r) for r in out_policies), default=0)
    for level in range(depth):
        for r in out_policies:
            if level < len(r) and len(chosen) < want_policies:
                chosen.append(r[level])
    return nodes + namespaces + (out_deploys if deployments else out_pods) + chosen


def write_by_namespace(objects: Iterable[Manifest], directory: str | Path) -> list[Path]:
    """Nodes and namespaces in ``00-cluster.yaml``, then a file per namespace (its pods or
    Deployments and its policies), as a GitOps repository lays them out."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[Manifest]] = {}
    for obj in objects:
        ns = obj.get("metadata", {}).get("namespace")
        groups.setdefault(f"ns-{ns}" if ns else "00-cluster", []).append(obj)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    paths = []
    for name in sorted(groups):
        path = out / f"{name}.yaml"
        with path.open("w", encoding="utf-8") as fh:
            yaml.dump_all(
                groups[name], fh, Dumper=dumper, sort_keys=False, default_flow_style=False
            )
        paths.append(path)
    return paths


def _chunks(items: list[Manifest], size: int | None) -> Iterator[list[Manifest]]:
    if size is None or size <= 0:
        yield items
        return
    for start in range(0, len(items), size):
        yield items[start : start + size]


def write(
    objects: Iterable[Manifest],
    directory: str | Path,
    *,
    per_file: int | None = 2000,
    fmt: str = "yaml",
    one_file: bool = False,
) -> list[Path]:
    """Write ``objects`` under ``directory``; return the paths.

    One group of files per kind (``nodes``, ``namespaces``, ``pods``,
    ``policies``), at most ``per_file`` objects each (None: one file per kind).
    ``fmt="yaml"``: multi-document YAML; ``fmt="json"``: one ``kind: List`` per
    file, as ``kubectl get -o json`` prints it (much faster to parse).
    ``one_file=True``: everything in ``cluster.<fmt>``, namespaces before pods.
    NCA needs that: it reads a directory's files in directory order and a pod read
    before its Namespace object keeps an unlabeled namespace (its namespace
    selectors then miss), so split files make NCA's answer depend on the file system.
    """
    if fmt not in ("yaml", "json"):
        raise ValueError(f"fmt must be 'yaml' or 'json', got {fmt!r}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[Manifest]] = {}
    for obj in objects:
        groups.setdefault(str(obj.get("kind", "Other")), []).append(obj)
    order = {"Node": 0, "Namespace": 1, "Pod": 2, "NetworkPolicy": 3}
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    paths: list[Path] = []
    kinds = sorted(groups, key=lambda k: (order.get(k, 9), k))
    if one_file:
        groups = {"cluster": [obj for kind in kinds for obj in groups[kind]]}
        kinds, per_file = ["cluster"], None
    for kind in kinds:
        plural = {"NetworkPolicy": "networkpolicies"}.get(kind, kind.lower() + "s")
        for n, chunk in enumerate(_chunks(groups[kind], per_file)):
            path = out / (
                f"cluster.{fmt}" if one_file else f"{order.get(kind, 9)}0-{plural}-{n:03d}.{fmt}"
            )
            with path.open("w", encoding="utf-8") as fh:
                if fmt == "json":
                    json.dump({"apiVersion": "v1", "kind": "List", "items": chunk}, fh, indent=1)
                else:
                    yaml.dump_all(
                        chunk, fh, Dumper=dumper, sort_keys=False, default_flow_style=False
                    )
            paths.append(path)
    return paths


def _calico(kind: str, name: str, namespace: str | None, spec: Manifest) -> Manifest:
    meta: Manifest = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    return {"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": meta, "spec": spec}


def _calico_namespace_policies(ns: str, team: str, env: str, k: int) -> list[Manifest]:
    """A team namespace's Calico NetworkPolicies, most important first (no tiers)."""
    other = TEAMS[(TEAMS.index(team) + 1 + k) % len(TEAMS)]
    return [
        # Databases: their backend only; everything else denied explicitly (order 50).
        _calico(
            "NetworkPolicy",
            "db-ingress",
            ns,
            {
                "order": 50,
                "selector": "tier == 'db'",
                "types": ["Ingress"],
                "ingress": [
                    {
                        "action": "Allow",
                        "protocol": "TCP",
                        "source": {"selector": "tier == 'backend'"},
                        "destination": {"ports": [5432]},
                    },
                    {"action": "Deny"},
                ],
            },
        ),
        # Apps: Deny from dev namespaces first, then allow callers on ports and a range.
        _calico(
            "NetworkPolicy",
            "app-ingress",
            ns,
            {
                "order": 100 + k % 7,
                "selector": "tier in {'frontend', 'backend'}",
                "ingress": [
                    {
                        "action": "Deny",
                        "protocol": "TCP",
                        "source": {"namespaceSelector": "env == 'dev'"},
                        "destination": {"ports": ["50000:50100"]},
                    },
                    {
                        "action": "Allow",
                        "protocol": "TCP",
                        "source": {"selector": "tier == 'frontend' || app == 'app0-backend'"},
                        "destination": {"ports": [50051, "8000:8100"]},
                    },
                    {
                        "action": "Allow",
                        "protocol": "TCP",
                        "source": {
                            "namespaceSelector": f"team in {{'{team}', '{other}'}} && env != 'dev'",
                            "selector": "has(tier) && tier != 'db'",
                        },
                        "destination": {"ports": [8080]},
                    },
                    {
                        "action": "Allow",
                        "protocol": "TCP",
                        "source": {"namespaceSelector": "team == 'platform'"},
                        "destination": {"ports": ["metrics"]},
                    },
                ],
            },
        ),
        # Egress: DNS, the partner network (nets), same-team backends; then denied.
        _calico(
            "NetworkPolicy",
            "egress",
            ns,
            {
                "order": 200,
                "selector": "!has(db-access) && tier != 'db'",
                "types": ["Egress"],
                "egress": [
                    {
                        "action": "Allow",
                        "protocol": "UDP",
                        "destination": {
                            "namespaceSelector": "kubernetes.io/metadata.name == 'kube-system'",
                            "selector": "k8s-app == 'kube-dns'",
                            "ports": [53],
                        },
                    },
                    {
                        "action": "Allow",
                        "protocol": "TCP",
                        "destination": {"nets": ["203.0.113.0/24"], "ports": [443]},
                    },
                    {
                        "action": "Deny",
                        "protocol": "TCP",
                        "destination": {"selector": "tier == 'db'", "ports": [5432]},
                    },
                    {
                        "action": "Allow",
                        "protocol": "TCP",
                        "destination": {
                            "namespaceSelector": f"team == '{team}'",
                            "selector": "has(tier)",
                        },
                    },
                    {
                        "action": "Allow",
                        "destination": {"selector": "tier == 'db'"},
                    },
                ],
            },
        ),
        # No order: last; frontends of prod also take TCP from anywhere else on 8080.
        _calico(
            "NetworkPolicy",
            "frontend-open",
            ns,
            {
                "selector": "tier == 'frontend'",
                "types": ["Ingress"],
                "ingress": [
                    {
                        "action": "Allow" if env == "prod" else "Deny",
                        "protocol": "TCP",
                        "destination": {"ports": [8080]},
                    }
                ],
            },
        ),
    ]


def generate_calico(
    pods: int, *, policies: int | None = None, replicas: int = 5, seed: int = 0
) -> list[Manifest]:
    """The first shape's nodes, namespaces and pods with Calico v3 policies instead.

    No tiers (everything in the default tier, which NCA reads): GlobalNetworkPolicies
    of low order (a Deny of dev callers into databases, DNS and Prometheus for
    every app), then per team namespace NetworkPolicies with orders, Allow and
    Deny, selector expressions (``==``, ``!=``, ``in``, ``has``, ``!``, ``&&``,
    ``||``), namespace selectors, nets, numbered, ranged and named ports, and a
    policy without order (last). ``policies`` (default ~pods/10) counts all of them.
    """
    base = [o for o in generate(pods, policies=0, replicas=replicas, seed=seed)]
    base = [o for o in base if o["kind"] != "NetworkPolicy"]
    want = max(1, round(pods / 10)) if policies is None else policies
    gnps = [
        _calico(
            "GlobalNetworkPolicy",
            "dev-never-reaches-db",
            None,
            {
                "order": 10,
                "selector": "tier == 'db'",
                "types": ["Ingress"],
                "ingress": [
                    {"action": "Deny", "source": {"namespaceSelector": "env == 'dev'"}},
                ],
            },
        ),
        _calico(
            "GlobalNetworkPolicy",
            "monitoring",
            None,
            {
                "order": 20,
                "selector": "has(tier)",
                "types": ["Ingress"],
                "ingress": [
                    {
                        "action": "Allow",
                        "protocol": "TCP",
                        "source": {
                            "namespaceSelector": "team == 'platform'",
                            "selector": "app == 'prometheus'",
                        },
                        "destination": {"ports": [9090]},
                    },
                ],
            },
        ),
        _calico(
            "GlobalNetworkPolicy",
            "dns",
            None,
            {
                "order": 30,
                "selector": "k8s-app == 'kube-dns'",
                "types": ["Ingress"],
                "ingress": [
                    {"action": "Allow", "protocol": "UDP", "destination": {"ports": [53]}},
                    {"action": "Allow", "protocol": "TCP", "destination": {"ports": [53]}},
                ],
            },
        ),
    ]
    ranked = []
    for k, ns in enumerate(o for o in base if o["kind"] == "Namespace"):
        labels = ns["metadata"].get("labels", {})
        if "env" in labels:
            ranked.append(
                _calico_namespace_policies(ns["metadata"]["name"], labels["team"], labels["env"], k)
            )
    chosen = gnps[:want]
    for level in range(max((len(r) for r in ranked), default=0)):
        for r in ranked:
            if level < len(r) and len(chosen) < want:
                chosen.append(r[level])
    return base + chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pods", type=int, required=True, help="number of pods (exact)")
    parser.add_argument(
        "--policies", type=int, default=None, help="number of policies (default pods/10)"
    )
    parser.add_argument("--replicas", type=int, default=5, help="pods per deployment")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--owner-refs", action="store_true", help="give pods ownerReferences like live pods"
    )
    parser.add_argument(
        "--per-file", type=int, default=2000, help="objects per YAML file (0: one file per kind)"
    )
    parser.add_argument("--format", choices=("yaml", "json"), default="yaml", help="file format")
    parser.add_argument(
        "--one-file", action="store_true", help="everything in one file (what NCA needs)"
    )
    parser.add_argument("--out", required=True, help="directory to write the YAML files into")
    parser.add_argument(
        "--shape",
        choices=("tiers", "apps", "calico"),
        default="tiers",
        help="tiers: the first shape; apps: the second (see generate_apps); "
        "calico: the first with Calico v3 policies (see generate_calico)",
    )
    parser.add_argument(
        "--deployments", action="store_true", help="apps shape: Deployments instead of pods"
    )
    parser.add_argument(
        "--by-namespace", action="store_true", help="a YAML file per namespace (apps shape)"
    )
    args = parser.parse_args(argv)
    if args.shape == "apps":
        objs = generate_apps(
            args.pods,
            policies=args.policies,
            replicas=args.replicas,
            seed=args.seed,
            deployments=args.deployments,
        )
    elif args.shape == "calico":
        objs = generate_calico(
            args.pods, policies=args.policies, replicas=args.replicas, seed=args.seed
        )
    else:
        objs = generate(
            args.pods,
            policies=args.policies,
            replicas=args.replicas,
            seed=args.seed,
            owner_refs=args.owner_refs,
        )
    if args.by_namespace:
        paths = write_by_namespace(objs, args.out)
    else:
        paths = write(
            objs, args.out, per_file=args.per_file or None, fmt=args.format, one_file=args.one_file
        )
    kinds: dict[str, int] = {}
    for obj in objs:
        kinds[obj["kind"]] = kinds.get(obj["kind"], 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in kinds.items())
    print(f"wrote {summary} to {len(paths)} files in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
