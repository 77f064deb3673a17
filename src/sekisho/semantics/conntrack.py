"""A connection's conntrack state at a node: the one home of what a node that did not
track the request (a doNotTrack policy accepted it untracked there) makes of the replies,
and what a node that did not track the replies makes of the client's next packets.

Calico: "Unlike normal network policy rules, doNotTrack network policy rules are
stateless, meaning you must explicitly specify rules to allow return traffic that would
normally be automatically allowed by conntrack." Each node has its own conntrack: a
packet accepted untracked (NOTRACK in the raw table) leaves no entry on that node, and
the other packets of the connection are judged there as conntrack judges a packet of no
connection it knows. The kernel's states (iptables-extensions, ``conntrack``): "INVALID
The packet is associated with no known connection"; "NEW The packet has started a new
connection or otherwise associated with a connection which has not seen packets in both
directions"; "UNTRACKED The packet is not tracked at all, which happens if you
explicitly untrack it by using -j CT --notrack in the raw table". A connection is started only by a packet that can start one: a TCP SYN, a UDP
datagram, an ICMP echo request; a TCP SYN-ACK (or RST) or an ICMP echo reply (or error)
with no entry is INVALID (``nf_conntrack_proto_tcp.c``: "sNO -> sIV" for a SYN/ACK;
``nf_conntrack_proto_icmp.c``: "Can't create a new ICMP `conn' with this"), and so is a
TCP ACK on an entry that saw the SYN but not the SYN-ACK ("sSS -> sIV: ACK is invalid:
we haven't seen a SYN/ACK yet"). Felix, and the rules sekisho renders, drop
``ctstate INVALID`` first in every endpoint chain (workload and host endpoint, both
directions, forwarded too): Calico's own issue #2609 shows requests accepted untracked
at a host endpoint dropped that way in a pod's chain ("doNotTrack was designed for host
protection rather than workload protection ... pod policy is always expecting
conntrack"). An INVALID packet passes only where an earlier stage accepted it for the
filter table: the raw table (accepted untracked: it is then UNTRACKED, not INVALID) or,
for a packet to the host itself, the mangle table's preDNAT policies (the filter table's
INPUT accepts what they accepted before the host endpoint's chain).

Per node, with the request tracked or not and the replies tracked or not (a doNotTrack
policy of that node accepting them untracked):

* request tracked, replies tracked: ESTABLISHED, the replies pass.
* request untracked, replies untracked: no state anywhere, the rules of both directions
  decide every packet (Calico's symmetric doNotTrack policies).
* request untracked, replies tracked (:func:`reply_state`): a UDP reply is NEW there, a
  new flow in the reverse direction that the node's normal policies judge; a TCP or
  ICMP reply is INVALID and dropped.
* request tracked, replies untracked (:func:`follow_up_state`): the replies pass; TCP's
  next packets from the client (the handshake's ACK, then the data) are INVALID on that
  node and dropped; UDP and ICMP have none (one request, one reply). SCTP is taken as
  TCP (a handshake, an INIT-ACK starts nothing; not proven in the kernel).

The walk (:func:`sekisho.semantics.verdict.conntrack_at_node`), the matrix and the rule
interpreter (``render/path.py``: the state each node's conntrack gives a packet) read
these two functions.
"""

from __future__ import annotations

from typing import Literal

CtState = Literal["ESTABLISHED", "NEW", "INVALID"]

HANDSHAKE = ("TCP", "SCTP")
"""Protocols whose client sends more after the reply (the handshake's last packet)."""


def reply_state(protocol: str, request_tracked: bool) -> CtState:
    """The conntrack state of a reply at a node, before its raw table (a NOTRACK there
    makes it UNTRACKED): ESTABLISHED where the node tracked the request; else NEW for
    UDP (a datagram starts a flow), INVALID for the rest (a SYN-ACK, an echo reply)."""
    if request_tracked:
        return "ESTABLISHED"
    return "NEW" if protocol == "UDP" else "INVALID"


def follow_up_state(protocol: str, request_tracked: bool, reply_tracked: bool) -> CtState | None:
    """The conntrack state of the client's next packets at a node (TCP's ACK and data);
    None where there are none (UDP, ICMP) or the node does not track them (its raw table
    NOTRACKs them again, as it did the request)."""
    if protocol not in HANDSHAKE or not request_tracked:
        return None
    return "ESTABLISHED" if reply_tracked else "INVALID"
