"""The lab's plan: which namespaces, interfaces, addresses and routes a cluster becomes.

Pure: computed from a :class:`~sekisho.model.types.Cluster` and a lab name, run
nothing. :mod:`sekisho.lab.netns` turns the plan into shell scripts that run
inside the namespaces, so the whole topology can be read (and tested) as text.

The shape is Calico's routed model, one Linux host standing in for the cluster::

    fabric ns (bridge br0, the node network)
      |-- node ns (eth0 = InternalIP, ip_forward, per local pod a proxy-ARP veth
      |     |       named endpoint_interface(ns, name) with a /32 route,
      |     |       routes to other nodes' pods via their node IP, natOutgoing)
      |     `-- pod ns (eth0 = pod IP/32, default via 169.254.1.1)
      `-- external ns (203.0.113.10, the seed's 8.8.8.8 / 1.1.1.1 stand-in)

Dual stack: pods and nodes with an IPv6 address get it too (the pod's /128 on
``eth0``, a default route via ``fe80::1``, which each host-side veth holds; the
node's address on ``eth0``, IPv6 forwarding inside the node's namespace, routes
to the other nodes' IPv6 pod CIDRs via their IPv6 address). The external host
and natOutgoing are IPv4 only.

Nothing is linked to the host's own namespace.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from sekisho.errors import LabError
from sekisho.model.types import Cluster, Pod, endpoint_interface

PREFIX = "skl-"
"""Every namespace the lab creates starts with this (``lab down --all`` scans for it)."""

GATEWAY = "169.254.1.1"
"""The link-local next hop every pod routes through, as in Calico."""

GATEWAY6 = "fe80::1"
"""The IPv6 next hop of every dual-stack pod: held by each host-side veth."""

EXTERNAL_IP = ipaddress.IPv4Address("203.0.113.10")
"""The external host (TEST-NET-3): stands in for the seed's 8.8.8.8 and 1.1.1.1."""

NAT_TABLE = "sekisho_lab_nat"
"""The nft table holding the lab's natOutgoing rule in each node (not the agent's)."""

DEFAULT_NODES = (
    ("node-1", "192.168.110.11", "10.244.1.0/24"),
    ("node-2", "192.168.110.12", "10.244.2.0/24"),
    ("node-3", "192.168.110.13", "10.244.3.0/24"),
)
"""Nodes used when the manifests name none."""

_LAB_NAME = re.compile(r"^[a-z0-9]{1,10}$")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def check_lab_name(name: str) -> str:
    """Lab names become part of namespace names: 1 to 10 lower-case letters or digits."""
    if not _LAB_NAME.match(name):
        raise LabError(f"lab name {name!r}: expected 1 to 10 characters from [a-z0-9]")
    return name


@dataclass(frozen=True, slots=True)
class PodPlan:
    """One pod: the namespace it runs in and what it serves."""

    key: str
    """``namespace/name``."""
    netns: str
    """Its network namespace (its node's, for a hostNetwork pod)."""
    ip: IPAddress
    node: str
    host_if: str
    """Host-side veth in the node namespace (``endpoint_interface``); "" for hostNetwork."""
    tcp: tuple[int, ...] = ()
    udp: tuple[int, ...] = ()
    sctp: tuple[int, ...] = ()
    host_network: bool = False
    ip6: ipaddress.IPv6Address | None = None
    """Its IPv6 address (a dual-stack pod; its node's for a hostNetwork pod)."""

    def addr(self, family: int | None) -> IPAddress | None:
        """Its address of ``family`` (None: :attr:`ip`)."""
        if family == 6:
            return self.ip6
        return self.ip

    def serves(self, port: int, protocol: str) -> bool:
        """Whether the lab's server listens on ``port``/``protocol`` in this pod."""
        if protocol == "TCP":
            return port in self.tcp
        if protocol == "UDP":
            return port in self.udp
        return False


@dataclass(frozen=True, slots=True)
class NodePlan:
    name: str
    netns: str
    ip: IPAddress
    prefixlen: int
    pod_cidr: IPNetwork
    fabric_if: str
    """Its end of the link in the fabric namespace (attached to the bridge)."""
    pods: tuple[PodPlan, ...] = ()
    """Local pods with their own namespace (hostNetwork pods are not listed)."""
    routes: tuple[tuple[str, str], ...] = ()
    """``(destination, via node IP)`` for other nodes' pods."""
    onlink: tuple[str, ...] = ()
    """Other node IPs outside this node's subnet, reached on-link."""
    ip6: ipaddress.IPv6Address | None = None
    """Its IPv6 InternalIP (a dual-stack node)."""
    routes6: tuple[tuple[str, str], ...] = ()
    """``(destination, via node IPv6 address)`` for other nodes' IPv6 pods."""
    onlink6: tuple[str, ...] = ()
    """Other nodes' IPv6 addresses, reached on-link."""


