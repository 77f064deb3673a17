"""Raw manifests in, a validated :class:`~sekisho.model.types.Cluster` out.

Public surface: the types in :mod:`sekisho.model.types` and the loader functions
:func:`load_cluster` (raises :class:`~sekisho.errors.ManifestError` with every
problem) and :func:`load_paths` (returns the cluster or the problems); for callers
that cache parsed files, :func:`read_paths` (parse only) and :func:`load_read`
(validate and join what was read).
"""

from __future__ import annotations

from sekisho.model.ipam import NODE_NETWORK
from sekisho.model.load import (
    LoadResult,
    cluster_from_objects,
    load_cluster,
    load_paths,
    load_read,
)
from sekisho.model.reader import ReadResult, read_paths
from sekisho.model.types import (
    DEFAULT_CLUSTER_CIDR,
    Cluster,
    ContainerPort,
    IPBlock,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Node,
    Peer,
    Pod,
    PolicyPort,
    Requirement,
    Rule,
    Source,
    endpoint_interface,
)

__all__ = [
    "DEFAULT_CLUSTER_CIDR",
    "NODE_NETWORK",
    "Cluster",
    "ContainerPort",
    "IPBlock",
    "LabelSelector",
    "LoadResult",
    "Namespace",
    "NetworkPolicy",
    "Node",
    "Peer",
    "Pod",
    "PolicyPort",
    "ReadResult",
    "Requirement",
    "Rule",
    "Source",
    "cluster_from_objects",
    "endpoint_interface",
    "load_cluster",
    "load_paths",
    "load_read",
    "read_paths",
]
