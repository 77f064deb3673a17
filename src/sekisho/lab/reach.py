"""Expected (semantics) against observed (real probes), the way upstream e2e ``Reachability`` does.

For every probe (``port``/``protocol``, ICMP without a port) and every ordered
pod pair, the expected value comes from :func:`sekisho.semantics.compute_matrix`
and the observed one from a real packet sent from inside the source pod's
namespace. A cell is wrong when the packet reached the destination (``allowed``
or ``no-listener``) but policy says it may not, or the other way round.
``unsupported`` cells (SCTP) and cells not probed are never wrong; they are listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sekisho.errors import UsageError
from sekisho.lab import probe as pr
from sekisho.lab.topology import Plan
from sekisho.model.types import Cluster
from sekisho.semantics.probe import Service

if TYPE_CHECKING:
    from sekisho.lab.logs import LogCapture, LogLine

ProbeSpec = Service | tuple[int | None, str]
"""A probe (a :class:`~sekisho.semantics.probe.Service`; a ``(port, protocol)`` pair is read as one)."""

SYMBOL = {
    "allowed": ".",
    "no-listener": "n",
    "dropped": "X",
    "rejected": "R",
    "unsupported": "U",
    "error": "E",
    None: "-",
}


@dataclass
class ProbeTable:
    port: int | None
    protocol: str
    ingress: list[list[bool]]
    egress: list[list[bool]]
    allowed: list[list[bool]]
    observed: list[list[str | None]]
    """Outcome per cell (see :mod:`sekisho.lab.probe`); None when the pair was not probed."""
    detail: list[list[str]] = field(default_factory=list)
    name: str | None = None
    """A probed port name, resolved on each destination (``port`` is then None)."""
    family: int | None = None
    """The IP family probed (4 or 6); None: each pod's first address, as given."""
    logs: dict[tuple[int, int], list[LogLine]] | None = None
    """Per probed cell, the lines Log rules wrote for its packets (:mod:`sekisho.lab.logs`);
    None: not read (no capture)."""
    log_expected: dict[tuple[int, int], list[tuple[str, str]]] = field(default_factory=dict)
    """Per probed cell whose lines differ from the expected ones: the (node, prefix) the
    rendered rules say its packets meet."""

    @property
    def label(self) -> str:
        if self.name is not None:
            text = f"{self.protocol}/{self.name}"
        else:
            text = self.protocol if self.port is None else f"{self.protocol}/{self.port}"
        return text if self.family is None else f"{text} over IPv{self.family}"

    def wrong(self, i: int, j: int) -> bool:
        obs = self.observed[i][j]
        if obs is None or obs == "unsupported":
            return False
        return (obs in pr.REACHED) != self.allowed[i][j]

    def wrong_cells(self) -> list[tuple[int, int]]:
        n = len(self.allowed)
        return [(i, j) for i in range(n) for j in range(n) if self.wrong(i, j)]

    def unsupported_cells(self) -> list[tuple[int, int]]:
        n = len(self.allowed)
        return [(i, j) for i in range(n) for j in range(n) if self.observed[i][j] == "unsupported"]

    def to_json(self) -> dict[str, object]:
        head: dict[str, object] = {"port": self.port, "protocol": self.protocol}
        if self.name is not None:
            head["name"] = self.name
        if self.family is not None:
            head["family"] = self.family
        out: dict[str, object] = {
            **head,
            "ingress": self.ingress,
            "egress": self.egress,
            "allowed": self.allowed,
            "observed": self.observed,
        }
        if self.logs is not None:
            out["logs"] = [
                {"i": i, "j": j, **line.to_json()}
                for (i, j), lines in sorted(self.logs.items())
                for line in lines
            ]
            out["logs_wrong"] = [
                {"i": i, "j": j, "expected": [{"node": n, "prefix": p} for n, p in want]}
                for (i, j), want in sorted(self.log_expected.items())
            ]
        return out


