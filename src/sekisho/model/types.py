"""The cluster snapshot: frozen, normalized objects with the API server's defaults applied.

Raw manifests stay raw until :mod:`sekisho.model.parse` turns them into these.
Everything downstream (selectors, semantics, render, dataplane, lab) reads only
these types. Missing-versus-empty lists have been turned into explicit meaning:
``Rule.peers is None`` means "every peer", ``Rule.ports is None`` means "every
port", which is what the API reference says for both a missing and an empty list.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Literal, TypeVar

from sekisho.errors import Problem
from sekisho.records import Record, set_field

if TYPE_CHECKING:
    from sekisho.model.calico import CalicoResources
    from sekisho.model.npa import ClusterPolicy

Protocol = Literal["TCP", "UDP", "SCTP"]
"""Protocols a NetworkPolicy port or a container port can name."""

_T = TypeVar("_T")

PROTOCOLS: tuple[Protocol, ...] = ("TCP", "UDP", "SCTP")

FlowProtocol = Literal["TCP", "UDP", "SCTP", "ICMP"]
"""Protocols a flow can carry; ICMP is matched only by rules without ports."""

Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]


class Source(Record):
    """Where an object was read from, for error messages and explanations."""

    __slots__ = ("file", "line")

    file: str
    """Path as the user gave it (or ``<stdin>``)."""
    line: int
    """1-based line of the object's first line in ``file`` (0 when unknown)."""

    def __init__(self, file: str, line: int) -> None:
        set_field(self, "file", file)
        set_field(self, "line", line)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


UNKNOWN_SOURCE = Source("<built>", 0)

DEFAULT_CLUSTER_CIDR = ipaddress.IPv4Network("10.244.0.0/16")
"""Where nodes without a podCIDR get one (the seed's pod network)."""


class Requirement(Record):
    """One ``matchExpressions`` entry (``matchLabels`` entries become ``In`` with one value)."""

    __slots__ = ("key", "operator", "values")

    key: str
    operator: Operator
    values: tuple[str, ...]
    """Sorted and de-duplicated; empty for ``Exists`` and ``DoesNotExist``."""

    def __init__(self, key: str, operator: Operator, values: tuple[str, ...] = ()) -> None:
        set_field(self, "key", key)
        set_field(self, "operator", operator)
        set_field(self, "values", values)

    def matches(self, labels: dict[str, str]) -> bool:
        if self.operator == "In":
            return labels.get(self.key) in self.values if self.key in labels else False
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels

    def __str__(self) -> str:
        if self.operator in ("Exists", "DoesNotExist"):
            return f"{self.key} {self.operator}"
        return f"{self.key} {self.operator} [{', '.join(self.values)}]"


class LabelSelector(Record):
    """A Kubernetes label selector: the AND of its requirements; empty selects everything."""

    __slots__ = ("match_expressions", "match_labels")

    match_labels: tuple[tuple[str, str], ...]
    """Sorted ``(key, value)`` pairs."""
    match_expressions: tuple[Requirement, ...]
    """In manifest order."""

    def __init__(
        self,
        match_labels: tuple[tuple[str, str], ...] = (),
        match_expressions: tuple[Requirement, ...] = (),
    ) -> None:
        set_field(self, "match_labels", match_labels)
        set_field(self, "match_expressions", match_expressions)

    @property
    def requirements(self) -> tuple[Requirement, ...]:
        """Every condition, ``matchLabels`` first, as requirements."""
        return (
            tuple(Requirement(k, "In", (v,)) for k, v in self.match_labels) + self.match_expressions
        )

    @property
    def is_empty(self) -> bool:
        """An empty selector (``{}``) selects every object."""
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: dict[str, str]) -> bool:
        for key, value in self.match_labels:
            if labels.get(key) != value:
                return False
        return all(req.matches(labels) for req in self.match_expressions)

    def canonical(self) -> str:
        """A stable string that is equal for selectors that select the same objects syntactically."""
        reqs = sorted({(r.key, r.operator, r.values) for r in self.requirements})
        return (
            " && ".join(f"{k} {op}" + (f" ({','.join(vs)})" if vs else "") for k, op, vs in reqs)
            or "all()"
        )

    def __str__(self) -> str:
        if self.is_empty:
            return "{} (everything)"
        parts = [f"{k}={v}" for k, v in self.match_labels]
        parts += [str(r) for r in self.match_expressions]
        return ", ".join(parts)


