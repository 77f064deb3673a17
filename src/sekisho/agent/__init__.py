"""The node agent: reconcile loop, pacing, health and metrics.

Public surface: :class:`Agent` (``sync_once()``, ``resync()``, ``run(stop_event)``,
``cleanup()``), :class:`SyncSummary`, :func:`cleanup` (every backend),
:func:`full_renderer` and :func:`ruleset_fingerprint` (what a ready file reports,
so the lab can tell when an agent enforces a given cluster),
:class:`AgentMetrics` and :class:`HealthServer`.
"""

from __future__ import annotations

from sekisho.agent.agent import Agent, SyncSummary, cleanup, full_renderer, ruleset_fingerprint
from sekisho.agent.metrics import AgentMetrics, HealthServer

__all__ = [
    "Agent",
    "AgentMetrics",
    "HealthServer",
    "SyncSummary",
    "cleanup",
    "full_renderer",
    "ruleset_fingerprint",
]
