"""The etcd source's incremental path against a from-scratch build, over random event sequences.

The source applies each watch event to its last good cluster (``model.patch.patch_parts``)
when the model can patch it (workloads' pods included), and loads the snapshot whole otherwise. After every batch
of events the patched cluster must equal a full load of the same snapshot (or both
refuse it with the same problems), and the ruleset rendered incrementally from the
patched clusters must equal a full render. No etcd: a fake client hands the source the
list and the watch responses, through the source's own watch code.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from sekisho.agent.agent import IncrementalRenderer, full_renderer
from sekisho.errors import ManifestError
from sekisho.sources.etcd import (
    EtcdConfig,
    EtcdSource,
    KeyValue,
    Snapshot,
    identity,
    object_key,
    snapshot_cluster,
)
from sekisho.sources.store import encode

PREFIX = "/p/"


class FakeClient:
    """The list is what the test's store holds; each :meth:`watch` hands over the queued
    responses (one per revision, as etcd sends a transaction) and ends."""

    def __init__(self, store: dict[str, KeyValue]) -> None:
        self.store = store
        self.revision = 1
        self.queue: list[tuple[int, list[tuple[str, KeyValue]]]] = []

    def range_prefix(self, prefix: str) -> tuple[int, list[KeyValue]]:
        return self.revision, [self.store[k] for k in sorted(self.store)]

    def watch(
        self, prefix: str, start: int, stop: Any = None
    ) -> Iterator[tuple[int, list[tuple[str, KeyValue]]]]:
        queue, self.queue = self.queue, []
        yield from queue

    def write(self, puts: dict[str, bytes | None]) -> None:
        """One transaction: puts (None: delete), one revision, one watch response."""
        self.revision += 1
        events = []
        for key, value in puts.items():
            kv = KeyValue(key, value or b"", self.revision)
            if value is None:
                if self.store.pop(key, None) is None:
                    continue
                events.append(("DELETE", kv))
            else:
                self.store[key] = kv
                events.append(("PUT", kv))
        if events:
            self.queue.append((self.revision, events))


def key_of(obj: dict[str, Any]) -> str:
    return object_key(PREFIX, *identity(obj))


def node(i: int, zone: int | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": f"n{i}", "labels": {"zone": f"z{i % 2 if zone is None else zone}"}},
        "spec": {"podCIDR": f"10.244.{i}.0/24"},
        "status": {"addresses": [{"type": "InternalIP", "address": f"192.168.1.{10 + i}"}]},
    }


def namespace(name: str, team: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"team": team}},
    }


def pod(rng: random.Random, i: int) -> dict[str, Any]:
    ns = ("a", "b", "implicit")[i % 3] if rng.random() < 0.1 else "ab"[i % 2]
    n = rng.randrange(3)
    ip = f"10.244.{n}.{10 + (rng.randrange(12) if rng.random() < 0.05 else i)}"
    spec: dict[str, Any] = {
        "nodeName": f"n{n}" if rng.random() > 0.03 else "n9",  # n9 is not defined
        "containers": [
            {"name": "c", "ports": [{"name": "http", "containerPort": 80 + rng.randrange(2)}]}
        ],
    }
    status: dict[str, Any] = {"podIP": ip}
    roll = rng.random()
    if roll < 0.05:
        spec["hostNetwork"] = True
    elif roll < 0.08:
        status = {}  # no address: IPAM assigns one (from its node's podCIDR)
    elif roll < 0.1:
        status["podIP"] = "192.168.1.10"  # a node's address
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"p{i}",
            "namespace": ns,
            "labels": {"app": rng.choice(["web", "db", "api"]), "tier": rng.choice("xy")},
        },
        "spec": spec,
        "status": status,
    }


def policy(rng: random.Random, i: int) -> dict[str, Any]:
    peer: dict[str, Any] = rng.choice(
        [
            {"podSelector": {"matchLabels": {"app": rng.choice(["web", "db"])}}},
            {"namespaceSelector": {"matchLabels": {"team": rng.choice(["red", "blue"])}}},
            {"ipBlock": {"cidr": "172.16.0.0/16", "except": ["172.16.1.0/24"]}},
        ]
    )
    port: dict[str, Any] = rng.choice([{"port": 80 + rng.randrange(3)}, {"port": "http"}])
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": {"app": rng.choice(["web", "db", "api"])}},
        "ingress": [{"from": [peer], "ports": [port]}],
    }
    if rng.random() < 0.3:
        spec["egress"] = [{"to": [peer]}]
        spec["policyTypes"] = ["Ingress", "Egress"]
    if rng.random() < 0.04:
        spec["policyTypes"] = ["Sideways"]  # invalid: refused, the last good state stays
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"np{i}", "namespace": "ab"[i % 2] if rng.random() > 0.05 else "c"},
        "spec": spec,
    }


def calico_event(rng: random.Random, client: FakeClient) -> dict[str, bytes | None]:
    """A Calico object put or deleted: policies (patched; the renderer recompiles the
    program only), network sets (a namespaced one makes its namespace's label change a
    rebuild), a tier (a policy in a tier that is not there is refused)."""
    roll = rng.random()
    v3 = "projectcalico.org/v3"
    if roll < 0.15:
        gone = [k for k in client.store if "projectcalico.org" in k]
        return {rng.choice(gone): None} if gone else {}
    if roll < 0.65:
        kind = rng.choice(["GlobalNetworkPolicy", "NetworkPolicy", "StagedGlobalNetworkPolicy"])
        tier = rng.choice(["default", "default", "security"])
        name = f"cp{rng.randrange(3)}"
        meta: dict[str, Any] = {"name": name if tier == "default" else f"{tier}.{name}"}
        if kind == "NetworkPolicy":
            meta["namespace"] = rng.choice("ab")
        rule: dict[str, Any] = {
            "action": rng.choice(["Allow", "Deny", "Pass"]),
            "source": rng.choice(
                [{"namespaceSelector": "team == 'red'"}, {"selector": "role == 'x'"}, {}]
            ),
        }
        if rng.random() < 0.5:
            rule["protocol"] = "TCP"
            rule["destination"] = {"ports": [80 + rng.randrange(3)]}
        spec: dict[str, Any] = {
            "tier": tier,
            "order": rng.randrange(4) * 10,
            "selector": rng.choice(["app == 'web'", "app == 'db'", "all()"]),
            "ingress": [rule],
        }
        if kind.startswith("Staged"):
            spec["stagedAction"] = "Set"
        elif kind == "GlobalNetworkPolicy" and rng.random() < 0.3:
            # host endpoints' stages: the renderer's host chains follow the program
            spec["selector"] = "has(host)"
            spec.update(rng.choice([{"doNotTrack": True}, {"preDNAT": True}, {}]))
            spec["applyOnForward"] = True
            if spec.get("preDNAT"):
                spec["ingress"][0]["action"] = rng.choice(["Allow", "Deny"])
                spec["ingress"][0].pop("destination", None)
                spec["ingress"][0].pop("protocol", None)
        obj = {"apiVersion": v3, "kind": kind, "metadata": meta, "spec": spec}
    elif roll < 0.75:
        n = rng.randrange(2)
        obj = {
            "apiVersion": v3,
            "kind": "HostEndpoint",
            "metadata": {"name": f"n{n}-eth0", "labels": {"host": f"n{n}"}},
            "spec": {
                "node": f"n{n}",
                "interfaceName": "eth0",
                "expectedIPs": [f"192.168.1.{10 + n}"],
            },
        }
    elif roll < 0.85:
        kind = rng.choice(["GlobalNetworkSet", "NetworkSet"])
        meta = {"name": f"set{rng.randrange(2)}", "labels": {"role": rng.choice("xy")}}
        if kind == "NetworkSet":
            meta["namespace"] = rng.choice("ab")
        nets = [f"172.16.{rng.randrange(4)}.0/24"]
        obj = {"apiVersion": v3, "kind": kind, "metadata": meta, "spec": {"nets": nets}}
    else:
        obj = {"apiVersion": v3, "kind": "Tier", "metadata": {"name": "security"}, "spec": {}}
        obj["spec"]["order"] = rng.randrange(1, 4) * 100
    return {key_of(obj): encode(obj)}


def node_policy(rng: random.Random) -> dict[str, Any]:
    """An AdminNetworkPolicy whose egress peers are nodes by label: a node's label change
    moves its address in or out of a set (the renderer follows other nodes' entities)."""
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": "AdminNetworkPolicy",
        "metadata": {"name": f"to-nodes-{rng.randrange(2)}"},
        "spec": {
            "priority": rng.randrange(3),
            "subject": {"namespaces": {"matchLabels": {"team": rng.choice(["red", "blue"])}}},
            "egress": [
                {
                    "action": rng.choice(["Allow", "Deny"]),
                    "to": [{"nodes": {"matchLabels": {"zone": rng.choice(["z0", "z1"])}}}],
                }
            ],
        },
    }


