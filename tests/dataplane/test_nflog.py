"""The nfnetlink_log reader (:mod:`sekisho.dataplane.nflog`) on bytes the kernel sent.

``tests/data/nflog/loopback.hex`` holds what ``recv()`` read from a socket bound
to group 20 inside a throwaway namespace, while iptables (``NFLOG``) and nftables
(``log group``) rules logged an ICMP echo request (input), a TCP SYN the host
sent (output: no timestamp), and IPv6 TCP and UDP packets (input).
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from sekisho.dataplane import nflog

DATA = Path(__file__).resolve().parent.parent / "data" / "nflog" / "loopback.hex"


def blobs() -> list[bytes]:
    lines = DATA.read_text().splitlines()
    return [bytes.fromhex(ln) for ln in lines if ln and not ln.startswith("#")]


def test_recorded_messages_parse_to_what_was_logged() -> None:
    records = [r for b in blobs() for r in nflog.parse(b, received=5.0)]
    got = [
        (r.group, r.prefix, r.family, r.hook, r.protocol, r.src, r.dst, r.dport, r.icmp_type)
        for r in records
    ]
    assert got == [
        (20, "sekisho dev/web/i3 ", 4, "INPUT", "ICMP", "127.0.0.1", "127.0.0.1", None, 8),
        (20, "sekisho dev/web/e0 ", 4, "OUTPUT", "TCP", "127.0.0.1", "127.0.0.1", 81, None),
        (20, "sekisho policy dev/a b ingress rule 2: ", 6, "INPUT", "TCP", "::1", "::1", 82, None),
        (20, "sekisho policy dev/a b ingress rule 1: ", 6, "INPUT", "UDP", "::1", "::1", 53, None),
    ]
    assert all(r.received == 5.0 for r in records)
    # the kernel stamps what it receives (input), not what the host sends (output)
    stamps = [r.timestamp for r in records]
    assert stamps[1] is None
    assert all(s is not None and 1.7e9 < s < 4e9 for s in stamps[:1] + stamps[2:])
    assert records[1].sport is not None and records[1].sport > 1024
    assert records[0].indev == 1 and records[1].outdev == 1
    assert records[1].flow() == f"TCP 127.0.0.1:{records[1].sport} -> 127.0.0.1:81"
    assert records[2].flow().startswith("TCP [::1]:") and records[2].flow().endswith(" -> [::1]:82")
    assert records[0].flow() == "ICMP type 8 127.0.0.1 -> 127.0.0.1"


def test_the_bind_request_is_what_the_kernel_expects() -> None:
    req = nflog.config_request(20, seq=7, copy_range=128)
    length, kind, flags, seq, pid = struct.unpack_from("=IHHII", req)
    assert (length, kind, flags, seq, pid) == (len(req), 0x401, 0x5, 7, 0)
    family, version, group = struct.unpack_from("!BBH", req, 16)
    assert (family, version, group) == (socket.AF_UNSPEC, 0, 20)
    attrs = nflog._attrs(req, 20)
    assert attrs == {
        1: b"\x01",  # NFULA_CFG_CMD: bind
        2: struct.pack("!IBB", 128, 2, 0),  # NFULA_CFG_MODE: copy 128 bytes of the packet
        5: struct.pack("!I", 1),  # NFULA_CFG_QTHRESH: send each packet at once
        4: struct.pack("!I", 0),  # NFULA_CFG_TIMEOUT
    }
    assert len(req) % 4 == 0


def test_a_kernel_error_is_raised_with_its_errno() -> None:
    err = struct.pack("=IHHII", 36, 2, 0, 7, 0) + struct.pack("=i", -1) + b"\0" * 16
    with pytest.raises(nflog.NflogError, match="Operation not permitted"):
        nflog.parse(err)
    ack = struct.pack("=IHHII", 36, 2, 0, 7, 0) + struct.pack("=i", 0) + b"\0" * 16
    assert nflog.parse(ack) == []


@pytest.mark.parametrize("cut", [3, 17, 40, -1])
def test_truncated_bytes_are_refused_not_misread(cut: int) -> None:
    data = blobs()[0]
    with pytest.raises(nflog.NflogError, match=r"does not fit|trailing bytes"):
        nflog.parse(data[:cut])


def test_a_packet_without_payload_still_names_its_prefix() -> None:
    prefix = nflog._attr(nflog.NFULA_PREFIX, b"sekisho x/i0 \0")
    hdr = nflog._attr(nflog.NFULA_PACKET_HDR, struct.pack("!HBB", 0x0800, 2, 0))
    body = struct.pack("=BBH", 2, 0, socket.htons(9)) + hdr + prefix
    msg = struct.pack("=IHHII", 16 + len(body), 0x400, 0, 0, 0) + body
    (rec,) = nflog.parse(msg + msg[:0])
    assert (rec.group, rec.prefix, rec.hook, rec.src, rec.protocol) == (
        9,
        "sekisho x/i0 ",
        "FORWARD",
        None,
        None,
    )
    assert rec.flow() == "? None -> None"


def test_a_later_fragment_has_no_ports() -> None:
    ip = bytearray(28)
    ip[0], ip[9] = 0x45, 6
    ip[6:8] = struct.pack("!H", 185)  # fragment offset: not the first fragment
    ip[12:16], ip[16:20] = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    fields = nflog._packet(4, bytes(ip))
    assert fields == {"src": "10.0.0.1", "dst": "10.0.0.2", "protocol": "TCP"}
