"""Objects of kinds sekisho does not read are never ignored in silence (issue 9).

Known kinds are read; built-in kinds that neither allow traffic nor run pods are
skipped; anything else is unsupported: every command warns, naming the object,
the JSON outputs carry the warning, and the agent's source refuses the cluster.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sekisho.cli.main import main
from sekisho.errors import ManifestError
from sekisho.model import load_cluster, load_paths
from sekisho.model.kinds import READ, classify
from sekisho.sources import FileSource

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed" / "cluster.yaml"

FOREIGN = """\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: deny-all
  namespace: default
spec:
  endpointSelector: {}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: default}
---
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata:
  name: deny-blue
spec:
  selector: all()
"""


@pytest.fixture
def cluster_dir(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    (root / "cluster.yaml").write_text(SEED.read_text())
    (root / "foreign.yaml").write_text(FOREIGN)
    return root


@pytest.mark.parametrize(
    ("api_version", "kind", "verdict"),
    [
        ("v1", "Pod", "read"),
        ("networking.k8s.io/v1", "NetworkPolicy", "read"),
        ("extensions/v1beta1", "NetworkPolicy", "wrong-version"),
        ("apps/v1beta2", "Deployment", "wrong-version"),
        (None, "Pod", "wrong-version"),
        ("policy.networking.k8s.io/v1alpha1", "ClusterNetworkPolicy", "wrong-version"),
        ("v1", "ConfigMap", "skipped"),
        ("v1", "Service", "skipped"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", "skipped"),
        ("batch/v1", "CronJob", "skipped"),
        (None, "ConfigMap", "skipped"),
        ("projectcalico.org/v3", "NetworkPolicy", "read"),
        ("projectcalico.org/v3", "GlobalNetworkPolicy", "read"),
        ("projectcalico.org/v1", "GlobalNetworkPolicy", "wrong-version"),
        ("v1", "ServiceAccount", "read"),
        ("crd.projectcalico.org/v1", "GlobalNetworkPolicy", "unsupported"),
        ("crd.projectcalico.org/v1", "NetworkPolicy", "unsupported"),
        ("cilium.io/v2", "CiliumNetworkPolicy", "unsupported"),
        ("v1", "ReplicationController", "unsupported"),
        ("example.com/v1", "ConfigMap", "unsupported"),
        ("v1", "Gizmo", "unsupported"),
        (None, "Gizmo", "unsupported"),
    ],
)
def test_the_four_rules(api_version: str | None, kind: str, verdict: str) -> None:
    assert classify(api_version, kind).verdict == verdict


def test_every_read_kind_is_read_at_its_version() -> None:
    for info in READ:
        assert classify(info.api_version, info.kind).info is info


def test_load_names_each_unsupported_object(cluster_dir: Path) -> None:
    result = load_paths([cluster_dir])
    assert result.valid
    assert [(p.line, p.kind, p.name) for p in result.unsupported] == [
        (1, "CiliumNetworkPolicy", "default/deny-all"),
        (13, "GlobalNetworkPolicy", "deny-blue"),
    ]
    assert all(p.file.endswith("foreign.yaml") for p in result.unsupported)
    assert "unsupported kind CiliumNetworkPolicy (cilium.io/v2)" in result.unsupported[0].message
    # Calico's storage CRDs are not what calicoctl prints: the message says what to do.
    assert "calicoctl get -o yaml" in result.unsupported[1].message
    assert result.warnings[:2] == result.unsupported
    assert [obj for _, obj in result.skipped] == ["ConfigMap default/cfg"]
    assert result.summary()["unsupported"] == 2
    assert result.cluster is not None and result.cluster.unsupported == result.unsupported
    assert load_cluster([cluster_dir]).unsupported == result.unsupported


def test_validate_warns_in_text_and_json(
    cluster_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(cluster_dir)]) == 0
    out = capsys.readouterr().out
    assert "warning: " + str(cluster_dir / "foreign.yaml") + ":1: CiliumNetworkPolicy" in out
    assert "(1 skipped, 2 unsupported)" in out
    assert main(["validate", "-o", "json", str(cluster_dir)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [w["kind"] for w in doc["warnings"]] == ["CiliumNetworkPolicy", "GlobalNetworkPolicy"]


def test_trace_and_matrix_warn_and_carry_it_in_json(
    cluster_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["trace", str(cluster_dir), "--from", "dev/blue", "--to", "dev/green"]
    main([*argv, "--port", "80"])
    captured = capsys.readouterr()
    assert captured.err.count("warning: ") == 2 and "GlobalNetworkPolicy deny-blue" in captured.err
    main([*argv, "--port", "80", "-o", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert [w["name"] for w in doc["warnings"]] == ["default/deny-all", "deny-blue"]

    assert main(["matrix", str(cluster_dir), "--port", "80", "-o", "json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert [w["kind"] for w in doc["warnings"]] == ["CiliumNetworkPolicy", "GlobalNetworkPolicy"]
    assert doc["pods"] and doc["probes"]
    assert "warning: " in captured.err
    assert main(["matrix", str(cluster_dir), "--port", "80", "-o", "summary"]) == 0
    assert "CiliumNetworkPolicy default/deny-all" in capsys.readouterr().err


def test_render_warns(cluster_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(cluster_dir), "--node", "k8s-node1"]) == 0
    assert "unsupported kind GlobalNetworkPolicy" in capsys.readouterr().err


def test_agent_source_refuses(cluster_dir: Path) -> None:
    with pytest.raises(ManifestError) as info:
        FileSource(cluster_dir).load()
    assert [p.kind for p in info.value.problems] == ["CiliumNetworkPolicy", "GlobalNetworkPolicy"]
    (cluster_dir / "foreign.yaml").write_text(FOREIGN.split("---\n")[1])  # the ConfigMap only
    assert FileSource(cluster_dir).load().unsupported == ()
