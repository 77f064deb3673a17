"""Real packets through a node's doNotTrack (raw) and preDNAT (mangle) rules, both backends,
applied by the appliers: the kernel does what the interpreter over the same text and the
walk say, conntrack keeps no entry for the untracked flow, and the appliers see, repair and
remove the early tables.

The namespaces of ``test_kernel_host_endpoints`` (a node, a pod behind it, another host on
the node network). The node's ``eth0`` is under a HostEndpoint with no profile and:

- a doNotTrack policy allowing TCP 80 to the node, written both ways as Calico requires
  (ingress to port 80, egress from port 80: the replies are not tracked either);
- a later doNotTrack policy denying TCP 81 and 22 (a normal policy allows 81: the untracked
  deny wins; 22 is a failsafe port, accepted before it);
- a preDNAT policy denying TCP 83 arriving on the host endpoint, to the node or forwarded
  to its pod (a normal policy allows it to the node);
- a normal policy allowing the node to receive 81-83 and to send anything.

Nothing is linked to the host namespace; the namespaces go on every exit.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from render.test_kernel_host_endpoints import OBJECTS, OTHER_IP, V3, disagreements, host_lab
from render.test_kernel_packets import Lab
from sekisho.dataplane import IptablesApplier, NftApplier, SubprocessRunner
from sekisho.model import Cluster, cluster_from_objects
from sekisho.render import render_node
from sekisho.semantics import resolve_endpoint

pytestmark = pytest.mark.privileged

PORTS = (22, 80, 81, 82, 83)


def _gnp(name: str, order: int, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": V3,
        "kind": "GlobalNetworkPolicy",
        "metadata": {"name": name},
        "spec": {"order": order, "selector": "host == 'n1'", **spec},
    }


def _tcp(action: str, side: str, *ports: int) -> dict[str, Any]:
    return {"action": action, "protocol": "TCP", side: {"ports": list(ports)}}


POLICIES = [
    _gnp(
        "untracked-web",
        10,
        doNotTrack=True,
        applyOnForward=True,
        ingress=[_tcp("Allow", "destination", 80)],
        egress=[_tcp("Allow", "source", 80)],
    ),
    _gnp(
        "untracked-deny",
        20,
        doNotTrack=True,
        applyOnForward=True,
        types=["Ingress"],
        ingress=[_tcp("Deny", "destination", 81, 22)],
    ),
    _gnp(
        "pre-deny",
        10,
        preDNAT=True,
        applyOnForward=True,
        types=["Ingress"],
        ingress=[_tcp("Deny", "destination", 83)],
    ),
    _gnp(
        "node",
        100,
        ingress=[_tcp("Allow", "destination", 81, 82, 83)],
        egress=[{"action": "Allow"}],
    ),
]

# (source, destination, port, expected): roles "node" (n1), "a/web", "other" (OTHER_IP)
PROBES = [
    ("other", "node", 80, "allowed"),  # untracked both ways
    ("other", "node", 81, "dropped"),  # the untracked deny beats the normal allow
    ("other", "node", 22, "allowed"),  # failsafe, before the untracked deny
    ("other", "node", 82, "allowed"),  # no early stage decides: the normal allow, tracked
    ("other", "node", 83, "dropped"),  # preDNAT deny to the node
    ("other", "a/web", 83, "dropped"),  # preDNAT deny of forwarded traffic
    ("other", "a/web", 82, "allowed"),  # forwarded, nothing early decides
    ("node", "other", 80, "allowed"),  # the node's normal egress
]


def _cluster() -> Cluster:
    return cluster_from_objects([*OBJECTS[:4], *POLICIES], source="stages-kernel")


@pytest.fixture
def lab() -> Iterator[Lab]:
    with host_lab(PORTS, [(src, dst, port) for src, dst, port, _ in PROBES]) as made:
        yield made


def _conntrack(lab: Lab, port: int) -> str:
    """The node's conntrack entries of TCP connections from the other host to ``port``."""
    match = ["-p", "tcp", "--src", OTHER_IP, "--dport", str(port)]
    proc = subprocess.run(
        ["ip", "netns", "exec", lab.names["node"], "conntrack", "-L", *match],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("backend", [pytest.param(b, id=b) for b in ("iptables", "nftables")])
def test_untracked_and_prednat_packets_agree(lab: Lab, backend: str) -> None:
    cluster = _cluster()
    rs = render_node(cluster, "n1", backend=backend)  # type: ignore[call-overload]
    runner = SubprocessRunner(lab.names["node"])
    applier = IptablesApplier(runner) if backend == "iptables" else NftApplier(runner)
    assert applier.apply(rs).changed
    assert applier.drift(rs) == ()  # the kernel lists back what was written, early tables too
    bad = disagreements(lab, cluster, rs, PROBES)
    assert not bad, f"observed/interpreted/semantics/expected differ: {bad}"
    # the untracked connection left no conntrack entry; the tracked one did
    assert _conntrack(lab, 80) == "", _conntrack(lab, 80)
    assert "dport=82" in _conntrack(lab, 82)
    # tampering with the early stages is drift; a resync repairs it
    if backend == "iptables":
        lab.run("node", "iptables", "-t", "raw", "-D", "PREROUTING", "1")
        lab.run("node", "iptables", "-t", "mangle", "-F", "sekisho-mfh-eth0")
    else:
        lab.run("node", "nft", "flush", "chain", "inet", "sekisho", "sekisho-rfh-eth0")
    assert applier.drift(rs) != ()
    applier.resync(rs)
    assert applier.drift(rs) == ()
    assert lab.connect("other", str(resolve_endpoint(cluster, "n1").ip), 81) == "dropped"
    # cleanup removes them with the rest
    applier.cleanup()
    for table in ("raw", "mangle", "filter"):
        assert "sekisho" not in lab.run("node", "iptables-save", "-t", table)
    assert "sekisho" not in lab.run("node", "nft", "list", "ruleset")
