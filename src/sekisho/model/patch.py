"""Patching the last good cluster with a few changed objects, without a join.

A change of an object that makes exactly one item of the cluster (a node, a
pod, a NetworkPolicy, a Namespace, a cluster-wide policy, a Calico policy,
staged policy, tier, network set, host endpoint or service account) needs no
join when the cluster's join is trivial for it: every pod names a defined node
(as pods an API server writes do) and every node gives its InternalIP and
podCIDR. Then the join of the whole (placement, IPAM, Calico's cross-object
checks) gives every other object what it gave before, and the changed objects
what the patch gives them, each in its sorted place.

A workload (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job) makes pods the
join places and addresses. Its pods' nodes depend on it and the schedulable
nodes only (:mod:`sekisho.model.workloads`), so its change takes out the pods it
ran and puts in the pods it runs; each gets the address the join would give it
(the first free one of :func:`sekisho.model.ipam.candidates`), as does a Pod on
a node without its address. That moves no
other pod, except when an address freed is one that a pod that stays passed
over (the join would now give it that one), or when a new pod passes over the
address of a pod the join addresses after it (the join would give the new pod
that one): both are full loads. The base keeps, per address, the pods that
passed over it. A change of nodes while any workload is there is a full load
(every workload's pods may move).

The join's checks that one object can fail are made here against indexes of the
last good load (a taken address, a duplicate pod or object, an overlapping
podCIDR, a pod's or host endpoint's node, a Calico policy's tier or Calico name,
a tier still in use); a change that fails one, or that the patch cannot take (a
pod without a node, a node without its addresses, a dual-stack one, any problem,
warning or kind not above), is left to the full load, which is the reference: tests hold
the patched cluster equal to a full load over random changes.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sekisho.model import ipam, workloads
from sekisho.model.load import DEFAULT_CLUSTER_CIDR_TEXT, PartCache, _filled, _Part, _pod
from sekisho.model.parse import Drafts, PodDraft, parse_object
from sekisho.model.reader import Issue, RawObject
from sekisho.model.types import Cluster, Namespace, Node, Pod

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

_PATCHED = frozenset({*_SLOTS, "workloads"})
"""Drafts fields a patch takes: a workload makes no item of its own, but its pods."""

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
    pod_keys: set[str]
    """Every pod's ``namespace/name`` (a workload's pods too)."""
    auto: dict[str, tuple[int, ...]]
    """A pod whose address the join chose (a workload's, not hostNetwork) -> the addresses
    it passed over before its own (:func:`sekisho.model.ipam.candidates`), each taken when
    the join came to it."""
    passed: dict[int, set[str]]
    """Address -> the pods of :attr:`auto` that passed over it: were it freed, the join
    would give it to one of them."""
    workloads: int
    """How many workloads the cluster has (while any has, a change of nodes is a full load)."""
    schedulable: list[str]
    """The schedulable nodes in name order, as the join places workloads' pods on them."""


def base_of(
    cluster: Cluster, drafts: Drafts, parts: dict[object, _Part], cluster_cidr: str
) -> Base | None:
    """What :func:`patch_parts` needs of a good load; None when its join is not trivial."""
    if drafts.skipped or drafts.unsupported or drafts.notes:
        return None
    nodes = {n.name: n for n in cluster.nodes}
    chosen: set[str] = set()
    for d in drafts.pods:
        if not _placed(d, nodes):
            return None
        if d.template.ip is None and not d.template.host_network:
            chosen.add(f"{d.namespace}/{d.name}")
    auto: dict[str, tuple[int, ...]] = {}
    passed: dict[int, set[str]] = {}
    for p in cluster.pods if drafts.workloads or chosen else ():
        if p.workload is None and p.key not in chosen:
            continue
        node = nodes.get(p.node or "")
        if node is None or p.ip is None or node.other_ips or node.other_pod_cidrs:
            return None  # not placed, or dual stack: the full load's
        if p.host_network:
            continue
        path = _path(p.key, node, int(p.ip))
        if path is None:
            return None
        auto[p.key] = path
        for a in path:
            passed.setdefault(a, set()).add(p.key)
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
    for cp in cluster.calico.policies if cluster.calico else ():
        tier_use[cp.tier] = tier_use.get(cp.tier, 0) + 1
        calico_names.add(_calico_name(cp))
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
        {p.key for p in cluster.pods},
        auto,
        passed,
        len(drafts.workloads),
        [n.name for n in cluster.nodes if n.schedulable],
    )


def _path(key: str, node: Node, ip: int) -> tuple[int, ...] | None:
    """The addresses the join passed over before giving ``ip`` to pod ``key`` on ``node``
    (None when ``ip`` is not one it could give)."""
    path: list[int] = []
    for candidate in ipam.candidates(key, node.pod_cidr):
        if candidate == ip:
            return tuple(path)
        path.append(candidate)
    return None


