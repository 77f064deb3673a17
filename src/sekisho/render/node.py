"""One node's dataplane state, kept incrementally: :class:`NodeRenderer` and its :class:`Delta`.

A policy's chain depends only on the policy (peers become IP sets named by
their canonical identity), an endpoint's chains only on which policies select
it, and a set's members only on the pods. So when one pod's labels change, only
the sets whose selectors could see that pod and (if the pod is local) its own
endpoint chains are recomputed, and only their text is rendered again.

A node renders only the policies that select at least one of its local pods,
and only the sets those policies use (as Calico's calculation graph does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar, cast

from sekisho.model.types import Cluster, Namespace, NetworkPolicy, Pod, endpoint_interface
from sekisho.render import names
from sekisho.render.compile import (
    DIRECTIONS,
    AllowRule,
    Direction,
    Member,
    SetDef,
    compile_rules,
)


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


_K = TypeVar("_K", bound=_Keyed)
_T = TypeVar("_T")


# ---------------------------------------------------------------------- endpoints


EndpointAction = Literal["replies", "invalid", "clear", "policy", "allowed", "isolated", "open"]
EndpointStep = tuple[EndpointAction, str, str | None]
"""(action, comment, policy key for ``policy``/``allowed``)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A local pod's two chains: which policies run, in order, and whether it is isolated."""

    pod: str
    iface: str
    ingress: tuple[str, ...]
    """Keys of selecting policies that affect ingress, sorted by namespace/name."""
    egress: tuple[str, ...]

    def policies(self, direction: Direction) -> tuple[str, ...]:
        return self.ingress if direction == "ingress" else self.egress

    def steps(self, direction: Direction) -> tuple[EndpointStep, ...]:
        """The decisions of this endpoint's chain in ``direction``, in order, for any backend.

        Replies pass, invalid packets drop, the accept mark is cleared, each selecting
        policy runs and a mark it set returns at once; then drop when isolated, or set
        the mark when not. Each backend only spells these steps (with the comment).
        """
        what = f"endpoint {self.pod} {direction}"
        out: list[EndpointStep] = [
            ("replies", f"{what}: replies and related", None),
            ("invalid", f"{what}: invalid state", None),
            ("clear", f"{what}: clear the accept mark", None),
        ]
        policies = self.policies(direction)
        for pkey in policies:
            out.append(("policy", f"{what}: policy {pkey}", pkey))
            out.append(("allowed", f"{what}: allowed by policy {pkey}", pkey))
        if policies:
            out.append(("isolated", f"{what}: isolated and no rule allowed it", None))
        else:
            out.append(("open", f"{what}: not isolated", None))
        return tuple(out)


@dataclass(slots=True)
class Delta:
    """What changed since the previous render: set and chain names (backend independent)."""

    sets: set[str] = field(default_factory=set)
    """Keys of sets whose members changed or that appeared."""
    removed_sets: set[str] = field(default_factory=set)
    policies: set[tuple[str, Direction]] = field(default_factory=set)
    """(policy key, direction) whose chain changed or appeared."""
    removed_policies: set[tuple[str, Direction]] = field(default_factory=set)
    endpoints: set[str] = field(default_factory=set)
    """Pod keys whose endpoint chains changed or appeared."""
    removed_endpoints: set[str] = field(default_factory=set)
    dispatch: bool = False
    """The set of local endpoints changed (dispatch chains / verdict maps)."""

    @property
    def empty(self) -> bool:
        return not (
            self.sets
            or self.removed_sets
            or self.policies
            or self.removed_policies
            or self.endpoints
            or self.removed_endpoints
            or self.dispatch
        )


