"""Which pods a policy applies to and which pods a peer selects, cached per identity.

Pods are grouped by identity (namespace + label set): a selector is evaluated
once per identity, never once per pod, and its result is cached by canonical
string. The renderer uses :meth:`SelectorIndex.peer_pods` for IP set members.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from sekisho.model.types import Cluster, LabelSelector, NetworkPolicy, Peer, Pod
from sekisho.selectors.labels import BoolArray, LabelTable


class SelectorIndex:
    """A read-only index over one :class:`Cluster` snapshot."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        groups: dict[tuple[str, tuple[tuple[str, str], ...]], list[Pod]] = {}
        for pod in cluster.pods:
            # hostNetwork pods count as their node: no selector ever selects them.
            if pod.host_network:
                continue
            groups.setdefault((pod.namespace, tuple(sorted(pod.labels.items()))), []).append(pod)
        self._group_keys = list(groups)
        self._group_pods = [tuple(groups[k]) for k in self._group_keys]
        self._labels = LabelTable([dict(labels) for _ns, labels in self._group_keys])
        ns_names = sorted(
            set(cluster.namespaces)
            | {ns for ns, _ in self._group_keys}
            | {p.namespace for p in cluster.policies}
        )
        self._ns_names = ns_names
        self._ns_pos = {name: i for i, name in enumerate(ns_names)}
        self._ns_table = LabelTable([cluster.namespace_labels(n) for n in ns_names])
        self._group_ns = np.asarray(
            [self._ns_pos[ns] for ns, _ in self._group_keys], dtype=np.int64
        )
        self._cache: dict[str, tuple[Pod, ...]] = {}

    def namespaces(self, selector: LabelSelector) -> tuple[str, ...]:
        """Names of the namespaces whose labels match ``selector``."""
        mask = self._ns_table.select(selector)
        return tuple(n for n, hit in zip(self._ns_names, mask, strict=True) if hit)

    def _groups_in(self, namespaces: Iterable[str]) -> BoolArray:
        wanted = np.zeros(len(self._ns_names), dtype=np.bool_)
        for name in namespaces:
            pos = self._ns_pos.get(name)
            if pos is not None:
                wanted[pos] = True
        out: BoolArray = wanted[self._group_ns] if self._group_keys else np.zeros(0, np.bool_)
        return out

    def _pods(self, mask: BoolArray) -> tuple[Pod, ...]:
        pods = [p for hit, group in zip(mask, self._group_pods, strict=True) if hit for p in group]
        pods.sort(key=lambda p: (p.namespace, p.name))
        return tuple(pods)

    def select(
        self,
        namespace_selector: LabelSelector | None,
        pod_selector: LabelSelector | None,
        own_namespace: str,
    ) -> tuple[Pod, ...]:
        """Pods (never hostNetwork ones) matching a selector pair, as a peer or a policy reads it.

        ``namespace_selector`` None means the policy's own namespace; ``pod_selector``
        None means every pod of the selected namespaces.
        """
        ns_key = (
            "ns:" + own_namespace if namespace_selector is None else namespace_selector.canonical()
        )
        pod_key = "all()" if pod_selector is None else pod_selector.canonical()
        key = f"{ns_key} | {pod_key}"
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if namespace_selector is None:
            mask = self._groups_in([own_namespace])
        else:
            mask = self._groups_in(self.namespaces(namespace_selector))
        if pod_selector is not None and len(mask):
            mask = mask & self._labels.select(pod_selector)
        result = self._pods(mask)
        self._cache[key] = result
        return result

    def policy_targets(self, policy: NetworkPolicy) -> tuple[Pod, ...]:
        """The pods ``policy`` applies to: its namespace, its podSelector, never hostNetwork."""
        return self.select(None, policy.pod_selector, policy.namespace)

    def peer_pods(self, policy: NetworkPolicy, peer: Peer) -> tuple[Pod, ...]:
        """The pods a peer of ``policy`` matches.

        A selector peer: the pods it selects (hostNetwork pods never). An ipBlock
        peer: the (non-hostNetwork) pods whose IP the block contains.
        """
        if peer.ip_block is not None:
            block = peer.ip_block
            return tuple(
                p
                for p in self.cluster.pods
                if not p.host_network and p.ip is not None and block.contains(p.ip)
            )
        return self.select(peer.namespace_selector, peer.pod_selector, policy.namespace)
