"""Real-shaped inputs that must load, and the API server's defaults."""

from __future__ import annotations

import io
import ipaddress
import json
import textwrap
from pathlib import Path

import pytest

from sekisho.model import (
    LabelSelector,
    NetworkPolicy,
    Peer,
    PolicyPort,
    Rule,
    cluster_from_objects,
    load_cluster,
    load_paths,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "manifests"
SEED = Path(__file__).resolve().parents[2] / "examples" / "seed"


def test_kubectl_get_list_dump_loads() -> None:
    result = load_paths([DATA / "kubectl-get-all.yaml"])
    assert result.problems == ()
    cluster = result.cluster
    assert cluster is not None
    assert result.objects == 5
    assert [obj for _, obj in result.skipped] == ["Service shop/api"]
    assert cluster.namespaces["shop"].labels == {
        "kubernetes.io/metadata.name": "shop",
        "team": "payments",
    }
    (node,) = cluster.nodes
    assert (node.name, str(node.internal_ip), str(node.pod_cidr)) == (
        "worker-1",
        "172.18.0.3",
        "10.244.1.0/24",
    )
    (pod,) = cluster.pods
    assert pod.key == "shop/api-7d9f8b6c5-x2x7q"
    assert str(pod.ip) == "10.244.1.17"
    assert pod.node == "worker-1"
    assert pod.named_port("metrics", "TCP") == 9090
    (policy,) = cluster.policies
    assert policy.ingress[0].ports == (PolicyPort("TCP", "http"),)
    # Items of a List carry their own line.
    assert policy.source.line == 184
    assert pod.source.line == 64


def test_json_file_with_defaults() -> None:
    cluster = load_cluster([DATA / "policy.json"])
    (policy,) = cluster.policies
    assert (policy.affects_ingress, policy.affects_egress) == (True, True)
    assert policy.egress[0].ports == (PolicyPort("UDP", 53), PolicyPort("TCP", 53))
    assert policy.egress[0].peers == (
        Peer(namespace_selector=LabelSelector((("kubernetes.io/metadata.name", "kube-system"),))),
    )
    assert cluster.namespaces["shop"].implicit


def test_tab_indented_json_loads(tmp_path: Path) -> None:
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tabs"}}
    (tmp_path / "ns.json").write_text(json.dumps(obj, indent="\t"))
    cluster = load_cluster([tmp_path / "ns.json"])
    assert list(cluster.namespaces) == ["tabs"]


def test_mix_with_services_and_configmaps_and_empty_documents() -> None:
    result = load_paths([DATA / "mixed.yaml"])
    assert result.problems == ()
    assert sorted(obj for _, obj in result.skipped) == [
        "ConfigMap shop/web-config",
        "Ingress shop/web",
        "Service shop/web",
    ]
    assert result.cluster is not None
    assert [p.workload for p in result.cluster.pods] == ["Deployment/web"] * 3


def test_directory_is_read_recursively_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "ns.yml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n")
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n")
    (tmp_path / "notes.txt").write_text("not a manifest")
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "ci.yml").write_text("on: push\n")
    result = load_paths([tmp_path, tmp_path / "a.yaml"])
    assert result.files == 3
    assert result.problems == ()
    assert result.cluster is not None
    assert sorted(result.cluster.namespaces) == ["a", "b"]


def test_stdin() -> None:
    text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: from-stdin\n"
    result = load_paths(["-"], stdin=io.StringIO(text))
    assert result.cluster is not None
    assert result.cluster.namespaces["from-stdin"].source.file == "<stdin>"


def test_stdin_problems_have_lines() -> None:
    text = "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: Bad\n"
    result = load_paths(["-"], stdin=io.StringIO(text))
    assert [str(p) for p in result.problems] == [
        '<stdin>:5: Namespace Bad: metadata.name: "Bad" is not a DNS-1123 label: lower-case '
        "alphanumeric characters or '-', starting and ending with an alphanumeric (e.g. 'my-name')"
    ]


