"""Delta applies leave the kernel exactly as a full apply does, over random churn (both backends).

A generated cluster's busiest node, then random steps: local pods deleted and put
back, a pod's labels changed, a policy removed or put back. After each step the
same incrementally rendered ruleset is applied three ways, each in a namespace of
its own: by an applier that keeps its cache and lingers unreferenced blocks
(the agent's), by one that deletes them at once, and from scratch into an empty
namespace. The table the kernel lists must be the same in all three, block by
block (sets with their elements, chains with their rules; for iptables every
chain's rules in order and every IP set's members, both families), except that
the lingering applier may hold extra sets and chains nothing refers to; once
their time is out, a resync removes them and the three are equal.
"""

from __future__ import annotations

import importlib.util
import random
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sk_kernel import PREFIX, sh, throwaway_netns

from sekisho.agent.agent import IncrementalRenderer, full_renderer
from sekisho.dataplane import IptablesApplier, LibnftRunner, NftApplier
from sekisho.dataplane.nftables import normalize_nft, table_blocks
from sekisho.model import cluster_from_objects

pytestmark = pytest.mark.privileged

LINGER = 3.0


def _generator() -> Any:
    path = Path(__file__).resolve().parents[2] / "bench" / "generator.py"
    spec = importlib.util.spec_from_file_location("sekisho_bench_generator_delta", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def blocks(ns: str, backend: str = "nftables") -> dict[tuple[str, str], tuple[str, ...]]:
    """Our objects as the kernel lists them: (kind, name) -> body."""
    if backend == "nftables":
        got = table_blocks(normalize_nft(sh(ns, f"nft list table inet {PREFIX}")))
        assert got is not None
        return got
    out: dict[tuple[str, str], list[str]] = {}
    for tool in ("iptables", "ip6tables"):
        for line in sh(ns, f"{tool}-save -t filter").splitlines():
            if line.startswith(f":{PREFIX}"):
                out.setdefault((tool, line[1:].split()[0]), [])
            elif line.startswith("-A ") and PREFIX in line:
                chain = line.split()[1]
                out.setdefault((tool, chain), []).append(line)
    for line in sh(ns, "ipset save").splitlines():
        words = line.split()
        if len(words) >= 2 and words[1].startswith(PREFIX):
            if words[0] == "create":
                out.setdefault(("set", words[1]), []).append(" ".join(words[2:4]))
            elif words[0] == "add":
                out.setdefault(("set", words[1]), []).append(" ".join(words[2:]))
    return {k: tuple(v if k[0] != "set" else v[:1] + sorted(v[1:])) for k, v in out.items()}


def make(backend: str, ns: str, **kw: Any) -> IptablesApplier | NftApplier:
    if backend == "nftables":
        return NftApplier(LibnftRunner(ns), PREFIX, **kw)
    return IptablesApplier(LibnftRunner(ns), PREFIX, **kw)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str, str]]:
    with ExitStack() as stack:
        yield tuple(stack.enter_context(throwaway_netns()) for _ in range(3))  # type: ignore[misc]


def _step(rng: random.Random, objs: list[dict[str, Any]], local: list[str], held: dict) -> str:
    """Change ``objs`` in place at random; say what changed."""
    what = rng.random()
    pods = {
        f"{o['metadata']['namespace']}/{o['metadata']['name']}": o
        for o in objs
        if o["kind"] == "Pod"
    }
    if what < 0.6:  # churn: some local pods go, some come back
        picked = rng.sample(local, rng.randint(1, min(12, len(local))))
        for key in picked:
            if key in pods:
                held[key] = pods[key]
                objs.remove(pods[key])
            elif key in held:
                objs.append(held.pop(key))
        return f"toggled {len(picked)} pods"
    if what < 0.8:  # a pod's labels change (it moves between policies and sets)
        present = [k for k in local if k in pods]
        if not present:
            return "nothing"
        pod = pods[rng.choice(present)]
        labels = pod["metadata"].setdefault("labels", {})
        labels["tier"] = rng.choice(["frontend", "backend", "db", "other"])
        return "relabelled a pod"
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    gone = held.setdefault("_policies", [])
    if gone and (rng.random() < 0.5 or not policies):
        objs.append(gone.pop())
        return "policy back"
    if policies:
        victim = rng.choice(policies)
        objs.remove(victim)
        gone.append(victim)
        return "policy removed"
    return "nothing"


@pytest.mark.parametrize(("backend", "seed"), [("nftables", 1), ("nftables", 2), ("iptables", 3)])
def test_delta_applies_equal_a_full_apply(
    backend: str, seed: int, namespaces: tuple[str, str, str]
) -> None:
    lingering_ns, prompt_ns, fresh_ns = namespaces
    objs = _generator().generate(160, policies=50, seed=seed)
    cluster = cluster_from_objects(objs)
    node = Counter(p.node for p in cluster.pods if p.node and not p.host_network).most_common(1)[0][
        0
    ]
    local = [p.key for p in cluster.pods if p.node == node and not p.host_network]
    clock = Clock()
    lingering = make(backend, lingering_ns, linger=LINGER, clock=clock)
    prompt = make(backend, prompt_ns)
    renderer = IncrementalRenderer()
    rng = random.Random(seed)
    held: dict[str, Any] = {}
    lingered = 0
    for step in range(14):
        what = "first" if step == 0 else _step(rng, objs, local, held)
        cluster = cluster_from_objects(objs)
        rs = renderer(cluster, node, backend, PREFIX)  # type: ignore[arg-type]
        assert rs == full_renderer(cluster, node, backend, PREFIX), what  # type: ignore[arg-type]
        lingering.apply(rs)  # type: ignore[arg-type]
        prompt.apply(rs)  # type: ignore[arg-type]
        fresh = make(backend, fresh_ns)
        fresh.cleanup()
        fresh.apply(rs)  # type: ignore[arg-type]
        want = blocks(fresh_ns, backend)
        assert blocks(prompt_ns, backend) == want, f"step {step} ({what}): delta != full"
        have = blocks(lingering_ns, backend)
        extra = set(have) - set(want)
        lingered += len(extra)
        assert {b: have[b] for b in want} == want, f"step {step} ({what}): lingering != full"
        assert all(name.startswith(PREFIX + "-") for _, name in extra)
        assert lingering.drift(rs) == (), "a lingering block is not drift"  # type: ignore[arg-type]
        clock.now += 1.0
    assert lingered, "churn left some block lingering"
    clock.now += LINGER
    lingering.resync(rs)  # type: ignore[arg-type]
    assert blocks(lingering_ns, backend) == blocks(fresh_ns, backend), "out of time: deleted"
