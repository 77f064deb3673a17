"""Prometheus metrics on an agent-owned registry, and the /healthz, /readyz, /metrics server."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)

__all__ = ["AgentMetrics", "HealthServer"]


class AgentMetrics:
    """Every metric the agent exports, on its own registry (never the global one)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.apply_seconds = Histogram(
            "sekisho_agent_apply_seconds",
            "Time to load, render and apply one change.",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.policies = Gauge(
            "sekisho_agent_policies", "Policies in the applied cluster.", registry=r
        )
        self.endpoints = Gauge(
            "sekisho_agent_endpoints", "Local pod endpoints on this node.", registry=r
        )
        self.rules = Gauge("sekisho_agent_rules", "Rules (iptables) in our chains.", registry=r)
        self.sets = Gauge("sekisho_agent_sets", "IP sets of ours.", registry=r)
        self.errors = Counter(
            "sekisho_agent_errors",
            "Errors, by stage (load, render, apply, resync).",
            ["stage"],
            registry=r,
        )
        self.repairs = Counter(
            "sekisho_agent_repairs", "Drifted objects repaired by resync.", registry=r
        )
        self.last_good_apply = Gauge(
            "sekisho_agent_last_good_apply_timestamp_seconds",
            "Unix time of the last successful apply.",
            registry=r,
        )
        self.degraded = Gauge(
            "sekisho_agent_degraded", "1 while the last load or apply failed, else 0.", registry=r
        )
        self.generation = Gauge(
            "sekisho_agent_generation", "Successful syncs since start.", registry=r
        )
        self.store_up = Gauge(
            "sekisho_agent_store_up",
            "1 while the agent is in step with the store (etcd), 0 while it is not "
            "(the last good state keeps enforcing).",
            registry=r,
        )
        self.store_revision = Gauge(
            "sekisho_agent_store_revision", "The store revision last seen.", registry=r
        )
        self.store_events = Counter(
            "sekisho_agent_store_events", "Watch events received from the store.", registry=r
        )
        self.store_relists = Counter(
            "sekisho_agent_store_relists",
            "Full lists of the store, by reason (start, compacted, reconnect, error).",
            ["reason"],
            registry=r,
        )

    # The store's observer (sekisho.sources.etcd.StoreObserver).

    def store_connected(self, up: bool) -> None:
        self.store_up.set(1 if up else 0)

    def store_revision_seen(self, revision: int) -> None:
        self.store_revision.set(revision)

    def store_events_seen(self, count: int) -> None:
        self.store_events.inc(count)

    def store_relist(self, reason: str) -> None:
        self.store_relists.labels(reason).inc()

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample's current value (0 when absent), for tests and the CLI."""
        got = self.registry.get_sample_value(name, labels or {})
        return float(got) if got is not None else 0.0

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))


HealthProbe = Callable[[], tuple[bool, str]]


class HealthServer:
    """Serves ``/metrics``, ``/healthz`` and ``/readyz`` from a daemon thread."""

    def __init__(
        self,
        metrics: AgentMetrics,
        live: HealthProbe,
        ready: HealthProbe,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, outer.metrics.exposition(), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/readyz"):
                    ok, reason = (outer.live if path == "/healthz" else outer.ready)()
                    body = ("ok" if ok else "not ok") + (f": {reason}" if reason else "") + "\n"
                    self._send(200 if ok else 503, body.encode(), "text/plain; charset=utf-8")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http: " + format, *args)

        self.metrics = metrics
        self.live = live
        self.ready = ready
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
