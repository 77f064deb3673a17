"""The agent against a real kernel, in throwaway namespaces, for both backends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from sk_kernel import (
    PREFIX,
    foreign_state,
    ingress_policy,
    make_foreign,
    ours_everywhere,
    sh,
    throwaway_netns,
    write_cluster,
    write_policy,
)

from sekisho.agent import Agent, AgentMetrics
from sekisho.dataplane import SubprocessRunner

pytestmark = pytest.mark.privileged

BACKENDS = [pytest.param("iptables", id="iptables"), pytest.param("nftables", id="nftables")]
SEKISHO = [sys.executable, "-m", "sekisho"]


@pytest.fixture
def ns() -> Iterator[str]:
    with throwaway_netns() as name:
        yield name


@pytest.fixture
def cluster_dir(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    write_cluster(root)
    write_policy(root, "p1", ingress_policy("p1", target="a0", peer="a1"))
    return root


def make_agent(root: Path, ns: str, backend: str, **kw: object) -> Agent:
    b = "iptables" if backend == "iptables" else "nftables"
    return Agent(node="n1", source=root, netns=ns, backend=b, metrics=AgentMetrics(), **kw)  # type: ignore[arg-type]


def state_text(ns: str, *tables: str) -> str:
    """Everything of ours in the namespace (iptables: ``tables``, filter when none given),
    in a form that changes when any of it changes."""
    ipt = [
        line
        for table in tables or ("filter",)
        for line in sh(ns, f"iptables-save -t {table}").splitlines()
        if PREFIX in line
    ]
    sets = [
        line
        for line in sh(ns, "ipset save").splitlines()
        if PREFIX in line and "initval" not in line
    ]
    nft = sh(ns, f"nft list table inet {PREFIX}", check=False)
    return "\n".join(ipt + sets) + "\n" + nft


def wait_for(cond: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``cond``; generous by default (a loaded machine is slow; a wrong agent still
    never meets the condition)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


@pytest.mark.parametrize("backend", BACKENDS)
def test_invalid_update_keeps_last_good_state(backend: str, ns: str, cluster_dir: Path) -> None:
    agent = make_agent(cluster_dir, ns, backend)
    assert agent.sync_once().status == "applied"
    before = state_text(ns)
    write_policy(
        cluster_dir,
        "p1",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p1}\nspec: {podSelector: 7}\n",
    )
    summary = agent.sync_once()
    assert summary.status == "invalid"
    assert state_text(ns) == before
    ok, reason = agent.ready()
    assert not ok and "p1.yaml" in reason
    assert agent.metrics.value("sekisho_agent_errors_total", {"stage": "load"}) == 1
    assert agent.applier.drift(agent.desired) == ()


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_loop_repairs_tampering_within_the_resync_interval(
    backend: str, ns: str, cluster_dir: Path
) -> None:
    agent = make_agent(cluster_dir, ns, backend, resync=0.3)
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    thread.start()
    try:
        assert wait_for(lambda: agent.generation >= 1)
        agent.resync()  # learn the kernel's spelling
        good = state_text(ns)
        if backend == "iptables":
            sh(ns, f"iptables -F {PREFIX}-FORWARD && iptables -D FORWARD 1")
        else:
            sh(ns, f"nft delete table inet {PREFIX}")
        # No read of the tampered state here: with a 0.3 s resync the agent may already
        # have repaired it before a loaded machine lists the ruleset. The repair counter
        # says it found and fixed the tampering; with nothing changed in the source, only
        # the resync loop can have put the rules back.
        assert wait_for(lambda: agent.metrics.value("sekisho_agent_repairs_total") >= 1)
        assert wait_for(lambda: state_text(ns) == good)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert state_text(ns) == good, "rules stay in place after the agent stops"


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no cleanup, no except Exception."""


class DieAt:
    """A runner that runs the first ``n`` writing commands, then 'dies'."""

    def __init__(self, inner: SubprocessRunner, n: int) -> None:
        self.inner, self.n = inner, n

    def __call__(self, argv: Sequence[str], *, stdin: str | None = None) -> str:
        if (
            "restore" in argv[0]
            or (argv[0] == "ipset" and argv[1] == "restore")
            or argv[:2] == ["nft", "-f"]
        ):
            if self.n == 0:
                raise Killed
            self.n -= 1
        return self.inner(argv, stdin=stdin)


@pytest.mark.parametrize(
    ("backend", "cut"),
    [
        pytest.param("iptables", 0, id="iptables-before-ipset"),
        pytest.param("iptables", 1, id="iptables-after-ipset"),
        pytest.param("iptables", 2, id="iptables-before-destroy"),
        pytest.param("nftables", 0, id="nftables-before-nft"),
    ],
)
def test_killed_mid_apply_then_restart_converges(
    backend: str, cut: int, ns: str, cluster_dir: Path
) -> None:
    make_agent(cluster_dir, ns, backend).sync_once()
    # an update that creates, refills and destroys sets and chains
    write_policy(cluster_dir, "p1", ingress_policy("p1", target="a0", peer="a2", port=443))
    write_policy(cluster_dir, "p2", ingress_policy("p2", target="a1", peer="a0", port=8080))
    dying = make_agent(cluster_dir, ns, backend, runner=DieAt(SubprocessRunner(ns), cut))
    with pytest.raises(Killed):
        dying.sync_once()
    restarted = make_agent(cluster_dir, ns, backend)
    assert restarted.sync_once().status in ("applied", "unchanged")
    assert restarted.applier.drift(restarted.desired) == ()
    fresh_ns_state = state_text(ns)
    with throwaway_netns() as clean:
        make_agent(cluster_dir, clean, backend).sync_once()
        assert state_text(clean).replace(clean, ns) == fresh_ns_state


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as err:
        return subprocess.Popen(
            [*SEKISHO, "agent", *args], stdout=subprocess.DEVNULL, stderr=err, env=env
        )


