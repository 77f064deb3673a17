"""Patching the last good cluster with a few changed objects, without a join.

A change of an object that makes exactly one item of the cluster (a node, a
pod, a NetworkPolicy, a Namespace, a cluster-wide policy, a Calico policy,
staged policy, tier, network set, host endpoint or service account) needs no
join when the cluster's join is trivial for it: every pod names a defined node
and gives its own address (as pods an API server writes do), every node gives
its InternalIP and podCIDR, and no workload expands into pods. Then the join of
the whole (placement, IPAM, Calico's cross-object checks) gives every other
object what it gave before, and the changed objects what the patch gives them,
each in its sorted place. The join's checks that one object can fail are made
here against indexes of the last good load (a taken address, a duplicate, an
overlapping podCIDR, a pod's or host endpoint's node, a Calico policy's tier or
Calico name, a tier still in use); a change that fails one, or that the patch
cannot take (a workload, a pod or node without its addresses, a dual-stack
one, any problem, warning or kind not above), is left to the full load, which
is the reference: tests hold the patched cluster equal to a full load over
random changes.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sekisho.model.load import DEFAULT_CLUSTER_CIDR_TEXT, PartCache, _filled, _Part, _pod
from sekisho.model.parse import Drafts, PodDraft, parse_object
from sekisho.model.reader import Issue, RawObject
from sekisho.model.types import Cluster, Namespace, Node

_Key = Callable[[Any], tuple[str, ...]]

_SLOTS: dict[str, _Key] = {
    "nodes": lambda n: (n.name,),
    "pods": lambda p: (p.namespace, p.name),
    "policies": lambda p: (p.namespace, p.name),
    "cluster_policies": lambda p: (p.kind, p.name),
    "namespaces": lambda n: (n.name,),
    "calico.tiers": lambda t: (t.name,),
    "calico.policies": lambda p: (p.kind, p.namespace or "", p.tiered_name),
    "calico.staged_kubernetes": lambda s: (s.policy.namespace, s.policy.name),
    "calico.network_sets": lambda n: (n.namespace or "", n.name),
    "calico.host_endpoints": lambda h: (h.name,),
    "calico.service_accounts": lambda s: (s.namespace, s.name),
}
"""The cluster's collections a patch can change, by their drafts field, with the key
the join sorts each by (``_build`` and ``calico.finish``): one item per key."""

_WITH_REPORT = frozenset({"calico.tiers", "calico.policies", "calico.host_endpoints"})
"""Drafts fields whose items are ``(item, report)`` (``calico.finish`` reports into it)."""

_Item = tuple[str, Any]
"""(drafts field, the one item an object made)."""


@dataclass(slots=True)
class Base:
    """The last good load and the indexes a patch checks a change against."""

    cluster: Cluster
    cluster_cidr: str
    names: dict[str, object]
    """Object name (etcd key) -> its key in :attr:`PartCache.parts` ((name, version))."""
    nodes: dict[str, Node]
    node_ips: set[int]
    pod_ips: dict[int, str]
    """``int(ip)`` -> key of the (not hostNetwork) pod that has it, as the join counts them."""
    seen: set[tuple[str, str, str]]
    """Every object's (kind, namespace, name), as the parser checks duplicates."""
    mentioned: dict[str, int]
    """Namespace -> how many objects are in it (an implicit namespace lives while any is)."""
    tier_use: dict[str, int]
    """Calico tier -> how many Calico policies are in it."""
    calico_names: set[tuple[str, str | None, str, bool]]
    """The Calico policies' identities ``calico.finish`` holds unique."""


def base_of(
    cluster: Cluster, drafts: Drafts, parts: dict[object, _Part], cluster_cidr: str
) -> Base | None:
    """What :func:`patch_parts` needs of a good load; None when its join is not trivial."""
    if drafts.workloads or drafts.skipped or drafts.unsupported or drafts.notes:
        return None
    nodes = {n.name: n for n in cluster.nodes}
    for d in drafts.pods:
        if not _placed(d, nodes):
            return None
    names: dict[str, object] = {}
    mentioned: dict[str, int] = {}
    for key, part in parts.items():
        if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str)):
            return None
        names[key[0]] = key
        for ns in part[0].mentioned_namespaces:
            mentioned[ns] = mentioned.get(ns, 0) + 1
    tier_use: dict[str, int] = {}
    calico_names: set[tuple[str, str | None, str, bool]] = set()
    for p in cluster.calico.policies if cluster.calico else ():
        tier_use[p.tier] = tier_use.get(p.tier, 0) + 1
        calico_names.add(_calico_name(p))
    return Base(
        cluster,
        cluster_cidr,
        names,
        nodes,
        {int(ip) for n in cluster.nodes for ip in n.ips},
        {int(p.ip): p.key for p in cluster.pods if p.ip is not None and not p.host_network},
        set(drafts.seen),
        mentioned,
        tier_use,
        calico_names,
    )


