"""The lab on its etcd: three members with TLS and roles, one agent per node watching them.

Faults (a member killed, the whole store down, a node cut off while the store
compacts, an object nobody can read) and churn (about a thousand policy and label
changes through the store while probes run, an agent SIGKILLed and restarted in
the middle): no probe ever passes what no state in flight allows (0 fail-open),
and every node converges to the final state.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sekisho.lab import probe as pr
from sekisho.lab.core import Lab
from sekisho.lab.reach import measure
from sekisho.lab.store import LabStore
from sekisho.model import cluster_from_objects
from sekisho.semantics import compute_matrix
from sekisho.sources.etcd import object_key

from .conftest import lab_namespaces, node_object, unique_name

pytestmark = pytest.mark.privileged

CHURN = int(os.environ.get("SEKISHO_CHURN", "1000"))
"""Changes in the churn test (CI: 1,000)."""


def pod(name: str, ip: str, node_name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "dev", "labels": labels},
        "spec": {
            "nodeName": node_name,
            "containers": [{"name": "c", "ports": [{"containerPort": 80, "protocol": "TCP"}]}],
        },
        "status": {"podIP": ip},
    }


def policy(name: str, target: str, peer: dict[str, str] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": {"app": target}},
        "policyTypes": ["Ingress"],
    }
    if peer is not None:
        spec["ingress"] = [
            {"from": [{"podSelector": {"matchLabels": peer}}], "ports": [{"port": 80}]}
        ]
    else:
        spec["podSelector"] = {}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "dev"},
        "spec": spec,
    }


BASE = [
    node_object("n1", "192.168.110.11", "10.244.1.0/24"),
    node_object("n2", "192.168.110.12", "10.244.2.0/24"),
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dev"}},
    pod("never", "10.244.1.6", "n1", {"app": "never"}),
    pod("s1", "10.244.2.5", "n2", {"app": "s1"}),
    pod("s2", "10.244.1.7", "n1", {"app": "s2"}),
    policy("deny-all", "", None),
]
P1 = policy("allow-s1", "s1", {"app": "client"})
P2 = policy("allow-s2", "s2", {"role": "fast"})


def client(fast: bool) -> dict[str, Any]:
    return pod(
        "client", "10.244.1.5", "n1", {"app": "client", **({"role": "fast"} if fast else {})}
    )


@dataclass(frozen=True)
class State:
    p1: bool = False
    p2: bool = False
    fast: bool = False

    def objects(self) -> list[dict[str, Any]]:
        return [*BASE, client(self.fast), *([P1] if self.p1 else []), *([P2] if self.p2 else [])]


PAIRS = [
    ("dev/client", "dev/s1"),
    ("dev/client", "dev/s2"),
    ("dev/never", "dev/s1"),
    ("dev/never", "dev/s2"),
]
_allowed: dict[State, tuple[bool, ...]] = {}


def allowed(state: State) -> tuple[bool, ...]:
    """Per pair of PAIRS, whether the semantics allow TCP/80 in ``state``."""
    if state not in _allowed:
        m = compute_matrix(cluster_from_objects(state.objects()), [(80, "TCP")])
        keys = [p.key for p in m.pods]
        table = m.probes[0].allowed
        _allowed[state] = tuple(bool(table[keys.index(a), keys.index(b)]) for a, b in PAIRS)
    return _allowed[state]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    name = unique_name()
    lab = Lab.up(
        State().objects(), name=name, root=Path(tmp_path_factory.mktemp("labs")), store="etcd"
    )
    try:
        yield lab
    finally:
        lab.down()
        assert not lab_namespaces(name)


def store(lab: Lab) -> LabStore:
    assert lab.store is not None
    return lab.store  # type: ignore[no-any-return]


def set_state(lab: Lab, state: State) -> None:
    """Write ``state`` through the store and wait until every agent enforces it."""
    store(lab).apply(state.objects(), prune=lambda ident: ident[0] == "NetworkPolicy")
    lab.wait_agents(None, 30, cluster_from_objects(state.objects()))


def check_probes(lab: Lab, state: State) -> None:
    got = measure(cluster_from_objects(state.objects()), lab.plan, [(80, "TCP")], timeout=0.5)
    assert got.mismatches == 0


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def nodes(lab: Lab) -> list[str]:
    return [n.name for n in lab.plan.nodes]


def test_agents_learn_the_cluster_from_etcd(lab: Lab) -> None:
    s = store(lab)
    assert lab.state.store == "etcd"
    stored = s.run(lambda: s.store.get("pod"))
    assert sorted(o["metadata"]["name"] for o in stored) == ["client", "never", "s1", "s2"]
    state = State(p1=True)
    set_state(lab, state)
    check_probes(lab, state)
    for n in nodes(lab):
        assert s.readyz(n)[0] == 200


def test_one_member_killed_nothing_lost(lab: Lab) -> None:
    s = store(lab)
    set_state(lab, State())
    s.kill_member(0)
    try:
        state = State(p1=True, p2=True, fast=True)
        set_state(lab, state)  # the writer and the agents move to the members left
        check_probes(lab, state)
    finally:
        s.start_member(0)
        s.wait_healthy()


def test_store_down_agents_keep_enforcing_then_converge(lab: Lab) -> None:
    s = store(lab)
    before = State(p1=True)
    set_state(lab, before)
    for i in range(3):
        s.kill_member(i)
    try:
        for n in nodes(lab):
            wait_for(lambda n=n: s.readyz(n)[0] == 503, f"{n} reports degraded")
            assert "enforcing the last good state" in s.readyz(n)[1]
        check_probes(lab, before)  # every node still enforces its last state
    finally:
        for i in range(3):
            s.start_member(i)
        s.wait_healthy()
    after = State(p2=True, fast=True)
    set_state(lab, after)
    check_probes(lab, after)
    for n in nodes(lab):
        wait_for(lambda n=n: s.readyz(n)[0] == 200, f"{n} ready again")


def test_cut_off_node_relists_after_compaction(lab: Lab) -> None:
    s = store(lab)
    set_state(lab, State())
    s.partition("n1", True)
    try:
        wait_for(lambda: s.readyz("n1")[0] == 503, "n1 reports degraded")
        s.apply(State(p1=True).objects(), prune=lambda ident: ident[0] == "NetworkPolicy")
        state = State(p1=True, p2=True, fast=True)
        s.apply(state.objects(), prune=lambda ident: ident[0] == "NetworkPolicy")
        s.compact()  # the revision n1 would watch from is gone
    finally:
        s.partition("n1", False)
    lab.wait_agents(None, 30, cluster_from_objects(state.objects()))
    check_probes(lab, state)
    _, metrics = s.agent_get("n1", "/metrics")
    assert 'sekisho_agent_store_relists_total{reason="compacted"} 1.0' in metrics


def test_unreadable_object_keeps_the_last_good_state(lab: Lab) -> None:
    s = store(lab)
    state = State(p1=True)
    set_state(lab, state)
    key = object_key("/sekisho/", "NetworkPolicy", "dev", "garbage")
    s.put_raw(key, b'{"kind": "NetworkPolicy", "metadata": ')  # another writer's mistake
    for n in nodes(lab):
        wait_for(lambda n=n: s.readyz(n)[0] == 503, f"{n} refuses the store's content")
        assert "not JSON" in s.readyz(n)[1]
    check_probes(lab, state)
    s.put_raw(key, json.dumps(policy("garbage", "nothing", {"app": "x"})).encode())
    fixed = cluster_from_objects([*state.objects(), policy("garbage", "nothing", {"app": "x"})])
    lab.wait_agents(None, 30, fixed)
    for n in nodes(lab):
        wait_for(lambda n=n: s.readyz(n)[0] == 200, f"{n} ready again")
    s.delete([("NetworkPolicy", "dev", "garbage")])


@dataclass
class Timeline:
    """When each change started and when each state was seen enforced on every node."""

    states: list[State] = field(default_factory=list)
    started: list[float] = field(default_factory=list)
    """``started[k]``: when the write of ``states[k]`` began (k = 0: before the churn)."""
    confirmed: list[tuple[float, int]] = field(default_factory=list)
    """(time, k): every node enforced ``states[k]`` at that time."""

    def window(self, t0: float, t1: float) -> range:
        """The states a probe between t0 and t1 may meet: from the last one confirmed
        before t0 to the last one whose write began before t1."""
        lo = max((k for t, k in self.confirmed if t <= t0), default=0)
        hi = max(k for k, t in enumerate(self.started) if t <= t1)
        return range(lo, hi + 1)


def test_churn_never_fails_open(lab: Lab) -> None:
    s = store(lab)
    state = State()
    set_state(lab, state)
    rng = random.Random(12)
    tl = Timeline([state], [time.monotonic()], [(time.monotonic(), 0)])
    plans = {key: lab.plan.pod(key) for pair in PAIRS for key in pair}
    copies = 5  # each round probes every pair this many times at once (fresh source ports)
    probes = [
        pr.Probe(plans[a].netns, str(plans[b].ip), 80, "TCP", pod=b)  # type: ignore[union-attr]
        for _ in range(copies)
        for a, b in PAIRS
    ]
    observed: list[tuple[float, float, list[bool]]] = []
    stop = threading.Event()

    def probing() -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            out = pr.run(probes, timeout=0.3)
            observed.append((t0, time.monotonic(), [o.reached for o in out]))

    prober = threading.Thread(target=probing)
    prober.start()
    restarted = False
    try:
        for k in range(1, CHURN + 1):
            which = rng.randrange(3)
            if which == 0:
                state = State(not state.p1, state.p2, state.fast)
            elif which == 1:
                state = State(state.p1, not state.p2, state.fast)
            else:
                state = State(state.p1, state.p2, not state.fast)
            tl.states.append(state)
            tl.started.append(time.monotonic())
            if which == 2:
                rev = s.apply([client(state.fast)]).revision  # a label change
            elif getattr(state, f"p{which + 1}"):
                rev = s.apply([P1 if which == 0 else P2]).revision
            else:
                rev = s.delete(
                    [("NetworkPolicy", "dev", "allow-s1" if which == 0 else "allow-s2")]
                ).revision
            if k == CHURN // 2 and not restarted:
                s.restart_agent("n1")  # SIGKILL mid-churn: its rules stay, the new one converges
                restarted = True
            if k % 25 == 0 or k == CHURN:
                # Confirmed only by a sync of this write's revision or later: an equal
                # fingerprint could be an older state's, with the agent still to apply
                # the states in between (older than this one) after it.
                lab.wait_agents(None, 30, cluster_from_objects(state.objects()), revision=rev)
                tl.confirmed.append((time.monotonic(), k))
    finally:
        stop.set()
        prober.join()
    fail_open = fail_closed = 0
    for t0, t1, reached in observed:
        window = tl.window(t0, t1)
        for i, got in enumerate(reached):
            possible = {allowed(tl.states[k])[i % len(PAIRS)] for k in window}
            if got and True not in possible:
                fail_open += 1
            if not got and False not in possible:
                fail_closed += 1
    total = len(observed) * len(probes)
    print(
        f"churn: {CHURN} changes, {total} probes, fail-open {fail_open}, fail-closed {fail_closed}"
    )
    assert len(observed) >= 5  # probes ran through the churn
    assert fail_open == 0
    assert fail_closed == 0
    check_probes(lab, state)
