"""Log rules' lines with real packets: the lab's agents render them as NFLOG to the lab's
group, and each probe shows exactly the lines of the Log rules its packets met.

A small lab (two nodes, three pods) with two Calico policies: ``t/watch`` logs TCP
from ``a`` into ``c`` (ingress, on c's node n2), ``t/out`` logs UDP out of ``a``
(egress, on a's node n1); both then allow. Every ordered pair is probed over TCP,
UDP and ICMP, and every cell's lines are compared with the expected ones: a probe
through a Log rule has its line (once: the probe is allowed, so only its first
packet meets the policy chains), every other probe has none. Both backends.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from sekisho.lab.core import Lab
from sekisho.lab.logs import LogCapture
from sekisho.lab.reach import format_tables, measure
from sekisho.render import names

from .conftest import lab_namespaces

pytestmark = pytest.mark.privileged

WATCH = "NetworkPolicy t/watch"
OUT = "NetworkPolicy t/out"


def _objects() -> list[dict[str, Any]]:
    def node(name: str, ip: str, cidr: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name},
            "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
        }

    def pod(name: str, ip: str, node_name: str) -> dict[str, Any]:
        ports = [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 80, "protocol": "UDP"}]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "t", "labels": {"app": name}},
            "spec": {"nodeName": node_name, "containers": [{"name": "c", "ports": ports}]},
            "status": {"podIP": ip},
        }

    def policy(name: str, selector: str, direction: str, log: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "projectcalico.org/v3",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "t"},
            "spec": {
                "order": 10,
                "selector": selector,
                direction: [{"action": "Log", **log}, {"action": "Allow"}],
            },
        }

    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t"}},
        node("n1", "192.168.120.11", "10.244.1.0/24"),
        node("n2", "192.168.120.12", "10.244.2.0/24"),
        pod("a", "10.244.1.5", "n1"),
        pod("b", "10.244.1.6", "n1"),
        pod("c", "10.244.2.5", "n2"),
        policy(
            "watch",
            "app == 'c'",
            "ingress",
            {"protocol": "TCP", "source": {"selector": "app == 'a'"}},
        ),
        policy("out", "app == 'a'", "egress", {"protocol": "UDP"}),
    ]


def expected(src: str, dst: str, protocol: str) -> set[tuple[str, str, str, int]]:
    """(node, policy, direction, rule) of each Log rule the probe's packets meet."""
    out = set()
    if src == "t/a" and protocol == "UDP":
        out.add(("n1", OUT, "egress", 0))
    if src == "t/a" and dst == "t/c" and protocol == "TCP":
        out.add(("n2", WATCH, "ingress", 0))
    return out


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_each_probe_shows_exactly_the_lines_of_its_log_rules(
    backend: str, lab_name: str, lab_root: Path
) -> None:
    lab = Lab.up(_objects(), name=lab_name, root=lab_root, backend=backend)
    try:
        assert lab.state.log_group is not None
        with LogCapture(lab) as capture:
            result = measure(
                lab.cluster, lab.plan, [(80, "TCP"), (80, "UDP"), (None, "ICMP")], capture=capture
            )
        assert capture.problems == []
        assert result.mismatches == 0
        assert result.log_problems == []
        assert result.log_mismatches == 0  # the kernel's lines are the rendered rules' ones
        seen = 0
        for table in result.probes:
            assert table.logs is not None
            for i, src in enumerate(result.pods):
                for j, dst in enumerate(result.pods):
                    if i == j:
                        continue
                    want = expected(src, dst, table.protocol)
                    lines = table.logs.get((i, j), [])
                    got = set()
                    for line in lines:
                        parsed = names.parse_log_prefix(line.prefix)
                        assert parsed is not None, line
                        _, _, direction, index = parsed
                        label = WATCH if direction == "ingress" else OUT
                        assert names.log_prefix_names(line.prefix, label), line
                        assert line.rule == f"policy {label} {direction} rule {index} (Log)"
                        assert line.packets == 1, line  # an allowed probe: its first packet
                        got.add((line.node, label, direction, index))
                    assert got == want, (src, dst, table.label, lines)
                    assert len(lines) == len(want)
                    seen += len(lines)
        assert seen == 3  # a -> c TCP, a -> b UDP, a -> c UDP
        # the table shows them, each with its policy rule named
        shown = format_tables(result)
        assert f"= policy {WATCH} ingress rule 0 (Log) (1 packet; first TCP 10.244.1.5:" in shown
        assert f"= policy {OUT} egress rule 0 (Log) (1 packet; first UDP 10.244.1.5:" in shown
        # the kernel stamped the packets it received (forward): now, give or take
        for table in result.probes:
            for line in (x for lines in (table.logs or {}).values() for x in lines):
                assert line.at is not None and abs(line.at - time.time()) < 120, line
    finally:
        lab.down()
    assert not lab_namespaces(lab_name)
