"""The network-policy-api conformance suite, as data: ``tests/data/npa-conformance``.

A copy of the transcription in ``../shared/corpora/npa-conformance`` (its
README says how it was made: every ``PokeServer`` of the upstream suite, the
suite's patches replayed in order, for ClusterNetworkPolicy ``v1alpha2`` at
HEAD and AdminNetworkPolicy / BaselineAdminNetworkPolicy ``v1alpha1`` at
``v0.1.7``). A case is one folder: the cluster (the base cluster or the
case's own), the policies in force at that moment, and the pokes with the
upstream ``shouldConnect``.

Consumers: ``tests/semantics_npa`` (the semantics, offline) and, later, the
lab (the same cluster with real packets).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "data" / "npa-conformance"

EXPECTED_POKES = {"v1alpha2": 301, "v1alpha1": 289}
"""The README's counts: a case lost or a poke dropped fails the count test."""


@dataclass(frozen=True, slots=True)
class Poke:
    src: str
    """``namespace/pod`` of the client."""
    dst: str
    """``namespace/pod`` of the server (upstream connects to its pod IP)."""
    protocol: str
    """TCP, UDP or SCTP."""
    port: int
    connect: bool
    """Upstream's ``shouldConnect``: False means the probe must time out (dropped)."""
    line: int
    """Line of the ``PokeServer`` call in the upstream test file."""

    def __str__(self) -> str:
        verb = "connects" if self.connect else "is dropped"
        return f"{self.src} -> {self.dst} {self.protocol}/{self.port} {verb} (line {self.line})"


@dataclass(frozen=True, slots=True)
class NpaCase:
    id: str
    """``v1alpha2/001-...`` style."""
    api: str
    folder: Path
    cluster: Path
    policies: Path
    subtest: str
    source: str
    """``conformance/tests/<file>.go@<commit>:<line>``."""
    pokes: tuple[Poke, ...]
    needs: tuple[str, ...] = ()

    @property
    def paths(self) -> list[str]:
        """What ``sekisho`` reads for this case: the cluster, then the policies."""
        return [str(self.cluster), str(self.policies)]

    @property
    def probes(self) -> list[tuple[int | None, str]]:
        """Every (port, protocol) the pokes use, sorted."""
        return sorted({(p.port, p.protocol) for p in self.pokes}, key=lambda x: (x[1], x[0] or 0))


def _load(api: str, root: Path) -> list[NpaCase]:
    out: list[NpaCase] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name[:3].isdigit()):
        doc = json.loads((folder / "expect.json").read_text())
        assert doc["api"] == api, folder
        pokes = tuple(
            Poke(p["from"], p["to"], p["protocol"], p["port"], p["connect"], p["line"])
            for p in doc["pokes"]
        )
        out.append(
            NpaCase(
                id=f"{api}/{folder.name}",
                api=api,
                folder=folder,
                cluster=(folder / doc["cluster"]).resolve(),
                policies=folder / "policies.yaml",
                subtest=doc["subtest"],
                source=doc["source"],
                pokes=pokes,
                needs=tuple(doc.get("needs", ())),
            )
        )
    return out


CASES: list[NpaCase] = _load("v1alpha2", CORPUS) + _load("v1alpha1", CORPUS / "v1alpha1")
