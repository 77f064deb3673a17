"""The upstream e2e cases with real packets: observed must equal expected, per backend.

The 3x3 model cluster (tests/e2e_cases.py) is brought up once per backend with
real ``sekisho agent`` processes; each case is ``apply``-ed in place (its
policies and its labels) and every ordered pair is probed for each of its
probes. TCP and UDP cells must match both upstream's expectation and the
semantics; SCTP cells must be reported ``unsupported``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e_cases import CASES, PODS, E2ECase
from sekisho.lab.core import Lab
from sekisho.lab.reach import measure

from .conftest import lab_namespaces, unique_name

pytestmark = pytest.mark.privileged


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def model_lab(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    name = unique_name()
    root = Path(tmp_path_factory.mktemp("labs"))
    lab = Lab.up(_model_objects(), name=name, backend=request.param, root=root)
    try:
        yield lab
    finally:
        lab.down()
        assert not lab_namespaces(name)


def _model_objects() -> list[dict[str, object]]:
    from e2e_cases import model_cluster_objects

    return model_cluster_objects()


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_case_in_lab(model_lab: Lab, case: E2ECase) -> None:
    cluster = model_lab.apply(case.objects())
    result = measure(cluster, model_lab.plan, case.probes, timeout=0.5)
    assert result.pods == list(PODS)
    problems: list[str] = []
    for (port, proto), table in zip(case.probes, result.probes, strict=True):
        for i, src in enumerate(PODS):
            for j, dst in enumerate(PODS):
                obs = table.observed[i][j]
                if proto == "SCTP":
                    if obs != "unsupported":
                        problems.append(f"{src} -> {dst} {proto}/{port}: {obs}, want unsupported")
                    continue
                if src == dst:
                    continue
                want = case.allowed((port, proto), src, dst)  # type: ignore[arg-type]
                got = obs in ("allowed", "no-listener")
                if got != want:
                    problems.append(
                        f"{src} -> {dst} {proto}/{port}: observed {obs} ({table.detail[i][j]}),"
                        f" upstream expects {'allowed' if want else 'denied'}"
                    )
    assert not problems, f"{model_lab.state.backend} {case.id}:\n" + "\n".join(problems)
    assert result.mismatches == 0
