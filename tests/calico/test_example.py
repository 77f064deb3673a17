"""examples/calico on the seed's cluster: each statement of its README, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sekisho.cli.main import main

# not `from conftest import ...`: another conftest module may hold that name first
ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed"

CLUSTER = str(SEED / "cluster.yaml")
EXAMPLE = str(ROOT / "examples" / "calico")

CASES = [
    # (from, to, port, allowed, words in the text)
    pytest.param(
        "dev/blue",
        "dev/red",
        "80",
        False,
        "denied by NetworkPolicy dev/block-blue-to-red ingress rule 1 (Deny)",
        id="lower-order-deny-beats-kubernetes-allow",
    ),
    pytest.param(
        "dev/green",
        "dev/red",
        "80",
        False,
        "denied by NetworkPolicy dev/deny-green-to-red ingress rule 0 (Deny)",
        id="higher-order-allow-comes-too-late",
    ),
    pytest.param(
        "dev/red",
        "prod/green",
        "80",
        False,
        "(tier platform)",
        id="platform-tier-first",
    ),
    pytest.param(
        "dev/blue",
        "203.0.113.5",
        "443",
        True,
        "allowed by GlobalNetworkPolicy platform.dev-egress egress rule 0 (Allow)",
        id="global-network-set",
    ),
    pytest.param(
        "dev/blue",
        "198.51.100.1",
        "443",
        False,
        "denied by GlobalNetworkPolicy platform.dev-egress egress rule 1 (Deny)",
        id="not-nets",
    ),
    pytest.param(
        "prod/blue",
        "prod/green",
        "80",
        True,
        "pending verdict: DENIED (ingress-denied): would change ALLOWED to DENIED",
        id="staged-lockdown-is-pending-only",
    ),
    pytest.param(
        "dev/red",
        "k8s-node1",
        "10250",
        False,
        "denied by GlobalNetworkPolicy platform.protect-nodes ingress rule 1 (Deny)",
        id="host-endpoint-protects-node",
    ),
    pytest.param(
        "dev/red",
        "k8s-node1",
        "22",
        True,
        "a failsafe port of Felix",
        id="failsafe",
    ),
    pytest.param(
        "k8s-node1",
        "dev/blue",
        "80",
        True,
        "not even by host endpoint k8s-node1-eth0",
        id="finding-2-stays-true",
    ),
]


@pytest.mark.parametrize(("src", "dst", "port", "allowed", "words"), CASES)
def test_trace(
    capsys: pytest.CaptureFixture[str], src: str, dst: str, port: str, allowed: bool, words: str
) -> None:
    code = main(["trace", CLUSTER, EXAMPLE, "--from", src, "--to", dst, "--port", port])
    out = capsys.readouterr().out
    assert code == (0 if allowed else 1), out
    assert words in out, out


def test_trace_json_has_pending(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["trace", CLUSTER, EXAMPLE, "--from", "prod/blue", "--to", "prod/green"]
    assert main([*argv, "--port", "80", "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["allowed"] is True
    assert doc["pending"][0]["allowed"] is False


def test_matrix_shows_pending_changes(capsys: pytest.CaptureFixture[str]) -> None:
    # k8s-node1 has a host endpoint but no hostNetwork pod: the matrix answers.
    assert main(["matrix", CLUSTER, EXAMPLE, "--probe", "80/TCP", "-o", "summary"]) == 0
    out = capsys.readouterr().out
    assert "staged (not enforced): StagedNetworkPolicy prod/lockdown (set)" in out
    assert "prod/blue -> prod/green: allowed -> denied" in out


def test_render_draws_the_host_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", CLUSTER, EXAMPLE, "--node", "k8s-node1"]) == 0
    out = capsys.readouterr().out
    assert "-i eth0 " in out and "-j sekisho-fh-eth0" in out and "-j sekisho-fhfw-eth0" in out
    assert "FailsafeInboundHostPorts" in out


def test_rendered_example_agrees_with_the_walk() -> None:
    """The example's policies (tiers, Deny, a lower order first, network sets, staged
    ones left out, the host endpoint) through the rendered rules of both backends,
    every pair and probe."""
    from render.test_program_differential import check
    from sekisho.model import load_cluster
    from sekisho.semantics import compile_program

    files = sorted((ROOT / "examples" / "calico").glob("*.yaml"))
    cluster = load_cluster([CLUSTER, *map(str, files)])
    assert cluster.calico is not None and cluster.calico.policies
    check(cluster, compile_program(cluster))
