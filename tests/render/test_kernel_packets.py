"""Real packets through the rendered rules agree with the interpreter (both backends).

One node and two pods, each in a throwaway network namespace (Calico's routed
model: the pod's ``eth0`` with a /32 and an on-link default route, the
node's host-side veth named by ``endpoint_interface`` with proxy ARP and a /32
route). The node's rules are loaded, TCP servers listen in every namespace,
and connections are attempted with a short timeout. The observed outcome must
equal what the interpreter says of the same flow over the same text, and what
the semantics say. Nothing is linked to the host namespace.

Both IP families: the IPv6 lab routes the same way (a /128 on the pod's
``eth0``, a default route via the node's link-local address on the host-side
veth, a /128 route on the node), so the pods resolve their gateway with
neighbour discovery through the node's INPUT rules: an egress-isolated pod
still reaches what it may (ICMPv6 that IPv6 needs is never dropped) and IPv6
traffic the policies deny is dropped.
"""

from __future__ import annotations

import ipaddress
import secrets
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from sekisho.model.types import (
    Cluster,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Node,
    Peer,
    Pod,
    PolicyPort,
    Rule,
    endpoint_interface,
)
from sekisho.render import IptablesRuleset, NftRuleset, render_node
from sekisho.render.interpret import Decision, Packet, program
from sekisho.render.path import enforce
from sekisho.semantics import Flow, node_endpoint, pod_endpoint, verdict

pytestmark = pytest.mark.privileged

NODES = {
    4: Node("n1", ipaddress.IPv4Address("192.168.0.1"), ipaddress.IPv4Network("10.0.1.0/24")),
    6: Node("n1", ipaddress.IPv6Address("fd00:192::1"), ipaddress.IPv6Network("fd00:10:1::/64")),
}
NODE = NODES[4]
PORTS = (80, 81, 82)
GATEWAY6 = "fe80::1"
"""The node's link-local address on every host-side veth: the pods' IPv6 gateway."""


def _sel(**kv: str) -> LabelSelector:
    return LabelSelector(tuple(sorted(kv.items())))


def _cluster(family: int = 4) -> Cluster:
    net = NODES[family].pod_cidr
    web = Pod("a", "web", {"app": "web"}, "n1", net[10])
    client = Pod("a", "client", {"app": "client"}, "n1", net[11])
    tcp = tuple(PolicyPort("TCP", p) for p in (80, 81))
    policies = (
        # web accepts TCP 80 from the client only
        NetworkPolicy(
            "a",
            "web-in",
            _sel(app="web"),
            ingress=(Rule((Peer(pod_selector=_sel(app="client")),), tcp[:1]),),
        ),
        # the client may send TCP 80 and 81 to web, nothing else (not even to its node)
        NetworkPolicy(
            "a",
            "client-out",
            _sel(app="client"),
            egress=(Rule((Peer(pod_selector=_sel(app="web")),), tcp),),
            affects_ingress=False,
            affects_egress=True,
        ),
    )
    return Cluster(
        nodes=(NODES[family],),
        namespaces={"a": Namespace("a", {"kubernetes.io/metadata.name": "a"})},
        pods=(client, web),
        policies=policies,
    )


# Every port listens before "ready" is printed (the threads only accept).
SERVER = """
import socket, sys, threading
def listening(port):
    s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port)); s.listen(16)
    return s
def serve(s):
    while True:
        c, _ = s.accept(); c.close()
for s in [listening(int(p)) for p in sys.argv[1:]]:
    threading.Thread(target=serve, args=(s,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

CLIENT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.0).close()
except socket.timeout:
    sys.exit(3)
except OSError:
    sys.exit(4)
"""


@dataclass
class Lab:
    names: dict[str, str]
    """role (node, a/web, a/client) -> netns name."""
    family: int = 4

    def run(self, role: str, *argv: str, stdin: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            ["ip", "netns", "exec", self.names[role], *argv],
            input=stdin,
            text=True,
            capture_output=True,
            timeout=30,
        )
        if check:
            assert proc.returncode == 0, f"{role}: {' '.join(argv)}: {proc.stderr}"
        return proc.stdout

    def ping(self, role: str, ip: str) -> str:
        proc = subprocess.run(
            ["ip", "netns", "exec", self.names[role], "ping", "-c1", "-W1", "-q", ip],
            capture_output=True,
            timeout=30,
        )
        return {0: "allowed", 1: "dropped"}.get(proc.returncode, "error")

    def connect(self, role: str, ip: str, port: int | None) -> str:
        if port is None:
            return self.ping(role, ip)
        proc = subprocess.run(
            ["ip", "netns", "exec", self.names[role], sys.executable, "-c", CLIENT, ip, str(port)],
            capture_output=True,
            timeout=30,
        )
        return {0: "allowed", 3: "dropped", 4: "rejected"}.get(proc.returncode, "error")


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True)


