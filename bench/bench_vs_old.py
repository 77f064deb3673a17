"""``compute_matrix`` (or a node's render) in process, this tree against an older tree, paired.

    .venv/bin/python bench/bench_vs_old.py --old /tmp/old84/src [--pairs 7] DIR [DIR ...]
    .venv/bin/python bench/bench_vs_old.py --old /tmp/old84/src --what render DIR [DIR ...]

The old tree is a source export (``git archive 84f9fce src | tar -x -C /tmp/old84``);
both run with this virtualenv's interpreter and libraries. For each cluster
directory, child processes run in turn, new then old, ``--pairs`` times: each
loads the cluster with its own tree's loader (not timed), then times one call of
``compute_matrix(cluster, default_probes(cluster))`` (process CPU seconds, BLAS
threads included, and wall seconds), the first call as the CLI makes it. On a
machine other work keeps busy, OpenBLAS's threads spin while they wait for a core
and that CPU time counts too: ``--blas-threads 1`` measures both trees' own work
without it. The
ratio new/old is taken pair by pair, so a machine whose load drifts during the
run still gives a meaningful median; min and max show the spread. The children
also report every probe's allowed pair total, and the run fails if the two
trees disagree.

``--what render``: each child instead times a full render of the node with the most
local pods (a fresh ``NodeRenderer(node).update(cluster)``, then ``render_iptables``:
state and text), as the agent's first sync does, and reports the sizes (the trees name
and lay out sets and chains differently, so the texts are not compared). ``--new`` runs
another tree's ``src`` as "new" (default: this one's), e.g. a ``git archive`` of an
earlier commit, for before/after figures of one change.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
from sekisho.model import load_cluster
from sekisho.semantics import compute_matrix, default_probes
cluster = load_cluster([sys.argv[1]])
probes = default_probes(cluster)
c0, w0 = time.process_time(), time.perf_counter()
m = compute_matrix(cluster, probes)
cpu, wall = time.process_time() - c0, time.perf_counter() - w0
print(json.dumps({
    "cpu": cpu, "wall": wall, "identities": len(m.identities),
    "allowed": [p.pair_total("allowed") for p in m.probes],
}))
"""


RENDER_CHILD = r"""
import collections, json, sys, time
from sekisho.model import load_cluster
from sekisho.render import NodeRenderer, render_iptables
cluster = load_cluster([sys.argv[1]])
local = collections.Counter(p.node for p in cluster.pods if not p.host_network and p.node)
node = min(n for n, c in local.items() if c == max(local.values()))
c0, w0 = time.process_time(), time.perf_counter()
r = NodeRenderer(node)
r.update(cluster)
c1 = time.process_time()
text = render_iptables(r)
cpu, wall = time.process_time() - c0, time.perf_counter() - w0
print(json.dumps({
    "cpu": cpu, "wall": wall, "state": c1 - c0, "identities": node,
    "allowed": [len(r.endpoints)], "sizes": [len(text.sets), len(r.chains)],
}))
"""


def _run(path: str, src: str, blas_threads: int | None, what: str) -> dict[str, object]:
    env = dict(os.environ)
    if blas_threads is not None:
        env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(blas_threads)
    env["PYTHONPATH"] = src
    child = CHILD if what == "matrix" else RENDER_CHILD
    out = subprocess.run(
        [sys.executable, "-c", child, path], env=env, capture_output=True, text=True, check=True
    )
    doc: dict[str, object] = json.loads(out.stdout)
    return doc


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} (min {min(values):.3f}, max {max(values):.3f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="the old tree's src directory")
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="OPENBLAS_NUM_THREADS for both (default: the library's own, one per core)",
    )
    ap.add_argument(
        "--new", default=str(ROOT / "src"), help="the new tree's src (default: this one)"
    )
    ap.add_argument("--what", choices=("matrix", "render"), default="matrix")
    ap.add_argument("dirs", nargs="+")
    args = ap.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", args.old, args.new], check=True)
    status = 0
    for path in args.dirs:
        new_cpu: list[float] = []
        old_cpu: list[float] = []
        cpu_ratio: list[float] = []
        wall_ratio: list[float] = []
        first = None
        for _ in range(args.pairs):
            a = _run(path, args.new, args.blas_threads, args.what)
            b = _run(path, args.old, args.blas_threads, args.what)
            if a["allowed"] != b["allowed"]:
                print(f"{path}: the trees disagree: {a['allowed']} vs {b['allowed']}")
                status = 1
            first = first or a
            na, nb = float(a["cpu"]), float(b["cpu"])  # type: ignore[arg-type]
            new_cpu.append(na)
            old_cpu.append(nb)
            cpu_ratio.append(na / nb)
            wall_ratio.append(float(a["wall"]) / float(b["wall"]))  # type: ignore[arg-type]
        assert first is not None
        if args.what == "render":
            head = (
                f"{path}: node {first['identities']}, {first['allowed'][0]} endpoints"  # type: ignore[index]
                f", new: {first['sizes'][0]} sets, {first['sizes'][1]} policy chains"  # type: ignore[index]
            )
        else:
            head = f"{path}: {first['identities']} identities, {len(first['allowed'])} probes"  # type: ignore[arg-type]
        print(
            f"{head}, {args.pairs} pairs\n"
            f"  new cpu s {_spread(new_cpu)}\n"
            f"  old cpu s {_spread(old_cpu)}\n"
            f"  new/old cpu  {_spread(cpu_ratio)}\n"
            f"  new/old wall {_spread(wall_ratio)}"
        )
    return status


if __name__ == "__main__":
    raise SystemExit(main())
