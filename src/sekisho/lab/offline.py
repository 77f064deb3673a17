"""The seed report's findings without a kernel: the semantics and the rendered rules.

Where the lab cannot run (no root, no network namespaces), the demo still
checks every finding of the report, twice over: once with the semantics
(:func:`sekisho.semantics.verdict`) and once by walking the same flow through
the iptables rules sekisho renders for each node on its path (the packet
interpreter of :mod:`sekisho.render.interpret`). A check passes only when both
agree with what the report observed. No packet is sent, and the output says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sekisho.lab.report import Out, Report, conclusion
from sekisho.model.types import Cluster
from sekisho.render import render_node
from sekisho.render.interpret import Decision, IptablesProgram, NftProgram, Packet, State, program
from sekisho.render.path import enforce
from sekisho.semantics import Flow, compute_matrix, resolve_endpoint, verdict

EXTERNAL = "203.0.113.10"
"""The lab's external host (a documentation address), standing in for 8.8.8.8."""


@dataclass(frozen=True, slots=True)
class Expect:
    """One flow and what the report saw: ``True`` = it got through."""

    title: str
    src: str
    dst: str
    protocol: str
    port: int | None
    through: bool
    state: State = "NEW"


class Offline(Report):
    """Checks flows of one cluster with the semantics and with its rendered rules."""

    def __init__(self, cluster: Cluster, out: Out) -> None:
        super().__init__(out)
        self.cluster = cluster

        @cache
        def prog(node: str) -> IptablesProgram | NftProgram:
            return program(render_node(cluster, node, backend="iptables").render_text())

        self._prog = prog

    def _evaluate(self, node: str, packet: Packet) -> Decision:
        return self._prog(node).evaluate(packet)

    def check(self, e: Expect) -> None:
        c = self.cluster
        flow = Flow(
            resolve_endpoint(c, e.src),
            resolve_endpoint(c, e.dst),
            e.protocol,  # type: ignore[arg-type]
            e.port,
        )
        rules_allow, trail = enforce(flow, self._evaluate, e.state)
        if e.state == "NEW":
            v = verdict(c, flow)
            meaning = f"semantics {'allowed' if v.allowed else 'denied'} ({v.reason})"
            semantic_ok = v.allowed == e.through
        else:
            meaning = "a reply: the semantics allow replies of allowed connections"
            semantic_ok = e.through
        if trail:
            hop, decision = trail[-1]
            rules = f"rules {decision.verdict} on {hop.node}: {decision.because}"
        else:
            rules = "no node's rules filter it"
        ok = semantic_ok and rules_allow == e.through
        want = "gets through" if e.through else "is stopped"
        self.verdict(ok, f"{e.title} ({want}): {meaning}; {rules}")


def _finding1(o: Offline) -> None:
    c = o.cluster
    green = c.pod("prod/green")
    ctrl = c.pod("kube-system/nginx-ingress-controller")
    assert green is not None and green.node is not None and ctrl is not None
    node = green.node
    o.heading(f"Finding 1: iptables + ipset, as rendered for {node} (where prod/green runs)")
    ruleset = render_node(c, node, backend="iptables")
    only = [
        s
        for s in getattr(ruleset, "sets", ())
        if [m.removesuffix("/32") for m in s.members] == [str(ctrl.ip)]
    ]
    for s in only:
        o.out(f"  set {s.name} type {s.type}: members {', '.join(s.members)}")
    o.verdict(bool(only), f"a set holds exactly the ingress controller's IP {ctrl.ip}")
    text = ruleset.render_text()
    rules = [
        line
        for line in text.splitlines()
        for s in only
        if f"--match-set {s.name} src" in line
        and re.search(r"--dports 80\b", line)
        and "MARK" in line
    ]
    for line in rules:
        o.out(f"  {line}")
    o.verdict(bool(rules), "a rule matches that set as the source on TCP 80 and sets the mark")


