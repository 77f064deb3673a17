"""The semantics engine alone: ``compute_matrix`` per identity versus ``verdict`` per pair.

    .venv/bin/python bench/bench_semantics.py            # 1,000 pods/100 policies, 10,000 pods/1,000 policies
    .venv/bin/python bench/bench_semantics.py --pods 2000 --policies 200

In-process, after loading (loading is bench_matrix.py's business). For each
cluster it prints: identities; ``compute_matrix`` for one TCP probe at identity
level; the pod-by-pod ``allowed`` table expanded (n x n); the median of
``--repeat`` runs. The baseline, measured in the same run on the same cluster,
is :func:`verdict` called per ordered pod pair (the obvious implementation):
timed on ``--sample`` random pairs and extrapolated to n^2. The ratio is
baseline / matrix. The matrix is also checked against ``verdict`` on the sample.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generator  # noqa: E402  (bench scripts load siblings by path)

from sekisho.model import cluster_from_objects  # noqa: E402
from sekisho.semantics import Flow, compute_matrix, pod_endpoint, verdict  # noqa: E402


def bench(pods: int, policies: int, repeat: int, sample: int, port: int) -> None:
    cluster = cluster_from_objects(generator.generate(pods, policies=policies))
    n = len(cluster.pods)
    ident, full = [], []
    matrix = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        matrix = compute_matrix(cluster, [(port, "TCP")])
        t1 = time.perf_counter()
        matrix.probes[0].allowed  # noqa: B018  (expands the pod-level table)
        t2 = time.perf_counter()
        ident.append(t1 - t0)
        full.append(t2 - t0)
    assert matrix is not None
    rng = random.Random(0)
    pairs = [(rng.randrange(n), rng.randrange(n)) for _ in range(sample)]
    ends = [pod_endpoint(cluster, p) for p in matrix.pods]
    allowed = matrix.probes[0].allowed
    t0 = time.perf_counter()
    disagree = 0
    for i, j in pairs:
        v = verdict(cluster, Flow(ends[i], ends[j], "TCP", port))
        disagree += v.allowed != bool(allowed[i, j])
    per_pair = (time.perf_counter() - t0) / sample
    baseline = per_pair * n * n
    m_ident, m_full = statistics.median(ident), statistics.median(full)
    print(
        f"pods={n:>6} policies={len(cluster.policies):>5} identities={len(matrix.identities):>5} "
        f"| matrix identity-level {m_ident:6.2f}s, with n x n table {m_full:6.2f}s "
        f"| baseline verdict per pair {per_pair * 1e6:6.1f}us x {n * n:,} = {baseline:9.1f}s "
        f"| ratio {baseline / m_full:8.0f}x | disagreements {disagree}/{sample}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, action="append")
    ap.add_argument("--policies", type=int, action="append")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sample", type=int, default=2000)
    ap.add_argument("--port", type=int, default=8080)
    args = ap.parse_args(argv)
    sizes = list(zip(args.pods or [1000, 10000], args.policies or [100, 1000], strict=True))
    for pods, policies in sizes:
        bench(pods, policies, args.repeat, args.sample, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
