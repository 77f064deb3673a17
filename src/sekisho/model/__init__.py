"""Raw manifests in, a validated :class:`~sekisho.model.types.Cluster` out.

Public surface: the types in :mod:`sekisho.model.types` and the loader functions
:func:`load_cluster` (raises :class:`~sekisho.errors.ManifestError` with every
problem) and :func:`load_paths` (returns the cluster or the problems).
"""

from __future__ import annotations
