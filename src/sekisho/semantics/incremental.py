"""The matrix kept up to date as pods change, in time proportional to what a change touches.

:class:`IncrementalMatrix` computes :func:`~sekisho.semantics.matrix.compute_matrix`
once, then follows new snapshots of the cluster (an agent's or the lab's
source, a watch mode):

* A pod whose identity stays (or moves to an identity that exists already): only
  its entry in ``pod_identity`` changes; no table does. That is the usual case:
  a label no selector reads, a new replica, a pod deleted.
* A pod that makes a new identity (a label some selector reads takes a new
  value): the new identity's rows (which sets hold it) are computed on a view of
  that one identity, and only its row and its column of every table are computed,
  as vectors: for the new destination ``B`` of a tier's run, the sources that a
  rule matches are the OR of the source rows of the rules whose destination row
  holds ``B`` (no matrix product). Tables grow inside preallocated room.
* Anything else (a policy, a namespace's labels, a node, the probes) recomputes
  everything: such changes can move any cell.

Identities left without pods are kept (size 0) until the next full computation;
:meth:`IncrementalMatrix.matrix` says nothing about them (they count no pairs).
The tests hold every result equal to a full computation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress
from operator import attrgetter, is_not

import numpy as np
import numpy.typing as npt

from sekisho.model.types import Cluster, Pod
from sekisho.selectors.labels import BoolArray
from sekisho.semantics.compiler import compile_program, program_inputs
from sekisho.semantics.matrix import (
    Identity,
    IdentityKey,
    IntArray,
    Matrix,
    Probe,
    ProbeMatrix,
    _check_probe,
    _Identities,
    _Keyer,
    _prepare,
    _PreparedTier,
    _proto_number,
    _runs,
    compute_matrix,
    refuse_host_endpoint_pods,
    walk_order,
)
from sekisho.semantics.probe import Service
from sekisho.semantics.program import (
    DIRECTIONS,
    PORT_PROTOCOLS,
    Direction,
    EntityMatch,
    Program,
    Rule,
    SelectorSet,
)

ROOM = 64
"""New identities a view takes before the next full computation."""


@dataclass(slots=True)
class _Run:
    """A run of one action: its rules' rows, bit-packed, one stack per part."""

    action: str
    src: list[npt.NDArray[np.uint8]]
    """Per part: (rules, ceil(identities / 8)) packed source rows."""
    dst: list[npt.NDArray[np.uint8]]


@dataclass(slots=True)
class _Tier:
    applies: list[BoolArray]
    """Per part: which identities the tier applies to (for the direction)."""
    end_action: str
    runs: list[_Run]


@dataclass(slots=True)
class _Rows:
    """One probe, one direction: every rule's rows per part (the first full view, then each
    view of new identities), aligned rule for rule."""

    tiers: list[_Tier]
    sizes: list[int]
    """Identities per part."""


@dataclass(slots=True)
class _Plan:
    """One direction's rules in the walk's order, as indexes, so that a view of new
    identities gets every rule's rows by fancy indexing (no loop over rules)."""

    subjects: list[SelectorSet]
    bases: list[EntityMatch]
    rule_subject: IntArray
    rule_src: IntArray
    rule_dst: IntArray
    tiers: list[tuple[list[int], list[tuple[str, int, int]]]]
    """Per tier: (subject indexes of its policies, runs as (action, first rule, end))."""
    probes: list[_ProbePlan]


@dataclass(slots=True)
class _ProbePlan:
    mode: IntArray
    """Per rule: -1 matches no pair for this probe, -2 no port criteria to read, k: the
    destination port criteria of ``specs[k]``."""
    specs: list[EntityMatch]
    families: npt.NDArray[np.bool_]
    """(rules, 2): whether the protocol-level criteria match for IPv4, IPv6."""


