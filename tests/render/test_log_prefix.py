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
