"""The cluster's store: change-to-installed on every node, a change at scale, endpoint churn, fan-out.

    .venv/bin/python bench/bench_etcd.py                      # every section, default sizes
    .venv/bin/python bench/bench_etcd.py --only lab --changes 200 --background 1000
    .venv/bin/python bench/bench_etcd.py --only scale --pods 10000 --policies 1000
    .venv/bin/python bench/bench_etcd.py --only scale --kind gnp --changes 20 --no-files
    .venv/bin/python bench/bench_etcd.py --only churn --local-pods 250 --policies 2000
    .venv/bin/python bench/bench_etcd.py --only fanout --watchers 100 --pods 10000

Every etcd here listens on loopback (``LocalEtcd``) or inside a lab's namespaces;
agents program rules in throwaway namespaces (lab nodes, ``sk-b-<hex>``).

* lab: a six-node lab (three pods per node, ``--background`` extra policies that
  select nothing); ``--changes`` times one policy is added or deleted. For the
  etcd store the change is written through the store (``sekisho apply``'s code,
  validated whole, one transaction) from the lab's orchestrator namespace; the
  clock starts when that write returns and stops when every node's ready file
  shows the fingerprint of exactly that change's ruleset (computed beforehand;
  polled every 0.5 ms). p50/p99 of the last node, and the spread between the
  first and the last node (fan-out). Baseline, same run: the same lab on the
  files store, the same change written as a file into the directory every
  agent watches (what the lab faked before).
* scale: ``--pods``/``--policies`` (generator.py) in a loopback etcd; one agent
  (in-process, its rules in a throwaway namespace, nftables through
  libnftables) on the busiest node; ``--changes`` times one object is changed
  with a raw put (``--kind``: k8s, a NetworkPolicy's port; gnp, a Calico
  GlobalNetworkPolicy's port in generator.generate_calico's cluster; namespace,
  a Namespace's ``env`` label, which policies select on, set to dev and
  back; node, a label of the first Node; workload, a Deployment of 5 replicas
  beside a generated backend pod: its replicas 5/6 and, every other change, a
  rollout of its template, see ``changed``); time from the put to the agent's sync of that revision being
  applied, and the agent's own stages (load = validate the snapshot, render,
  apply); the first change waits until the agent has settled its heap after
  its first sync (a one-off collection). Baselines: the same agent with every load whole
  (``EtcdSource(patch=False)``, what the agent did before loads were
  patched), and the same agent on the files source, the same change written
  as a file.
* churn: a node with ``--local-pods`` pods (pods of the generated cluster moved
  onto it; ``--local-pods`` x 4 in the cluster) and ``--policies`` policies; pods
  of that node are deleted and added back by raw puts (as an API server would
  write them) from ``--writers`` clients in ``--writer-procs`` processes at
  ``--rate`` per second in all for ``--seconds`` (``--txn`` changes per
  transaction); per change, the time until the agent applied a revision that
  includes it (p50/p99), and the rate of endpoint updates it sustained
  (updates / seconds until the last one was applied), with the agent's CPU per
  sync. Batching is the design: one sync takes every change that came while the
  last one was applied. Baseline: the same run with the applier's delta path
  off (``linger=0``: unreferenced sets and chains deleted at once;
  ``NftApplier.deltas`` off: a changed set flushed and refilled).
* scale and churn also print the agent's stages per sync (load, render, apply)
  and how many loads were patches of the last good cluster rather than whole
  loads (``model.patch.patch_parts``).
* fanout: ``--watchers`` watch streams (threads, the work of an agent without a
  dataplane) on one etcd holding ``--pods`` pods; time for all to list
  (a cold start of every node), delivery of ``--changes`` puts to every
  watcher (p50/p99 of the last watcher), and etcd's resident memory before and
  after. Baseline: one watcher.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generator  # noqa: E402  (bench/ is not a package: loaded from its path)
from bench_agent import netns  # noqa: E402

from sekisho.agent import Agent, AgentMetrics, full_renderer, ruleset_fingerprint  # noqa: E402
from sekisho.dataplane import NftApplier  # noqa: E402
from sekisho.lab.etcd import LocalEtcd  # noqa: E402
from sekisho.model import cluster_from_objects  # noqa: E402
from sekisho.sources.etcd import EtcdClient, EtcdSource, identity, object_key  # noqa: E402
from sekisho.sources.store import Store, encode  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


def dist(values: list[float]) -> str:
    return f"p50 {ms(pct(values, 0.5))}, p99 {ms(pct(values, 0.99))}, max {ms(max(values))}"


# ---- lab: six nodes, change to installed on every node ---------------------------------------


def lab_objects(background: int) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b"}}
    ]
    for n in range(6):
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": f"n{n}"},
                "spec": {"podCIDR": f"10.244.{n}.0/24"},
                "status": {
                    "addresses": [{"type": "InternalIP", "address": f"192.168.110.{10 + n}"}]
                },
            }
        )
        for i in range(3):
            objs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": f"p{n}-{i}", "namespace": "b", "labels": {"app": f"a{i}"}},
                    "spec": {
                        "nodeName": f"n{n}",
                        "containers": [{"name": "c", "ports": [{"containerPort": 80}]}],
                    },
                    "status": {"podIP": f"10.244.{n}.{10 + i}"},
                }
            )
    for k in range(background):
        objs.append(policy(f"bg{k}", {"app": f"none{k}"}, 80))
    return objs


def policy(name: str, select: dict[str, str], port: int) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "b"},
        "spec": {
            "podSelector": {"matchLabels": select},
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": {"app": "a0"}}}],
                    "ports": [{"port": port}],
                }
            ],
        },
    }


def lab_run(store: str, changes: int, background: int) -> dict[str, list[float]]:
    from sekisho.lab import manifests as mf
    from sekisho.lab.core import Lab

    base = lab_objects(background)
    name = "b" + os.urandom(3).hex()
    root = Path(tempfile.mkdtemp(prefix="sekisho-bench-"))
    t = time.perf_counter()
    lab = Lab.up(base, name=name, root=root, store=store, timeout=120)
    print(f"  lab ({store}) up in {time.perf_counter() - t:.1f} s", flush=True)
    last: list[float] = []
    spread: list[float] = []
    try:
        nodes = [n.name for n in lab.plan.nodes]
        probe = policy("probe", {"app": "a1"}, 8080)
        for k in range(changes):
            on = k % 2 == 0
            objs = base + ([probe] if on else [])
            cluster = cluster_from_objects(objs)
            want = {
                n: ruleset_fingerprint(full_renderer(cluster, n, lab.state.backend, "sekisho"))
                for n in nodes
            }
            if store == "etcd":
                assert lab.store is not None
                if on:
                    lab.store.apply([probe])
                else:
                    lab.store.delete([("NetworkPolicy", "b", "probe")])
            else:
                policies = [o for o in objs if mf.is_policy(o)]
                mf.write_atomic(lab.manifests / mf.POLICY_FILE, policies)
            t0 = time.perf_counter()
            seen: dict[str, float] = {}
            deadline = t0 + 30
            while len(seen) < len(nodes):
                for n in nodes:
                    if n in seen:
                        continue
                    try:
                        got = json.loads(lab.ready_file(n).read_text()).get("fingerprint")
                    except (OSError, ValueError):
                        got = None
                    if got == want[n]:
                        seen[n] = time.perf_counter() - t0
                if time.perf_counter() > deadline:
                    raise SystemExit(f"change {k}: nodes not converged: {set(nodes) - set(seen)}")
                time.sleep(0.0005)
            last.append(max(seen.values()))
            spread.append(max(seen.values()) - min(seen.values()))
            time.sleep(0.02)
    finally:
        lab.down()
        shutil.rmtree(root, ignore_errors=True)
    return {"last": last, "spread": spread}


def section_lab(args: argparse.Namespace) -> None:
    print(f"== lab: six nodes, {args.changes} changes, {args.background} background policies")
    base = lab_run("files", args.changes, args.background)
    etcd = lab_run("etcd", args.changes, args.background)
    print(f"  files store (baseline): every node installed {dist(base['last'])}")
    print(f"  etcd store:             every node installed {dist(etcd['last'])}")
    print(f"  etcd fan-out spread (first to last node): {dist(etcd['spread'])}")
    ratio = pct(etcd["last"], 0.99) / pct(base["last"], 0.99)
    print(f"  p99 etcd / files: {ratio:.2f}x")


# ---- scale: one agent, one change, many pods -------------------------------------------------


class Applied:
    """Follows an agent: the store revision each of its syncs applied, and when."""

    def __init__(self, agent: Agent, source: EtcdSource) -> None:
        self.agent, self.source = agent, source
        self.log: list[tuple[float, int]] = []
        self.stages: list[dict[str, float]] = []
        """Each sync's stages (load, render, apply) and its total, in seconds."""
        real = agent._sync

        def sync() -> Any:
            cpu = time.thread_time()
            summary = real()
            if summary.status in ("applied", "unchanged"):
                self.log.append((time.perf_counter(), source._loaded_rev))
                self.stages.append(
                    {
                        **dict(summary.stages),
                        "total": summary.duration,
                        "cpu": time.thread_time() - cpu,
                    }
                )
            return summary

        agent._sync = sync  # type: ignore[method-assign]

    def when(self, revision: int, timeout: float = 60) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            for t, rev in self.log:
                if rev >= revision:
                    return t
            time.sleep(0.0005)
        raise SystemExit(f"revision {revision} not applied in {timeout} s")


