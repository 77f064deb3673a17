"""The patch of the last good cluster (``model.patch.patch_parts``) against a full load.

Random sequences of changes to every kind the patch takes (nodes, pods, workloads,
Kubernetes NetworkPolicies, Namespaces, cluster-wide policies, Calico's policies,
staged policies, tiers, network sets, host endpoints, service accounts), good and
bad ones: after each batch the patched cluster must equal a full load of the same
objects, and a batch the full load refuses must never be patched (the caller's
full load then refuses it with the same problems, and its last good state stays).
Nodes' podCIDRs are /28s (14 addresses), so a workload's pods often find their
hashed address taken and pass over others', and a node sometimes runs out.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sekisho.model.load import PartCache, load_parts
from sekisho.model.reader import Loc, RawObject

V3 = "projectcalico.org/v3"
Obj = dict[str, Any]


def node(i: int) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": f"n{i}", "labels": {"zone": f"z{i}"}},
        "spec": {"podCIDR": f"10.244.{i}.0/28"},
        "status": {"addresses": [{"type": "InternalIP", "address": f"192.168.1.{10 + i}"}]},
    }


@st.composite
def node_change(draw: st.DrawFn) -> Obj:
    """A node's labels or taints changed, a node added or given another node's address or
    an overlapping podCIDR (refused), or one without addresses (the join assigns them)."""
    i = draw(st.integers(0, 3))
    obj = node(i)
    obj["metadata"]["labels"]["zone"] = draw(st.sampled_from(["z0", "z1"]))
    if draw(st.booleans()):
        obj["spec"]["unschedulable"] = True
    roll = draw(st.integers(0, 12))
    if roll == 0:
        obj["status"]["addresses"][0]["address"] = f"192.168.1.{10 + draw(st.integers(0, 3))}"
    elif roll == 1:
        obj["spec"]["podCIDR"] = "10.244.0.0/16"
    elif roll == 2:
        del obj["status"]
    elif roll == 3:
        obj["status"]["addresses"][0]["address"] = "10.244.0.12"  # a pod's, maybe
    return obj


NS = ("a", "b", "c")
LABELS = st.fixed_dictionaries({"team": st.sampled_from(["red", "blue"])})
SELECTOR = st.sampled_from(["app == 'web'", "app == 'db'", "all()", "has(app)"])
BAD_SELECTOR = "app == "
RULE = st.fixed_dictionaries(
    {
        "action": st.sampled_from(["Allow", "Deny", "Pass", "Log"]),
        "source": st.sampled_from(
            [{}, {"selector": "app == 'db'"}, {"namespaceSelector": "team == 'red'"}]
        ),
    }
)


@st.composite
def namespace(draw: st.DrawFn) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": draw(st.sampled_from(NS)), "labels": draw(LABELS)},
    }


@st.composite
def pod(draw: st.DrawFn) -> Obj:
    i = draw(st.integers(0, 7))
    n = draw(st.integers(0, 2))
    status: Obj = {"podIP": f"10.244.{n}.{10 + draw(st.integers(0, 8))}"}
    spec: Obj = {"nodeName": f"n{n}", "containers": [{"name": "c"}]}
    roll = draw(st.integers(0, 30))
    if roll == 0:
        spec["nodeName"] = "n9"  # not defined: refused
    elif roll == 1:
        status = {}  # no address: IPAM assigns one (patched as a workload's pod is)
    elif roll == 2:
        status["podIP"] = "192.168.1.10"  # a node's address: refused
    elif roll == 3:
        spec["hostNetwork"] = True
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"p{i}",
            "namespace": draw(st.sampled_from(NS)),
            "labels": {"app": draw(st.sampled_from(["web", "db"]))},
        },
        "spec": spec,
        "status": status,
    }


WORKLOADS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job")


@st.composite
def workload(draw: st.DrawFn) -> Obj:
    """A workload whose pods the join places and addresses: replicas or labels changed,
    sometimes hostNetwork, a node named (n9 is not defined: refused), or a name that
    makes a pod another object defines (``p1`` of a StatefulSet ``p``: refused)."""
    kind = draw(st.sampled_from(WORKLOADS))
    name = draw(st.sampled_from(["w0", "w1", "w2", "p"]))
    app = draw(st.sampled_from(["web", "db"]))
    spec: Obj = {"containers": [{"name": "c"}]}
    roll = draw(st.integers(0, 20))
    if roll == 0:
        spec["hostNetwork"] = True
    elif roll == 1:
        spec["nodeName"] = draw(st.sampled_from(["n1", "n9"]))
    body: Obj = {
        "selector": {"matchLabels": {"app": app}},
        "template": {"metadata": {"labels": {"app": app}}, "spec": spec},
    }
    if kind == "Job":
        del body["selector"]
        body["parallelism"] = draw(st.integers(0, 4))
    elif kind != "DaemonSet":
        body["replicas"] = draw(st.integers(0, 4))
    return {
        "apiVersion": "batch/v1" if kind == "Job" else "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": draw(st.sampled_from(NS))},
        "spec": body,
    }


@st.composite
def k8s_policy(draw: st.DrawFn) -> Obj:
    kind = draw(st.sampled_from(["NetworkPolicy", "StagedKubernetesNetworkPolicy"]))
    spec: Obj = {
        "podSelector": {"matchLabels": {"app": draw(st.sampled_from(["web", "db"]))}},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": draw(LABELS)}}]}],
    }
    if draw(st.integers(0, 20)) == 0:
        spec["policyTypes"] = ["Sideways"]  # invalid
    if kind == "StagedKubernetesNetworkPolicy":
        spec["stagedAction"] = draw(st.sampled_from(["Set", "Delete"]))
    return {
        "apiVersion": "networking.k8s.io/v1" if kind == "NetworkPolicy" else V3,
        "kind": kind,
        "metadata": {
            "name": f"np{draw(st.integers(0, 3))}",
            "namespace": draw(st.sampled_from(NS)),
        },
        "spec": spec,
    }


@st.composite
def calico_policy(draw: st.DrawFn) -> Obj:
    kind = draw(
        st.sampled_from(
            [
                "GlobalNetworkPolicy",
                "NetworkPolicy",
                "StagedNetworkPolicy",
                "StagedGlobalNetworkPolicy",
            ]
        )
    )
    tier = draw(st.sampled_from(["default", "default", "security", "platform"]))
    short = f"cp{draw(st.integers(0, 3))}"
    # "default.cpN" and "cpN" are one policy to Calico: a duplicate the join refuses.
    name = f"{tier}.{short}" if tier != "default" or not draw(st.integers(0, 7)) else short
    spec: Obj = {
        "tier": tier,
        "selector": draw(SELECTOR) if draw(st.integers(0, 25)) else BAD_SELECTOR,
        "ingress": draw(st.lists(RULE, max_size=2)),
    }
    if draw(st.booleans()):
        spec["order"] = draw(st.integers(0, 3)) * 100
    if kind.startswith("Staged"):
        spec["stagedAction"] = "Set"
    meta: Obj = {"name": name}
    if "Global" not in kind:
        meta["namespace"] = draw(st.sampled_from(NS))
    return {"apiVersion": V3, "kind": kind, "metadata": meta, "spec": spec}


@st.composite
def calico_other(draw: st.DrawFn) -> Obj:
    kind = draw(
        st.sampled_from(
            ["Tier", "NetworkSet", "GlobalNetworkSet", "HostEndpoint", "ServiceAccount"]
        )
    )
    i = draw(st.integers(0, 2))
    if kind == "Tier":
        name = draw(st.sampled_from(["security", "platform"]))
        return {
            "apiVersion": V3,
            "kind": "Tier",
            "metadata": {"name": name},
            "spec": {"order": draw(st.integers(1, 3)) * 100},
        }
    if kind in ("NetworkSet", "GlobalNetworkSet"):
        meta: Obj = {"name": f"set{i}", "labels": {"role": draw(st.sampled_from("xy"))}}
        if kind == "NetworkSet":
            meta["namespace"] = draw(st.sampled_from(NS))
        nets = [f"172.16.{draw(st.integers(0, 3))}.0/24"]
        if draw(st.integers(0, 20)) == 0:
            nets = ["not-a-net"]
        return {"apiVersion": V3, "kind": kind, "metadata": meta, "spec": {"nets": nets}}
    if kind == "HostEndpoint":
        n = draw(st.integers(0, 3))  # n3 is not defined: refused
        return {
            "apiVersion": V3,
            "kind": "HostEndpoint",
            "metadata": {"name": f"hep{i}", "labels": {"host": f"n{n}"}},
            "spec": {"node": f"n{n}", "interfaceName": "eth0"},
        }
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": f"sa{i}",
            "namespace": draw(st.sampled_from(NS)),
            "labels": draw(LABELS),
        },
    }


@st.composite
def cluster_policy(draw: st.DrawFn) -> Obj:
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": "AdminNetworkPolicy",
        "metadata": {"name": f"anp{draw(st.integers(0, 2))}"},
        "spec": {
            "priority": draw(st.integers(0, 3)),
            "subject": {"namespaces": {"matchLabels": draw(LABELS)}},
            "ingress": [
                {
                    "action": draw(st.sampled_from(["Allow", "Deny", "Pass"])),
                    "from": [{"namespaces": {"matchLabels": draw(LABELS)}}],
                }
            ],
        },
    }


def name_of(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{obj['apiVersion']}/{obj['kind']}/{meta.get('namespace', '')}/{meta['name']}"


PUT = st.one_of(
    node_change(),
    namespace(),
    pod(),
    workload(),
    workload(),
    k8s_policy(),
    calico_policy(),
    calico_other(),
    cluster_policy(),
)
STEP = st.lists(st.one_of(PUT, st.integers(0, 1000)), min_size=1, max_size=3)
"""A batch: objects put, and integers that pick a stored object to delete."""


def start() -> list[Obj]:
    objs: list[Obj] = [node(0), node(1), node(2)]
    objs += [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": n, "labels": {"team": "red"}},
        }
        for n in ("a", "b")
    ]
    objs.append({"apiVersion": V3, "kind": "Tier", "metadata": {"name": "security"}, "spec": {}})
    return objs


def load(store: dict[str, tuple[int, Obj]], cache: PartCache) -> Any:
    objects = [
        ((name, version), RawObject(Loc(name, 0), obj))
        for name, (version, obj) in sorted(store.items())
    ]
    return load_parts(objects, cache)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, min_size=1, max_size=25))
def test_patched_equals_a_full_load(steps: list[list[Obj | int]]) -> None:
    from sekisho.model.patch import patch_parts

    store = {name_of(o): (0, o) for o in start()}
    cache = PartCache()
    last_good = load(store, cache).cluster
    assert last_good is not None and cache.base is not None
    version = 0
    for batch in steps:
        changes: list[tuple[str, object | None, RawObject | None]] = []
        for op in batch:
            version += 1
            if isinstance(op, int):
                if not store:
                    continue
                name = sorted(store)[op % len(store)]
                if any(c[0] == name for c in changes):
                    continue
                del store[name]
                changes.append((name, None, None))
            else:
                name = name_of(op)
                if any(c[0] == name for c in changes):
                    continue
                store[name] = (version, op)
                changes.append((name, version, RawObject(Loc(name, 0), op)))
        want = load(store, PartCache())
        patched = patch_parts(cache, changes)
        kinds = {c[2].data["kind"] for c in changes if c[2] is not None}
        if kinds & set(WORKLOADS) and want.cluster is not None:
            event(f"a good batch with a workload: {'patched' if patched else 'full load'}")
        if want.cluster is None:
            assert patched is None, "a change the full load refuses was patched"
            got = load(store, cache)
            assert got.problems == want.problems
            assert cache.base is None  # the next load is a full one
            continue
        if patched is None:
            got = load(store, cache).cluster
            assert got == want.cluster
        else:
            assert patched == want.cluster
            assert [p.source for p in patched.pods] == [p.source for p in want.cluster.pods]
            assert list(patched.namespaces) == list(want.cluster.namespaces)
        last_good = want.cluster
    assert last_good is not None


def test_each_kind_is_patched() -> None:
    """One change of each kind the patch takes is a patch, not a full load."""
    from sekisho.model.patch import patch_parts

    store = {name_of(o): (0, o) for o in start()}
    pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"p{i}", "namespace": "a", "labels": {"app": "web"}},
            "spec": {"nodeName": "n0", "containers": [{"name": "c"}]},
            "status": {"podIP": f"10.244.0.{10 + i}"},
        }
        for i in range(3)
    ]
    store.update({name_of(p): (0, p) for p in pods})
    cache = PartCache()
    first = load(store, cache).cluster
    assert first is not None
    changes: list[Obj] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "a", "labels": {"team": "x"}},
        },
        {
            "apiVersion": V3,
            "kind": "GlobalNetworkPolicy",
            "metadata": {"name": "security.g"},
            "spec": {"tier": "security", "selector": "all()", "ingress": [{"action": "Deny"}]},
        },
        {
            "apiVersion": V3,
            "kind": "NetworkPolicy",
            "metadata": {"name": "n", "namespace": "fresh"},  # an implicit namespace comes
            "spec": {"selector": "all()", "egress": [{"action": "Allow"}]},
        },
        {"apiVersion": V3, "kind": "Tier", "metadata": {"name": "platform"}, "spec": {"order": 5}},
        {
            "apiVersion": V3,
            "kind": "GlobalNetworkSet",
            "metadata": {"name": "s", "labels": {"role": "x"}},
            "spec": {"nets": ["172.16.0.0/24"]},
        },
    ]
    for i, obj in enumerate(changes, start=1):
        name = name_of(obj)
        store[name] = (i, obj)
        patched = patch_parts(cache, [(name, i, RawObject(Loc(name, 0), obj))])
        assert patched is not None, obj["kind"]
        assert patched == load(store, PartCache()).cluster
        assert patched.pods is first.pods and patched.nodes is first.nodes
    assert patched.namespaces["a"].labels["team"] == "x"
    assert patched.namespaces["fresh"].implicit
    # The implicit namespace goes with its last object.
    gone = name_of(changes[2])
    del store[gone]
    patched = patch_parts(cache, [(gone, None, None)])
    assert patched is not None and "fresh" not in patched.namespaces
    assert cache.patched == len(changes) + 1


def test_a_workload_change_is_patched_and_moves_no_other_pod() -> None:
    """A Deployment's replicas and labels changed, added and deleted: each a patch, and
    every other pod (another workload's too) stays the same object on the same node."""
    from sekisho.model.patch import patch_parts

    def deployment(name: str, replicas: int, app: str) -> Obj:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": "a"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": app}},
                "template": {
                    "metadata": {"labels": {"app": app}},
                    "spec": {"containers": [{"name": "c"}]},
                },
            },
        }

    store = {name_of(o): (0, o) for o in [*start(), deployment("other", 3, "db")]}
    cache = PartCache()
    first = load(store, cache).cluster
    assert first is not None and cache.base is not None
    others = {p.key: p for p in first.pods}
    steps = [
        deployment("web", 2, "web"),  # added
        deployment("web", 4, "web"),  # two more replicas
        deployment("web", 1, "web"),  # three fewer
        deployment("web", 1, "api"),  # labels: a new template, new pods
        None,  # deleted
    ]
    web = name_of(steps[0])
    for i, obj in enumerate(steps, start=1):
        if obj is None:
            del store[web]
            patched = patch_parts(cache, [(web, None, None)])
        else:
            store[web] = (i, obj)
            patched = patch_parts(cache, [(web, i, RawObject(Loc(web, 0), obj))])
        assert patched is not None, i
        assert patched == load(store, PartCache()).cluster
        for p in patched.pods:
            if p.key in others:
                assert p is others[p.key]
        assert len(patched.pods) == 3 + (0 if obj is None else obj["spec"]["replicas"])
    assert cache.patched == len(steps)
