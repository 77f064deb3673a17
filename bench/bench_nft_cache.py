"""What one element command costs libnftables against the sets around it.

    .venv/bin/python bench/bench_nft_cache.py                  # 2,000 sets of 20 addresses
    .venv/bin/python bench/bench_nft_cache.py --sets 500 --elements 50

Needs root (a throwaway namespace ``sk-b-<hex>``). Before any ``add element`` or
``delete element`` libnftables fills its cache, and for element commands that
cache holds the elements of every interval set (non-concatenated, any set of
the table, not only the one changed). The same table is loaded twice: address
sets with ``flags interval`` (as the renderer spelt every address set before
it wrote the flag only on sets that hold a network) and the same sets without; in each, one transaction adds an address to one set and deletes one
from another, ``--rounds`` times. Prints the median wall and CPU time
(``time.process_time``: the kernel's work for our netlink messages included)
per transaction and the ratio interval / plain.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_agent import netns  # noqa: E402

from sekisho.dataplane import LibnftRunner  # noqa: E402


def table(sets: int, elements: int, interval: bool) -> str:
    out = ["table inet t {"]
    flags = " flags interval;" if interval else ""
    for i in range(sets):
        els = ", ".join(f"10.{i % 250}.{j // 250}.{j % 250 + 1}" for j in range(elements))
        out.append(f"set s{i} {{ type ipv4_addr;{flags} elements = {{ {els} }} }}")
    out.append("}")
    return "\n".join(out) + "\n"


def measure(ns: str, text: str, rounds: int) -> tuple[float, float]:
    subprocess.run(["ip", "netns", "exec", ns, "nft", "flush", "ruleset"], check=True)
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=text, text=True, check=True)
    runner = LibnftRunner(ns)
    walls, cpus = [], []
    try:
        for k in range(rounds):
            a, b = f"10.200.200.{k % 250 + 1}", f"10.1.0.{k % 20 + 1}"
            for script in (
                f"add element inet t s0 {{ {a} }}\ndelete element inet t s1 {{ {b} }}\n",
                f"delete element inet t s0 {{ {a} }}\nadd element inet t s1 {{ {b} }}\n",
            ):
                w, c = time.perf_counter(), time.process_time()
                runner(["nft", "-f", "-"], stdin=script)
                walls.append(time.perf_counter() - w)
                cpus.append(time.process_time() - c)
    finally:
        runner.close()
    return statistics.median(walls), statistics.median(cpus)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=2000)
    parser.add_argument("--elements", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f}; {args.sets} sets x {args.elements} addresses")
    with netns() as ns:
        res = {}
        for name, interval in (("interval", True), ("plain", False)):
            res[name] = measure(ns, table(args.sets, args.elements, interval), args.rounds)
            w, c = res[name]
            print(f"{name:9} wall {w * 1e3:7.2f} ms  cpu {c * 1e3:7.2f} ms per transaction")
    (wi, ci), (wp, cp) = res["interval"], res["plain"]
    print(f"interval / plain: wall {wi / wp:.1f}x  cpu {ci / cp:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
