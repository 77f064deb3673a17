"""Rendering one node: full render versus the incremental delta after one pod's labels change.

    .venv/bin/python bench/bench_render.py                      # 10,000 pods / 1,000 policies
    .venv/bin/python bench/bench_render.py --pods 2000 --policies 200 --repeat 3

The cluster comes from bench/generator.py (about 100 pods per node); loading is
not timed. For the node with the most local pods it prints:

* full render (``NodeRenderer.update`` on a fresh renderer + text for the backend),
  median of ``--repeat`` runs, for iptables and nftables (goal < 1 s);
* the delta after one local pod's labels change (``NodeRenderer.update`` on the
  changed snapshot, which shares every other object), and after one remote pod's
  labels change (goal < 10 ms), with the ratio full / delta measured in this run,
  and the time to produce the whole ruleset text again afterwards (unchanged
  sets and chains come from the renderer's text cache);
* rules per endpoint (its two endpoint chains plus the policy chains it runs,
  and the dispatch rules a packet passes on average: a two-level tree of chains
  in iptables, one verdict map lookup in nftables), and the sizes of the sets.

The incremental result is checked equal to a fresh full render of the changed cluster.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generator  # noqa: E402  (bench scripts load siblings by path)

from sekisho.model import cluster_from_objects  # noqa: E402
from sekisho.model.types import Cluster, Pod  # noqa: E402
from sekisho.render import (  # noqa: E402
    IptablesRuleset,
    NodeRenderer,
    render_iptables,
    render_nftables,
)


def _relabel(cluster: Cluster, pod: Pod) -> Cluster:
    """The same snapshot with ``pod`` relabelled (every other object shared, as a watch gives)."""
    labels = dict(pod.labels)
    labels["tier"] = "backend" if labels.get("tier") != "backend" else "frontend"
    new = dataclasses.replace(pod, labels=labels)
    pods = tuple(new if p is pod else p for p in cluster.pods)
    return dataclasses.replace(cluster, pods=pods)


def _time(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    runs, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), result


def bench(pods: int, policies: int, repeat: int) -> None:
    cluster = cluster_from_objects(generator.generate(pods, policies=policies))
    per_node = Counter(p.node for p in cluster.pods if not p.host_network and p.node)
    node, local = per_node.most_common(1)[0]
    print(
        f"cluster: {len(cluster.pods)} pods, {len(cluster.policies)} policies, "
        f"{len(per_node)} nodes; node {node} with {local} local pods"
    )

    def full(backend: str):  # type: ignore[no-untyped-def]
        r = NodeRenderer(node)
        r.update(cluster)
        return r, (render_iptables(r) if backend == "iptables" else render_nftables(r))

    t_full: dict[str, float] = {}
    for backend in ("iptables", "nftables"):
        t_full[backend], _ = _time(lambda b=backend: full(b), repeat)  # type: ignore[misc]
        print(f"full render {backend:9}: {t_full[backend] * 1000:8.1f} ms   (goal < 1000 ms)")
    t_state, _ = _time(lambda: NodeRenderer(node).update(cluster), repeat)
    print(f"  of which state (sets, chains): {t_state * 1000:8.1f} ms; text: the rest")

    local_pod = next(p for p in cluster.pods if p.node == node and not p.host_network)
    remote_pod = next(p for p in cluster.pods if p.node != node and not p.host_network)
    for what, pod in (("local", local_pod), ("remote", remote_pod)):
        deltas, texts = [], []
        for _ in range(max(repeat, 5)):
            r = NodeRenderer(node)
            r.update(cluster)
            render_iptables(r)  # the text of the previous state is cached
            changed = _relabel(cluster, pod)
            t0 = time.perf_counter()
            d = r.update(changed)
            t1 = time.perf_counter()
            render_iptables(r)
            deltas.append(t1 - t0)
            texts.append(time.perf_counter() - t1)
        t_delta = statistics.median(deltas)
        t_text = statistics.median(texts)
        assert render_iptables(r) == render_iptables(_fresh(node, changed)), "incremental != full"
        print(
            f"delta after one {what} pod's labels change ({pod.key}): {t_delta * 1000:6.2f} ms "
            f"(goal < 10 ms); full/delta = {t_full['iptables'] / t_delta:7.0f}x; "
            f"changed: {len(d.sets)} sets, {len(d.endpoints)} endpoints, "
            f"{len(d.policies)} policy chains, removed {len(d.removed_sets)} sets"
        )
        print(
            f"  then the whole iptables ruleset text from the cache: {t_text * 1000:6.2f} ms "
            f"(full/(delta+text) = {t_full['iptables'] / (t_delta + t_text):5.0f}x)"
        )

    r = _fresh(node, cluster)
    ipt = render_iptables(r)
    nft = render_nftables(r)
    eps = list(r.endpoints.values())
    n = len(eps)
    ep_rules = sum(
        len(ipt.chain(r.endpoint_chain(e.iface, d))) for e in eps for d in ("ingress", "egress")
    )
    pol_rules = sum(
        len(ipt.chain(r.policy_chain(k, d)))
        for e in eps
        for d in ("ingress", "egress")
        for k in e.policies(d)  # type: ignore[arg-type]
    )
    nft_ep = sum(
        len(nft.chain(r.endpoint_chain(e.iface, d))) for e in eps for d in ("ingress", "egress")
    )
    print(
        f"rules per endpoint (both directions): iptables {ep_rules / n:.1f} endpoint + "
        f"{pol_rules / n:.1f} policy rules, + {_dispatch_cost(ipt, r):.1f} dispatch rules per "
        f"packet on average (two-level tree; a flat list would be {n / 2 + 0.5:.1f}); "
        f"nftables {nft_ep / n:.1f} endpoint + {pol_rules / n:.1f} policy rules, "
        f"+ 1 verdict-map lookup per packet"
    )
    members = [len(s.members) for s in ipt.sets]
    print(
        f"sets: {len(ipt.sets)} (largest {max(members, default=0)} members, "
        f"total {sum(members)}); chains: {len(ipt.chains)}; "
        f"text: iptables {len(ipt.iptables_restore()) // 1024} KiB + ipset {len(ipt.ipset_restore()) // 1024} KiB, "
        f"nft {len(nft.script()) // 1024} KiB"
    )


def _dispatch_cost(ipt: IptablesRuleset, r: NodeRenderer) -> float:
    """Average number of dispatch rules a packet from a local endpoint passes (goto chains)."""
    chains = dict(ipt.chains)
    total = 0
    for ep in r.endpoints.values():
        chain, passed = f"{r.prefix}-fw-dispatch", 0
        while True:
            for i, rule in enumerate(chains[chain]):
                words = rule.split()
                iface = words[1] if words[0] == "-i" else ""
                if iface and (
                    ep.iface == iface or (iface.endswith("+") and ep.iface.startswith(iface[:-1]))
                ):
                    passed += i + 1
                    chain = words[-1]
                    break
            if chain.startswith(f"{r.prefix}-fw-d") or chain.endswith("-dispatch"):
                continue
            break
        total += passed
    return total / max(1, len(r.endpoints))


def _fresh(node: str, cluster: Cluster) -> NodeRenderer:
    r = NodeRenderer(node)
    r.update(cluster)
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--policies", type=int, default=1_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    bench(args.pods, args.policies, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