def _placed(d: PodDraft, nodes: dict[str, Node]) -> bool:
    """A pod on a defined node, of one family (its address given, or chosen by the join
    from its node's one podCIDR)."""
    t = d.template
    if t.node is None or t.node not in nodes:
        return False
    node = nodes[t.node]
    # dual stack: the full load checks the other family's addresses
    if t.host_network:
        return not node.other_ips
    return not (t.other_ips or (t.ip is None and node.other_pod_cidrs))


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
    if len(made) != 1 or made[0][0] not in _PATCHED or len(made[0][1]) != 1:
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
    joined = _joins(cache, base, olds, news)
    if joined is None:
        return None
    try:
        return _apply(cache, base, olds, news, *joined)
    except BaseException:
        cache.base = None  # half applied: the next load is a full one
        raise


@dataclass(slots=True)
class _Pods:
    """What a patch does to the pods: the ones that go, the ones that come."""

    gone: list[Pod]
    new: list[tuple[Pod, tuple[int, ...] | None]]
    """Each new pod with the addresses it passed over (None: it was given its address,
    or is hostNetwork)."""


def _joins(
    cache: PartCache,
    base: Base,
    olds: list[tuple[object, _Item]],
    news: list[tuple[object, _Part, _Item]],
) -> tuple[dict[str, Node], _Pods] | None:
    """The checks the join would make, on the state after every change: the nodes and
    pods after them, or None when one would report a problem (the full load reports it)
    or move a pod that did not change."""
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
    if nodes is not base.nodes:
        if base.workloads or base.auto or any(_chosen(i) for _, _, i in news):
            return None  # pods placed or addressed by the join: re-placed whole
        if not _nodes_keep(base, nodes, olds, gone_pods):
            return None
    pods = _pods_after(base, olds, news, nodes)
    if pods is None:
        return None
    for _, _, (f, item) in news:
        if f == "calico.host_endpoints" and nodes and item.node not in nodes:
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
    return nodes, pods


def _pods_after(
    base: Base,
    olds: list[tuple[object, _Item]],
    news: list[tuple[object, _Part, _Item]],
    nodes: dict[str, Node],
) -> _Pods | None:
    """The pods that go and come, as the join would make them (``_build``: given addresses
    first, then the others in name order, each the first free one of its candidates);
    None when the join would report a problem or give a pod that did not change another
    node or address.

    That holds when no pod that stays passed over an address that is freed, and each
    chosen address is the one the join gives: the addresses passed over before it are
    taken by what the join placed first (a node, a given address, a pod that sorts
    before). A freed address nobody passed over, or a new one nobody passed over (it
    was free), changes no other pod's address.
    """
    schedulable = base.schedulable
    gone_keys: set[str] = set()
    for _, (f, item) in olds:
        if f == "pods":
            gone_keys.add(f"{item.namespace}/{item.name}")
        elif f == "workloads":
            gone_keys.update(f"{d.namespace}/{d.name}" for d in workloads.expand(item, schedulable))
    given: list[PodDraft] = []
    chosen: list[PodDraft] = []
    for _, _, (f, item) in news:
        if f == "pods":
            (chosen if _chosen((f, item)) else given).append(item)
        elif f == "workloads":
            if item.template.ip is not None:
                return None
            chosen += workloads.expand(item, schedulable)
    # An address a new Pod is given is taken before the join chooses any (a pod's
    # relabelling keeps it): only the others are freed.
    kept = {
        int(d.template.ip)
        for d in given
        if d.template.ip is not None and not d.template.host_network
    }
    gone = [_find(base.cluster.pods, key) for key in sorted(gone_keys)]
    for p in gone:
        if p.ip is None or p.host_network or int(p.ip) in kept:
            continue
        if not base.passed.get(int(p.ip), set()) <= gone_keys:
            return None  # a pod that stays would take the address freed
    keys = base.pod_keys - gone_keys
    for d in (*given, *chosen):
        key = f"{d.namespace}/{d.name}"
        t = d.template
        if key in keys:
            return None  # a pod defined twice (a workload's and another)
        keys.add(key)
        node = nodes.get(t.node or "")
        if node is None or node.other_ips or (t.ip is None and node.other_pod_cidrs):
            return None  # not placed, its node goes, or dual stack
    node_ips = (
        base.node_ips if nodes is base.nodes else {int(ip) for n in nodes.values() for ip in n.ips}
    )
    added: dict[int, str] = {}

    def owner(address: int) -> str | None:
        """Who has ``address`` now: "" a node, else a pod's key; None: free."""
        if address in node_ips:
            return ""
        if address in added:
            return added[address]
        key = base.pod_ips.get(address)
        return None if key is None or key in gone_keys else key

    new: list[tuple[Pod, tuple[int, ...] | None]] = []
    for d in given:
        t = d.template
        node = nodes[t.node or ""]
        if t.host_network:
            new.append((_pod(d, node.name, node.internal_ip), None))
            continue
        assert t.ip is not None
        if owner(int(t.ip)) is not None:
            return None  # an address taken
        added[int(t.ip)] = f"{d.namespace}/{d.name}"
        new.append((_pod(d, node.name, t.ip), None))
    new_auto: set[str] = set()
    for d in sorted(chosen, key=lambda d: (d.namespace, d.name)):
        node = nodes[d.template.node or ""]
        key = f"{d.namespace}/{d.name}"
        if d.template.host_network:
            new.append((_pod(d, node.name, node.internal_ip), None))
            continue
        path: list[int] = []
        for candidate in ipam.candidates(key, node.pod_cidr):
            other = owner(candidate)
            if other is None:
                break
            chose = other in new_auto or (other in base.auto and other not in gone_keys)
            if chose and _after(other, d):
                return None  # the join would give it this one, and move the other
            path.append(candidate)
        else:
            return None  # no address left: the full load reports it
        added[candidate] = key
        new_auto.add(key)
        address = node.pod_cidr.network_address.__class__(candidate)
        new.append((_pod(d, node.name, address), tuple(path)))
    return _Pods(gone, new)


