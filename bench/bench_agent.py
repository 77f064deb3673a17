"""Agent speed: policy-file change -> rules installed, and the apply time of 1,000 policies.

    .venv/bin/python bench/bench_agent.py                  # both backends, 100 changes
    .venv/bin/python bench/bench_agent.py --backend iptables --changes 50 --big-policies 500

Everything runs in throwaway network namespaces (``sk-b-<hex>``), removed at
the end; the host's firewall is never touched. Manifests come from
``bench/generator.py``.

Figures, all measured in this run:

* latency: a ``sekisho agent`` process (``--netns``, ``--ready-file``) follows a
  directory of 100 pods and 100 policies; one policy file is rewritten (write to a
  temporary, rename into place) ``--changes`` times, and the time from just
  before the write until the ready file shows the next generation with the
  fingerprint of exactly the ruleset that change renders to (computed here
  beforehand) is taken (p50, p99); the ready file is polled every 0.5 ms. The
  agent writes the ready file only after the kernel accepted the transaction;
  the run fails unless every change was one sync that applied something.
  Changes are 30 ms apart. Goal: p99 < 100 ms.
  Baseline: a bare ``iptables-restore --noflush`` (``nft -f``) of the node's whole
  document, what a naive agent would run for every change.
* apply: 1,000 policies (1,000 pods) rendered for the busiest node and applied by
  the applier, with the agent's runner (``LibnftRunner``: nft in-process through
  libnftables, iptables and ipset as processes), into an empty namespace
  (read-back, diff, transaction); then a resync (read back + compare, nothing to
  change) and a one-policy update.
  Baseline: the same documents loaded with bare ``ipset restore`` +
  ``iptables-restore --noflush`` (``nft -f``) processes, no diff and no read-back.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generator  # noqa: E402  (bench/ is not a package: loaded from its path)

from sekisho.agent import ruleset_fingerprint  # noqa: E402
from sekisho.dataplane import (  # noqa: E402
    IptablesApplier,
    LibnftRunner,
    NftApplier,
    SubprocessRunner,
)
from sekisho.model import load_cluster  # noqa: E402
from sekisho.render import render_node  # noqa: E402

PREFIX = "sekisho"

CHANGE = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: bench-change, namespace: {ns}}}
spec:
  podSelector: {{}}
  policyTypes: [Ingress]
  ingress:
  - from: [{{podSelector: {{}}}}]
    ports: [{{protocol: TCP, port: {port}}}]
"""


@contextmanager
def busy(n: int) -> Iterator[None]:
    """``n`` processes spinning on a CPU (a loaded node), stopped on exit."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


@contextmanager
def netns() -> Iterator[str]:
    name = f"sk-b-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def busiest_node(root: Path) -> tuple[str, Any]:
    cluster = load_cluster([str(root)])
    counts = Counter(p.node for p in cluster.pods if p.node and not p.host_network)
    return counts.most_common(1)[0][0], cluster


def bare_apply(ns: str, backend: str, ruleset: Any) -> None:
    """What a naive agent runs: the renderer's whole documents, no diff, no read-back."""
    run = SubprocessRunner(ns)
    if backend == "iptables":
        run(["ipset", "restore"], stdin=ruleset.ipset_restore())
        hooks = "".join(f"-I {chain} 1 {rule}\n" for chain, rule in ruleset.hooks)
        doc = ruleset.iptables_restore().replace("COMMIT\n", hooks + "COMMIT\n")
        run(["iptables-restore", "--noflush"], stdin=doc)
    else:
        run(["nft", "-f", "-"], stdin=ruleset.script())


def wipe(ns: str, backend: str) -> None:
    run = SubprocessRunner(ns)
    (IptablesApplier(run, PREFIX) if backend == "iptables" else NftApplier(run, PREFIX)).cleanup()


