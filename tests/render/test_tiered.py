"""A program with tiers, Deny, Pass and Log (``tiered.py``): rendered, interpreted, goldens."""

from __future__ import annotations

import pytest

from render import tiered
from render.goldens import check_golden
from render.test_program_differential import check, evaluator
from sekisho.render import names, render_node
from sekisho.render.path import enforce
from sekisho.semantics import Flow, pod_endpoint, verdict


def test_walk_matrix_and_both_backends_agree() -> None:
    check(tiered.cluster(), tiered.program())


@pytest.mark.parametrize(
    ("src", "proto", "port", "allowed", "because"),
    [
        pytest.param("a/y", "TCP", 80, False, "deny-y", id="deny-in-first-tier"),
        pytest.param("b/z", "TCP", 80, True, "allow-web", id="pass-skips-later-allow"),
        pytest.param("b/z", "TCP", 9000, False, None, id="end-of-default-tier"),
        pytest.param("b/z", "UDP", 53, True, "deny-udp", id="pass-twice-then-allow"),
        pytest.param("b/z", "ICMP", None, True, "allow-web", id="icmp-type-and-nets"),
        pytest.param("a/y", "ICMP", None, False, "deny-y", id="deny-before-icmp"),
    ],
)
@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_verdicts_by_hand(
    backend: str, src: str, proto: str, port: int | None, allowed: bool, because: str | None
) -> None:
    c, prog = tiered.cluster(), tiered.program()
    pods = {p.key: pod_endpoint(c, p) for p in c.pods}
    flow = Flow(pods[src], pods["a/x"], proto, port)  # type: ignore[arg-type]
    v = verdict(c, flow, program=prog)
    assert v.allowed is allowed
    assert v.ingress is not None
    if because is not None:
        assert v.ingress.decided is not None and v.ingress.decided.policy.key == because
    assert [r.policy.key for r in v.ingress.logged] == ["log-all"]
    got, trail = enforce(flow, evaluator(c, prog, backend))  # type: ignore[arg-type]
    assert got is allowed
    comments = [c for _hop, d in trail for c in d.trail]
    assert any(c.startswith("policy log-all") for c in comments), comments
    # the kernel log line's prefix names the policy and the rule
    logs = [names.parse_log_prefix(x) for _hop, d in trail for x in d.logs]
    assert logs == [("sekisho", "log-all", "ingress", 0)], logs


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
@pytest.mark.parametrize("node", ["n1", "n2"])
def test_tiered_golden(node: str, backend: str) -> None:
    rs = render_node(tiered.cluster(), node, backend=backend, program=tiered.program())  # type: ignore[call-overload]
    check_golden(f"render/tiered-{node}.{backend}", rs.render_text())
