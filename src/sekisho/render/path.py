"""Which nodes' filters a flow passes, with which hook and interfaces (Calico's routed model).

A pod's traffic leaves through its host-side veth on its node: another local
pod is reached in FORWARD (``-i caliSRC -o caliDST``), a remote one in FORWARD on
the source node (``-o eth0``) and then FORWARD on the destination node
(``-i eth0``), the node itself (or a hostNetwork pod on it) in INPUT, another
node in INPUT there (``-i eth0``). What a node sends leaves in OUTPUT: to its
own pods (``-o caliDST``, never policed), to anything else (``-o eth0``; a node
to itself goes over ``lo``: OUTPUT, then INPUT).

A hop is named by its filter hook; what arrives (INPUT, FORWARD) also passes raw and
mangle PREROUTING before it, what the node sends raw OUTPUT: the interpreter walks
those tables within the hop (:data:`sekisho.render.interpret.TABLES`), so the
doNotTrack and preDNAT stages are part of each hop's decision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from sekisho.model.types import Cluster, endpoint_interface
from sekisho.render.interpret import Decision, Hook, Packet, State
from sekisho.semantics import Endpoint, Flow
from sekisho.semantics.program import EPHEMERAL_PORTS, ICMP_ECHO_REPLY

UPLINK = "eth0"
"""The node's interface towards the node network (any non-``cali`` name would do)."""
LOOPBACK = "lo"

PROBE_SOURCE_PORT = EPHEMERAL_PORTS[0]
"""A probe's source port: one the kernel picks from the ephemeral range. Every rule
whose source ports the walk knows the answer of (``source_ports_cover``) holds all of
that range or none of it, so this one port gives the answer for each."""

REPLY_PORT = PROBE_SOURCE_PORT
"""The client's port its replies go to: the probe's source port (the same rule holds
for a reply's destination port)."""


@dataclass(frozen=True, slots=True)
class Hop:
    node: str
    packet: Packet


def _iface(ep: Endpoint) -> str:
    assert ep.pod is not None
    return endpoint_interface(ep.pod.namespace, ep.pod.name)


def hops(flow: Flow, state: State = "NEW") -> list[Hop]:
    """The filtering points ``flow`` passes, in order (empty: nothing filters it)."""
    src, dst = flow.src, flow.dst
    if src.pod is not None and dst.pod is not None and src.pod.key == dst.pod.key:
        return []  # a pod to itself never leaves the pod

    sport = PROBE_SOURCE_PORT if flow.port is not None else None

    def pkt(iif: str, oif: str, hook: Hook = "FORWARD") -> Packet:
        return Packet(
            str(src.ip), str(dst.ip), flow.protocol, flow.port, state, iif, oif, hook, sport
        )

    out: list[Hop] = []
    dst_node = dst.node_name
    if src.is_workload:
        node = src.node_name
        if node is None:
            return []
        here = _iface(src)
        if dst.is_workload and dst_node == node:
            return [Hop(node, pkt(here, _iface(dst)))]
        if dst.is_node_like and dst_node == node:
            return [Hop(node, pkt(here, "", "INPUT"))]
        out.append(Hop(node, pkt(here, UPLINK)))
        if dst.is_workload and dst_node is not None:
            out.append(Hop(dst_node, pkt(UPLINK, _iface(dst))))
        elif dst.is_node_like and dst_node is not None:
            out.append(Hop(dst_node, pkt(UPLINK, "", "INPUT")))
        return out
    here_node = src.node_name if src.is_node_like else None
    if here_node is not None:
        if dst.is_workload and dst_node == here_node:
            return [Hop(here_node, pkt("", _iface(dst), "OUTPUT"))]
        if dst.is_node_like and dst_node == here_node:
            return [
                Hop(here_node, pkt("", LOOPBACK, "OUTPUT")),
                Hop(here_node, pkt(LOOPBACK, "", "INPUT")),
            ]
        out.append(Hop(here_node, pkt("", UPLINK, "OUTPUT")))
    if dst.is_workload and dst_node is not None:
        out.append(Hop(dst_node, pkt(UPLINK, _iface(dst))))
    elif dst.is_node_like and dst_node is not None:
        out.append(Hop(dst_node, pkt(UPLINK, "", "INPUT")))
    return out


def reply_hops(flow: Flow, port: int = REPLY_PORT) -> list[Hop]:
    """The filtering points the replies of ``flow`` pass (its destination back to its
    source, ESTABLISHED, from its port to the client's ``port``; an echo reply for ICMP)."""
    back = Flow(flow.dst, flow.src, flow.protocol, flow.port)
    out = []
    for hop in hops(back, "ESTABLISHED"):
        p = hop.packet
        icmp = ICMP_ECHO_REPLY[p.family] if flow.protocol == "ICMP" else None
        dport = port if flow.port is not None else None
        out.append(Hop(hop.node, dataclasses.replace(p, port=dport, sport=flow.port, icmp=icmp)))
    return out


def enforce_replies(
    flow: Flow, evaluate: Callable[[str, Packet], Decision]
) -> tuple[bool, list[tuple[Hop, Decision]]]:
    """Walk the replies of ``flow`` (:func:`reply_hops`), then TCP's next packets from the
    client; passed iff no hop drops them.

    Each node's conntrack gives a packet the state of what it has seen
    (:mod:`sekisho.semantics.conntrack`): a reply is ESTABLISHED where the node tracked
    the request, else NEW (UDP) or INVALID; the client's next packets are INVALID where
    the node tracked the request but its raw table NOTRACKed the reply (those hops are
    walked again, INVALID; the others pass as the request did)."""
    from sekisho.semantics.conntrack import follow_up_state, reply_state

    untracked = {h.node for h in hops(flow) if evaluate(h.node, h.packet).untracked}
    replies_untracked: set[str] = set()
    trail: list[tuple[Hop, Decision]] = []
    for hop in reply_hops(flow):
        state = reply_state(flow.protocol, request_tracked=hop.node not in untracked)
        hop = Hop(hop.node, dataclasses.replace(hop.packet, state=state))
        decision = evaluate(hop.node, hop.packet)
        trail.append((hop, decision))
        if decision.verdict == "DROP":
            return False, trail
        if decision.untracked:
            replies_untracked.add(hop.node)
    for hop in hops(flow, "INVALID"):
        tracked = (hop.node not in untracked, hop.node not in replies_untracked)
        if follow_up_state(flow.protocol, *tracked) != "INVALID":
            continue
        decision = evaluate(hop.node, hop.packet)
        trail.append((hop, decision))
        if decision.verdict == "DROP":
            return False, trail
    return True, trail


def enforce(
    flow: Flow, evaluate: Callable[[str, Packet], Decision], state: State = "NEW"
) -> tuple[bool, list[tuple[Hop, Decision]]]:
    """Walk ``flow`` through every node on its path; allowed iff no hop drops it."""
    trail: list[tuple[Hop, Decision]] = []
    for hop in hops(flow, state):
        decision = evaluate(hop.node, hop.packet)
        trail.append((hop, decision))
        if decision.verdict == "DROP":
            return False, trail
    return True, trail


def cluster_nodes(cluster: Cluster) -> list[str]:
    """Every node name the cluster knows (declared or named by a pod)."""
    return sorted({n.name for n in cluster.nodes} | {p.node for p in cluster.pods if p.node})
