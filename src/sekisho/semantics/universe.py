"""What selectors can select, and which addresses a set holds: the entities of a cluster.

The program's sets are definitions (a selector, nets, a named port); this
module resolves them against one cluster, one address at a time, for the walk
(:mod:`sekisho.semantics.verdict`). The matrix engine resolves the same sets per
identity and the renderer per node; all three read the entity labels from
:mod:`sekisho.semantics.labels`, so they agree by construction.

Entities: every pod with its own network namespace (a workload endpoint; a
hostNetwork pod is its node and is none), and every node (selectable only by
the cluster-wide APIs' ``nodes`` peers).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING

from sekisho.model.types import Cluster, ContainerPort, Pod
from sekisho.records import Record, set_field
from sekisho.selectors.expr import matches
from sekisho.semantics.labels import ORCHESTRATOR, namespace_part, workload_labels
from sekisho.semantics.program import (
    EntityKind,
    IPNetwork,
    NamedPortSet,
    NetSet,
    PortMatch,
    SelectorSet,
    protocol_name,
)

if TYPE_CHECKING:
    from sekisho.model.calico import HostEndpoint

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Entity(Record, uncompared=("labels", "own_labels")):
    """Something a selector can select, with the labels selectors see and its addresses."""

    __slots__ = ("ips", "key", "kind", "labels", "nets", "own_labels", "ports")

    kind: EntityKind
    key: str
    """``ns/name`` of a pod, a node's name, a network set's name."""
    labels: Mapping[str, str]
    own_labels: Mapping[str, str]
    """The object's own labels (for explanations)."""
    ips: tuple[IPAddress, ...]
    nets: tuple[IPNetwork, ...]
    """A network set's nets (it has no addresses of its own)."""
    ports: tuple[ContainerPort, ...]

    def __init__(
        self,
        kind: EntityKind,
        key: str,
        labels: Mapping[str, str],
        own_labels: Mapping[str, str],
        ips: tuple[IPAddress, ...] = (),
        nets: tuple[IPNetwork, ...] = (),
        ports: tuple[ContainerPort, ...] = (),
    ) -> None:
        set_field(self, "kind", kind)
        set_field(self, "key", key)
        set_field(self, "labels", labels)
        set_field(self, "own_labels", own_labels)
        set_field(self, "ips", ips)
        set_field(self, "nets", nets)
        set_field(self, "ports", ports)

    def named_port(self, name: str, protocol: str) -> int | None:
        for p in self.ports:
            if p.name == name and p.protocol == protocol:
                return p.port
        return None


def pod_entity(
    pod: Pod,
    namespace_labels: Mapping[str, str],
    service_account_labels: Mapping[str, str] | None = None,
    *,
    ns_part: Mapping[str, str] | None = None,
    shared: dict[tuple[object, ...], Mapping[str, str]] | None = None,
) -> Entity:
    """The workload endpoint of a pod (the caller checks it is not hostNetwork).

    ``ns_part``: :func:`~sekisho.semantics.labels.namespace_part` of its namespace, when
    the caller keeps it. ``shared``: a dict the caller keeps for one snapshot of the
    namespaces and service accounts, in which pods with equal labels get one label map
    (read-only), made once."""
    key: tuple[object, ...] | None = None
    labels = None
    if shared is not None:
        key = (pod.namespace, pod.service_account, *pod.labels.items())
        labels = shared.get(key)
    if labels is None:
        labels = workload_labels(
            pod.labels,
            pod.namespace,
            namespace_labels,
            pod.service_account,
            service_account_labels,
            ns_part=ns_part,
        )
        if shared is not None and key is not None:
            shared[key] = labels
    return Entity(
        kind="workload",
        key=pod.key,
        labels=labels,
        own_labels=pod.labels,
        ips=pod.ips,
        ports=pod.ports,
    )


def network_set_entities(cluster: Cluster) -> list[Entity]:
    """NetworkSets and GlobalNetworkSets as entities with the labels selectors see.

    A namespaced NetworkSet also carries ``projectcalico.org/namespace`` and its
    namespace's ``pcns.`` labels (so a rule's namespace scoping and
    ``namespaceSelector`` reach it), but not the orchestrator label: Kubernetes
    policies never select network sets.
    """
    if cluster.calico is None:
        return []
    out: list[Entity] = []
    for ns in cluster.calico.network_sets:
        labels = dict(ns.labels)
        if ns.namespace is not None:
            part = namespace_part(ns.namespace, cluster.namespace_labels(ns.namespace))
            part.pop(ORCHESTRATOR, None)
            labels.update(part)
        out.append(Entity("networkset", ns.key, labels, ns.labels, (), ns.nets))
    return out


def host_entities(cluster: Cluster) -> list[Entity]:
    """HostEndpoints as entities: their own labels, expected IPs and named ports."""
    if cluster.calico is None:
        return []
    return [
        Entity(
            "host",
            h.name,
            h.labels,
            h.labels,
            h.expected_ips,
            (),
            tuple(ContainerPort(p.port, p.protocol, p.name) for p in h.ports),  # type: ignore[arg-type]
        )
        for h in cluster.calico.host_endpoints
    ]


