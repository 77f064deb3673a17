"""Read the packets Log rules send to an nfnetlink_log group, inside a network namespace.

A Log rule rendered with a log group (``-j NFLOG --nflog-group N``, nft's
``log group N``) hands each packet it matches to the kernel's nfnetlink_log,
which sends it to the one netlink socket bound to group N *in that packet's
network namespace* (unlike ``LOG``, which inside a namespace writes nothing
unless the host sets ``net.netfilter.nf_log_all_netns``; we never change the
host). This module is that socket, with the standard library only:

- ``socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER)`` opened by a thread that
  entered the namespace (:func:`sekisho.dataplane.netns.enter`): a socket
  belongs to the namespace it was created in, whoever reads it later;
- one ``NFULNL_MSG_CONFIG`` request (``linux/netfilter/nfnetlink_log.h``): the
  ``NFULNL_CFG_CMD_BIND`` command for the group, copy mode ``NFULNL_COPY_PACKET``
  (the first :data:`COPY_RANGE` bytes: IP and transport headers), a queue
  threshold of 1 (each packet is sent at once rather than batched for up to a
  second), acknowledged by the kernel (``EBUSY``: another socket has the group);
- ``NFULNL_MSG_PACKET`` messages parsed by :func:`parse` into :class:`LogRecord`:
  ``NFULA_PREFIX``, the family, hook, interfaces, ``NFULA_TIMESTAMP`` (the
  kernel sends it for the prerouting, input and forward hooks) and, from
  ``NFULA_PAYLOAD``, addresses, protocol, ports and ICMP type.

Closing the socket removes the binding (the kernel drops a group's instance when
its socket goes). Every wait is bounded; the socket is closed on every path.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from sekisho.dataplane.netns import enter
from sekisho.errors import DataplaneError

__all__ = ["COPY_RANGE", "LogRecord", "NflogError", "NflogListener", "config_request", "parse"]

NETLINK_NETFILTER = 12
NFNL_SUBSYS_ULOG = 4
NFULNL_MSG_PACKET = 0
NFULNL_MSG_CONFIG = 1
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN = 1, 2, 3, 4
NLA_TYPE_MASK = 0x3FFF
"""``nla_type`` without ``NLA_F_NESTED`` and ``NLA_F_NET_BYTEORDER``."""

# nfulnl_attr_config
NFULA_CFG_CMD, NFULA_CFG_MODE, NFULA_CFG_NLBUFSIZ, NFULA_CFG_TIMEOUT, NFULA_CFG_QTHRESH = (
    1,
    2,
    3,
    4,
    5,
)
NFULNL_CFG_CMD_BIND = 1
NFULNL_COPY_PACKET = 2
# nfulnl_attr_type
NFULA_PACKET_HDR, NFULA_MARK, NFULA_TIMESTAMP = 1, 2, 3
NFULA_IFINDEX_INDEV, NFULA_IFINDEX_OUTDEV = 4, 5
NFULA_PAYLOAD, NFULA_PREFIX = 9, 10

NFPROTO_IPV4, NFPROTO_IPV6 = 2, 10
HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
"""``nf_inet_hooks`` by number."""
PROTOCOLS = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP"}

COPY_RANGE = 128
"""Bytes of each packet we ask for: an IPv6 header (40) and extension headers, then the
transport header; the payload beyond it is not read."""
SO_RCVBUFFORCE = 33
"""``SO_RCVBUFFORCE`` (``asm-generic/socket.h``; not in Python's socket module): the
receive buffer beyond ``rmem_max``, for a privileged process."""
RCVBUF = 4 << 20
"""Receive buffer (bytes) asked for: thousands of records before the kernel drops any."""

_NLMSG = struct.Struct("=IHHII")
_NLATTR = struct.Struct("=HH")
_NFGEN = struct.Struct("=BBH")
"""``nfgenmsg``: family, version, ``res_id`` (the group, big-endian: read with ``ntohs``)."""


class NflogError(DataplaneError):
    """The log group cannot be read (bound elsewhere, no privilege, no namespace) or the
    kernel sent bytes that are not nfnetlink_log messages."""


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One packet a log rule sent to the group."""

    group: int
    prefix: str
    """``NFULA_PREFIX``: the rule's log prefix (``sekisho.render.names.parse_log_prefix``)."""
    family: int
    """4 or 6 (0: a family we do not read)."""
    hook: str
    """``PREROUTING``, ``INPUT``, ``FORWARD``, ``OUTPUT`` or ``POSTROUTING``."""
    src: str | None = None
    dst: str | None = None
    protocol: str | None = None
    """``TCP``, ``UDP``, ``ICMP``, ``ICMPv6``, ``SCTP`` or the number; None: no payload."""
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    indev: int | None = None
    """Interface index the packet came in on (None: not sent)."""
    outdev: int | None = None
    mark: int | None = None
    timestamp: float | None = None
    """``NFULA_TIMESTAMP`` (seconds since the epoch): when the packet was received; the
    kernel does not send it for packets the host sends (output, postrouting)."""
    received: float = 0.0
    """When this listener read the record (``time.time()``)."""

    def flow(self) -> str:
        """``TCP 10.0.0.1:34567 -> 10.0.0.2:80`` (what the log line is about)."""
        proto = self.protocol or "?"
        if self.sport is not None and self.dport is not None:
            return f"{proto} {_hostport(self.src, self.sport)} -> {_hostport(self.dst, self.dport)}"
        kind = f" type {self.icmp_type}" if self.icmp_type is not None else ""
        return f"{proto}{kind} {self.src} -> {self.dst}"


def _hostport(addr: str | None, port: int) -> str:
    return f"[{addr}]:{port}" if addr and ":" in addr else f"{addr}:{port}"


# ------------------------------------------------------------------------- messages


def _attr(kind: int, value: bytes) -> bytes:
    length = _NLATTR.size + len(value)
    return _NLATTR.pack(length, kind) + value + b"\0" * (-length % 4)


def config_request(group: int, seq: int, copy_range: int = COPY_RANGE) -> bytes:
    """One ``NFULNL_MSG_CONFIG`` request: bind ``group``, copy ``copy_range`` bytes of each
    packet, send each packet at once (queue threshold 1, flush timeout 0); acknowledged."""
    body = _NFGEN.pack(socket.AF_UNSPEC, 0, socket.htons(group))
    body += _attr(NFULA_CFG_CMD, struct.pack("=B", NFULNL_CFG_CMD_BIND))
    body += _attr(NFULA_CFG_MODE, struct.pack("!IBB", copy_range, NFULNL_COPY_PACKET, 0))
    body += _attr(NFULA_CFG_QTHRESH, struct.pack("!I", 1))
    body += _attr(NFULA_CFG_TIMEOUT, struct.pack("!I", 0))
    kind = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG
    return _NLMSG.pack(_NLMSG.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body


def _messages(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, seq, payload) of each netlink message in ``data``."""
    at = 0
    while at + _NLMSG.size <= len(data):
        length, kind, _flags, seq, _pid = _NLMSG.unpack_from(data, at)
        if length < _NLMSG.size or at + length > len(data):
            raise NflogError(
                f"netlink message at byte {at}: length {length} does not fit the"
                f" {len(data) - at} bytes left"
            )
        yield kind, seq, data[at + _NLMSG.size : at + length]
        at += (length + 3) & ~3
    if at < len(data) and data[at:].strip(b"\0"):
        raise NflogError(f"netlink data: {len(data) - at} trailing bytes at byte {at}")


def _attrs(data: bytes, at: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while at + _NLATTR.size <= len(data):
        length, kind = _NLATTR.unpack_from(data, at)
        if length < _NLATTR.size or at + length > len(data):
            raise NflogError(f"netlink attribute at byte {at}: length {length} does not fit")
        out[kind & NLA_TYPE_MASK] = data[at + _NLATTR.size : at + length]
        at += (length + 3) & ~3
    return out


def _u32(value: bytes | None) -> int | None:
    return struct.unpack("!I", value[:4])[0] if value is not None and len(value) >= 4 else None


def _packet(family: int, payload: bytes) -> dict[str, object]:
    """Addresses, protocol, ports or ICMP type of an IP packet's first bytes (what fits)."""
    out: dict[str, object] = {}
    if family == 4 and len(payload) >= 20:
        ihl = (payload[0] & 0x0F) * 4
        proto = payload[9]
        out["src"] = str(ipaddress.IPv4Address(payload[12:16]))
        out["dst"] = str(ipaddress.IPv4Address(payload[16:20]))
        fragment = struct.unpack("!H", payload[6:8])[0] & 0x1FFF
        rest = payload[ihl:] if fragment == 0 else b""
    elif family == 6 and len(payload) >= 40:
        proto = payload[6]
        out["src"] = str(ipaddress.IPv6Address(payload[8:24]))
        out["dst"] = str(ipaddress.IPv6Address(payload[24:40]))
        rest = payload[40:]
        while proto in (0, 43, 60) and len(rest) >= 8:  # hop-by-hop, routing, destination
            proto, size = rest[0], (rest[1] + 1) * 8
            rest = rest[size:]
        if proto == 44:  # a fragment header: only the first fragment has the transport header
            if len(rest) >= 8 and _offset(rest) == 0:
                proto, rest = rest[0], rest[8:]
            else:
                proto, rest = (rest[0] if rest else proto), b""
    else:
        return out
    out["protocol"] = PROTOCOLS.get(proto, str(proto))
    if proto in (6, 17, 132) and len(rest) >= 4:
        out["sport"], out["dport"] = struct.unpack("!HH", rest[:4])
    elif proto in (1, 58) and len(rest) >= 1:
        out["icmp_type"] = rest[0]
    return out


def _offset(fragment_header: bytes) -> int:
    offset: int = struct.unpack("!H", fragment_header[2:4])[0] >> 3
    return offset


def parse(data: bytes, received: float = 0.0) -> list[LogRecord]:
    """The log records in what one ``recv`` read (other messages skipped); a netlink error
    message raises :class:`NflogError` with the kernel's errno."""
    records = []
    packet_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET
    for kind, _seq, payload in _messages(data):
        if kind == NLMSG_ERROR:
            code = struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else -errno.EIO
            if code:
                raise NflogError(f"the kernel refused a request: {os.strerror(-code)}")
            continue
        if kind != packet_type or len(payload) < _NFGEN.size:
            continue
        pf, _version, res_id = _NFGEN.unpack_from(payload)
        attrs = _attrs(payload, _NFGEN.size)
        family = {NFPROTO_IPV4: 4, NFPROTO_IPV6: 6}.get(pf, 0)
        hdr = attrs.get(NFULA_PACKET_HDR, b"")
        hook = HOOKS[hdr[2]] if len(hdr) >= 3 and hdr[2] < len(HOOKS) else "?"
        stamp = attrs.get(NFULA_TIMESTAMP)
        timestamp = None
        if stamp is not None and len(stamp) >= 16:
            sec, usec = struct.unpack("!QQ", stamp[:16])
            timestamp = sec + usec / 1e6
        prefix = attrs.get(NFULA_PREFIX, b"").split(b"\0", 1)[0].decode("utf-8", "replace")
        fields = _packet(family, attrs.get(NFULA_PAYLOAD, b""))
        records.append(
            LogRecord(
                group=socket.ntohs(res_id),
                prefix=prefix,
                family=family,
                hook=hook,
                indev=_u32(attrs.get(NFULA_IFINDEX_INDEV)),
                outdev=_u32(attrs.get(NFULA_IFINDEX_OUTDEV)),
                mark=_u32(attrs.get(NFULA_MARK)),
                timestamp=timestamp,
                received=received,
                **fields,  # type: ignore[arg-type]
            )
        )
    return records


# ------------------------------------------------------------------------- the socket


def _open_in(netns: str | None, timeout: float) -> socket.socket:
    """A netlink netfilter socket created in ``netns`` (by a thread that entered it)."""
    if netns is None:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    box: list[socket.socket | BaseException] = []
    lock = threading.Lock()
    late = [False]

    def make() -> None:
        try:
            enter(netns)
            got: socket.socket | BaseException = socket.socket(
                socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER
            )
        except BaseException as exc:  # handed to the caller
            got = exc
        with lock:
            if late[0] and isinstance(got, socket.socket):
                got.close()  # the caller gave up waiting: nobody else will close it
            box.append(got)

    t = threading.Thread(target=make, name=f"sekisho-nflog-{netns}", daemon=True)
    t.start()
    t.join(timeout)
    with lock:
        if not box:
            late[0] = True
            raise NflogError(f"opening a netlink socket in {netns} took over {timeout:.0f} s")
    got = box[0]
    if isinstance(got, BaseException):
        if isinstance(got, DataplaneError):
            raise NflogError(str(got)) from got
        raise NflogError(f"opening a netlink socket in {netns}: {got}") from got
    return got


class NflogListener:
    """The listener of one nfnetlink_log ``group`` in network namespace ``netns`` (None:
    the caller's). Use as a context manager, or call :meth:`close` on every path.

    :meth:`open` binds (raising :class:`NflogError`, the socket closed, when the
    kernel refuses); :meth:`read` returns the records that arrived, waiting at most
    ``timeout`` seconds for the first one; :attr:`lost` says whether the kernel
    dropped some because the receive buffer was full (``ENOBUFS``).
    """

    def __init__(self, group: int, netns: str | None = None, *, timeout: float = 2.0) -> None:
        self.group = group
        self.netns = netns
        self.timeout = timeout
        self.lost = False
        self._sock: socket.socket | None = None
        self._pending: list[LogRecord] = []

    @property
    def where(self) -> str:
        return f"nfnetlink_log group {self.group}" + (f" in {self.netns}" if self.netns else "")

    def open(self) -> NflogListener:
        try:
            sock = _open_in(self.netns, self.timeout)
        except NflogError as exc:
            raise NflogError(f"{self.where}: {exc}") from exc
        try:
            sock.settimeout(self.timeout)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.bind((0, 0))
            seq = int(time.monotonic() * 1000) & 0x7FFFFFFF
            sock.send(config_request(self.group, seq))
            self._await_ack(sock, seq)
        except NflogError as exc:
            sock.close()
            raise NflogError(f"{self.where}: {exc}") from exc
        except OSError as exc:
            sock.close()
            raise NflogError(f"{self.where}: {exc.strerror or exc}") from exc
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        return self

    def _await_ack(self, sock: socket.socket, seq: int) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            if time.monotonic() > deadline:
                raise NflogError(f"no answer to the bind request within {self.timeout:.0f} s")
            data = sock.recv(1 << 16)
            now = time.time()
            for kind, got, payload in _messages(data):
                if kind == NLMSG_ERROR and got == seq:
                    code = struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else 0
                    if code in (-errno.EPERM, -errno.EBUSY):
                        raise NflogError(
                            "another listener has bound this group, or this process may not"
                            f" ({errno.errorcode[-code]})"
                        )
                    if code:
                        raise NflogError(f"the kernel refused the bind: {os.strerror(-code)}")
                    return
            self._pending.extend(parse(data, now))  # packets before the answer: kept

    def read(self, timeout: float = 0.0, quiet: float = 0.05) -> list[LogRecord]:
        """The records that arrived: wait up to ``timeout`` for the first, then read until
        nothing came for ``quiet`` seconds (bounded by ``timeout + 1``)."""
        if self._sock is None:
            raise NflogError(f"{self.where}: not open")
        out, self._pending = self._pending, []
        start = time.monotonic()
        wait = max(timeout, quiet)
        while time.monotonic() - start < timeout + 1.0:
            ready, _, _ = select.select([self._sock], [], [], wait)
            if not ready:
                break
            try:
                data = self._sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # the kernel dropped records; go on reading
                    self.lost = True
                    continue
                raise NflogError(f"{self.where}: {exc.strerror or exc}") from exc
            out.extend(parse(data, time.time()))
            wait = quiet
        return out

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> NflogListener:
        return self.open() if self._sock is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()
