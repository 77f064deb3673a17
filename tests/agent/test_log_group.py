"""``Agent(log_group=N)`` (``sekisho agent --log-group N``): Log rules go to nfnetlink_log."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from sk_kernel import write_cluster, write_policy

from sekisho.agent import Agent, AgentMetrics
from sekisho.render import names

LOG_POLICY = """\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: watch-a1, namespace: dev}
spec:
  order: 10
  selector: app == 'a0'
  ingress:
  - action: Log
    protocol: TCP
    source: {selector: app == 'a1'}
"""


class Runner:
    def __init__(self) -> None:
        self.stdin: list[str] = []

    def __call__(self, argv: Sequence[str], *, stdin: str | None = None) -> str:
        self.stdin.append(stdin or "")
        if argv[0] == "iptables-save":
            return "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n"
        return ""


@pytest.mark.parametrize(("group", "target"), [(None, "-j LOG "), (17, "-j NFLOG ")])
def test_the_agent_renders_log_rules_for_its_log_group(
    tmp_path: Path, group: int | None, target: str
) -> None:
    root = tmp_path / "src"
    write_cluster(root)
    write_policy(root, "log", LOG_POLICY)
    runner = Runner()
    metrics = AgentMetrics()
    agent = Agent(node="n1", source=root, runner=runner, metrics=metrics, log_group=group)
    assert agent.sync_once().status == "applied"
    written = "\n".join(runner.stdin)
    logs = [ln for ln in written.splitlines() if names.rule_log_prefix(ln)]
    assert logs and all(target in ln for ln in logs), logs
    if group is not None:
        assert all(ln.endswith(f" --nflog-group {group}") for ln in logs)
    # the resync's full render (the check of the incremental one) renders the same
    agent.resync()
    assert metrics.errors.labels("render")._value.get() == 0