def _placed(d: PodDraft, nodes: dict[str, Node]) -> bool:
    """A pod the join would only copy: a defined node, its own address, one family."""
    t = d.template
    if t.node is None or t.node not in nodes or (t.ip is None and not t.host_network):
        return False
    # dual stack: the full load checks the other family's addresses
    return not (t.other_ips or (t.host_network and nodes[t.node].other_ips))


def _calico_name(p: Any) -> tuple[str, str | None, str, bool]:
    """A Calico policy's identity as ``calico.finish`` holds it unique."""
    glob = p.namespace is None
    return (
        "global" if glob else "namespaced",
        p.namespace,
        p.tiered_name,
        p.staged_action is not None,
    )


def _simple(part: _Part, base: Base) -> _Item | None:
    """The one item an object's parse made, if a patch can take it."""
    _drafts, sink, _n, filled = part
    if sink:
        return None
    made = [(name, value) for name, value in filled if name not in ("seen", "mentioned_namespaces")]
    if len(made) != 1 or made[0][0] not in _SLOTS or len(made[0][1]) != 1:
        return None
    name, (item,) = made[0]
    if name == "pods" and not _placed(item, base.nodes):
        return None
    if name == "nodes" and (
        item.internal_ip is None or item.pod_cidr is None or item.other_ips or item.other_pod_cidrs
    ):
        return None  # addresses the join assigns, or dual stack
    return name, item[0] if name in _WITH_REPORT else item


def patch_parts(
    cache: PartCache,
    changes: Sequence[tuple[str, object | None, RawObject | None]],
    cluster_cidr: str = DEFAULT_CLUSTER_CIDR_TEXT,
) -> Cluster | None:
    """The last good cluster of ``cache`` with ``changes`` applied, without a join; None
    when a change needs the full load (:func:`~sekisho.model.load.load_parts`), which the
    caller then does.

    ``changes``: (name, version, object) per changed object, ``None`` for the version and
    object of a deleted one; names and versions as in the keys ``(name, version)`` the
    last :func:`~sekisho.model.load.load_parts` was given. Returns an equal cluster to what
    a full load of the changed objects would give (the items that did not change are the
    same objects). Nothing in ``cache`` changes when it returns None.
    """
    base = cache.base
    if base is None or base.cluster_cidr != cluster_cidr:
        return None
    olds: list[tuple[object, _Item]] = []
    news: list[tuple[object, _Part, _Item]] = []
    done: set[str] = set()
    for name, version, raw in changes:
        if name in done:
            return None
        done.add(name)
        old_key = base.names.get(name)
        new_key = None if raw is None else (name, version)
        if old_key == new_key:
            continue
        if old_key is not None:
            item = _simple(cache.parts[old_key], base)
            if item is None:
                return None
            olds.append((old_key, item))
        if raw is not None:
            sink: list[Issue] = []
            one = Drafts()
            parse_object(raw, one, sink)
            part: _Part = (one, sink, len(sink), _filled(one))
            item = _simple(part, base)
            if item is None:
                return None
            news.append((new_key, part, item))
    if not olds and not news:
        cache.patched += 1
        return base.cluster
    nodes = _joins(cache, base, olds, news)
    if nodes is None:
        return None
    try:
        return _apply(cache, base, olds, news, nodes)
    except BaseException:
        cache.base = None  # half applied: the next load is a full one
        raise