def latency(
    backend: str, changes: int, pods: int, policies: int, debounce: float | None = None
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, netns() as ns:
        root = Path(tmp) / "src"
        generator.write(generator.generate(pods, policies=policies), root, per_file=None)
        node, cluster = busiest_node(root)
        namespace = next(p.namespace for p in cluster.pods if p.node == node)
        change = root / "zz-bench-change.yaml"
        change.write_text(CHANGE.format(ns=namespace, port=1000))
        ruleset = render_node(load_cluster([str(root)]), node, backend=backend, prefix=PREFIX)  # type: ignore[call-overload]
        base = [timed(lambda: bare_apply(ns, backend, ruleset)) for _ in range(5)]
        wipe(ns, backend)
        # The ruleset each change must produce, rendered here before timing: a sample ends
        # when the ready file names exactly that ruleset (not merely a newer generation).
        expected = []
        for i in range(changes):
            change.write_text(CHANGE.format(ns=namespace, port=1001 + i))
            rs = render_node(load_cluster([str(root)]), node, backend=backend, prefix=PREFIX)  # type: ignore[call-overload]
            expected.append(ruleset_fingerprint(rs))
        change.write_text(CHANGE.format(ns=namespace, port=1000))
        ready = Path(tmp) / "ready.json"
        argv = [sys.executable, "-m", "sekisho", "agent", "--node", node, "--source", str(root)]
        argv += ["--netns", ns, "--backend", backend, "--ready-file", str(ready), "--resync", "60"]
        argv += ["--log-format", "json"]
        if debounce is not None:
            argv += ["--debounce", str(debounce)]
        log = Path(tmp) / "agent.log"
        with log.open("wb") as err:
            proc = subprocess.Popen(argv, stderr=err, stdout=subprocess.DEVNULL)
        try:
            gen = wait_ready(ready, 0, None, 30.0)
            samples = []
            for i in range(changes):
                tmpfile = root / f".zz-bench-change.{i}.tmp"
                start = time.perf_counter()
                tmpfile.write_text(CHANGE.format(ns=namespace, port=1001 + i))
                os.replace(tmpfile, change)
                gen = wait_ready(ready, gen, expected[i], 10.0)
                samples.append(time.perf_counter() - start)
                time.sleep(0.03)  # let the debounce window close: one change at a time
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        stages: dict[str, list[float]] = {}
        syncs = [json.loads(line) for line in log.read_text().splitlines()]
        syncs = [r for r in syncs if "stages" in r and r.get("generation", 0) > 1]
        applied = sum(1 for r in syncs if r.get("status") == "applied")
        if applied != changes or len(syncs) != changes:
            raise SystemExit(f"expected {changes} applied syncs, got {applied} of {len(syncs)}")
        for rec in syncs:
            for name, secs in rec["stages"].items():
                stages.setdefault(name, []).append(secs)
        return {
            **{f"stage_{k}": statistics.median(v) for k, v in stages.items()},
            "p50": statistics.median(samples),
            "p99": pct(samples, 0.99),
            "max": max(samples),
            "baseline": statistics.median(base),
            "rules": float(sum(len(c[-1]) for c in ruleset.chains)),
            "sets": float(len(ruleset.sets)),
        }


def wait_ready(ready: Path, after: int, fingerprint: str | None, timeout: float) -> int:
    """Poll the ready file (every 0.5 ms) until it shows a generation after ``after``;
    return it. When ``fingerprint`` is given, that generation must carry exactly it."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            body = json.loads(ready.read_text())
            gen, got = int(body["generation"]), str(body["fingerprint"])
        except (OSError, ValueError, KeyError):
            gen, got = after, ""
        if gen > after:
            if fingerprint not in (None, got):
                raise SystemExit(f"generation {gen} enforces {got}, expected {fingerprint}")
            return gen
        time.sleep(0.0005)
    raise SystemExit(f"agent did not report generation > {after} within {timeout}s")


def apply_time(backend: str, pods: int, policies: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "src"
        generator.write(generator.generate(pods, policies=policies), root, per_file=None)
        node, cluster = busiest_node(root)
        ruleset = render_node(cluster, node, backend=backend, prefix=PREFIX)  # type: ignore[call-overload]
        change = root / "zz-bench-change.yaml"
        namespace = next(p.namespace for p in cluster.pods if p.node == node)
        change.write_text(CHANGE.format(ns=namespace, port=4242))
        updated = render_node(load_cluster([str(root)]), node, backend=backend, prefix=PREFIX)  # type: ignore[call-overload]
        base, full, resync, update = [], [], [], []
        for _ in range(3):
            with netns() as ns:
                base.append(timed(lambda: bare_apply(ns, backend, ruleset)))
            with netns() as ns:
                run = LibnftRunner(ns)  # the agent's runner
                a = (
                    IptablesApplier(run, PREFIX)
                    if backend == "iptables"
                    else NftApplier(run, PREFIX)
                )
                try:
                    full.append(timed(lambda a=a: a.apply(ruleset)))
                    resync.append(timed(lambda a=a: a.resync(ruleset)))
                    update.append(timed(lambda a=a: a.apply(updated)))
                finally:
                    run.close()
        return {
            "baseline": statistics.median(base),
            "apply": statistics.median(full),
            "resync": statistics.median(resync),
            "update": statistics.median(update),
            "rules": float(sum(len(c[-1]) for c in ruleset.chains)),
            "sets": float(len(ruleset.sets)),
            "policies": float(len(cluster.policies)),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=["iptables", "nftables", "both"], default="both")
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--policies", type=int, default=100)
    parser.add_argument("--big-pods", type=int, default=1000)
    parser.add_argument("--big-policies", type=int, default=1000)
    parser.add_argument("--debounce", type=float, default=None, help="agent --debounce (s)")
    parser.add_argument("--skip-big", action="store_true", help="only the latency figures")
    parser.add_argument(
        "--busy", type=int, default=0, help="CPU-spinning processes during the latency runs"
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_agent needs root (it creates network namespaces)", file=sys.stderr)
        return 2
    backends = ["iptables", "nftables"] if args.backend == "both" else [args.backend]
    for backend in backends:
        with busy(args.busy):
            lat = latency(backend, args.changes, args.pods, args.policies, args.debounce)
        print(
            f"{backend:9} change->installed ({args.pods} pods, {args.policies} policies, "
            + (f"{args.busy} busy processes, " if args.busy else "")
            + f"{lat['rules']:.0f} rules, {lat['sets']:.0f} sets, {args.changes} changes): "
            f"p50 {lat['p50'] * 1e3:.1f} ms  p99 {lat['p99'] * 1e3:.1f} ms  max {lat['max'] * 1e3:.1f} ms"
            f"  | baseline bare full apply {lat['baseline'] * 1e3:.1f} ms"
            f"  ratio p50/baseline {lat['p50'] / lat['baseline']:.2f}"
            f"  goal p99 < 100 ms: {'met' if lat['p99'] < 0.1 else 'MISSED'}"
        )
        print(
            f"{backend:9}   inside the agent (median per change): "
            + "  ".join(
                f"{k[6:]} {v * 1e3:.1f} ms" for k, v in lat.items() if k.startswith("stage_")
            )
        )
        if args.skip_big:
            continue
        big = apply_time(backend, args.big_pods, args.big_policies)
        print(
            f"{backend:9} apply {big['policies']:.0f} policies ({big['rules']:.0f} rules, "
            f"{big['sets']:.0f} sets) into an empty namespace: {big['apply'] * 1e3:.0f} ms"
            f"  | baseline bare restore {big['baseline'] * 1e3:.0f} ms"
            f"  ratio {big['apply'] / big['baseline']:.2f}"
            f"  | resync (read back, no change) {big['resync'] * 1e3:.0f} ms"
            f"  one-policy update {big['update'] * 1e3:.0f} ms"
            f" (ratio to bare full {big['update'] / big['baseline']:.2f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
