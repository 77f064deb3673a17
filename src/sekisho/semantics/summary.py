"""The matrix read in groups: pods that look alike, and the connections between groups.

Beside the matrix engine, so the command line only spells what is decided
here. Two readings, both computed from the identity-level tables (identities
squared, never pods squared):

* the grouped table (``sekisho matrix -o table`` above 40 pods): pods grouped
  by namespace, labels, ports and hostNetwork (:func:`pod_groups`), and per
  pair of groups whether every pair of pods is allowed, none, some, or it is
  one pod with itself (:func:`group_cells`);
* the connectivity map (``sekisho matrix -o summary``, :func:`summarize`): a
  group is an identity of :func:`~sekisho.semantics.matrix.compute_matrix`,
  so a listed group pair is allowed for every pod pair in it and an unlisted
  one for none; source groups with the same destinations share a
  :class:`Connection`; a namespace all of whose groups (more than one) are in
  a set is named whole; a probe whose map equals an earlier probe's says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from sekisho.records import Record, set_field

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sekisho.model.types import ContainerPort, Pod
    from sekisho.semantics.matrix import Matrix, ProbeMatrix

IntArray = npt.NDArray[np.int64]

# --- the grouped table ---------------------------------------------------------------------------

ALLOWED, DENIED, SELF, MIXED = 0, 1, 2, 3
"""Codes of :func:`group_cells`: every pair allowed, none, only a pod with itself, some."""


class PodGroup(Record):
    """Pods with one namespace, label set, ports and hostNetwork, in pod order."""

    __slots__ = ("host_network", "labels", "members", "namespace", "ports")

    namespace: str
    labels: tuple[tuple[str, str], ...]
    """Every label of the pods, sorted (not only those policy reads)."""
    ports: tuple[ContainerPort, ...]
    host_network: bool
    members: list[int]
    """Indexes of the pods in the group."""

    def __init__(
        self,
        namespace: str,
        labels: tuple[tuple[str, str], ...],
        ports: tuple[ContainerPort, ...],
        host_network: bool,
        members: list[int],
    ) -> None:
        set_field(self, "namespace", namespace)
        set_field(self, "labels", labels)
        set_field(self, "ports", ports)
        set_field(self, "host_network", host_network)
        set_field(self, "members", members)


def pod_groups(pods: Sequence[Pod]) -> list[PodGroup]:
    """Pods grouped by what policy sees (namespace, labels, ports, hostNetwork), in order."""
    found: dict[tuple[str, tuple[tuple[str, str], ...], tuple[ContainerPort, ...], bool], list[int]]
    found = {}
    for i, pod in enumerate(pods):
        key = (pod.namespace, tuple(sorted(pod.labels.items())), pod.ports, pod.host_network)
        found.setdefault(key, []).append(i)
    return [PodGroup(*key, members) for key, members in found.items()]


def group_counts(probe: ProbeMatrix, which: str, group_of_pod: IntArray, n_groups: int) -> IntArray:
    """(G, G): allowed ordered pairs of distinct pods per (row group, column group).

    Summed from the identity-level table (K^2) and the number of pods of each
    identity in each group (K x G), never from the pods^2 table. An identity may
    span groups (pods that differ only in labels no policy reads).
    """
    allowed = probe.identity_table(which)
    table = allowed.astype(np.float64)
    ident = probe.pod_identity
    per = np.zeros((table.shape[0], n_groups), dtype=np.float64)
    np.add.at(per, (ident, group_of_pod), 1.0)
    out = per.T @ table @ per  # BLAS; exact below 2**53
    # A pod with itself is no pair.
    np.add.at(out, (group_of_pod, group_of_pod), -np.diagonal(table)[ident])
    if which != "egress":
        # A hostNetwork pod reaches the pods of its own node unfiltered.
        for row, cols in probe.same_node:
            missed = cols[~allowed[ident[row], ident[cols]]]
            np.add.at(out, (np.full(len(missed), group_of_pod[row]), group_of_pod[missed]), 1.0)
    result: IntArray = np.rint(out).astype(np.int64)
    return result


def group_cells(
    probe: ProbeMatrix, which: str, pod_identity: IntArray, members: Sequence[list[int]]
) -> IntArray:
    """(G, G) codes per (row group, column group): :data:`ALLOWED`, :data:`DENIED`, ...

    ``members`` are pod indexes per group (every pod in one group). A cell is
    :data:`SELF` when it holds no pair of distinct pods (a group of one pod with
    itself).
    """
    g = len(members)
    group_of_pod = np.zeros(len(pod_identity), dtype=np.int64)
    sizes = np.zeros(g, dtype=np.int64)
    for n, rows in enumerate(members):
        group_of_pod[rows] = n
        sizes[n] = len(rows)
    hit = group_counts(probe, which, group_of_pod, g)
    total = np.outer(sizes, sizes)
    total[np.diag_indices(g)] -= sizes
    codes: IntArray = np.where(
        total == 0, SELF, np.where(hit >= total, ALLOWED, np.where(hit <= 0, DENIED, MIXED))
    )
    return codes


# --- the connectivity map ------------------------------------------------------------------------


class GroupSet(Record):
    """A set of identities as the map names it: every one, or identities and whole namespaces."""

    __slots__ = ("every", "parts")

    every: bool
    parts: tuple[int | str, ...]
    """An identity's index, or a namespace (a ``str``) all of whose identities are in the set
    (only for namespaces of more than one); in identity order."""

    def __init__(self, every: bool, parts: tuple[int | str, ...] = ()) -> None:
        set_field(self, "every", every)
        set_field(self, "parts", parts)


class Connection(Record):
    """Every pod of ``sources`` may connect to every other pod of the destinations."""

    __slots__ = ("groups", "reach", "sources")

    sources: GroupSet
    reach: Literal["nothing", "every", "every-except", "some"]
    """``some``: the groups of ``groups``; ``every-except``: all but those of ``groups``."""
    groups: GroupSet

    def __init__(
        self,
        sources: GroupSet,
        reach: Literal["nothing", "every", "every-except", "some"],
        groups: GroupSet,
    ) -> None:
        set_field(self, "sources", sources)
        set_field(self, "reach", reach)
        set_field(self, "groups", groups)


class ProbeSummary(Record):
    """One probe's pair totals and its map of connections."""

    __slots__ = ("allowed", "connections", "probe", "same_as", "total")

    probe: ProbeMatrix
    allowed: int
    """Ordered pairs of distinct pods allowed."""
    total: int
    """Ordered pairs of distinct pods."""
    same_as: int | None
    """Index of the first earlier probe with exactly this map (then no connections here)."""
    connections: tuple[Connection, ...]

    def __init__(
        self,
        probe: ProbeMatrix,
        allowed: int,
        total: int,
        same_as: int | None,
        connections: tuple[Connection, ...],
    ) -> None:
        set_field(self, "probe", probe)
        set_field(self, "allowed", allowed)
        set_field(self, "total", total)
        set_field(self, "same_as", same_as)
        set_field(self, "connections", connections)


