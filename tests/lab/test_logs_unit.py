"""Log lines given to probes (:func:`sekisho.lab.logs.lines_for`) and shown, without a kernel."""

from __future__ import annotations

import json

from sekisho.dataplane.nflog import LogRecord
from sekisho.lab.logs import LogLine, lines_for, rule_from_prefix
from sekisho.lab.reach import ProbeTable, Reachability, format_tables

P_IN = "sekisho policy NetworkPolicy t/watch ingress rule 0: "
P_OUT = "sekisho out/e0 "


def rec(prefix: str, src: str, dst: str, proto: str, dport: int | None, icmp: int | None = None):
    sport = 40000 if dport is not None else None
    return LogRecord(20, prefix, 4, "FORWARD", src, dst, proto, sport, dport, icmp, timestamp=1.5)


def test_lines_go_to_the_probe_of_their_packet_counted_per_node_and_prefix() -> None:
    observed = [
        ("n2", rec(P_IN, "10.0.0.1", "10.0.0.2", "TCP", 80)),
        ("n1", rec(P_OUT, "10.0.0.1", "10.0.0.2", "TCP", 80)),
        ("n2", rec(P_IN, "10.0.0.1", "10.0.0.2", "TCP", 80)),  # the SYN again
        ("n2", rec(P_IN, "10.0.0.1", "10.0.0.2", "TCP", 81)),  # another port
        ("n2", rec(P_IN, "10.0.0.3", "10.0.0.2", "TCP", 80)),  # another source
        ("n2", rec(P_IN, "10.0.0.1", "10.0.0.2", "UDP", 80)),  # another protocol
        ("n2", rec(P_IN, "10.0.0.1", "10.0.0.2", "ICMP", None, 8)),
        ("n2", rec(P_IN, "10.0.0.2", "10.0.0.1", "ICMP", None, 0)),  # a reply: not the probe
    ]
    lines = lines_for(observed, "10.0.0.1", "10.0.0.2", "TCP", 80)
    assert [(x.node, x.prefix, x.packets) for x in lines] == [("n2", P_IN, 2), ("n1", P_OUT, 1)]
    assert lines[0].rule == "policy NetworkPolicy t/watch ingress rule 0"
    assert lines[1].rule == "policy out egress rule 0"
    assert (lines[0].flow, lines[0].at) == ("TCP 10.0.0.1:40000 -> 10.0.0.2:80", 1.5)
    assert lines[0].text() == (
        f"n2: {P_IN!r} = policy NetworkPolicy t/watch ingress rule 0 (2 packets;"
        " first TCP 10.0.0.1:40000 -> 10.0.0.2:80 at 00:00:01.500000 UTC)"
    )
    icmp = lines_for(observed, "10.0.0.1", "10.0.0.2", "ICMP", None)
    assert [(x.node, x.packets) for x in icmp] == [("n2", 1)]
    assert lines_for(observed, "10.0.0.2", "10.0.0.1", "ICMP", None) == []
    named = lines_for(observed, "10.0.0.3", "10.0.0.2", "TCP", 80, lambda n, p: f"{n} rule")
    assert [x.rule for x in named] == ["n2 rule"]
    assert rule_from_prefix("calico-packet: ") == "not a prefix of sekisho's"


def test_lines_and_wrong_lines_are_shown_and_in_json() -> None:
    t = ProbeTable(80, "TCP", [[True, True]] * 2, [[True, True]] * 2, [[True, True]] * 2,
                   [[None, "allowed"], ["allowed", None]], [["", ""], ["", ""]])  # fmt: skip
    t.logs = {(0, 1): [LogLine("n2", P_IN, "policy NetworkPolicy t/watch ingress rule 0", 1)]}
    r = Reachability(["t/a", "t/c"], [t])
    text = format_tables(r)
    assert f"n2: {P_IN!r} = policy NetworkPolicy t/watch ingress rule 0 (1 packet)" in text
    assert "WRONG LOG" not in text and r.log_mismatches == 0
    assert text.endswith("OK: 0 wrong cell(s) in 1 probe(s) of 2 pods (0.0 s)")
    t.log_expected = {(1, 0): [("n1", P_OUT)]}
    text = format_tables(r)
    assert (
        f"WRONG LOG t/c -> t/a TCP/80: the rendered rules log n1: {P_OUT!r}; observed none" in text
    )
    assert "MISMATCH: 0 wrong cell(s), 1 with wrong log lines" in text
    doc = json.loads(json.dumps(r.to_json()))["probes"][0]
    assert doc["logs"] == [
        {"i": 0, "j": 1, "node": "n2", "prefix": P_IN,
         "rule": "policy NetworkPolicy t/watch ingress rule 0", "packets": 1,
         "flow": "", "time": None}
    ]  # fmt: skip
    assert doc["logs_wrong"] == [{"i": 1, "j": 0, "expected": [{"node": "n1", "prefix": P_OUT}]}]
