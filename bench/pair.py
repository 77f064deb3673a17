"""Whole commands timed from outside, A against B, pair by pair.

    .venv/bin/python bench/pair.py -n 5 -- CMD [ARG ...]
    .venv/bin/python bench/pair.py -n 5 --vs "OTHER CMD" -- CMD [ARG ...]

Each run is a whole process (start-up, imports, reading, the work, the output):
its CPU is the user + system time the kernel accounts to the finished child and
its children (``os.wait4``, what ``/usr/bin/time`` prints), its peak memory the
child's maximum resident set. With ``--vs`` the two commands run in turn, A B A
B ..., and the ratio A/B is taken pair by pair, so a comparison holds when a
shared machine's speed drifts during the runs. Prints min, median and max of
every figure; never judges. A command's output is thrown away (``sh -c 'exec
CMD >FILE'`` keeps it). ``--vs`` is split as a shell splits words and run
without a shell. A peak below this script's own size (about 13 MiB: the forked
child starts as a copy of it) is not seen.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time


def run_once(argv: list[str]) -> dict[str, float]:
    """One whole run of ``argv``: cpu, wall (s), peak (MiB), exit code."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "cpu": usage.ru_utime + usage.ru_stime,
        "wall": wall,
        "peak": usage.ru_maxrss / 1024,
        "rc": float(proc.returncode),
    }


def spread(values: list[float]) -> str:
    return f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=5, help="counted runs of each command")
    ap.add_argument("--warmup", type=int, default=1, help="runs not counted, first")
    ap.add_argument("--vs", help="command B, one string")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command A and its arguments")
    args = ap.parse_args()
    a = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not a:
        ap.error("no command after --")
    b = shlex.split(args.vs) if args.vs else None
    for _ in range(args.warmup):
        run_once(a)
        if b:
            run_once(b)
    runs_a: list[dict[str, float]] = []
    runs_b: list[dict[str, float]] = []
    for _ in range(args.n):
        runs_a.append(run_once(a))
        if b:
            runs_b.append(run_once(b))
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; {args.n} runs each")
    print("figure      A min / median / max" + ("        B min / median / max" if b else ""))
    for key, unit in (("cpu", "s"), ("wall", "s"), ("peak", "MiB")):
        line = f"{key + ' ' + unit:10}  {spread([r[key] for r in runs_a]):28}"
        if b:
            line += f"  {spread([r[key] for r in runs_b])}"
        print(line)
    if b:
        for key in ("cpu", "wall", "peak"):
            ratios = [x[key] / y[key] for x, y in zip(runs_a, runs_b, strict=True) if y[key]]
            if ratios:
                print(f"A/B {key:6}  {spread(ratios)}")
    codes = {int(r["rc"]) for r in runs_a + runs_b}
    print(f"exit codes: {sorted(codes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
