"""Log prefixes (``names.log_prefix``): inside the kernel's limits, one per policy rule."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from sekisho.cli.main import main
from sekisho.errors import UsageError
from sekisho.render import names

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"

LONG = "a-namespace-with-a-long-name/a-policy-with-an-even-longer-name"


@pytest.mark.parametrize("prefix", ["sekisho", "abcdefghijkl"])
@pytest.mark.parametrize("limit", [names.XT_LOG_PREFIX_MAX, names.NFT_LOG_PREFIX_MAX])
def test_long_names_fit_and_stay_unique(prefix: str, limit: int) -> None:
    # policies whose names agree on their first 60 characters, each with many rules
    labels = [f"{LONG}-{i}" for i in range(40)] + [LONG, "dev/web", 'odd "name" $x']
    seen: dict[str, tuple[str, str, int]] = {}
    for label, direction, index in itertools.product(labels, ["ingress", "egress"], range(120)):
        text = names.log_prefix(prefix, f"key:{label}", label, direction, index, limit)
        assert len(text) <= limit, text
        assert '"' not in text and "'" not in text and "$" not in text and "\\" not in text
        assert seen.setdefault(text, (label, direction, index)) == (label, direction, index)
        parsed = names.parse_log_prefix(text)
        assert parsed is not None, text
        got_prefix, name, got_direction, got_index = parsed
        assert (got_prefix, got_direction, got_index) == (prefix, direction, index)
        if "~" not in name:
            assert name == label


def test_short_names_are_kept_whole() -> None:
    xt = names.log_prefix("sekisho", "k", "dev/web", "egress", 3, names.XT_LOG_PREFIX_MAX)
    assert xt == "sekisho dev/web/e3 "
    nft = names.log_prefix("sekisho", "k", "dev/web", "egress", 3, names.NFT_LOG_PREFIX_MAX)
    assert nft == "sekisho policy dev/web egress rule 3: "


def test_no_room_is_refused() -> None:
    with pytest.raises(UsageError):
        names.log_prefix("abcdefghijkl", "k", LONG, "ingress", 10**9, names.XT_LOG_PREFIX_MAX)


def test_foreign_prefixes_are_not_read_as_ours() -> None:
    assert names.parse_log_prefix("sekisho-packet: ") is None
    assert names.parse_log_prefix("") is None


@pytest.mark.parametrize(
    ("backend", "prefix"),
    [
        ("iptables", "sekisho block-bl~"),
        ("nftables", "sekisho policy NetworkPolicy dev/block-blue-to-red ingress rule 0: "),
    ],
)
def test_trace_node_names_the_log_rule_of_a_prefix(
    capsys: pytest.CaptureFixture[str], backend: str, prefix: str
) -> None:
    """``sekisho trace --node`` maps the prefix the kernel logs back to its policy rule."""
    args = [str(EXAMPLES / "seed" / "cluster.yaml"), str(EXAMPLES / "calico")]
    flow = ["--from", "dev/blue", "--to", "dev/red", "--port", "80"]
    status = main(["trace", *args, *flow, "--node", "all", "--backend", backend, "-o", "json"])
    assert status == 1
    (lines,) = json.loads(capsys.readouterr().out)["enforcement"]
    logged = [ln.strip() for ln in lines if "logged as" in ln]
    assert len(logged) == 1, lines
    assert logged[0].startswith(f"logged as {prefix!r}"[:-1])
    assert logged[0].endswith(
        "by: policy NetworkPolicy dev/block-blue-to-red ingress rule 0 (Log): log"
    )


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_a_log_group_keeps_the_prefixes_and_the_walk(backend: str) -> None:
    """With a log group, each Log rule writes to nfnetlink_log (``NFLOG``, ``log ... group``)
    with the very prefix it has without one, and the rules decide the same (the
    interpreter records the same log prefixes for a flow through the Log rule)."""
    from sekisho.model.load import load_cluster
    from sekisho.render import render_backend, render_node
    from sekisho.render.path import hops
    from sekisho.semantics import Flow, resolve_endpoint

    cluster = load_cluster([EXAMPLES / "seed" / "cluster.yaml", EXAMPLES / "calico" / "dev.yaml"])
    spell = render_backend(backend)
    plain = render_node(cluster, "k8s-node2", backend=spell.name).render_text()
    grouped = render_node(cluster, "k8s-node2", backend=spell.name, log_group=20).render_text()
    logs = [ln for ln in plain.splitlines() if names.rule_log_prefix(ln)]
    nflogs = [ln for ln in grouped.splitlines() if names.rule_log_prefix(ln)]
    assert len(logs) == len(nflogs) > 0
    for a, b in zip(logs, nflogs, strict=True):
        assert names.rule_log_prefix(a) == names.rule_log_prefix(b)
        if backend == "iptables":
            assert b.endswith(
                f'-j NFLOG --nflog-prefix "{names.rule_log_prefix(a)}" --nflog-group 20'
            )
            assert (
                b.replace("-j NFLOG --nflog-prefix", "-j LOG --log-prefix").removesuffix(
                    " --nflog-group 20"
                )
                == a
            )
        else:
            assert b == a.replace('" comment', '" group 20 comment', 1)
    assert [ln for ln in plain.splitlines() if ln not in logs] == [
        ln for ln in grouped.splitlines() if ln not in nflogs
    ]
    flow = Flow(
        resolve_endpoint(cluster, "dev/blue"), resolve_endpoint(cluster, "dev/red"), "TCP", 80
    )
    seen = []
    for text in (plain, grouped):
        program = spell.interpret(text)
        decisions = [program.evaluate(h.packet) for h in hops(flow) if h.node == "k8s-node2"]
        seen.append([(d.verdict, d.logs) for d in decisions])
    assert seen[0] == seen[1]
    assert any(logs for _, logs in seen[1]), seen


@pytest.mark.parametrize("group", [-1, 65536])
def test_a_log_group_out_of_range_is_refused(group: int) -> None:
    with pytest.raises(UsageError, match="log group"):
        names.check_log_group(group)


@pytest.mark.parametrize(
    ("backend", "target"), [("iptables", "-j NFLOG --nflog-prefix "), ("nftables", "log prefix ")]
)
def test_render_log_group_prints_what_the_agent_applies(
    capsys: pytest.CaptureFixture[str], backend: str, target: str
) -> None:
    args = [str(EXAMPLES / "seed" / "cluster.yaml"), str(EXAMPLES / "calico" / "dev.yaml")]
    status = main(
        ["render", *args, "--node", "k8s-node2", "--backend", backend, "--log-group", "7"]
    )
    assert status == 0
    logs = [ln for ln in capsys.readouterr().out.splitlines() if names.rule_log_prefix(ln)]
    assert logs and all(target in ln for ln in logs), logs
    assert all(" --nflog-group 7" in ln or '" group 7 ' in ln for ln in logs), logs
    assert main(["render", *args, "--node", "k8s-node2", "--log-group", "70000"]) != 0
