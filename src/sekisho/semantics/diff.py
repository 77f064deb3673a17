"""What a policy change does: the pod pairs a change lets connect and the ones it cuts off.

Two snapshots (before and after) are compared on the pods they share, probe by
probe, with :func:`~sekisho.semantics.matrix.compute_matrix` on each side.
Changed pairs are grouped by the workload-like groups of their ends (namespace
and labels), and each group pair carries the cause: the walk of one of its
pairs before and after, reduced to the side and the rule (or end of tier) that
decided (:meth:`~sekisho.semantics.verdict.DirectionVerdict.because`).

Changes reach connections already open differently from new ones. The kernel
accepts packets of a tracked connection (``ESTABLISHED,RELATED``) before any
policy chain runs (Calico's ``cali-from-wl-dispatch`` and sekisho's endpoint
chains alike), so a connection opened while a pair was allowed keeps working,
replies included, after the change that denies the pair, until the connection
ends or its conntrack entry expires; only new connections are denied. A
:class:`GroupChange` of lost pairs therefore says which established flows
continue and for how long the kernel keeps them by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sekisho.model.types import Cluster, Pod
from sekisho.semantics.compiler import compile_program
from sekisho.semantics.endpoint import Flow, pod_endpoint
from sekisho.semantics.matrix import compute_matrix
from sekisho.semantics.probe import Service, default_services
from sekisho.semantics.program import Program
from sekisho.semantics.verdict import DirectionVerdict, Verdict, verdict

CONNTRACK_TIMEOUTS: dict[str, str] = {
    "TCP": "until they close (idle established TCP entries last 5 days: "
    "nf_conntrack_tcp_timeout_established 432000 s)",
    "UDP": "while packets keep flowing (idle UDP entries expire after 30 s, "
    "120 s once both sides have sent: nf_conntrack_udp_timeout[_stream])",
    "SCTP": "until they close (nf_conntrack_sctp_timeout_established 432000 s)",
    "ICMP": "for 30 s after the last echo (nf_conntrack_icmp_timeout)",
}
"""How long Linux keeps a tracked connection by default, per protocol (kernel defaults)."""


@dataclass(frozen=True, slots=True)
class Group:
    """Pods that look alike to a reader: one namespace, one set of labels."""

    namespace: str
    labels: tuple[tuple[str, str], ...]
    pods: tuple[str, ...]
    """``namespace/name`` of the members, sorted."""

    @property
    def name(self) -> str:
        if len(self.pods) == 1:
            return self.pods[0]
        labels = ",".join(f"{k}={v}" for k, v in self.labels) or "no labels"
        return f"{self.namespace}/{{{labels}}} ({len(self.pods)} pods)"


@dataclass(frozen=True, slots=True)
class GroupChange:
    """The pairs between two groups that one probe gained or lost."""

    src: Group
    dst: Group
    pairs: int
    """Changed ordered pairs of distinct pods between the groups."""
    of: int
    """All ordered pairs of distinct pods between the groups."""
    example: tuple[str, str]
    """One changed pair (source, destination), the one whose walks are shown."""
    before: Verdict
    after: Verdict

    @property
    def cause(self) -> str:
        """The side and rule that decide after the change (what now denies or allows)."""
        return _cause(self.before, self.after)

    def to_json(self) -> dict[str, object]:
        return {
            "from": self.src.name,
            "to": self.dst.name,
            "from_pods": list(self.src.pods),
            "to_pods": list(self.dst.pods),
            "pairs": self.pairs,
            "of": self.of,
            "example": {"from": self.example[0], "to": self.example[1]},
            "cause": self.cause,
            "before": self.before.reason,
            "after": self.after.reason,
        }


@dataclass(frozen=True, slots=True)
class ProbeDiff:
    service: Service
    gained: tuple[GroupChange, ...]
    """New connections now allowed that were denied."""
    lost: tuple[GroupChange, ...]
    """New connections now denied that were allowed; established ones continue."""

    @property
    def established(self) -> str:
        """What happens to open connections of the lost pairs, in words."""
        return (
            "connections already open keep working, replies included, "
            + CONNTRACK_TIMEOUTS[self.service.protocol]
            + "; only new ones are denied"
        )

    def to_json(self) -> dict[str, object]:
        return {
            **self.service.to_json(),
            "gained": [g.to_json() for g in self.gained],
            "lost": [g.to_json() for g in self.lost],
            "gained_pairs": sum(g.pairs for g in self.gained),
            "lost_pairs": sum(g.pairs for g in self.lost),
            "established_continue": [g.to_json() for g in self.lost],
            "established": self.established if self.lost else None,
        }


@dataclass(frozen=True, slots=True)
class Diff:
    """Every probe's changes, on the pods both snapshots have."""

    probes: tuple[ProbeDiff, ...]
    pods: int
    """Pods both snapshots have (the pairs compared are among these)."""
    added_pods: tuple[str, ...] = ()
    removed_pods: tuple[str, ...] = ()
    policies_added: tuple[str, ...] = field(default=())
    policies_removed: tuple[str, ...] = field(default=())
    policies_changed: tuple[str, ...] = field(default=())

    @property
    def changed(self) -> bool:
        """Whether who can reach whom differs: a pair gained or lost, or a pod added or
        removed. Policies rewritten to the same effect are no change."""
        return bool(
            any(p.gained or p.lost for p in self.probes) or self.added_pods or self.removed_pods
        )

    def to_json(self) -> dict[str, object]:
        return {
            "changed": self.changed,
            "pods": self.pods,
            "added_pods": list(self.added_pods),
            "removed_pods": list(self.removed_pods),
            "policies": {
                "added": list(self.policies_added),
                "removed": list(self.policies_removed),
                "changed": list(self.policies_changed),
            },
            "probes": [p.to_json() for p in self.probes],
        }