def workload(rng: random.Random) -> dict[str, Any]:
    """A Deployment or StatefulSet: its replicas or labels change, its pods come and go
    (patched: only its pods are taken out and put in; the renderer follows them)."""
    kind = rng.choice(["Deployment", "StatefulSet"])
    app = rng.choice(["web", "db", "api"])
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": f"w{rng.randrange(3)}", "namespace": rng.choice("ab")},
        "spec": {
            "replicas": rng.randrange(5),
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app, "tier": rng.choice("xy")}},
                "spec": {
                    "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 80}]}]
                },
            },
        },
    }


def event(rng: random.Random, client: FakeClient) -> dict[str, bytes | None]:
    if rng.random() < 0.1:
        if rng.random() < 0.25:
            gone = [k for k in client.store if "/Deployment/" in k or "/StatefulSet/" in k]
            return {rng.choice(gone): None} if gone else {}
        obj = workload(rng)
        return {key_of(obj): encode(obj)}
    if rng.random() < 0.25:
        return calico_event(rng, client)
    if rng.random() < 0.05:
        obj = node_policy(rng)
        return {key_of(obj): encode(obj)}
    roll = rng.random()
    i = rng.randrange(14)
    if roll < 0.35:
        obj = pod(rng, i)
        return {key_of(obj): encode(obj)}
    if roll < 0.5:
        pods = [k for k in client.store if "/Pod/" in k]
        return {rng.choice(pods): None} if pods else {}
    if roll < 0.72:
        obj = policy(rng, i % 6)
        return {key_of(obj): encode(obj)}
    if roll < 0.8:
        pols = [k for k in client.store if "/NetworkPolicy/" in k]
        return {rng.choice(pols): None} if pols else {}
    if roll < 0.86:
        ns = namespace(rng.choice("abc"), rng.choice(["red", "blue"]))
        return {key_of(ns): encode(ns)}
    if roll < 0.89:
        i = rng.randrange(4)
        n = node(i, rng.randrange(2))  # labels change; n2 and n3 come and go
        if i >= 2 and rng.random() < 0.3:
            return {key_of(n): None}
        return {key_of(n): encode(n)}
    if roll < 0.9:
        return {object_key(PREFIX, "Pod", "a", f"p{i}"): b"{not json"}
    if roll < 0.92:
        obj = pod(rng, i)
        return {object_key(PREFIX, "Pod", "b", "elsewhere"): encode(obj)}  # the wrong key
    if roll < 0.94:
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "a"}}
        return {key_of(cm): encode(cm)}  # a kind sekisho does not read: refused
    if roll < 0.97:
        # a bad object removed again: the store is good again
        return {
            k: None
            for k in client.store
            if "elsewhere" in k or "ConfigMap" in k or client.store[k].value == b"{not json"
        }
    return {PREFIX + "meta/write": str(rng.random()).encode()}


