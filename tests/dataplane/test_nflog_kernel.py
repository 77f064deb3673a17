"""The nfnetlink_log listener against a real kernel, in a throwaway network namespace.

A Log rule of each backend (iptables ``NFLOG``, nftables ``log group``) logs ICMP
echo requests on the namespace's loopback; the listener bound to the group in
that namespace reads them with their prefix, addresses and hook. A second
listener for the same group is refused, closing unbinds (a new one binds), a
namespace that does not exist is a located error, and nothing logged reads as
nothing, promptly.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator

import pytest

from sekisho.dataplane.nflog import NflogError, NflogListener

pytestmark = pytest.mark.privileged

GROUP = 23
PREFIX = "sekisho policy NetworkPolicy t/w ingress rule 0: "


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"sk-nfl-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def run(ns: str, *argv: str, stdin: str | None = None) -> None:
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, *argv], input=stdin, text=True, capture_output=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_the_listener_reads_what_a_log_rule_sends(netns: str, backend: str) -> None:
    if backend == "iptables":
        rule = f'-A INPUT -p icmp -j NFLOG --nflog-prefix "{PREFIX}" --nflog-group {GROUP}'
        run(netns, "iptables-restore", "--noflush", stdin=f"*filter\n{rule}\nCOMMIT\n")
    else:
        script = (
            "table inet t {\n chain in {\n  type filter hook input priority 0;\n"
            f'  meta l4proto icmp log prefix "{PREFIX}" group {GROUP}\n }}\n}}\n'
        )
        run(netns, "nft", "-f", "-", stdin=script)
    # The listener's own timeout (30 s) is far above the bound below: a read() that
    # waited on the socket instead of returning at once fails, a slow machine does not.
    with NflogListener(GROUP, netns, timeout=30.0) as listener:
        with pytest.raises(NflogError, match="another listener has bound this group"):
            NflogListener(GROUP, netns).open()
        start = time.monotonic()
        assert listener.read() == []
        assert time.monotonic() - start < 10.0
        run(netns, "ping", "-c", "1", "-W", "1", "127.0.0.1")
        records = listener.read(timeout=1.0)
    requests = [r for r in records if r.icmp_type == 8]
    assert len(requests) == 1, records
    r = requests[0]
    assert (r.group, r.prefix, r.family, r.hook) == (GROUP, PREFIX, 4, "INPUT")
    assert (r.src, r.dst, r.protocol) == ("127.0.0.1", "127.0.0.1", "ICMP")
    assert r.timestamp is not None and abs(r.timestamp - r.received) < 5
    assert not listener.lost
    # closed: the group is free again, and a closed listener reads nothing
    with pytest.raises(NflogError, match="not open"):
        listener.read()
    with NflogListener(GROUP, netns) as again:
        assert again.read() == []


def test_a_missing_namespace_is_named() -> None:
    with pytest.raises(NflogError, match=r"group 5 in sk-nfl-missing: .*does not exist"):
        NflogListener(5, "sk-nfl-missing").open()
