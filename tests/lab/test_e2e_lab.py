"""The upstream e2e cases with real packets: observed must equal expected, per backend.

The 3x3 model cluster (tests/e2e_cases.py) is brought up once per backend with
real ``sekisho agent`` processes; each case is ``apply``-ed in place (its
policies and its labels) and every ordered pair is probed for each of its
probes. TCP and UDP cells must match both upstream's expectation and the
semantics; SCTP cells must be reported ``unsupported``.

The model is dual-stack (every pod also has an IPv6 address, :func:`e2e_cases.pod_ip6`),
and each case's TCP and UDP probes are sent over IPv6 too, at the same time as the
IPv4 ones (so the IPv6 run costs little time): observed must equal the semantics
over IPv6, and upstream's expectation wherever the case names no ``ipBlock`` (the
transcription's ipBlocks are IPv4 CIDRs, which never match an IPv6 address).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from e2e_cases import CASES, PODS, E2ECase
from sekisho.lab.core import Lab
from sekisho.lab.reach import Reachability, measure

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

    return model_cluster_objects(dual_stack=True)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_case_in_lab(model_lab: Lab, case: E2ECase) -> None:
    cluster = model_lab.apply(case.objects())
    over6 = [p for p in case.probes if p[1] in ("TCP", "UDP")]
    with ThreadPoolExecutor(2) as pool:
        run6 = pool.submit(measure, cluster, model_lab.plan, over6, timeout=0.5, family=6)
        result = measure(cluster, model_lab.plan, case.probes, timeout=0.5)
        result6 = run6.result()
    _check_ipv6(model_lab, case, over6, result6)
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


def _check_ipv6(
    lab: Lab, case: E2ECase, probes: list[tuple[int | None, str]], result: Reachability
) -> None:
    """The same case over IPv6: observed equals the semantics over IPv6, and upstream's
    expectation when the case has no (IPv4) ipBlock."""
    assert result.pods == list(PODS)
    assert all(t.family == 6 for t in result.probes)
    upstream = "ipBlock" not in str(case.policies)
    problems: list[str] = []
    for (port, proto), table in zip(probes, result.probes, strict=True):
        for i, src in enumerate(PODS):
            for j, dst in enumerate(PODS):
                if src == dst:
                    continue
                obs = table.observed[i][j]
                got = obs in ("allowed", "no-listener")
                if table.wrong(i, j):
                    problems.append(
                        f"{src} -> {dst} {proto}/{port} over IPv6: observed {obs}"
                        f" ({table.detail[i][j]}), the semantics say"
                        f" {'allowed' if table.allowed[i][j] else 'denied'}"
                    )
                elif upstream and got != case.allowed((port, proto), src, dst):
                    problems.append(
                        f"{src} -> {dst} {proto}/{port} over IPv6: observed {obs},"
                        " upstream expects the other"
                    )
    assert not problems, f"{lab.state.backend} {case.id}:\n" + "\n".join(problems)
