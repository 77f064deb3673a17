"""The store against a real etcd on loopback: apply/delete/get, the watched source, TLS and roles.

Each test uses its own key prefix on one etcd per module (a few start their own
to stop it). Nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sekisho.cli.main import main
from sekisho.errors import ManifestError, StoreConflict, StoreUnavailable
from sekisho.lab.etcd import AGENT, WRITER, LocalEtcd
from sekisho.sources.etcd import EtcdClient, EtcdConfig, EtcdSource, StoreRefused, object_key
from sekisho.sources.store import Store

_prefixes = itertools.count()


def ns(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def pod(name: str, ip: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "dev", "labels": labels or {"app": name}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c"}]},
        "status": {"podIP": ip},
    }


def deny_all(name: str = "deny") -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "dev"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }


BAD_POLICY = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "bad", "namespace": "dev"},
    "spec": {"podSelector": {}, "policyTypes": ["Sideways"]},
}


@pytest.fixture(scope="module")
def etcd() -> Iterator[LocalEtcd]:
    with LocalEtcd() as e:
        yield e


@pytest.fixture
def config(etcd: LocalEtcd) -> EtcdConfig:
    return etcd.config(prefix=f"/t{next(_prefixes)}/")


def wait_for(source: EtcdSource, cond: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        source.wait(0.1)


def test_apply_get_delete_round_trip(config: EtcdConfig) -> None:
    store = Store(EtcdClient(config))
    out = store.apply_objects([ns("dev"), pod("a", "10.244.1.5"), deny_all()])
    assert [what for _, what in out.results] == ["created"] * 3
    again = store.apply_objects([deny_all()])
    assert again.results == ((("NetworkPolicy", "dev", "deny"), "unchanged"),)
    assert again.revision == out.revision  # nothing written
    assert [o["metadata"]["name"] for o in store.get("pods")] == ["a"]
    assert store.get("networkpolicy", "deny", "dev")[0]["spec"]["policyTypes"] == ["Ingress"]
    gone = store.delete([("NetworkPolicy", "dev", "deny")])
    assert gone.results == ((("NetworkPolicy", "dev", "deny"), "deleted"),)
    assert store.get("NetworkPolicy") == []


def test_calico_and_kubernetes_policies_of_one_name_have_their_own_keys(
    config: EtcdConfig,
) -> None:
    calico = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "NetworkPolicy",
        "metadata": {"name": "deny", "namespace": "dev"},
        "spec": {"selector": "all()", "types": ["Ingress"]},
    }
    store = Store(EtcdClient(config))
    out = store.apply_objects([ns("dev"), deny_all(), calico])
    assert [i for i, _ in out.results][1:] == [
        ("NetworkPolicy", "dev", "deny"),
        ("NetworkPolicy.projectcalico.org", "dev", "deny"),
    ]
    assert len(store.get("networkpolicy")) == 1
    assert store.get("NetworkPolicy.projectcalico.org")[0]["spec"]["selector"] == "all()"
    store.delete([("NetworkPolicy.projectcalico.org", "dev", "deny")])
    assert store.get("NetworkPolicy.projectcalico.org") == []


def test_a_bad_object_in_an_apply_writes_nothing(config: EtcdConfig) -> None:
    store = Store(EtcdClient(config))
    store.apply_objects([ns("dev")])
    rev, before = store.read()
    with pytest.raises(ManifestError) as err:
        store.apply_objects([pod("a", "10.244.1.5"), deny_all(), BAD_POLICY])
    assert any("policyTypes" in p.path for p in err.value.problems)
    assert store.read() == (rev, before)


def test_an_apply_is_validated_with_what_the_store_holds(config: EtcdConfig) -> None:
    store = Store(EtcdClient(config))
    store.apply_objects([ns("dev"), pod("a", "10.244.1.5")])
    with pytest.raises(ManifestError) as err:
        store.apply_objects([pod("b", "10.244.1.5")])  # the address of a stored pod
    text = "\n".join(map(str, err.value.problems))
    assert "10.244.1.5" in text
    assert [o["metadata"]["name"] for o in store.get("pod")] == ["a"]


def test_a_write_that_raced_another_is_refused_not_lost(config: EtcdConfig) -> None:
    client = EtcdClient(config)
    store = Store(client, retries=0)
    store.apply_objects([ns("dev")])
    other = Store(EtcdClient(config))
    real_read = store.read

    def read_then_race() -> Any:
        got = real_read()
        other.apply_objects([pod("racer", "10.244.1.9")])  # lands between read and write
        return got

    store.read = read_then_race  # type: ignore[method-assign]
    with pytest.raises(StoreConflict):
        store.apply_objects([pod("mine", "10.244.1.10")])
    names = [o["metadata"]["name"] for o in other.get("pod")]
    assert names == ["racer"]  # the racer's write stands, ours was not half made
    store.read = real_read  # type: ignore[method-assign]
    retried = Store(client, retries=2)
    retried.apply_objects([pod("mine", "10.244.1.10")])
    assert sorted(o["metadata"]["name"] for o in other.get("pod")) == ["mine", "racer"]


def test_cli_apply_get_delete(config: EtcdConfig, tmp_path: Path, capsys: Any) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: dev}\n---\n"
        + json.dumps(deny_all())
        + "\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: bad, namespace: dev}\nspec:\n  podSelector: {}\n"
        "  policyTypes: [Sideways]\n"
    )
    args = ["--etcd", config.endpoints[0], "--etcd-prefix", config.prefix]
    assert main(["apply", "-f", str(bad), "-f", str(good), *args]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:6: NetworkPolicy dev/bad: spec.policyTypes[0]" in err
    assert "nothing written" in err
    assert main(["get", "namespace", *args]) == 1  # nothing was written
    capsys.readouterr()
    assert main(["apply", "-f", str(good), *args]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Namespace dev created",
        "NetworkPolicy dev/deny created",
    ]
    assert main(["store", "get", "networkpolicy", "deny", "-n", "dev", "-o", "json", *args]) == 0
    assert json.loads(capsys.readouterr().out)["metadata"]["name"] == "deny"
    assert main(["get", "all", "-o", "yaml", *args]) == 0  # every command reads it so
    dump = tmp_path / "dump.yaml"
    dump.write_text(capsys.readouterr().out)
    assert main(["validate", str(dump)]) == 0
    capsys.readouterr()
    assert main(["validate", *args]) == 0
    capsys.readouterr()
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}}
    Store(EtcdClient(config)).apply_objects([node, pod("a", "10.244.1.5"), pod("b", "10.244.1.6")])
    # The analysis commands read the store as they read files (deny: ingress isolated).
    assert main(["trace", "--from", "dev/a", "--to", "dev/b", "--port", "80", *args]) == 1
    assert "DENIED" in capsys.readouterr().out
    assert main(["matrix", "--probe", "80/TCP", "-o", "json", *args]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["pods"] == ["dev/a", "dev/b"] and doc["probes"][0]["allowed"] == [
        [True, False],
        [False, True],
    ]
    assert main(["render", "--node", "node-1", *args]) == 0
    assert "dev/deny" in capsys.readouterr().out  # the policy that selects both pods
    assert main(["matrix", str(good), *args]) == 2  # paths or the store, not both
    capsys.readouterr()
    assert main(["delete", "-f", str(good), *args]) == 0
    assert "NetworkPolicy dev/deny deleted" in capsys.readouterr().out


def test_source_lists_then_follows_each_transaction_whole(config: EtcdConfig) -> None:
    store = Store(EtcdClient(config))
    store.apply_objects([ns("dev"), pod("a", "10.244.1.5")])
    source = EtcdSource(config).start()
    try:
        assert source.synced.wait(30)
        assert [p.name for p in source.load().pods] == ["a"]
        rev = source.revision
        out = store.apply_objects([pod("b", "10.244.1.6"), pod("c", "10.244.1.7"), deny_all()])
        wait_for(source, lambda: source.revision >= out.revision)
        assert out.revision == rev + 1  # one transaction, one revision
        cluster = source.load()
        assert [p.name for p in cluster.pods] == ["a", "b", "c"]
        assert [p.name for p in cluster.policies] == ["deny"]
        assert source.health() == (True, "")
        assert not source.changed_since_load()
        client = EtcdClient(config)
        client.put("/elsewhere/x", b"1")  # the store's revision moves, this prefix does not
        client.put(config.prefix + "resources/Namespace/_/late", json.dumps(ns("late")).encode())
        wait_for(source, source.changed_since_load)
    finally:
        source.close()


def test_source_refuses_what_it_cannot_understand(config: EtcdConfig) -> None:
    client = EtcdClient(config)
    Store(client).apply_objects([ns("dev")])
    source = EtcdSource(config).start()
    try:
        assert source.synced.wait(30)
        source.load()
        bad_key = object_key(config.prefix, "NetworkPolicy", "dev", "x")
        rev = client.put(bad_key, b"{not json")
        wait_for(source, lambda: source.revision >= rev)
        with pytest.raises(ManifestError) as err:
            source.load()
        assert str(err.value.problems[0]).startswith(f"etcd:{bad_key}: NetworkPolicy x: not JSON")
        args = ["--etcd", config.endpoints[0], "--etcd-prefix", config.prefix]
        assert main(["validate", *args]) == 2  # what an operator runs to see what agents see
        rev = client.put(bad_key, json.dumps(deny_all("y")).encode())  # under the wrong name
        wait_for(source, lambda: source.revision >= rev)
        with pytest.raises(ManifestError, match="does not belong under this key"):
            source.load()
        rev = client.put(bad_key, json.dumps(deny_all("x")).encode())
        wait_for(source, lambda: source.revision >= rev)
        assert [p.name for p in source.load().policies] == ["x"]
    finally:
        source.close()


def test_source_relists_after_compaction(config: EtcdConfig) -> None:
    client = EtcdClient(config)
    store = Store(client)
    store.apply_objects([ns("dev")])
    source = EtcdSource(config)
    source.load()  # listed at this revision, not watching yet
    assert source.relists == 1
    for i in range(3):
        out = store.apply_objects([pod(f"p{i}", f"10.244.1.{10 + i}")])
    client.compact(out.revision)  # the revisions the watch would start from are gone
    source.start()
    try:
        wait_for(source, lambda: source.relists == 2 and source.revision >= out.revision)
        assert [p.name for p in source.load().pods] == ["p0", "p1", "p2"]
    finally:
        source.close()


def test_source_keeps_its_state_while_etcd_is_down_and_resumes() -> None:
    with LocalEtcd() as etcd:
        config = etcd.config()
        store = Store(EtcdClient(config))
        store.apply_objects([ns("dev"), pod("a", "10.244.1.5")])
        source = EtcdSource(config, backoff=(0.05, 0.2)).start()
        try:
            assert source.synced.wait(30)
            source.load()
            etcd.kill()
            wait_for(source, lambda: not source.health()[0])
            with pytest.raises(StoreUnavailable, match="out of step with the store"):
                source.load()
            etcd.start()
            wait_for(source, lambda: source.health()[0])
            assert source.relists == 1  # resumed the watch from its revision: no relist
            out = store.apply_objects([pod("b", "10.244.1.6")])
            wait_for(source, lambda: source.revision >= out.revision)
            assert [p.name for p in source.load().pods] == ["a", "b"]
        finally:
            source.close()


def test_tls_and_roles() -> None:
    with LocalEtcd(tls=True) as etcd:
        writer = Store(EtcdClient(etcd.config(WRITER)))
        writer.apply_objects([ns("dev")])
        reader = Store(EtcdClient(etcd.config(AGENT)))
        assert [o["metadata"]["name"] for o in reader.get("namespace")] == ["dev"]
        with pytest.raises(StoreRefused, match="permission denied"):
            reader.apply_objects([ns("prod")])  # agents may only read
        with pytest.raises(StoreUnavailable):
            EtcdClient(etcd.config(WRITER, cert=False)).range_prefix("/sekisho/")  # no cert
        with pytest.raises(StoreRefused, match="authentication"):
            EtcdClient(etcd.config(WRITER, password="wrong")).range_prefix("/sekisho/")
        no_user = etcd.config(WRITER)
        no_login = EtcdConfig(no_user.endpoints, ca=no_user.ca, cert=no_user.cert, key=no_user.key)
        with pytest.raises(StoreRefused):
            EtcdClient(no_login).range_prefix("/sekisho/")  # a certificate is not a login
        source = EtcdSource(etcd.config(AGENT)).start()
        try:
            assert source.synced.wait(30)
            writer.apply_objects([ns("prod")])
            wait_for(source, lambda: len(source.load().namespaces) == 2)
        finally:
            source.close()


class FakeRunner:
    """An empty kernel that accepts every write and remembers it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, argv: Any, *, stdin: str | None = None) -> str:
        self.calls.append(" ".join(argv))
        if argv[0] == "iptables-save":
            return "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n"
        return ""

    def writes(self) -> list[str]:
        return [c for c in self.calls if "restore" in c]


