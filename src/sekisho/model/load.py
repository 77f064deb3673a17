"""The loader: paths or dicts in, a validated Cluster (or every problem) out.

Order of work: read and parse every file (:mod:`~sekisho.model.reader`), validate
each object into a draft (:mod:`~sekisho.model.parse`), then join the drafts:
duplicates, implicit namespaces, workload expansion, placement and IPAM. Bad
input never fails open: with any problem there is no cluster.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sekisho.errors import ManifestError, Problem
from sekisho.model import ipam, workloads
from sekisho.model.checks import IPAddress, IPNetwork
from sekisho.model.lint import lint
from sekisho.model.parse import Drafts, NodeDraft, PodDraft, parse_object, parse_objects
from sekisho.model.reader import (
    FieldPath,
    Issue,
    Loc,
    RawObject,
    ReadResult,
    iter_objects,
    paused_gc,
    read_paths,
    resolve,
)
from sekisho.model.types import (
    DEFAULT_CLUSTER_CIDR,
    Cluster,
    Namespace,
    Node,
    Pod,
)

if TYPE_CHECKING:
    from sekisho.model.patch import Base

DEFAULT_CLUSTER_CIDR_TEXT = str(DEFAULT_CLUSTER_CIDR)


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What loading found: the cluster (None when there are problems) and the counts."""

    cluster: Cluster | None
    problems: tuple[Problem, ...]
    skipped: tuple[tuple[str, str], ...]
    """``(location, "Kind ns/name")`` of objects of kinds sekisho does not read."""
    files: int
    objects: int
    """Objects read (List items counted one by one), skipped ones included."""
    warnings: tuple[Problem, ...] = ()
    """The unsupported objects (always), then what is valid but probably not meant
    (:mod:`sekisho.model.lint`, only when there are no problems)."""
    unsupported: tuple[Problem, ...] = ()
    """Objects of kinds sekisho does not read (:mod:`sekisho.model.kinds`); also in ``warnings``."""

    @property
    def valid(self) -> bool:
        return not self.problems

    def summary(self) -> dict[str, int]:
        """Counts for the one-line summary and the JSON output."""
        c = self.cluster
        return {
            "files": self.files,
            "objects": self.objects,
            "nodes": len(c.nodes) if c else 0,
            "namespaces": len(c.namespaces) if c else 0,
            "pods": len(c.pods) if c else 0,
            "policies": _policy_count(c),
            "skipped": len(self.skipped),
            "unsupported": len(self.unsupported),
            "problems": len(self.problems),
            "warnings": len(self.warnings),
        }


def _policy_count(c: Cluster | None) -> int:
    if c is None:
        return 0
    n = len(c.policies) + len(c.cluster_policies)
    if c.calico is not None:
        n += len(c.calico.policies) + len(c.calico.staged_kubernetes)
    return n


Reader = Callable[[Sequence[str | Path], TextIO | None], ReadResult]
"""What reads the files: :func:`~sekisho.model.reader.read_paths`, or one that gives the
same result another way (``sekisho.sources.split`` reads on two cores)."""


def load_paths(
    paths: Sequence[str | Path],
    *,
    stdin: TextIO | None = None,
    cluster_cidr: str = DEFAULT_CLUSTER_CIDR_TEXT,
    reader: Reader = read_paths,
) -> LoadResult:
    """Load files, directories (recursive ``*.yaml``, ``*.yml``, ``*.json``, sorted) and ``-``."""
    with paused_gc():
        return load_read(reader(paths, stdin), cluster_cidr)


def load_cluster(
    paths: Sequence[str | Path],
    *,
    stdin: TextIO | None = None,
    cluster_cidr: str = DEFAULT_CLUSTER_CIDR_TEXT,
    reader: Reader = read_paths,
) -> Cluster:
    """Like :func:`load_paths`, but raise :class:`ManifestError` with every problem.

    Warnings are not returned, so the linter does not run.
    """
    with paused_gc():
        result = _load_read(reader(paths, stdin), cluster_cidr, warnings=False)
    if result.cluster is None:
        raise ManifestError(result.problems)
    return result.cluster


