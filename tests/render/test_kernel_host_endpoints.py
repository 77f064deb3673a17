"""Real packets through a node's host endpoint rules (both backends): the kernel does what
the interpreter over the same text and the walk say.

Three throwaway network namespaces: the node (``eth0`` 192.168.0.1/24 towards the
other host, a pod's host-side veth), a pod behind it (Calico's routed shape), and
another host on the node network (192.168.0.9, an address outside the cluster).
The node's ``eth0`` is under a HostEndpoint with no profile (what no policy allows
is dropped), a policy that lets the node receive and send TCP 80 only, and an
``applyOnForward`` policy that denies TCP 81 into the node and to its pods. Felix's
failsafe ports still reach the node (TCP 22), and the node still reaches its own
pod on any port (the seed's finding 2). Nothing is linked to the host namespace.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from render.test_kernel import Run, netns, read_back_both  # noqa: F401 (a fixture)
from render.test_kernel_packets import SERVER, Lab, _ip, _load
from sekisho.model import Cluster, cluster_from_objects
from sekisho.model.types import endpoint_interface
from sekisho.render import IptablesRuleset, NftRuleset, normalize_nft, render_node
from sekisho.render.interpret import Decision, Packet, program
from sekisho.render.path import enforce
from sekisho.semantics import Flow, resolve_endpoint, verdict

pytestmark = pytest.mark.privileged

NODE_IP, OTHER_IP, POD_IP = "192.168.0.1", "192.168.0.9", "10.0.1.10"
PORTS = (22, 80, 81, 82)
V3 = "projectcalico.org/v3"

OBJECTS: list[dict[str, Any]] = [
    {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1"},
        "spec": {"podCIDR": "10.0.1.0/24"},
        "status": {"addresses": [{"type": "InternalIP", "address": NODE_IP}]},
    },
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}},
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "a", "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
        "status": {"podIP": POD_IP},
    },
    {
        "apiVersion": V3,
        "kind": "HostEndpoint",
        "metadata": {"name": "n1-eth0", "labels": {"host": "n1"}},
        "spec": {"node": "n1", "interfaceName": "eth0", "expectedIPs": [NODE_IP]},
    },
    {
        "apiVersion": V3,
        "kind": "GlobalNetworkPolicy",
        "metadata": {"name": "node-web"},
        "spec": {
            "selector": "host == 'n1'",
            "ingress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [80]}}],
            "egress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [80]}}],
        },
    },
    {
        "apiVersion": V3,
        "kind": "GlobalNetworkPolicy",
        "metadata": {"name": "no-81"},
        "spec": {
            "order": 10,
            "selector": "host == 'n1'",
            "applyOnForward": True,
            "types": ["Ingress"],
            "ingress": [
                {"action": "Deny", "protocol": "TCP", "destination": {"ports": [81]}},
                {"action": "Allow", "destination": {"nets": ["10.0.1.0/24"]}},
            ],
        },
    },
]

# (source, destination, port, expected): roles "node" (n1), "a/web", "other" (OTHER_IP)
PROBES = [
    ("other", "node", 80, "allowed"),  # the node's ingress policy
    ("other", "node", 82, "dropped"),  # no policy allows it, no profile
    ("other", "node", 81, "dropped"),  # the applyOnForward policy applies to the node too
    ("other", "node", 22, "allowed"),  # a failsafe port
    ("node", "other", 80, "allowed"),  # the node's egress policy
    ("node", "other", 82, "dropped"),
    ("node", "other", 22, "dropped"),  # 22 is failsafe inbound only
    ("node", "a/web", 82, "allowed"),  # the node to its own pod: never filtered
    ("other", "a/web", 80, "allowed"),  # forwarded in: applyOnForward allows
    ("other", "a/web", 81, "dropped"),  # forwarded in: applyOnForward denies
    ("a/web", "other", 82, "allowed"),  # forwarded out: no applyOnForward egress policy
]


def _cluster() -> Cluster:
    return cluster_from_objects(OBJECTS, source="host-endpoint-kernel")


@pytest.fixture
def lab() -> Iterator[Lab]:
    with host_lab(PORTS, [(src, dst, port) for src, dst, port, _ in PROBES]) as made:
        yield made


@contextmanager
def host_lab(ports: tuple[int, ...], paths: list[tuple[str, str, int]]) -> Iterator[Lab]:
    """The three namespaces (roles ``node``, ``a/web``, ``other``) with a TCP server on
    ``ports`` in each; every one of ``paths`` connects before any rule; all removed on
    every exit."""
    tag = secrets.token_hex(3)
    names = {"node": f"sk-h-{tag}-n", "a/web": f"sk-h-{tag}-p", "other": f"sk-h-{tag}-x"}
    servers: list[subprocess.Popen[str]] = []
    created: list[str] = []
    try:
        for ns in names.values():
            _ip("netns", "add", ns)
            created.append(ns)
        node, pod, other = names["node"], names["a/web"], names["other"]
        lab = Lab(names)
        lab.run("node", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for ns in names.values():
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip(
            "-n",
            node,
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            other,
        )
        _ip("-n", node, "addr", "add", f"{NODE_IP}/24", "dev", "eth0")
        _ip("-n", other, "addr", "add", f"{OTHER_IP}/24", "dev", "eth0")
        for ns in (node, other):
            _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", other, "route", "add", "10.0.1.0/24", "via", NODE_IP)
        cali = endpoint_interface("a", "web")
        _ip("-n", node, "link", "add", cali, "type", "veth", "peer", "name", "eth0", "netns", pod)
        _ip("-n", node, "link", "set", cali, "up")
        _ip("-n", pod, "link", "set", "eth0", "up")
        lab.run("node", "sysctl", "-qw", f"net.ipv4.conf.{cali}.proxy_arp=1")
        lab.run("node", "sysctl", "-qw", f"net.ipv4.neigh.{cali}.proxy_delay=0")
        _ip("-n", node, "route", "add", f"{POD_IP}/32", "dev", cali)
        _ip("-n", pod, "addr", "add", f"{POD_IP}/32", "dev", "eth0")
        _ip("-n", pod, "route", "add", "default", "dev", "eth0")
        for ns in names.values():
            argv = ["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, *map(str, ports)]
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
            servers.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        # before any rule: every path of the probes works (and neighbours are resolved)
        ips = {"node": NODE_IP, "a/web": POD_IP, "other": OTHER_IP}
        for src, dst, port in paths:
            assert lab.connect(src, ips[dst], port) == "allowed", f"{src} -> {dst} without rules"
        yield lab
    finally:
        for proc in servers:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.mark.parametrize("backend", [pytest.param(b, id=b) for b in ("iptables", "nftables")])
def test_host_endpoint_packets_agree(lab: Lab, backend: str) -> None:
    cluster = _cluster()
    rs = render_node(cluster, "n1", backend=backend)  # type: ignore[call-overload]
    _load(lab, rs)
    _read_back(lambda *argv, stdin=None: lab.run("node", *argv, stdin=stdin), rs)
    bad = disagreements(lab, cluster, rs, PROBES)
    assert not bad, f"observed/interpreted/semantics/expected differ: {bad}"


def disagreements(
    lab: Lab,
    cluster: Cluster,
    rs: IptablesRuleset | NftRuleset,
    probes: list[tuple[str, str, int, str]],
) -> list[tuple[str, ...]]:
    """TCP probes between the node ("node"), its pod ("a/web") and the other host
    ("other") whose real outcome, the interpreter's over ``rs`` and the walk's are not
    all the one expected (``rs`` already loaded on the node)."""
    prog = program(rs.render_text())
    evaluate: Callable[[str, Packet], Decision] = lambda _node, pkt: prog.evaluate(pkt)  # noqa: E731
    ends = {
        "node": resolve_endpoint(cluster, "n1"),
        "a/web": resolve_endpoint(cluster, "a/web"),
        "other": resolve_endpoint(cluster, OTHER_IP),
    }
    seen = []
    for src, dst, port, want in probes:
        flow = Flow(ends[src], ends[dst], "TCP", port)
        observed = lab.connect(src, str(ends[dst].ip), port)
        interpreted = "allowed" if enforce(flow, evaluate)[0] else "dropped"
        semantic = "allowed" if verdict(cluster, flow).allowed else "dropped"
        seen.append((f"{src}->{dst}:{port}", observed, interpreted, semantic, want))
    return [s for s in seen if len(set(s[1:])) != 1]


def _read_back(run: Run, rs: IptablesRuleset | NftRuleset) -> None:
    """The kernel prints back what was rendered (so the applier sees no drift)."""
    if isinstance(rs, IptablesRuleset):
        read_back_both(run, rs)
    else:
        assert normalize_nft(run("nft", "list", "table", "inet", rs.table)) == rs.table_text()


@pytest.mark.parametrize("backend", [pytest.param(b, id=b) for b in ("iptables", "nftables")])
def test_all_interfaces_host_endpoint_round_trip(netns: Run, backend: str) -> None:  # noqa: F811
    """``interfaceName: "*"`` (every interface but the workloads'): the negated interface
    matches load and read back as rendered."""
    objects = [dict(o) for o in OBJECTS]
    objects[3] = {
        **OBJECTS[3],
        "spec": {"node": "n1", "interfaceName": "*", "profiles": ["projectcalico-default-allow"]},
    }
    rs = render_node(cluster_from_objects(objects), "n1", backend=backend)  # type: ignore[call-overload]
    assert ("! -i cali+" if backend == "iptables" else 'iifname != "cali*"') in rs.render_text()
    if isinstance(rs, IptablesRuleset):
        from render.test_kernel import apply_iptables

        apply_iptables(netns, rs)
    else:
        netns("nft", "-f", "-", stdin=rs.script())
    _read_back(netns, rs)