@pytest.mark.parametrize("seed", range(6))
def test_patched_loads_equal_a_full_build_after_any_events(seed: int) -> None:
    rng = random.Random(seed)
    store: dict[str, KeyValue] = {}
    client = FakeClient(store)
    objs = [node(0), node(1), node(2), namespace("a", "red"), namespace("b", "blue")]
    objs += [pod(rng, i) for i in range(10)] + [policy(rng, i) for i in range(4)]
    good: dict[str, bytes | None] = {}
    for obj in objs:
        if obj["kind"] == "Pod":  # start from a good store: the bad ones come later
            obj["spec"]["nodeName"] = "n0"
            obj["status"]["podIP"] = f"10.244.0.{10 + int(obj['metadata']['name'][1:])}"
            obj["spec"].pop("hostNetwork", None)
            obj["metadata"]["namespace"] = "a"
        good[key_of(obj)] = encode(obj)
    client.write(good)
    client.queue = []
    source = EtcdSource(EtcdConfig(("http://127.0.0.1:1",), prefix=PREFIX), client=client)  # type: ignore[arg-type]
    source._list("start")
    renderers = {n: IncrementalRenderer() for n in ("n0", "n1")}
    outcomes = {"valid": 0, "invalid": 0}
    patched = 0
    broken: list[str] = []
    for step in range(150):
        batch: dict[str, bytes | None] = {}
        if broken and rng.random() < 0.6:  # the operator removes what was refused
            batch.update({k: None for k in broken if k in store})
        for _ in range(rng.choice([1, 1, 1, 2, 4])):
            batch.update(event(rng, client))
        if rng.random() < 0.2:  # a burst of endpoint churn: many good pods come and go
            for i in rng.sample(range(14), 10):
                obj = pod(rng, i)
                obj["spec"]["nodeName"] = f"n{i % 2}"
                obj["spec"].pop("hostNetwork", None)
                obj["status"] = {"podIP": f"10.244.{i % 2}.{10 + i}"}
                obj["metadata"]["namespace"] = "ab"[i % 2]
                batch[key_of(obj)] = encode(obj) if rng.random() < 0.7 else None
        client.write(batch)
        if rng.random() < 0.04:
            source._list("test")  # a relist (compaction): the next load is a full one
            client.queue = []
        else:
            source._follow()
        full_snap = Snapshot(client.revision, dict(store))
        before = source.parts.patched
        try:
            want = snapshot_cluster(full_snap, PREFIX)
        except ManifestError as exc:
            with pytest.raises(ManifestError) as err:
                source.load()
            assert sorted(map(str, err.value.problems)) == sorted(map(str, exc.problems)), step
            outcomes["invalid"] += 1
            broken = [p.file.removeprefix("etcd:") for p in exc.problems]
            continue
        got = source.load()
        patched += source.parts.patched - before
        assert got == want, step
        assert [p.source for p in got.pods] == [p.source for p in want.pods], step
        for n, renderer in renderers.items():
            assert renderer(got, n, "nftables", "sekisho") == full_renderer(
                want, n, "nftables", "sekisho"
            ), (step, n)
        outcomes["valid"] += 1
    assert outcomes["valid"] > 50 and outcomes["invalid"] > 10, outcomes
    assert patched > 30, patched  # most loads were patches, not full loads