def _joins(
    cache: PartCache,
    base: Base,
    olds: list[tuple[object, _Item]],
    news: list[tuple[object, _Part, _Item]],
) -> dict[str, Node] | None:
    """The checks the join would make, on the state after every change: the nodes after
    them, or None when one would report a problem (the full load reports it)."""
    seen = base.seen - {k for key, _ in olds for k in cache.parts[key][0].seen}
    for _, part, _ in news:
        for k in part[0].seen:
            if k in seen:
                return None  # a duplicate
            seen.add(k)
    gone_pods = {f"{i.namespace}/{i.name}" for _, (f, i) in olds if f == "pods"}
    nodes = _nodes_after(base, olds, news)
    if nodes is None:
        return None
    node_ips = base.node_ips
    if nodes is not base.nodes:
        node_ips = {int(ip) for n in nodes.values() for ip in n.ips}
        if not _nodes_keep(base, nodes, olds, gone_pods):
            return None
    taken: set[int] = set()
    for _, _, (f, item) in news:
        if f == "pods":
            t = item.template
            if t.node not in nodes or (t.host_network and nodes[t.node].other_ips):
                return None  # its node goes (or is dual stack now)
            if t.host_network:
                continue
            ip = int(t.ip)
            owner = base.pod_ips.get(ip)
            if ip in node_ips or ip in taken or (owner is not None and owner not in gone_pods):
                return None  # an address taken
            taken.add(ip)
        elif f == "calico.host_endpoints" and nodes and item.node not in nodes:
            return None  # calico.finish: the node is not defined
    # calico.finish: a policy's tier exists, and Calico's names of policies are unique.
    calico = base.cluster.calico
    tiers = {t.name for t in calico.tiers} if calico else set()
    tiers -= {i.name for _, (f, i) in olds if f == "calico.tiers"}
    tiers |= {i.name for _, _, (f, i) in news if f == "calico.tiers"}
    use = dict(base.tier_use)
    names = set(base.calico_names)
    for _, (f, item) in olds:
        if f == "calico.policies":
            use[item.tier] -= 1
            names.discard(_calico_name(item))
    from sekisho.model.calico import BUILTIN_TIER_ORDERS

    for _, _, (f, item) in news:
        if f == "calico.policies":
            if item.tier not in tiers and item.tier not in BUILTIN_TIER_ORDERS:
                return None
            if _calico_name(item) in names:
                return None
            names.add(_calico_name(item))
            use[item.tier] = use.get(item.tier, 0) + 1
    gone_tiers = {i.name for _, (f, i) in olds if f == "calico.tiers"} - tiers
    if any(use.get(t, 0) and t not in BUILTIN_TIER_ORDERS for t in gone_tiers):
        return None
    return nodes


def _nodes_after(
    base: Base, olds: list[tuple[object, _Item]], news: list[tuple[object, _Part, _Item]]
) -> dict[str, Node] | None:
    """The nodes after the changes (``base.nodes`` itself when none changes), as ``_nodes``
    makes them; None when ``_nodes`` would report a problem: an InternalIP another node
    has, a podCIDR that overlaps another's."""
    gone = [i.name for _, (f, i) in olds if f == "nodes"]
    given = [i for _, _, (f, i) in news if f == "nodes"]
    if not gone and not given:
        return base.nodes
    nodes = dict(base.nodes)
    for name in gone:
        del nodes[name]
    for d in given:
        for other in nodes.values():
            if int(d.internal_ip) in {int(ip) for ip in other.ips}:
                return None
            if any(d.pod_cidr.overlaps(net) for net in other.pod_cidrs):
                return None
        nodes[d.name] = Node(d.name, d.internal_ip, d.pod_cidr, d.schedulable, d.labels, d.source)
    return nodes


def _nodes_keep(
    base: Base, nodes: dict[str, Node], olds: list[tuple[object, _Item]], gone_pods: set[str]
) -> bool:
    """Whether the objects that stay are as good with the new nodes: every pod's node is
    still there (with the same addresses under a hostNetwork pod), no pod has a new
    node's address, and no host endpoint is on a node that went."""
    was = base.nodes
    moved = {n for n in was if n not in nodes or nodes[n].ips != was[n].ips}
    if moved:
        for p in base.cluster.pods:
            on_moved = p.node in moved and (p.host_network or p.node not in nodes)
            if on_moved and p.key not in gone_pods:
                return False
    for n in nodes.values():
        if was.get(n.name) is not n:
            for ip in n.ips:
                owner = base.pod_ips.get(int(ip))
                if owner is not None and owner not in gone_pods:
                    return False
    gone_heps = {i.name for _, (f, i) in olds if f == "calico.host_endpoints"}
    heps = base.cluster.calico.host_endpoints if base.cluster.calico else ()
    return not any(h.node not in nodes and h.name not in gone_heps for h in heps)


