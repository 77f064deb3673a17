"""The network-policy-api conformance cases with real packets: observed equals upstream.

The base cluster of the suite (five namespaces, their StatefulSets) is brought up
once per backend with real ``sekisho agent`` processes; a sample of the cases
of both API versions (admin and baseline tiers; Allow/Accept, Deny and Pass;
pods, namespaces, nodes and CIDR peers; named ports) is ``apply``-ed in place
and every poke of upstream's ``PokeServer`` calls is probed. TCP and UDP pokes
must come out as upstream expects; SCTP pokes must be reported ``unsupported``
(this kernel has no SCTP), never as passed. The whole suite runs offline in
tests/semantics_npa and through the rendered rules in tests/render; this is the
sample that proves the kernel agrees, within CI's time.
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

SAMPLE_EVERY = 12
"""One case in this many of those on each API's base cluster (about 16 in all)."""


def _objects(path: Path) -> list[dict[str, Any]]:
    return [o for o in yaml.safe_load_all(path.read_text()) if o]


def _sample(api: str) -> list[NpaCase]:
    on_base = [c for c in CASES if c.api == api and c.cluster.parent.name == "base"]
    return on_base[::SAMPLE_EVERY]


SAMPLE = _sample("v1alpha2") + _sample("v1alpha1")


class Labs:
    """One lab up at a time, for one (backend, API): the two APIs' base clusters differ
    in their pods' ports, which a running lab cannot change."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.key: tuple[str, str] | None = None
        self.lab: Lab | None = None
        self.name = ""

    def get(self, backend: str, case: NpaCase) -> Lab:
        key = (backend, case.api)
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


def test_the_sample_covers_both_apis_and_every_action() -> None:
    assert {c.api for c in SAMPLE} == {"v1alpha1", "v1alpha2"}
    text = "".join(c.policies.read_text() for c in SAMPLE)
    for action in ("Deny", "Pass", "Allow", "Accept"):
        assert f"action: {action}" in text, action
    assert len({c.cluster for c in SAMPLE}) == 2
    assert sum(len(c.pokes) for c in SAMPLE) >= 30


@pytest.mark.parametrize(
    ("backend", "case"),
    [pytest.param(b, c, id=f"{b}-{c.id}") for b in ("iptables", "nftables") for c in SAMPLE],
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
