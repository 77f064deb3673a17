"""``sekisho render`` and the ``trace --node`` helper."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from render.goldens import SEED, seed_part2
from sekisho.cli.main import main
from sekisho.cli.render import explain_enforcement
from sekisho.dataplane.backends import backend as dataplane_backend
from sekisho.errors import CommandFailed, UsageError
from sekisho.render import render_node
from sekisho.render.interpret import program
from sekisho.render.path import enforce
from sekisho.semantics import Flow, pod_endpoint, resolve_endpoint

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


class Recorder:
    """A node with nothing of ours: read-back finds nothing; every document sent is kept."""

    def __init__(self, listing: str = "") -> None:
        self.sent: list[str] = []
        self.listing = listing
        """What ``nft list table`` shows once a script was sent."""

    def __call__(self, argv: Sequence[str], *, stdin: str | None = None) -> str:
        if argv[0] == "nft" and list(argv[1:3]) == ["list", "table"]:
            if not self.sent:
                raise CommandFailed(argv, 1, "No such file or directory")
            return self.listing
        if stdin is not None:
            self.sent.append(stdin)
        return ""


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_render_prints_exactly_what_the_applier_sends(
    capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    assert main(["render", *PART2, "--node", "k8s-node2", "--backend", backend]) == 0
    printed = capsys.readouterr().out
    rs = render_node(seed_part2(), "k8s-node2", backend=backend)  # type: ignore[call-overload]
    recorder = Recorder(rs.table_text() if backend == "nftables" else "")
    dataplane_backend(backend).applier(recorder, "sekisho").apply(rs)
    body = "".join(ln for ln in printed.splitlines(keepends=True) if not ln.startswith("#"))
    if backend == "iptables":
        assert body == "".join(recorder.sent)
    else:
        assert recorder.sent == [printed]
    # and what it prints says what the renderer's own text says, packet for packet
    ours, theirs = program(rs.render_text()), program(printed)
    cluster = seed_part2()
    eps = [pod_endpoint(cluster, p) for p in cluster.pods if p.node == "k8s-node2"]
    for src in [pod_endpoint(cluster, p) for p in cluster.pods]:
        for dst in eps:
            flow = Flow(src, dst, "TCP", 80)
            a = enforce(flow, lambda _n, pkt: ours.evaluate(pkt))[0]
            b = enforce(flow, lambda _n, pkt: theirs.evaluate(pkt))[0]
            assert a == b, (src.label, dst.label)


@pytest.mark.parametrize(
    ("backend", "files"),
    [
        pytest.param(
            "iptables", ["ip6tables.restore", "ipset.restore", "iptables.restore"], id="iptables"
        ),
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
    want = dataplane_backend(backend).files(rs)
    for name in files:
        assert (out / name).read_text() == want[name]


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