def _chosen(item: _Item) -> bool:
    """Whether a new item is a workload, or a pod whose address the join chooses."""
    f, d = item
    return f == "workloads" or (
        f == "pods" and d.template.ip is None and not d.template.host_network
    )


def _after(key: str, d: PodDraft) -> bool:
    """Whether pod ``key`` (``namespace/name``) sorts after ``d`` in the join's order."""
    namespace, name = key.split("/", 1)
    return (namespace, name) > (d.namespace, d.name)


def _find(pods: Sequence[Pod], key: str) -> Pod:
    """The pod ``namespace/name`` of the sorted ``pods``."""
    namespace, name = key.split("/", 1)
    at = bisect.bisect_left(pods, (namespace, name), key=lambda p: (p.namespace, p.name))
    assert pods[at].key == key
    return pods[at]


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
    pods: _Pods,
) -> Cluster:
    cluster = base.cluster
    cluster_nodes = base.nodes
    lists: dict[str, list[Any]] = {}
    if nodes is not base.nodes:
        base.nodes = nodes
        base.node_ips = {int(ip) for n in nodes.values() for ip in n.ips}
        base.schedulable = [n for n in sorted(nodes) if nodes[n].schedulable]

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
        if f == "workloads":
            base.workloads -= 1
        if f in ("nodes", "pods", "workloads"):
            continue  # the nodes after are made whole (_nodes_after), the pods below
        into, by = items(f), _SLOTS[f]
        want = by(item)
        at = bisect.bisect_left(into, want, key=by)
        assert by(into[at]) == want
        gone = into.pop(at)
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
        if f == "workloads":
            base.workloads += 1
        if f in ("nodes", "pods", "workloads"):
            continue
        if f == "calico.policies":
            base.tier_use[item.tier] = base.tier_use.get(item.tier, 0) + 1
            base.calico_names.add(_calico_name(item))
        into, by = items(f), _SLOTS[f]
        into.insert(bisect.bisect_left(into, by(item), key=by), item)
    if pods.gone or pods.new:
        _apply_pods(base, items("pods"), pods)
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


def _apply_pods(base: Base, into: list[Pod], pods: _Pods) -> None:
    """Take the pods that go out of ``into`` (sorted) and the indexes, put the new ones in."""
    by: _Key = _SLOTS["pods"]
    for p in pods.gone:
        at = bisect.bisect_left(into, by(p), key=by)
        assert into[at] is p
        del into[at]
        base.pod_keys.discard(p.key)
        if p.ip is not None and not p.host_network:
            del base.pod_ips[int(p.ip)]
        for address in base.auto.pop(p.key, ()):
            held = base.passed[address]
            held.discard(p.key)
            if not held:
                del base.passed[address]
    for p, path in pods.new:
        into.insert(bisect.bisect_left(into, by(p), key=by), p)
        base.pod_keys.add(p.key)
        if p.ip is not None and not p.host_network:
            base.pod_ips[int(p.ip)] = p.key
        if path is not None:
            base.auto[p.key] = path
            for address in path:
                base.passed.setdefault(address, set()).add(p.key)


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