def test_seed_scenario_is_valid() -> None:
    result = load_paths([SEED])
    assert result.problems == ()
    assert result.summary()["pods"] == 7
    assert result.summary()["policies"] == 3


def _policy(spec: str) -> NetworkPolicy:
    text = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n"
    cluster = load_cluster(["-"], stdin=io.StringIO(text + textwrap.indent(spec, "  ")))
    return cluster.policies[0]


@pytest.mark.parametrize(
    ("spec", "ingress", "egress", "affects"),
    [
        pytest.param("podSelector: {}\n", (), (), (True, False), id="no-rules-ingress-only"),
        pytest.param("podSelector: {}\negress: []\n", (), (), (True, False), id="empty-egress"),
        pytest.param(
            "podSelector: {}\negress:\n- {}\n",
            (),
            (Rule(),),
            (True, True),
            id="egress-infers-egress",
        ),
        pytest.param(
            "podSelector: {}\npolicyTypes: [Egress]\n",
            (),
            (),
            (False, True),
            id="explicit-egress-only",
        ),
        pytest.param(
            "podSelector: {}\npolicyTypes: []\ningress: [{}]\n",
            (Rule(),),
            (),
            (True, False),
            id="empty-policy-types-inferred",
        ),
        pytest.param(
            "podSelector: {}\ningress:\n- from: []\n  ports: []\n",
            (Rule(peers=None, ports=None),),
            (),
            (True, False),
            id="empty-from-and-ports-mean-all",
        ),
        pytest.param(
            "podSelector: {}\ningress:\n- ports:\n  - port: 80\n  - protocol: UDP\n  - port: 30000\n    endPort: 32767\n",
            (
                Rule(
                    ports=(
                        PolicyPort("TCP", 80),
                        PolicyPort("UDP", None),
                        PolicyPort("TCP", 30000, 32767),
                    )
                ),
            ),
            (),
            (True, False),
            id="protocol-defaults-to-tcp",
        ),
        pytest.param(
            "ingress:\n- from:\n  - podSelector: {}\n    namespaceSelector:\n  - namespaceSelector: {}\n",
            (
                Rule(
                    peers=(
                        Peer(pod_selector=LabelSelector()),
                        Peer(namespace_selector=LabelSelector()),
                    )
                ),
            ),
            (),
            (True, False),
            id="missing-pod-selector-is-empty-null-selector-is-absent",
        ),
    ],
)
def test_policy_defaults(
    spec: str, ingress: tuple[Rule, ...], egress: tuple[Rule, ...], affects: tuple[bool, bool]
) -> None:
    policy = _policy(spec)
    assert policy.namespace == "default"
    assert policy.ingress == ingress
    assert policy.egress == egress
    assert (policy.affects_ingress, policy.affects_egress) == affects


def test_match_expressions_values_sorted_and_deduplicated() -> None:
    policy = _policy(
        "podSelector:\n  matchExpressions:\n  - {key: app, operator: In, values: [b, a, b]}\n"
        "  matchLabels: {z: '1', a: '2'}\n"
    )
    assert policy.pod_selector.match_labels == (("a", "2"), ("z", "1"))
    assert policy.pod_selector.match_expressions[0].values == ("a", "b")


def test_namespaces_get_the_metadata_name_label_and_implicit_ones_exist() -> None:
    cluster = cluster_from_objects(
        [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "a", "labels": {"x": "y"}},
            },
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "b"}},
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": "n", "namespace": "c"},
                "spec": {"podSelector": {}},
            },
        ]
    )
    assert {k: (v.labels, v.implicit) for k, v in cluster.namespaces.items()} == {
        "a": ({"x": "y", "kubernetes.io/metadata.name": "a"}, False),
        "b": ({"kubernetes.io/metadata.name": "b"}, True),
        "c": ({"kubernetes.io/metadata.name": "c"}, True),
    }


