"""Real probes from inside a namespace, run in parallel threads, each bounded in time.

Each worker thread ``setns``-es into the source namespace and opens its socket
there. Outcomes:

``allowed``
    TCP: connected and the HTTP answer came back; UDP: the echo came back;
    ICMP: the echo reply came back.
``dropped``
    Nothing came back before the timeout (the packet or its reply was dropped).
``rejected``
    The kernel reported an ICMP unreachable other than port-unreachable
    (host/net/admin prohibited: EHOSTUNREACH, ENETUNREACH, EACCES, EPERM), or a
    TCP RST / ICMP port-unreachable on a port where the destination's server
    *is* listening (so something other than the destination answered it).
``no-listener``
    TCP RST or ICMP port-unreachable (ECONNREFUSED) on a port the destination's
    server does *not* serve: the packet reached a live pod with nothing there.
    The lab knows which ports each pod serves, which is how it tells this
    apart from ``rejected``; for the expected-versus-observed comparison it
    counts as reached (policy let the packet in).
``unsupported``
    SCTP: the kernel here has no SCTP, so SCTP is never probed.
``error``
    The probe itself failed (for instance the namespace vanished).
"""

from __future__ import annotations

import errno
import json
import os
import random
import select
import socket
import struct
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sekisho.dataplane.netns import enter

OUTCOMES = ("allowed", "dropped", "rejected", "no-listener", "unsupported", "error")
REACHED = frozenset({"allowed", "no-listener"})
"""Outcomes that show the policy let the packet reach the destination."""

_REJECT_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM}


@dataclass(frozen=True, slots=True)
class Probe:
    """One probe: from ``netns`` to ``ip`` on ``port``/``protocol`` (port 0 for ICMP)."""

    netns: str
    ip: str
    port: int
    protocol: str
    """TCP, UDP, SCTP or ICMP."""
    served: bool = True
    """Whether the destination's server listens there (tells rejected from no-listener)."""
    path: str = "/"
    """HTTP path for TCP probes."""
    pod: str | None = None
    """The ``namespace/name`` whose server must answer (checked in the answer); None: any."""


@dataclass(frozen=True, slots=True)
class Outcome:
    outcome: str
    detail: str = ""
    """Why: an errno name, or the answer's ``client`` as the server saw it."""
    answer: dict[str, object] | None = None
    """The parsed JSON answer of the destination's server, when one came back."""

    @property
    def reached(self) -> bool:
        return self.outcome in REACHED


def _refused(p: Probe, why: str) -> Outcome:
    if p.served:
        return Outcome("rejected", f"{why} on a served port")
    return Outcome("no-listener", why)


def _oserror(p: Probe, exc: OSError) -> Outcome:
    if isinstance(exc, TimeoutError | socket.timeout):
        return Outcome("dropped", "timeout")
    if exc.errno == errno.ECONNREFUSED:
        return _refused(p, "ECONNREFUSED")
    if exc.errno in _REJECT_ERRNOS:
        return Outcome("rejected", errno.errorcode.get(exc.errno or 0, str(exc)))
    return Outcome("error", str(exc))


def _parse_json(data: bytes) -> dict[str, object] | None:
    body = data.split(b"\r\n\r\n", 1)[-1].strip()
    try:
        doc = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _family(p: Probe) -> socket.AddressFamily:
    """A probe to an IPv6 address is an IPv6 probe."""
    return socket.AF_INET6 if ":" in p.ip else socket.AF_INET


def _host(p: Probe) -> str:
    return f"[{p.ip}]" if ":" in p.ip else p.ip


ANSWER_WAIT = 5.0
"""Seconds a TCP probe whose handshake completed waits for the server's answer, at least.

A policy decides on a connection's first packet (later ones are established flows, let
through); once the handshake is done only the server's answer is awaited, and a
server on a loaded machine can take longer than a probe's short timeout (which
bounds what a dropped SYN costs). Waiting longer here costs a run nothing."""


