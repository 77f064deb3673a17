"""The upstream e2e NetworkPolicy cases (tests/e2e_cases.py) through the semantics.

Each case's cluster goes through the loader (``cluster_from_objects``) and
``compute_matrix``; every non-self cell of every probe must equal the
expectation transcribed from upstream. On failure the message shows upstream's
expected and observed tables side by side with the wrong cells marked, as
``reachability.go`` prints them. A second test checks ``verdict`` gives the same
answer cell by cell (the matrix is vectorized; verdict is the reference).
"""

from __future__ import annotations

from typing import cast

import pytest

from e2e_cases import CASES, PODS, E2ECase, Pair, Probe, table
from sekisho.model import Cluster, cluster_from_objects
from sekisho.model.types import FlowProtocol
from sekisho.semantics import Flow, compute_matrix, pod_endpoint, verdict


def _load(case: E2ECase) -> Cluster:
    return cluster_from_objects(case.objects(), source=f"e2e:{case.id}")


def _report(case: E2ECase, probe: Probe, observed: dict[Pair, bool]) -> str:
    expected_marks: dict[Pair, str] = {}
    observed_marks: dict[Pair, str] = {}
    wrong: list[str] = []
    for s in PODS:
        for d in PODS:
            want = case.allowed(probe, s, d)
            got = observed[(s, d)]
            expected_marks[(s, d)] = "-" if s == d else "." if want else "X"
            mark = "-" if s == d else "." if got else "X"
            if want != got:
                mark += "!"
                wrong.append(f"{s} -> {d}: expected {'allowed' if want else 'denied'}")
            observed_marks[(s, d)] = mark
    port, proto = probe
    head = f"{case.id} {proto if port is None else f'{proto}/{port}'}" + (
        f" (upstream: {case.upstream})" if case.upstream else ""
    )
    return "\n".join(
        [
            head,
            table(expected_marks, title="expected ('.' allowed, 'X' denied, '-' self):"),
            table(observed_marks, title="observed ('!' marks a wrong cell):"),
            f"{len(wrong)} wrong cell(s):",
            *wrong,
        ]
    )


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_matrix_matches_upstream(case: E2ECase) -> None:
    cluster = _load(case)
    matrix = compute_matrix(cluster, case.probes)
    keys = [p.key for p in matrix.pods]
    assert keys == list(PODS)
    failures = []
    for probe, pm in zip(case.probes, matrix.probes, strict=True):
        assert (pm.port, pm.protocol) == probe
        allowed = pm.allowed
        observed = {
            (s, d): bool(allowed[i, j]) for i, s in enumerate(keys) for j, d in enumerate(keys)
        }
        if any(observed[(s, d)] != case.allowed(probe, s, d) for s in PODS for d in PODS):
            failures.append(_report(case, probe, observed))
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_verdict_matches_upstream(case: E2ECase) -> None:
    cluster = _load(case)
    pods = {p.key: p for p in cluster.pods}
    failures = []
    for probe in case.probes:
        port, proto = probe
        observed: dict[Pair, bool] = {}
        for s in PODS:
            for d in PODS:
                flow = Flow(
                    pod_endpoint(cluster, pods[s]),
                    pod_endpoint(cluster, pods[d]),
                    cast(FlowProtocol, proto),
                    port,
                )
                observed[(s, d)] = verdict(cluster, flow).allowed
        if any(observed[(s, d)] != case.allowed(probe, s, d) for s in PODS for d in PODS):
            failures.append(_report(case, probe, observed))
    assert not failures, "\n\n".join(failures)


def test_cases_are_many_and_distinct() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len({c.upstream for c in CASES if c.upstream}) >= 30
    for case in CASES:
        assert case.expected, case.id
        for denied in case.expected.values():
            assert all(s != d and s in PODS and d in PODS for s, d in denied), case.id


def test_report_marks_wrong_cells() -> None:
    case = CASES[0]
    probe = case.probes[0]
    observed = {(s, d): True for s in PODS for d in PODS}  # as if nothing were enforced
    text = _report(case, probe, observed)
    assert "x/a -> x/b: expected denied" in text
    assert text.count(".!") == len(case.expected[probe])
