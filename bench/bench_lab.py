"""Lab figures, each against a baseline measured in the same run (needs root).

    .venv/bin/python bench/bench_lab.py [--backend iptables|nftables|both] [--seconds 2] [--policies 1000]

1. ``lab up`` of the seed (6 nodes, 7 pods, nginx, external host, 6 agents);
   goal < 10 s. Baseline: the same topology without agents.
2. A full probe of the 9-pod upstream model, ports 80/81 x TCP/UDP (324 probes)
   under ``default-deny-ingress`` in x (so a third of the cells must time
   out); goal < 15 s. Baseline: the same probe with no policy (no drops).
3. New TCP connections per second between pods on different nodes
   (x/a on node1 -> x/b on node2) with 1,000 policies installed that select
   other pods (namespaces y and z), as a ratio to the same with no policy, per
   backend; goal >= 0.9 for nftables. Two labs run side by side (no policy /
   1,000 policies); a bounded connect loop runs in x/a's namespace (threads
   that setns) against a listener in x/b's namespace, alternating short
   samples between the two labs so machine noise hits both; medians compared.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from e2e_cases import CASES, model_cluster_objects  # noqa: E402
from sekisho.dataplane import netns  # noqa: E402
from sekisho.lab.core import Lab  # noqa: E402
from sekisho.lab.manifests import read_objects  # noqa: E402
from sekisho.lab.reach import measure  # noqa: E402

SEED = ROOT / "examples" / "seed"
BENCH_PORT = 9000


def _name(tag: str) -> str:
    return f"b{tag}{os.urandom(2).hex()}"[:10]


def bench_up(root: Path) -> None:
    objs = read_objects([SEED / "cluster.yaml", SEED / "part2"])
    figures = {}
    for enforce in ("none", "agent"):
        name = _name("u")
        t = time.monotonic()
        lab = Lab.up(objs, name=name, root=root, enforce=enforce)
        figures[enforce] = time.monotonic() - t
        lab.down()
    print(
        f"lab up (seed: 6 nodes, 7 pods, nginx, 6 agents): {figures['agent']:.2f} s"
        f" (goal < 10 s); topology only: {figures['none']:.2f} s;"
        f" ratio {figures['agent'] / figures['none']:.1f}x"
    )


def bench_probe(root: Path, backend: str) -> None:
    name = _name("p")
    lab = Lab.up(model_cluster_objects(), name=name, root=root, backend=backend)
    try:
        specs: list[tuple[int | None, str]] = [(80, "TCP"), (81, "TCP"), (80, "UDP"), (81, "UDP")]
        t = time.monotonic()
        base = measure(lab.cluster, lab.plan, specs)
        t_base = time.monotonic() - t
        deny = next(c for c in CASES if c.id == "default-deny-ingress")
        cluster = lab.apply(deny.objects())
        t = time.monotonic()
        res = measure(cluster, lab.plan, specs)
        t_deny = time.monotonic() - t
        cells = sum(len(r) for tb in res.probes for r in tb.observed)
        drops = sum(1 for tb in res.probes for r in tb.observed for o in r if o == "dropped")
        print(
            f"full probe ({backend}, 9 pods x 2 ports x 2 protocols = {cells} probes,"
            f" {drops} dropped): {t_deny:.2f} s (goal < 15 s), {res.mismatches} wrong;"
            f" no-drop baseline {t_base:.2f} s ({base.mismatches} wrong)"
        )
    finally:
        lab.down()


def _policies(n: int) -> list[dict[str, Any]]:
    """``n`` policies that select pods of namespaces y and z, never x's."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        ns = "y" if i % 2 else "z"
        out.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": f"bench-{i}", "namespace": ns},
                "spec": {
                    "podSelector": {
                        "matchExpressions": [
                            {"key": "pod", "operator": "In", "values": [["a", "b", "c"][i % 3]]}
                        ]
                    },
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [
                        {
                            "from": [
                                {
                                    "namespaceSelector": {
                                        "matchLabels": {"ns": ["x", "y", "z"][i % 3]}
                                    },
                                    "podSelector": {
                                        "matchLabels": {"pod": ["a", "b", "c"][(i // 3) % 3]}
                                    },
                                },
                                {"ipBlock": {"cidr": f"172.16.{i // 250}.{i % 250}/32"}},
                            ],
                            "ports": [{"protocol": "TCP", "port": 1000 + i}],
                        }
                    ],
                    "egress": [
                        {
                            "to": [{"ipBlock": {"cidr": f"172.17.{i // 250}.{i % 250}/32"}}],
                            "ports": [{"protocol": "UDP", "port": 2000 + i}],
                        }
                    ],
                },
            }
        )
    return out


def _listener(ns: str, ip: str, stop: threading.Event) -> threading.Thread:
    ready = threading.Event()

    def serve() -> None:
        netns.enter(ns)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, BENCH_PORT))
        s.listen(4096)
        s.settimeout(0.2)
        ready.set()
        while not stop.is_set():
            try:
                conn, _ = s.accept()
            except TimeoutError:
                continue
            conn.close()
        s.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    ready.wait(5)
    return t