@dataclass
class Reachability:
    pods: list[str]
    probes: list[ProbeTable]
    seconds: float = 0.0
    log_problems: list[str] = field(default_factory=list)
    """Why some log lines could not be read (a node whose log group could not be bound)."""

    @property
    def mismatches(self) -> int:
        return sum(len(t.wrong_cells()) for t in self.probes)

    @property
    def log_mismatches(self) -> int:
        """Probed cells whose log lines differ from what the rendered rules say."""
        return sum(len(t.log_expected) for t in self.probes)

    def to_json(self) -> dict[str, object]:
        """The object of docs/architecture.md ("Machine-readable output"), with ``observed``."""
        return {"pods": self.pods, "probes": [t.to_json() for t in self.probes]}


def _select(pods: Sequence[str], wanted: Sequence[str], flag: str) -> set[int]:
    if not wanted:
        return set(range(len(pods)))
    out: set[int] = set()
    for w in wanted:
        hit = {i for i, k in enumerate(pods) if k == w or k.split("/", 1)[0] == w}
        if not hit:
            raise UsageError(f"{flag} {w}: no pod (namespace/name) or namespace of that name")
        out |= hit
    return out


def measure(
    cluster: Cluster,
    topo: Plan,
    specs: Sequence[ProbeSpec],
    sources: Sequence[str] = (),
    targets: Sequence[str] = (),
    timeout: float = 1.0,
    family: int | None = None,
    capture: LogCapture | None = None,
    workers: int = 96,
) -> Reachability:
    """Probe every selected ordered pair for every spec and compare with the semantics.

    ``family``: probe over IPv4 or IPv6 (the pods' addresses of that family, the
    semantics of that family: :func:`sekisho.semantics.probe.family_view`); None:
    each pod's first address. ``capture`` (open): the log lines of each probe are read
    from it after the probes. ``workers``: probes in flight at once (each waits up
    to ``timeout`` for a drop)."""
    import time

    from sekisho.semantics import Flow, compute_matrix, resolve_endpoint
    from sekisho.semantics.probe import family_view

    view = family_view(cluster, family)
    matrix = compute_matrix(view, list(specs))
    services = [pm.service for pm in matrix.probes]
    pods = [p.key for p in matrix.pods]
    src_ix = _select(pods, sources, "--from")
    dst_ix = _select(pods, targets, "--to")
    plans = [topo.pod(k) for k in pods]
    jobs: list[tuple[int, int, int, pr.Probe]] = []
    sources_ip: dict[int, str] = {}
    for k, svc in enumerate(services):
        for i in sorted(src_ix):
            for j in sorted(dst_ix):
                s, d = plans[i], plans[j]
                assert s is not None and d is not None
                address = d.addr(family)
                if address is None:
                    raise UsageError(f"pod {d.key} has no IPv{family} address in the lab")
                # A named port is resolved on the destination; a pod that declares no
                # such port has nothing to probe (the cell stays "not probed").
                port = svc.port_on(matrix.pods[j]) if svc.name is not None else svc.port
                if svc.name is not None and port is None:
                    continue
                sources_ip[len(jobs)] = str(s.addr(family))
                jobs.append(
                    (
                        k,
                        i,
                        j,
                        pr.Probe(
                            s.netns,
                            str(address),
                            port or 0,
                            svc.protocol,
                            served=d.serves(port or 0, svc.protocol),
                            pod=None if d.host_network else d.key,
                        ),
                    )
                )
    start = time.monotonic()
    if capture is not None:
        capture.read()  # what was logged before these probes is not theirs
    outcomes = pr.run([j[3] for j in jobs], timeout=timeout, workers=workers)
    observed = capture.read() if capture is not None and capture.active else None
    took = time.monotonic() - start
    n = len(pods)
    tables = []
    for pm in matrix.probes:
        tables.append(
            ProbeTable(
                port=pm.port,
                protocol=pm.protocol,
                name=pm.name,
                family=family,
                ingress=pm.ingress.tolist(),
                egress=pm.egress.tolist(),
                allowed=pm.allowed.tolist(),
                observed=[[None] * n for _ in range(n)],
                detail=[[""] * n for _ in range(n)],
                logs={} if observed is not None else None,
            )
        )
    for x, ((k, i, j, p), out) in enumerate(zip(jobs, outcomes, strict=True)):
        tables[k].observed[i][j] = out.outcome
        tables[k].detail[i][j] = out.detail
        table_logs = tables[k].logs
        if capture is not None and observed is not None and table_logs is not None:
            port = None if p.protocol == "ICMP" else p.port
            lines = capture.lines(observed, sources_ip[x], p.ip, p.protocol, port)
            if lines:
                table_logs[(i, j)] = lines
            if p.protocol != "SCTP":
                ends = resolve_endpoint(view, pods[i]), resolve_endpoint(view, pods[j])
                want = capture.expected(Flow(*ends, services[k].protocol, port))
                if set(want) != {(line.node, line.prefix) for line in lines}:
                    tables[k].log_expected[(i, j)] = want
    problems = list(capture.problems) if capture is not None else []
    return Reachability(pods, tables, took, problems)


