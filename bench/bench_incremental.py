"""One pod's labels change in a large cluster: the matrix updated incrementally vs recomputed.

    .venv/bin/python bench/bench_incremental.py                    # 10,000 pods / 1,000 policies
    .venv/bin/python bench/bench_incremental.py --pods 2000 --repeat 20

In-process, after loading. For ``--repeat`` rounds, one pod (a different one each
round) gets a new value for a label that policies select on (``app``: the pod makes
a new identity, whose row and column are computed) and, separately, a change to a
label no selector reads (its identity stays). Each update is timed (median and
p99 of the wall time, median of the CPU time of this thread), and so is the baseline
measured in the same run on the same clusters: a full ``compute_matrix`` of the new
snapshot. Every incremental result is checked equal to the full one. The ratio is
full / incremental. numpy's BLAS threads sleep between calls, as every ``sekisho``
command sets them (``cli/main.py``); otherwise they spin for a while after each full
computation and take the core the next update runs on.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # as the CLI: before numpy loads

import generator  # noqa: E402  (bench scripts load siblings by path)

from sekisho.model import cluster_from_objects  # noqa: E402
from sekisho.semantics import compute_matrix  # noqa: E402
from sekisho.semantics.incremental import IncrementalMatrix  # noqa: E402
from sekisho.semantics.probe import Service  # noqa: E402

PROBES = [Service("TCP", 8080), Service("TCP", 5432), Service("ICMP")]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(pods: int, policies: int, repeat: int) -> None:
    cluster = cluster_from_objects(generator.generate(pods, policies=policies))
    inc = IncrementalMatrix(cluster, PROBES)
    print(
        f"{len(cluster.pods)} pods, {len(cluster.policies)} policies,"
        f" {len(inc.identities)} identities, probes {', '.join(map(str, PROBES))}"
    )
    for kind in ("new identity", "same identity"):
        t_inc: list[float] = []
        t_full: list[float] = []
        cpu_inc: list[float] = []
        for r in range(repeat):
            pods_ = list(cluster.pods)
            i = (r * 7919) % len(pods_)
            labels = dict(pods_[i].labels)
            if kind == "new identity":
                labels["app"] = f"moved-{r}"
            else:
                labels["unread"] = f"v{r}"
            pods_[i] = dataclasses.replace(pods_[i], labels=labels)
            cluster = dataclasses.replace(cluster, pods=tuple(pods_))
            c0 = time.thread_time()
            t0 = time.perf_counter()
            got = inc.update(cluster)
            t1 = time.perf_counter()
            cpu_inc.append(time.thread_time() - c0)
            want = compute_matrix(cluster, PROBES)
            t2 = time.perf_counter()
            t_inc.append(t1 - t0)
            t_full.append(t2 - t1)
            for a, b in zip(got.probes, want.probes, strict=True):
                if (
                    a.pair_total("allowed") != b.pair_total("allowed")
                    or not (a.allowed[i] == b.allowed[i]).all()
                ):
                    raise SystemExit(f"MISMATCH after {kind} change {r}")
        med_i, med_f = statistics.median(t_inc), statistics.median(t_full)
        print(
            f"  {kind:14}: incremental median {1000 * med_i:7.2f} ms p99 {1000 * pct(t_inc, 0.99):7.2f} ms"
            f" (CPU median {1000 * statistics.median(cpu_inc):6.2f} ms)"
            f" | full compute_matrix median {1000 * med_f:7.1f} ms | ratio {med_f / med_i:6.1f}x"
        )
    print(f"  full computations inside the incremental matrix: {inc.full_computations}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--policies", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    run(args.pods, args.policies or args.pods // 10, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
