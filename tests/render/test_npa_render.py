"""The network-policy-api conformance cases (tests/npa_cases.py) through the rendered rules.

Every case's cluster is rendered for each of its nodes, with both backends, and
every poke of upstream's ``PokeServer`` calls (SCTP included: the rules are
text here, no socket is opened) is walked through the interpreter along its
path: the outcome must be what upstream expects, and what the matrix says.
The commands that enforce (``render``, ``trace --node``, the agent's source)
read clusters with cluster-wide policies.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import cast

import pytest

from npa_cases import CASES, NpaCase
from sekisho.cli.main import main
from sekisho.model import Cluster, load_paths
from sekisho.model.types import FlowProtocol
from sekisho.render import BACKENDS, Backend, render_node
from sekisho.render.interpret import Decision, IptablesProgram, NftProgram, Packet, program
from sekisho.render.path import enforce
from sekisho.semantics import Flow, compute_matrix, pod_endpoint
from sekisho.sources import FileSource

PARAMS = [pytest.param(c, id=c.id) for c in CASES]


def _cluster(case: NpaCase) -> Cluster:
    result = load_paths(case.paths)
    assert result.cluster is not None, "\n".join(str(p) for p in result.problems)
    return result.cluster


def _evaluator(cluster: Cluster, backend: Backend) -> Callable[[str, Packet], Decision]:
    @cache
    def parsed(node: str) -> IptablesProgram | NftProgram:
        return program(render_node(cluster, node, backend=backend).render_text())

    return lambda node, packet: parsed(node).evaluate(packet)


@pytest.mark.parametrize("case", PARAMS)
def test_conformance_case_through_rendered_rules(case: NpaCase) -> None:
    cluster = _cluster(case)
    assert cluster.cluster_policies, "every case has cluster-wide policies"
    pods = {p.key: p for p in cluster.pods}
    m = compute_matrix(cluster, case.probes)
    index = {p.key: i for i, p in enumerate(m.pods)}
    probes = {(p.port, p.protocol): p for p in m.probes}
    wrong: list[str] = []
    for backend in BACKENDS:
        evaluate = _evaluator(cluster, backend)
        for poke in case.pokes:
            flow = Flow(
                pod_endpoint(cluster, pods[poke.src]),
                pod_endpoint(cluster, pods[poke.dst]),
                cast(FlowProtocol, poke.protocol),
                poke.port,
            )
            got, trail = enforce(flow, evaluate)
            cell = bool(
                probes[(poke.port, poke.protocol)].allowed[index[poke.src], index[poke.dst]]
            )
            if got != poke.connect or got != cell:
                why = " / ".join(
                    f"{h.node} {h.packet.hook}: {d.verdict} {d.rule}" for h, d in trail
                )
                wrong.append(f"{backend}: {poke}: rules {got}, matrix {cell}: {why}")
    assert not wrong, "\n".join(wrong)


CASE = next(c for c in CASES if c.id.startswith("v1alpha2/016-"))


def test_render_reads_cluster_wide_policies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", *CASE.paths, "--node", "node-1"]) == 0
    out = capsys.readouterr().out
    assert "start of tier kube-admin" in out or "start of tier kube-baseline" in out


def test_trace_with_node_reads_cluster_wide_policies(capsys: pytest.CaptureFixture[str]) -> None:
    poke = CASE.pokes[0]
    argv = ["trace", *CASE.paths, "--from", poke.src, "--to", poke.dst, "--port", str(poke.port)]
    assert main([*argv, "--protocol", poke.protocol, "--node", "all"]) in (0, 1)
    out = capsys.readouterr().out
    assert "rules say: " + ("allowed" if poke.connect else "denied") in out


def test_agent_source_reads_cluster_wide_policies(tmp_path: Path) -> None:
    shutil.copy(CASE.cluster, tmp_path / "cluster.yaml")
    shutil.copy(CASE.policies, tmp_path / "policies.yaml")
    assert FileSource(tmp_path).load().cluster_policies