def cluster_from_objects(
    objects: Iterable[Mapping[str, Any]],
    *,
    source: str = "<objects>",
    cluster_cidr: str = DEFAULT_CLUSTER_CIDR_TEXT,
) -> Cluster:
    """Validate manifests given as dicts (tests, generators, the lab); raise on any problem."""
    with paused_gc():
        result = _load_read(iter_objects(list(objects), source), cluster_cidr, warnings=False)
    if result.cluster is None:
        raise ManifestError(result.problems)
    return result.cluster


def load_read(
    read: ReadResult, cluster_cidr: str = DEFAULT_CLUSTER_CIDR_TEXT, *, warnings: bool = True
) -> LoadResult:
    """Validate and join what :func:`sekisho.model.reader.read_paths` read (``read`` is not changed).

    For callers that cache parsed files (the file source re-reads only changed files)
    and join the :class:`ReadResult` of each. ``warnings=False`` skips the linter
    (an agent does not report warnings).
    """
    with paused_gc():
        return _load_read(read, cluster_cidr, warnings=warnings)


def _load_read(read: ReadResult, cluster_cidr: str, *, warnings: bool = True) -> LoadResult:
    issues = list(read.issues)
    try:
        cidr: IPNetwork = ipaddress.ip_network(cluster_cidr)
    except ValueError:
        issues.append(
            Issue(Loc("--cluster-cidr", 0), "", "", (), f'"{cluster_cidr}" is not a valid CIDR')
        )
        cidr = DEFAULT_CLUSTER_CIDR
    drafts = parse_objects(read.objects, issues)
    cluster = _build(drafts, cidr, issues)
    problems = tuple(resolve(issues, read.texts))
    unsupported = tuple(resolve(drafts.unsupported, read.texts))
    notes: list[Issue] = list(drafts.notes)
    if warnings and not problems:
        lint(cluster, drafts, notes)
    if unsupported and not problems:
        cluster = dataclasses.replace(cluster, unsupported=unsupported)
    return LoadResult(
        cluster=None if problems else cluster,
        problems=problems,
        skipped=tuple(drafts.skipped),
        files=read.files,
        objects=len(read.objects),
        warnings=unsupported + tuple(resolve(notes, read.texts)),
        unsupported=unsupported,
    )


_finish = load_read  # the name the file source first used


class PartCache:
    """Each object's own parse, kept between loads by a caller that knows which objects
    did not change (the etcd source: key and revision). See :func:`load_parts` and
    :func:`sekisho.model.patch.patch_parts`."""

    def __init__(self) -> None:
        self.parts: dict[object, _Part] = {}
        self.hits = 0
        """Objects whose parse the last load reused."""
        self.base: Base | None = None
        """The last good load's cluster and what a patch checks against; None when that
        cluster cannot be patched (see :func:`sekisho.model.patch.patch_parts`) or the
        last load failed."""
        self.patched = 0
        """Loads done by :func:`sekisho.model.patch.patch_parts` so far."""


_Part = tuple[Drafts, list[Issue], int, tuple[tuple[str, Any], ...]]
"""One object's drafts, its problem list, how many problems its parse found, and the
fields it filled (``calico.policies`` for a nested one): what a join has to add."""


def _filled(drafts: Any, prefix: str = "") -> tuple[tuple[str, Any], ...]:
    out: list[tuple[str, Any]] = []
    for f in dataclasses.fields(drafts):
        value = getattr(drafts, f.name)
        if value is None:
            continue  # a nested drafts not made (no Calico object): nothing filled
        if dataclasses.is_dataclass(value):
            out += _filled(value, f"{prefix}{f.name}.")
        elif isinstance(value, list | set | dict):
            if value:
                out.append((prefix + f.name, value))
        else:
            raise TypeError(f"cannot join drafts field {f.name}")
    return tuple(out)