def _tcp(p: Probe, timeout: float) -> Outcome:
    with socket.socket(_family(p), socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect((p.ip, p.port))
        except OSError as exc:
            return _oserror(p, exc)
        s.settimeout(max(timeout, ANSWER_WAIT))
        try:
            s.sendall(f"GET {p.path} HTTP/1.0\r\nHost: {_host(p)}\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            if not data:
                out = _oserror(p, exc)
                return Outcome(out.outcome, "connected, then " + out.detail)
        if not data.startswith(b"HTTP/"):
            return Outcome("dropped", "connected but no HTTP answer")
        doc = _parse_json(data)
        status = data.split(b"\r\n", 1)[0].decode("latin-1")
        client = str(doc.get("client", "")) if doc else ""
        return Outcome("allowed", client or status, doc)


def _udp(p: Probe, timeout: float) -> Outcome:
    with socket.socket(_family(p), socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.connect((p.ip, p.port))
            s.send(b"sekisho probe\n")
            data = s.recv(65536)
        except OSError as exc:
            return _oserror(p, exc)
        doc = _parse_json(data)
        return Outcome("allowed", str(doc.get("client", "")) if doc else "answer", doc)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _echo(
    p: Probe,
    timeout: float,
    family: socket.AddressFamily,
    proto: int,
    packet: bytes,
    read: Callable[[bytes, str], Outcome | None],
) -> Outcome:
    """Send one echo request on a raw socket and wait for what ``read`` makes of an
    answer (None: not ours, wait on); a timeout is a drop."""
    with socket.socket(family, socket.SOCK_RAW, proto) as s:
        try:
            s.sendto(packet, (p.ip, 0))
        except OSError as exc:
            return _oserror(p, exc)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return Outcome("dropped", "timeout")
            ready, _, _ = select.select([s], [], [], left)
            if not ready:
                continue
            data, addr = s.recvfrom(65536)
            out = read(data, addr[0])
            if out is not None:
                return out


def _icmp6(p: Probe, timeout: float) -> Outcome:
    """An ICMPv6 echo request (type 128; the kernel computes the checksum); reply type 129,
    destination unreachable type 1 (code 4, port unreachable, is not sent for echoes)."""
    ident = random.randrange(1, 0xFFFF)
    packet = struct.pack("!BBHHH", 128, 0, 0, ident, 1) + b"sekisho" + os.urandom(8)
    want = socket.inet_pton(socket.AF_INET6, p.ip)

    def read(icmp: bytes, source: str) -> Outcome | None:  # no IP header on IPv6 raw
        if len(icmp) < 8:
            return None
        kind, code = icmp[0], icmp[1]
        same = socket.inet_pton(socket.AF_INET6, source.split("%")[0]) == want
        if kind == 129 and same and struct.unpack("!H", icmp[4:6])[0] == ident:
            return Outcome("allowed", "echo reply")
        if kind == 1 and len(icmp) >= 8 + 40 + 8:
            inner = icmp[8 + 40 : 8 + 48]
            if inner[0] == 128 and struct.unpack("!H", inner[4:6])[0] == ident:
                return Outcome("rejected", f"ICMPv6 unreachable code {code} from {source}")
        return None

    return _echo(p, timeout, socket.AF_INET6, socket.IPPROTO_ICMPV6, packet, read)


def _icmp(p: Probe, timeout: float) -> Outcome:
    if ":" in p.ip:
        return _icmp6(p, timeout)
    ident = random.randrange(1, 0xFFFF)
    payload = b"sekisho" + os.urandom(8)
    header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
    packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, 1) + payload

    def read(data: bytes, source: str) -> Outcome | None:
        icmp = data[(data[0] & 0x0F) * 4 :]
        if len(icmp) < 8:
            return None
        kind, code = icmp[0], icmp[1]
        if kind == 0 and source == p.ip and struct.unpack("!H", icmp[4:6])[0] == ident:
            return Outcome("allowed", "echo reply")
        if kind == 3 and len(icmp) >= 8 + 28:
            inner = icmp[8:]
            inner_ihl = (inner[0] & 0x0F) * 4
            inner_icmp = inner[inner_ihl : inner_ihl + 8]
            if len(inner_icmp) >= 6 and struct.unpack("!H", inner_icmp[4:6])[0] == ident:
                return Outcome("rejected", f"ICMP unreachable code {code} from {source}")
        return None

    return _echo(p, timeout, socket.AF_INET, socket.IPPROTO_ICMP, packet, read)


def _checked(p: Probe, out: Outcome) -> Outcome:
    """An answer from the wrong server (an address clash, a stray route) is an error."""
    if out.outcome == "allowed" and p.pod is not None and p.protocol in ("TCP", "UDP"):
        who = out.answer.get("pod") if out.answer else None
        if who != p.pod:
            return Outcome(
                "error", f"answered by {who or 'something else'}, not {p.pod}", out.answer
            )
    return out


def probe_once(p: Probe, timeout: float = 1.0) -> Outcome:
    """Run one probe in the calling thread (which enters ``p.netns`` first)."""
    if p.protocol == "SCTP":
        return Outcome("unsupported", "SCTP is not available in this kernel")
    try:
        enter(p.netns)
        if p.protocol == "TCP":
            return _checked(p, _tcp(p, timeout))
        if p.protocol == "UDP":
            return _checked(p, _udp(p, timeout))
        if p.protocol == "ICMP":
            return _icmp(p, timeout)
        return Outcome("error", f"unknown protocol {p.protocol}")
    except Exception as exc:  # a probe must never take the whole run down
        return Outcome("error", f"{type(exc).__name__}: {exc}")


def run(probes: Sequence[Probe], timeout: float = 1.0, workers: int = 96) -> list[Outcome]:
    """Run every probe in parallel threads; results in the order given.

    A ``dropped`` result is tried once more (a first packet can be lost while a
    neighbour entry resolves), so a drop costs at most two timeouts.
    """
    if not probes:
        return []
    n = max(1, min(workers, len(probes)))
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="sekisho-probe") as pool:
        first = list(pool.map(lambda p: probe_once(p, timeout), probes))
        again = [i for i, o in enumerate(first) if o.outcome == "dropped"]
        if again:
            retry = list(pool.map(lambda i: probe_once(probes[i], timeout), again))
            for i, o in zip(again, retry, strict=True):
                first[i] = o
    return first
