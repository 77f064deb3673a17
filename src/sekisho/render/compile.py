"""From policies to backend-neutral rules: IP set identities and members, policy chains.

Each selector peer becomes a :class:`SetDef` whose canonical identity (namespace
scope + canonical selectors, or the ipBlock) names the set, so identical peers
in different policies share one set; named ports become (pod IP, port) sets.
A policy direction becomes a tuple of :class:`AllowRule`. The state of a node
is kept by :class:`sekisho.render.node.NodeRenderer`; the backends
(:mod:`sekisho.render.iptables`, :mod:`sekisho.render.nftables`) print it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Literal

from sekisho.model.types import (
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    Peer,
    Pod,
    PolicyPort,
    Rule,
)

Direction = Literal["ingress", "egress"]
DIRECTIONS: tuple[Direction, Direction] = ("ingress", "egress")

IPv4Net = ipaddress.IPv4Network
IPv4 = ipaddress.IPv4Address
Member = IPv4 | IPv4Net | tuple[IPv4, int]
"""A ``net`` set holds pod IPs (hosts) and networks; a ``port`` set (pod IP, port) of one protocol."""

MULTIPORT_MAX = 15
"""``-m multiport`` takes at most 15 ports; a range ``a:b`` counts as two."""

_EMPTY = LabelSelector()


# --------------------------------------------------------------------------- sets


@dataclass(frozen=True, slots=True)
class SetDef:
    """What an IP set holds, as a canonical identity (equal identity => one shared set)."""

    key: str
    """Canonical identity, hashed into the set's name."""
    kind: Literal["net", "port"]
    """``net``: IPv4 networks (pod IPs as /32); ``port``: (pod IP, port) of ``protocol``."""
    description: str
    """One line for humans: which pods or addresses."""
    scope_ns: str | None = None
    """Pods of this namespace only (a peer with ``podSelector`` alone)."""
    ns_selector: LabelSelector | None = None
    """Pods of namespaces matching this (a peer with ``namespaceSelector``)."""
    pod_selector: LabelSelector = _EMPTY
    block: IPBlock | None = None
    port_name: str | None = None
    protocol: str | None = None

    def holds(self, pod: Pod, ns_labels: dict[str, str]) -> tuple[Member, ...]:
        """The members ``pod`` contributes (empty when it is not selected)."""
        if pod.host_network or not isinstance(pod.ip, ipaddress.IPv4Address):
            # hostNetwork pods count as their node: no selector ever selects them.
            # IPv6 pods are not rendered (IPv4 dataplane only).
            return ()
        if self.port_name is not None:
            assert self.protocol is not None
            number = pod.named_port(self.port_name, self.protocol)
            return () if number is None else ((pod.ip, number),)
        if self.scope_ns is not None:
            if pod.namespace != self.scope_ns:
                return ()
        elif self.ns_selector is None or not self.ns_selector.matches(ns_labels):
            return ()
        if not self.pod_selector.matches(pod.labels):
            return ()
        return (pod.ip,)

    def static_members(self) -> tuple[Member, ...]:
        """Members of an ipBlock set: the CIDR minus the excepts, exactly, as disjoint CIDRs."""
        assert self.block is not None
        return tuple(block_networks(self.block))


def block_networks(block: IPBlock) -> list[IPv4Net]:
    """``cidr`` minus every ``except``, as sorted disjoint IPv4 networks of prefix >= 1.

    ipset's hash:net refuses /0, so 0.0.0.0/0 becomes its two halves.
    """
    if not isinstance(block.cidr, IPv4Net):
        return []
    nets: list[IPv4Net] = [block.cidr]
    for ex in block.excepts:
        if not isinstance(ex, IPv4Net):
            continue
        out: list[IPv4Net] = []
        for net in nets:
            if ex.subnet_of(net):
                out.extend(net.address_exclude(ex))
            elif net.subnet_of(ex):
                continue
            else:
                out.append(net)
        nets = out
    halves: list[IPv4Net] = []
    for net in nets:
        halves.extend(net.subnets(1) if net.prefixlen == 0 else (net,))
    return sorted(halves, key=member_sort_key)


def member_sort_key(m: Member) -> tuple[int, int]:
    if isinstance(m, IPv4):
        return (int(m), 32)
    if isinstance(m, IPv4Net):
        return (int(m.network_address), m.prefixlen)
    return (int(m[0]), m[1])


@cache
def address_text(ip: IPv4) -> str:
    """``str(ip)``, cached: the same pod IPs are printed in many sets and on every render."""
    return str(ip)


def member_texts(members: Iterable[Member]) -> list[tuple[IPv4 | str, int | None]]:
    """Sorted members as (address or network text, port or None)."""
    out: list[tuple[IPv4 | str, int | None]] = []
    for m in sorted(members, key=member_sort_key):
        if isinstance(m, IPv4):
            out.append((address_text(m), None))
        elif isinstance(m, IPv4Net):
            out.append((str(m.network_address) if m.prefixlen == 32 else str(m), None))
        else:
            out.append((address_text(m[0]), m[1]))
    return out


