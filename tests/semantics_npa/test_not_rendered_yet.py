"""Until the renderer reads the policy program, a cluster with cluster-wide policies is
refused by everything that enforces (render, the agent's source, trace --node) rather
than enforced without them: nothing fails open."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from npa_cases import CASES
from sekisho.cli.main import main
from sekisho.errors import ManifestError
from sekisho.sources import FileSource

CASE = next(c for c in CASES if c.id.startswith("v1alpha2/016-"))


def test_render_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", *CASE.paths, "--node", "node-1"]) == 2
    err = capsys.readouterr().err
    assert "policies.yaml:1: ClusterNetworkPolicy egress-tcp: not rendered yet" in err


def test_trace_with_node_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    poke = CASE.pokes[0]
    argv = ["trace", *CASE.paths, "--from", poke.src, "--to", poke.dst, "--port", "80"]
    assert main([*argv, "--node", "all"]) == 2
    assert "not rendered yet" in capsys.readouterr().err


def test_agent_source_refuses(tmp_path: Path) -> None:
    shutil.copy(CASE.cluster, tmp_path / "cluster.yaml")
    source = FileSource(tmp_path)
    assert source.load().cluster_policies == ()
    shutil.copy(CASE.policies, tmp_path / "policies.yaml")
    with pytest.raises(ManifestError) as info:
        source.load()
    assert "ClusterNetworkPolicy egress-tcp: not rendered yet" in str(info.value)
