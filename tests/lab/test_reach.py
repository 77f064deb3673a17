"""Expected-against-observed bookkeeping and probe parsing, without a kernel."""

from __future__ import annotations

import pytest

from sekisho.errors import UsageError
from sekisho.lab.reach import ProbeTable, Reachability, format_tables
from sekisho.semantics.probe import Service, parse_service, services_from_flags


@pytest.mark.parametrize(
    ("text", "want"),
    [
        pytest.param("80/TCP", [Service("TCP", 80)], id="tcp"),
        pytest.param("81/udp", [Service("UDP", 81)], id="udp-lower"),
        pytest.param("80", [Service("TCP", 80)], id="default-tcp"),
        pytest.param("TCP/80", [Service("TCP", 80)], id="protocol-first"),
        pytest.param("ICMP", [Service("ICMP")], id="icmp"),
        pytest.param("80/SCTP", [Service("SCTP", 80)], id="sctp"),
        pytest.param("metrics/TCP", [Service("TCP", name="metrics")], id="named"),
        pytest.param("79-81/UDP", [Service("UDP", n) for n in (79, 80, 81)], id="range"),
    ],
)
def test_parse_probe(text: str, want: list[Service]) -> None:
    assert parse_service(text) == want


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("x_y/TCP", id="not-a-number-or-name"),
        pytest.param("0/TCP", id="zero"),
        pytest.param("80/GRE", id="proto"),
        pytest.param("80/ICMP", id="icmp-port"),
        pytest.param("1-100/TCP", id="range-too-long"),
        pytest.param("9-8/TCP", id="range-backwards"),
    ],
)
def test_parse_probe_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_service(text)


@pytest.mark.parametrize(
    ("probes", "port", "protocol", "want"),
    [
        pytest.param((), None, None, None, id="defaults"),
        pytest.param((), 53, "udp", [Service("UDP", 53)], id="port-protocol"),
        pytest.param((), None, "ICMP", [Service("ICMP")], id="icmp"),
        pytest.param(("80/TCP", "80"), None, None, [Service("TCP", 80)], id="deduplicated"),
    ],
)
def test_one_rule_for_the_flags(
    probes: tuple[str, ...], port: int | None, protocol: str | None, want: list[Service] | None
) -> None:
    assert services_from_flags(probes, port, protocol) == want


@pytest.mark.parametrize(
    ("probes", "port", "protocol"),
    [
        pytest.param(("80/TCP",), 80, None, id="both"),
        pytest.param((), None, "UDP", id="udp-without-port"),
        pytest.param((), 80, "ICMP", id="icmp-with-port"),
    ],
)
def test_flags_refused(probes: tuple[str, ...], port: int | None, protocol: str | None) -> None:
    with pytest.raises(UsageError):
        services_from_flags(probes, port, protocol)


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
