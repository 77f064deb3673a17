"""``sekisho demo`` end to end: every finding of the seed reproduced with real packets."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, cli_env, lab_namespaces

pytestmark = pytest.mark.privileged


@pytest.mark.parametrize(
    "backend", [pytest.param("iptables", id="iptables"), pytest.param("nftables", id="nftables")]
)
def test_demo_passes(backend: str, lab_name: str, lab_root: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sekisho", "demo", "--backend", backend, "--name", lab_name],
        capture_output=True,
        text=True,
        timeout=360,
        cwd=ROOT,
        env=cli_env(lab_root),
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    for heading in ("Finding 1", "Finding 2", "Finding 3", "Finding 4", "Finding 5"):
        assert f"== {heading}" in out
    # Act 2, Calico's own model: each claim with packets and trace's agreeing word.
    for heading in (
        "A platform tier denies",
        "A GlobalNetworkPolicy with a GlobalNetworkSet",
        "Order: a lower-order Calico Deny beats",
        "Order: a higher-order Allow comes too late",
        "A staged policy is shown before it is applied",
        "prod/lockdown applied",
        "A HostEndpoint protects the node",
    ):
        assert f"== {heading}" in out
    assert "denied by GlobalNetworkPolicy platform.dev-never-reaches-prod ingress rule 0" in out
    assert "logged by NetworkPolicy dev/block-blue-to-red ingress rule 0 (Log)" in out
    # the Log rule's line, read from nfnetlink_log in dev/red's node, names it
    assert (
        "log: k8s-node2: 'sekisho " in out
        and "= policy NetworkPolicy dev/block-blue-to-red ingress rule 0 (Log) (" in out
    )
    assert "logs, then denies: the Log rule's line came, as trace says" in out
    assert "allows: no log line, as trace says" in out
    assert "pending (staged): DENIED: ingress: denied by StagedNetworkPolicy prod/lockdown" in out
    assert "a failsafe port of Felix (FailsafeInboundHostPorts)" in out
    assert "left out" not in out
    assert "FAIL " not in out
    assert "ALL PASS" in out
    # The report's evidence: the set whose only member is the controller, the SNAT source.
    assert "10.244.3.8" in out
    assert "server saw client 10.244.3.8" in out
    assert not lab_namespaces(lab_name)
    assert not (lab_root / lab_name).exists()


def test_demo_offline() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sekisho", "demo", "--offline"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "offline analysis" in proc.stdout
    for finding in range(1, 6):
        assert f"== Finding {finding}:" in proc.stdout
    assert "FAIL " not in proc.stdout
    assert "ALL PASS (offline" in proc.stdout
    assert "ALL PASS (offline act 2" in proc.stdout
    assert "== A platform tier denies" in proc.stdout
    assert "== A HostEndpoint protects the node" in proc.stdout


def test_demo_offline_fails_when_the_policies_do_not_do_what_the_report_saw(
    tmp_path: Path,
) -> None:
    """Offline checks are judged against the report, so a wrong policy must show FAIL."""
    from sekisho.lab.offline import run_offline

    seed = tmp_path / "seed"
    shutil.copytree(ROOT / "examples" / "seed", seed)
    policy = seed / "part2" / "allow-tcp-80-from-blue-to-green.yaml"
    text = policy.read_text()
    # Drop the ports of the ingress rule: dev/blue's ping into dev/red would now pass.
    policy.write_text(
        text.replace("    ports:\n    - protocol: TCP\n      port: 80\n  egress:", "  egress:", 1)
    )
    assert policy.read_text() != text
    lines: list[str] = []
    assert run_offline(seed, lines.append) is False
    assert any(line.startswith("  FAIL  dev/blue -> dev/red ping") for line in lines)
