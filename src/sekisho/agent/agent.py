r"""The reconcile loop: watch a source, render this node's ruleset, apply it, keep it right.

::

    source (files, inotify) --change--> load --> render --> applier.apply (one transaction)
                                                      \--> ready file, metrics, logs
    timer (every ``resync`` seconds) ----------------------> applier.resync (read back, repair)

Rules outlive the agent (as Calico's do): stopping it leaves enforcement in
place; ``cleanup()`` removes what we own. A manifest that does not validate
never changes the dataplane: the last good state keeps enforcing and the agent
reports itself degraded until a good load.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sekisho.agent.metrics import AgentMetrics
from sekisho.dataplane import (
    ApplyResult,
    CommandRunner,
    LibnftRunner,
    SubprocessRunner,
)
from sekisho.dataplane.backends import Applier
from sekisho.dataplane.backends import backend as backend_named
from sekisho.errors import DataplaneError, ManifestError, SekishoError, StoreError, ToolMissing
from sekisho.model.types import Cluster
from sekisho.render import NodeRenderer, Ruleset, check_node, render_node, ruleset_digest
from sekisho.render.backends import BACKEND_NAMES
from sekisho.sources import DirWatcher, FileSource
from sekisho.sources.etcd import EtcdSource
from sekisho.sources.files import DEBOUNCE

log = logging.getLogger(__name__)

__all__ = [
    "Agent",
    "Backend",
    "IncrementalRenderer",
    "SyncSummary",
    "cleanup",
    "ruleset_fingerprint",
]

Backend = Literal["iptables", "nftables"]
BACKENDS: tuple[Backend, ...] = BACKEND_NAMES

Renderer = Callable[[Cluster, str, Backend, str], Ruleset]
"""(cluster, node, backend, prefix) -> the node's ruleset for that backend."""

Status = Literal["applied", "unchanged", "invalid", "failed", "idle"]


def full_renderer(
    cluster: Cluster, node: str, backend: Backend, prefix: str, *, log_group: int | None = None
) -> Ruleset:
    """``sekisho.render.render_node``: everything from scratch."""
    return render_node(cluster, node, backend=backend, prefix=prefix, log_group=log_group)


class IncrementalRenderer:
    """Keeps one :class:`~sekisho.render.NodeRenderer` and moves it to each new cluster.

    Only what a change can affect is recomputed; the agent checks the result
    against a full render on every resync.
    """

    def __init__(self, *, log_group: int | None = None) -> None:
        self._r: NodeRenderer | None = None
        self._key: tuple[str, str] | None = None
        self.log_group = log_group
        """Log rules write to this nfnetlink_log group (None: the kernel log)."""

    def __call__(self, cluster: Cluster, node: str, backend: Backend, prefix: str) -> Ruleset:
        check_node(cluster, node)
        if self._r is None or self._key != (node, prefix):
            self._r = NodeRenderer(node, prefix=prefix, log_group=self.log_group)
            self._key = (node, prefix)
        try:
            self._r.update(cluster)
            return backend_named(backend).spelling.render(self._r)
        except SekishoError:
            self._r = None  # unknown state: start from scratch next time
            raise
        except Exception:
            log.exception("incremental render failed; rendering from scratch")
            self._r = None
            return full_renderer(cluster, node, backend, prefix, log_group=self.log_group)

    def reset(self) -> None:
        self._r = None


@dataclass(frozen=True, slots=True)
class SyncSummary:
    """What one :meth:`Agent.sync_once` or :meth:`Agent.resync` did."""

    status: Status
    """``applied`` (something changed), ``unchanged``, ``invalid`` (load failed: nothing
    applied), ``failed`` (render or apply failed: nothing applied), ``idle`` (resync with
    nothing applied yet)."""
    generation: int
    """Successful syncs so far (the ready file carries it)."""
    changes: tuple[str, ...] = ()
    error: str | None = None
    duration: float = 0.0
    policies: int = 0
    endpoints: int = 0
    rules: int = 0
    sets: int = 0
    fingerprint: str = ""
    """Hash of the desired ruleset now enforced."""
    stages: tuple[tuple[str, float], ...] = ()
    """Seconds spent in each stage (load, render, apply)."""

    def to_json(self) -> dict[str, object]:
        return {
            "status": self.status,
            "generation": self.generation,
            "changes": list(self.changes),
            "error": self.error,
            "duration": round(self.duration, 6),
            "policies": self.policies,
            "endpoints": self.endpoints,
            "rules": self.rules,
            "sets": self.sets,
            "fingerprint": self.fingerprint,
            "stages": {k: round(v, 6) for k, v in self.stages},
        }