class Universe:
    """The entities of one cluster, indexed by address."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.netsets: list[Entity] = network_set_entities(cluster)
        """Network sets (their nets; no addresses of their own)."""
        self.hosts: list[Entity] = host_entities(cluster)
        """Host endpoints (their expected IPs and named ports)."""
        self._declared: dict[tuple[str, int], frozenset[int]] = {}

    @cached_property
    def entities(self) -> tuple[Entity, ...]:
        cluster = self.cluster
        entities: list[Entity] = []
        accounts = cluster.calico.service_account_labels() if cluster.calico else {}
        for pod in cluster.pods:
            if pod.host_network:
                continue
            entities.append(
                pod_entity(
                    pod,
                    cluster.namespace_labels(pod.namespace),
                    accounts.get((pod.namespace, pod.service_account)),
                )
            )
        for node in cluster.nodes:
            entities.append(Entity("node", node.name, node.labels, node.labels, node.ips))
        entities.extend(self.hosts)
        entities.extend(self.netsets)
        return tuple(entities)

    @cached_property
    def by_key(self) -> dict[tuple[str, str], Entity]:
        return {(e.kind, e.key): e for e in self.entities}

    @cached_property
    def by_ip(self) -> dict[IPAddress, list[Entity]]:
        out: dict[IPAddress, list[Entity]] = {}
        for e in self.entities:
            for ip in e.ips:
                out.setdefault(ip, []).append(e)
        return out

    def owners(self, ip: IPAddress) -> list[Entity]:
        return self.by_ip.get(ip, [])

    def in_selector(self, s: SelectorSet, ip: IPAddress) -> bool:
        """Whether ``ip`` is in the set: an address of a selected entity, or inside the
        nets of a selected network set."""
        for e in self.owners(ip):
            if e.kind in s.kinds and matches(s.selector, e.labels):
                return True
        if "networkset" in s.kinds:
            for e in self.netsets:
                if matches(s.selector, e.labels) and any(
                    ip.version == n.version and ip in n for n in e.nets
                ):
                    return True
        return False

    def in_named_port(self, s: NamedPortSet, ip: IPAddress, protocol: int, port: int) -> bool:
        """Whether (``ip``, ``protocol``, ``port``) is in the set of a named port."""
        if protocol != s.protocol:
            return False
        name = protocol_name(s.protocol)
        for e in self.owners(ip):
            if s.within is not None and not (
                e.kind in s.within.kinds and matches(s.within.selector, e.labels)
            ):
                continue
            if s.within is None and e.kind not in ("workload", "host"):
                continue
            if e.named_port(s.name, name) == port:
                return True
        return False

    def declared_numbers(self, pm: PortMatch) -> frozenset[int]:
        """Every number a workload or host endpoint declares under one of ``pm``'s names
        (for its protocol): what :func:`~sekisho.semantics.program.source_ports_cover`
        reads, whatever the names' scopes."""
        out: set[int] = set()
        for s in pm.named:
            got = self._declared.get((s.name, s.protocol))
            if got is None:
                name = protocol_name(s.protocol)
                got = frozenset(
                    n
                    for e in self.entities
                    if e.kind in ("workload", "host")
                    and (n := e.named_port(s.name, name)) is not None
                )
                self._declared[(s.name, s.protocol)] = got
            out |= got
        return frozenset(out)

    def in_ports(self, pm: PortMatch, ip: IPAddress, protocol: int, port: int | None) -> bool:
        if port is None:
            return False
        if any(a <= port <= b for a, b in pm.ranges):
            return True
        return any(self.in_named_port(n, ip, protocol, port) for n in pm.named)

    @staticmethod
    def in_nets(s: NetSet, ip: IPAddress) -> bool:
        return s.contains(ip)


def node_host_endpoint(cluster: Cluster, node: str, ip: IPAddress | None) -> HostEndpoint | None:
    """The host endpoint of ``node`` that polices the traffic of its address ``ip``.

    sekisho's nodes have one interface, with their InternalIP: the host endpoint whose
    ``expectedIPs`` hold that address, else one named for an interface, else the node's
    all-interfaces (``*``) one.
    """
    if cluster.calico is None or not cluster.calico.host_endpoints:
        return None
    heps = [h for h in cluster.calico.host_endpoints if h.node == node]
    if not heps:
        return None
    for h in heps:
        if ip is not None and ip in h.expected_ips:
            return h
    named = [h for h in heps if h.interface not in (None, "*")]
    return (named or heps)[0]


_last: tuple[Cluster, Universe] | None = None


def universe_of(cluster: Cluster) -> Universe:
    """The entities of ``cluster`` (kept for the same snapshot object)."""
    global _last
    if _last is not None and _last[0] is cluster:
        return _last[1]
    u = Universe(cluster)
    _last = (cluster, u)
    return u