def _plan(
    program: Program, direction: Direction, services: list[Service], big: _Identities
) -> _Plan:
    subjects: dict[str, int] = {}
    subject_sets: list[SelectorSet] = []
    bases: dict[tuple[str, str, str, str], int] = {}
    base_sides: list[EntityMatch] = []

    def base_id(side: EntityMatch) -> int:
        key = (
            side.nets.key if side.nets is not None else "",
            side.not_nets.key if side.not_nets is not None else "",
            side.selector.key if side.selector is not None else "",
            side.not_selector.key if side.not_selector is not None else "",
        )
        got = bases.get(key)
        if got is None:
            got = bases[key] = len(base_sides)
            base_sides.append(side)
        return got

    rules: list[Rule] = []
    rs, rsrc, rdst = [], [], []
    tiers: list[tuple[list[int], list[tuple[str, int, int]]]] = []
    for _tier, policies in walk_order(program, direction):
        tier_subjects: list[int] = []
        runs: list[tuple[str, int, int]] = []
        for pol, pol_rules in policies:
            sid = subjects.get(pol.selector.key)
            if sid is None:
                sid = subjects[pol.selector.key] = len(subject_sets)
                subject_sets.append(pol.selector)
            tier_subjects.append(sid)
            for rule in pol_rules:
                if runs and runs[-1][0] == rule.action:
                    runs[-1] = (rule.action, runs[-1][1], len(rules) + 1)
                else:
                    runs.append((rule.action, len(rules), len(rules) + 1))
                rules.append(rule)
                rs.append(sid)
                rsrc.append(base_id(rule.src))
                rdst.append(base_id(rule.dst))
        tiers.append((tier_subjects, runs))
    probes: list[_ProbePlan] = []
    for svc in services:
        proto = {fam: _proto_number(svc.protocol, fam) for fam in (4, 6)}
        echo = svc.protocol == "ICMP"
        number = proto[4]
        dst_port = svc.port if number in PORT_PROTOCOLS else None
        mode = np.full(len(rules), -2, dtype=np.int64)
        fams = np.zeros((len(rules), 2), dtype=np.bool_)
        specs: list[EntityMatch] = []
        for r, rule in enumerate(rules):
            fams[r] = [not rule.protocol_fails(proto[f], f, echo) for f in (4, 6)]
            if big.side_ports(rule.src, "source", number, None) is False:
                mode[r] = -1
                continue
            got = big.side_ports(rule.dst, "destination", number, dst_port)
            if got is False:
                mode[r] = -1
            elif got is not True:
                mode[r] = len(specs)
                specs.append(rule.dst)
        probes.append(_ProbePlan(mode, specs, fams))
    return _Plan(
        subject_sets,
        base_sides,
        np.asarray(rs, dtype=np.int64),
        np.asarray(rsrc, dtype=np.int64),
        np.asarray(rdst, dtype=np.int64),
        tiers,
        probes,
    )


def _part_base(
    plan: _Plan, part: _Identities, direction: Direction, subjects: dict[str, BoolArray]
) -> tuple[BoolArray, BoolArray, BoolArray]:
    """A view's rows before any probe: (subjects, every rule's source rows, destination
    rows), the policy's selection on the subject side. ``subjects`` keeps each policy
    selector's row by key, for the other direction."""
    n = part.size
    rows = []
    for sel in plan.subjects:
        row = subjects.get(sel.key)
        if row is None:
            row = subjects[sel.key] = part.subject(sel)
        rows.append(row)
    subj = np.asarray(rows or np.zeros((0, n), np.bool_), dtype=np.bool_).reshape(
        len(plan.subjects), n
    )
    base = np.asarray(
        [part.base(b) for b in plan.bases] or np.zeros((0, n), np.bool_), dtype=np.bool_
    ).reshape(len(plan.bases), n)
    src = base[plan.rule_src]
    dst = base[plan.rule_dst]
    if direction == "ingress":
        dst &= subj[plan.rule_subject]
    else:
        src &= subj[plan.rule_subject]
    return subj, src, dst


def _part_rows(
    plan: _Plan,
    part: _Identities,
    svc: Service,
    k: int,
    rows: tuple[BoolArray, BoolArray, BoolArray],
) -> list[tuple[BoolArray, list[tuple[BoolArray, BoolArray]]]]:
    """Per tier for probe ``k``: (applies, per run (src rows, dst rows)) of a view, from
    its rows before any probe (:func:`_part_base`)."""
    subj, src, dst = rows
    dst = dst.copy()
    n = part.size
    pp = plan.probes[k]
    number = _proto_number(svc.protocol, 4)
    dst_port = svc.port if number in PORT_PROTOCOLS else None
    if pp.specs:
        spec_rows = np.ones((len(pp.specs), n), dtype=np.bool_)
        for i, spec in enumerate(pp.specs):
            got = part.side_ports(spec, "destination", number, dst_port)
            spec_rows[i] = got
        named = pp.mode >= 0
        dst[named] &= spec_rows[pp.mode[named]]
    dst[pp.mode == -1] = False
    fam = np.stack([part.family == 4, part.family == 6], axis=0)  # (2, n)
    dst &= (pp.families.astype(np.uint8) @ fam.astype(np.uint8)) > 0
    out: list[tuple[BoolArray, list[tuple[BoolArray, BoolArray]]]] = []
    for tier_subjects, runs in plan.tiers:
        applies = np.zeros(n, dtype=np.bool_)
        for sid in tier_subjects:
            applies |= subj[sid]
        out.append((applies, [(src[a:b], dst[a:b]) for _action, a, b in runs]))
    return out