@dataclass(frozen=True, slots=True)
class Plan:
    lab: str
    fabric: str
    external: str
    external_ip: IPAddress
    nodes: tuple[NodePlan, ...]
    pods: tuple[PodPlan, ...]
    """Every pod, sorted by key."""
    node_networks: tuple[IPNetwork, ...]
    pod_networks: tuple[IPNetwork, ...]
    """Where pod addresses live: the cluster CIDR, nodes' pod CIDRs, stray pod /32s."""
    extra: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def dual_stack(self) -> bool:
        """Some pod has an IPv6 address: the lab routes IPv6 too."""
        return any(p.ip6 is not None for p in self.pods)

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Every namespace of the lab, in creation order."""
        out = [self.fabric, self.external]
        out += [n.netns for n in self.nodes]
        out += [p.netns for p in self.pods if not p.host_network]
        return tuple(out)

    def pod(self, key: str) -> PodPlan | None:
        for p in self.pods:
            if p.key == key:
                return p
        return None

    def node(self, name: str) -> NodePlan | None:
        for n in self.nodes:
            if n.name == name:
                return n
        return None

    def resolve(self, what: str) -> str:
        """The namespace of a pod (``ns/name``), a node name, ``external`` or ``fabric``."""
        if what == "external":
            return self.external
        if what == "fabric":
            return self.fabric
        pod = self.pod(what)
        if pod is not None:
            return pod.netns
        node = self.node(what)
        if node is not None:
            return node.netns
        choices = [n.name for n in self.nodes] + [p.key for p in self.pods] + ["external"]
        raise LabError(
            f"{what!r} is neither a node nor a pod of the lab; one of: {', '.join(choices)}"
        )


def _ports(pod: Pod, protocol: str) -> tuple[int, ...]:
    return tuple(sorted({p.port for p in pod.ports if p.protocol == protocol}))


def plan(cluster: Cluster, lab: str) -> Plan:
    """The lab topology for ``cluster``; raises LabError when it cannot be built."""
    check_lab_name(lab)
    nodes: list[tuple[str, IPAddress, IPNetwork]] = [
        (n.name, n.internal_ip, n.pod_cidr) for n in cluster.nodes
    ]
    v6_of: dict[str, tuple[ipaddress.IPv6Address | None, ipaddress.IPv6Network | None]] = {
        n.name: (_v6(n.ip_of(6)), _v6net(n.pod_cidr_of(6))) for n in cluster.nodes
    }
    known = {n[0] for n in nodes}
    extra_names = sorted({p.node for p in cluster.pods if p.node and p.node not in known})
    if not nodes and not extra_names:
        nodes = [
            (name, ipaddress.ip_address(ip), ipaddress.ip_network(cidr))
            for name, ip, cidr in DEFAULT_NODES
        ]
    else:
        # Pods name nodes that have no Node object: give them addresses next to the others.
        used = {n[1] for n in nodes}
        host = 11
        for name in extra_names:
            while ipaddress.ip_address(f"192.168.110.{host}") in used:
                host += 1
            nodes.append(
                (
                    name,
                    ipaddress.ip_address(f"192.168.110.{host}"),
                    ipaddress.ip_network(f"10.244.{host}.0/24"),
                )
            )
            host += 1
    for name, ip, _ in nodes:
        if ip.version != 4:
            raise LabError(f"node {name}: the lab supports IPv4 only, got {ip}")
    node_names = [n[0] for n in nodes]
    index = {name: i for i, name in enumerate(node_names)}

    fabric = f"{PREFIX}{lab}-f"
    external = f"{PREFIX}{lab}-x"
    pods: list[PodPlan] = []
    rr = 0
    for i, pod in enumerate(cluster.pods):
        if pod.ip is None:
            raise LabError(f"pod {pod.key} has no IP address")
        if pod.ip.version != 4:
            raise LabError(
                f"pod {pod.key}: the lab needs an IPv4 address first (IPv6 beside it), got {pod.ip}"
            )
        node = pod.node
        if node is None or node not in index:
            node = node_names[rr % len(node_names)]
            rr += 1
        ip6 = _v6(pod.ip_of(6))
        if ip6 is not None and v6_of.get(node, (None, None))[0] is None:
            raise LabError(
                f"pod {pod.key} has the IPv6 address {ip6} but its node {node} has no IPv6"
                " InternalIP to route it through"
            )
        if pod.host_network:
            netns = f"{PREFIX}{lab}-n{index[node]}"
            host_if = ""
        else:
            netns = f"{PREFIX}{lab}-p{i}"
            host_if = endpoint_interface(pod.namespace, pod.name)
        pods.append(
            PodPlan(
                key=pod.key,
                netns=netns,
                ip=pod.ip,
                node=node,
                host_if=host_if,
                tcp=_ports(pod, "TCP"),
                udp=_ports(pod, "UDP"),
                sctp=_ports(pod, "SCTP"),
                host_network=pod.host_network,
                ip6=ip6,
            )
        )
    ips = [p.ip for p in pods if not p.host_network]
    ips += [p.ip6 for p in pods if not p.host_network and p.ip6 is not None]
    if len(set(ips)) != len(ips):
        raise LabError("two pods share an IP address; the lab routes by pod IP")

    node_nets = sorted({ipaddress.ip_interface(f"{ip}/24").network for _, ip, _ in nodes}, key=str)
    pod_nets: set[IPNetwork] = {cluster.cluster_cidr}
    pod_nets.update(cidr for _, _, cidr in nodes)
    for p in pods:
        if not p.host_network and not any(p.ip in net for net in pod_nets):
            pod_nets.add(ipaddress.ip_network(f"{p.ip}/32"))

    plans: list[NodePlan] = []
    for i, (name, ip, cidr) in enumerate(nodes):
        own_net = ipaddress.ip_interface(f"{ip}/24").network
        routes: list[tuple[str, str]] = []
        for j, (other, other_ip, other_cidr) in enumerate(nodes):
            if j == i:
                continue
            remote = [p for p in pods if p.node == other and not p.host_network]
            # Route the other node's pod CIDR when its pods live there, else per pod /32.
            if any(p.ip in other_cidr for p in remote):
                routes.append((str(other_cidr), str(other_ip)))
            for p in remote:
                if p.ip not in other_cidr or any(p.ip in c for nm, _, c in nodes if nm != other):
                    routes.append((f"{p.ip}/32", str(other_ip)))
        onlink = tuple(str(o[1]) for o in nodes if o[0] != name and o[1] not in own_net)
        routes6: list[tuple[str, str]] = []
        onlink6: list[str] = []
        ip6 = v6_of.get(name, (None, None))[0]
        for other, _, _ in nodes:
            other_ip6, other_cidr6 = v6_of.get(other, (None, None))
            if other == name or other_ip6 is None or ip6 is None:
                continue
            onlink6.append(str(other_ip6))
            remote6 = [
                p.ip6 for p in pods if p.node == other and not p.host_network and p.ip6 is not None
            ]
            if other_cidr6 is not None and any(a in other_cidr6 for a in remote6):
                routes6.append((str(other_cidr6), str(other_ip6)))
            for a in remote6:
                if other_cidr6 is None or a not in other_cidr6:
                    routes6.append((f"{a}/128", str(other_ip6)))
        plans.append(
            NodePlan(
                name=name,
                netns=f"{PREFIX}{lab}-n{i}",
                ip=ip,
                prefixlen=24,
                pod_cidr=cidr,
                fabric_if=f"n{i}",
                pods=tuple(p for p in pods if p.node == name and not p.host_network),
                routes=tuple(dict.fromkeys(routes)),
                onlink=onlink,
                ip6=ip6,
                routes6=tuple(dict.fromkeys(routes6)),
                onlink6=tuple(onlink6),
            )
        )
    return Plan(
        lab=lab,
        fabric=fabric,
        external=external,
        external_ip=EXTERNAL_IP,
        nodes=tuple(plans),
        pods=tuple(sorted(pods, key=lambda p: p.key)),
        node_networks=tuple(node_nets),
        pod_networks=tuple(sorted(pod_nets, key=str)),
    )


def _v6(ip: IPAddress | None) -> ipaddress.IPv6Address | None:
    return ip if isinstance(ip, ipaddress.IPv6Address) else None


def _v6net(net: IPNetwork | None) -> ipaddress.IPv6Network | None:
    return net if isinstance(net, ipaddress.IPv6Network) else None


def fabric_script(p: Plan) -> str:
    """Shell (``sh -e``) run inside the fabric namespace: the bridge and every node's link."""
    lines = [
        "ip link set lo up",
        "ip link add br0 type bridge" + (" mcast_snooping 0" if p.dual_stack else ""),
        "ip link set br0 up",
    ]
    for n in p.nodes:
        lines.append(f"ip link add {n.fabric_if} type veth peer name eth0 netns {n.netns}")
        lines.append(f"ip link set {n.fabric_if} master br0 up")
    lines.append(f"ip link add x0 type veth peer name eth0 netns {p.external}")
    lines.append("ip link set x0 master br0 up")
    return "\n".join(lines) + "\n"