class IPBlock(Record):
    """``ipBlock``: a CIDR minus the ``except`` CIDRs, each strictly inside it."""

    __slots__ = ("cidr", "excepts")

    cidr: ipaddress.IPv4Network | ipaddress.IPv6Network
    excepts: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    def __init__(
        self,
        cidr: ipaddress.IPv4Network | ipaddress.IPv6Network,
        excepts: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (),
    ) -> None:
        set_field(self, "cidr", cidr)
        set_field(self, "excepts", excepts)

    def contains(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if ip.version != self.cidr.version or ip not in self.cidr:
            return False
        return not any(ip in ex for ex in self.excepts)

    def __str__(self) -> str:
        if not self.excepts:
            return str(self.cidr)
        return f"{self.cidr} except {', '.join(map(str, self.excepts))}"


class Peer(Record):
    """One entry of ``from`` or ``to``.

    Exactly one of two shapes: ``ip_block`` alone, or at least one selector.
    ``pod_selector`` alone means pods in the policy's namespace;
    ``namespace_selector`` alone means every pod of the selected namespaces;
    both mean pods matching ``pod_selector`` inside the selected namespaces.
    """

    __slots__ = ("ip_block", "namespace_selector", "pod_selector")

    pod_selector: LabelSelector | None
    namespace_selector: LabelSelector | None
    ip_block: IPBlock | None

    def __init__(
        self,
        pod_selector: LabelSelector | None = None,
        namespace_selector: LabelSelector | None = None,
        ip_block: IPBlock | None = None,
    ) -> None:
        set_field(self, "pod_selector", pod_selector)
        set_field(self, "namespace_selector", namespace_selector)
        set_field(self, "ip_block", ip_block)


class PolicyPort(Record):
    """One entry of ``ports``: protocol (defaulted to TCP) and optional port or range."""

    __slots__ = ("end_port", "port", "protocol")

    protocol: Protocol
    port: int | str | None
    """A number, a named container port, or None for every port of ``protocol``."""
    end_port: int | None
    """Inclusive end of a range starting at the numeric ``port``."""

    def __init__(
        self, protocol: Protocol = "TCP", port: int | str | None = None, end_port: int | None = None
    ) -> None:
        set_field(self, "protocol", protocol)
        set_field(self, "port", port)
        set_field(self, "end_port", end_port)

    def __str__(self) -> str:
        if self.port is None:
            return f"{self.protocol}/*"
        if self.end_port is not None:
            return f"{self.protocol}/{self.port}-{self.end_port}"
        return f"{self.protocol}/{self.port}"


class Rule(Record):
    """One ingress or egress rule."""

    __slots__ = ("peers", "ports")

    peers: tuple[Peer, ...] | None
    """``from``/``to``; None when missing or empty, which matches every peer."""
    ports: tuple[PolicyPort, ...] | None
    """None when missing or empty, which matches every port and protocol."""

    def __init__(
        self, peers: tuple[Peer, ...] | None = None, ports: tuple[PolicyPort, ...] | None = None
    ) -> None:
        set_field(self, "peers", peers)
        set_field(self, "ports", ports)


class NetworkPolicy(Record, uncompared=("source",)):
    """A ``networking.k8s.io/v1`` NetworkPolicy with defaults applied."""

    __slots__ = (
        "affects_egress",
        "affects_ingress",
        "egress",
        "ingress",
        "name",
        "namespace",
        "pod_selector",
        "source",
    )

    namespace: str
    name: str
    pod_selector: LabelSelector
    ingress: tuple[Rule, ...]
    egress: tuple[Rule, ...]
    affects_ingress: bool
    """``Ingress`` in ``policyTypes`` (explicit, or inferred: always)."""
    affects_egress: bool
    """``Egress`` in ``policyTypes`` (explicit, or inferred: when egress rules exist)."""
    source: Source

    def __init__(
        self,
        namespace: str,
        name: str,
        pod_selector: LabelSelector,
        ingress: tuple[Rule, ...] = (),
        egress: tuple[Rule, ...] = (),
        affects_ingress: bool = True,
        affects_egress: bool = False,
        source: Source = UNKNOWN_SOURCE,
    ) -> None:
        set_field(self, "namespace", namespace)
        set_field(self, "name", name)
        set_field(self, "pod_selector", pod_selector)
        set_field(self, "ingress", ingress)
        set_field(self, "egress", egress)
        set_field(self, "affects_ingress", affects_ingress)
        set_field(self, "affects_egress", affects_egress)
        set_field(self, "source", source)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class ContainerPort(Record):
    """A declared container port (names are unique within a pod)."""

    __slots__ = ("name", "port", "protocol")

    port: int
    protocol: Protocol
    name: str | None

    def __init__(self, port: int, protocol: Protocol = "TCP", name: str | None = None) -> None:
        set_field(self, "port", port)
        set_field(self, "protocol", protocol)
        set_field(self, "name", name)


class Namespace(Record, uncompared=("source",), unhashed=("labels",)):
    """A namespace; ``labels`` always include ``kubernetes.io/metadata.name``."""

    __slots__ = ("implicit", "labels", "name", "source")

    name: str
    labels: dict[str, str]
    implicit: bool
    """True when no Namespace object was given and pods or policies only mention it."""
    source: Source

    def __init__(
        self,
        name: str,
        labels: dict[str, str] | None = None,
        implicit: bool = False,
        source: Source = UNKNOWN_SOURCE,
    ) -> None:
        set_field(self, "name", name)
        set_field(self, "labels", {} if labels is None else labels)
        set_field(self, "implicit", implicit)
        set_field(self, "source", source)


class Node(Record, uncompared=("source",), unhashed=("labels",)):
    """A node: its InternalIP on the node network and the pod CIDR it owns.

    A dual-stack node has a second InternalIP and a second pod CIDR, of the other
    family (``status.addresses``, ``spec.podCIDRs``: "at most one value for each
    of IPv4 and IPv6"); :attr:`internal_ip` and :attr:`pod_cidr` are the first.
    """

    __slots__ = (
        "internal_ip",
        "labels",
        "name",
        "other_ips",
        "other_pod_cidrs",
        "pod_cidr",
        "schedulable",
        "source",
    )

    name: str
    internal_ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    pod_cidr: ipaddress.IPv4Network | ipaddress.IPv6Network
    schedulable: bool
    labels: dict[str, str]
    source: Source
    other_ips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]
    """InternalIPs of the other family (at most one)."""
    other_pod_cidrs: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    """``spec.podCIDRs`` after the first: the other family's pod CIDR (at most one)."""

    def __init__(
        self,
        name: str,
        internal_ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
        pod_cidr: ipaddress.IPv4Network | ipaddress.IPv6Network,
        schedulable: bool = True,
        labels: dict[str, str] | None = None,
        source: Source = UNKNOWN_SOURCE,
        other_ips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = (),
        other_pod_cidrs: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (),
    ) -> None:
        set_field(self, "name", name)
        set_field(self, "internal_ip", internal_ip)
        set_field(self, "pod_cidr", pod_cidr)
        set_field(self, "schedulable", schedulable)
        set_field(self, "labels", {} if labels is None else labels)
        set_field(self, "source", source)
        set_field(self, "other_ips", other_ips)
        set_field(self, "other_pod_cidrs", other_pod_cidrs)

    @property
    def ips(self) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
        """Every InternalIP: :attr:`internal_ip` first."""
        return (self.internal_ip, *self.other_ips)

    @property
    def pod_cidrs(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """Every pod CIDR: :attr:`pod_cidr` first."""
        return (self.pod_cidr, *self.other_pod_cidrs)

    def ip_of(self, family: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """Its InternalIP of ``family`` (4 or 6), if it has one."""
        return next((ip for ip in self.ips if ip.version == family), None)

    def pod_cidr_of(self, family: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        """Its pod CIDR of ``family`` (4 or 6), if it has one."""
        return next((net for net in self.pod_cidrs if net.version == family), None)


class Pod(Record, uncompared=("source",), unhashed=("labels",)):
    """A pod (given directly, or expanded from a workload controller)."""

    __slots__ = (
        "host_network",
        "ip",
        "labels",
        "name",
        "namespace",
        "node",
        "other_ips",
        "ports",
        "service_account",
        "source",
        "workload",
    )

    namespace: str
    name: str
    labels: dict[str, str]
    node: str | None
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    """Its IP (for a hostNetwork pod, its node's IP); None only before IPAM ran."""
    host_network: bool
    ports: tuple[ContainerPort, ...]
    workload: str | None
    """``Kind/name`` of the controller it was expanded from, if any."""
    source: Source
    service_account: str
    """``serviceAccountName``; Calico selects on it (``serviceAccountSelector``)."""
    other_ips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]
    """Its further addresses (``status.podIPs`` after the first: the other family's
    address of a dual-stack pod). Sets hold them and the rules police them; probes,
    ``trace`` and the matrix use :attr:`ip`, and look at another family through
    :func:`in_family`."""

    def __init__(
        self,
        namespace: str,
        name: str,
        labels: dict[str, str] | None = None,
        node: str | None = None,
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None,
        host_network: bool = False,
        ports: tuple[ContainerPort, ...] = (),
        workload: str | None = None,
        source: Source = UNKNOWN_SOURCE,
        service_account: str = "default",
        other_ips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = (),
    ) -> None:
        set_field(self, "namespace", namespace)
        set_field(self, "name", name)
        set_field(self, "labels", {} if labels is None else labels)
        set_field(self, "node", node)
        set_field(self, "ip", ip)
        set_field(self, "host_network", host_network)
        set_field(self, "ports", ports)
        set_field(self, "workload", workload)
        set_field(self, "source", source)
        set_field(self, "service_account", service_account)
        set_field(self, "other_ips", other_ips)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def ips(self) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
        """Every address of the pod: :attr:`ip` first."""
        return ((self.ip,) if self.ip is not None else ()) + self.other_ips

    def ip_of(self, family: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """Its address of ``family`` (4 or 6), if it has one."""
        return next((ip for ip in self.ips if ip.version == family), None)

    def named_port(self, name: str, protocol: str) -> int | None:
        """The number of the container port called ``name`` with ``protocol``, if declared."""
        for p in self.ports:
            if p.name == name and p.protocol == protocol:
                return p.port
        return None


def endpoint_interface(namespace: str, name: str, prefix: str = "cali") -> str:
    """The host-side interface name of a pod's veth, as Calico names it: prefix + hash.

    Deterministic from namespace and pod name, and at most 15 characters
    (the kernel's IFNAMSIZ less the terminating NUL). The renderer dispatches on it
    and the lab creates it, so both call this one function.
    """
    import hashlib  # on use: loading OpenSSL is start-up time most commands never need

    digest = hashlib.sha1(f"{namespace}.{name}".encode()).hexdigest()
    return (prefix + digest)[:15]


class Cluster(Record, unhashed=("namespaces",)):
    """A validated snapshot: what every layer above the model reads.

    ``pods`` and ``policies`` are sorted by ``namespace/name``; ``namespaces``
    includes implicit ones; every pod has an IP and (unless unschedulable
    everywhere) a node.
    """

    __slots__ = (
        "calico",
        "cluster_cidr",
        "cluster_policies",
        "namespaces",
        "nodes",
        "pods",
        "policies",
        "unsupported",
    )

    nodes: tuple[Node, ...]
    namespaces: dict[str, Namespace]
    pods: tuple[Pod, ...]
    policies: tuple[NetworkPolicy, ...]
    cluster_cidr: ipaddress.IPv4Network | ipaddress.IPv6Network
    cluster_policies: tuple[ClusterPolicy, ...]
    """ClusterNetworkPolicies, AdminNetworkPolicies and BaselineAdminNetworkPolicies
    (:mod:`sekisho.model.npa`), sorted by kind and name."""
    unsupported: tuple[Problem, ...]
    """One warning per object of a kind sekisho does not read (:mod:`sekisho.model.kinds`):
    what it says is missing from every verdict, so every command shows these and
    the agent refuses to enforce such a cluster."""
    calico: CalicoResources | None
    """Calico's own objects (:mod:`sekisho.model.calico`); None when there are none."""

    def __init__(
        self,
        nodes: tuple[Node, ...] = (),
        namespaces: dict[str, Namespace] | None = None,
        pods: tuple[Pod, ...] = (),
        policies: tuple[NetworkPolicy, ...] = (),
        cluster_cidr: ipaddress.IPv4Network | ipaddress.IPv6Network = DEFAULT_CLUSTER_CIDR,
        cluster_policies: tuple[ClusterPolicy, ...] = (),
        unsupported: tuple[Problem, ...] = (),
        calico: CalicoResources | None = None,
    ) -> None:
        set_field(self, "nodes", nodes)
        set_field(self, "namespaces", {} if namespaces is None else namespaces)
        set_field(self, "pods", pods)
        set_field(self, "policies", policies)
        set_field(self, "cluster_cidr", cluster_cidr)
        set_field(self, "cluster_policies", cluster_policies)
        set_field(self, "unsupported", unsupported)
        set_field(self, "calico", calico)

    def node(self, name: str) -> Node | None:
        for n in self.nodes:
            if n.name == name:
                return n
        return None

    def pod(self, key: str) -> Pod | None:
        for p in self.pods:
            if p.key == key:
                return p
        return None

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        ns = self.namespaces.get(namespace)
        if ns is None:
            return {"kubernetes.io/metadata.name": namespace}
        return ns.labels


def cluster_families(cluster: Cluster) -> tuple[int, ...]:
    """The address families (4, 6) some pod of ``cluster`` has an address of, ascending."""
    return tuple(sorted({ip.version for pod in cluster.pods for ip in pod.ips}))


def in_family(cluster: Cluster, family: int) -> Cluster:
    """``cluster`` as seen over IP ``family`` (4 or 6): a probe over IPv6 is its own probe.

    Every pod's and node's address (and pod CIDR) of that family comes first, so
    :attr:`Pod.ip` and :attr:`Node.internal_ip` are the addresses a packet of that
    family carries; pods without an address of that family are left out (nothing
    reaches them over it). Sets still hold every address, so nothing but the
    family the probes use changes. A node without an address of the family keeps
    its first one (nothing of the family can come from it).
    """
    if family not in (4, 6):
        raise ValueError(f"family {family}: expected 4 or 6")
    if all(p.ip is None or p.ip.version == family for p in cluster.pods) and all(
        n.internal_ip.version == family and n.pod_cidr.version == family for n in cluster.nodes
    ):
        return cluster
    import dataclasses

    def first(items: tuple[_T, ...]) -> tuple[_T, ...]:
        return tuple(sorted(items, key=lambda x: x.version != family))  # type: ignore[attr-defined]

    nodes = []
    for n in cluster.nodes:
        ips, cidrs = first(n.ips), first(n.pod_cidrs)
        nodes.append(
            dataclasses.replace(
                n,
                internal_ip=ips[0],
                other_ips=ips[1:],
                pod_cidr=cidrs[0],
                other_pod_cidrs=cidrs[1:],
            )
        )
    pods = []
    for p in cluster.pods:
        if p.ip_of(family) is None:
            continue
        ips = first(p.ips)
        pods.append(dataclasses.replace(p, ip=ips[0], other_ips=ips[1:]))
    return dataclasses.replace(cluster, nodes=tuple(nodes), pods=tuple(pods))