def _rate(ns: str, ip: str, seconds: float, threads: int = 4) -> float:
    """New TCP connections per second from ``ns`` to ``ip``: connect, then close with RST."""
    counts = [0] * threads
    linger = struct.pack("ii", 1, 0)
    deadline = time.monotonic() + seconds

    def loop(k: int) -> None:
        netns.enter(ns)
        while time.monotonic() < deadline:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            s.settimeout(1.0)
            try:
                s.connect((ip, BENCH_PORT))
                counts[k] += 1
            except OSError:
                pass
            finally:
                s.close()

    start = time.monotonic()
    workers = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts) / (time.monotonic() - start)


def bench_connections(root: Path, backend: str, n: int, seconds: float, rounds: int) -> None:
    """Two labs side by side (none / ``n`` policies), sampled alternately so noise is shared."""
    labs = [
        Lab.up(model_cluster_objects(), name=_name(tag), root=root, backend=backend)
        for tag in ("c", "m")
    ]
    stop = threading.Event()
    try:
        t = time.monotonic()
        labs[1].apply(_policies(n), timeout=300)
        t_apply = time.monotonic() - t
        ends = []
        for lab in labs:
            src, dst = lab.plan.pod("x/a"), lab.plan.pod("x/b")
            assert src is not None and dst is not None and src.node != dst.node
            _listener(dst.netns, str(dst.ip), stop)
            _rate(src.netns, str(dst.ip), 0.2)  # warm up
            ends.append((src.netns, str(dst.ip)))
        samples: list[list[float]] = [[], []]
        for r in range(rounds):
            order = (0, 1) if r % 2 == 0 else (1, 0)
            for k in order:
                samples[k].append(_rate(*ends[k], seconds))
        r0, r1 = statistics.median(samples[0]), statistics.median(samples[1])
        src0, dst0 = labs[1].plan.pod("x/a"), labs[1].plan.pod("x/b")
        assert src0 is not None and dst0 is not None
        rules = labs[1].run(
            dst0.node, ["iptables-save"] if backend == "iptables" else ["nft", "list", "ruleset"]
        )
        size = len(rules.stdout.splitlines())
        print(
            f"new TCP connections/s x/a ({src0.node}) -> x/b ({dst0.node}), {backend}:"
            f" {r1:,.0f}/s with {n} policies ({size} lines of rules on {dst0.node}, applied in"
            f" {t_apply:.1f} s) vs {r0:,.0f}/s with none: ratio {r1 / r0:.2f}"
            f" (goal >= 0.9 for nftables); median of {rounds} alternating {seconds:g} s samples"
        )
    finally:
        stop.set()
        for lab in labs:
            lab.down()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--backend", choices=["iptables", "nftables", "both"], default="both")
    ap.add_argument("--seconds", type=float, default=0.5, help="per connect-rate sample")
    ap.add_argument("--rounds", type=int, default=16, help="samples per state")
    ap.add_argument("--policies", type=int, default=1000)
    ap.add_argument("--skip", action="append", default=[], choices=["up", "probe", "conn"])
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_lab needs root (network namespaces)", file=sys.stderr)
        return 2
    backends = ["iptables", "nftables"] if args.backend == "both" else [args.backend]
    root = Path(f"/run/sekisho/bench-lab-{os.getpid()}")
    try:
        if "up" not in args.skip:
            bench_up(root)
        if "probe" not in args.skip:
            for b in backends:
                bench_probe(root, b)
        if "conn" not in args.skip:
            for b in backends:
                bench_connections(root, b, args.policies, args.seconds, args.rounds)
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
