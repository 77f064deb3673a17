"""``sekisho lint``: each pitfall found in its fixture, located; the seed's findings; formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sekisho.cli.main import main
from sekisho.model import load_cluster
from sekisho.semantics.pitfalls import CODES, lint_cluster

DATA = Path(__file__).resolve().parents[1] / "data" / "lint"
SEED = Path(__file__).resolve().parents[2] / "examples" / "seed"


def codes(*files: str) -> list[tuple[str, str]]:
    cluster = load_cluster([str(DATA / "cluster.yaml"), *(str(DATA / f) for f in files)])
    return [(f.code, f.path) for f in lint_cluster(cluster)]


CASES = [
    pytest.param("sk001.yaml", {("SK001", "spec.egress")}, id="SK001-egress-without-dns"),
    pytest.param("sk002.yaml", {("SK002", "spec.podSelector")}, id="SK002-policy-selects-nothing"),
    pytest.param(
        "sk003.yaml",
        {("SK003", "spec.ingress[0].from[0]"), ("SK010", "spec.ingress")},
        id="SK003-peer-selects-nothing",
    ),
    pytest.param(
        "sk004.yaml",
        {
            ("SK004", "spec.ingress[0].from[0]"),
            ("SK003", "spec.ingress[0].from[1]"),
            ("SK010", "spec.ingress"),
        },
        id="SK004-split-peer",
    ),
    pytest.param(
        "sk005.yaml",
        {
            ("SK005", "spec.ingress[0].from[0]"),
            ("SK003", "spec.ingress[0].from[0]"),
            ("SK010", "spec.ingress"),
        },
        id="SK005-joined-peer",
    ),
    pytest.param(
        "sk006.yaml",
        {
            ("SK006", "spec.ingress[0].from[0].ipBlock"),
            ("SK007", "spec.ingress[0].from[0].ipBlock"),
            ("SK010", "spec.ingress"),
        },
        id="SK006-ipblock-covers-pods",
    ),
    pytest.param(
        "sk007.yaml",
        {("SK007", "spec.egress[0].to[0].ipBlock")},
        id="SK007-ipblock-covers-services",
    ),
    pytest.param(
        "sk008.yaml",
        {("SK008", "spec.ingress[0].ports[0].port"), ("SK010", "spec.ingress")},
        id="SK008-named-port-undeclared",
    ),
    pytest.param("sk009.yaml", {("SK009", "spec.ingress[1].from[0]")}, id="SK009-shadowed-rule"),
    pytest.param("sk010.yaml", {("SK010", "spec.ingress")}, id="SK010-node-traffic-unfiltered"),
]


@pytest.mark.parametrize(("file", "expected"), CASES)
def test_each_pitfall(file: str, expected: set[tuple[str, str]]) -> None:
    assert set(codes(file)) == expected


def test_every_code_has_a_fixture() -> None:
    found = {c for p in CASES for c, _ in p.values[1]}  # type: ignore[attr-defined]
    assert found == set(CODES)


def test_allow_behind_allow_is_not_shadowing() -> None:
    # Two NetworkPolicies allowing the same traffic: redundant, not a pitfall.
    assert not [c for c in codes("sk010.yaml", "sk002.yaml") if c[0] == "SK009"]


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        pytest.param("part1", ["SK010"], id="part1-finding-2"),
        pytest.param("part2", ["SK001", "SK010", "SK010"], id="part2-dns-and-finding-2"),
    ],
)
def test_seed_has_only_its_documented_findings(stage: str, expected: list[str]) -> None:
    cluster = load_cluster([str(SEED / "cluster.yaml"), str(SEED / stage)])
    assert sorted(f.code for f in lint_cluster(cluster)) == expected


def test_cli_text_json_sarif_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(DATA / "cluster.yaml"), str(DATA / "sk004.yaml")]
    assert main(["lint", *args]) == 1
    out = capsys.readouterr().out
    assert "sk004.yaml:8: SK004 NetworkPolicy a/split spec.ingress[0].from[0]\n" in out
    assert all(len(line) <= 80 for line in out.splitlines() if line.startswith("  "))
    assert "  fix: to allow only those pods in those namespaces" in out
    assert main(["lint", *args, "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert {f["code"] for f in doc["findings"]} == {"SK003", "SK004", "SK010"}
    assert main(["lint", *args, "--format", "sarif"]) == 1
    sarif = json.loads(capsys.readouterr().out)
    results = sarif["runs"][0]["results"]
    assert sarif["version"] == "2.1.0"
    assert {r["ruleId"] for r in results} == {"SK003", "SK004", "SK010"}
    assert all(r["locations"][0]["physicalLocation"]["region"]["startLine"] > 1 for r in results)
    # notes alone do not fail; --fail-on never never fails; bad input is 2
    assert main(["lint", str(DATA / "cluster.yaml"), str(DATA / "sk010.yaml")]) == 0
    assert main(["lint", *args, "--fail-on", "never"]) == 0
    assert main(["lint", *args, "--only", "SK999"]) == 2
    capsys.readouterr()
    assert main(["lint", *args, "--only", "split-peer", "--format", "json"]) == 1
    assert [f["code"] for f in json.loads(capsys.readouterr().out)["findings"]] == ["SK004"]


def test_shadowing_under_calico_order() -> None:
    # examples/calico: Calico's block-blue-to-red (order 500) denies before the Kubernetes
    # allow (order 1000); deny-green-to-red (1500) before allow-green-to-red (2000).
    cluster = load_cluster([str(SEED / "cluster.yaml"), str(SEED.parent / "calico")])
    shadowed = {(f.name, f.path) for f in lint_cluster(cluster) if f.code == "SK009"}
    assert shadowed == {
        ("dev/allow-blue-to-red", "spec.ingress[0].from[0]"),
        ("dev/allow-green-to-red", "spec.ingress[0]"),
    }