def test_a_patch_takes_only_what_changed() -> None:
    """A pod or policy change keeps every other object the same Python object (the
    renderer skips them without comparing), and compiles only the changed policy."""
    rng = random.Random(1)
    store: dict[str, KeyValue] = {}
    client = FakeClient(store)
    objs = [node(0), namespace("a", "red"), namespace("b", "blue")]
    pods = [pod(rng, i) for i in range(6)]
    for i, p in enumerate(pods):
        p["spec"] = {"nodeName": "n0", "containers": [{"name": "c"}]}
        p["status"] = {"podIP": f"10.244.0.{10 + i}"}
        p["metadata"]["namespace"] = "a"
    pols = [policy(rng, i) for i in range(3)]
    for p in pols:
        p["metadata"]["namespace"] = "a"
        p["spec"].pop("policyTypes", None)
        p["spec"].pop("egress", None)
    client.write({key_of(o): encode(o) for o in objs + pods + pols})
    client.queue = []
    source = EtcdSource(EtcdConfig(("http://127.0.0.1:1",), prefix=PREFIX), client=client)  # type: ignore[arg-type]
    first = source.load()
    assert source.parts.base is not None
    changed = json.loads(json.dumps(pols[1]))
    changed["spec"]["ingress"][0]["ports"] = [{"port": 9999}]
    client.write({key_of(changed): encode(changed)})
    source._follow()
    second = source.load()
    assert source.parts.patched == 1
    assert second.pods is first.pods and second.nodes is first.nodes
    assert [a is b for a, b in zip(first.policies, second.policies, strict=True)] == [
        True,
        False,
        True,
    ]
    client.write({key_of(pods[2]): None})
    source._follow()
    third = source.load()
    assert source.parts.patched == 2
    assert third.policies is second.policies
    assert [p.name for p in third.pods] == [p["metadata"]["name"] for p in pods if p is not pods[2]]
    assert all(any(a is b for b in second.pods) for a in third.pods)
    # A node with its addresses is patched in; one without is the full load (the join
    # assigns them), the same result as one.
    client.write({key_of(node(1)): encode(node(1))})
    source._follow()
    assert source.load() == snapshot_cluster(Snapshot(client.revision, dict(store)), PREFIX)
    assert source.parts.patched == 3
    bare = node(2)
    del bare["status"]
    client.write({key_of(bare): encode(bare)})
    source._follow()
    assert source.load() == snapshot_cluster(Snapshot(client.revision, dict(store)), PREFIX)
    assert source.parts.patched == 3
    assert json.loads(store[key_of(node(1))].value)["metadata"]["name"] == "n1"