def node_script(p: Plan, n: NodePlan) -> str:
    """Shell run inside a node namespace: its address, forwarding, pod veths, routes, NAT."""
    six = n.ip6 is not None
    lines = ["ip link set lo up"]
    if six:
        # Inside this namespace only: IPv6 on, no duplicate address detection (the lab
        # chose the addresses), forwarding between the pods' veths and eth0.
        lines.append(
            "sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0"
            " net.ipv6.conf.eth0.disable_ipv6=0 net.ipv6.conf.default.accept_dad=0"
            " net.ipv6.conf.eth0.accept_dad=0 net.ipv6.conf.all.forwarding=1"
        )
    lines += [
        f"ip addr add {n.ip}/{n.prefixlen} dev eth0",
        *([f"ip -6 addr add {n.ip6}/64 dev eth0 nodad"] if six else []),
        "ip link set eth0 up",
        "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0"
        " net.ipv4.conf.default.rp_filter=0",
    ]
    for pod in n.pods:
        h = pod.host_if
        lines.append(f"ip link add {h} type veth peer name eth0 netns {pod.netns}")
        if six and pod.ip6 is not None:
            lines.append(f"ip -6 addr add {GATEWAY6}/64 dev {h} nodad")
        lines.append(f"ip link set {h} up")
        lines.append(
            f"sysctl -qw net.ipv4.conf.{h}.proxy_arp=1 net.ipv4.neigh.{h}.proxy_delay=0"
            f" net.ipv4.conf.{h}.rp_filter=0"
        )
        lines.append(f"ip route add {pod.ip}/32 dev {h}")
        if six and pod.ip6 is not None:
            lines.append(f"ip -6 route add {pod.ip6}/128 dev {h}")
    for ip in n.onlink:
        lines.append(f"ip route add {ip}/32 dev eth0")
    for dst, via in n.routes:
        lines.append(f"ip route add {dst} via {via} dev eth0 onlink")
    for ip in n.onlink6:
        lines.append(f"ip -6 route add {ip}/128 dev eth0")
    for dst, via in n.routes6:
        lines.append(f"ip -6 route add {dst} via {via} dev eth0")
    lines.append(f"ip route add default via {p.external_ip} dev eth0 onlink")
    pod_nets = ", ".join(str(x) for x in p.pod_networks)
    local = ", ".join(str(x) for x in (*p.pod_networks, *p.node_networks))
    # Calico natOutgoing: pod traffic to anything outside the cluster leaves as the node.
    lines.append("nft -f - <<'EOF'")
    lines.append(f"table ip {NAT_TABLE} {{")
    lines.append("  chain postrouting {")
    lines.append("    type nat hook postrouting priority srcnat; policy accept;")
    lines.append(
        f'    oifname "eth0" ip saddr {{ {pod_nets} }} ip daddr != {{ {local} }} masquerade'
    )
    lines.append("  }")
    lines.append("}")
    lines.append("EOF")
    return "\n".join(lines) + "\n"


def pod_script(pod: PodPlan) -> str:
    """Shell run inside a pod namespace: its /32 and the default route via 169.254.1.1
    (and for a dual-stack pod its /128 and the default route via fe80::1)."""
    six = pod.ip6 is not None
    return (
        "ip link set lo up\n"
        f"ip addr add {pod.ip}/32 dev eth0\n"
        + (
            "sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.eth0.disable_ipv6=0"
            " net.ipv6.conf.eth0.accept_dad=0\n"
            f"ip -6 addr add {pod.ip6}/128 dev eth0 nodad\n"
            if six
            else ""
        )
        + "ip link set eth0 up\n"
        f"ip route add {GATEWAY} dev eth0 scope link\n"
        f"ip route add default via {GATEWAY} dev eth0\n"
        + (f"ip -6 route add default via {GATEWAY6} dev eth0\n" if six else "")
    )


def external_script(p: Plan) -> str:
    """Shell run inside the external host: its address and routes back to the nodes."""
    lines = [
        "ip link set lo up",
        f"ip addr add {p.external_ip}/32 dev eth0",
        "ip link set eth0 up",
    ]
    for net in p.node_networks:
        lines.append(f"ip route add {net} dev eth0")
    return "\n".join(lines) + "\n"