def test_pods_and_policies_are_sorted_whatever_the_input_order() -> None:
    objs = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": n, "namespace": ns}}
        for ns, n in [("b", "x"), ("a", "z"), ("a", "y")]
    ]
    cluster = cluster_from_objects(objs)
    assert [p.key for p in cluster.pods] == ["a/y", "a/z", "b/x"]
    reverse = cluster_from_objects(list(reversed(objs)))
    assert [(p.key, p.ip) for p in reverse.pods] == [(p.key, p.ip) for p in cluster.pods]


def test_node_schedulable_from_unschedulable_and_taints() -> None:
    def node(name: str, spec: dict[str, object]) -> dict[str, object]:
        return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec}

    cluster = cluster_from_objects(
        [
            node("cordoned", {"unschedulable": True}),
            node(
                "master",
                {"taints": [{"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"}]},
            ),
            node("draining", {"taints": [{"key": "x", "effect": "NoExecute"}]}),
            node("prefer", {"taints": [{"key": "x", "effect": "PreferNoSchedule"}]}),
            node("plain", {}),
        ]
    )
    assert {n.name: n.schedulable for n in cluster.nodes} == {
        "cordoned": False,
        "draining": False,
        "master": False,
        "plain": True,
        "prefer": True,
    }
    assert all(isinstance(n.internal_ip, ipaddress.IPv4Address) for n in cluster.nodes)


def test_pods_sort_by_namespace_then_name_not_by_key_string() -> None:
    objs = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": ns}}
        for ns in ("a-b", "a")
    ]
    assert [p.key for p in cluster_from_objects(objs).pods] == ["a/x", "a-b/x"]


def test_typed_lists_as_the_api_returns_them(tmp_path: Path) -> None:
    # A REST call (kubectl get --raw /api/v1/pods) returns a PodList whose items carry
    # neither kind nor apiVersion; v1 List items always carry both.
    pods = {
        "apiVersion": "v1",
        "kind": "PodList",
        "metadata": {"resourceVersion": "1"},
        "items": [
            {"metadata": {"name": "a", "namespace": "x", "labels": {"app": "a"}}, "spec": {}},
            {"metadata": {"name": "b", "namespace": "x"}, "spec": {}},
        ],
    }
    (tmp_path / "pods.json").write_text(json.dumps(pods, indent=1))
    (tmp_path / "ns.yaml").write_text(
        "apiVersion: v1\nkind: NamespaceList\nitems:\n- metadata: {name: x, labels: {t: 1}}\n"
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicyList\nitems:\n"
        "- metadata: {name: p, namespace: x}\n  spec: {podSelector: {}}\n"
        "- metadata: {name: q, namespace: x}\n  spec: {podSelector: {matchLabels: {app: 1}}}\n"
    )
    result = load_paths([tmp_path])
    assert [str(p) for p in result.problems] == [
        f"{tmp_path / 'ns.yaml'}:4: Namespace x: metadata.labels.t: "
        'label values must be strings, got the number 1 (quote it: "1")',
        f"{tmp_path / 'ns.yaml'}:12: NetworkPolicy x/q: spec.podSelector.matchLabels.app: "
        'label values must be strings, got the number 1 (quote it: "1")',
    ]
    (tmp_path / "ns.yaml").write_text(
        "apiVersion: v1\nkind: NamespaceList\nitems:\n- metadata: {name: x, labels: {t: '1'}}\n"
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicyList\nitems:\n"
        "- metadata: {name: p, namespace: x}\n  spec: {podSelector: {}}\n"
    )
    cluster = load_cluster([tmp_path])
    assert [p.key for p in cluster.pods] == ["x/a", "x/b"]
    assert cluster.namespaces["x"].labels["t"] == "1"
    assert [p.name for p in cluster.policies] == ["p"]
    plain = {"apiVersion": "v1", "kind": "List", "items": [{"metadata": {"name": "y"}}]}
    (tmp_path / "ns.yaml").write_text(json.dumps(plain))
    assert [p.message for p in load_paths([tmp_path]).problems] == ["missing kind"]
