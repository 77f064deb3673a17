"""Random policy programs: the walk (trace) = the matrix = the interpreter over the rendered
text of BOTH backends.

The programs (``tests/programs.py``) have every action (allow, deny, pass, log),
three tiers with both end actions, orders and ties, negated selectors, nets,
ports and protocols, ICMP type and code, named ports and node selectors. For
every ordered pair of endpoints (pods, hostNetwork pods, nodes, two external
addresses) and every probe, the interpreter walking the packet through each
node on its path must say what the walk says, and for pod pairs what the
matrix says; later packets of a connection (ESTABLISHED) pass, except where an
untracked (doNotTrack) stage still sees them (``Verdict.established``).
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Callable
from functools import cache

from hypothesis import HealthCheck, given, settings

from programs import PROBES, clusters, programs
from sekisho.model.types import Cluster
from sekisho.render import BACKENDS, Backend, render_node
from sekisho.render.interpret import Decision, IptablesProgram, NftProgram, Packet, program
from sekisho.render.path import cluster_nodes, enforce, enforce_replies
from sekisho.semantics import (
    Endpoint,
    Flow,
    compute_matrix,
    node_endpoint,
    pod_endpoint,
    verdict,
)
from sekisho.semantics.program import Program
from sekisho.semantics.verdict import Verdict

EXTERNAL = (ipaddress.IPv4Address("8.8.8.8"), ipaddress.IPv4Address("10.0.3.7"))
"""Outside every pod CIDR; the second inside some of the programs' nets."""


def endpoints(cluster: Cluster) -> list[Endpoint]:
    eps = [pod_endpoint(cluster, p) for p in cluster.pods]
    eps += [node_endpoint(n) for n in cluster.nodes]
    eps += [Endpoint("external", None, None, ip, str(ip)) for ip in EXTERNAL]
    return eps


def evaluator(
    cluster: Cluster, prog: Program, backend: Backend
) -> Callable[[str, Packet], Decision]:
    @cache
    def parsed(node: str) -> IptablesProgram | NftProgram:
        text = render_node(cluster, node, backend=backend, program=prog).render_text()
        return program(text)

    def evaluate(node: str, packet: Packet) -> Decision:
        return parsed(node).evaluate(packet)

    return evaluate


def unknown_reply_port(v: Verdict) -> bool:
    """Whether a rule met by the replies missed because of the ephemeral port."""
    return any(
        "is not known" in why
        for st in v.replies
        for tv in st.tiers
        for pv in tv.policies
        for rr in pv.rules
        for why in rr.reasons
    )


def check(
    cluster: Cluster,
    prog: Program,
    probes: tuple[tuple[int | None, str], ...] | list[tuple[int | None, str]] = PROBES,
) -> None:
    eps = endpoints(cluster)
    m = compute_matrix(cluster, probes, program=prog)
    index = {p.key: i for i, p in enumerate(m.pods)}
    for backend in BACKENDS:
        evaluate = evaluator(cluster, prog, backend)
        for node in cluster_nodes(cluster):
            evaluate(node, Packet("1.1.1.1", "1.1.1.2"))  # every node renders and parses
        for (src, dst), probe in itertools.product(itertools.product(eps, eps), m.probes):
            if src.kind != "pod" and dst.kind != "pod":
                continue
            flow = Flow(src, dst, probe.protocol, probe.port)  # type: ignore[arg-type]
            want = verdict(cluster, flow, program=prog)
            got, trail = enforce(flow, evaluate)
            where = f"{backend}: {src.label} -> {dst.label} {flow.service}"
            if got and prog.untracked:
                # The replies through the raw table too (verdict.py: _replies), at
                # a port the kernel could pick, unless the walk said a rule's match on
                # it depends on which one it picks.
                back, rtrail = enforce_replies(flow, evaluate)
                if unknown_reply_port(want):
                    got = want.allowed or want.reason == "reply-denied"
                else:
                    trail += rtrail
                    got = back
            assert got == want.allowed, (
                f"{where}: walk {want.allowed} ({want.reason}), rules {got}: "
                + " / ".join(f"{h.node} {h.packet.hook}: {d.verdict} {d.rule}" for h, d in trail)
                + "\n"
                + "\n".join(want.lines())
            )
            if src.pod is not None and dst.pod is not None:
                i, j = index.get(src.pod.key), index.get(dst.pod.key)
                if i is not None and j is not None:
                    assert bool(probe.allowed[i, j]) is got, f"{where}: matrix differs"
            later, trail = enforce(flow, evaluate, state="ESTABLISHED")
            assert later == want.established, (
                f"{where}: ESTABLISHED: walk {want.established}, rules {later}: "
                + " / ".join(f"{h.node} {h.packet.hook}: {d.verdict} {d.rule}" for h, d in trail)
            )


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(clusters(), programs())
def test_rendered_programs_agree_with_walk_and_matrix(cluster: Cluster, prog: Program) -> None:
    check(cluster, prog)
