"""Endpoint churn on one node, in process: what a sync of N pod changes costs the agent.

    .venv/bin/python bench/bench_churn.py                          # 250 local pods, 2,000 policies
    .venv/bin/python bench/bench_churn.py --batches 10 50 200 --rounds 8 --backend nftables

Needs root (the rules go into a throwaway namespace ``sk-b-<hex>``). No etcd and no
writers: the generated cluster (``--local-pods`` x 4 pods, ``--policies`` policies;
pods moved onto the busiest node until it has ``--local-pods``) is changed in
memory, ``--batch`` local pods at a time deleted or put back (random, the same
sequence for both runs), and each batch is one sync of the agent's own pieces:
the incremental render (``IncrementalRenderer``), the applier (nftables through
libnftables, as the agent) and the ready file's fingerprint. Per sync it records
the CPU time of this process (``time.process_time``: the kernel's work for our
netlink messages included) and the wall time of render and apply, and how many
blocks the apply changed.

The agent (its applier's delta path on: set elements added and deleted, named
verdict maps, unreferenced sets and chains kept ``LINGER`` seconds) against a
baseline measured in the same run: the same code with the delta path off
(``linger=0``: unreferenced sets and chains deleted at once; ``deltas=False``:
a changed set flushed and refilled). The machine's load average is printed:
CPU times are what to compare on a shared machine. With ``PYTHONPATH`` at an
older tree's ``src`` the same loop measures that code (a tree before the delta
path runs the same code twice); that is how the agent is compared with the tree
before a change, run after run in turn.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generator  # noqa: E402  (bench/ is not a package: loaded from its path)
from bench_agent import netns  # noqa: E402

from sekisho.agent import agent as agent_module  # noqa: E402
from sekisho.agent.agent import IncrementalRenderer, ruleset_fingerprint  # noqa: E402
from sekisho.dataplane import LibnftRunner, NftApplier, SubprocessRunner  # noqa: E402
from sekisho.dataplane.backends import backend as backend_named  # noqa: E402
from sekisho.model import cluster_from_objects  # noqa: E402
from sekisho.model.types import Cluster  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cluster_for(local_pods: int, policies: int) -> tuple[Cluster, str, list[Any]]:
    objs = generator.generate(local_pods * 4, policies=policies, seed=2)
    cluster = cluster_from_objects(objs)
    node = Counter(p.node for p in cluster.pods if p.node and not p.host_network).most_common(1)[0][
        0
    ]
    have = sum(1 for p in cluster.pods if p.node == node and not p.host_network)
    for o in objs:
        if have >= local_pods:
            break
        spec = o.get("spec", {})
        if o["kind"] == "Pod" and spec.get("nodeName") != node and not spec.get("hostNetwork"):
            spec["nodeName"] = node
            have += 1
    cluster = cluster_from_objects(objs)
    local = [p for p in cluster.pods if p.node == node and not p.host_network]
    return cluster, node, local


def run(
    cluster: Cluster,
    node: str,
    local: list[Any],
    *,
    backend: str,
    batch: int,
    rounds: int,
    delta: bool,
) -> list[dict[str, float]]:
    rng = random.Random(batch)
    present = dict.fromkeys((p.key for p in local), True)
    by_key = {p.key: p for p in cluster.pods}
    rows: list[dict[str, float]] = []
    with netns() as ns:
        runner = LibnftRunner(ns) if backend == "nftables" else SubprocessRunner(ns)
        linger = getattr(agent_module, "LINGER", 0.0) if delta else 0.0
        try:
            applier = backend_named(backend).applier(runner, "sekisho", linger=linger)
        except TypeError:  # the code before the delta path (PYTHONPATH=an older tree's src)
            applier = backend_named(backend).applier(runner, "sekisho")
        if isinstance(applier.target, NftApplier):
            applier.target.deltas = delta
        renderer = IncrementalRenderer()
        applier.apply(renderer(cluster, node, backend, "sekisho"))  # type: ignore[arg-type]
        for _ in range(rounds):
            for key in rng.sample(sorted(present), batch):
                present[key] = not present[key]
            pods = tuple(p for p in cluster.pods if present.get(p.key, True))
            now = dataclasses.replace(cluster, pods=pods)
            c0, t0 = time.process_time(), time.perf_counter()
            rs = renderer(now, node, backend, "sekisho")  # type: ignore[arg-type]
            c1, t1 = time.process_time(), time.perf_counter()
            result = applier.apply(rs)
            c2, t2 = time.process_time(), time.perf_counter()
            ruleset_fingerprint(rs)
            c3 = time.process_time()
            rows.append(
                {
                    "cpu": c3 - c0,
                    "render_cpu": c1 - c0,
                    "apply_cpu": c2 - c1,
                    "render": t1 - t0,
                    "apply": t2 - t1,
                    "changes": len(result.changes),
                }
            )
        assert not applier.drift(rs), "the kernel holds the desired ruleset"
        del by_key
    return rows


def summary(rows: list[dict[str, float]]) -> str:
    def ms(k: str) -> str:
        v = [r[k] for r in rows]
        return f"{pct(v, 0.5) * 1000:.1f}/{pct(v, 0.99) * 1000:.1f}"

    changes = pct([r["changes"] for r in rows], 0.5)
    return (
        f"CPU per sync p50/p99 {ms('cpu')} ms (render {ms('render_cpu')}, apply"
        f" {ms('apply_cpu')}); wall render {ms('render')}, apply {ms('apply')} ms;"
        f" blocks changed p50 {changes:.0f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--local-pods", type=int, default=250)
    parser.add_argument("--policies", type=int, default=2000)
    parser.add_argument("--batches", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--backend", choices=["nftables"], default="nftables")
    args = parser.parse_args(argv)
    cluster, node, local = cluster_for(args.local_pods, args.policies)
    print(
        f"== churn in process: {len(local)} local pods on {node} ({len(cluster.pods)} in the"
        f" cluster), {len(cluster.policies)} policies, {args.backend}; load average"
        f" {os.getloadavg()[0]:.1f}"
    )
    for batch in args.batches:
        base = run(
            cluster,
            node,
            local,
            backend=args.backend,
            batch=batch,
            rounds=args.rounds,
            delta=False,
        )
        got = run(
            cluster, node, local, backend=args.backend, batch=batch, rounds=args.rounds, delta=True
        )
        b, g = pct([r["cpu"] for r in base], 0.5), pct([r["cpu"] for r in got], 0.5)
        print(f"  {batch} pod changes a sync:")
        print(f"    baseline (delta path off): {summary(base)}")
        print(f"    the agent (delta path on): {summary(got)}")
        print(
            f"    CPU per sync agent/baseline: {g / b:.2f}x; pod changes per CPU second:"
            f" {batch / g:.0f} (baseline {batch / b:.0f})"
        )
    print(f"  load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