class IncrementalMatrix:
    """A matrix that follows cluster snapshots; see the module docstring."""

    def __init__(
        self, cluster: Cluster, probes: Sequence[Service | Probe], *, program: Program | None = None
    ) -> None:
        self.services = [_check_probe(p) for p in probes]
        self._given_program = program
        self.full_computations = 0
        """How many times everything was computed (the first time included)."""
        self.cluster: Cluster
        self.program: Program
        self.pods: tuple[Pod, ...]
        """The pods in order (namespace, name): the matrix's rows."""
        self.raw: tuple[Pod, ...]
        """The pods as the last snapshot gave them."""
        self.place: list[int]
        """For each pod of :attr:`raw`, its position in :attr:`pods`."""
        self.same_node: tuple[tuple[int, IntArray], ...] | None
        """The same-node fixes of unnamed probes, kept while pods keep their places,
        nodes and hostNetwork (None: to compute)."""
        self.keyer: _Keyer
        self.key_index: dict[IdentityKey, int]
        self.identities: list[Identity]
        self.pod_identity: IntArray
        self.size: int
        self.capacity: int
        self.parts: list[_Identities]
        self.plans: dict[Direction, _Plan]
        self.rows: list[dict[Direction, _Rows]]
        self.tables: list[dict[Direction, BoolArray]]
        self._full(cluster)

    # --------------------------------------------------------------- public

    def matrix(self) -> Matrix:
        """The current matrix (identity tables are views; do not keep them across updates)."""
        n = self.size
        probes = tuple(
            ProbeMatrix(
                svc.port,
                svc.protocol,
                self.tables[i]["ingress"][:n, :n],
                self.tables[i]["egress"][:n, :n],
                self.pod_identity,
                self._same_node() if svc.name is None else (),
                svc.name,
            )
            for i, svc in enumerate(self.services)
        )
        return Matrix(self.pods, probes, tuple(self.identities), self.pod_identity)

    def update(self, cluster: Cluster) -> Matrix:
        """Move to ``cluster``; recompute only what its changes touch."""
        refuse_host_endpoint_pods(cluster, cluster.pods)
        old = self.cluster
        if (
            program_inputs(cluster) != program_inputs(old)
            or cluster.nodes != old.nodes
            or cluster.namespaces.keys() != old.namespaces.keys()
            or any(
                old.namespaces[k] is not ns and old.namespaces[k].labels != ns.labels
                for k, ns in cluster.namespaces.items()
            )
            or any(s.name is not None for s in self.services)
        ):
            self._full(cluster)
            return self.matrix()
        self.cluster = cluster
        if cluster.pods is old.pods:
            return self.matrix()
        pods, at, aligned = self._follow(cluster.pods)
        fresh = [pods[i] for i in at]
        keys, _member = self.keyer.keys(fresh)
        new_keys: dict[IdentityKey, Pod] = {}
        for pod, key in zip(fresh, keys, strict=True):
            if key not in self.key_index and key not in new_keys:
                new_keys[key] = pod
        if len(new_keys) + self.size > self.capacity:
            self._full(cluster)
            return self.matrix()
        if new_keys:
            self._add(cluster, list(new_keys.values()))
        if aligned:
            index = self.pod_identity.copy()
        else:
            old_index = {p.key: int(self.pod_identity[i]) for i, p in enumerate(self.pods)}
            index = np.asarray([old_index.get(p.key, -1) for p in pods], dtype=np.int64)
        for i, key in zip(at, keys, strict=True):
            index[i] = self.key_index[key]
        self.cluster = cluster
        self.pods = pods
        self.pod_identity = index
        return self.matrix()

    # ------------------------------------------------------------- internals

    def _full(self, cluster: Cluster) -> None:
        refuse_host_endpoint_pods(cluster, cluster.pods)
        self.full_computations += 1
        self.cluster = cluster
        self.program = program = self._given_program or compile_program(cluster)
        self._order(cluster.pods)
        full = compute_matrix(cluster, self.services, program=program)
        names: set[tuple[str, str]] = {
            (s.name, s.protocol) for s in self.services if s.name is not None
        }
        ids = _Identities(cluster, self.pods, program, names)
        self.keyer = ids.keyer
        self.key_index = dict(ids.key_index)
        self.identities = list(ids.identities)
        self.pod_identity = ids.pod_identity
        self.size = ids.size
        self.capacity = ids.size + ROOM
        subject = _subjects(ids, program)
        prepared = {d: _prepare(ids, program, d, subject, keep_all=True) for d in DIRECTIONS}
        self.parts = [ids]
        self.plans = {d: _plan(program, d, self.services, ids) for d in DIRECTIONS}
        self.rows = []
        self.tables = []
        for svc, pm in zip(self.services, full.probes, strict=True):
            rows: dict[Direction, _Rows] = {}
            tables: dict[Direction, BoolArray] = {}
            for d in DIRECTIONS:
                rows[d] = _Rows([], [])
                _extend_rows(rows[d], ids, prepared[d], svc)
                table = np.zeros((self.capacity, self.capacity), dtype=np.bool_)
                table[: self.size, : self.size] = pm.identity_table(d)
                tables[d] = table
            self.rows.append(rows)
            self.tables.append(tables)

    def _add(self, cluster: Cluster, reps: list[Pod]) -> None:
        """New identities (one representative pod each): their rows, then their row and
        column of every table."""
        names: set[tuple[str, str]] = {
            (s.name, s.protocol) for s in self.services if s.name is not None
        }
        part = _Identities(cluster, reps, self.program, names)
        base = self.size
        for key, ident in zip(part.key_index, part.identities, strict=True):
            self.key_index[key] = len(self.identities)
            self.identities.append(ident)
        self.parts.append(part)
        self.size += part.size
        n = self.size
        # The rows before any probe are the same for every probe: computed once a direction
        # (and each policy selector's subject row once for both).
        subjects: dict[str, BoolArray] = {}
        before = {d: _part_base(self.plans[d], part, d, subjects) for d in DIRECTIONS}
        for i, svc in enumerate(self.services):
            for d in DIRECTIONS:
                rows = self.rows[i][d]
                rows.sizes.append(part.size)
                for tier, (applies, runs) in zip(
                    rows.tiers, _part_rows(self.plans[d], part, svc, i, before[d]), strict=True
                ):
                    tier.applies.append(applies)
                    for run, (src, dst) in zip(tier.runs, runs, strict=True):
                        run.src.append(np.packbits(src, axis=1))
                        run.dst.append(np.packbits(dst, axis=1))
                table = self.tables[i][d]
                for b in range(base, n):
                    table[:n, b] = _vector(rows, d, fixed="dst", index=b)
                    table[b, :n] = _vector(rows, d, fixed="src", index=b)

    def _order(self, raw: tuple[Pod, ...]) -> None:
        """Put the snapshot's pods in order (namespace, name), keeping where each went."""
        names = list(map(attrgetter("namespace", "name"), raw))
        order = sorted(range(len(raw)), key=names.__getitem__)
        place = [0] * len(raw)
        for k, i in enumerate(order):
            place[i] = k
        self.raw = raw
        self.place = place
        self.pods = tuple(raw[i] for i in order)
        self.same_node = None

    def _follow(self, raw: tuple[Pod, ...]) -> tuple[tuple[Pod, ...], list[int], bool]:
        """The snapshot's pods in order, the positions whose pod changed, and whether the
        positions are the last snapshot's (the same pods by key, in the same order).

        When the snapshot's pods are the last one's in number and order, some objects
        replaced by pods of the same key (a relabel), only the replaced ones are looked
        at: the scan for them runs in C, and nothing is sorted again.
        """
        old_raw, old_pods = self.raw, self.pods
        if len(raw) == len(old_raw):
            moved = list(compress(range(len(raw)), map(is_not, raw, old_raw)))
            if all(raw[i].key == old_raw[i].key for i in moved):
                placed = list(old_pods)
                at: list[int] = []
                keep = True
                for i in moved:
                    new, was = raw[i], old_raw[i]
                    if new != was:
                        at.append(self.place[i])
                        keep = keep and new.host_network == was.host_network
                        keep = keep and new.node == was.node
                    placed[self.place[i]] = new
                same_node = self.same_node if keep else None
                self.raw = raw
                self.pods = tuple(placed)
                self.same_node = same_node
                return self.pods, sorted(at), True
        self._order(raw)
        pods: tuple[Pod, ...] = self.pods
        aligned = len(pods) == len(old_pods) and all(
            a is b or a.key == b.key for a, b in zip(pods, old_pods, strict=True)
        )
        if aligned:
            at = [
                i
                for i, (a, b) in enumerate(zip(pods, old_pods, strict=True))
                if a is not b and a != b
            ]
        else:
            before = {p.key: p for p in old_pods}
            at = [i for i, p in enumerate(pods) if before.get(p.key) != p]
        self.pods = old_pods  # update() moves to the new pods once the identities are in
        return pods, at, aligned

    def _same_node(self) -> tuple[tuple[int, IntArray], ...]:
        """(hostNetwork pod, the pods of its node): what every unnamed probe fixes."""
        if self.same_node is None:
            pods = self.pods
            out: list[tuple[int, IntArray]] = []
            for i, pod in enumerate(pods):
                if pod.host_network and pod.node is not None:
                    cols = [
                        j for j, q in enumerate(pods) if not q.host_network and q.node == pod.node
                    ]
                    out.append((i, np.asarray(cols, dtype=np.int64)))
            self.same_node = tuple(out)
        return self.same_node


