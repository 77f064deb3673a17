"""The manifests the agents watch: round trip of the cluster, label updates, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from sekisho.errors import LabError, ManifestError
from sekisho.lab.manifests import cluster_objects, merge_labels, read_objects
from sekisho.model import cluster_from_objects, load_cluster

from .conftest import SEED


def test_cluster_round_trip() -> None:
    cluster = load_cluster([SEED / "cluster.yaml"])
    again = cluster_from_objects(cluster_objects(cluster))
    assert [(p.key, p.ip, p.node, p.labels, p.ports) for p in again.pods] == [
        (p.key, p.ip, p.node, p.labels, p.ports) for p in cluster.pods
    ]
    assert [(n.name, n.internal_ip, n.pod_cidr) for n in again.nodes] == [
        (n.name, n.internal_ip, n.pod_cidr) for n in cluster.nodes
    ]
    assert {k: v.labels for k, v in again.namespaces.items()} == {
        k: v.labels for k, v in cluster.namespaces.items()
    }


def _pod(ns: str, name: str, labels: dict[str, str]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
    }


@pytest.mark.parametrize(
    ("update", "error"),
    [
        pytest.param(_pod("dev", "blue", {"app": "x"}), None, id="relabel-pod"),
        pytest.param(
            {"kind": "Namespace", "metadata": {"name": "dev", "labels": {"team": "a"}}},
            None,
            id="relabel-namespace",
        ),
        pytest.param(_pod("dev", "nobody", {}), "not part of the lab", id="unknown-pod"),
        pytest.param(
            {"kind": "Deployment", "metadata": {"name": "d", "namespace": "dev"}},
            "only policies \\(of any kind sekisho reads\\) and label changes",
            id="other-kind",
        ),
    ],
)
def test_merge_labels(update: dict[str, object], error: str | None) -> None:
    current = cluster_objects(load_cluster([SEED / "cluster.yaml"]))
    if error:
        with pytest.raises(LabError, match=error):
            merge_labels(current, [update])
        return
    merged = merge_labels(current, [update])
    cluster = cluster_from_objects(merged)
    meta = update["metadata"]
    assert isinstance(meta, dict)
    if update["kind"] == "Pod":
        pod = cluster.pod(f"{meta['namespace']}/{meta['name']}")
        assert pod is not None and pod.labels == meta["labels"]
    else:
        assert cluster.namespace_labels(meta["name"])["team"] == "a"
    assert len(merged) == len(current)


def test_read_objects_walks_directories_and_lists(tmp_path: Path) -> None:
    objs = read_objects([SEED])
    kinds = {o["kind"] for o in objs}
    assert "NetworkPolicy" in kinds and "Pod" in kinds
    listed = tmp_path / "list.yaml"
    listed.write_text(
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n"
        "- {apiVersion: v1, kind: Namespace, metadata: {name: b}}\n"
    )
    assert [o["metadata"]["name"] for o in read_objects([listed])] == ["a", "b"]
    with pytest.raises(ManifestError, match="no such file"):
        read_objects([SEED / "missing.yaml"])


def test_read_objects_locates_problems_as_validate_does(tmp_path: Path) -> None:
    """The lab reads with the model's reader: a problem names its file, line and field."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: x, namespace: d}\nspec:\n  podSelector: {}\n"
        "  ingress:\n  - ports:\n    - port: 99999\n"
    )
    with pytest.raises(ManifestError) as err:
        read_objects([bad])
    (problem,) = err.value.problems
    assert (problem.file, problem.line, problem.path) == (
        str(bad),
        8,
        "spec.ingress[0].ports[0].port",
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [\n")
    with pytest.raises(ManifestError, match=f"{broken}:2: YAML syntax error"):
        read_objects([broken])
