"""Truth tables of who can reach whom: the policy program evaluated per identity, vectorized.

An identity is what the program can tell apart about a pod (see
:class:`_Identities`). Every set of the program becomes a boolean row over
identities, and every rule a pair of rows: ``src[s]`` (the source side's
criteria, evaluated at the source) and ``dst[d]`` (the destination side's and
the probe's), with the policy's selection on the side it applies to (the
destination for ingress, the source for egress). Rule ``r`` matches pair
``(s, d)`` iff ``src_r[s] & dst_r[d]``.

The walk is first-match (:mod:`sekisho.semantics.program`), but rules with the
same action can be taken together: within a run of consecutive rules of one
action (across the policies of a tier, in order), which one matches first does
not matter. So a tier costs one boolean matrix product per run (``OR_r src_r
(x) dst_r``, merged rows, float32), then a few (K, K) masks: matched pairs leave
the undecided set as allowed, denied or passed; at the end of the tier the
pairs it applies to are denied (or passed); after the last tier the undecided
pairs are allowed (the profile). Kubernetes NetworkPolicies are one run of
allows in one tier: one product, as before. Cost grows with identities and
runs, not with pods squared. Pod-level tables are expanded by fancy indexing
only when asked for. The tests hold this equal to :func:`verdict` on every pair.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from functools import cached_property
from operator import attrgetter
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from sekisho.errors import UsageError
from sekisho.model.checks import IPAddress
from sekisho.model.reader import paused_gc
from sekisho.model.types import Cluster, ContainerPort, FlowProtocol, Pod
from sekisho.records import Record, set_field
from sekisho.selectors.expr import keys as expr_keys
from sekisho.selectors.expr import matches
from sekisho.selectors.labels import BoolArray, JoinedTable, LabelTable
from sekisho.semantics.compiler import compile_program
from sekisho.semantics.labels import (
    SA_PREFIX,
    SERVICE_ACCOUNT,
    is_namespace_key,
    namespace_part,
    workload_labels,
)
from sekisho.semantics.probe import Service, default_services
from sekisho.semantics.program import (
    ANY_ENTITY,
    DIRECTIONS,
    PORT_PROTOCOLS,
    PROTOCOL_NUMBERS,
    WORKLOADS,
    Action,
    Direction,
    EntityMatch,
    IPNetwork,
    NamedPortSet,
    NetSet,
    Policy,
    PortMatch,
    Program,
    Rule,
    SelectorSet,
    Tier,
    protocol_name,
    source_ports_cover,
)
from sekisho.semantics.universe import node_host_endpoint, universe_of

if TYPE_CHECKING:
    from sekisho.model.calico import HostEndpoint

Probe = tuple[int | None, str]
IntArray = npt.NDArray[np.int64]


class Identity(Record):
    """What the program can tell apart about a pod; pods with equal identities are equal to it."""

    __slots__ = ("blocks", "host_network", "labels", "namespace", "node", "ports")

    namespace: str
    labels: tuple[tuple[str, str], ...]
    """The pod's labels that some selector looks at."""
    ports: tuple[ContainerPort, ...]
    """The pod's named ports that some rule names."""
    host_network: bool
    node: str | None
    """For hostNetwork pods (they are their node), and for every pod of a node whose
    host endpoint polices a hostNetwork pod (what a node sends to its own pods, and
    they to it, passes no host endpoint policy); None otherwise."""
    blocks: bytes
    """Packed bits: which of the program's nets (and network sets) contain the pod's IP."""

    def __init__(
        self,
        namespace: str,
        labels: tuple[tuple[str, str], ...],
        ports: tuple[ContainerPort, ...],
        host_network: bool,
        node: str | None,
        blocks: bytes,
    ) -> None:
        set_field(self, "namespace", namespace)
        set_field(self, "labels", labels)
        set_field(self, "ports", ports)
        set_field(self, "host_network", host_network)
        set_field(self, "node", node)
        set_field(self, "blocks", blocks)


