"""The interpreter: what it refuses, and small hand-written rulesets with known outcomes."""

from __future__ import annotations

import pytest

import sekisho.render
from sekisho.render.interpret import Packet, RulesetSyntaxError, program

IPT = """
create s1 hash:net family inet -exist
create t1 hash:net family inet -exist
flush t1
add t1 10.0.0.0/8
swap t1 s1
destroy t1
*filter
:c - [0:0]
-A c -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment est -j ACCEPT
-A c -p tcp -m set --match-set s1 src -m multiport --dports 80,90:99 -m comment --comment web -j MARK --set-xmark 0x10000/0x10000
-A c -m mark --mark 0x10000/0x10000 -m comment --comment ok -j RETURN
-A c -m comment --comment deny -j DROP
COMMIT
-I FORWARD 1 -i cali+ -m comment --comment hook -j c
"""

NFT = """
table inet t {}
delete table inet t
table inet t {
	set s1 {
		type ipv4_addr
		flags interval
		elements = { 10.0.0.0/8 }
	}
	chain fwd {
		type filter hook forward priority filter - 1; policy accept;
		iifname "cali*" jump c comment "hook"
	}
	chain c {
		ct state established,related accept comment "est"
		ip saddr @s1 tcp dport { 80, 90-99 } meta mark set meta mark | 0x00010000 return comment "web"
		meta mark & 0x00010000 == 0x00010000 return comment "ok"
		drop comment "deny"
	}
}
"""


@pytest.mark.parametrize(
    "text", [pytest.param(IPT, id="iptables"), pytest.param(NFT, id="nftables")]
)
@pytest.mark.parametrize(
    ("packet", "verdict", "rule"),
    [
        pytest.param(
            Packet("10.1.1.1", "1.1.1.1", "TCP", 80, iif="cali1"), "ACCEPT", None, id="allowed"
        ),
        pytest.param(
            Packet("10.1.1.1", "1.1.1.1", "TCP", 95, iif="cali1"), "ACCEPT", None, id="range"
        ),
        pytest.param(
            Packet("10.1.1.1", "1.1.1.1", "TCP", 100, iif="cali1"), "DROP", "deny", id="port"
        ),
        pytest.param(
            Packet("10.1.1.1", "1.1.1.1", "UDP", 80, iif="cali1"), "DROP", "deny", id="proto"
        ),
        pytest.param(
            Packet("11.1.1.1", "1.1.1.1", "TCP", 80, iif="cali1"), "DROP", "deny", id="peer"
        ),
        pytest.param(
            Packet("10.1.1.1", "1.1.1.1", "ICMP", None, iif="cali1"), "DROP", "deny", id="icmp"
        ),
        pytest.param(
            Packet("11.1.1.1", "1.1.1.1", "TCP", 1, "ESTABLISHED", iif="cali1"),
            "ACCEPT",
            "est",
            id="reply",
        ),
        pytest.param(
            Packet("11.1.1.1", "1.1.1.1", "TCP", 1, iif="eth0"), "ACCEPT", None, id="not-hooked-if"
        ),
        pytest.param(
            Packet("11.1.1.1", "1.1.1.1", "TCP", 1, iif="cali1", hook="OUTPUT"),
            "ACCEPT",
            None,
            id="output",
        ),
    ],
)
def test_small_rulesets(text: str, packet: Packet, verdict: str, rule: str | None) -> None:
    d = program(text).evaluate(packet)
    assert d.verdict == verdict
    if rule is not None:
        assert d.rule == rule


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("*filter\n-A c -m foo --bar 1 -j ACCEPT\nCOMMIT\n", id="ipt-unknown-option"),
        pytest.param(
            "*filter\n-A c -j nowhere\nCOMMIT\n-I FORWARD 1 -j c\n", id="ipt-unknown-chain"
        ),
        pytest.param("something else\n", id="ipt-unknown-line"),
        pytest.param(
            "table inet t {\n\tchain c {\n\t\tip saddr 1.2.3.4 accept\n\t}\n}\n",
            id="nft-literal-addr",
        ),
        pytest.param(
            "table inet t {\n\tchain c {\n\t\tfib daddr type local accept\n\t}\n}\n",
            id="nft-unknown",
        ),
    ],
)
def test_refuses_what_it_does_not_know(text: str) -> None:
    with pytest.raises(RulesetSyntaxError):
        program(text).evaluate(Packet("1.1.1.1", "2.2.2.2", "TCP", 80, iif="cali1"))


def test_public_surface_sorted_and_importable() -> None:
    assert sekisho.render.__all__ == sorted(sekisho.render.__all__)
    for name in sekisho.render.__all__:
        assert hasattr(sekisho.render, name), name