def _subjects(ids: _Identities, program: Program) -> dict[str, BoolArray]:
    subject: dict[str, BoolArray] = {}
    for pol in program.policies():
        if pol.selector.key not in subject:
            subject[pol.selector.key] = ids.subject(pol.selector)
    return subject


def _pack(rows: list[BoolArray], size: int) -> npt.NDArray[np.uint8]:
    if not rows:
        return np.zeros((0, (size + 7) // 8), dtype=np.uint8)
    return np.packbits(np.asarray(rows, dtype=np.bool_), axis=1)


def _extend_rows(
    rows: _Rows, ids: _Identities, prepared: list[_PreparedTier], svc: Service
) -> None:
    """Add one part's rows (for ``svc``) to ``rows``, rule for rule."""
    per_tier = _runs(ids, prepared, svc.protocol, svc.port, keep_all=True)
    first = not rows.tiers
    rows.sizes.append(ids.size)
    for t, (applies, end, runs) in enumerate(per_tier):
        if first:
            rows.tiers.append(_Tier([], end, [_Run(r.action, [], []) for r in runs]))
        tier = rows.tiers[t]
        tier.applies.append(applies)
        for run, new in zip(tier.runs, runs, strict=True):
            run.src.append(_pack(new.src, ids.size))
            run.dst.append(_pack(new.dst, ids.size))


def _bit(stacks: list[npt.NDArray[np.uint8]], sizes: list[int], index: int) -> BoolArray:
    """Per rule of a run: its row's bit for identity ``index`` (over the parts)."""
    for stack, size in zip(stacks, sizes, strict=True):
        if index < size:
            out: BoolArray = ((stack[:, index // 8] >> (7 - index % 8)) & 1).astype(np.bool_)
            return out
        index -= size
    raise IndexError(index)


def _or_rows(stacks: list[npt.NDArray[np.uint8]], sizes: list[int], chosen: BoolArray) -> BoolArray:
    """The OR of the chosen rules' rows, over every identity of every part."""
    out: list[BoolArray] = []
    for stack, size in zip(stacks, sizes, strict=True):
        if chosen.any():
            packed = np.bitwise_or.reduce(stack[chosen], axis=0)
            out.append(np.unpackbits(packed, count=size).astype(np.bool_))
        else:
            out.append(np.zeros(size, dtype=np.bool_))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.bool_)


def _vector(rows: _Rows, direction: Direction, *, fixed: str, index: int) -> BoolArray:
    """One row (``fixed="src"``: identity ``index`` as the source, to every destination) or
    one column (``fixed="dst"``) of a direction's table: the walk of the tiers, as vectors
    (what :func:`sekisho.semantics.matrix._direction_table` does for whole tables)."""
    subject_side = "dst" if direction == "ingress" else "src"
    n = sum(rows.sizes)
    allowed = np.zeros(n, dtype=np.bool_)
    undecided = np.ones(n, dtype=np.bool_)
    for tier in rows.tiers:
        if fixed == subject_side:
            if not _locate(tier.applies, index):
                continue
            active = undecided.copy()
        else:
            active = undecided & np.concatenate(tier.applies)
        for run in tier.runs:
            mine, other = (run.src, run.dst) if fixed == "src" else (run.dst, run.src)
            hit = _or_rows(other, rows.sizes, _bit(mine, rows.sizes, index)) & active
            if run.action == "allow":
                allowed |= hit
                undecided &= ~hit
            elif run.action == "deny":
                undecided &= ~hit
            active &= ~hit
        if tier.end_action == "deny":
            undecided &= ~active
    out: BoolArray = allowed | undecided
    return out


def _locate(parts: list[BoolArray], index: int) -> bool:
    for part in parts:
        if index < len(part):
            return bool(part[index])
        index -= len(part)
    raise IndexError(index)
