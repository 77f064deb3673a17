"""The node agent: reconcile loop, pacing, health and metrics.

Public surface: :class:`Agent` (``sync_once()``, ``resync()``, ``run(stop_event)``,
``cleanup()``), :class:`SyncSummary`, :func:`cleanup` (every backend),
:class:`AgentMetrics` and :class:`HealthServer`.
"""

from __future__ import annotations

from sekisho.agent.agent import Agent, SyncSummary, cleanup
from sekisho.agent.metrics import AgentMetrics, HealthServer

__all__ = ["Agent", "AgentMetrics", "HealthServer", "SyncSummary", "cleanup"]