EARLY_IPT = """
*raw
:r - [0:0]
-A r -p tcp -m multiport --dports 80 -m comment --comment untracked -j MARK --set-xmark 0x10000/0x10000
-A r -m mark --mark 0x10000/0x10000 -m comment --comment notrack -j NOTRACK
-A r -p tcp -m multiport --dports 81 -m comment --comment raw-deny -j DROP
-A r -m mark --mark 0x10000/0x10000 -m comment --comment raw-accept -j ACCEPT
COMMIT
*filter
:f - [0:0]
-A f -m mark --mark 0x10000/0x10000 -m comment --comment early -j ACCEPT
-A f -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment est -j ACCEPT
-A f -m conntrack --ctstate UNTRACKED -m comment --comment untracked-state -j DROP
-A f -m comment --comment deny -j DROP
COMMIT
# --- hooks: insert first in the builtin chains (iptables -t filter) ---
-I INPUT 1 -m comment --comment hook -j f
# --- hooks: insert first in the builtin chains (iptables -t raw) ---
-I PREROUTING 1 -m comment --comment hook -j r
"""

EARLY_NFT = """
table inet t {
	chain pre {
		type filter hook prerouting priority raw; policy accept;
		tcp dport 80 meta mark set meta mark | 0x00010000 comment "untracked"
		meta mark & 0x00010000 == 0x00010000 notrack comment "notrack"
		tcp dport 81 drop comment "raw-deny"
		meta mark & 0x00010000 == 0x00010000 accept comment "raw-accept"
	}
	chain inp {
		type filter hook input priority filter - 1; policy accept;
		meta mark & 0x00010000 == 0x00010000 accept comment "early"
		ct state established,related accept comment "est"
		drop comment "deny"
	}
}
"""


@pytest.mark.parametrize("text", [EARLY_IPT, EARLY_NFT], ids=["iptables", "nftables"])
@pytest.mark.parametrize(
    ("port", "state", "verdict", "rule", "table"),
    [
        # an accept in raw ends only raw: the mark carries to filter, which accepts early
        (80, "NEW", "ACCEPT", "early", "filter"),
        # a drop in raw is final, and named as raw's
        (81, "NEW", "DROP", "raw-deny", "raw"),
        (81, "ESTABLISHED", "DROP", "raw-deny", "raw"),
        # raw decides nothing: filter as before
        (82, "ESTABLISHED", "ACCEPT", "est", "filter"),
        (82, "NEW", "DROP", "deny", "filter"),
    ],
)
def test_raw_before_filter(
    text: str, port: int, state: str, verdict: str, rule: str, table: str
) -> None:
    d = program(text).evaluate(
        Packet("10.0.0.1", "10.0.0.2", "TCP", port, state, iif="eth0", hook="INPUT")  # type: ignore[arg-type]
    )
    assert (d.verdict, d.rule, d.table) == (verdict, rule, table), d


def test_notrack_makes_the_packet_untracked() -> None:
    """After NOTRACK an ESTABLISHED packet is UNTRACKED to the later tables (iptables'
    ``--ctstate UNTRACKED`` matches it, ``ESTABLISHED`` does not)."""
    text = EARLY_IPT.replace(
        "-A f -m mark --mark 0x10000/0x10000 -m comment --comment early -j ACCEPT\n", ""
    )
    d = program(text).evaluate(
        Packet("10.0.0.1", "10.0.0.2", "TCP", 80, "ESTABLISHED", iif="eth0", hook="INPUT")
    )
    assert (d.verdict, d.rule) == ("DROP", "untracked-state"), d


NFT_KINDS = """
table inet t {
	set hosts {
		type ipv4_addr
		elements = { 10.0.0.1, 10.0.0.2 }
	}
	set nets {
		type ipv4_addr
		flags interval
		elements = { 10.0.0.1, 10.8.0.0/16 }
	}
	chain fwd {
		type filter hook forward priority filter - 1; policy accept;
		ip saddr @hosts accept comment "hosts"
		ip saddr @nets accept comment "nets"
		drop comment "deny"
	}
}
"""


@pytest.mark.parametrize(
    ("src", "rule"),
    [
        pytest.param("10.0.0.2", "hosts", id="plain-set"),
        pytest.param("10.8.3.4", "nets", id="interval-set"),
        pytest.param("10.0.0.3", "deny", id="neither"),
    ],
)
def test_nft_address_sets_with_and_without_interval_flag(src: str, rule: str) -> None:
    """The renderer writes host-only address sets without ``flags interval``; both read."""
    d = program(NFT_KINDS).evaluate(Packet(src, "1.1.1.1", "TCP", 80, iif="x"))
    assert d.rule == rule
