"""`sekisho trace --node`: the rendered rules agree with the verdict and name their origin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sekisho.cli.main import main

SEED = Path(__file__).resolve().parent.parent / "examples" / "seed"
PART2 = [str(SEED / "cluster.yaml"), str(SEED / "part2")]


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
@pytest.mark.parametrize(
    ("src", "dst", "proto_args", "allowed", "decider"),
    [
        pytest.param(
            "dev/blue",
            "dev/red",
            ["--port", "80"],
            True,
            "policy dev/allow-tcp-80-from-blue-to-green ingress rule 0",
            id="finding4-curl-ok",
        ),
        pytest.param(
            "dev/green",
            "dev/red",
            ["--protocol", "ICMP"],
            False,
            "endpoint dev/red ingress",
            id="finding4-ping-dropped",
        ),
        pytest.param(
            "kube-system/nginx-ingress-controller",
            "prod/green",
            ["--port", "80"],
            True,
            "policy prod/allow-ingresscontroller-traffic ingress rule 0",
            id="finding5-controller",
        ),
    ],
)
def test_trace_node_shows_the_rule_that_decides(
    capsys: pytest.CaptureFixture[str],
    backend: str,
    src: str,
    dst: str,
    proto_args: list[str],
    allowed: bool,
    decider: str,
) -> None:
    args = ["trace", *PART2, "--from", src, "--to", dst, *proto_args]
    status = main([*args, "--node", "all", "--backend", backend, "-o", "json"])
    assert status == (0 if allowed else 1)
    doc = json.loads(capsys.readouterr().out)
    assert doc["allowed"] is allowed
    (lines,) = doc["enforcement"]
    text = "\n".join(lines)
    assert decider in text
    assert lines[-1].strip() == ("rules say: allowed" if allowed else "rules say: denied")


def test_trace_node_rejects_an_unknown_node(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        [
            "trace",
            *PART2,
            "--from",
            "dev/blue",
            "--to",
            "dev/red",
            "--port",
            "80",
            "--node",
            "nowhere",
        ]
    )
    assert status == 2
    assert "k8s-node1" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_trace_node_shows_the_enforcing_rule_and_its_set(
    capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    """Finding 1 through trace: the rule that admits the controller, and its one-member set."""
    status = main(
        [
            "trace",
            *PART2,
            "--from",
            "kube-system/nginx-ingress-controller",
            "--to",
            "prod/green",
            "--port",
            "80",
            "--node",
            "k8s-node3",
            "--backend",
            backend,
        ]
    )
    assert status == 0
    out = capsys.readouterr().out
    rule = next(line for line in out.splitlines() if line.strip().startswith("rule: "))
    assert "policy prod/allow-ingresscontroller-traffic ingress rule 0" in rule
    set_lines = [line.strip() for line in out.splitlines() if line.strip().startswith("set ")]
    assert len(set_lines) == 1
    name = set_lines[0].split()[1].rstrip(":")
    assert name in rule
    assert set_lines[0].endswith(": 10.244.3.8")
