"""The network-policy-api conformance suite (tests/npa_cases.py), offline, for both APIs.

Every case goes through the loader (the same files ``sekisho`` reads) and
``compute_matrix``; every poke of upstream's ``PokeServer`` calls, SCTP
included, must come out as upstream expects (``connect: false`` is a dropped
probe, which is what a denied cell is). The walk (``verdict``, what ``trace``
prints) must agree poke by poke and must name the cluster-wide policy and rule
that decided. The CLI runs every case once (``sekisho matrix -o json``), as the
corpus's own checker does.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import cast

import pytest

from npa_cases import CASES, EXPECTED_POKES, NpaCase, Poke
from sekisho.cli.main import main
from sekisho.model import Cluster, load_paths
from sekisho.model.npa import KINDS
from sekisho.model.types import FlowProtocol
from sekisho.semantics import Flow, Verdict, compute_matrix, pod_endpoint, verdict

PARAMS = [pytest.param(c, id=c.id) for c in CASES]


def _cluster(case: NpaCase) -> Cluster:
    result = load_paths(case.paths)
    assert result.cluster is not None, "\n".join(str(p) for p in result.problems)
    assert not result.skipped, result.skipped
    return result.cluster


def _walk(cluster: Cluster, poke: Poke) -> Verdict:
    pods = {p.key: p for p in cluster.pods}
    flow = Flow(
        pod_endpoint(cluster, pods[poke.src]),
        pod_endpoint(cluster, pods[poke.dst]),
        cast(FlowProtocol, poke.protocol),
        poke.port,
    )
    return verdict(cluster, flow)


def _why(v: Verdict) -> str:
    sides = [s for s in (v.egress, v.ingress) if s is not None]
    return "; ".join(f"{s.direction}: {s.because()}" for s in sides) or v.reason


def test_every_poke_of_both_suites_is_here() -> None:
    counts = Counter(c.api for c in CASES for _ in c.pokes)
    assert dict(counts) == EXPECTED_POKES
    protocols = Counter((c.api, p.protocol) for c in CASES for p in c.pokes)
    assert protocols[("v1alpha2", "SCTP")] == 90
    assert protocols[("v1alpha1", "SCTP")] == 86
    assert len({c.id for c in CASES}) == len(CASES) == 96 + 92


@pytest.mark.parametrize("case", PARAMS)
def test_matrix_gives_every_poke(case: NpaCase) -> None:
    cluster = _cluster(case)
    matrix = compute_matrix(cluster, case.probes)
    index = {p.key: i for i, p in enumerate(matrix.pods)}
    tables = {(pm.port, pm.protocol): pm.allowed for pm in matrix.probes}
    wrong = []
    for poke in case.pokes:
        got = bool(tables[(poke.port, poke.protocol)][index[poke.src], index[poke.dst]])
        if got != poke.connect:
            wrong.append(
                f"{poke}: got {'allowed' if got else 'denied'}: {_why(_walk(cluster, poke))}"
            )
    assert not wrong, f"{case.id} ({case.source}):\n" + "\n".join(wrong)


@pytest.mark.parametrize("case", PARAMS)
def test_walk_agrees_and_names_the_deciding_rule(case: NpaCase) -> None:
    cluster = _cluster(case)
    has_network_policy = bool(cluster.policies)
    wrong = []
    for poke in case.pokes:
        v = _walk(cluster, poke)
        if v.allowed != poke.connect:
            wrong.append(f"{poke}: walk says {'allowed' if v.allowed else 'denied'}: {_why(v)}")
            continue
        for side in (v.egress, v.ingress):
            if side is None or side.allowed or has_network_policy:
                continue
            # Without NetworkPolicies every tier ends with Pass, so a denial is a Deny rule
            # of a cluster-wide policy, and the trace names it.
            decided = side.decided
            assert decided is not None, f"{poke}: {side.because()}"
            assert decided.policy.kind in KINDS and decided.rule.action == "deny"
            assert decided.policy.label in side.because()
            assert f"{side.direction} rule " in decided.rule.origin
    assert not wrong, f"{case.id} ({case.source}):\n" + "\n".join(wrong)


@pytest.mark.parametrize("case", PARAMS)
def test_cli_matrix_json_gives_every_poke(
    case: NpaCase, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["matrix", *case.paths, "-o", "json"]
    for port, protocol in case.probes:
        argv += ["--probe", f"{port}/{protocol}"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    pods = doc["pods"]
    tables = {(t["port"], t["protocol"]): t["allowed"] for t in doc["probes"]}
    for poke in case.pokes:
        got = tables[(poke.port, poke.protocol)][pods.index(poke.src)][pods.index(poke.dst)]
        assert got == poke.connect, f"{case.id}: {poke}"


def test_cli_trace_names_the_policy_and_rule(capsys: pytest.CaptureFixture[str]) -> None:
    (case,) = [c for c in CASES if c.id.startswith("v1alpha2/016-")]
    poke = case.pokes[0]
    assert not poke.connect
    argv = ["trace", *case.paths, "--from", poke.src, "--to", poke.dst, "--port", str(poke.port)]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert (
        "egress denied: denied by ClusterNetworkPolicy egress-tcp egress rule 3 "
        '"deny-to-slytherin-at-port-80" peer 0 TCP/80 (tier kube-admin)'
    ) in out
    assert "policies.yaml:1, order 6)" in out


def test_cli_validate_counts_cluster_wide_policies(capsys: pytest.CaptureFixture[str]) -> None:
    (case,) = [c for c in CASES if c.id.startswith("v1alpha1/050-")]
    assert main(["validate", *case.paths]) == 0
    out = capsys.readouterr().out
    # An AdminNetworkPolicy, the BaselineAdminNetworkPolicy and a NetworkPolicy.
    assert "3 policies (0 skipped)" in out


@pytest.mark.parametrize("case", [p for p in PARAMS if "050-" in p.id])
def test_cli_table_marks_every_pod_pair(case: NpaCase) -> None:
    """The table view equals the pod tables, also where pods share an identity (the two
    pods of a StatefulSet) and for a hostNetwork pod's own node (centaur-0 on node-1)."""
    import numpy as np

    from sekisho.cli.matrix import TABLES, table_lines

    m = compute_matrix(_cluster(case), [(80, "TCP")])
    rows = [line.marks for line in table_lines(m) if line.marks]
    n = len(m.pods)
    assert len(rows) == len(TABLES) * n
    for t, which in enumerate(TABLES):
        table = getattr(m.probes[0], which)
        want = np.where(table, ".", "X")
        np.fill_diagonal(want, "-")
        assert rows[t * n : (t + 1) * n] == ["".join(r) for r in want.tolist()], which