def _apply(
    cache: PartCache,
    base: Base,
    olds: list[tuple[object, _Item]],
    news: list[tuple[object, _Part, _Item]],
    nodes: dict[str, Node],
) -> Cluster:
    cluster = base.cluster
    cluster_nodes = base.nodes
    lists: dict[str, list[Any]] = {}
    if nodes is not base.nodes:
        base.nodes = nodes
        base.node_ips = {int(ip) for n in nodes.values() for ip in n.ips}

    def items(name: str) -> list[Any]:
        if name not in lists:
            calico, field = name.startswith("calico."), name.removeprefix("calico.")
            lists[name] = list(getattr(cluster.calico if calico else cluster, field, ()))
        return lists[name]

    explicit_gone: set[str] = set()
    explicit_new: dict[str, Namespace] = {}
    touched: set[str] = set()
    for key, (f, item) in olds:
        for ns in cache.parts[key][0].mentioned_namespaces:
            base.mentioned[ns] -= 1
            touched.add(ns)
        if f == "namespaces":
            explicit_gone.add(item.name)
            touched.add(item.name)
            continue
        if f == "nodes":
            continue  # the nodes after are made whole (_nodes_after)
        into, by = items(f), _SLOTS[f]
        want = by(item)
        at = bisect.bisect_left(into, want, key=by)
        assert by(into[at]) == want
        gone = into.pop(at)
        if f == "pods" and gone.ip is not None and not gone.host_network:
            del base.pod_ips[int(gone.ip)]
        if f == "calico.policies":
            base.tier_use[gone.tier] -= 1
            base.calico_names.discard(_calico_name(gone))
    for _, part, (f, item) in news:
        for ns in part[0].mentioned_namespaces:
            base.mentioned[ns] = base.mentioned.get(ns, 0) + 1
            touched.add(ns)
        if f == "namespaces":
            explicit_new[item.name] = item
            touched.add(item.name)
            continue
        if f == "nodes":
            continue
        if f == "pods":
            t = item.template
            node = base.nodes[t.node or ""]
            item = _pod(item, node.name, node.internal_ip if t.host_network else t.ip)
            if item.ip is not None and not item.host_network:
                base.pod_ips[int(item.ip)] = item.key
        elif f == "calico.policies":
            base.tier_use[item.tier] = base.tier_use.get(item.tier, 0) + 1
            base.calico_names.add(_calico_name(item))
        into, by = items(f), _SLOTS[f]
        into.insert(bisect.bisect_left(into, by(item), key=by), item)
    base.seen -= {k for key, _ in olds for k in cache.parts[key][0].seen}
    base.seen |= {k for _, part, _ in news for k in part[0].seen}
    for key, _ in olds:
        del cache.parts[key]
        base.names.pop(key[0], None)  # type: ignore[index]
    for key, part, _ in news:
        cache.parts[key] = part
        base.names[key[0]] = key  # type: ignore[index]
    changed: dict[str, Any] = {}
    if nodes is not cluster_nodes:
        changed["nodes"] = tuple(nodes[n] for n in sorted(nodes))
    calico: dict[str, Any] = {}
    for name, held in lists.items():
        if name.startswith("calico."):
            calico[name[7:]] = tuple(held)
        else:
            changed[name] = tuple(held)
    if calico:
        from sekisho.model.calico import CalicoResources

        changed["calico"] = (
            dataclasses.replace(cluster.calico or CalicoResources(), **calico) or None
        )
    if touched:
        namespaces = _namespaces(cluster, base, touched, explicit_gone, explicit_new)
        if namespaces != cluster.namespaces:
            changed["namespaces"] = namespaces
    base.cluster = dataclasses.replace(cluster, **changed)
    cache.patched += 1
    return base.cluster


def _namespaces(
    cluster: Cluster,
    base: Base,
    touched: set[str],
    gone: set[str],
    given: dict[str, Namespace],
) -> dict[str, Namespace]:
    """The namespaces after a patch, as ``_build`` makes them: the Namespace objects, then
    an implicit one for every other namespace an object is in; ``touched`` are the names
    whose Namespace object or objects changed."""
    out = dict(cluster.namespaces)
    for name in touched:
        ns = out.get(name)
        if name in given:
            out[name] = given[name]
        elif ns is not None and not ns.implicit and name not in gone:
            continue  # its Namespace object stays
        elif base.mentioned.get(name, 0) <= 0:
            out.pop(name, None)
        elif ns is None or not ns.implicit:
            out[name] = Namespace(name, {"kubernetes.io/metadata.name": name}, implicit=True)
    return dict(sorted(out.items()))