def ruleset_fingerprint(ruleset: Ruleset) -> str:
    """A stable hash of a rendered ruleset: equal in every process for equal rulesets.

    The ready file carries it, so a watcher (the lab) can render the same cluster
    itself and wait for exactly that ruleset (:func:`sekisho.render.ruleset_digest`).
    """
    return ruleset_digest(ruleset)


LINGER = 10.0
"""Seconds a set or chain no rule refers to any more stays installed before the agent
deletes it (nftables): endpoint churn that brings it back finds it there."""


def _make_applier(
    backend: Backend, runner: CommandRunner, prefix: str, linger: float = 0.0
) -> Applier:
    return backend_named(backend).applier(runner, prefix, linger=linger)


@dataclass(slots=True)
class _Health:
    state: tuple[bool, str] = (False, "no good apply yet")
    """(ready, why not): one value, so a reader on another thread (/readyz) never sees
    one sync's flag with another's reason."""
    last_tick: float = 0.0


def settle_heap() -> None:
    """Collect, then move every object left to the collector's permanent generation.

    The agent's heap is mostly long-lived (the cluster, the renderer's state, the
    applier's cache: a million objects at 1,000 pods and 2,000 policies), and the
    collector's full collections walk all of it: under endpoint churn one took 0.3 to
    1 s of a sync (``bench/README.md``). Frozen objects are still freed when their last
    reference goes; only a cycle among them waits for the next call (after the first
    sync, then after every resync), which thaws, collects and freezes again.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class Agent:
    """One node's enforcer. Inject ``runner``, ``clock``, ``sleep`` and ``renderer`` in tests."""

    def __init__(
        self,
        *,
        node: str,
        source: str | Path | FileSource | EtcdSource,
        netns: str | None = None,
        backend: Backend = "iptables",
        prefix: str = "sekisho",
        runner: CommandRunner | None = None,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        resync: float = 10.0,
        ready_file: str | Path | None = None,
        metrics: AgentMetrics | None = None,
        renderer: Renderer | None = None,
        retry: float = 1.0,
        debounce: float = DEBOUNCE,
        log_group: int | None = None,
        linger: float = LINGER,
    ) -> None:
        self.node = node
        self.log_group = log_group
        """Log rules write to this nfnetlink_log group (None: the kernel log)."""
        self.source = source if isinstance(source, FileSource | EtcdSource) else FileSource(source)
        self.netns = netns
        self.backend: Backend = backend
        self.prefix = prefix
        self.runner: CommandRunner = runner or LibnftRunner(netns)
        self.clock = clock
        self.wallclock = wallclock
        self.sleep = sleep
        self.resync_interval = resync
        self.retry_interval = retry
        self.debounce = debounce
        self.ready_file = Path(ready_file) if ready_file else None
        self.metrics = metrics or AgentMetrics()
        self.renderer: Renderer = renderer or IncrementalRenderer(log_group=log_group)
        self.applier = _make_applier(backend, self.runner, prefix, linger)
        self.generation = 0
        self.desired: Ruleset | None = None
        """The ruleset now enforced (None before the first good apply)."""
        self.cluster: Cluster | None = None
        """The cluster it was rendered from."""
        self._health = _Health()
        self._retry_at: float | None = None
        self._failures = 0
        """Failed attempts in a row; the retry delay doubles with each (up to ``resync``)."""
        self._lock = threading.Lock()
        self.stats: dict[str, int] = {}

    # ---- health ----------------------------------------------------------------------

    def live(self) -> tuple[bool, str]:
        """/healthz: the loop is alive (it ticked recently)."""
        h = self._health
        if not h.last_tick:
            return True, "starting"
        stale = self.clock() - h.last_tick
        limit = max(30.0, 3 * self.resync_interval)
        return (stale < limit, "" if stale < limit else f"loop stalled for {stale:.0f}s")

    def ready(self) -> tuple[bool, str]:
        """/readyz: the first good apply happened, the last load and apply were good, and the
        store (etcd) is in step; otherwise why not (the last good state keeps enforcing)."""
        ok, reason = self._health.state
        if isinstance(self.source, EtcdSource):
            up, why = self.source.health()
            if not up:
                ok, reason = False, why
        if not ok and self.desired is not None:
            reason += f"; enforcing the last good state (generation {self.generation})"
        return ok, reason

    def _degrade(self, reason: str) -> None:
        self.metrics.degraded.set(1)
        self._health.state = (False, reason)

    # ---- one pass --------------------------------------------------------------------

    def sync_once(self) -> SyncSummary:
        """Load the source, render this node, diff and apply; never apply part of a change."""
        with self._lock:
            return self._sync()

    def _sync(self) -> SyncSummary:
        t0 = self.clock()
        try:
            cluster = self.source.load()
        except ManifestError as exc:
            for problem in exc.problems:
                log.error("invalid manifest: %s", problem, extra={"fields": problem.to_json()})
            return self._fail("load", f"invalid manifests: {exc}", "invalid", t0)
        except StoreError as exc:
            log.error("store: %s", exc)
            return self._fail("store", str(exc), "invalid", t0)
        except (SekishoError, OSError) as exc:
            log.error("cannot load %s: %s", self.source.root, exc)
            return self._fail("load", f"cannot load {self.source.root}: {exc}", "invalid", t0)
        if self.node and cluster.node(self.node) is None:
            log.warning("node %s is not in the cluster; rendering no local endpoints", self.node)
        t_load = self.clock()
        try:
            desired = self.renderer(cluster, self.node, self.backend, self.prefix)
        except SekishoError as exc:
            log.error("cannot render node %s: %s", self.node, exc)
            return self._fail("render", f"render failed: {exc}", "failed", t0)
        t_render = self.clock()
        try:
            result = self.applier.apply(desired)
        except DataplaneError as exc:
            log.error("apply failed (last good state stays): %s", exc)
            self._schedule_retry()
            return self._fail("apply", f"apply failed: {exc}", "failed", t0)
        self._retry_at = None
        self._failures = 0
        stages = (
            ("load", t_load - t0),
            ("render", t_render - t_load),
            ("apply", self.clock() - t_render),
        )
        return self._good(cluster, desired, result, t0, stages)

    def _fail(self, stage: str, reason: str, status: Status, t0: float) -> SyncSummary:
        self.metrics.errors.labels(stage).inc()
        self._degrade(reason)
        return SyncSummary(status, self.generation, error=reason, duration=self.clock() - t0)

    def _good(
        self,
        cluster: Cluster,
        desired: Ruleset,
        result: ApplyResult,
        t0: float,
        stages: tuple[tuple[str, float], ...] = (),
    ) -> SyncSummary:
        duration = self.clock() - t0
        # the generation is published last: whoever sees it move sees this sync's metrics
        generation = self.generation + 1
        m = self.metrics
        m.degraded.set(0)
        m.apply_seconds.observe(duration)
        m.last_good_apply.set(self.wallclock())
        m.generation.set(generation)
        endpoints = sum(1 for p in cluster.pods if p.node == self.node and not p.host_network)
        rules = sum(len(chain[-1]) for chain in desired.chains)
        # iptables' raw and mangle tables (doNotTrack, preDNAT); nft has them in its chains
        rules += sum(len(c[-1]) for t in getattr(desired, "tables", ()) for c in t[1])
        sets = len(desired.sets)
        m.policies.set(len(cluster.policies))
        m.endpoints.set(endpoints)
        m.rules.set(rules)
        m.sets.set(sets)
        # then the state: whoever sees the new cluster (or readiness) sees these figures
        self.desired = desired
        self.cluster = cluster
        self._health.state = (True, "")
        summary = SyncSummary(
            "applied" if result.changed else "unchanged",
            generation,
            result.changes,
            None,
            duration,
            len(cluster.policies),
            endpoints,
            rules,
            sets,
            ruleset_fingerprint(desired),
            stages,
        )
        fields = {k: v for k, v in summary.to_json().items() if k != "changes"}
        fields["changed"] = len(result.changes)
        if result.changed:
            log.info("applied %d change(s)", len(result.changes), extra={"fields": fields})
            for change in result.changes:
                log.debug("  %s", change)
        else:
            log.info("in sync, nothing to change", extra={"fields": fields})
        self._write_ready(summary)
        self.generation = generation
        return summary

    def _write_ready(self, summary: SyncSummary) -> None:
        if self.ready_file is None:
            return
        body = {
            "node": self.node,
            "backend": self.backend,
            "generation": summary.generation,
            "fingerprint": summary.fingerprint,
            "time": self.wallclock(),
        }
        if isinstance(self.source, EtcdSource):
            # The store revision this ruleset was rendered from: a watcher that wrote at
            # revision R knows the agent will never again apply a state older than R.
            body["revision"] = self.source.loaded_revision
        tmp = self.ready_file.with_name(f".{self.ready_file.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(body) + "\n")
            os.replace(tmp, self.ready_file)
        except OSError as exc:
            log.error("cannot write ready file %s: %s", self.ready_file, exc)

    def resync(self) -> SyncSummary:
        """Read back what is installed and repair drift from the last good desired state."""
        with self._lock:
            if self.desired is None:
                return SyncSummary("idle", self.generation)
            t0 = self.clock()
            self._check_incremental()
            try:
                result = self.applier.resync(self.desired)
            except DataplaneError as exc:
                log.error("resync failed: %s", exc)
                self.metrics.errors.labels("resync").inc()
                return SyncSummary("failed", self.generation, error=str(exc))
            if result.changed:
                self.metrics.repairs.inc(len(result.changes))
                for change in result.changes:
                    log.warning("repaired drift: %s", change, extra={"fields": {"repair": change}})
            return SyncSummary(
                "applied" if result.changed else "unchanged",
                self.generation,
                result.changes,
                duration=self.clock() - t0,
                fingerprint=ruleset_fingerprint(self.desired),
            )

    def _check_incremental(self) -> None:
        """An incremental render must equal a full one; if not, log it and use the full one."""
        if not isinstance(self.renderer, IncrementalRenderer) or self.cluster is None:
            return
        try:
            full = full_renderer(
                self.cluster, self.node, self.backend, self.prefix, log_group=self.log_group
            )
        except SekishoError:
            return
        if full != self.desired:
            log.error("incremental render diverged from a full render; using the full one")
            self.metrics.errors.labels("render").inc()
            self.renderer.reset()
            self.desired = full

    # ---- the loop --------------------------------------------------------------------

    def run(self, stop: threading.Event, *, watcher: DirWatcher | None = None) -> None:
        """Sync, then follow changes and resync on the timer until ``stop`` is set.

        Leaves the rules in place when it returns (they keep enforcing).
        """
        own_watcher = watcher is None
        watch: DirWatcher | EtcdSource
        if watcher is not None:
            watch = watcher
        elif isinstance(self.source, EtcdSource):
            watch = self.source.start()
            self.source.synced.wait(self.source.config.timeout)  # the first list, usually
        else:
            watch = DirWatcher(self.source.root, debounce=self.debounce)
        try:
            self._health.last_tick = self.clock()
            self._guarded(self.sync_once)
            settle_heap()
            next_resync = self.clock() + self.resync_interval
            while not stop.is_set():
                now = self.clock()
                self._health.last_tick = now
                wake = next_resync
                if self._retry_at is not None:
                    wake = min(wake, self._retry_at)
                changed = watch.wait(min(0.5, max(0.0, wake - now)))
                if stop.is_set():
                    break
                now = self.clock()
                if changed:
                    log.debug("source changed: %s", ", ".join(changed[:5]))
                    self._guarded(self.sync_once)
                elif self._retry_at is not None and now >= self._retry_at:
                    self._guarded(self.sync_once)
                if self.clock() >= next_resync:
                    if self.source.changed_since_load():  # an inotify event was missed
                        log.warning("source changed without a notification; reloading")
                        self._guarded(self.sync_once)
                    self._guarded(self.resync)
                    settle_heap()
                    next_resync = self.clock() + self.resync_interval
        finally:
            if own_watcher:
                watch.close()
        log.info("stopped; rules stay in place and keep enforcing")

    def _guarded(self, step: Callable[[], SyncSummary]) -> None:
        """Run one step; a bug in it is logged and retried, it never ends the loop."""
        try:
            step()
        except Exception as exc:  # the loop must outlive any one failure
            log.exception("internal error in %s: %s", step.__name__, exc)
            self.metrics.errors.labels("internal").inc()
            self._degrade(f"internal error: {exc}")
            self._schedule_retry()

    def _schedule_retry(self) -> None:
        delay = min(
            self.retry_interval * 2**self._failures, max(self.retry_interval, self.resync_interval)
        )
        self._failures += 1
        self._retry_at = self.clock() + delay
        log.info("retrying in %.1fs", delay)

    def cleanup(self) -> ApplyResult:
        """Remove every object of ours for this agent's backend."""
        with self._lock:
            self.desired = None
            return self.applier.cleanup()


def cleanup(
    *,
    netns: str | None = None,
    prefix: str = "sekisho",
    runner: CommandRunner | None = None,
    backends: tuple[Backend, ...] = BACKENDS,
) -> ApplyResult:
    """Remove every object we own for every backend (a tool that is missing is skipped)."""
    run: CommandRunner = runner or SubprocessRunner(netns)
    changes: list[str] = []
    commands = 0
    for backend in backends:
        try:
            result = _make_applier(backend, run, prefix).cleanup()
        except DataplaneError as exc:
            if isinstance(exc, ToolMissing):
                log.info("%s cleanup skipped: %s", backend, exc)
                continue
            raise
        changes += result.changes
        commands += result.commands
    return ApplyResult(tuple(changes), commands)