def stage_text(stages: list[dict[str, float]]) -> str:
    """p50/p99 of each stage of the agent's syncs (the first, the initial list, left out)."""
    rows = stages[1:] or stages
    out = []
    for name in ("load", "render", "apply", "total"):
        values = [r.get(name, 0.0) for r in rows]
        out.append(f"{name} p50 {ms(pct(values, 0.5))} p99 {ms(pct(values, 0.99))}")
    return "; ".join(out)


def busiest(objs: list[dict[str, Any]]) -> str:
    counts = Counter(o.get("spec", {}).get("nodeName") for o in objs if o.get("kind") == "Pod")
    counts.pop(None, None)
    if counts:
        return str(counts.most_common(1)[0][0])
    cluster = cluster_from_objects(objs)
    c2 = Counter(p.node for p in cluster.pods if p.node and not p.host_network)
    return str(c2.most_common(1)[0][0])


def run_agent(
    source: Any, node: str, ns: str, *, delta: bool = True
) -> tuple[Agent, threading.Event, threading.Thread]:
    """The agent on nftables in ``ns``; ``delta=False``: its applier's delta path off (no
    lingering blocks, sets flushed and refilled), the baseline of the churn section."""
    agent = Agent(
        node=node,
        source=source,
        netns=ns,
        backend="nftables",
        metrics=AgentMetrics(),
        resync=3600,
        **({} if delta else {"linger": 0.0}),
    )
    if not delta:
        target = agent.applier.target
        assert isinstance(target, NftApplier)
        target.deltas = False
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    return agent, stop, thread


