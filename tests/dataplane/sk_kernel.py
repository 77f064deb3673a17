"""Helpers for kernel tests: throwaway namespaces, commands inside them, small clusters on disk."""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PREFIX = "sekisho"
OURS = re.compile(PREFIX + r"(?:[-:\s]|$)")
"""Text naming one of our objects: ``sekisho-...``, our hash tags, our table ``sekisho``."""


@contextmanager
def throwaway_netns() -> Iterator[str]:
    """A fresh network namespace ``sk-t-<hex>``, deleted on every exit path."""
    name = f"sk-t-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def sh(ns: str, command: str, *, check: bool = True) -> str:
    """Run a shell command inside ``ns``; return stdout."""
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, "sh", "-c", command], capture_output=True, text=True
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{command!r} in {ns} exited {proc.returncode}: {proc.stderr}")
    return proc.stdout


def iptables_lines(ns: str, *, counters: bool = False) -> list[str]:
    """``iptables-save -t filter`` without the comment and timestamp lines."""
    out = sh(ns, "iptables-save -t filter" + (" -c" if counters else ""))
    return [line for line in out.splitlines() if not line.startswith("#")]


def ours_everywhere(ns: str, prefix: str = PREFIX) -> list[str]:
    """Every object in ``ns`` whose text mentions our prefix (chains, rules, sets, tables;
    iptables' every table: raw and mangle hold doNotTrack and preDNAT chains)."""
    everything = sh(ns, "iptables-save").splitlines() + sh(ns, "ip6tables-save").splitlines()
    found = [line for line in everything if not line.startswith("#") and OURS.search(line)]
    found += [f"set {n}" for n in sh(ns, "ipset list -n").split() if OURS.match(n)]
    found += [t for t in sh(ns, "nft list tables").splitlines() if OURS.search(t)]
    return found


def foreign_state(ns: str, prefix: str = PREFIX) -> dict[str, list[str]]:
    """Everything NOT ours: iptables lines, ipset save lines, every other nft table."""
    ipt = [line for line in iptables_lines(ns) if not OURS.search(line)]
    sets = [
        " ".join(w for w in line.split() if not w.startswith("0x"))
        for line in sh(ns, "ipset save").splitlines()
        if not OURS.search(line)
    ]
    tables = {}
    for t in sh(ns, "nft list tables").splitlines():
        words = t.split()
        if len(words) == 3 and not OURS.match(words[2]) and words[2] != "filter":
            tables[t] = sh(ns, f"nft list table {words[1]} {words[2]}").splitlines()
    return {"iptables": ipt, "ipset": sets, **tables}


def make_foreign(ns: str) -> None:
    """Objects that belong to someone else, some named like ours (``sekisho_...``)."""
    sh(
        ns,
        "iptables -N FOREIGN && iptables -A FOREIGN -s 10.9.9.9 -j DROP"
        " && iptables -A FORWARD -j FOREIGN"
        " && iptables -N sekisho_foreign && iptables -A sekisho_foreign -j RETURN"
        " && iptables -A INPUT -j sekisho_foreign"
        " && ipset create foreign-set hash:net && ipset add foreign-set 10.9.0.0/16"
        " && ipset create sekisho_foreign hash:net && ipset add sekisho_foreign 10.8.0.0/16"
        " && nft add table inet foreign"
        " && nft add chain inet foreign c '{ type filter hook forward priority 10; }'"
        " && nft add rule inet foreign c ip saddr 10.9.9.8 counter drop"
        " && nft add table ip sekisho_lab_nat"
        " && nft add chain ip sekisho_lab_nat post '{ type nat hook postrouting priority 100; }'"
        " && nft add rule ip sekisho_lab_nat post ip saddr 10.9.9.7 masquerade",
    )


NODE_YAML = """\
apiVersion: v1
kind: Node
metadata: {{name: {name}}}
spec: {{podCIDR: {cidr}}}
status: {{addresses: [{{type: InternalIP, address: {ip}}}]}}
"""

NS_YAML = """\
apiVersion: v1
kind: Namespace
metadata: {{name: {name}, labels: {{env: {name}}}}}
"""

POD_YAML = """\
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {ns}, labels: {{app: {app}}}}}
spec:
  nodeName: {node}
  containers: [{{name: c, image: nginx, ports: [{{name: http, containerPort: 80}}]}}]
status: {{podIP: {ip}}}
"""

POLICY_INGRESS_YAML = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: {name}, namespace: {ns}}}
spec:
  podSelector: {{matchLabels: {{app: {target}}}}}
  policyTypes: [Ingress]
  ingress:
  - from: [{{podSelector: {{matchLabels: {{app: {peer}}}}}}}]
    ports: [{{protocol: TCP, port: {port}}}]
"""

POLICY_EGRESS_YAML = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: {name}, namespace: {ns}}}
spec:
  podSelector: {{matchLabels: {{app: {target}}}}}
  policyTypes: [Egress]
  egress:
  - to: [{{namespaceSelector: {{matchLabels: {{env: {peer_ns}}}}}}}]
"""


def write_cluster(root: Path, *, pods_per_ns: int = 3) -> None:
    """Two nodes, namespaces dev and prod, pods on both nodes (app=a0, a1, ...)."""
    docs = [
        NODE_YAML.format(name="n1", cidr="10.244.1.0/24", ip="192.168.1.1"),
        NODE_YAML.format(name="n2", cidr="10.244.2.0/24", ip="192.168.1.2"),
        NS_YAML.format(name="dev"),
        NS_YAML.format(name="prod"),
    ]
    for k, ns in enumerate(("dev", "prod")):
        for i in range(pods_per_ns):
            node = "n1" if i % 3 != 2 else "n2"
            subnet = 1 if node == "n1" else 2
            ip = f"10.244.{subnet}.{10 + 100 * k + i}"
            docs.append(POD_YAML.format(name=f"p{i}", ns=ns, app=f"a{i}", node=node, ip=ip))
    root.mkdir(parents=True, exist_ok=True)
    (root / "cluster.yaml").write_text("---\n".join(docs))


def write_policy(root: Path, name: str, text: str) -> Path:
    path = root / "policies" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)  # rename into place, as editors and kubectl-like tools do
    return path


def ingress_policy(name: str, target: str, peer: str, port: int = 80, ns: str = "dev") -> str:
    return POLICY_INGRESS_YAML.format(name=name, ns=ns, target=target, peer=peer, port=port)


def egress_policy(name: str, target: str, peer_ns: str, ns: str = "dev") -> str:
    return POLICY_EGRESS_YAML.format(name=name, ns=ns, target=target, peer_ns=peer_ns)