@pytest.fixture(params=[pytest.param(4, id="ipv4"), pytest.param(6, id="ipv6")])
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    family: int = request.param
    tag = secrets.token_hex(3)
    cluster = _cluster(family)
    node_ip = NODES[family].internal_ip
    names = {"node": f"sk-t-{tag}-n"} | {p.key: f"sk-t-{tag}-{p.name[:3]}" for p in cluster.pods}
    servers: list[subprocess.Popen[str]] = []
    created: list[str] = []
    try:
        for ns in names.values():
            _ip("netns", "add", ns)
            created.append(ns)
        node = names["node"]
        lab = Lab(names, family)
        for role in names:
            # no duplicate address detection: addresses are usable at once
            lab.run(role, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
            lab.run(role, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0")
        lab.run("node", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        lab.run("node", "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        _ip("-n", node, "link", "set", "lo", "up")
        bits = 32 if family == 4 else 128
        _ip("-n", node, "addr", "add", f"{node_ip}/{bits}", "dev", "lo")
        for pod in cluster.pods:
            pns, cali = names[pod.key], endpoint_interface(pod.namespace, pod.name)
            _ip(
                "-n",
                node,
                "link",
                "add",
                cali,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                pns,
            )
            _ip("-n", node, "link", "set", cali, "up")
            _ip("-n", pns, "link", "set", "lo", "up")
            _ip("-n", pns, "link", "set", "eth0", "up")
            if family == 6:
                # Calico's IPv6 shape: the pod's gateway is the node's link-local
                # address on the veth; the node routes the pod's /128 to the veth
                _ip("-n", node, "addr", "add", f"{GATEWAY6}/64", "dev", cali, "nodad")
                _ip("-n", node, "-6", "route", "add", f"{pod.ip}/128", "dev", cali)
                _ip("-n", pns, "addr", "add", f"{pod.ip}/128", "dev", "eth0", "nodad")
                _ip("-n", pns, "-6", "route", "add", "default", "via", GATEWAY6, "dev", "eth0")
                continue
            lab.run("node", "sysctl", "-qw", f"net.ipv4.conf.{cali}.proxy_arp=1")
            # answer proxy ARP at once (the default waits up to 0.8 s: longer than a probe)
            lab.run("node", "sysctl", "-qw", f"net.ipv4.neigh.{cali}.proxy_delay=0")
            _ip("-n", node, "route", "add", f"{pod.ip}/32", "dev", cali)
            _ip("-n", pns, "addr", "add", f"{pod.ip}/32", "dev", "eth0")
            # on-link default: the node proxy-ARPs for every address (Calico uses a
            # 169.254.1.1 gateway, which needs a default route on the node; same effect)
            _ip("-n", pns, "route", "add", "default", "dev", "eth0")
        for ns in names.values():
            argv = ["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, *map(str, PORTS)]
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
            servers.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        # before any rule: every path works (and neighbours are resolved)
        ips = {p.key: str(p.ip) for p in cluster.pods} | {"node": str(node_ip)}
        for src in ips:
            for dst, ip in ips.items():
                if src != dst:
                    assert lab.connect(src, ip, 80) == "allowed", f"{src} -> {dst} without rules"
        yield lab
    finally:
        for proc in servers:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _load(lab: Lab, rs: IptablesRuleset | NftRuleset) -> None:
    if isinstance(rs, IptablesRuleset):
        lab.run("node", "ipset", "restore", stdin=rs.ipset_restore())
        for tool, family, hooks in (("iptables", 4, rs.hooks), ("ip6tables", 6, rs.hooks6)):
            lab.run("node", f"{tool}-restore", "--noflush", stdin=rs.iptables_restore(family))
            for chain, rule in hooks:
                lab.run("node", tool, "-I", chain, "1", *shlex.split(rule))
    else:
        lab.run("node", "nft", "-f", "-", stdin=rs.script())


# (source, destination, port): source/destination are pod keys or "node"
PROBES = [
    pytest.param("a/client", "a/web", 80, "allowed", id="client-web-80-both-allow"),
    pytest.param("a/client", "a/web", 81, "dropped", id="client-web-81-egress-ok-ingress-drops"),
    pytest.param("a/client", "a/web", 82, "dropped", id="client-web-82-egress-drops"),
    pytest.param("a/web", "a/client", 80, "allowed", id="web-client-not-isolated"),
    pytest.param("node", "a/web", 82, "allowed", id="own-node-not-filtered"),
    pytest.param("a/client", "node", 80, "dropped", id="client-to-node-input-egress"),
    pytest.param("a/web", "node", 80, "allowed", id="web-to-node"),
    # port None: ICMP echo (rules with ports never match ICMP)
    pytest.param("a/client", "a/web", None, "dropped", id="client-web-ping"),
    pytest.param("a/web", "a/client", None, "allowed", id="web-client-ping"),
    pytest.param("node", "a/web", None, "allowed", id="own-node-ping"),
]


@pytest.mark.parametrize("backend", [pytest.param(b, id=b) for b in ("iptables", "nftables")])
def test_packets_agree_with_interpreter_and_semantics(lab: Lab, backend: str) -> None:
    cluster = _cluster(lab.family)
    rs = render_node(cluster, "n1", backend=backend)  # type: ignore[call-overload]
    _load(lab, rs)
    prog = program(rs.render_text())
    evaluate: Callable[[str, Packet], Decision] = lambda _node, pkt: prog.evaluate(pkt)  # noqa: E731
    node = NODES[lab.family]
    ends = {p.key: pod_endpoint(cluster, p) for p in cluster.pods} | {"node": node_endpoint(node)}
    seen = []
    for param in PROBES:
        src, dst, port, want = param.values
        proto = "TCP" if port is not None else "ICMP"
        flow = Flow(ends[src], ends[dst], proto, port)  # type: ignore[arg-type]
        observed = lab.connect(src, str(ends[dst].ip), port)  # type: ignore[arg-type]
        interpreted = "allowed" if enforce(flow, evaluate)[0] else "dropped"
        semantic = "allowed" if verdict(cluster, flow).allowed else "dropped"
        seen.append((param.id, observed, interpreted, semantic, want))
    bad = [s for s in seen if len(set(s[1:])) != 1]
    assert not bad, f"observed/interpreted/semantics/expected differ: {bad}"
    assert [s[1] for s in seen].count("allowed") >= 3, "replies of allowed connections came back"
