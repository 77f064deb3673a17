"""Endpoints (a pod, a node, an external IP) and flows between them."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from sekisho.errors import UsageError
from sekisho.model.types import Cluster, FlowProtocol, Node, Pod

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
EndpointKind = Literal["pod", "node", "external"]
FLOW_PROTOCOLS: tuple[FlowProtocol, ...] = ("TCP", "UDP", "SCTP", "ICMP")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One end of a flow.

    A hostNetwork pod is ``kind="pod"`` with both ``pod`` and ``node`` set and its
    node's IP: policy treats it as its node (never selected, never isolated).
    """

    kind: EndpointKind
    pod: Pod | None
    node: Node | None
    ip: IPAddress
    label: str
    """What to show: ``ns/name``, ``node k8s-node1`` or the IP."""

    @property
    def is_workload(self) -> bool:
        """A pod with its own network namespace: the only endpoints policies select."""
        return self.pod is not None and not self.pod.host_network

    @property
    def node_name(self) -> str | None:
        """The node this endpoint is, or runs on (None for an external IP)."""
        if self.node is not None:
            return self.node.name
        return self.pod.node if self.pod is not None else None

    @property
    def is_node_like(self) -> bool:
        """A node, or a hostNetwork pod (which sends and receives as its node)."""
        return self.kind == "node" or (self.pod is not None and self.pod.host_network)

    def describe(self) -> str:
        """``dev/blue (10.244.3.6 on k8s-node1)``-style text for explanations."""
        if self.pod is not None:
            where = f" on {self.pod.node}" if self.pod.node else ""
            hn = ", hostNetwork" if self.pod.host_network else ""
            return f"pod {self.label} ({self.ip}{where}{hn})"
        if self.node is not None:
            return f"node {self.node.name} ({self.ip})"
        return f"external {self.ip}"


@dataclass(frozen=True, slots=True)
class Flow:
    """A connection attempt: source, destination, protocol and destination port."""

    src: Endpoint
    dst: Endpoint
    protocol: FlowProtocol = "TCP"
    port: int | None = None
    """Destination port; None for ICMP."""

    def __post_init__(self) -> None:
        if self.protocol not in FLOW_PROTOCOLS:
            raise UsageError(
                f"protocol {self.protocol!r}: expected one of {', '.join(FLOW_PROTOCOLS)}"
            )
        if self.protocol == "ICMP" and self.port is not None:
            raise UsageError(f"ICMP has no port (got {self.port})")
        if self.protocol != "ICMP":
            if self.port is None:
                raise UsageError(f"{self.protocol} needs a port (1-65535)")
            if not 1 <= self.port <= 65535:
                raise UsageError(f"port {self.port}: expected 1-65535")

    @property
    def service(self) -> str:
        """``TCP/80`` or ``ICMP``."""
        return self.protocol if self.port is None else f"{self.protocol}/{self.port}"


def pod_endpoint(cluster: Cluster, pod: Pod) -> Endpoint:
    """The endpoint of a pod (for a hostNetwork pod, also its node)."""
    node = cluster.node(pod.node) if pod.node else None
    if pod.ip is None:
        raise UsageError(f"pod {pod.key} has no IP")
    return Endpoint("pod", pod, node if pod.host_network else None, pod.ip, pod.key)


def node_endpoint(node: Node) -> Endpoint:
    """The endpoint of a node itself (its InternalIP), as a source or a destination."""
    return Endpoint("node", None, node, node.internal_ip, node.name)


def _workload_pods(cluster: Cluster, text: str) -> list[Pod]:
    ns, _, name = text.partition("/")
    out = []
    for pod in cluster.pods:
        if pod.namespace != ns:
            continue
        workload_name = pod.workload.partition("/")[2] if pod.workload else None
        if workload_name == name or pod.name.startswith(name + "-"):
            out.append(pod)
    return out


def resolve_endpoints(cluster: Cluster, text: str) -> tuple[Endpoint, ...]:
    """Every endpoint ``text`` names: a pod, all pods of a workload, a node, or an IP.

    Raises :class:`UsageError` naming what exists when nothing matches.
    """
    text = text.strip()
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        ip = None
    if ip is not None:
        for pod in cluster.pods:
            if pod.ip == ip and not pod.host_network:
                return (pod_endpoint(cluster, pod),)
        for node in cluster.nodes:
            if node.internal_ip == ip:
                return (node_endpoint(node),)
        for pod in cluster.pods:
            if ip in pod.ips and not pod.host_network:
                raise UsageError(
                    f"{ip} is pod {pod.key}'s IPv{ip.version} address: trace it over"
                    f" --family {ip.version}"
                )
        return (Endpoint("external", None, None, ip, str(ip)),)
    if "/" in text:
        exact = cluster.pod(text)
        if exact is not None:
            return (pod_endpoint(cluster, exact),)
        pods = _workload_pods(cluster, text)
        if pods:
            return tuple(pod_endpoint(cluster, p) for p in pods)
        ns = text.partition("/")[0]
        known = [p.key for p in cluster.pods if p.namespace == ns] or [p.key for p in cluster.pods]
        raise UsageError(
            f"no pod or workload {text!r}; expected one of: {', '.join(known[:20]) or '(no pods)'}"
        )
    named = cluster.node(text)
    if named is not None:
        return (node_endpoint(named),)
    names = [n.name for n in cluster.nodes]
    raise UsageError(
        f"{text!r} is not a pod (namespace/name), a node or an IP; nodes: {', '.join(names) or '(none)'}"
    )


def resolve_endpoint(cluster: Cluster, text: str) -> Endpoint:
    """The one endpoint ``text`` names; :class:`UsageError` listing candidates if several."""
    found = resolve_endpoints(cluster, text)
    if len(found) > 1:
        raise UsageError(
            f"{text!r} is ambiguous: it names {len(found)} pods: {', '.join(e.label for e in found)}"
        )
    return found[0]
