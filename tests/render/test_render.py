"""Rendered text: goldens for the seed, names and limits, sets, ports, incremental updates."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings

from render.goldens import check_golden, seed_part2
from render.seed_cluster import seed_cluster
from render.test_differential import clusters
from sekisho.errors import UsageError
from sekisho.model.types import (
    Cluster,
    ContainerPort,
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    Peer,
    Pod,
    PolicyPort,
    Rule,
)
from sekisho.render import (
    IptablesRuleset,
    NftRuleset,
    NodeRenderer,
    render_iptables,
    render_nftables,
    render_node,
)
from sekisho.render.compile import member_texts, networks

NET = ipaddress.IPv4Network


@pytest.mark.parametrize(
    ("node", "backend"),
    [
        pytest.param(n, b, id=f"{n}-{b}")
        for n in ("k8s-node1", "k8s-node2", "k8s-node3")
        for b in ("iptables", "nftables")
    ],
)
def test_seed_render_golden(node: str, backend: str) -> None:
    rs = render_node(seed_part2(), node, backend=backend)  # type: ignore[call-overload]
    check_golden(f"render/seed-part2-{node}.{backend}", rs.render_text())


def test_loader_seed_equals_typed_seed() -> None:
    for node in ("k8s-node2", "k8s-node3"):
        a = render_node(seed_part2(), node).render_text()
        b = render_node(seed_cluster(), node).render_text()
        assert a == b


def test_unknown_node_lists_nodes() -> None:
    with pytest.raises(UsageError, match=r"expected one of: k8s-master1.*k8s-node3"):
        render_node(seed_cluster(), "nope")


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param("", id="empty"),
        pytest.param("bad-prefix", id="dash"),
        pytest.param("x" * 13, id="long"),
    ],
)
def test_bad_prefix(prefix: str) -> None:
    with pytest.raises(UsageError, match="prefix"):
        render_node(seed_cluster(), "k8s-node2", prefix=prefix)


@pytest.mark.parametrize(
    "prefix", [pytest.param("sekisho", id="default"), pytest.param("abcdefghijkl", id="12-chars")]
)
def test_names_within_kernel_limits_and_prefixed(prefix: str) -> None:
    rs = render_node(seed_cluster(), "k8s-node3", prefix=prefix)
    assert isinstance(rs, IptablesRuleset)
    for name, _ in rs.chains:
        assert name.startswith(prefix + "-") and len(name) <= 28, name
    for s in rs.sets:
        assert s.name.startswith(prefix + "-") and len(s.name) <= 31, s.name
    nft = render_node(seed_cluster(), "k8s-node3", backend="nftables", prefix=prefix)
    assert isinstance(nft, NftRuleset)
    assert nft.table == prefix


@pytest.mark.parametrize(
    ("nets", "want"),
    [
        pytest.param(["10.0.0.0/8"], ["10.0.0.0/8"], id="plain"),
        pytest.param(["10.0.0.0/8", "10.1.2.3/32"], ["10.0.0.0/8"], id="inside-left-out"),
        pytest.param(["10.0.0.1/32", "10.0.0.2/32"], ["10.0.0.1", "10.0.0.2"], id="hosts"),
        pytest.param(["0.0.0.0/0"], ["0.0.0.0/1", "128.0.0.0/1"], id="all-split-for-hash-net"),
        pytest.param(["fd00::/64", "10.0.0.0/30"], ["10.0.0.0/30"], id="ipv4-only"),
        pytest.param(
            ["fd00::/64", "fd00::5/128", "10.0.0.0/8"], ["fd00::/64"], id="ipv6", marks=()
        ),
        pytest.param(["::/0"], ["::/1", "8000::/1"], id="all-v6-split-for-hash-net"),
    ],
)
def test_set_members_are_disjoint_per_family(nets: list[str], want: list[str]) -> None:
    members = networks(ipaddress.ip_network(n) for n in nets)
    family = 6 if ":" in want[0] else 4
    assert [a for a, _ in member_texts(members, family)] == want


def _cluster(policies: tuple[NetworkPolicy, ...], pods: tuple[Pod, ...] | None = None) -> Cluster:
    base = seed_cluster()
    return dataclasses.replace(
        base,
        policies=tuple(sorted(policies, key=lambda p: p.key)),
        pods=base.pods if pods is None else tuple(sorted(pods, key=lambda p: p.key)),
    )


RED = LabelSelector((("app", "red"),))
BLUE = LabelSelector((("app", "blue"),))


def test_identical_peers_share_one_set() -> None:
    pols = tuple(
        NetworkPolicy("dev", name, RED, ingress=(Rule((Peer(pod_selector=BLUE),), None),))
        for name in ("a", "b")
    )
    rs = render_node(_cluster(pols), "k8s-node2")
    assert isinstance(rs, IptablesRuleset)
    v4 = [s for s in rs.sets if s.family == "inet"]
    assert len(v4) == 1 and len(rs.sets) == 2  # one set per family
    assert v4[0].members == ("10.244.3.6",)
    assert rs.iptables_restore().count(f"--match-set {v4[0].name} src") == 2


@pytest.mark.parametrize(
    ("ports", "want"),
    [
        pytest.param(
            tuple(PolicyPort("TCP", p) for p in range(1000, 1020)),
            [
                "--dports " + ",".join(map(str, range(1000, 1015))),
                "--dports 1015,1016,1017,1018,1019",
            ],
            id="split-at-15",
        ),
        pytest.param(
            (PolicyPort("TCP", 80, 90), *(PolicyPort("TCP", p) for p in range(1, 15))),
            ["--dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14 ", "--dports 80:90 "],
            id="range-counts-two",
        ),
        pytest.param(
            (PolicyPort("UDP", 53), PolicyPort("TCP", 53)),
            ["-p tcp -m multiport --dports 53", "-p udp -m multiport --dports 53"],
            id="per-protocol",
        ),
        pytest.param((PolicyPort("SCTP"),), ["-p sctp -m comment"], id="protocol-any-port"),
    ],
)
def test_ports(ports: tuple[PolicyPort, ...], want: list[str]) -> None:
    pol = NetworkPolicy("dev", "p", RED, ingress=(Rule(None, ports),))
    rs = render_node(_cluster((pol,)), "k8s-node2")
    assert isinstance(rs, IptablesRuleset)
    text = rs.iptables_restore()
    for w in want:
        assert w in text
    assert text.count('--comment "policy dev/p ingress') == len(want)


def test_named_port_resolved_per_destination_pod() -> None:
    pods = list(seed_cluster().pods)
    pods = [
        dataclasses.replace(p, ports=(ContainerPort(8080, "TCP", "http"),))
        if p.key == "dev/green"
        else p
        for p in pods
    ]
    pol = NetworkPolicy(
        "dev",
        "p",
        RED,
        egress=(Rule((Peer(pod_selector=LabelSelector()),), (PolicyPort("TCP", "http"),)),),
        affects_ingress=False,
        affects_egress=True,
    )
    rs = render_node(_cluster((pol,), tuple(pods)), "k8s-node2")
    assert isinstance(rs, IptablesRuleset)
    port_set = next(s for s in rs.sets if s.type == "hash:ip,port")
    assert "10.244.5.43,tcp:8080" in port_set.members
    assert "10.244.3.6,tcp:80" in port_set.members
    assert f"--match-set {port_set.name} dst,dst" in rs.iptables_restore()
    nft = render_node(_cluster((pol,), tuple(pods)), "k8s-node2", backend="nftables")
    assert isinstance(nft, NftRuleset)
    assert "10.244.5.43 . 8080" in nft.script()


def test_ipv6_pod_and_nets_are_rendered() -> None:
    pods = (
        *seed_cluster().pods,
        Pod("dev", "six", {"app": "blue"}, "k8s-node2", ipaddress.IPv6Address("fd00::6")),
    )
    pol = NetworkPolicy(
        "dev",
        "p",
        LabelSelector(),
        ingress=(
            Rule(
                (
                    Peer(pod_selector=BLUE),
                    Peer(ip_block=IPBlock(ipaddress.IPv6Network("fd00::/64"))),
                ),
                None,
            ),
        ),
    )
    for backend in ("iptables", "nftables"):
        rs = render_node(_cluster((pol,), pods), "k8s-node2", backend=backend)  # type: ignore[call-overload]
        text = rs.render_text()
        assert "not policed" not in text and "not rendered" not in text
        body = [ln for ln in text.splitlines() if not ln.startswith("#")]
        # the selector's set holds the IPv6 pod, the ipBlock's set the IPv6 net
        assert any("fd00::6" in ln for ln in body), backend
        assert any("fd00::/64" in ln for ln in body), backend
        assert any(
            ("ip6 saddr @" if backend == "nftables" else "family inet6") in ln for ln in body
        )


@pytest.mark.parametrize(
    ("cidr", "interval", "element"),
    [
        pytest.param("10.9.0.7/32", False, "10.9.0.7", id="host-address"),
        pytest.param("10.9.0.0/24", True, "10.9.0.0/24", id="network"),
    ],
)
def test_an_address_set_is_an_interval_set_only_when_it_holds_a_network(
    cidr: str, interval: bool, element: str
) -> None:
    """Single addresses only (pods' addresses, /32 and /128 nets): no ``flags interval``,
    which libnftables pays for before every element command; a network needs it."""
    pol = NetworkPolicy(
        "dev",
        "p",
        RED,
        ingress=(
            Rule((Peer(pod_selector=BLUE),), None),
            Rule((Peer(ip_block=IPBlock(NET(cidr))),), None),
        ),
    )
    rs = render_node(_cluster((pol,)), "k8s-node2", backend="nftables")
    assert isinstance(rs, NftRuleset)
    by_elements = {s.elements: s for s in rs.sets if s.type == "ipv4_addr"}
    assert not by_elements[("10.244.3.6",)].interval
    assert by_elements[(element,)].interval is interval
    text = rs.table_text()
    assert text.count("flags interval") == sum(s.interval for s in rs.sets)


# ------------------------------------------------------------------- incremental


def _relabel(cluster: Cluster, key: str, labels: dict[str, str]) -> Cluster:
    pods = tuple(dataclasses.replace(p, labels=labels) if p.key == key else p for p in cluster.pods)
    return dataclasses.replace(cluster, pods=pods)


def test_delta_after_one_label_change() -> None:
    c0 = seed_cluster()
    r = NodeRenderer("k8s-node2")
    first = r.update(c0)
    assert first.endpoints == {"dev/red", "prod/red"} and first.dispatch
    assert r.update(c0).empty
    # dev/green stops being app=green: the egress peer set of dev/red loses it
    d = r.update(_relabel(c0, "dev/green", {"app": "teal", "environment": "dev"}))
    assert len(d.sets) == 1 and not d.endpoints and not d.policies and not d.dispatch
    # dev/red stops being red: no policy selects it any more, chains and sets go away
    c2 = _relabel(c0, "dev/red", {"app": "rose", "environment": "dev"})
    d = r.update(c2)
    assert d.endpoints == {"dev/red"} and len(d.removed_policies) == 2 and len(d.removed_sets) == 2
    assert render_iptables(r) == render_node(c2, "k8s-node2")


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(clusters(), clusters())
def test_incremental_equals_full(a: Cluster, b: Cluster) -> None:
    for node in ("n1", "n2"):
        r = NodeRenderer(node)
        r.update(a)
        render_iptables(r), render_nftables(r)  # fill the text cache
        r.update(b)
        assert render_iptables(r) == render_node(b, node)
        assert render_nftables(r) == render_node(b, node, backend="nftables")
        # and a pod-by-pod walk back to a's labels, rendering (from the cache) each step
        for pod in a.pods:
            if b.pod(pod.key) is not None:
                b = _relabel(b, pod.key, pod.labels)
                r.update(b)
                assert render_iptables(r) == render_node(b, node)
                assert render_nftables(r) == render_node(b, node, backend="nftables")


def test_pod_churn_in_batches_equals_full() -> None:
    """Endpoint churn in batches of at least ``BATCH`` pods (the batch path, whose set
    selection is remembered per label set: the same pods and labels keep coming back,
    and a pod takes labels no pod had) renders, at every step, what a fresh renderer
    renders from the same cluster, for both backends."""
    import importlib.util
    import random
    from pathlib import Path

    from sekisho.model import cluster_from_objects
    from sekisho.render.node import BATCH

    path = Path(__file__).resolve().parents[2] / "bench" / "generator.py"
    spec = importlib.util.spec_from_file_location("sekisho_bench_generator_batches", path)
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    cluster = cluster_from_objects(gen.generate(120, policies=40, seed=11))
    node = next(p.node for p in cluster.pods if p.node)
    r = NodeRenderer(node)
    r.update(cluster)
    rng = random.Random(4)
    gone: set[str] = set()
    relabelled: dict[str, dict[str, str]] = {}
    for step in range(10):
        for p in rng.sample(cluster.pods, BATCH + 4):
            gone.symmetric_difference_update({p.key})
        p = cluster.pods[step]
        relabelled[p.key] = {**p.labels, "churn": str(step % 2)}
        pods = tuple(
            dataclasses.replace(p, labels=relabelled[p.key]) if p.key in relabelled else p
            for p in cluster.pods
            if p.key not in gone
        )
        now = dataclasses.replace(cluster, pods=pods)
        r.update(now)
        assert render_nftables(r) == render_node(now, node, backend="nftables"), step
        assert render_iptables(r) == render_node(now, node), step


def test_incremental_follows_the_e2e_sequence() -> None:
    """The lab applies the upstream e2e cases one after the other to one cluster: the
    kept renderer must say, text for text, what a fresh one says after each (a set
    shared by two policies that describe it differently included)."""
    from e2e_cases import CASES, model_cluster_objects
    from sekisho.lab import manifests as mf
    from sekisho.model import cluster_from_objects

    base = model_cluster_objects()
    current = [o for o in base if not mf.is_policy(o)]
    first = cluster_from_objects(base)
    nodes = sorted({p.node for p in first.pods if p.node})
    kept = {n: NodeRenderer(n) for n in nodes}
    for r in kept.values():
        r.update(first)
    for case in CASES:
        objs = case.objects()
        policies = [o for o in objs if mf.is_policy(o)]
        merged = mf.merge_labels(current, [o for o in objs if not mf.is_policy(o)])
        cluster = cluster_from_objects(merged + policies)
        for node, r in kept.items():
            r.update(cluster)
            assert render_iptables(r) == render_node(cluster, node), (case.id, node)
            assert render_nftables(r) == render_node(cluster, node, backend="nftables")


def _dual_stack_objects(pod_ips: list[str]) -> list[dict[str, object]]:
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1"},
        "spec": {"podCIDR": "10.0.1.0/24"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.1"}]},
    }

    def pod(name: str, app: str, ips: list[str]) -> dict[str, object]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "a", "labels": {"app": app}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
            "status": {"podIP": ips[0], "podIPs": [{"ip": ip} for ip in ips]},
        }

    deny = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "from-client", "namespace": "a"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}],
        },
    }
    return [
        node,
        pod("web", "web", ["10.0.1.10", "fd00:10:1::10"]),
        pod("client", "client", pod_ips),
        deny,
    ]


def test_dual_stack_pod_addresses_of_both_families_are_in_the_sets() -> None:
    from sekisho.model import cluster_from_objects

    cluster = cluster_from_objects(_dual_stack_objects(["10.0.1.11", "fd00:10:1::11"]))
    client = next(p for p in cluster.pods if p.name == "client")
    assert [str(ip) for ip in client.ips] == ["10.0.1.11", "fd00:10:1::11"]
    rs = render_node(cluster, "n1")
    assert isinstance(rs, IptablesRuleset)
    members = {s.family: s.members for s in rs.sets}
    assert members == {"inet": ("10.0.1.11",), "inet6": ("fd00:10:1::11",)}
    nft = render_node(cluster, "n1", backend="nftables")
    assert isinstance(nft, NftRuleset)
    assert {s.type: s.elements for s in nft.sets if s.kind == "set"} == {
        "ipv4_addr": ("10.0.1.11",),
        "ipv6_addr": ("fd00:10:1::11",),
    }


def test_a_pod_has_at_most_one_address_per_family() -> None:
    from sekisho.errors import ManifestError
    from sekisho.model import cluster_from_objects

    with pytest.raises(ManifestError, match=r"podIPs\[1\].ip: fd00::2: a pod has at most one"):
        cluster_from_objects(_dual_stack_objects(["fd00::1", "fd00::2"]))