def _finding2(o: Offline) -> None:
    o.heading("Finding 2: a pod's own node is not filtered (part1: only TCP 80 into prod)")
    for e in (
        Expect("node k8s-node1 pings prod/blue", "k8s-node1", "prod/blue", "ICMP", None, True),
        Expect(
            "node k8s-node1 reaches prod/blue on TCP 81", "k8s-node1", "prod/blue", "TCP", 81, True
        ),
        Expect(
            "dev/blue (same node) pings prod/blue", "dev/blue", "prod/blue", "ICMP", None, False
        ),
        Expect("dev/blue on TCP 81", "dev/blue", "prod/blue", "TCP", 81, False),
        Expect("dev/blue curls prod/blue", "dev/blue", "prod/blue", "TCP", 80, True),
        Expect("node k8s-node2 pings prod/blue", "k8s-node2", "prod/blue", "ICMP", None, False),
    ):
        o.check(e)


def _finding3(o: Offline) -> None:
    o.heading("Finding 3: stateful (part1: prod/blue takes only TCP 80 in, yet gets its replies)")
    for e in (
        Expect("prod/blue pings dev/blue", "prod/blue", "dev/blue", "ICMP", None, True),
        Expect(
            "the echo reply from dev/blue into prod/blue",
            "dev/blue",
            "prod/blue",
            "ICMP",
            None,
            True,
            "ESTABLISHED",
        ),
        Expect(
            "a new ping from dev/blue into prod/blue", "dev/blue", "prod/blue", "ICMP", None, False
        ),
        Expect("prod/blue pings the external host", "prod/blue", EXTERNAL, "ICMP", None, True),
        Expect("prod/blue curls the external host", "prod/blue", EXTERNAL, "TCP", 80, True),
    ):
        o.check(e)


def _finding4(o: Offline) -> None:
    o.heading("Finding 4: matchExpressions, ingress and egress together (part2)")
    for src, dst, ping_ok, curl_ok in (
        ("dev/blue", "dev/red", False, True),
        ("dev/green", "dev/red", False, False),
        ("dev/red", "dev/blue", False, False),
        ("dev/red", "dev/green", False, True),
    ):
        o.check(Expect(f"{src} -> {dst} ping", src, dst, "ICMP", None, ping_ok))
        o.check(Expect(f"{src} -> {dst} curl", src, dst, "TCP", 80, curl_ok))


def _finding5(o: Offline) -> None:
    ctrl = "kube-system/nginx-ingress-controller"
    o.heading("Finding 5: through the ingress controller (its proxy connects from its own IP)")
    for e in (
        Expect("prod/blue -> the controller (client leg)", "prod/blue", ctrl, "TCP", 80, True),
        Expect("the controller -> prod/green (proxied leg)", ctrl, "prod/green", "TCP", 80, True),
        Expect("prod/blue -> prod/green directly", "prod/blue", "prod/green", "TCP", 80, False),
    ):
        o.check(e)


def _matrix(o: Offline) -> None:
    m = compute_matrix(o.cluster, [(80, "TCP"), (None, "ICMP")])
    o.heading("Every pod pair as the semantics see it (part2; '.' allowed, 'X' denied, '-' self)")
    for i, pod in enumerate(m.pods):
        o.out(f"  {i}  {pod.key}")
    n = len(m.pods)
    for probe in m.probes:
        o.out("")
        o.out(f"  {probe.protocol}{'' if probe.port is None else f'/{probe.port}'}")
        o.out("      " + " ".join(str(j) for j in range(n)))
        for i in range(n):
            cells = ["-" if i == j else "." if probe.allowed[i, j] else "X" for j in range(n)]
            o.out(f"  {i:>2}  " + " ".join(cells))


def run_offline(seed: Path, out: Out) -> bool:
    """Every finding of the seed report checked by semantics and rendered rules; True if all pass."""
    from sekisho.model import load_cluster

    base = seed / "cluster.yaml"
    part1 = Offline(load_cluster([str(base), str(seed / "part1")]), out)
    part2 = Offline(load_cluster([str(base), str(seed / "part2")]), out)
    _finding1(part2)
    _finding2(part1)
    _finding3(part1)
    _finding4(part2)
    _finding5(part2)
    _matrix(part2)
    passed = part1.passed + part2.passed
    failed = part1.failed + part2.failed
    out("")
    out(conclusion(passed, failed, " (offline: semantics and rendered rules, no packets)"))
    return failed == 0