def peer_set(policy: NetworkPolicy, peer: Peer) -> SetDef:
    """The set a peer becomes (spec: "namespaceSelector and podSelector ... both ... AND")."""
    if peer.ip_block is not None:
        b = peer.ip_block
        key = f"block {b.cidr} except {','.join(sorted(map(str, b.excepts)))}"
        return SetDef(key=key, kind="net", description=f"ipBlock {b}", block=b)
    pods = peer.pod_selector or _EMPTY
    if peer.namespace_selector is None:
        # "podSelector ... selects particular Pods in the same namespace as the NetworkPolicy"
        key = f"pods ns={policy.namespace} sel={pods.canonical()}"
        desc = f"pods in namespace {policy.namespace} matching {pods}"
        return SetDef(key=key, kind="net", description=desc, scope_ns=policy.namespace,
                      pod_selector=pods)  # fmt: skip
    nss = peer.namespace_selector
    key = f"pods nssel={nss.canonical()} sel={pods.canonical()}"
    desc = f"pods matching {pods} in namespaces matching {nss}"
    return SetDef(key=key, kind="net", description=desc, ns_selector=nss, pod_selector=pods)


def named_port_set(name: str, protocol: str) -> SetDef:
    """(pod IP, port) of every pod declaring a container port ``name``/``protocol``."""
    return SetDef(
        key=f"port {protocol} {name}",
        kind="port",
        description=f"pods with a {protocol} container port named {name!r}, and its number",
        port_name=name,
        protocol=protocol,
    )


# -------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class AllowRule:
    """One rendered match of a policy chain; when it matches, the accept mark is set."""

    comment: str
    peer_set: str | None = None
    """Set key matched against the peer address (source for ingress, destination for egress)."""
    port_set: str | None = None
    """Named-port set key matched against (destination, destination port)."""
    protocol: str | None = None
    """Lower-case protocol, or None for every protocol (ICMP included)."""
    ports: tuple[tuple[int, int], ...] = ()
    """Inclusive destination port ranges; empty means any port of ``protocol``."""


def _port_groups(ports: tuple[PolicyPort, ...]) -> list[AllowRule]:
    """Rules for one peer's ``ports``: numeric ports of one protocol share a multiport rule."""
    out: list[AllowRule] = []
    numeric: dict[str, list[tuple[int, int]]] = {}
    any_port: set[str] = set()
    for pp in ports:
        proto = pp.protocol.lower()
        if pp.port is None:
            # "If this field is not provided, this matches all port names and numbers."
            any_port.add(proto)
        elif isinstance(pp.port, str):
            out.append(AllowRule("", port_set=named_port_set(pp.port, pp.protocol).key,
                                 protocol=proto, ports=()))  # fmt: skip
        else:
            # "endPort ... indicates that the range of ports from port to endPort if set, inclusive"
            end = pp.end_port if pp.end_port is not None else pp.port
            numeric.setdefault(proto, []).append((pp.port, end))
    for proto in sorted(any_port):
        out.append(AllowRule("", protocol=proto))
    for proto in sorted(numeric):
        if proto in any_port:
            continue
        ranges = sorted(set(numeric[proto]))
        chunk: list[tuple[int, int]] = []
        slots = 0
        for r in ranges:
            need = 1 if r[0] == r[1] else 2
            if slots + need > MULTIPORT_MAX:
                out.append(AllowRule("", protocol=proto, ports=tuple(chunk)))
                chunk, slots = [], 0
            chunk.append(r)
            slots += need
        if chunk:
            out.append(AllowRule("", protocol=proto, ports=tuple(chunk)))
    return out


def compile_rules(
    policy: NetworkPolicy, direction: Direction
) -> tuple[tuple[AllowRule, ...], dict[str, SetDef]]:
    """A policy's chain for one direction and the sets it uses (by key)."""
    rules: tuple[Rule, ...] = policy.ingress if direction == "ingress" else policy.egress
    out: list[AllowRule] = []
    sets: dict[str, SetDef] = {}
    for i, rule in enumerate(rules):
        peers: tuple[Peer | None, ...] = (None,) if rule.peers is None else rule.peers
        for j, peer in enumerate(peers):
            where = f"policy {policy.key} {direction} rule {i}"
            peer_key: str | None = None
            if peer is not None:
                if peer.ip_block is not None and not isinstance(peer.ip_block.cidr, IPv4Net):
                    continue  # an IPv6 block never matches an IPv4 packet
                sd = peer_set(policy, peer)
                sets[sd.key] = sd
                peer_key = sd.key
                where += f" peer {j}"
            else:
                where += " any peer"
            if rule.ports is None:
                # "If this field is empty or missing, this rule matches all ports"
                out.append(AllowRule(where, peer_set=peer_key))
                continue
            for part in _port_groups(rule.ports):
                if part.port_set is not None:
                    assert part.protocol is not None
                    sd = next(
                        named_port_set(str(pp.port), pp.protocol)
                        for pp in rule.ports
                        if named_port_set(str(pp.port), pp.protocol).key == part.port_set
                    )
                    sets[sd.key] = sd
                out.append(
                    AllowRule(
                        where + " " + _describe(part),
                        peer_set=peer_key,
                        port_set=part.port_set,
                        protocol=part.protocol,
                        ports=part.ports,
                    )
                )
    return tuple(out), sets


def _describe(part: AllowRule) -> str:
    proto = (part.protocol or "any").upper()
    if part.port_set is not None:
        return f"{proto}/{part.port_set.rsplit(' ', 1)[-1]}"
    if not part.ports:
        return f"{proto}/*"
    return f"{proto}/" + ",".join(str(a) if a == b else f"{a}-{b}" for a, b in part.ports)
