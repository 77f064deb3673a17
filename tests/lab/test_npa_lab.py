"""The network-policy-api conformance cases with real packets: observed equals upstream.

Each cluster of the suite (the base cluster of five namespaces and their
StatefulSets, per API version, and the two cases with a cluster of their own) is
brought up once per backend with real ``sekisho agent`` processes; every case of
both API versions is ``apply``-ed in place, in the suite's order, and every poke
of upstream's ``PokeServer`` calls is probed. TCP and UDP pokes must come out as
upstream expects; SCTP pokes must be reported ``unsupported`` (this kernel has
no SCTP), never as passed. The same cases run offline in tests/semantics_npa
and through the rendered rules in tests/render.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from npa_cases import CASES, NpaCase
from sekisho.lab.core import Lab
from sekisho.lab.reach import measure

from .conftest import lab_namespaces, unique_name

pytestmark = pytest.mark.privileged


def _objects(path: Path) -> list[dict[str, Any]]:
    return [o for o in yaml.safe_load_all(path.read_text()) if o]


ALL = sorted(CASES, key=lambda c: (c.api, str(c.cluster)))
"""Every case, grouped by cluster (a lab comes up once per cluster and backend), in
the suite's order within a cluster."""


class Labs:
    """One lab up at a time, for one (backend, cluster): the clusters differ in their
    pods and ports, which a running lab cannot change."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.key: tuple[str, Path] | None = None
        self.lab: Lab | None = None
        self.name = ""

    def get(self, backend: str, case: NpaCase) -> Lab:
        key = (backend, case.cluster)
        if self.key != key or self.lab is None:
            self.close()
            self.name = unique_name()
            self.lab = Lab.up(
                _objects(case.cluster), name=self.name, backend=backend, root=self.root
            )
            self.key = key
        return self.lab

    def close(self) -> None:
        if self.lab is not None:
            self.lab.down()
            assert not lab_namespaces(self.name)
        self.lab, self.key = None, None


@pytest.fixture(scope="module")
def labs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Labs]:
    keeper = Labs(Path(tmp_path_factory.mktemp("labs")))
    try:
        yield keeper
    finally:
        keeper.close()


def test_every_case_of_both_apis_runs() -> None:
    assert len(ALL) == len(CASES) == 188
    assert sum(len(c.pokes) for c in ALL) == 301 + 289
    text = "".join(c.policies.read_text() for c in ALL)
    for action in ("Deny", "Pass", "Allow", "Accept"):
        assert f"action: {action}" in text, action


@pytest.mark.parametrize(
    ("backend", "case"),
    [pytest.param(b, c, id=f"{b}-{c.id}") for b in ("iptables", "nftables") for c in ALL],
)
def test_conformance_case_in_lab(labs: Labs, backend: str, case: NpaCase) -> None:
    npa_lab = labs.get(backend, case)
    cluster = npa_lab.apply(_objects(case.policies))
    pokes = case.pokes
    sources = sorted({p.src for p in pokes})
    targets = sorted({p.dst for p in pokes})
    result = measure(cluster, npa_lab.plan, case.probes, sources, targets, timeout=0.5)
    tables = {(t.port, t.protocol): t for t in result.probes}
    problems: list[str] = []
    for poke in pokes:
        table = tables[(poke.port, poke.protocol)]
        obs = table.observed[result.pods.index(poke.src)][result.pods.index(poke.dst)]
        if poke.protocol == "SCTP":
            if obs != "unsupported":
                problems.append(f"{poke}: observed {obs}, want unsupported")
            continue
        got = obs in ("allowed", "no-listener")
        if got != poke.connect:
            problems.append(f"{poke}: observed {obs}")
    assert not problems, f"{npa_lab.state.backend} {case.id}:\n" + "\n".join(problems)