def scale_case(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The cluster and the object ``--kind`` changes (:func:`changed` says how)."""
    if args.kind == "gnp":
        objs = generator.generate_calico(args.pods, policies=args.policies, seed=1)
        target = next(
            o
            for o in objs
            if o["kind"] == "GlobalNetworkPolicy" and o["metadata"]["name"] == "monitoring"
        )
    else:
        objs = generator.generate(args.pods, policies=args.policies, seed=1)
        if args.kind == "node":
            target = next(o for o in objs if o["kind"] == "Node")
        elif args.kind == "workload":
            target = bench_deployment(objs)
            objs.append(target)
        elif args.kind == "namespace":
            target = next(
                o
                for o in objs
                if o["kind"] == "Namespace"
                and "env" in o["metadata"].get("labels", {})
                and o["metadata"]["labels"]["env"] != "dev"
            )
        else:
            pols = [o for o in objs if o["kind"] == "NetworkPolicy"]
            target = next(p for p in pols if p["spec"].get("ingress"))
    return objs, target


def bench_deployment(objs: list[dict[str, Any]]) -> dict[str, Any]:
    """A Deployment of 5 replicas beside a generated backend pod, with its labels and
    ports (so the policies that select that pod, or allow it as a peer, select these)."""
    like = next(
        o for o in objs if o["kind"] == "Pod" and o["metadata"]["labels"].get("tier") == "backend"
    )
    labels = dict(like["metadata"]["labels"])
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench-web", "namespace": like["metadata"]["namespace"]},
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": like["spec"]["containers"]},
            },
        },
    }


def changed(target: dict[str, Any], kind: str, k: int) -> dict[str, Any]:
    """The ``k``-th change of ``target``: a k8s policy's or a GlobalNetworkPolicy's port,
    a namespace's ``env`` label (dev on every other change, which policies select on),
    a node's label, or a Deployment's replicas (5, 6, 5, ...) and, every other change,
    its template's ``version`` label (a rollout: every pod replaced, new addresses)."""
    out = json.loads(json.dumps(target))
    if kind == "workload":
        out["spec"]["replicas"] = 5 + k % 2
        out["spec"]["template"]["metadata"]["labels"]["version"] = f"v{k // 2 % 2}"
        return out
    if kind == "node":
        out["metadata"].setdefault("labels", {})["bench"] = str(k)
        return out
    if kind == "namespace":
        if k % 2 == 0:
            out["metadata"]["labels"]["env"] = "dev"
        return out
    for rule in out["spec"]["ingress"]:
        if kind == "gnp":
            rule["destination"]["ports"] = [20000 + k]
        else:
            rule["ports"] = [{"port": 20000 + k}]
    return out


def section_scale(args: argparse.Namespace) -> None:
    print(
        f"== scale: {args.pods} pods, {args.policies} policies, {args.changes} changes"
        f" of one {SCALE_KINDS[args.kind]}"
    )
    objs, target = scale_case(args)
    cluster = cluster_from_objects(objs)
    node = Counter(p.node for p in cluster.pods if p.node and not p.host_network).most_common(1)[0][
        0
    ]
    whole = etcd_scale(args, objs, node, target, patch=False)
    lat = etcd_scale(args, objs, node, target, patch=True)
    print(f"  p99 patched / whole: {pct(lat, 0.99) / pct(whole, 0.99):.2f}x")
    if args.no_files:
        return
    base = files_scale(objs, node, target, args.changes, args.kind)
    print(f"  files (baseline): file written -> rules installed: {dist(base)}")
    print(f"  p99 etcd / files: {pct(lat, 0.99) / pct(base, 0.99):.2f}x")


SCALE_KINDS = {
    "k8s": "Kubernetes NetworkPolicy (a port)",
    "gnp": "Calico GlobalNetworkPolicy (a port)",
    "namespace": "Namespace (a label policies select on)",
    "node": "Node (a label no policy selects on)",
    "workload": "Deployment (replicas, and a rollout of its pod template)",
}


def settled(frozen: int, timeout: float = 120) -> None:
    """Wait until the agent (in this process) has settled its heap after its first sync
    (``agent.settle_heap`` freezes it: the count of frozen objects grows), so the first
    change is not timed behind that one-off collection, as on an agent running a while."""
    deadline = time.perf_counter() + timeout
    while gc.get_freeze_count() <= frozen:
        if time.perf_counter() > deadline:
            raise SystemExit(f"the agent did not settle its heap in {timeout} s")
        time.sleep(0.01)


def etcd_scale(
    args: argparse.Namespace,
    objs: list[dict[str, Any]],
    node: str,
    target: dict[str, Any],
    patch: bool,
) -> list[float]:
    what = "patched loads (the agent)" if patch else "every load whole (baseline)"
    with LocalEtcd() as etcd, netns() as ns:
        config = etcd.config(timeout=120.0)
        client = EtcdClient(config)
        t = time.perf_counter()
        Store(client).apply_objects(objs)
        print(f"  stored in one validated transaction: {time.perf_counter() - t:.2f} s")
        source = EtcdSource(config, patch=patch)
        frozen = gc.get_freeze_count()
        agent, stop, thread = run_agent(source, node, ns)
        follow = Applied(agent, source)
        follow.when(1)
        settled(frozen)
        lat: list[float] = []
        stages: list[dict[str, float]] = []
        key = object_key(config.prefix, *identity(target))
        for k in range(args.changes):
            t0 = time.perf_counter()
            rev = client.put(key, encode(changed(target, args.kind, k)))
            lat.append(follow.when(rev) - t0)
            time.sleep(0.01)
        stop.set()
        source.close()
        thread.join(10)
        samples = agent.metrics.value("sekisho_agent_apply_seconds_count")
        print(f"  etcd, {what}: put -> rules installed on {node}: {dist(lat)}")
        print("    each change (ms):", " ".join(f"{x * 1000:.0f}" for x in lat))
        print(f"    agent stages per sync: {stage_text(follow.stages)}")
        print(f"    loads patched (not whole): {source.parts.patched} of {samples:.0f} syncs")
        del stages
    return lat


def files_scale(
    objs: list[dict[str, Any]], node: str, target: dict[str, Any], changes: int, kind: str
) -> list[float]:
    from sekisho.lab import manifests as mf

    root = Path(tempfile.mkdtemp(prefix="sekisho-bench-"))
    others = [o for o in objs if o is not target]
    mf.write_atomic(root / "00-cluster.yaml", others)
    mf.write_atomic(root / "10-target.yaml", [target])
    lat = []
    with netns() as ns:
        agent, stop, thread = run_agent(root, node, ns)
        deadline = time.perf_counter() + 120
        while agent.generation < 1 and time.perf_counter() < deadline:
            time.sleep(0.01)
        for k in range(changes):
            gen = agent.generation
            t0 = time.perf_counter()
            mf.write_atomic(root / "10-target.yaml", [changed(target, kind, k)])
            while agent.generation <= gen:
                time.sleep(0.0005)
            lat.append(time.perf_counter() - t0)
            time.sleep(0.01)
        stop.set()
        thread.join(10)
    shutil.rmtree(root, ignore_errors=True)
    return lat


# ---- churn: endpoint adds and deletes on one node --------------------------------------------


def section_churn(args: argparse.Namespace) -> None:
    total = args.local_pods * 4
    print(
        f"== churn ({args.shape} shape): {args.local_pods} local pods ({total} in the cluster),"
        f" {args.policies} policies,"
        f" {args.rate}/s pod deletes and re-adds for {args.seconds} s"
    )
    make = generator.generate_apps if args.shape == "apps" else generator.generate
    objs = make(total, policies=args.policies, seed=2)
    cluster = cluster_from_objects(objs)
    node = Counter(p.node for p in cluster.pods if p.node and not p.host_network).most_common(1)[0][
        0
    ]
    # The generator puts about 100 pods on a node: move pods onto this one until it has
    # --local-pods (their addresses stay: unique, which is all the model asks).
    have = sum(1 for p in cluster.pods if p.node == node and not p.host_network)
    for o in objs:
        if have >= args.local_pods:
            break
        spec = o.get("spec", {})
        if o["kind"] == "Pod" and spec.get("nodeName") != node and not spec.get("hostNetwork"):
            spec["nodeName"] = node
            have += 1
    cluster = cluster_from_objects(objs)
    local = [p for p in cluster.pods if p.node == node and not p.host_network]
    print(f"  node {node}: {len(local)} local pods")
    base, base_p99 = churn_run(args, objs, node, local, delta=False)
    print(f"  baseline, the applier's delta path off: {base}")
    got, p99 = churn_run(args, objs, node, local, delta=True)
    print(f"  the agent (delta applies, lingering blocks): {got}")
    print(f"  p99 agent / baseline: {p99 / base_p99:.2f}x")


def churn_run(
    args: argparse.Namespace, objs: list[dict[str, Any]], node: str, local: list[Any], delta: bool
) -> tuple[str, float]:
    with LocalEtcd() as etcd, netns() as ns:
        config = etcd.config(timeout=120.0)
        client = EtcdClient(config)
        Store(client).apply_objects(objs)
        source = EtcdSource(config)
        agent, stop, thread = run_agent(source, node, ns, delta=delta)
        cpu0 = os.times()
        follow = Applied(agent, source)
        follow.when(1)
        # Each local pod's own manifest, deleted and put back as an API server would.
        by_key = {
            f"{o['metadata']['namespace']}/{o['metadata']['name']}": o
            for o in objs
            if o["kind"] == "Pod"
        }
        pod_objs = {p.key: by_key[p.key] for p in local}
        # --writers clients write at once (one alone cannot reach 1,000 writes/s through
        # the gateway), each its own pods, each paced, spread over --writer-procs
        # processes (in this one they would take the agent's interpreter lock; one
        # process of threads reached ~300 writes/s); --txn changes per transaction.
        tmp = Path(tempfile.mkdtemp(prefix="sekisho-bench-"))
        spawn = multiprocessing.get_context("spawn")
        keys = list(pod_objs)
        procs = []
        # Processes start slowly on a loaded machine: the clock starts once every writer
        # has its client (CLOCK_MONOTONIC: the same in every process).
        ready = spawn.Semaphore(0)
        go = spawn.Event()
        start = spawn.Value("d", 0.0)
        for i in range(args.writer_procs):
            mine = {k: pod_objs[k] for k in keys[i :: args.writer_procs]}
            share = max(1, args.writers // args.writer_procs)
            procs.append(
                spawn.Process(
                    target=churn_writers,
                    args=(
                        config,
                        mine,
                        args.rate / args.writer_procs,
                        share,
                        args.seconds,
                        str(tmp / f"writes{i}.json"),
                        (ready, go, start),
                        args.txn,
                    ),
                )
            )
        for p in procs:
            p.start()
        for _ in range(args.writer_procs * max(1, args.writers // args.writer_procs)):
            ready.acquire()
        t_start = start.value = time.perf_counter() + 0.1
        go.set()
        for p in procs:
            p.join()
        writes = []
        for i in range(args.writer_procs):
            got = json.loads((tmp / f"writes{i}.json").read_text())
            writes += [(float(t), int(r)) for t, r in got["writes"]]
        shutil.rmtree(tmp, ignore_errors=True)
        writes.sort()
        done = follow.when(max(rev for _, rev in writes))
        lat = [follow.when(rev) - t0 for t0, rev in writes]
        cpu1 = os.times()
        stop.set()
        source.close()
        thread.join(10)
        syncs = len(follow.log)
    rate = len(writes) / (done - t_start)
    offered = len(writes) / (writes[-1][0] - t_start)
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    sync_cpu = [r.get("cpu", 0.0) for r in follow.stages[1:]]
    return (
        f"{len(writes)} endpoint updates written at {offered:.0f}/s, sustained {rate:.0f}/s"
        f" in {syncs} syncs; change -> installed {dist(lat)}\n"
        f"    agent stages per sync: {stage_text(follow.stages)}\n"
        f"    agent CPU per sync (this process, in the sync's thread): p50"
        f" {ms(pct(sync_cpu or [0.0], 0.5))}, p99 {ms(pct(sync_cpu or [0.0], 0.99))};"
        f" this process's CPU over the run {cpu:.2f} s; load average {os.getloadavg()[0]:.1f}\n"
        f"    loads patched (not whole): {source.parts.patched} of {syncs}"
    ), pct(lat, 0.99)


def churn_writers(
    config: Any,
    pod_objs: dict[str, dict[str, Any]],
    rate: float,
    writers: int,
    seconds: float,
    out: str,
    sync: Any,
    txn: int = 1,
) -> None:
    """One process of the churn's writers: each thread deletes and puts back its share
    of the pods, paced, ``txn`` changes per transaction (each its own key, as an API
    server writes pods, one revision for the lot); (write start, revision) of every
    change into ``out``."""
    keys = list(pod_objs)
    writes: list[tuple[float, int]] = []
    ready, go, start = sync

    def writer(mine: list[str]) -> None:
        c = EtcdClient(config)
        c.get(object_key(config.prefix, "Pod", "_", "_"))  # connected (and logged in)
        interval = writers * txn / rate
        present = dict.fromkeys(mine, True)
        k = 0
        ready.release()
        go.wait()
        t_start = start.value
        while time.perf_counter() < t_start:
            time.sleep(0.001)
        while time.perf_counter() - t_start < seconds:
            batch = [mine[(k * txn + j) % len(mine)] for j in range(min(txn, len(mine)))]
            puts: dict[str, bytes] = {}
            deletes: list[str] = []
            for key in batch:
                ns_, name = key.split("/", 1)
                skey = object_key(config.prefix, "Pod", ns_, name)
                if present[key]:
                    deletes.append(skey)
                else:
                    puts[skey] = encode(pod_objs[key])
                present[key] = not present[key]
            t0 = time.perf_counter()
            if len(batch) == 1 and deletes:
                got = c.call("/kv/deleterange", {"key": _b64(deletes[0])})
                rev = int(got["header"]["revision"])
            elif len(batch) == 1:
                rev = c.put(*next(iter(puts.items())))
            else:
                rev = c.txn([], puts, deletes)[1]
            writes.extend((t0, rev) for _ in batch)
            k += 1
            sleep = t_start + k * interval - time.perf_counter()
            if sleep > 0:
                time.sleep(sleep)

    threads = [threading.Thread(target=writer, args=(keys[i::writers],)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    Path(out).write_text(json.dumps({"writes": writes}))


def _b64(s: str) -> str:
    import base64

    return base64.b64encode(s.encode()).decode()


# ---- fanout: many watchers on one etcd -------------------------------------------------------


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def fan(etcd: LocalEtcd, watchers: int, changes: int) -> tuple[float, list[float]]:
    config = etcd.config(timeout=120.0)  # a cold start of many nodes: lists take long
    seen: list[dict[int, float]] = [{} for _ in range(watchers)]
    stop = threading.Event()
    listed = threading.Barrier(watchers + 1)

    def watch(i: int) -> None:
        client = EtcdClient(config)
        try:
            rev, _ = client.range_prefix(config.prefix)
        except Exception:
            listed.abort()
            raise
        listed.wait()
        for r, _events in client.watch(config.prefix, rev + 1, stop):
            if r > 0:
                seen[i][r] = time.perf_counter()
            if stop.is_set():
                return

    t0 = time.perf_counter()
    threads = [threading.Thread(target=watch, args=(i,), daemon=True) for i in range(watchers)]
    for t in threads:
        t.start()
    listed.wait()
    list_time = time.perf_counter() - t0
    time.sleep(0.5)  # every watch created
    client = EtcdClient(config)
    lat = []
    for k in range(changes):
        t = time.perf_counter()
        rev = client.put(config.prefix + "resources/ConfigMap/_/tick", str(k).encode())
        deadline = t + 10
        while any(rev not in s for s in seen) and time.perf_counter() < deadline:
            time.sleep(0.0005)
        lat.append(max(s.get(rev, deadline) for s in seen) - t)
        time.sleep(0.01)
    stop.set()
    client.put(config.prefix + "resources/ConfigMap/_/tick", b"end")  # wake every stream
    for t in threads:
        t.join(5)
    return list_time, lat


def section_fanout(args: argparse.Namespace) -> None:
    print(
        f"== fanout: {args.watchers} watchers on one etcd with {args.pods} pods, {args.changes} puts"
    )
    objs = generator.generate(args.pods, policies=args.pods // 10, seed=3)
    with LocalEtcd() as etcd:
        Store(EtcdClient(etcd.config(timeout=120.0))).apply_objects(objs)
        assert etcd.proc is not None
        before = rss_mib(etcd.proc.pid)
        one_list, one = fan(etcd, 1, args.changes)
        many_list, many = fan(etcd, args.watchers, args.changes)
        after = rss_mib(etcd.proc.pid)
    print(f"  1 watcher (baseline): list {one_list:.2f} s; delivery {dist(one)}")
    print(
        f"  {args.watchers} watchers: all listed in {many_list:.2f} s; delivery to the last {dist(many)}"
    )
    print(
        f"  delivery p99 ratio: {pct(many, 0.99) / pct(one, 0.99):.1f}x; etcd RSS {before:.0f} -> {after:.0f} MiB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", choices=["lab", "scale", "churn", "fanout"], action="append")
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--background", type=int, default=0, help="lab: extra policies")
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--local-pods", type=int, default=250)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--shape",
        choices=["default", "apps"],
        default="default",
        help="churn: the cluster's shape (generator.py's first shape, or --shape apps's)",
    )
    parser.add_argument("--writers", type=int, default=8, help="churn: writing clients")
    parser.add_argument(
        "--writer-procs", type=int, default=2, help="churn: processes the writers run in"
    )
    parser.add_argument(
        "--txn", type=int, default=10, help="churn: pod changes per etcd transaction"
    )
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument(
        "--kind", choices=sorted(SCALE_KINDS), default="k8s", help="scale: what one change changes"
    )
    parser.add_argument(
        "--no-files", action="store_true", help="scale: leave out the files-source baseline"
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    sections = args.only or ["lab", "scale", "churn", "fanout"]
    for name in sections:
        {
            "lab": section_lab,
            "scale": section_scale,
            "churn": section_churn,
            "fanout": section_fanout,
        }[name](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
