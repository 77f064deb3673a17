"""Expected-against-observed bookkeeping and probe parsing, without a kernel."""

from __future__ import annotations

import pytest

from sekisho.errors import UsageError
from sekisho.lab.reach import ProbeTable, Reachability, format_tables, parse_probe


@pytest.mark.parametrize(
    ("text", "want"),
    [
        pytest.param("80/TCP", (80, "TCP"), id="tcp"),
        pytest.param("81/udp", (81, "UDP"), id="udp-lower"),
        pytest.param("80", (80, "TCP"), id="default-tcp"),
        pytest.param("ICMP", (None, "ICMP"), id="icmp"),
        pytest.param("80/SCTP", (80, "SCTP"), id="sctp"),
    ],
)
def test_parse_probe(text: str, want: tuple[int | None, str]) -> None:
    assert parse_probe(text) == want


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("x/TCP", id="not-a-number"),
        pytest.param("0/TCP", id="zero"),
        pytest.param("80/GRE", id="proto"),
    ],
)
def test_parse_probe_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_probe(text)


@pytest.mark.parametrize(
    ("allowed", "observed", "wrong"),
    [
        pytest.param(True, "allowed", False, id="allowed-allowed"),
        pytest.param(True, "no-listener", False, id="no-listener-counts-as-reached"),
        pytest.param(False, "dropped", False, id="denied-dropped"),
        pytest.param(False, "rejected", False, id="denied-rejected"),
        pytest.param(False, "allowed", True, id="denied-but-allowed"),
        pytest.param(True, "dropped", True, id="allowed-but-dropped"),
        pytest.param(True, "unsupported", False, id="unsupported-never-wrong"),
        pytest.param(False, None, False, id="not-probed"),
        pytest.param(True, "error", True, id="error-is-wrong"),
    ],
)
def test_wrong_cells(allowed: bool, observed: str | None, wrong: bool) -> None:
    t = ProbeTable(80, "TCP", [[True, allowed]], [[True, True]], [[True, allowed], [True, True]],
                   [[None, observed], [None, None]])  # fmt: skip
    assert t.wrong(0, 1) is wrong
    r = Reachability(["a/x", "a/y"], [t])
    assert r.mismatches == int(wrong)
    text = format_tables(r)
    assert ("WRONG a/x -> a/y" in text) is wrong
    assert r.to_json()["probes"][0]["observed"] == [[None, observed], [None, None]]  # type: ignore[index]
