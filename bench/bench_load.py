"""Loading speed: ``load_cluster`` and ``sekisho validate`` against parsing alone.

    .venv/bin/python bench/bench_load.py                 # 10,000 pods, 1,000 policies
    .venv/bin/python bench/bench_load.py --pods 2000 --policies 200 --repeat 5
    .venv/bin/python bench/bench_load.py --profile       # cProfile of one load_cluster

Manifests come from ``bench/generator.py`` (a realistic cluster of Pods,
Namespaces, Nodes and NetworkPolicies) written as multi-document YAML files
(2,000 objects a file) in a temporary directory; ``--json`` also measures the
same cluster written as ``kind: List`` JSON files.

Figures, each the median of ``--repeat`` runs, all measured in this run:

* baseline: ``yaml.load_all(..., Loader=yaml.CSafeLoader)`` (``json.loads`` for
  JSON) over the same files, in process: what parsing costs done the usual way;
* sekisho's reader alone (``sekisho.model.reader.read_paths``): libyaml with
  memoized scalar resolution and a direct constructor (``model/fastyaml.py``),
  with cyclic GC paused while loading, which is why the loader can beat the
  baseline on YAML;
* ``load_cluster``: parse, validate every field, expand, IPAM, in process;
* ``sekisho validate DIR``: the whole command as a child process (interpreter
  start-up, imports, loading, output).

Wall time on a shared machine is noisy, so CPU time (user + system, children
included) is shown too and the ratios use it. The ratios say what validation
and the CLI cost against parsing. Goal: the
whole ``sekisho validate`` under 5 s at 10,000 pods and 1,000 policies.

Measured on the project's shared 2-core machine (09:25 UTC, load average ~4),
YAML: baseline 1.86 s CPU, reader 1.03 s, load_cluster 1.26 s, ``sekisho
validate`` 1.42 s CPU (1.7 s wall); JSON: 0.21, 0.21, 0.46, 0.54 s CPU.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import generator  # noqa: E402  (bench/ is not a package: loaded from its path)

from sekisho.model import load_cluster  # noqa: E402
from sekisho.model.reader import read_paths  # noqa: E402


def _median(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (this process and its children)."""
    walls, cpus = [], []
    for _ in range(repeat):
        gc.collect()
        start, cpu = time.perf_counter(), _cpu()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _parse_only(paths: list[Path]) -> int:
    count = 0
    for path in paths:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            count += len(json.loads(text)["items"])
        else:
            count += sum(1 for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc)
    return count


def _validate_cli(directory: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "sekisho", "validate", str(directory)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def measure(directory: Path, paths: list[Path], repeat: int, label: str) -> None:
    objects = _parse_only(paths)
    cluster = load_cluster([directory])
    print(
        f"\n{label}: {len(paths)} files, {objects} objects -> {len(cluster.pods)} pods, "
        f"{len(cluster.policies)} policies, {len(cluster.nodes)} nodes, "
        f"{sum(p.stat().st_size for p in paths) / 1e6:.1f} MB"
    )
    base = _median(lambda: _parse_only(paths), repeat)
    read = _median(lambda: read_paths([directory]), repeat)
    load = _median(lambda: load_cluster([directory]), repeat)
    cli = _median(lambda: _validate_cli(directory), repeat)
    rows = [
        ("baseline: yaml.load_all(CSafeLoader) / json", base),
        ("sekisho reader only (parse, no checks)", read),
        ("load_cluster (parse + validate + IPAM)", load),
        ("sekisho validate DIR (child process)", cli),
    ]
    print(f"  {'':<44} {'wall':>8}   {'CPU':>8}   CPU vs baseline")
    for name, (wall, cpu) in rows:
        print(f"  {name:<44} {wall:7.3f}s   {cpu:7.3f}s   {cpu / base[1]:5.2f}x")
    extra = load[1] - read[1]
    print(
        f"  validation, workloads and IPAM on top of sekisho's parse: {extra:.3f} s CPU "
        f"({extra / objects * 1e6:.0f} us/object)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--policies", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="also measure kind: List JSON files")
    parser.add_argument("--profile", action="store_true", help="cProfile one load_cluster")
    args = parser.parse_args(argv)

    objects = generator.generate(args.pods, policies=args.policies)
    with tempfile.TemporaryDirectory(prefix="sekisho-bench-load-") as tmp:
        ydir = Path(tmp) / "yaml"
        ypaths = generator.write(objects, ydir, fmt="yaml")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            load_cluster([ydir])
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
            return 0
        print(f"bench_load: {args.pods} pods, {args.policies} policies, median of {args.repeat}")
        measure(ydir, ypaths, args.repeat, "YAML (multi-document)")
        if args.json:
            jdir = Path(tmp) / "json"
            jpaths = generator.write(objects, jdir, fmt="json")
            measure(jdir, jpaths, args.repeat, "JSON (kind: List)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