def diff_clusters(
    before: Cluster,
    after: Cluster,
    services: Sequence[Service] | None = None,
    *,
    programs: tuple[Program, Program] | None = None,
) -> Diff:
    """Compare what ``before`` and ``after`` allow, for ``services`` (default: the
    default probes of both snapshots) on the pods both have (same namespace and name).

    ``programs``: the programs to compare instead of the snapshots' own (the
    enforced program and its staged preview, :func:`diff_staged`)."""
    keys_before = {p.key: p for p in before.pods}
    keys_after = {p.key: p for p in after.pods}
    common = sorted(set(keys_before) & set(keys_after))
    if services is None:
        chosen: list[Service] = []
        for s in default_services(before) + default_services(after):
            if s not in chosen:
                chosen.append(s)
        chosen.sort(key=lambda s: (s.protocol == "ICMP", s.protocol, s.port or 0, s.name or ""))
        services = chosen
    pods_b = [keys_before[k] for k in common]
    pods_a = [keys_after[k] for k in common]
    prog_b, prog_a = programs or (compile_program(before), compile_program(after))
    out: list[ProbeDiff] = []
    if common:
        checked = [s for s in services if s.name is None or _declared(s, pods_b, pods_a)]
        m_b = compute_matrix(before, checked, pods=pods_b, program=prog_b)
        m_a = compute_matrix(after, checked, pods=pods_a, program=prog_a)
        groups = _groups(pods_a)
        for svc, pb, pa in zip(checked, m_b.probes, m_a.probes, strict=True):
            old = pb.allowed
            new = pa.allowed
            sides = ((before, prog_b), (after, prog_a))
            gained = _changes(sides, pods_b, pods_a, svc, new & ~old, groups)
            lost = _changes(sides, pods_b, pods_a, svc, old & ~new, groups)
            out.append(ProbeDiff(svc, tuple(gained), tuple(lost)))
    labels_b = _policy_texts(prog_b)
    labels_a = _policy_texts(prog_a)
    return Diff(
        tuple(out),
        len(common),
        tuple(sorted(set(keys_after) - set(keys_before))),
        tuple(sorted(set(keys_before) - set(keys_after))),
        tuple(sorted(set(labels_a) - set(labels_b))),
        tuple(sorted(set(labels_b) - set(labels_a))),
        tuple(sorted(k for k in set(labels_a) & set(labels_b) if labels_a[k] != labels_b[k])),
    )


def _declared(svc: Service, *pod_lists: Sequence[Pod]) -> bool:
    return any(svc.port_on(p) is not None for pods in pod_lists for p in pods)


def diff_staged(cluster: Cluster, services: Sequence[Service] | None = None) -> Diff:
    """What applying the staged policies would change (Calico's staged preview, offline)."""
    program = compile_program(cluster)
    return diff_clusters(cluster, cluster, services, programs=(program, program.pending()))


def _policy_texts(program: Program) -> dict[str, str]:
    """Each policy of the program by its label, with a canonical text of its meaning."""
    out: dict[str, str] = {}
    for pol in program.all_policies():
        name = pol.label if pol.label.startswith(pol.kind + " ") else f"{pol.kind} {pol.label}"
        out[name] = repr(
            (pol.tier, pol.order, pol.selector, pol.types, pol.ingress, pol.egress, pol.stage)
        )
    return out


