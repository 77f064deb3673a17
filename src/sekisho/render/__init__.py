"""Per-node dataplane text: iptables + ipset, or one nftables table; and an interpreter for it.

``render_node(cluster, node)`` is the whole ruleset of one node;
:class:`NodeRenderer` keeps it incrementally and says what changed
(:class:`Delta`); :mod:`sekisho.render.interpret` walks a packet through the
rendered TEXT so tests check exactly what the kernel is given.
"""

from __future__ import annotations

from typing import Literal, overload

from sekisho.errors import UsageError
from sekisho.model.types import Cluster
from sekisho.render.backends import (
    BACKEND_NAMES,
    Backend,
    RenderBackend,
    Ruleset,
    render_backend,
    ruleset_digest,
)
from sekisho.render.iptables import (
    IpSetSpec,
    IptablesRuleset,
    normalize_ipset_save,
    normalize_iptables_save,
    render_iptables,
)
from sekisho.render.nftables import NftRuleset, NftSet, normalize_nft, render_nftables
from sekisho.render.node import Delta, NodeRenderer
from sekisho.semantics.program import Program

BACKENDS: tuple[Backend, ...] = BACKEND_NAMES

__all__ = [
    "BACKENDS",
    "Backend",
    "Delta",
    "IpSetSpec",
    "IptablesRuleset",
    "NftRuleset",
    "NftSet",
    "NodeRenderer",
    "RenderBackend",
    "Ruleset",
    "check_node",
    "normalize_ipset_save",
    "normalize_iptables_save",
    "normalize_nft",
    "render_backend",
    "render_iptables",
    "render_nftables",
    "render_node",
    "render_state",
    "ruleset_digest",
]


def check_node(cluster: Cluster, node: str) -> None:
    """Raise :class:`UsageError` naming the cluster's nodes when ``node`` is not one of them."""
    if cluster.node(node) is None and not any(p.node == node for p in cluster.pods):
        known = ", ".join(sorted(n.name for n in cluster.nodes)) or "(none)"
        raise UsageError(f"node {node!r} is not in the cluster; expected one of: {known}")


@overload
def render_node(
    cluster: Cluster,
    node: str,
    *,
    backend: Literal["iptables"] = ...,
    prefix: str = ...,
    program: Program | None = ...,
    log_group: int | None = ...,
) -> IptablesRuleset: ...
@overload
def render_node(
    cluster: Cluster,
    node: str,
    *,
    backend: Literal["nftables"],
    prefix: str = ...,
    program: Program | None = ...,
    log_group: int | None = ...,
) -> NftRuleset: ...
@overload
def render_node(
    cluster: Cluster,
    node: str,
    *,
    backend: Backend = ...,
    prefix: str = ...,
    program: Program | None = ...,
    log_group: int | None = ...,
) -> IptablesRuleset | NftRuleset: ...
def render_node(
    cluster: Cluster,
    node: str,
    *,
    backend: Backend = "iptables",
    prefix: str = "sekisho",
    program: Program | None = None,
    log_group: int | None = None,
) -> IptablesRuleset | NftRuleset:
    """The whole ruleset of ``node`` for ``backend``; deterministic for a given cluster.

    ``program``: render this program instead of the cluster's own (tests).
    ``log_group``: Log rules write to this nfnetlink_log group (None: the kernel log)."""
    check_node(cluster, node)
    spell = render_backend(backend)
    r = NodeRenderer(node, prefix=prefix, log_group=log_group)
    r.update(cluster, program=program)
    return spell.render(r)


def render_state(r: NodeRenderer, backend: Backend = "iptables") -> IptablesRuleset | NftRuleset:
    """The ruleset of a kept :class:`NodeRenderer` (after ``r.update(cluster)``).

    An agent keeps one renderer per node: ``update`` costs well under a millisecond
    for one pod's change and unchanged sets and chains come from its text cache, so
    the whole ruleset is produced again in a few milliseconds instead of a full render.
    """
    return render_backend(backend).render(r)