class NodeRenderer:
    """One node's desired dataplane, kept up to date incrementally.

    ``update(cluster)`` diffs the new snapshot against the last one (objects that
    are the same Python object are skipped without comparing), recomputes only
    what a change can affect, and returns the :class:`Delta`. The backends read
    the state through the attributes below.
    """

    def __init__(self, node: str, *, prefix: str = "sekisho", iface_prefix: str = "cali") -> None:
        self.node = node
        self.prefix = names.check_prefix(prefix)
        self.iface_prefix = iface_prefix
        self.cluster = Cluster()
        self.pods: dict[str, Pod] = {}
        self.policies: dict[str, NetworkPolicy] = {}
        self._policies_by_ns: dict[str, list[str]] = {}
        self._pods_by_ns: dict[str, dict[str, Pod]] = {}
        self.endpoints: dict[str, Endpoint] = {}
        """Local endpoints by pod key."""
        self.chains: dict[tuple[str, Direction], tuple[AllowRule, ...]] = {}
        """Active policy chains (a policy selecting at least one local pod)."""
        self._chain_sets: dict[tuple[str, Direction], tuple[str, ...]] = {}
        self._policy_refs: dict[str, int] = {}
        self.set_defs: dict[str, SetDef] = {}
        self.members: dict[str, set[Member]] = {}
        self._set_refs: dict[str, int] = {}
        self._sets_by_ns: dict[str, set[str]] = {}
        self._nssel_sets: set[str] = set()
        self._port_sets: dict[tuple[str, str], str] = {}
        self._delta = Delta()
        self.text_cache: dict[tuple[str, ...], dict[str, object]] = {}
        """Rendered text per (kind, key) and backend; entries are dropped when they change."""

    # ---------------------------------------------------------------- public

    def update(self, cluster: Cluster) -> Delta:
        """Move to ``cluster``; return what changed (everything, the first time)."""
        old = self.cluster
        self.cluster = cluster
        ns_changed = self._namespaces_changed(old.namespaces, cluster.namespaces)
        if not self.pods and not self.policies:
            return self._first(cluster)
        changed_pols = _diff(old.policies, cluster.policies)
        pod_changes = _diff(old.pods, cluster.pods)
        for key, _old, new in changed_pols:
            self._policy_changed(key, new)
        if ns_changed:
            for skey in sorted(self._nssel_sets):
                self._recompute_set(skey)
        for key, old_pod, new_pod in pod_changes:
            self._pod_changed(key, old_pod, new_pod)
        if changed_pols:
            touched = {k.split("/", 1)[0] for k, _o, _n in changed_pols}
            for ns in sorted(touched):
                for pod in list(self._pods_by_ns.get(ns, {}).values()):
                    self._refresh_endpoint(pod)
        return self._take_delta()

    def _first(self, cluster: Cluster) -> Delta:
        for pol in cluster.policies:
            self._policy_changed(pol.key, pol)
        for pod in cluster.pods:
            self.pods[pod.key] = pod
            self._pods_by_ns.setdefault(pod.namespace, {})[pod.key] = pod
        for pod in cluster.pods:
            self._refresh_endpoint(pod)
        self._delta.dispatch = True
        return self._take_delta()

    def _take_delta(self) -> Delta:
        delta, self._delta = self._delta, Delta()
        # forget the text of what changed; everything else is reused by the next render
        for key in delta.sets | delta.removed_sets:
            self.text_cache.pop(("set", key), None)
        for ref in delta.policies | delta.removed_policies:
            self.text_cache.pop(("policy", *ref), None)
        for pod in delta.endpoints | delta.removed_endpoints:
            for d in DIRECTIONS:
                self.text_cache.pop(("endpoint", pod, d), None)
        return delta

    def cached(self, backend: str, key: tuple[str, ...], make: Callable[[], _T]) -> _T:
        """Text of one set or chain for ``backend``, computed once until it changes."""
        entry = self.text_cache.setdefault(key, {})
        if backend not in entry:
            entry[backend] = make()
        return cast(_T, entry[backend])

    def notes(self) -> tuple[str, ...]:
        """What this node's rules leave out: IPv6 (the dataplane is IPv4 only)."""
        out: list[str] = []
        for key in sorted(self.endpoints):
            ip = self.pods[key].ip
            if ip is not None and ip.version == 6:
                out.append(f"pod {key} has IPv6 address {ip}: its IPv6 traffic is not policed")
        for pkey, d in sorted(self.chains):
            rules = self.policies[pkey].ingress if d == "ingress" else self.policies[pkey].egress
            for i, rule in enumerate(rules):
                for j, peer in enumerate(rule.peers or ()):
                    if peer.ip_block is not None and peer.ip_block.cidr.version == 6:
                        out.append(
                            f"policy {pkey} {d} rule {i} peer {j}: IPv6 ipBlock "
                            f"{peer.ip_block} not rendered"
                        )
        return tuple(out)

    def set_name(self, key: str) -> str:
        return names.set_name(self.prefix, key)

    def policy_chain(self, key: str, direction: Direction) -> str:
        return names.policy_chain(self.prefix, key, direction)

    def endpoint_chain(self, iface: str, direction: Direction) -> str:
        return names.endpoint_chain(self.prefix, iface, direction)

    # -------------------------------------------------------------- internals

    def _namespaces_changed(self, old: dict[str, Namespace], new: dict[str, Namespace]) -> bool:
        if old is new:
            return False
        if old.keys() != new.keys():
            return True
        return any(old[k] is not new[k] and old[k].labels != new[k].labels for k in new)

    def _ns_labels(self, namespace: str) -> dict[str, str]:
        return self.cluster.namespace_labels(namespace)

    def _is_local(self, pod: Pod) -> bool:
        return pod.node == self.node and not pod.host_network

    def _selects(self, policy: NetworkPolicy, pod: Pod) -> bool:
        # "podSelector selects the grouping of pods to which the policy applies"
        # (pods of the policy's namespace; hostNetwork pods are never selected).
        return (
            pod.namespace == policy.namespace
            and not pod.host_network
            and policy.pod_selector.matches(pod.labels)
        )

    def _pod_changed(self, key: str, old: Pod | None, new: Pod | None) -> None:
        if old is not None:
            del self.pods[key]
            self._pods_by_ns[old.namespace].pop(key, None)
        if new is not None:
            self.pods[key] = new
            self._pods_by_ns.setdefault(new.namespace, {})[key] = new
        candidates: set[str] = set(self._nssel_sets)
        for pod in (old, new):
            if pod is None:
                continue
            candidates |= self._sets_by_ns.get(pod.namespace, set())
            for cp in pod.ports:
                if cp.name is not None:
                    skey = self._port_sets.get((cp.name, cp.protocol))
                    if skey is not None:
                        candidates.add(skey)
        for skey in candidates:
            sd = self.set_defs[skey]
            before = sd.holds(old, self._ns_labels(old.namespace)) if old is not None else ()
            after = sd.holds(new, self._ns_labels(new.namespace)) if new is not None else ()
            if before != after:
                members = self.members[skey]
                for m in before:
                    members.discard(m)
                for m in after:
                    members.add(m)
                self._delta.sets.add(skey)
        if old is not None and self._is_local(old) and (new is None or not self._is_local(new)):
            self._drop_endpoint(key)
        if new is not None and self._is_local(new):
            self._refresh_endpoint(new)

    def _refresh_endpoint(self, pod: Pod) -> None:
        if not self._is_local(pod):
            return
        ingress: list[str] = []
        egress: list[str] = []
        for pkey in self._policies_by_ns.get(pod.namespace, ()):
            pol = self.policies[pkey]
            if self._selects(pol, pod):
                if pol.affects_ingress:
                    ingress.append(pkey)
                if pol.affects_egress:
                    egress.append(pkey)
        ep = Endpoint(
            pod.key,
            endpoint_interface(pod.namespace, pod.name, self.iface_prefix),
            tuple(ingress),
            tuple(egress),
        )
        old = self.endpoints.get(pod.key)
        if old == ep:
            return
        if old is None or old.iface != ep.iface:
            self._delta.dispatch = True
        self.endpoints[pod.key] = ep
        self._delta.endpoints.add(pod.key)
        self._delta.removed_endpoints.discard(pod.key)
        for d in DIRECTIONS:
            for pkey in ep.policies(d):
                self._ref_policy(pkey, d, +1)
            if old is not None:
                for pkey in old.policies(d):
                    self._ref_policy(pkey, d, -1)

    def _drop_endpoint(self, key: str) -> None:
        old = self.endpoints.pop(key, None)
        if old is None:
            return
        self._delta.dispatch = True
        self._delta.endpoints.discard(key)
        self._delta.removed_endpoints.add(key)
        for d in DIRECTIONS:
            for pkey in old.policies(d):
                self._ref_policy(pkey, d, -1)

    def _ref_policy(self, pkey: str, direction: Direction, step: int) -> None:
        ref = (pkey, direction)
        rk = f"{pkey}\0{direction}"
        count = self._policy_refs.get(rk, 0) + step
        if count > 0:
            self._policy_refs[rk] = count
        else:
            self._policy_refs.pop(rk, None)
        if count == 1 and step > 0:
            self._activate(ref)
        elif count == 0:
            self._deactivate(ref)

    def _activate(self, ref: tuple[str, Direction]) -> None:
        rules, sets = compile_rules(self.policies[ref[0]], ref[1])
        self.chains[ref] = rules
        self._chain_sets[ref] = tuple(sorted(sets))
        for sd in sets.values():
            self._acquire_set(sd)
        self._delta.policies.add(ref)
        self._delta.removed_policies.discard(ref)

    def _deactivate(self, ref: tuple[str, Direction]) -> None:
        if ref not in self.chains:
            return
        del self.chains[ref]
        for skey in self._chain_sets.pop(ref):
            self._release_set(skey)
        self._delta.policies.discard(ref)
        self._delta.removed_policies.add(ref)

    def _acquire_set(self, sd: SetDef) -> None:
        count = self._set_refs.get(sd.key, 0)
        self._set_refs[sd.key] = count + 1
        if count:
            return
        self.set_defs[sd.key] = sd
        if sd.port_name is not None:
            assert sd.protocol is not None
            self._port_sets[(sd.port_name, sd.protocol)] = sd.key
        elif sd.scope_ns is not None:
            self._sets_by_ns.setdefault(sd.scope_ns, set()).add(sd.key)
        elif sd.block is None:
            self._nssel_sets.add(sd.key)
        self._recompute_set(sd.key)
        self._delta.removed_sets.discard(sd.key)

    def _release_set(self, skey: str) -> None:
        count = self._set_refs[skey] - 1
        if count:
            self._set_refs[skey] = count
            return
        del self._set_refs[skey]
        sd = self.set_defs.pop(skey)
        del self.members[skey]
        if sd.port_name is not None:
            assert sd.protocol is not None
            self._port_sets.pop((sd.port_name, sd.protocol), None)
        elif sd.scope_ns is not None:
            self._sets_by_ns[sd.scope_ns].discard(skey)
        else:
            self._nssel_sets.discard(skey)
        self._delta.sets.discard(skey)
        self._delta.removed_sets.add(skey)

    def _recompute_set(self, skey: str) -> None:
        sd = self.set_defs[skey]
        members: set[Member] = set()
        if sd.block is not None:
            members.update(sd.static_members())
        else:
            groups: Iterable[tuple[str, dict[str, Pod]]]
            if sd.scope_ns is not None:
                groups = [(sd.scope_ns, self._pods_by_ns.get(sd.scope_ns, {}))]
            else:
                groups = self._pods_by_ns.items()
            for ns, pods in groups:
                labels = self._ns_labels(ns)
                if sd.ns_selector is not None and not sd.ns_selector.matches(labels):
                    continue
                for pod in pods.values():
                    members.update(sd.holds(pod, labels))
        if self.members.get(skey) != members:
            self.members[skey] = members
            self._delta.sets.add(skey)

    def _policy_changed(self, key: str, new: NetworkPolicy | None) -> None:
        old = self.policies.get(key)
        ns = key.split("/", 1)[0]
        if old is None and new is not None:
            keys = self._policies_by_ns.setdefault(ns, [])
            keys.append(key)
            keys.sort()
        if new is None:
            self.policies.pop(key, None)
            self._policies_by_ns.get(ns, []).remove(key)
            # endpoints refresh (by the caller) drops the references
            return
        self.policies[key] = new
        for d in DIRECTIONS:
            if (key, d) in self.chains:
                # recompile in place; the references from endpoints stay
                for skey in self._chain_sets.pop((key, d)):
                    self._release_set(skey)
                del self.chains[(key, d)]
                self._activate((key, d))


def _diff(old_seq: Sequence[_K], new_seq: Sequence[_K]) -> list[tuple[str, _K | None, _K | None]]:
    """(key, old, new) for objects that differ between two sorted snapshots.

    Same Python object => unchanged without comparing; equal length and keys in
    the same places (the usual case: one object replaced) => one pass, no dicts.
    """
    out: list[tuple[str, _K | None, _K | None]] = []
    if len(old_seq) == len(new_seq):
        for a, b in zip(old_seq, new_seq, strict=True):
            if a is b:
                continue
            if a.key != b.key:
                break
            if a != b:
                out.append((a.key, a, b))
        else:
            return out
        out = []
    old_items = {o.key: o for o in old_seq}
    seen: set[str] = set()
    for b in new_seq:
        seen.add(b.key)
        prev = old_items.get(b.key)
        if prev is b:
            continue
        if prev is None or prev != b:
            out.append((b.key, prev, b))
    out.extend((k, a, None) for k, a in old_items.items() if k not in seen)
    return out