def _groups(pods: Sequence[Pod]) -> tuple[list[Group], np.ndarray]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], list[int]] = {}
    for i, pod in enumerate(pods):
        found.setdefault((pod.namespace, tuple(sorted(pod.labels.items()))), []).append(i)
    groups: list[Group] = []
    of = np.zeros(len(pods), dtype=np.int64)
    for n, ((ns, labels), members) in enumerate(found.items()):
        groups.append(Group(ns, labels, tuple(pods[i].key for i in members)))
        of[members] = n
    return groups, of


def _changes(
    sides: tuple[tuple[Cluster, Program], tuple[Cluster, Program]],
    pods_b: Sequence[Pod],
    pods_a: Sequence[Pod],
    svc: Service,
    changed: np.ndarray,
    grouping: tuple[list[Group], np.ndarray],
) -> list[GroupChange]:
    groups, of = grouping
    rows, cols = np.nonzero(changed)
    if len(rows) == 0:
        return []
    pairs: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        pairs.setdefault((int(of[i]), int(of[j])), []).append((i, j))
    out: list[GroupChange] = []
    for (gs, gd), members in sorted(pairs.items()):
        i, j = members[0]
        n_src, n_dst = len(groups[gs].pods), len(groups[gd].pods)
        total = n_src * n_dst - (n_src if gs == gd else 0)
        out.append(
            GroupChange(
                groups[gs],
                groups[gd],
                len(members),
                total,
                (pods_a[i].key, pods_a[j].key),
                _walk(sides[0], pods_b[i], pods_b[j], svc),
                _walk(sides[1], pods_a[i], pods_a[j], svc),
            )
        )
    return out


def _walk(side: tuple[Cluster, Program], src: Pod, dst: Pod, svc: Service) -> Verdict:
    cluster, program = side
    port = svc.port_on(dst)
    flow = Flow(pod_endpoint(cluster, src), pod_endpoint(cluster, dst), svc.protocol, port)
    return verdict(cluster, flow, program=program)


def _side(v: Verdict, allowed: bool) -> list[DirectionVerdict]:
    return [d for d in (v.egress, v.ingress) if d is not None and d.allowed == allowed]


def _says(d: DirectionVerdict, before: DirectionVerdict | None) -> str:
    """One side's decision in words, naming the policies that isolate it."""
    head = f"{d.direction} of {d.endpoint.label}"
    if d.ending == "end-of-tier":
        names = ", ".join(p.label for p in d.policies)
        return f"{head}: isolated by {names}; no rule matches: denied"
    if d.ending == "profile" and not d.isolated:
        was = ", ".join(p.label for p in before.policies) if before is not None else ""
        now = f"{head}: no policy selects it"
        return f"{now} now (before: {was}): allowed" if was else f"{now}: allowed"
    return f"{head}: {d.because()}"


def _cause(before: Verdict, after: Verdict) -> str:
    sides_before = {d.direction: d for d in (before.egress, before.ingress) if d is not None}
    if not after.allowed:
        # What denies now: each denying side, with its deciding rule or tier end.
        return "; ".join(_says(d, sides_before.get(d.direction)) for d in _side(after, False))
    # What allows now, on the sides that denied before.
    was = {d.direction for d in _side(before, False)}
    parts = [
        _says(d, sides_before.get(d.direction))
        for d in (after.egress, after.ingress)
        if d is not None and (d.direction in was or not was)
    ]
    if not parts:
        return f"allowed ({after.reason})"
    return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Line:
    """Changes that share a cause, folded: every source group to every destination group."""

    sources: tuple[Group, ...]
    destinations: tuple[Group, ...]
    pairs: int
    cause: str


def fold(changes: Sequence[GroupChange]) -> list[Line]:
    """Fold group changes with the same cause: first the destinations of each source,
    then the sources with the same destinations (the shape of ``matrix -o summary``)."""
    by_cause: dict[str, dict[Group, list[GroupChange]]] = {}
    for g in changes:
        by_cause.setdefault(g.cause, {}).setdefault(g.src, []).append(g)
    out: list[Line] = []
    for cause, per_src in by_cause.items():
        merged: dict[tuple[Group, ...], list[Group]] = {}
        counts: dict[tuple[Group, ...], int] = {}
        for src, gs in per_src.items():
            dsts = tuple(g.dst for g in gs)
            merged.setdefault(dsts, []).append(src)
            counts[dsts] = counts.get(dsts, 0) + sum(g.pairs for g in gs)
        for dsts, srcs in merged.items():
            out.append(Line(tuple(srcs), dsts, counts[dsts], cause))
    return out