def measure_families(
    cluster: Cluster,
    topo: Plan,
    specs: Sequence[ProbeSpec],
    sources: Sequence[str] = (),
    targets: Sequence[str] = (),
    timeout: float = 1.0,
    family: int | None = None,
    capture: LogCapture | None = None,
) -> list[Reachability]:
    """:func:`measure` over each family to probe (:func:`~sekisho.semantics.probe.probe_families`:
    the one asked for; both for a dual-stack cluster)."""
    from sekisho.semantics.probe import probe_families

    return [
        measure(cluster, topo, specs, sources, targets, timeout, fam, capture)
        for fam in probe_families(cluster, family)
    ]


def format_tables(r: Reachability) -> str:
    """Expected against observed per probe, wrong cells marked, then the list of wrong cells."""
    lines: list[str] = []
    width = len(str(len(r.pods) - 1))
    lines.append("pods:")
    for i, k in enumerate(r.pods):
        lines.append(f"  {i:>{width}}  {k}")
    lines.append(
        "cells: expected then observed; '.' reaches, 'X' dropped, 'R' rejected,"
        " 'n' no listener (reached), 'U' unsupported, '-' not probed; '!' marks a wrong cell"
    )
    for t in r.probes:
        wrong = t.wrong_cells()
        lines.append("")
        lines.append(f"{t.label}: {len(wrong)} wrong cell(s)")
        header = " " * (width + 2) + "".join(f"{j:>4}" for j in range(len(r.pods)))
        lines.append(header)
        for i in range(len(r.pods)):
            cells = []
            for j in range(len(r.pods)):
                exp = "." if t.allowed[i][j] else "X"
                obs = SYMBOL.get(t.observed[i][j], "?")
                mark = "!" if t.wrong(i, j) else " "
                cells.append(f" {exp}{obs}{mark}")
            lines.append(f"{i:>{width}}  " + "".join(cells))
        for i, j in wrong:
            exp = "allowed" if t.allowed[i][j] else "denied"
            lines.append(
                f"  WRONG {r.pods[i]} -> {r.pods[j]} {t.label}: expected {exp},"
                f" observed {t.observed[i][j]} ({t.detail[i][j] if t.detail else ''})"
            )
        uns = t.unsupported_cells()
        if uns:
            lines.append(f"  unsupported: {len(uns)} cell(s) ({t.protocol} is not probed here)")
        if t.logs:
            lines.append("  log lines (Log rules that logged a probe's packets, per node):")
            for (i, j), logged in sorted(t.logs.items()):
                lines.append(f"    {r.pods[i]} -> {r.pods[j]}:")
                lines.extend(f"      {line.text()}" for line in logged)
        for (i, j), want in sorted(t.log_expected.items()):
            said = ", ".join(f"{n}: {p!r}" for n, p in want) or "none"
            got = ", ".join(f"{x.node}: {x.prefix!r}" for x in (t.logs or {}).get((i, j), []))
            lines.append(
                f"  WRONG LOG {r.pods[i]} -> {r.pods[j]} {t.label}: the rendered rules log"
                f" {said}; observed {got or 'none'}"
            )
    if r.log_problems:
        lines.append("")
        lines.extend(f"log lines not read: {p}" for p in r.log_problems)
    lines.append("")
    total = r.mismatches + r.log_mismatches
    logs = f", {r.log_mismatches} with wrong log lines" if r.log_mismatches else ""
    lines.append(
        f"{'OK' if total == 0 else 'MISMATCH'}: {r.mismatches} wrong cell(s){logs} in"
        f" {len(r.probes)} probe(s) of {len(r.pods)} pods ({r.seconds:.1f} s)"
    )
    return "\n".join(lines)