class Summary(Record):
    """The connectivity map of a :class:`~sekisho.semantics.matrix.Matrix`."""

    __slots__ = ("matrix", "members", "probes")

    matrix: Matrix
    members: tuple[list[int], ...]
    """Pod indexes of each identity (identity ``i`` is the map's group ``i``), in pod order."""
    probes: tuple[ProbeSummary, ...]

    def __init__(
        self, matrix: Matrix, members: tuple[list[int], ...], probes: tuple[ProbeSummary, ...]
    ) -> None:
        set_field(self, "matrix", matrix)
        set_field(self, "members", members)
        set_field(self, "probes", probes)


def summarize(matrix: Matrix) -> Summary:
    """Group pairs of identities by their allowed connections, per probe (see the module)."""
    n = len(matrix.pods)
    k = len(matrix.identities)
    order = np.argsort(matrix.pod_identity, kind="stable").tolist()
    sizes = np.bincount(matrix.pod_identity, minlength=k).tolist()
    members: list[list[int]] = []
    at = 0
    for size in sizes:
        members.append(order[at : at + size])
        at += size
    ns_of = [ident.namespace for ident in matrix.identities]
    by_ns: dict[str, list[int]] = {}
    for i, ns in enumerate(ns_of):
        by_ns.setdefault(ns, []).append(i)

    def group_set(ids: list[int]) -> GroupSet:
        if len(ids) == k:
            return GroupSet(True)
        count: dict[str, int] = {}
        for i in ids:
            count[ns_of[i]] = count.get(ns_of[i], 0) + 1
        whole = {ns for ns, c in count.items() if c > 1 and c == len(by_ns[ns])}
        parts: list[int | str] = []
        for i in ids:
            ns = ns_of[i]
            if ns not in whole:
                parts.append(i)
            elif by_ns[ns][0] == i:
                parts.append(ns)
        return GroupSet(False, tuple(parts))

    total = n * (n - 1)
    seen: dict[bytes, int] = {}
    probes: list[ProbeSummary] = []
    shared: dict[tuple[int, int, int], int] = {}
    for index, probe in enumerate(matrix.probes):
        tables = (
            id(probe.identity_ingress),
            id(probe.identity_egress),
            id(probe.identity_class),
        )
        if tables in shared:  # the engine gave this probe an earlier one's very tables
            allowed = probe.pair_total("allowed")
            probes.append(ProbeSummary(probe, allowed, total, shared[tables], ()))
            continue
        # Read at the level of the engine's classes (identities it evaluates alike):
        # a row of identity i is its class's row, read through the classes.
        cls = probe.identity_class
        if cls is None:
            cls = np.arange(k, dtype=np.int64)
        allowed = probe.pair_total("allowed")
        packed, _firsts, class_row = probe.class_rows("allowed")
        key = packed.tobytes() + cls.tobytes()
        if key in seen:
            shared[tables] = seen[key]
            probes.append(ProbeSummary(probe, allowed, total, seen[key], ()))
            continue
        seen[key] = shared[tables] = index
        rows: dict[int, list[int]] = {}
        for i, row in enumerate(class_row[cls].tolist()):
            rows.setdefault(row, []).append(i)
        connections: list[Connection] = []
        for sources in rows.values():
            reach = probe.class_row("allowed", cls[sources[0]])[cls]
            dst = np.flatnonzero(reach).tolist()
            if not dst:
                c = Connection(group_set(sources), "nothing", GroupSet(False))
            elif len(dst) == k:
                c = Connection(group_set(sources), "every", GroupSet(True))
            elif len(dst) > k // 2 + 1:
                missing = np.flatnonzero(~reach).tolist()
                c = Connection(group_set(sources), "every-except", group_set(missing))
            else:
                c = Connection(group_set(sources), "some", group_set(dst))
            connections.append(c)
        probes.append(ProbeSummary(probe, allowed, total, None, tuple(connections)))
    return Summary(matrix, tuple(members), tuple(probes))
