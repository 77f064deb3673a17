"""``sekisho test``: expectation files parsed with lines, checked pair by pair, JUnit."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from sekisho.cli.main import main
from sekisho.errors import UsageError
from sekisho.semantics.expect import Observed, parse_expectations, run_checks

from .builders import seed_cluster

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed"
PART1 = [str(SEED / "cluster.yaml"), str(SEED / "part1")]
PART2 = [str(SEED / "cluster.yaml"), str(SEED / "part2")]
EXPECT = str(SEED.parent / "expect" / "seed-part2.yaml")


def one(text: str) -> tuple[int, list[str]]:
    """Check ``text`` on the seed's stage 2; (pairs, failure lines)."""
    out = run_checks(seed_cluster(), parse_expectations(text, "e.yaml"))
    return len(out.checks), [str(f) for f in out.failures]


CASES = [
    pytest.param(
        "expectations:\n- {from: dev/blue, to: dev/red, port: 80, expect: allow}\n",
        1,
        [],
        id="named-pods-hold",
    ),
    pytest.param(
        "expectations:\n- {from: dev/green, to: dev/red, port: 80, expect: allow}\n",
        1,
        [
            "e.yaml:2: dev/green -> dev/red TCP/80: expected allow, got deny: ingress of "
            "dev/red: isolated by dev/allow-tcp-80-from-blue-to-green; no rule matches: denied"
        ],
        id="failure-names-policy",
    ),
    pytest.param(
        "expectations:\n- from: {namespace: dev}\n  to: {labels: {app: red}}\n"
        "  protocol: ICMP\n  expect: deny\n",
        # dev/* (3 pods) to the two red pods, less dev/red itself
        5,
        [
            "e.yaml:2: dev/blue -> prod/red ICMP: expected deny, got allow: not isolated: "
            "no policy selects dev/blue for egress or prod/red for ingress",
            "e.yaml:2: dev/green -> prod/red ICMP: expected deny, got allow: not isolated: "
            "no policy selects dev/green for egress or prod/red for ingress",
        ],
        id="selectors-expand",
    ),
    pytest.param(
        "expectations:\n- from: {namespaceSelector: {matchLabels: {project: kube-system}}}\n"
        "  to: prod/green\n  port: http\n  expect: allow\n",
        1,
        [],
        id="namespace-selector-and-named-port",
    ),
    pytest.param(
        "expectations:\n- {from: dev/red, to: 10.244.3.6, port: 80, expect: deny}\n"
        "- {from: k8s-node2, to: dev/red, port: 22, expect: allow}\n",
        2,
        [],
        id="ip-and-node-ends",
    ),
]


@pytest.mark.parametrize(("text", "pairs", "failures"), CASES)
def test_cases(text: str, pairs: int, failures: list[str]) -> None:
    n, lines = one(text)
    assert n == pairs
    assert lines == failures


BAD = [
    pytest.param(
        "expectations:\n- {from: dev/blue, to: dev/red, port: 80}\n",
        "e.yaml:2: expectations[0].expect",
        id="no-expect",
    ),
    pytest.param(
        "expectations:\n- {from: dev/blue, to: dev/red, expect: allow}\n",
        "needs a port",
        id="no-port",
    ),
    pytest.param(
        "expectations:\n- {from: dev/blue, to: dev/red, port: 80, expect: allow, prot: UDP}\n",
        "unknown field 'prot'",
        id="unknown-field",
    ),
    pytest.param(
        "expectations:\n-\n  from: {labels: {app: [x]}}\n  to: dev/red\n  port: 80\n  expect: allow\n",
        "e.yaml:3",
        id="bad-selector-located",
    ),
    pytest.param("nothing: []\n", "unknown field", id="unknown-top"),
    pytest.param("{}\n", "no expectations", id="empty"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_files(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_expectations(text, "e.yaml")


def test_picks_nothing_is_an_error_not_a_pass() -> None:
    spec = parse_expectations(
        "expectations:\n- {from: {labels: {app: none}}, to: dev/red, port: 80, expect: deny}\n",
        "e.yaml",
    )
    with pytest.raises(UsageError, match="picks no pod"):
        run_checks(seed_cluster(), spec)


def test_undecided_is_a_failure() -> None:
    spec = parse_expectations(
        "expectations:\n- {from: dev/blue, to: dev/red, port: 80, expect: allow}\n", "e.yaml"
    )
    out = run_checks(
        seed_cluster(), spec, lambda c, checks: [Observed(None, "unsupported")] * len(checks)
    )
    assert not out.ok and "got no answer [unsupported]" in str(out.failures[0])


def test_seed_file_passes_on_part2_and_fails_on_part1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["test", EXPECT, *PART2]) == 0
    assert "ok: 7 of 7 expectations hold" in capsys.readouterr().out
    junit = tmp_path / "j.xml"
    assert main(["test", EXPECT, *PART1, "--junit", str(junit)]) == 1
    out = capsys.readouterr().out
    assert "FAIL: 2 of 7 expectations hold" in out
    assert "seed-part2.yaml:29: prod/blue -> prod/green TCP/80: expected deny, got allow" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "7" and suite.get("failures") == "5"
    assert main(["test", EXPECT, *PART1, "-o", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert not doc["ok"] and doc["failures"][0]["decided_by"]


def test_snapshot_round_trip(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["test", "--snapshot", "ICMP", *PART2]) == 0
    f = tmp_path / "snap.yaml"
    f.write_text(capsys.readouterr().out)
    assert main(["test", str(f), *PART2]) == 0
    capsys.readouterr()
    assert main(["test", str(f), *PART1]) == 1
    assert "snapshot ICMP" in capsys.readouterr().out


def test_snapshot_must_name_every_pod(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("snapshots:\n- probe: 80/TCP\n  allowed:\n    dev/blue: [dev/red]\n")
    assert main(["test", str(f), *PART2]) == 2
    assert "pods without a row" in capsys.readouterr().err