def _merge(into: Drafts, filled: tuple[tuple[str, Any], ...], targets: dict[str, Any]) -> bool:
    """Add one object's filled fields to the joined drafts; False when a key collides."""
    for name, value in filled:
        target: Any = targets.get(name)
        if target is None:
            target = into
            for part in name.split("."):
                # Calico's drafts are made at their first object (parse.py).
                target = target.calico_drafts() if part == "calico" else getattr(target, part)
            targets[name] = target
        if isinstance(target, list):
            target.extend(value)
        elif isinstance(target, set):
            target |= value
        else:
            if any(k in target for k in value):
                return False
            target.update(value)
    return True


def load_parts(
    objects: Sequence[tuple[object, RawObject]],
    cache: PartCache,
    cluster_cidr: str = DEFAULT_CLUSTER_CIDR_TEXT,
) -> LoadResult:
    """:func:`load_read` of ``objects`` (no texts, no linter), re-parsing only objects whose
    key is not in ``cache``: what a change costs is its objects' parse plus the join.

    The result equals a full load (a test holds it to that). Problems found while
    joining land in the objects' own reports, so every object's problem list is
    scanned after the join; when there is any problem, or two objects collide, the
    cache is dropped (the join may have changed drafts) and a duplicate is left to
    the full load to report.
    """
    with paused_gc():
        fresh: dict[object, _Part] = {}
        drafts = Drafts()
        targets: dict[str, Any] = {}
        issues: list[Issue] = []
        hits = 0
        for key, obj in objects:
            part = cache.parts.get(key)
            if part is None:
                sink: list[Issue] = []
                one = Drafts()
                parse_object(obj, one, sink)
                part = (one, sink, len(sink), _filled(one))
            else:
                hits += 1
            fresh[key] = part
            if not _merge(drafts, part[3], targets):
                cache.parts = {}
                read = ReadResult(objects=[o for _, o in objects], files=len(objects))
                return _load_read(read, cluster_cidr, warnings=False)
            issues.extend(part[1][: part[2]])
        try:
            cidr: IPNetwork = ipaddress.ip_network(cluster_cidr)
        except ValueError:
            cache.parts = {}
            read = ReadResult(objects=[o for _, o in objects], files=len(objects))
            return _load_read(read, cluster_cidr, warnings=False)
        cluster = _build(drafts, cidr, issues)
        for _, sink, n, _ in fresh.values():
            if len(sink) > n:  # a problem the join found, told to the object's report
                issues.extend(sink[n:])
                del sink[n:]
        problems = tuple(resolve(issues, {}))
        unsupported = tuple(resolve(drafts.unsupported, {}))
        cache.base = None
        if problems:
            cache.parts = {}
        else:
            cache.parts = fresh
            cache.hits = hits
            if not unsupported:
                from sekisho.model.patch import base_of

                cache.base = base_of(cluster, drafts, fresh, cluster_cidr)
        if unsupported and not problems:
            cluster = dataclasses.replace(cluster, unsupported=unsupported)
        return LoadResult(
            cluster=None if problems else cluster,
            problems=problems,
            skipped=tuple(drafts.skipped),
            files=len(objects),
            objects=len(objects),
            warnings=unsupported + tuple(resolve(drafts.notes, {})),
            unsupported=unsupported,
        )