def until(cond: Any, timeout: float = 30.0) -> None:
    """Poll ``cond`` (set by another thread) until it holds, failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_agent_on_etcd_keeps_its_state_while_the_store_is_down(tmp_path: Path) -> None:
    import threading

    from sekisho.agent import Agent, AgentMetrics

    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}}
    with LocalEtcd() as etcd:
        config = etcd.config()
        store = Store(EtcdClient(config))
        store.apply_objects([node, ns("dev"), pod("a", "10.244.1.5"), pod("b", "10.244.1.6")])
        metrics = AgentMetrics()
        runner = FakeRunner()
        source = EtcdSource(config, observer=metrics, backoff=(0.05, 0.2))
        ready = tmp_path / "ready.json"
        agent = Agent(
            node="node-1",
            source=source,
            runner=runner,
            metrics=metrics,
            resync=60,
            ready_file=ready,
        )
        stop = threading.Event()
        loop = threading.Thread(target=agent.run, args=(stop,))
        loop.start()
        try:
            until(lambda: agent.generation >= 1)
            out = store.apply_objects([deny_all()])
            until(lambda: agent.cluster is not None and bool(agent.cluster.policies))
            # the ready file names the store revision its ruleset was rendered from
            until(lambda: json.loads(ready.read_text())["revision"] >= out.revision)
            assert json.loads(ready.read_text())["fingerprint"]
            assert agent.ready() == (True, "")
            assert metrics.value("sekisho_agent_store_up") == 1
            assert metrics.value("sekisho_agent_store_relists_total", {"reason": "start"}) == 1
            applied = len(runner.writes())
            etcd.kill()
            until(lambda: not agent.ready()[0])
            _, why = agent.ready()
            assert "enforcing the last good state" in why
            assert metrics.value("sekisho_agent_store_up") == 0
            assert len(runner.writes()) == applied  # nothing torn down or rewritten
            assert [p.name for p in agent.cluster.policies] == ["deny"]
            etcd.start()
            until(lambda: agent.ready()[0])
            assert metrics.value("sekisho_agent_store_up") == 1
        finally:
            stop.set()
            source.close()
            loop.join(10)


def test_incremental_load_equals_a_full_load() -> None:
    """The agent's path (each object's parse kept by key and revision) against a full load,
    over random changes, invalid ones included (a taken IP, a node that does not exist)."""
    import random

    from sekisho.model.load import PartCache
    from sekisho.sources.etcd import KeyValue, Snapshot, identity, snapshot_cluster
    from sekisho.sources.store import encode

    rng = random.Random(5)
    prefix = "/p/"
    snap = Snapshot()
    cache = PartCache()
    rev = 0

    def put(obj: dict[str, Any]) -> None:
        nonlocal rev
        rev += 1
        k = object_key(prefix, *identity(obj))
        snap.values[k] = KeyValue(k, encode(obj), rev)
        snap.revision = rev

    def node(i: int) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"node-{i}"}}

    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "dev"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c"}]},
            },
        },
    }
    for obj in (node(1), node(2), ns("dev"), deployment, deny_all()):
        put(obj)
    outcomes = {"valid": 0, "invalid": 0}
    for step in range(120):
        roll = rng.random()
        i = rng.randrange(8)
        if roll < 0.5:
            taken = rng.random() < 0.05  # another pod's address: the join reports it
            ip = f"10.244.1.{10 + (rng.randrange(8) if taken else i)}"
            p = pod(f"p{i}", ip, {"app": rng.choice("ab")})
            if rng.random() < 0.03:
                p["spec"]["nodeName"] = "node-9"  # not defined: the join reports it
            put(p)
        elif roll < 0.7:
            k = object_key(prefix, "Pod", "dev", f"p{i}")
            snap.values.pop(k, None)
        elif roll < 0.85:
            put(policy_for(i))
        else:
            put({**deployment, "spec": {**deployment["spec"], "replicas": rng.randrange(1, 5)}})
        try:
            full = snapshot_cluster(Snapshot(snap.revision, dict(snap.values)), prefix)
        except ManifestError as exc:
            with pytest.raises(ManifestError) as err:
                snapshot_cluster(Snapshot(snap.revision, dict(snap.values)), prefix, cache)
            assert sorted(map(str, err.value.problems)) == sorted(map(str, exc.problems)), step
            outcomes["invalid"] += 1
            continue
        got = snapshot_cluster(Snapshot(snap.revision, dict(snap.values)), prefix, cache)
        assert got == full, step
        outcomes["valid"] += 1
    assert outcomes["valid"] > 30 and outcomes["invalid"] > 5, outcomes
    assert cache.hits > 0  # the last valid load reused parses


def policy_for(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"np{i % 3}", "namespace": "dev"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "ab"[i % 2]}},
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                    "ports": [{"port": 80 + i}],
                }
            ],
        },
    }


def test_changes_pending_when_the_agent_asks_are_taken_without_a_debounce() -> None:
    """Under churn the batch is what came while the last sync ran: wait() returns it at
    once rather than adding its debounce (here 30 s, far beyond any stall of a loaded
    machine) to every sync."""
    source = EtcdSource(
        EtcdConfig(("http://127.0.0.1:1",)), client=object(), debounce=30.0, max_delay=30.0
    )  # type: ignore[arg-type]
    source._signal(["a", "b"])
    t0 = time.monotonic()
    assert source.wait(60.0) == ["a", "b"]
    assert time.monotonic() - t0 < 15.0, "no debounce for changes already pending"
    assert source.wait(0.0) == []