class ProbeMatrix(
    Record,
    uncompared=("shared",),
    unshown=(
        "identity_ingress",
        "identity_egress",
        "pod_identity",
        "same_node",
        "identity_class",
        "shared",
    ),
):
    """One probe's tables; ``[i, j]`` is pod ``i`` to pod ``j``; the diagonal (self) is True.

    No ``__slots__``: the cached properties below keep their values in the instance."""

    port: int | None
    protocol: str
    identity_ingress: BoolArray
    """(C, C) over identity classes (source, destination), before self and same-node
    fixes; the classes are the identities when :attr:`identity_class` is None."""
    identity_egress: BoolArray
    pod_identity: IntArray
    same_node: tuple[tuple[int, IntArray], ...]
    """(hostNetwork source pod index, destination pod indexes on its node)."""
    name: str | None
    """A probed port name (``port`` is then None): resolved on each destination pod."""
    identity_class: IntArray | None
    """The class of each identity: identities the program evaluates alike (see
    :func:`_classes`), so one row and column of the tables serves them all."""
    shared: dict[tuple[object, ...], object]
    """What probes with the very same tables compute once (one dict per matrix)."""

    def __init__(
        self,
        port: int | None,
        protocol: str,
        identity_ingress: BoolArray,
        identity_egress: BoolArray,
        pod_identity: IntArray,
        same_node: tuple[tuple[int, IntArray], ...] = (),
        name: str | None = None,
        identity_class: IntArray | None = None,
        shared: dict[tuple[object, ...], object] | None = None,
    ) -> None:
        set_field(self, "port", port)
        set_field(self, "protocol", protocol)
        set_field(self, "identity_ingress", identity_ingress)
        set_field(self, "identity_egress", identity_egress)
        set_field(self, "pod_identity", pod_identity)
        set_field(self, "same_node", same_node)
        set_field(self, "name", name)
        set_field(self, "identity_class", identity_class)
        set_field(self, "shared", dict() if shared is None else shared)

    @property
    def service(self) -> Service:
        proto: FlowProtocol = self.protocol  # type: ignore[assignment]
        return Service(proto, self.port, self.name)

    @cached_property
    def pod_class(self) -> IntArray:
        """Each pod's row and column in the class tables."""
        if self.identity_class is None:
            return self.pod_identity
        out: IntArray = self.identity_class[self.pod_identity]
        return out

    def _expand(self, table: BoolArray) -> BoolArray:
        # Columns first on the small (C, C) table, then whole rows: several times
        # faster than one 2-D fancy index or rows first (which gathers bytes).
        idx = self.pod_class
        out: BoolArray = np.take(np.take(table, idx, axis=1), idx, axis=0)
        np.fill_diagonal(out, True)
        return out

    @cached_property
    def ingress(self) -> BoolArray:
        out = self._expand(self.identity_ingress)
        for row, cols in self.same_node:
            out[row, cols] = True
        return out

    @cached_property
    def egress(self) -> BoolArray:
        return self._expand(self.identity_egress)

    @cached_property
    def allowed(self) -> BoolArray:
        # One expansion of the class-level AND; a hostNetwork source's egress is
        # never isolated, so its same-node cells are allowed outright.
        out = self._expand(self.class_allowed)
        for row, cols in self.same_node:
            out[row, cols] = True
        return out

    @cached_property
    def class_allowed(self) -> BoolArray:
        key = ("allowed", id(self.identity_ingress), id(self.identity_egress))
        got = self.shared.get(key)
        if got is None:
            got = self.shared[key] = self.identity_ingress & self.identity_egress
        out: BoolArray = got  # type: ignore[assignment]
        return out

    @property
    def identity_allowed(self) -> BoolArray:
        return self.identity_table("allowed")

    def class_table(self, which: str) -> BoolArray:
        """The (C, C) class-level ``ingress``, ``egress`` or ``allowed`` table
        (:meth:`identity_table` read through :attr:`identity_class`)."""
        if which == "ingress":
            return self.identity_ingress
        if which == "egress":
            return self.identity_egress
        if which == "allowed":
            return self.class_allowed
        raise ValueError(f"no table {which!r}")

    def identity_table(self, which: str) -> BoolArray:
        """The (K, K) identity-level ``ingress``, ``egress`` or ``allowed`` table.

        Pod ``i`` to a distinct pod ``j`` has the value at ``[pod_identity[i],
        pod_identity[j]]``, except the same-node cells of a hostNetwork source
        (:attr:`same_node`), which are True in ``ingress`` and ``allowed``.
        """
        table = self.class_table(which)
        if self.identity_class is None:
            return table
        idx = self.identity_class
        out: BoolArray = np.take(np.take(table, idx, axis=1), idx, axis=0)
        return out

    def pair_counts(self, which: str) -> npt.NDArray[np.int64]:
        """(K, K): ordered pairs of distinct pods that ``which`` allows, per identity pair.

        Computed from the identity table and the identity sizes, never from the
        pod-by-pod table, so it costs K^2, not pods^2.
        """
        table = self.identity_table(which)
        k = table.shape[0]
        sizes = np.bincount(self.pod_identity, minlength=k).astype(np.int64)
        pairs = np.outer(sizes, sizes)
        pairs[np.diag_indices(k)] -= sizes
        counts: npt.NDArray[np.int64] = np.where(table, pairs, 0)
        if which != "egress":
            for row, cols in self.same_node:
                src = self.pod_identity[row]
                dst = self.pod_identity[cols]
                extra = dst[~table[src, dst]]
                np.add.at(counts[src], extra, 1)
        return counts

    def _table_key(self, which: str) -> tuple[object, ...]:
        """What identifies the (C, C) ``which`` table among the probes that share tables."""
        if which == "ingress":
            return (which, id(self.identity_ingress))
        if which == "egress":
            return (which, id(self.identity_egress))
        if which == "allowed":
            return (which, id(self.identity_ingress), id(self.identity_egress))
        raise ValueError(f"no table {which!r}")

    def class_rows(self, which: str) -> tuple[npt.NDArray[np.uint8], list[int], IntArray]:
        """The (C, C) ``which`` class table's rows bit-packed, and its distinct rows: the
        first class of each distinct row, and each class's distinct row's number (in
        order of first appearance). Computed once per table (probes share tables);
        ``allowed`` is packed from ``ingress & egress`` by blocks of rows, without
        building the (C, C) table."""
        key = ("rows", *self._table_key(which))
        got = self.shared.get(key)
        if got is None:
            if which == "allowed" and "class_allowed" not in self.__dict__:
                ingress, egress = self.identity_ingress, self.identity_egress
                k = ingress.shape[0]
                packed = np.empty((k, (k + 7) // 8), dtype=np.uint8)
                for at in range(0, k, GATHER_ROWS):
                    rows = slice(at, at + GATHER_ROWS)
                    packed[rows] = np.packbits(ingress[rows] & egress[rows], axis=1)
            else:
                packed = np.packbits(self.class_table(which), axis=1)
            width = packed.shape[1]
            buf = packed.tobytes()
            seen: dict[bytes, int] = {}
            firsts: list[int] = []
            inverse = np.empty(len(packed), dtype=np.int64)
            for c in range(len(packed)):
                row = seen.setdefault(buf[c * width : (c + 1) * width], len(seen))
                if row == len(firsts):
                    firsts.append(c)
                inverse[c] = row
            got = self.shared[key] = (packed, firsts, inverse)
        return got  # type: ignore[return-value]

    def class_row(self, which: str, c: int) -> BoolArray:
        """Row ``c`` of the (C, C) ``which`` class table (from :meth:`class_rows`)."""
        packed = self.class_rows(which)[0]
        out: BoolArray = np.unpackbits(packed[c], count=len(packed)).view(np.bool_)
        return out

    def pair_total(self, which: str) -> int:
        """How many ordered pairs of distinct pods ``which`` allows (``pair_counts(which).sum()``).

        From the class tables and the class sizes: pods of one class are pairs of the
        class with itself; each distinct row of the table is weighed once."""
        key = ("total", *self._table_key(which), id(self.identity_class), id(self.pod_identity))
        if not self.same_node and key in self.shared:
            known: int = self.shared[key]  # type: ignore[assignment]
            return known
        packed, firsts, inverse = self.class_rows(which)
        k = len(packed)
        idx = self.pod_class
        sizes = np.bincount(idx, minlength=k)
        weights = sizes.astype(np.float32)  # exact: a row's sum is at most the pod count
        reach = np.empty(len(firsts), dtype=np.int64)
        for at in range(0, len(firsts), 2048):  # row blocks: no (C, C) float table at once
            block = np.unpackbits(packed[firsts[at : at + 2048]], axis=1, count=k)
            reach[at : at + 2048] = np.rint(block.astype(np.float32) @ weights)
        c = np.arange(k)
        diagonal = ((packed[c, c >> 3] >> (7 - (c & 7))) & 1).astype(np.bool_)
        total = int(sizes @ reach[inverse]) - int(sizes[diagonal].sum())
        extra = 0
        if which != "egress":
            for row, cols in self.same_node:
                extra += int((~self.class_row(which, idx[row])[idx[cols]]).sum())
        if not self.same_node:
            self.shared[key] = total
        return total + extra

    def to_json(self) -> dict[str, object]:
        return {
            **self.service.to_json(),
            "ingress": self.ingress.tolist(),
            "egress": self.egress.tolist(),
            "allowed": self.allowed.tolist(),
        }


class Matrix(Record, unshown=("identities", "pod_identity")):
    """Truth tables for a set of pods (sorted by namespace, name) and probes."""

    pods: tuple[Pod, ...]
    probes: tuple[ProbeMatrix, ...]
    identities: tuple[Identity, ...]
    pod_identity: IntArray

    def __init__(
        self,
        pods: tuple[Pod, ...],
        probes: tuple[ProbeMatrix, ...],
        identities: tuple[Identity, ...] = (),
        pod_identity: IntArray | None = None,
    ) -> None:
        set_field(self, "pods", pods)
        set_field(self, "probes", probes)
        set_field(self, "identities", identities)
        set_field(
            self,
            "pod_identity",
            (lambda: np.zeros(0, np.int64))() if pod_identity is None else pod_identity,
        )

    def to_json(self) -> dict[str, object]:
        """The object documented in docs/architecture.md ("Machine-readable output")."""
        return {
            "pods": [p.key for p in self.pods],
            "probes": [p.to_json() for p in self.probes],
        }

    def iter_json_bytes(self) -> Iterator[bytes]:
        """:meth:`to_json` as UTF-8 JSON text in chunks (one per table), encoded by numpy.

        Parses to exactly the same object; each cell is written as the fixed-width
        token ``" true"`` or ``"false"`` so a whole table is one lookup.
        """
        import json  # for this output only (its decoder's regexes are built at import)

        yield b'{"pods": ' + json.dumps([p.key for p in self.pods]).encode() + b', "probes": ['
        for n, probe in enumerate(self.probes):
            head = probe.service.to_json()
            yield (b", " if n else b"") + json.dumps(head).encode()[:-1]
            for name in ("ingress", "egress", "allowed"):
                yield f', "{name}": '.encode()
                yield bool_table_json(getattr(probe, name))
            yield b"}"
        yield b"]}"


_CELLS = np.frombuffer(b"false, true,", dtype=np.uint8).reshape(2, 6)


def bool_table_json(table: BoolArray) -> bytes:
    """A 2-D bool array as a JSON array of arrays, vectorized (cells ``false``/`` true``)."""
    n_rows, n_cols = table.shape
    if n_rows == 0:
        return b"[]"
    if n_cols == 0:
        return b"[" + b",".join([b"[]"] * n_rows) + b"]"
    buf = np.empty((n_rows, 6 * n_cols + 2), dtype=np.uint8)
    buf[:, 0] = ord("[")
    buf[:, 1:-1] = _CELLS[table.astype(np.intp)].reshape(n_rows, 6 * n_cols)
    buf[:, -2] = ord("]")  # replaces the last cell's comma
    buf[:, -1] = ord(",")
    return b"[" + buf.tobytes()[:-1] + b"]"


def default_probes(cluster: Cluster) -> list[Service]:
    """The default probes (:func:`sekisho.semantics.probe.default_services`)."""
    return default_services(cluster)


def _check_probe(probe: Service | Probe) -> Service:
    if isinstance(probe, Service):
        return probe
    port, proto = probe
    upper = proto.upper()
    if upper not in ("TCP", "UDP", "SCTP", "ICMP"):
        raise UsageError(f"probe protocol {proto!r}: expected TCP, UDP, SCTP or ICMP")
    p: FlowProtocol = "TCP" if upper == "TCP" else "UDP" if upper == "UDP" else "SCTP"
    return Service("ICMP" if upper == "ICMP" else p, port)


SCALAR_VIEW = 8
"""Views of at most this many identities evaluate selectors per label set."""

IdentityKey = tuple[
    str, tuple[tuple[str, str], ...], tuple[ContainerPort, ...], bool, str | None, bytes, int
]
"""(namespace, labels seen, named ports seen, hostNetwork, its node, net bits, IP family)."""


class _Keyer:
    """Computes the identity key of pods for one program (see :class:`_Identities`)."""

    def __init__(
        self, cluster: Cluster, program: Program, probed_names: set[tuple[str, str]] | None
    ) -> None:
        looked = _looked(program)
        self.own_keys = looked.own_keys
        self.named = looked.named | (probed_names or set())
        self.named_names = {name for name, _proto in self.named}
        # Address membership: the program's nets, then each network set's nets, then
        # each host endpoint's addresses (a selector that selects a host endpoint holds
        # its expected IPs, which may be a node's, i.e. a hostNetwork pod's).
        universe = universe_of(cluster)
        self.net_pos = {n.key: i for i, n in enumerate(looked.nets)}
        self.nets_list = (
            [n.nets for n in looked.nets]
            + [e.nets for e in universe.netsets]
            + [tuple(ipaddress.ip_network(ip) for ip in e.ips) for e in universe.hosts]
        )
        self._kept: dict[tuple[str, ...], tuple[str, ...]] = {}
        # Nodes whose host endpoint polices a hostNetwork pod: their pods are told apart
        # by node (traffic between a node and its own pods passes no host endpoint).
        self.split_nodes: frozenset[str] = frozenset()
        if cluster.calico is not None and cluster.calico.host_endpoints:
            hep_nodes = frozenset(h.node for h in cluster.calico.host_endpoints)
            if any(p.forward for p in program.all_policies()):
                # applyOnForward: a workload's traffic with anything off its node passes
                # its node's host endpoint.
                self.split_nodes = hep_nodes
            else:
                self.split_nodes = hep_nodes & {
                    p.node for p in cluster.pods if p.host_network and p.node is not None
                }
        # Service account labels (Calico's projectcalico.org/serviceaccount and pcsa.*)
        # join a pod's own labels when some selector reads them.
        self.accounts: dict[tuple[str, str], dict[str, str]] | None = None
        if any(k == SERVICE_ACCOUNT or k.startswith(SA_PREFIX) for k in self.own_keys):
            self.accounts = cluster.calico.service_account_labels() if cluster.calico else {}

    def keys(self, pods: Sequence[Pod]) -> tuple[list[IdentityKey], BoolArray]:
        """The key of each pod, and each pod's membership in the nets (pods x nets)."""
        member = _membership(pods, self.nets_list)
        packed = (
            np.packbits(member, axis=1) if self.nets_list else np.zeros((len(pods), 0), np.uint8)
        )
        rows = packed.tobytes()
        width = packed.shape[1]
        own_keys, named, named_names, kept_keys = (
            self.own_keys,
            self.named,
            self.named_names,
            self._kept,
        )
        out: list[IdentityKey] = []
        for i, pod in enumerate(pods):
            hn = pod.host_network
            labels = pod.labels
            if self.accounts is not None and not hn:
                labels = workload_labels(
                    labels,
                    pod.namespace,
                    {},
                    pod.service_account,
                    self.accounts.get((pod.namespace, pod.service_account)),
                    ns_part={},
                )
            # Project the labels on the keys some selector reads (cached per key set).
            names = tuple(labels)
            kept = kept_keys.get(names)
            if kept is None:
                kept = kept_keys[names] = tuple(sorted(k for k in names if k in own_keys))
            seen = tuple([(k, labels[k]) for k in kept])
            # Named ports some rule (or the probe) names.
            ports = pod.ports
            if ports and not (named_names and any(q.name in named_names for q in ports)):
                ports = ()
            elif ports:
                ports = tuple(q for q in ports if (q.name, q.protocol) in named)
            out.append(
                (
                    pod.namespace,
                    seen,
                    ports,
                    hn,
                    pod.node if hn or pod.node in self.split_nodes else None,
                    rows[i * width : (i + 1) * width],
                    pod.ip.version if pod.ip is not None else 4,
                )
            )
        return out, member


class _Identities:
    """The identity-level view of a cluster for one program: every set as a boolean row.

    Pods are grouped by what the program can see of them (issue: identities from
    what policy can see): their namespace, the labels some selector mentions,
    the named ports some rule names, whether each net of the program (and of the
    network sets) holds their address, their address family, and for a
    hostNetwork pod its node (it sends and receives as that node).
    """

    def __init__(
        self,
        cluster: Cluster,
        pods: Sequence[Pod],
        program: Program,
        probed_names: set[tuple[str, str]] | None = None,
    ) -> None:
        self.cluster = cluster
        universe = self.universe = universe_of(cluster)
        keyer = self.keyer = _Keyer(cluster, program, probed_names)
        self.net_pos = keyer.net_pos
        keys, member = keyer.keys(pods)
        # Keyed by plain tuples (hashing the frozen record per pod costs more);
        # an Identity is made once per distinct key.
        ids: dict[IdentityKey, int] = {}
        found: list[Identity] = []
        index = [0] * len(pods)
        reps: list[int] = []
        for i, key in enumerate(keys):
            k = ids.get(key)
            if k is None:
                k = ids[key] = len(ids)
                found.append(Identity(*key[:6]))
                reps.append(i)
            index[i] = k
        self.key_index = ids
        self.identities = tuple(found)
        self.pod_identity = np.asarray(index, dtype=np.int64)
        rep_idx = self.reps = np.asarray(reps, dtype=np.int64)
        """A pod of each identity (its first)."""
        self.member: BoolArray = member[rep_idx] if len(reps) else member[:0]
        self.size = k_ = len(self.identities)
        self.family = np.array([key[6] for key in ids], dtype=np.int64).reshape(k_)
        self.hn = np.array([i.host_network for i in self.identities], dtype=np.bool_).reshape(k_)
        # Host endpoints of hostNetwork identities (their node's), and the rows that
        # depend on them.
        self.hep: list[HostEndpoint | None] = [None] * k_
        if keyer.split_nodes:
            for j, ident in enumerate(self.identities):
                if ident.host_network and ident.node is not None:
                    node = cluster.node(ident.node)
                    ip = node.internal_ip if node is not None else None
                    self.hep[j] = node_host_endpoint(cluster, ident.node, ip)
        self.has_hep = np.array([h is not None for h in self.hep], dtype=np.bool_).reshape(k_)
        # A hostNetwork identity's address (its node's), for host endpoints' named ports.
        self.node_ips: list[IPAddress | None] = [None] * k_
        for j, ident in enumerate(self.identities):
            if ident.host_network and ident.node is not None:
                node_obj = cluster.node(ident.node)
                self.node_ips[j] = node_obj.internal_ip if node_obj is not None else None
        # The host endpoint a workload identity's traffic is forwarded through (its node's).
        self.fwd_hep: list[HostEndpoint | None] = [None] * k_
        if keyer.split_nodes:
            for j, ident in enumerate(self.identities):
                if not ident.host_network and ident.node is not None:
                    node = cluster.node(ident.node)
                    ip = node.internal_ip if node is not None else None
                    self.fwd_hep[j] = node_host_endpoint(cluster, ident.node, ip)
        self.has_fwd_hep = np.array([h is not None for h in self.fwd_hep], dtype=np.bool_)
        denies = [False] * k_
        if any(h is not None for h in self.hep):  # Calico's module is loaded with them
            from sekisho.model.calico import DEFAULT_ALLOW_PROFILE

            denies = [h is not None and DEFAULT_ALLOW_PROFILE not in h.profiles for h in self.hep]
        self.profile_denies = np.array(denies, dtype=np.bool_).reshape(k_)
        # What selectors see: a workload's own labels plus the labels its namespace gives
        # (Calico's); a hostNetwork pod is its node (a "node" entity with the node's labels
        # and no namespace).
        ns_names = sorted({i.namespace for i in self.identities if not i.host_network})
        ns_pos = {n: j for j, n in enumerate(ns_names)}
        ns_maps: list[dict[str, str]] = [
            namespace_part(n, cluster.namespace_labels(n)) for n in ns_names
        ]
        ns_maps.append({})  # hostNetwork identities: no namespace
        own_maps: list[dict[str, str]] = []
        group_of = np.zeros(k_, dtype=np.int64)
        for j, ident in enumerate(self.identities):
            if ident.host_network:
                node = cluster.node(ident.node) if ident.node else None
                own_maps.append(dict(node.labels) if node is not None else {})
                group_of[j] = len(ns_names)
            else:
                own_maps.append(dict(ident.labels))
                group_of[j] = ns_pos[ident.namespace]
        self.table = JoinedTable(
            LabelTable(own_maps), LabelTable(ns_maps), group_of, is_namespace_key
        )
        # A view of a few identities (the incremental matrix's new ones) evaluates
        # selectors one label set at a time: the same meaning (the tests hold
        # expression evaluation equal over a table and over one set), less overhead.
        self.label_maps: list[dict[str, str]] | None = None
        if k_ <= SCALAR_VIEW:
            self.label_maps = [
                {**own, **ns_maps[g]} for own, g in zip(own_maps, group_of.tolist(), strict=True)
            ]
        self.netsets = universe.netsets
        self.hosts = universe.hosts
        self.netset_table = LabelTable([dict(e.labels) for e in universe.netsets])
        self._cache: dict[str, BoolArray] = {}
        self._numbers: dict[tuple[str, str], IntArray] = {}
        self._bases: dict[tuple[str, str, str, str], BoolArray] = {}
        self._port_rows: dict[tuple[int, int, int], BoolArray] = {}
        """By PortMatch object: the program outlives this view."""
        self._everyone = np.ones(self.size, dtype=np.bool_)
        self._everyone.flags.writeable = False
        self._nobody = np.zeros(self.size, dtype=np.bool_)
        self._nobody.flags.writeable = False
        self._named: dict[tuple[str, int], BoolArray] = {}
        self._scopes: dict[str, BoolArray] = {}
        self._declared: dict[tuple[str, str], frozenset[int]] = {}
        self._kinds: dict[frozenset[str], BoolArray] = {}

    def _kind(self, kinds: frozenset[str]) -> BoolArray:
        out = self._kinds.get(kinds)
        if out is None:
            out = np.zeros(self.size, dtype=np.bool_)
            if "workload" in kinds:
                out |= ~self.hn
            if "node" in kinds:
                out |= self.hn
            self._kinds[kinds] = out
        return out

    def selector(self, s: SelectorSet, *, keep: bool = True) -> BoolArray:
        """Identities whose address is in the selector's set (``keep``: cached)."""
        key = s.key
        hit = self._cache.get(key)
        if hit is None:
            if self.label_maps is not None:
                rows = np.array([matches(s.selector, m) for m in self.label_maps], dtype=np.bool_)
                hit = rows.reshape(self.size) & self._kind(s.kinds)
            else:
                hit = self.table.expr(s.selector) & self._kind(s.kinds)
            if "networkset" in s.kinds and self.netsets:
                chosen = self.netset_table.expr(s.selector)
                base = len(self.net_pos)
                for j in np.flatnonzero(chosen).tolist():
                    hit = hit | self.member[:, base + j]
            if "host" in s.kinds and self.hosts:
                base = len(self.net_pos) + len(self.netsets)
                for j, h in enumerate(self.hosts):
                    if matches(s.selector, h.labels):
                        hit = hit | self.member[:, base + j]
            if keep:
                self._cache[key] = hit
        return hit

    def subject(self, s: SelectorSet) -> BoolArray:
        """Identities a policy of selector ``s`` applies to: workload endpoints whose labels
        match (a policy's selector is evaluated on endpoints, not on addresses: the nets
        of a network set it also selects make no pod its subject)."""
        only = SelectorSet(s.selector, s.kinds & WORKLOADS)
        out: BoolArray = self.selector(only) & ~self.hn
        if "host" in s.kinds and self.has_hep.any():
            # A hostNetwork pod is its node: a policy that selects the node's host
            # endpoint applies to its traffic.
            out = out.copy()
            for j, h in enumerate(self.hep):
                if h is not None and matches(s.selector, h.labels):
                    out[j] = True
        return out

    def forward_subject(self, s: SelectorSet) -> BoolArray:
        """Workload identities whose node's host endpoint a forward policy of selector
        ``s`` selects: their traffic off the node passes it."""
        out = np.zeros(self.size, dtype=np.bool_)
        if "host" in s.kinds:
            for j, h in enumerate(self.fwd_hep):
                if h is not None and matches(s.selector, h.labels):
                    out[j] = True
        return out

    def off_node(self) -> BoolArray:
        """(K, K): pairs whose ends are on different nodes, as far as identities tell
        (every identity of a node with a host endpoint carries its node)."""
        nodes = [i.node for i in self.identities]
        codes = {n: c for c, n in enumerate(sorted({n for n in nodes if n is not None}))}
        col = np.array([codes.get(n, -1) if n is not None else -1 for n in nodes])
        out: BoolArray = (col[:, None] != col[None, :]) | (col[:, None] < 0)
        return out

    def nets(self, n: NetSet) -> BoolArray:
        col: BoolArray = self.member[:, self.net_pos[n.key]]
        return col

    def named(self, n: NamedPortSet, proto: int, port: int) -> BoolArray:
        """Identities that declare ``n`` as ``port`` (and are in its scope), for ``proto``."""
        if proto != n.protocol:
            return self._nobody
        key = (n.key, port)
        hit = self._named.get(key)
        if hit is None:
            name = protocol_name(n.protocol)
            if not self.hosts and port not in self.declared_numbers(n.name, name):
                # No identity declares the port under that name: nobody, whatever the scope.
                self._named[key] = self._nobody
                return self._nobody
            numbers = self.declared(n.name, name)
            # The endpoints in the side's selector that declare the port, by their labels
            # (Felix's named-port IP sets): a network set's nets hold no ports.
            scope = self._scope(n.within) if n.within is not None else ~self.hn
            hit = (numbers == port) & scope
            if self.hosts:
                # A hostNetwork pod's address is its node's: a host endpoint with that
                # expected IP that declares the port (and is in scope) puts (address,
                # port) in the set, as the walk finds it.
                hit = hit.copy()
                name = protocol_name(n.protocol)
                for h in self.hosts:
                    if h.named_port(n.name, name) != port:
                        continue
                    if n.within is not None and not (
                        "host" in n.within.kinds and matches(n.within.selector, h.labels)
                    ):
                        continue
                    for j, ip in enumerate(self.node_ips):
                        if ip is not None and ip in h.ips:
                            hit[j] = True
            self._named[key] = hit
        return hit

    def _scope(self, within: SelectorSet) -> BoolArray:
        """The workloads of a named port's scope (its rule side's selector)."""
        got = self._scopes.get(within.key)
        if got is None:
            got = self._scopes[within.key] = self.selector(
                SelectorSet(within.selector, within.kinds & WORKLOADS)
            )
        return got

    def declared_numbers(self, name: str, protocol: str) -> frozenset[int]:
        """Every number some identity declares for ``name``/``protocol``."""
        key = (name, protocol)
        got = self._declared.get(key)
        if got is None:
            numbers = self.declared(name, protocol)
            got = self._declared[key] = frozenset(numbers.tolist()) - {-1}
        return got

    def declared(self, name: str, protocol: str) -> IntArray:
        """Per identity, the number it declares for ``name``/``protocol`` (-1: none)."""
        key = (name, protocol)
        got = self._numbers.get(key)
        if got is None:
            got = np.full(self.size, -1, dtype=np.int64)
            for i, ident in enumerate(self.identities):
                for p in ident.ports:
                    if p.name == name and p.protocol == protocol:
                        got[i] = p.port
            self._numbers[key] = got
        return got

    def ports(self, pm: PortMatch, proto: int, port: int | None) -> BoolArray | bool:
        """Destination identities a port match admits for a probe; one truth for all of
        them when it has no named port (or the number is in a range)."""
        if port is None:
            return False
        for a, b in pm.ranges:
            if a <= port <= b:
                return True
        if not pm.named:
            return False
        key = (id(pm), proto, port)
        got = self._port_rows.get(key)
        if got is None:
            got = np.zeros(self.size, dtype=np.bool_)
            for n in pm.named:
                got = got | self.named(n, proto, port)
            self._port_rows[key] = got
        return got

    def base(self, side: EntityMatch) -> BoolArray:
        """Identities whose address this rule side's nets and selectors admit (no ports)."""
        if (
            side.nets is None
            and side.not_nets is None
            and side.selector is None
            and side.not_selector is None
        ):
            return self._everyone
        key = (
            side.nets.key if side.nets is not None else "",
            side.not_nets.key if side.not_nets is not None else "",
            side.selector.key if side.selector is not None else "",
            side.not_selector.key if side.not_selector is not None else "",
        )
        got = self._bases.get(key)
        if got is None:
            got = self._bases[key] = self._base(side)
        return got

    def _base(self, side: EntityMatch) -> BoolArray:
        out = np.ones(self.size, dtype=np.bool_)
        if side.nets is not None:
            out &= self.nets(side.nets)
        if side.not_nets is not None:
            out &= ~self.nets(side.not_nets)
        if side.selector is not None:
            out &= self.selector(side.selector)
        if side.not_selector is not None:
            out &= ~self.selector(side.not_selector)
        return out

    def side_ports(
        self, side: EntityMatch, role: str, proto: int, port: int | None
    ) -> BoolArray | bool:
        """The rule side's port criteria for a probe: a row over identities (destination),
        or one truth for every identity (no criteria; a source port)."""
        out: BoolArray | bool = True
        for pm, negated in ((side.ports, False), (side.not_ports, True)):
            if pm is None:
                continue
            if role == "source":
                hit = source_ports_cover(pm, self.universe.declared_numbers(pm))
                if hit is None or hit == negated:
                    return False
            else:
                got = self.ports(pm, proto, port)
                if isinstance(got, bool):
                    if got == negated:
                        return False
                else:
                    out = out & (~got if negated else got)
        return out


_last_looked: tuple[Program, _Looked] | None = None


def _looked(program: Program) -> _Looked:
    global _last_looked
    if _last_looked is not None and _last_looked[0] is program:
        return _last_looked[1]
    got = _Looked(program)
    _last_looked = (program, got)
    return got


class _Looked:
    """What a program looks at: label keys, named ports and nets (for identities)."""

    def __init__(self, program: Program) -> None:
        keys: set[str] = set()
        named: set[tuple[str, str]] = set()
        nets: dict[str, NetSet] = {}
        for pol in (*program.all_policies(), *program.staged):
            keys |= expr_keys(pol.selector.selector)
            for d in DIRECTIONS:
                for rule in pol.rules(d):
                    for s in rule.sets():
                        if isinstance(s, SelectorSet):
                            keys |= expr_keys(s.selector)
                        elif isinstance(s, NetSet):
                            nets.setdefault(s.key, s)
                        else:
                            named.add((s.name, protocol_name(s.protocol)))
                            if s.within is not None:
                                keys |= expr_keys(s.within.selector)
        self.own_keys = keys
        self.named = named
        self.nets = list(nets.values())


CLASS_CHUNK = 512
"""Selector rows evaluated (then packed) at a time when finding classes."""
CLASSES_FROM = 2000
"""From this many identities on, the engine looks for classes (below, it costs more
than it saves); the tests set it to 0."""


def _seed_rows(
    ids: _Identities,
    rows: list[tuple[list[str], npt.NDArray[np.uint8]]],
    size: int,
    firsts: IntArray,
) -> None:
    """Put the selector rows :func:`_classes` evaluated over identities into the cache of
    ``ids``, the view of one representative per class (identity ``firsts[c]`` is class
    ``c``'s): the same labels, so the same values, not evaluated again."""
    for keys, packed in rows:
        table = np.unpackbits(packed, axis=1, count=size)[:, firsts].astype(np.bool_)
        for key, row in zip(keys, table, strict=True):
            ids._cache[key] = row


def _distinct(values: IntArray) -> int:
    """How many distinct values (``len(np.unique(values))``, which imports numpy.ma)."""
    ordered = np.sort(values)
    return int(np.count_nonzero(ordered[1:] != ordered[:-1])) + int(len(values) > 0)


def _classes(
    ids: _Identities, program: Program, rows_out: list[tuple[list[str], npt.NDArray[np.uint8]]]
) -> IntArray | None:
    """Identities the program cannot tell apart, numbered by their first identity; None
    when every identity is its own class.

    Identities differ by namespace and the labels some selector reads; two of them
    whose every set of the program holds both or neither (and that are equal in
    ports, hostNetwork, node, nets and family) get equal rows and columns in every
    table, so the engine runs once per class. Namespace and labels reach the engine
    only through selectors (:meth:`_Identities.selector`): the policies' subjects,
    the rules' selectors and the scopes of named ports, every one evaluated here.
    ``rows_out`` gets each selector's row, packed (keys, (n, bytes)), for
    :func:`_seed_rows`.
    """
    k = ids.size
    if k <= 1 or k < CLASSES_FROM:
        return None
    # What is not namespace or labels: the rest of the identity key.
    rest: dict[object, int] = {}
    codes = np.array([rest.setdefault(key[2:], len(rest)) for key in ids.key_index], np.int64)
    sets: dict[str, SelectorSet] = {}
    for pol in (*program.all_policies(), *program.staged):
        only = SelectorSet(pol.selector.selector, pol.selector.kinds & WORKLOADS)
        sets.setdefault(only.key, only)
        for d in DIRECTIONS:
            for rule in pol.rules(d):
                for s in rule.sets():
                    if isinstance(s, SelectorSet):
                        sets.setdefault(s.key, s)
                    elif isinstance(s, NamedPortSet) and s.within is not None:
                        scope = SelectorSet(s.within.selector, s.within.kinds & WORKLOADS)
                        sets.setdefault(scope.key, scope)
    chosen = list(sets.values())
    for at in range(0, len(chosen), CLASS_CHUNK):
        if _distinct(codes) == k:
            return None  # nothing left to merge
        rows = np.empty((min(CLASS_CHUNK, len(chosen) - at), k), dtype=np.bool_)
        for n, s in enumerate(chosen[at : at + CLASS_CHUNK]):
            rows[n] = ids.selector(s, keep=False)
        rows_out.append(([s.key for s in chosen[at : at + CLASS_CHUNK]], np.packbits(rows, axis=1)))
        packed = np.packbits(np.ascontiguousarray(rows.T), axis=1)  # 2x packing along axis 0
        width = 8 + packed.shape[1]
        both = np.empty((k, width), dtype=np.uint8)
        both[:, :8] = codes.view(np.uint8).reshape(k, 8)
        both[:, 8:] = packed
        _, codes = np.unique(both.view(f"V{width}").ravel(), return_inverse=True)
        codes = codes.reshape(k).astype(np.int64)
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    if len(first) == k:
        return None
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    out: IntArray = rank[inverse.reshape(k)]
    return out


def _words(rows: BoolArray) -> npt.NDArray[np.uint64]:
    """(n, m) bools as (n, ceil(m / 64)) words: row ``r``'s bits, packed, zero-padded."""
    packed = np.packbits(rows, axis=1)
    width = -(-packed.shape[1] // 8) * 8
    if width != packed.shape[1]:
        packed = np.pad(packed, ((0, 0), (0, width - packed.shape[1])))
    out: npt.NDArray[np.uint64] = np.ascontiguousarray(packed).view(np.uint64)
    return out


def _bools(words: npt.NDArray[np.uint64], m: int) -> BoolArray:
    """:func:`_words` undone: the first ``m`` bits of each row."""
    out: BoolArray = np.unpackbits(words.view(np.uint8), axis=1, count=m).view(np.bool_)
    return out


def _row_groups(words: npt.NDArray[np.uint64]) -> tuple[list[int], IntArray]:
    """Rows with equal words: each group's first row, and each row's group (groups in
    order of first appearance)."""
    width = words.shape[1] * 8
    buf = words.tobytes()
    seen: dict[bytes, int] = {}
    first: list[int] = []
    inverse = np.empty(len(words), dtype=np.int64)
    for i in range(len(words)):
        g = seen.setdefault(buf[i * width : (i + 1) * width], len(seen))
        if g == len(first):
            first.append(i)
        inverse[i] = g
    return first, inverse


def _or_groups(
    words: npt.NDArray[np.uint64], first: list[int], inverse: IntArray
) -> npt.NDArray[np.uint64]:
    """Per group of :func:`_row_groups`, the OR of its rows' words."""
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(len(first)))
    out: npt.NDArray[np.uint64] = np.bitwise_or.reduceat(words[order], starts, axis=0)
    return out


def _merge(left: BoolArray, right: BoolArray) -> tuple[BoolArray, BoolArray]:
    """Rows with the same ``left`` share one row whose ``right`` is the OR (and vice versa).

    ``OR_r left[r] x right[r]`` is unchanged; R drops to the number of distinct
    peer sets (selectors repeat across policies), which is what the product costs.
    Done on bit-packed words (a row of K identities is K / 64 of them).
    """
    m_left, m_right = left.shape[1], right.shape[1]
    lw, rw = _words(left), _words(right)
    merged = False
    for _ in range(2):
        first, inverse = _row_groups(lw)
        if len(first) < len(lw):
            rw = _or_groups(rw, first, inverse)
            lw = lw[first]
            merged = True
        lw, rw = rw, lw
        m_left, m_right = m_right, m_left
    if not merged:
        return left, right
    return _bools(lw, m_left), _bools(rw, m_right)


def _any_product(
    left: list[BoolArray], right: list[BoolArray], size: int, into: BoolArray | None = None
) -> BoolArray:
    """``OR_r left[r][:, None] & right[r][None, :]``: one matrix product, or per group of
    identities that the same rules reach, when one side is sparse (``left`` and
    ``right``: rows, or (n, K) blocks of rows). ``into``: OR-ed into that (K, K) table,
    which is returned (no second table)."""
    if not left:
        return np.zeros((size, size), dtype=np.bool_) if into is None else into
    a = np.vstack(left)
    b = np.vstack(right)
    if len(a) > 64:
        a, b = _merge(a, b)
    # Only identities in some row take part (a run's rules often reach less than half
    # of them): the product over those alone, its cells put back in place.
    rows = np.flatnonzero(a.any(axis=0))
    cols = np.flatnonzero(b.any(axis=0))
    if not len(rows) or not len(cols):
        return np.zeros((size, size), dtype=np.bool_) if into is None else into
    # Estimated costs (ns): BLAS per (row, column, rule); bytes OR-ed per identity a
    # rule reaches on the sparse side, plus a fixed cost per group.
    dense = 0.05 * len(rows) * len(cols) * len(a)
    by_rows = float(a.sum()) * len(cols) + 20_000.0 * len(rows)
    by_cols = float(b.sum()) * len(rows) + 20_000.0 * len(cols)
    if by_rows < dense and by_rows <= by_cols:
        return _grouped_product(a, b, rows, size, into=into)
    if by_cols < dense:
        return _grouped_product(b, a, cols, size, transposed=True, into=into)
    if len(rows) == size and len(cols) == size:
        full: BoolArray = (a.T.astype(np.float32) @ b.astype(np.float32)) > 0.5
    else:
        full = np.zeros((size, size), dtype=np.bool_)
        part = a[:, rows].astype(np.float32).T @ b[:, cols].astype(np.float32)
        block = np.zeros((len(rows), size), dtype=np.bool_)
        block[:, cols] = part > 0.5
        full[rows] = block  # whole rows: much cheaper than a 2-D scatter
    if into is None:
        return full
    into |= full
    return into


GATHER_ROWS = 256
"""Rows of a (K, K) table gathered at a time when OR-ing a product into one (a block
that stays in cache, instead of a second table)."""


def _grouped_product(
    a: BoolArray,
    b: BoolArray,
    rows: IntArray,
    size: int,
    *,
    transposed: bool = False,
    into: BoolArray | None = None,
) -> BoolArray:
    """The product of :func:`_any_product` row by row: row ``i`` is the OR of ``b``'s rows
    of the rules whose ``a`` holds ``i`` (``rows``: the identities some rule of ``a``
    holds); rows reached by the same rules share it (one line per group, gathered into
    place). ``transposed``: the product's transpose. ``into``: OR-ed into that table."""
    reached = a[:, rows]
    first, inverse = _row_groups(_words(np.ascontiguousarray(reached.T)))
    # One line per group (OR-ed as words), and an empty one for identities no rule reaches.
    sub = _words(b)
    lines = np.zeros((len(first) + 1, sub.shape[1]), dtype=np.uint64)
    for g, at in enumerate(first):
        rules = np.flatnonzero(reached[:, at])
        lines[g] = sub[rules[0]] if len(rules) == 1 else np.bitwise_or.reduce(sub[rules], axis=0)
    group = np.full(size, len(first), dtype=np.int64)
    group[rows] = inverse
    full = _bools(lines, size)
    if not transposed:
        if into is None:
            out: BoolArray = np.take(full, group, axis=0)
            return out
        for at in range(0, size, GATHER_ROWS):
            part = into[at : at + GATHER_ROWS]
            part |= np.take(full, group[at : at + GATHER_ROWS], axis=0)
        return into
    # out[i, j] = line of j's group, at i: columns gathered on each row.
    across = np.ascontiguousarray(full.T)
    if into is None:
        out = np.take(across, group, axis=1)
        return out
    for at in range(0, size, GATHER_ROWS):
        part = into[at : at + GATHER_ROWS]
        part |= np.take(across[at : at + GATHER_ROWS], group, axis=1)
    return into


def _membership(pods: Sequence[Pod], nets_list: Sequence[tuple[IPNetwork, ...]]) -> BoolArray:
    """(pods, sets): whether any network of each set contains each pod's IP."""
    out = np.zeros((len(pods), len(nets_list)), dtype=np.bool_)
    if not nets_list or not pods:
        return out
    v4 = np.array([p.ip is not None and p.ip.version == 4 for p in pods], dtype=np.bool_)
    ints = np.array(
        [int(p.ip) if p.ip is not None and p.ip.version == 4 else 0 for p in pods], dtype=np.uint64
    )
    others = [i for i, p in enumerate(pods) if p.ip is not None and p.ip.version != 4]
    for b, nets in enumerate(nets_list):
        col = np.zeros(len(pods), dtype=np.bool_)
        for net in nets:
            if isinstance(net, ipaddress.IPv4Network):
                mask = np.uint64(int(net.netmask))
                col |= v4 & ((ints & mask) == np.uint64(int(net.network_address)))
        for i in others:
            ip = pods[i].ip
            assert ip is not None
            col[i] = any(ip.version == n.version and ip in n for n in nets)
        out[:, b] = col
    return out


class _Run(Record):
    """Consecutive rules of one action in a tier: their (src, dst) rows (or blocks of rows)."""

    __slots__ = ("action", "dst", "src")

    action: Action
    src: list[BoolArray]
    dst: list[BoolArray]

    def __init__(self, action: Action, src: list[BoolArray], dst: list[BoolArray]) -> None:
        set_field(self, "action", action)
        set_field(self, "src", src)
        set_field(self, "dst", dst)


class _PreparedRule(Record):
    """A rule with both sides resolved to identity rows for the probe."""

    __slots__ = ("dst", "probe_key", "rule", "src")

    rule: Rule
    src: BoolArray
    """The source side's nets and selectors (and the policy's selection, for egress)."""
    dst: BoolArray
    """The destination side's nets and selectors (and the policy's selection, for ingress)."""
    probe_key: int
    """Rules of one direction with equal keys have the same protocol and port criteria,
    so a probe's verdict on those is found once for all of them (:func:`_runs`)."""

    def __init__(self, rule: Rule, src: BoolArray, dst: BoolArray, probe_key: int) -> None:
        set_field(self, "rule", rule)
        set_field(self, "src", src)
        set_field(self, "dst", dst)
        set_field(self, "probe_key", probe_key)


def _probe_criteria(rule: Rule) -> tuple[object, ...]:
    """What a probe's verdict on the rule's protocol and port criteria depends on."""

    def ports(m: PortMatch | None) -> object:
        return None if m is None else (m.ranges, tuple(n.key for n in m.named))

    src, dst = rule.src, rule.dst
    return (
        rule.protocol,
        rule.not_protocol,
        rule.icmp,
        rule.not_icmp,
        rule.ip_version,
        ports(src.ports),
        ports(src.not_ports),
        ports(dst.ports),
        ports(dst.not_ports),
    )


class _Group(Record):
    """Rules of one run (consecutive rules of one action) with the same probe criteria
    (:attr:`_PreparedRule.probe_key`): their rows stacked, one (n, K) block per side."""

    __slots__ = ("dst", "probe_key", "rule", "src")

    rule: Rule
    """One of them: what a probe's verdict on their protocol and ports is read from."""
    probe_key: int
    src: BoolArray
    dst: BoolArray

    def __init__(self, rule: Rule, probe_key: int, src: BoolArray, dst: BoolArray) -> None:
        set_field(self, "rule", rule)
        set_field(self, "probe_key", probe_key)
        set_field(self, "src", src)
        set_field(self, "dst", dst)


class _PreparedTier(Record):
    """A tier's rules prepared for the probe, and which identities it applies to."""

    __slots__ = ("applies", "end_action", "rules", "runs")

    applies: BoolArray
    end_action: str
    rules: tuple[_PreparedRule, ...]
    runs: tuple[tuple[Action, tuple[_Group, ...]], ...]
    """:attr:`rules` as runs of one action, each as groups (not with ``keep_all``)."""

    def __init__(
        self,
        applies: BoolArray,
        end_action: str,
        rules: tuple[_PreparedRule, ...],
        runs: tuple[tuple[Action, tuple[_Group, ...]], ...] = (),
    ) -> None:
        set_field(self, "applies", applies)
        set_field(self, "end_action", end_action)
        set_field(self, "rules", rules)
        set_field(self, "runs", runs)


def _grouped(rules: list[_PreparedRule]) -> tuple[tuple[Action, tuple[_Group, ...]], ...]:
    """Rules as runs of one action, and a run's rules by probe criteria: which rule of a
    run matches first does not matter, so their order inside it does not either."""
    runs: list[tuple[Action, dict[int, list[_PreparedRule]]]] = []
    for pr in rules:
        action = pr.rule.action
        if not runs or runs[-1][0] != action:
            runs.append((action, {}))
        runs[-1][1].setdefault(pr.probe_key, []).append(pr)
    return tuple(
        (
            action,
            tuple(
                _Group(
                    members[0].rule,
                    key,
                    np.stack([m.src for m in members]),  # 6x np.asarray of a list
                    np.stack([m.dst for m in members]),
                )
                for key, members in groups.items()
            ),
        )
        for action, groups in runs
    )


def _prepare(
    ids: _Identities,
    program: Program,
    direction: Direction,
    subject: dict[str, BoolArray],
    *,
    keep_all: bool = False,
) -> list[_PreparedTier]:
    """What does not depend on the probe: per tier that applies to some identity, its
    rules' rows (rules that can match no pair left out; log rules never decide).

    ``keep_all``: every tier and rule, so that views of different identities line up
    rule for rule (:mod:`sekisho.semantics.incremental`)."""
    out: list[_PreparedTier] = []
    keys: dict[tuple[object, ...], int] = {}
    by_objects: dict[tuple[object, ...], tuple[Rule, int]] = {}
    everyone = ids.base(ANY_ENTITY)
    # Whether a base row has a member, by row (rows are shared by equal sides).
    nonempty: dict[int, bool] = {id(everyone): ids.size > 0}
    ingress = direction == "ingress"
    for tier, policies in walk_order(program, direction):
        applies = np.zeros(ids.size, dtype=np.bool_)
        rules: list[_PreparedRule] = []
        for pol, pol_rules in policies:
            sel = subject[pol.selector.key]
            if not keep_all and not sel.any():
                continue
            applies |= sel
            for rule in pol_rules:
                src = ids.base(rule.src)
                dst = ids.base(rule.dst)
                # The policy's selection on the side it applies to (it has a member).
                mine, other = (dst, src) if ingress else (src, dst)
                if mine is everyone:
                    mine = sel
                else:
                    mine = mine & sel
                    if not keep_all and not mine.any():
                        continue
                if not keep_all:
                    has = nonempty.get(id(other))
                    if has is None:
                        has = nonempty[id(other)] = bool(other.any())
                    if not has:
                        continue
                src, dst = (other, mine) if ingress else (mine, other)
                rules.append(_PreparedRule(rule, src, dst, _probe_key(rule, keys, by_objects)))
        if keep_all or applies.any():
            runs = () if keep_all else _grouped(rules)
            out.append(_PreparedTier(applies, tier.default_action, tuple(rules), runs))
    return out


def _probe_key(
    rule: Rule,
    keys: dict[tuple[object, ...], int],
    by_objects: dict[tuple[object, ...], tuple[Rule, int]],
) -> int:
    """A number per distinct :func:`_probe_criteria`, found by the rule's objects first
    (compiled programs share their port matches)."""
    src, dst = rule.src, rule.dst
    quick = (
        rule.protocol,
        rule.not_protocol,
        id(rule.icmp),
        id(rule.not_icmp),
        rule.ip_version,
        id(src.ports),
        id(src.not_ports),
        id(dst.ports),
        id(dst.not_ports),
    )
    hit = by_objects.get(quick)
    if hit is None:
        # Kept with the rule, so the objects behind the ids stay alive meanwhile.
        hit = by_objects[quick] = (rule, keys.setdefault(_probe_criteria(rule), len(keys)))
    return hit[1]


def walk_order(
    program: Program, direction: Direction
) -> list[tuple[Tier, list[tuple[Policy, list[Rule]]]]]:
    """The program's tiers, their policies for ``direction`` and the rules that can decide
    (log rules never do), in the walk's order: what the engines iterate."""
    return [
        (
            tier,
            [
                (pol, [r for r in pol.rules(direction) if r.action != "log"])
                for pol in tier.policies
                if direction in pol.types
            ],
        )
        for tier in program.tiers
    ]


def _proto_number(name: str, family: int) -> int:
    if name == "ICMP":
        return PROTOCOL_NUMBERS["ICMPv6" if family == 6 else "ICMP"]
    return PROTOCOL_NUMBERS[name]


def _runs(
    ids: _Identities,
    tiers: list[_PreparedTier],
    proto_name: str,
    port: int | None,
    *,
    keep_all: bool = False,
    prints: list[object] | None = None,
    reply: bool = False,
) -> list[tuple[BoolArray, str, list[_Run]]]:
    """Per prepared tier for one probe: (applies-to row, end action, runs).

    ``keep_all``: every rule (one that cannot match gets empty rows), so that views of
    different identities line up rule for rule; the runs then hold one row per rule.
    Otherwise they hold (n, K) blocks: the rows of the rules that can match, a block
    per group of rules with the same probe criteria. ``prints``: gets what the runs
    depend on besides the prepared rows (the probe's verdict per distinct criteria, in
    order), so probes with equal prints get equal runs."""
    assert not (reply and (keep_all or prints is not None))
    proto = {fam: _proto_number(proto_name, fam) for fam in (4, 6)}
    echo = proto_name == "ICMP"
    number = proto[4]
    dst_port = port if number in PORT_PROTOCOLS else None
    families = [fam for fam in (4, 6) if keep_all or (ids.family == fam).any()]
    fam_rows = {fam: ids.family == fam for fam in families}
    criteria: dict[int, tuple[BoolArray | bool, BoolArray | None]] = {}
    src_criteria: dict[int, BoolArray | bool] = {}

    def reply_criteria(rule: Rule, key: int) -> tuple[BoolArray | bool, BoolArray | None]:
        """For the probe's replies (verdict.py, ``rule_mismatch`` with ``reply``): the
        source side holds the probe's port (a row: named ports), the destination side the
        ephemeral one; the source row is kept in ``src_criteria``."""
        got = criteria.get(key)
        if got is None:
            ok = [fam for fam in families if not rule.protocol_fails(proto[fam], fam, echo, True)]
            dst_ports = ids.side_ports(rule.dst, "source", number, None) if ok else False
            src_ports = (
                ids.side_ports(rule.src, "destination", number, dst_port)
                if dst_ports is not False
                else False
            )
            src_criteria[key] = src_ports
            family = fam_rows[ok[0]] if ok and len(ok) < len(families) else None
            got = criteria[key] = (dst_ports if src_ports is not False else False, family)
        return got

    def probe_criteria(rule: Rule, key: int) -> tuple[BoolArray | bool, BoolArray | None]:
        """The rule's destination port criteria for this probe (False: it matches no
        pair), and the destination family row its protocol criteria allow (None: all)."""
        if reply:
            return reply_criteria(rule, key)
        got = criteria.get(key)
        if got is None:
            # Protocol-level criteria depend on the probe and on the destination's family.
            ok = [fam for fam in families if not rule.protocol_fails(proto[fam], fam, echo)]
            src_ports = ids.side_ports(rule.src, "source", number, None) if ok else False
            dst_ports = (
                ids.side_ports(rule.dst, "destination", number, dst_port)
                if src_ports is not False
                else False
            )
            family = fam_rows[ok[0]] if ok and len(ok) < len(families) else None
            got = criteria[key] = (dst_ports, family)
            if prints is not None:
                shown = (
                    dst_ports if isinstance(dst_ports, bool) else np.packbits(dst_ports).tobytes()
                )
                prints.append((key, shown, ok[0] if family is not None else None))
        return got

    out: list[tuple[BoolArray, str, list[_Run]]] = []
    for tier in tiers:
        runs: list[_Run] = []
        if keep_all:
            for pr in tier.rules:
                dst_ports, family = probe_criteria(pr.rule, pr.probe_key)
                if dst_ports is False:
                    dst: BoolArray = np.zeros(ids.size, dtype=np.bool_)
                else:
                    dst = pr.dst if dst_ports is True else pr.dst & dst_ports
                    if family is not None:
                        dst = dst & family
                action = pr.rule.action
                if not runs or runs[-1].action != action:
                    runs.append(_Run(action, [], []))
                runs[-1].src.append(pr.src)
                runs[-1].dst.append(dst)
            out.append((tier.applies, tier.end_action, runs))
            continue
        for action, groups in tier.runs:
            srcs: list[BoolArray] = []
            dsts: list[BoolArray] = []
            for g in groups:
                dst_ports, family = probe_criteria(g.rule, g.probe_key)
                if dst_ports is False:
                    continue
                src, dst = g.src, g.dst
                src_ports = src_criteria.get(g.probe_key, True)
                if dst_ports is not True or family is not None or src_ports is not True:
                    if dst_ports is not True:
                        dst = dst & dst_ports
                    if family is not None:
                        dst = dst & family
                    if src_ports is not True:
                        src = src & src_ports
                    # Every prepared row has a member (see _prepare); these may not now.
                    keep = dst.any(axis=1) & src.any(axis=1)
                    if not keep.all():
                        src, dst = src[keep], dst[keep]
                        if not len(dst):
                            continue
                srcs.append(src)
                dsts.append(dst)
            if not srcs:
                continue
            # A run whose rules of another action between match nothing for this probe
            # joins the one before it.
            if runs and runs[-1].action == action:
                runs[-1].src.extend(srcs)
                runs[-1].dst.extend(dsts)
            else:
                runs.append(_Run(action, srcs, dsts))
        out.append((tier.applies, tier.end_action, runs))
    return out


def _direction_table(
    ids: _Identities,
    tiers_prepared: list[_PreparedTier],
    direction: Direction,
    proto_name: str,
    port: int | None,
    cache: dict[tuple[object, ...], BoolArray] | None = None,
) -> BoolArray:
    """(K, K) [source, destination]: whether ``direction``'s walk allows the pair.

    ``cache``: tables of earlier probes by their runs' prints (:func:`_runs`); a probe
    whose runs equal an earlier one's gets its table (the same array: do not change it).
    """
    prints: list[object] = []
    tiers = _runs(ids, tiers_prepared, proto_name, port, prints=prints)
    if ids.has_hep.any():
        # Host endpoints' fixes depend on the probe itself (failsafe ports).
        return _host_fixes(
            ids,
            _walk_table(ids, tiers_prepared, direction, proto_name, port, tiers=tiers),
            direction,
            proto_name,
            port,
        )
    key = tuple(prints)
    hit = cache.get(key) if cache is not None else None
    if hit is None:
        hit = _walk_table(ids, tiers_prepared, direction, proto_name, port, tiers=tiers)
        if cache is not None:
            cache[key] = hit
    return hit


def _host_fixes(
    ids: _Identities, table: BoolArray, direction: Direction, proto_name: str, port: int | None
) -> BoolArray:
    """What the walk decides before the program for host endpoints (verdict.py): Felix's
    failsafe ports, and a node's traffic to and from its own pods, which passes no host
    endpoint policy."""
    from sekisho.model.calico import FAILSAFE_INBOUND, FAILSAFE_OUTBOUND

    failsafe = FAILSAFE_INBOUND if direction == "ingress" else FAILSAFE_OUTBOUND
    hep = ids.has_hep
    if port is not None and (proto_name, port) in failsafe:
        if direction == "ingress":
            table[:, hep] = True
        else:
            table[hep, :] = True
    unpoliced = _own_pods(ids)
    for h in np.flatnonzero(hep).tolist():
        own = unpoliced[h]
        if direction == "ingress":
            table[own, h] = True  # a pod to its own node: its egress only
        else:
            table[h, own] = True  # a node to its own pods: never filtered (finding 2)
    return table


def _own_pods(ids: _Identities) -> BoolArray:
    """(K, K) [node-like h, j]: traffic between h's node and j passes no host endpoint
    policy: j is a workload on h's node, or j is that node too (over lo) and its host
    endpoint names an interface (verdict.py)."""
    nodes = [i.node for i in ids.identities]
    out = np.zeros((ids.size, ids.size), dtype=np.bool_)
    for h in np.flatnonzero(ids.has_hep).tolist():
        hep = ids.hep[h]
        named = hep is not None and hep.interface not in (None, "*")
        for j in range(ids.size):
            out[h, j] = nodes[j] == nodes[h] and (not ids.hn[j] or named)
    return out


def _walk_table(
    ids: _Identities,
    tiers_prepared: list[_PreparedTier],
    direction: Direction,
    proto_name: str,
    port: int | None,
    *,
    forward: bool = False,
    tiers: list[tuple[BoolArray, str, list[_Run]]] | None = None,
) -> BoolArray:
    k = ids.size
    # The profile: allows, except a host endpoint's without projectcalico-default-allow;
    # forwarded traffic that no applyOnForward policy decides is allowed.
    prof: BoolArray = ~ids.profile_denies if not forward else np.ones(k, dtype=np.bool_)
    prof_mask = prof[None, :] if direction == "ingress" else prof[:, None]
    if tiers is None:
        tiers = _runs(ids, tiers_prepared, proto_name, port)
    if not tiers:
        out0: BoolArray = np.empty((k, k), dtype=np.bool_)
        out0[...] = prof_mask
        return out0
    if len(tiers) == 1 and tiers[0][1] == "deny" and all(r.action == "allow" for r in tiers[0][2]):
        # One tier of allows (every Kubernetes NetworkPolicy): allowed where a rule
        # matches, or where the tier does not apply; the same as the loop below.
        applies, _end, runs = tiers[0]
        mask = applies[None, :] if direction == "ingress" else applies[:, None]
        out1: BoolArray = np.empty((k, k), dtype=np.bool_)
        out1[...] = ~mask & prof_mask
        for run in runs:
            _any_product(run.src, run.dst, k, into=out1)
        return out1
    allowed, undecided = _first_match(tiers, direction, k, tier_ends=True)
    # After the last tier, or for pairs no tier applies to: the profile.
    out: BoolArray = allowed | (undecided & prof_mask)
    return out


def _first_match(
    tiers: list[tuple[BoolArray, str, list[_Run]]],
    direction: Direction,
    k: int,
    *,
    tier_ends: bool,
) -> tuple[BoolArray, BoolArray]:
    """(allowed, undecided), (K, K): the tiers walked for every pair, the first matching
    rule deciding (pass: on to the next tier, log: on); ``tier_ends``: a tier that applies
    and decides nothing ends in its end action (a stage's tiers do not, program.py)."""
    allowed = np.zeros((k, k), dtype=np.bool_)
    undecided = np.ones((k, k), dtype=np.bool_)
    for applies, end_action, runs in tiers:
        mask = applies[None, :] if direction == "ingress" else applies[:, None]
        active = undecided & mask
        for run in runs:
            hit = _any_product(run.src, run.dst, k) & active
            if run.action == "allow":
                allowed |= hit
                undecided &= ~hit
            elif run.action == "deny":
                undecided &= ~hit
            active &= ~hit
        if tier_ends and end_action == "deny":
            undecided &= ~active
    return allowed, undecided


def _stage_tables(
    ids: _Identities,
    tiers_prepared: list[_PreparedTier],
    direction: Direction,
    proto: str,
    port: int | None,
    *,
    reply: bool = False,
) -> tuple[BoolArray, BoolArray]:
    """(accepted, dropped), (K, K): an untracked or preDNAT stage (program.py) walked for
    every pair; neither where no rule decides (no drop at the end of a tier there, no
    profile: on to the next stage). ``reply``: for the probe's reply packets, the pair
    [reply source (the server), reply destination (the client)] (verdict.py)."""
    tiers = _runs(ids, tiers_prepared, proto, port, reply=reply)
    accepted, undecided = _first_match(tiers, direction, ids.size, tier_ends=False)
    return accepted, ~accepted & ~undecided


def _staged(
    stages: list[tuple[BoolArray, BoolArray]], later: BoolArray, where: BoolArray
) -> BoolArray:
    """``later`` (the normal walk) behind the stages, in order, on the pairs ``where``:
    the first stage that accepts or drops decides."""
    out = later.copy()
    for accepted, dropped in reversed(stages):
        out = accepted | (~dropped & out)
    return np.where(where, out, later)


def refuse_host_endpoint_pods(cluster: Cluster, pods: Sequence[Pod]) -> None:
    """:class:`UsageError` when ``pods`` has hostNetwork pods on a node with a host endpoint
    (or any pod there, with applyOnForward policies).

    Such a pod is its node, whose own traffic the host endpoint polices; the full
    matrix evaluates it (:func:`compute_matrix`), the incremental one does not yet
    and calls this rather than answer wrong. Pods with their own network namespace
    are not affected.
    """
    if cluster.calico is None or not cluster.calico.host_endpoints:
        return
    nodes = {h.node for h in cluster.calico.host_endpoints}
    if any(p.forward for p in compile_program(cluster).all_policies()):
        hit = [p.key for p in pods if p.node in nodes]
    else:
        hit = [p.key for p in pods if p.host_network and p.node in nodes]
    if hit:
        shown = ", ".join(hit[:5]) + (f" and {len(hit) - 5} more" if len(hit) > 5 else "")
        raise UsageError(
            f"hostNetwork pods on nodes with host endpoints ({shown}): the incremental "
            "matrix does not evaluate host endpoint policy yet; compute it whole"
        )


def compute_matrix(
    cluster: Cluster,
    probes: Sequence[Service | Probe],
    *,
    pods: Sequence[Pod] | None = None,
    program: Program | None = None,
) -> Matrix:
    """Ingress, egress and combined truth tables for ``pods`` (default: all) under each probe.

    ``program``: another program over the same cluster (the staged preview,
    ``compile_program(cluster).pending()``); default: the cluster's own.
    """
    # Tens of thousands of keys, rows and tuples, no reference cycles: a cyclic
    # collection they trigger would only walk the caller's whole heap (the loaded
    # cluster) for nothing, as when loading (10k pods: one full collection, ~0.1 s).
    with paused_gc():
        return _compute_matrix(cluster, probes, pods, program)


def _compute_matrix(
    cluster: Cluster,
    probes: Sequence[Service | Probe],
    pods: Sequence[Pod] | None,
    program: Program | None,
) -> Matrix:
    chosen = sorted(cluster.pods if pods is None else pods, key=attrgetter("namespace", "name"))
    checked = [_check_probe(p) for p in probes]
    if program is None:
        program = compile_program(cluster)
    probed_names: set[tuple[str, str]] = {
        (s.name, s.protocol) for s in checked if s.name is not None
    }
    fine = _Identities(cluster, chosen, program, probed_names)
    # The engine runs on classes of identities (one representative pod each); the
    # tables are read through the identities' classes.
    rows: list[tuple[list[str], npt.NDArray[np.uint8]]] = []
    classes = _classes(fine, program, rows)
    if classes is None:
        ids = fine
        pod_class = fine.pod_identity
    else:
        firsts = np.unique(classes, return_index=True)[1]
        reps = [chosen[r] for r in fine.reps[firsts].tolist()]
        ids = _Identities(cluster, reps, program, probed_names)
        _seed_rows(ids, rows, fine.size, firsts)
        pod_class = classes[fine.pod_identity]
    del rows
    # Which identities each policy applies to (the same for every probe).
    subject: dict[str, BoolArray] = {}
    for pol in program.policies():
        if pol.selector.key not in subject:
            subject[pol.selector.key] = ids.subject(pol.selector)
    # hostNetwork sources reach pods on their own node unfiltered (pod-level fix-up).
    node_of = [p.node for p in chosen]
    same_node: list[tuple[int, IntArray]] = []
    for i, pod in enumerate(chosen):
        if pod.host_network and pod.node is not None:
            cols = [
                j for j, q in enumerate(chosen) if not q.host_network and node_of[j] == pod.node
            ]
            same_node.append((i, np.asarray(cols, dtype=np.int64)))
    prepared = {d: _prepare(ids, program, d, subject) for d in DIRECTIONS}
    # Traffic forwarded through host endpoints: the applyOnForward policies that select
    # the endpoint of the workload's node, for its traffic with anything off the node.
    fwd_prepared: dict[Direction, list[_PreparedTier]] | None = None
    off_node: BoolArray | None = None
    if ids.has_fwd_hep.any():
        forwarded = program.forwarded()
        fwd_subject = {
            p.selector.key: ids.forward_subject(p.selector) for p in forwarded.policies()
        }
        fwd_prepared = {d: _prepare(ids, forwarded, d, fwd_subject) for d in DIRECTIONS}
        off_node = ids.off_node()

    # The untracked and preDNAT stages at host endpoints (program.py): at a hostNetwork
    # identity's endpoint (its node's own traffic, except with its own pods) and, for
    # ingress, at the endpoint a workload's traffic from off its node arrives through.
    host_stage: dict[tuple[str, Direction], list[_PreparedTier]] = {}
    fwd_stage: dict[str, list[_PreparedTier]] = {}
    host_pairs: dict[Direction, BoolArray] = {}
    if program.has_stages and (ids.has_hep.any() or ids.has_fwd_hep.any()):
        own = _own_pods(ids)
        host_pairs["ingress"] = ids.has_hep[None, :] & ~own.T
        host_pairs["egress"] = ids.has_hep[:, None] & ~own
        for st in ("untracked", "prednat"):
            sp = program.stage(st)
            if not sp.tiers:
                continue
            hs = {p.selector.key: ids.subject(p.selector) & ids.hn for p in sp.policies()}
            fs = {p.selector.key: ids.forward_subject(p.selector) for p in sp.policies()}
            dirs: tuple[Direction, ...] = DIRECTIONS if st == "untracked" else ("ingress",)
            for d in dirs:
                host_stage[(st, d)] = _prepare(ids, sp, d, hs)
            fwd_stage[st] = _prepare(ids, sp, "ingress", fs)

    def stages_at(
        prep: dict[str, list[_PreparedTier]], direction: Direction, proto: str, port: int | None
    ) -> list[tuple[BoolArray, BoolArray]]:
        # Felix's failsafe ports come first in the raw and mangle chains too.
        from sekisho.model.calico import FAILSAFE_INBOUND, FAILSAFE_OUTBOUND

        failsafe = FAILSAFE_INBOUND if direction == "ingress" else FAILSAFE_OUTBOUND
        if port is not None and (proto, port) in failsafe:
            return []
        return [_stage_tables(ids, t, direction, proto, port) for t in prep.values()]

    seen: dict[str, dict[tuple[object, ...], BoolArray]] = {d: {} for d in DIRECTIONS}

    def reply_drops(proto: str, port: int | None) -> BoolArray | None:
        """(K, K) [client, server]: the connection fails after its request passed: the
        untracked stage drops the replies at some host endpoint they cross, or a node's
        conntrack does not know one direction (verdict.py, ``_replies`` and
        ``conntrack_at_node``, the rule's home being conntrack.py). The nodes: a
        hostNetwork server's (its reply out of its endpoint), a workload server's (its
        reply forwarded out, past no raw table), a hostNetwork client's (into its
        endpoint), a workload client's (forwarded in through its node's endpoint). None:
        no doNotTrack policy, no drop."""
        if not program.untracked or not (host_stage or fwd_stage):
            return None
        from sekisho.model.calico import FAILSAFE_INBOUND, FAILSAFE_OUTBOUND
        from sekisho.semantics.conntrack import follow_up_state, reply_state

        k = ids.size
        none = np.zeros((k, k), dtype=np.bool_)
        invalid = reply_state(proto, request_tracked=False) == "INVALID"
        next_invalid = follow_up_state(proto, request_tracked=True, reply_tracked=False)
        next_invalid_b = next_invalid == "INVALID"

        def stage(
            key: tuple[str, str], pairs: BoolArray, *, reply: bool
        ) -> tuple[BoolArray, BoolArray]:
            """(accepted, dropped) of one stage (``fwd``: at the endpoint a workload's
            traffic arrives through) on ``pairs``, for the request (in its own
            orientation [client, server]) or the replies ([server, client])."""
            d: Direction = "egress" if key[1] == "egress" else "ingress"
            fwd = key[1] == "fwd"
            prep = fwd_stage.get(key[0]) if fwd else host_stage.get((key[0], d))
            if prep is None:
                return none, none
            failsafe = FAILSAFE_INBOUND if (d == "ingress") != reply else FAILSAFE_OUTBOUND
            if port is not None and (proto, port) in failsafe:
                return none, none
            accepted, dropped = _stage_tables(ids, prep, d, proto, port, reply=reply)
            return accepted & pairs, dropped & pairs

        def reply_walk(tiers_prepared: list[_PreparedTier], d: Direction, **kw: bool) -> BoolArray:
            tiers = _runs(ids, tiers_prepared, proto, port, reply=True)
            return _walk_table(ids, tiers_prepared, d, proto, port, tiers=tiers, **kw)

        fails = np.zeros((k, k), dtype=np.bool_)  # [client, server]
        # The server's node: a hostNetwork server (its own endpoint, both tables).
        hs = host_pairs.get("ingress", none)  # [client, server]
        req_u, req_x = stage(("untracked", "ingress"), hs, reply=False)
        pre_a, _ = stage(("prednat", "ingress"), hs & ~req_u & ~req_x, reply=False)
        rep_u, rep_x = (a.T for a in stage(("untracked", "egress"), hs.T, reply=True))
        fails |= rep_x
        lone = req_u & ~rep_u & ~rep_x  # the request untracked, the reply not: no entry
        if invalid:
            fails |= lone
        elif lone.any():
            fails |= lone & ~reply_walk(prepared["egress"], "egress").T
        if next_invalid_b:
            fails |= rep_u & ~req_u & ~pre_a
        # A workload server, forwarded in through its node's endpoint: its reply leaves
        # by FORWARD, past no raw table (tracked there).
        if off_node is not None and "untracked" in fwd_stage:
            fs = off_node & ids.has_fwd_hep[None, :]
            req_u, _ = stage(("untracked", "fwd"), fs, reply=False)
            if invalid:
                fails |= req_u
            elif req_u.any() and fwd_prepared is not None:
                ok = reply_walk(prepared["egress"], "egress") & reply_walk(
                    fwd_prepared["egress"], "egress", forward=True
                )
                fails |= req_u & ~ok.T
        # The client's node: a hostNetwork client (its own endpoint, both tables).
        hc = host_pairs.get("egress", none)  # [client, server]
        req_u, _ = stage(("untracked", "egress"), hc, reply=False)
        rep_u, rep_x = (a.T for a in stage(("untracked", "ingress"), hc.T, reply=True))
        fails |= rep_x
        lone = req_u & ~rep_u & ~rep_x
        if lone.any():
            # Not tracked there, the reply meets the node's preDNAT policies first.
            pre_a, pre_x = (a.T for a in stage(("prednat", "ingress"), hc.T, reply=True))
            fails |= lone & pre_x
            lone &= ~pre_a & ~pre_x
            if invalid:
                fails |= lone
            else:
                fails |= lone & ~reply_walk(prepared["ingress"], "ingress").T
        if next_invalid_b:
            fails |= rep_u & ~req_u
        # A workload client, its replies forwarded in through its node's endpoint: its
        # request was tracked there.
        if off_node is not None and "untracked" in fwd_stage:
            to_pod = off_node & ids.has_fwd_hep[None, :]  # [server, client]
            rep_u, rep_x = stage(("untracked", "fwd"), to_pod, reply=True)
            fails |= rep_x.T
            if rep_u.any():
                # Accepted untracked: the pod's own ingress policy decides it again, and
                # TCP's next packets are INVALID there.
                pod_ok = reply_walk(prepared["ingress"], "ingress")
                fails |= (rep_u & ~pod_ok).T
                if next_invalid_b:
                    fails |= rep_u.T
        return fails

    def tables(proto: str, port: int | None) -> tuple[BoolArray, BoolArray]:
        ig = _direction_table(ids, prepared["ingress"], "ingress", proto, port, seen["ingress"])
        eg = _direction_table(ids, prepared["egress"], "egress", proto, port, seen["egress"])
        if host_stage:
            for d in DIRECTIONS:
                prep = {st: t for (st, dd), t in host_stage.items() if dd == d}
                got = stages_at(prep, d, proto, port)
                if got and d == "ingress":
                    ig = _staged(got, ig, host_pairs[d])
                elif got:
                    eg = _staged(got, eg, host_pairs[d])
        if fwd_prepared is not None and off_node is not None:
            fi = _walk_table(ids, fwd_prepared["ingress"], "ingress", proto, port, forward=True)
            fe = _walk_table(ids, fwd_prepared["egress"], "egress", proto, port, forward=True)
            if fwd_stage:
                got = stages_at(fwd_stage, "ingress", proto, port)
                if got:
                    fi = _staged(got, fi, np.ones_like(fi))
            ig = ig & (fi | ~(off_node & ids.has_fwd_hep[None, :]))
            eg = eg & (fe | ~(off_node & ids.has_fwd_hep[:, None]))
        # Replies dropped in raw fail the connection: counted on the ingress side, where
        # the request passed both sides (the walk walks replies only then).
        drops = reply_drops(proto, port)
        if drops is not None:
            ig = ig & ~(drops & eg)
        return ig, eg

    out: list[ProbeMatrix] = []
    shared: dict[tuple[object, ...], object] = {}
    for svc in checked:
        if svc.name is None:
            ingress, egress = tables(svc.protocol, svc.port)
        else:
            # A port name is resolved on each destination: the columns of the identities
            # that declare it as n come from the tables for port n; a destination that
            # does not declare it has nothing to reach (denied).
            numbers = ids.declared(svc.name, svc.protocol)
            if not (numbers >= 0).any():
                raise UsageError(
                    f"probe {svc}: no pod declares a {svc.protocol} port named {svc.name!r}"
                )
            ingress = np.zeros((ids.size, ids.size), dtype=np.bool_)
            egress = np.zeros((ids.size, ids.size), dtype=np.bool_)
            for n in sorted(set(numbers[numbers >= 0].tolist())):
                cols = numbers == n
                ig, eg = tables(svc.protocol, n)
                ingress[:, cols] = ig[:, cols]
                egress[:, cols] = eg[:, cols]
            declares = numbers[pod_class] >= 0
            fixes = tuple((row, cols[declares[cols]]) for row, cols in same_node)
        out.append(
            ProbeMatrix(
                svc.port,
                svc.protocol,
                ingress,
                egress,
                fine.pod_identity,
                tuple(same_node) if svc.name is None else fixes,
                svc.name,
                classes,
                shared,
            )
        )
    return Matrix(tuple(chosen), tuple(out), fine.identities, fine.pod_identity)