def _build(drafts: Drafts, cluster_cidr: IPNetwork, sink: list[Issue]) -> Cluster:
    nodes = _nodes(drafts.nodes, cluster_cidr)
    node_by_name = {n.name: n for n in nodes}
    schedulable = [n.name for n in nodes if n.schedulable]

    # Pods: given ones, then the ones workloads would run; duplicates are reported.
    pod_drafts: dict[str, PodDraft] = {}
    for draft in drafts.pods:
        pod_drafts[f"{draft.namespace}/{draft.name}"] = draft
    for workload in drafts.workloads:
        for draft in workloads.expand(workload, schedulable):
            key = f"{draft.namespace}/{draft.name}"
            other = pod_drafts.get(key)
            if other is not None:
                workload.report.error(
                    ("metadata", "name"),
                    f"would run pod {key}, which is already defined at {other.source}",
                )
                continue
            pod_drafts[key] = draft

    ordered = sorted(pod_drafts.values(), key=lambda d: (d.namespace, d.name))
    if nodes:
        for draft in ordered:
            node = draft.template.node
            if node is not None and node not in node_by_name:
                draft.report.error(
                    (*draft.path_prefix, "spec", "nodeName"),
                    f'node "{node}" is not defined (nodes: {", ".join(sorted(node_by_name))})',
                )
                draft.template.node = None

    # "A pod with no nodeName is placed round robin over schedulable nodes in sorted order."
    # A workload's pods were placed by its expansion (workloads.py: from a node its own
    # hash picks), so this turn counts only the Pods given without a node.
    turn = 0
    placed: dict[str, str | None] = {}
    for draft in ordered:
        node = draft.template.node
        if node is None and schedulable:
            node = schedulable[turn % len(schedulable)]
            turn += 1
        placed[f"{draft.namespace}/{draft.name}"] = node

    # IPs: given ones first (they are taken), then the rest in name order.
    taken: set[int] = {int(ip) for n in nodes for ip in n.ips}
    node_ip_owner = {int(ip): n.name for n in nodes for ip in n.ips}
    pod_ip_owner: dict[int, str] = {}
    for draft in ordered:
        if draft.template.ip is None or draft.template.host_network:
            continue
        key = f"{draft.namespace}/{draft.name}"
        for given in (draft.template.ip, *draft.template.other_ips):
            owner = pod_ip_owner.get(int(given)) or (
                f"node {node_ip_owner[int(given)]}" if int(given) in node_ip_owner else None
            )
            if owner is not None:
                draft.report.error(("status", "podIP"), f"IP {given} is already used by {owner}")
                continue
            pod_ip_owner[int(given)] = f"pod {key}"
            taken.add(int(given))

    pods: list[Pod] = []
    for draft in ordered:
        key = f"{draft.namespace}/{draft.name}"
        node_name = placed[key]
        node_obj = node_by_name.get(node_name) if node_name else None
        t = draft.template
        ip: IPAddress | None
        others: tuple[IPAddress, ...] = ()
        try:
            if t.host_network:
                if node_obj is not None:
                    ip = node_obj.internal_ip  # "hostNetwork pods get their node's IP"
                    others = node_obj.other_ips
                else:
                    ip = t.ip or ipam.hashed_ip(key, ipam.NODE_NETWORK, taken)
            elif t.ip is not None:
                ip, others = t.ip, t.other_ips
            else:
                # One address per family the node has a pod CIDR of (a dual-stack pod).
                pools = node_obj.pod_cidrs if node_obj is not None else (cluster_cidr,)
                ip, *rest = (ipam.hashed_ip(key, pool, taken) for pool in pools)
                others = tuple(rest)
        except ipam.PoolExhausted as exc:
            draft.report.error((), f"cannot assign an IP to pod {key}: {exc}")
            ip = None
        pods.append(_pod(draft, node_name, ip, others if ip is not None else ()))

    namespaces: dict[str, Namespace] = {}
    for ns in drafts.namespaces:
        namespaces[ns.name] = ns
    for name in sorted(drafts.mentioned_namespaces - set(namespaces)):
        namespaces[name] = Namespace(name, {"kubernetes.io/metadata.name": name}, implicit=True)
    namespaces = dict(sorted(namespaces.items()))

    policies = tuple(sorted(drafts.policies, key=lambda p: (p.namespace, p.name)))
    calico_objects = None
    if drafts.calico is not None:  # imported only when a Calico object was read
        from sekisho.model import calico

        calico_objects = calico.finish(drafts.calico, set(node_by_name), sink)
    return Cluster(
        nodes=tuple(nodes),
        namespaces=namespaces,
        pods=tuple(pods),
        policies=policies,
        cluster_cidr=cluster_cidr,
        cluster_policies=tuple(sorted(drafts.cluster_policies, key=lambda p: (p.kind, p.name))),
        calico=calico_objects or None,
    )


