"""An address set that gains or loses a network is made again with no moment without enforcement.

The renderer writes an address set of single addresses without ``flags interval``
and one that holds a network with it (:attr:`sekisho.render.nftables.NftSet.interval`);
the flags of a set cannot change in place, and on this kernel a set made (or emptied) in
the transaction that moves the rules lets packets of the moment of the commit miss it, so
the applier moves the rules through a scratch set in three transactions. Here a
policy chain drops what the node sends to the addresses of one set; while a process in
the namespace sends UDP datagrams to an address in the set without pause, the set flips
between plain and interval (a network joins and leaves it) for seconds. Not one datagram
may arrive, while datagrams to an address outside the set do (the probe works), and the
kernel lists the set with the flags its members need.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from sk_kernel import PREFIX, sh, throwaway_netns

from sekisho.dataplane import LibnftRunner, NftApplier
from sekisho.render.nftables import NftRuleset, NftSet

pytestmark = pytest.mark.privileged

SET = f"{PREFIX}-s-probe"
DENIED, OTHER = "127.0.0.2", "127.0.0.3"
FLIPPING = 3.0
"""Seconds the set changes kind, as often as the applier can (about 1,000 times here;
before the scratch set, a flip in one transaction let a datagram through every ~1,000)."""

SENDER = f"""
import socket, sys, time
rx = {{}}
for ip in ({DENIED!r}, {OTHER!r}):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, 9999))
    s.setblocking(False)
    rx[ip] = s
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
tx.setblocking(False)
sent = dict.fromkeys(rx, 0)
got = dict.fromkeys(rx, 0)
print("ready", flush=True)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    for ip in rx:
        sent[ip] += 1
        try:
            tx.sendto(b"x", (ip, 9999))
        except OSError:  # EPERM: dropped on output
            pass
        try:
            while True:
                rx[ip].recv(16)
                got[ip] += 1
        except BlockingIOError:
            pass
    time.sleep(0.0002)
print(sent[{DENIED!r}], got[{DENIED!r}], sent[{OTHER!r}], got[{OTHER!r}], flush=True)
"""


def ruleset(elements: tuple[str, ...], name: str = SET) -> NftRuleset:
    policy = f"{PREFIX}-po-probe"
    return NftRuleset(
        prefix=PREFIX,
        table=PREFIX,
        sets=(NftSet(name, "ipv4_addr", elements, interval=any("/" in e for e in elements)),),
        chains=(
            (
                f"{PREFIX}-OUTPUT",
                "type filter hook output priority filter - 1; policy accept;",
                (f"jump {policy}",),
            ),
            (policy, None, (f"ip daddr @{name} drop",)),
        ),
    )


@pytest.mark.parametrize(
    ("plain", "interval"),
    [
        pytest.param(
            ruleset((DENIED,)), ruleset((DENIED, "10.0.0.0/8")), id="one-set-changes-kind"
        ),
        # the rule moves to a new interval set and the old set goes (linger 0 here): a new
        # policy with an ipBlock, a peer that changed
        pytest.param(
            ruleset((DENIED,)),
            ruleset((DENIED, "10.0.0.0/8"), f"{PREFIX}-s-other"),
            id="rule-moves-to-a-new-interval-set",
        ),
    ],
)
def test_a_set_changing_kind_never_leaves_its_addresses_unenforced(
    plain: NftRuleset, interval: NftRuleset
) -> None:
    one_set = plain.sets[0].name == interval.sets[0].name
    with throwaway_netns() as ns:
        runner = LibnftRunner(ns)
        applier = NftApplier(runner, PREFIX, linger=10.0 if one_set else 0.0)
        try:
            applier.apply(plain)
            sender = subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, "-c", SENDER, str(FLIPPING + 1.5)],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert sender.stdout is not None
                assert sender.stdout.readline().strip() == "ready"
                flips, end = 0, time.monotonic() + FLIPPING
                while time.monotonic() < end:
                    rs = interval if flips % 2 == 0 else plain
                    result = applier.apply(rs)
                    assert result.changes
                    if flips % 50 == 0:
                        listed = sh(ns, f"nft list table inet {PREFIX}")
                        assert ("flags interval" in listed) == (rs is interval), listed
                        assert "-t-" not in listed, "the scratch set is gone"
                    flips += 1
                assert flips >= 20, "the set changed kind often enough to tell"
                applier.apply(plain)
                assert applier.drift(plain) == ()
                out, _ = sender.communicate(timeout=30)
            finally:
                if sender.poll() is None:
                    sender.kill()
                    sender.wait()
        finally:
            runner.close()
    sent, got, _sent_other, got_other = map(int, out.split())
    assert got == 0, f"{got} of {sent} datagrams to {DENIED} passed while the set flipped"
    assert got_other > 100, "the probe reaches an address outside the set"
