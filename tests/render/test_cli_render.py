"""``sekisho render`` and the ``trace --node`` helper."""

from __future__ import annotations

from pathlib import Path

import pytest

from render.goldens import SEED, seed_part2
from sekisho.cli.main import main
from sekisho.cli.render import explain_enforcement
from sekisho.errors import UsageError
from sekisho.render import render_node
from sekisho.semantics import Flow, resolve_endpoint

PART2 = [str(SEED / "cluster.yaml"), str(SEED / "part2")]


@pytest.mark.parametrize(
    ("args", "want"),
    [
        pytest.param(
            ["--node", "k8s-node3"],
            ["# --- ipset restore ---", "*filter", "-I FORWARD 1 ", "match-set sekisho-s-"],
            id="iptables",
        ),
        pytest.param(
            ["--node", "k8s-node3", "--backend", "nftables"],
            ["table inet sekisho {}", "delete table inet sekisho", "hook forward"],
            id="nftables",
        ),
        pytest.param(
            ["--node", "k8s-node3", "--prefix", "kk"],
            [":kk-FORWARD - [0:0]", "create kk-s-"],
            id="prefix",
        ),
    ],
)
def test_render_stdout(
    capsys: pytest.CaptureFixture[str], args: list[str], want: list[str]
) -> None:
    assert main(["render", *PART2, *args]) == 0
    out = capsys.readouterr().out
    for w in want:
        assert w in out


def test_render_stdout_is_render_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", *PART2, "--node", "k8s-node2"]) == 0
    assert capsys.readouterr().out == render_node(seed_part2(), "k8s-node2").render_text()


@pytest.mark.parametrize(
    ("backend", "files"),
    [
        pytest.param("iptables", ["hooks.txt", "ipset.restore", "iptables.restore"], id="iptables"),
        pytest.param("nftables", ["ruleset.nft"], id="nftables"),
    ],
)
def test_render_out_dir(tmp_path: Path, backend: str, files: list[str]) -> None:
    out = tmp_path / "out"
    assert (
        main(["render", *PART2, "--node", "k8s-node3", "--backend", backend, "-o", str(out)]) == 0
    )
    assert sorted(p.name for p in out.iterdir()) == files
    rs = render_node(seed_part2(), "k8s-node3", backend=backend)  # type: ignore[call-overload]
    if backend == "iptables":
        assert (out / "iptables.restore").read_text() == rs.iptables_restore()
        assert (out / "ipset.restore").read_text() == rs.ipset_restore()
    else:
        assert (out / "ruleset.nft").read_text() == rs.script()


def test_render_unknown_node(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", *PART2, "--node", "k8s-node9"]) == 2
    err = capsys.readouterr().err
    assert "k8s-node9" in err and "k8s-node1" in err


@pytest.mark.parametrize("backend", [pytest.param(b, id=b) for b in ("iptables", "nftables")])
@pytest.mark.parametrize(
    ("src", "dst", "proto", "port", "node", "want"),
    [
        pytest.param(
            "kube-system/nginx-ingress-controller",
            "prod/green",
            "TCP",
            80,
            None,
            [
                "k8s-node1 FORWARD in=cali",
                "k8s-node3 FORWARD in=eth0",
                "policy prod/allow-ingresscontroller-traffic ingress rule 0 peer 0 TCP/80",
                "rules say: allowed",
            ],
            id="finding-5-allowed",
        ),
        pytest.param(
            "dev/red",
            "dev/blue",
            "TCP",
            80,
            "k8s-node2",
            [
                "DROP by: endpoint dev/red egress: end of tier default: no policy passed it",
                "rules say: denied",
            ],
            id="finding-4-denied",
        ),
        pytest.param(
            "k8s-node2",
            "dev/red",
            "TCP",
            22,
            None,
            ["OUTPUT", "not filtered"],
            id="finding-2-own-node",
        ),
        pytest.param(
            "dev/blue",
            "dev/red",
            "TCP",
            80,
            "k8s-node3",
            ["does not pass node k8s-node3"],
            id="other-node",
        ),
    ],
)
def test_explain_enforcement(
    backend: str, src: str, dst: str, proto: str, port: int, node: str | None, want: list[str]
) -> None:
    cluster = seed_part2()
    flow = Flow(resolve_endpoint(cluster, src), resolve_endpoint(cluster, dst), proto, port)  # type: ignore[arg-type]
    text = "\n".join(explain_enforcement(cluster, flow, node, backend))
    for w in want:
        assert w in text, text


def test_explain_unknown_node() -> None:
    cluster = seed_part2()
    flow = Flow(
        resolve_endpoint(cluster, "dev/red"), resolve_endpoint(cluster, "dev/blue"), "TCP", 80
    )
    with pytest.raises(UsageError):
        explain_enforcement(cluster, flow, "nope", "iptables")
