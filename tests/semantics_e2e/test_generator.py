"""bench/generator.py: the realistic cluster other tests and benches build on."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Any

import pytest

from sekisho.model import cluster_from_objects, load_cluster
from sekisho.semantics import compute_matrix

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import generator


def _kinds(objs: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in objs:
        out[o["kind"]] = out.get(o["kind"], 0) + 1
    return out


@pytest.mark.parametrize(
    ("pods", "policies", "want_policies"),
    [
        pytest.param(100, None, 10, id="100-default"),
        pytest.param(333, None, 33, id="333-default"),
        pytest.param(250, 7, 7, id="few-policies"),
        pytest.param(120, 200, 200, id="more-policies-than-the-realistic-set"),
    ],
)
def test_counts_are_exact_and_deterministic(
    pods: int, policies: int | None, want_policies: int
) -> None:
    objs = generator.generate(pods, policies=policies, seed=3)
    assert objs == generator.generate(pods, policies=policies, seed=3)
    kinds = _kinds(objs)
    assert kinds["Pod"] == pods
    assert kinds["NetworkPolicy"] == want_policies
    names = [(o["metadata"].get("namespace"), o["metadata"]["name"], o["kind"]) for o in objs]
    assert len(names) == len(set(names))


def test_pod_ips_unique_and_inside_their_node_cidr() -> None:
    objs = generator.generate(1000, seed=0)
    cidr = {
        o["metadata"]["name"]: ipaddress.ip_network(o["spec"]["podCIDR"])
        for o in objs
        if o["kind"] == "Node"
    }
    ips = [o["status"]["podIP"] for o in objs if o["kind"] == "Pod"]
    assert len(ips) == len(set(ips))
    for o in objs:
        if o["kind"] == "Pod":
            assert ipaddress.ip_address(o["status"]["podIP"]) in cidr[o["spec"]["nodeName"]]
    assert 5 <= len(cidr) <= 15


@pytest.mark.parametrize("fmt", [pytest.param("yaml", id="yaml"), pytest.param("json", id="json")])
@pytest.mark.parametrize(
    "one_file", [pytest.param(False, id="split"), pytest.param(True, id="one-file")]
)
def test_written_files_load_to_the_same_cluster(tmp_path: Path, fmt: str, one_file: bool) -> None:
    objs = generator.generate(150, seed=1)
    generator.write(objs, tmp_path, fmt=fmt, one_file=one_file, per_file=40)
    loaded = load_cluster([str(tmp_path)])
    direct = cluster_from_objects(objs)
    assert [p.key for p in loaded.pods] == [p.key for p in direct.pods]
    assert [p.key for p in loaded.policies] == [p.key for p in direct.policies]


def test_policies_mean_what_they_say() -> None:
    cluster = cluster_from_objects(generator.generate(400, seed=0))
    keys = [p.key for p in cluster.pods]
    dns = [i for i, k in enumerate(keys) if k.startswith("kube-system/coredns-")]
    team = [i for i, k in enumerate(keys) if not k.startswith(("kube-system/", "monitoring/"))]
    m = compute_matrix(cluster, [(53, "UDP"), (5432, "TCP")])
    udp53, pg = m.probes
    # Every team pod may resolve names (allow-dns-egress; kube-system is not isolated).
    assert udp53.allowed[team][:, dns].all()
    # A db is reachable on 5432 from some pod but not from every team pod.
    db = [i for i in team if "-db-" in keys[i]]
    assert db
    col = pg.allowed[:, db]
    assert col.any() and not col[team].all()