def _generation(ready: Path) -> int:
    try:
        return int(json.loads(ready.read_text())["generation"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_agent_process_lifecycle(backend: str, ns: str, cluster_dir: Path, tmp_path: Path) -> None:
    """Start, follow a change, report ready, survive SIGKILL, stop on SIGTERM, clean up."""
    make_foreign(ns)
    foreign = foreign_state(ns)
    ready = tmp_path / "ready.json"
    log = tmp_path / "agent.log"
    common = ["--node", "n1", "--netns", ns, "--backend", backend]
    args = [*common, "--source", str(cluster_dir), "--ready-file", str(ready), "--resync", "0.5"]
    proc = _start([*args, "--metrics-port", "0", "--log-format", "json"], log)
    try:
        assert wait_for(lambda: _generation(ready) >= 1, 60), log.read_text()
        lines = [json.loads(x) for x in log.read_text().splitlines()]
        assert all({"ts", "level", "msg"} <= set(x) for x in lines)
        port = next(
            int(x["msg"].rsplit(":", 1)[1]) for x in lines if x["msg"].startswith("serving")
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=30) as resp:
            assert resp.status == 200
        write_policy(cluster_dir, "p2", ingress_policy("p2", target="a1", peer="a0", port=8080))
        assert wait_for(lambda: _generation(ready) >= 2), log.read_text()
        assert "8080" in state_text(ns)
        # SIGKILL in the middle of a burst of changes; a restart converges
        for i in range(5):
            write_policy(
                cluster_dir,
                f"burst{i}",
                ingress_policy(f"burst{i}", target="a0", peer=f"a{i % 3}", port=9000 + i),
            )
        time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    ready.unlink()
    proc = _start(args, log)
    try:
        assert wait_for(lambda: _generation(ready) >= 1, 60), log.read_text()
        assert "9004" in state_text(ns)
        converged = state_text(ns)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert state_text(ns) == converged, "rules stay in place after SIGTERM"
    once = subprocess.run(
        [*SEKISHO, "agent", *common, "--source", str(cluster_dir), "--once"],
        capture_output=True,
        text=True,
    )
    assert once.returncode == 0 and json.loads(once.stdout)["changes"] == [], once.stderr
    cleaned = subprocess.run(
        [*SEKISHO, "agent", *common, "--cleanup"], capture_output=True, text=True
    )
    assert cleaned.returncode == 0, cleaned.stderr
    assert ours_everywhere(ns) == []
    assert foreign_state(ns) == foreign


HOST_ENDPOINT = """apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: n1-eth0, labels: {host: n1}}
spec: {node: n1, interfaceName: eth0}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: node-web}
spec:
  selector: host == 'n1'
  applyOnForward: true
  ingress: [{action: Allow, protocol: TCP, destination: {ports: [80]}}]
"""

DO_NOT_TRACK = """apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: untracked}
spec:
  selector: host == 'n1'
  doNotTrack: true
  applyOnForward: true
  ingress: [{action: Allow, protocol: TCP, destination: {ports: [8080]}}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: pre-dnat}
spec:
  selector: host == 'n1'
  preDNAT: true
  applyOnForward: true
  ingress: [{action: Deny, protocol: TCP, destination: {ports: [30080]}}]
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_agent_applies_and_removes_a_host_endpoint(
    backend: str, ns: str, cluster_dir: Path
) -> None:
    agent = make_agent(cluster_dir, ns, backend)
    assert agent.sync_once().status == "applied"
    write_policy(cluster_dir, "hosts", HOST_ENDPOINT)
    assert agent.sync_once().status == "applied"
    state = state_text(ns)
    for chain in ("fh-eth0", "th-eth0", "fhfw-eth0", "thfw-eth0", "OUTPUT"):
        assert f"{PREFIX}-{chain}" in state, chain
    assert agent.applier.drift(agent.desired) == (), "the kernel prints back what was rendered"
    # a doNotTrack policy (raw table) and a preDNAT one (mangle) are applied, read back
    # unchanged, and removed with their policies
    write_policy(cluster_dir, "untracked", DO_NOT_TRACK)
    assert agent.sync_once().status == "applied"
    early = state_text(ns, "raw", "mangle")
    for chain in ("rfh-eth0", "mfh-eth0", "raw-PRE", "mangle-PRE"):
        assert f"{PREFIX}-{chain}" in early, chain
    assert "NOTRACK" in early or "notrack" in early
    assert agent.applier.drift(agent.desired) == (), "the kernel prints back what was rendered"
    (cluster_dir / "policies" / "untracked.yaml").unlink()
    (cluster_dir / "policies" / "hosts.yaml").unlink()
    assert agent.sync_once().status == "applied"
    state = state_text(ns)
    assert f"{PREFIX}-fh-eth0" not in state and f"{PREFIX}-OUTPUT" not in state
    assert "rfh-eth0" not in state_text(ns, "raw", "mangle")
    assert agent.applier.drift(agent.desired) == ()
    # cleanup removes the OUTPUT hook and the host chains too
    write_policy(cluster_dir, "hosts", HOST_ENDPOINT)
    assert agent.sync_once().status == "applied"
    assert agent.applier.cleanup().changed
    assert ours_everywhere(ns) == []