def _pod(
    draft: PodDraft,
    node_name: str | None,
    ip: IPAddress | None,
    other_ips: tuple[IPAddress, ...] = (),
) -> Pod:
    """The pod of a draft placed on ``node_name`` with address ``ip`` and the addresses of
    its other family ``other_ips`` (the join and the patch)."""
    t = draft.template
    return Pod(
        namespace=draft.namespace,
        name=draft.name,
        labels=t.labels,
        node=node_name,
        ip=ip,
        host_network=t.host_network,
        ports=t.ports,
        workload=draft.workload,
        source=draft.source,
        service_account=t.service_account,
        other_ips=other_ips,
    )


def _nodes(drafts: list[NodeDraft], cluster_cidr: IPNetwork) -> list[Node]:
    """Nodes in name order, with missing InternalIPs and podCIDRs assigned."""
    ordered = sorted(drafts, key=lambda d: d.name)
    ip_owner: dict[int, str] = {}
    for d in ordered:
        for addr in ((d.internal_ip,) if d.internal_ip is not None else ()) + d.other_ips:
            owner = ip_owner.get(int(addr))
            if owner is not None:
                d.report.error(
                    ("status", "addresses"),
                    f"InternalIP {addr} is already used by node {owner}",
                )
            else:
                ip_owner[int(addr)] = d.name
    cidrs: list[tuple[IPNetwork, str]] = []
    # Two CIDRs overlap when one holds the other: look the new one's supernets up
    # among the CIDRs so far, and the new one among their supernets (not n x n).
    exact: dict[tuple[int, int, int], str] = {}
    inside: dict[tuple[int, int, int], str] = {}
    owned: list[tuple[NodeDraft, IPNetwork, FieldPath]] = [
        (nd, net, ("spec", "podCIDR") if i == 0 else ("spec", "podCIDRs", i))
        for nd in ordered
        for i, net in enumerate(
            ((nd.pod_cidr,) if nd.pod_cidr is not None else ()) + nd.other_pod_cidrs
        )
    ]
    for d, net, where in owned:
        bits, base = net.max_prefixlen, int(net.network_address)
        supernets = [
            (net.version, base >> (bits - plen) << (bits - plen), plen)
            for plen in range(net.prefixlen, -1, -1)
        ]
        clash = inside.get(supernets[0]) or next((exact[k] for k in supernets if k in exact), None)
        exact.setdefault(supernets[0], d.name)
        for k in supernets:
            inside.setdefault(k, d.name)
        if clash is not None:
            d.report.error(where, f"podCIDR {net} overlaps the podCIDR of node {clash}")
        cidrs.append((net, d.name))

    taken = set(ip_owner)
    nodes: list[Node] = []
    for d in ordered:
        try:
            internal_ip = d.internal_ip or ipam.first_free_host(ipam.NODE_NETWORK, taken)
            pod_cidr = d.pod_cidr
            if pod_cidr is None:
                pod_cidr = ipam.first_free_block(cluster_cidr, (net for net, _ in cidrs))
                cidrs.append((pod_cidr, d.name))
        except ipam.PoolExhausted as exc:
            d.report.error((), f"cannot assign addresses to node {d.name}: {exc}")
            continue
        nodes.append(
            Node(
                name=d.name,
                internal_ip=internal_ip,
                pod_cidr=pod_cidr,
                schedulable=d.schedulable,
                labels=d.labels,
                source=d.source,
                other_ips=tuple(ip for ip in d.other_ips if ip.version != internal_ip.version),
                other_pod_cidrs=tuple(
                    n for n in d.other_pod_cidrs if n.version != pod_cidr.version
                ),
            )
        )
    return nodes
