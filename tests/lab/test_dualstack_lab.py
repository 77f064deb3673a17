"""A dual-stack lab: the plan (no kernel) and the seed's cluster, dual-stack, through
``sekisho lab run`` on both backends, probed over IPv4 and IPv6."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sekisho.errors import LabError
from sekisho.lab.topology import fabric_script, node_script, plan, pod_script
from sekisho.model import cluster_from_objects, load_cluster

from .conftest import ROOT, SEED, cli_env, lab_namespaces

DUAL = ROOT / "examples" / "seed-dualstack" / "cluster.yaml"


def test_dual_stack_plan() -> None:
    cluster = load_cluster([DUAL])
    p = plan(cluster, "ds")
    assert p.dual_stack
    blue = p.pod("dev/blue")
    assert blue is not None and str(blue.ip) == "10.244.3.6"
    assert str(blue.ip6) == "fd00:10:244:3::6" and blue.addr(6) == blue.ip6
    ingress = p.pod("kube-system/nginx-ingress-controller")
    assert ingress is not None and ingress.ip6 is not None  # IPAM: one of each family
    node1 = p.node("k8s-node1")
    assert node1 is not None and str(node1.ip6) == "fd00:192:168:110::243"
    assert ("fd00:10:244:5::/64", "fd00:192:168:110::247") in node1.routes6
    script = node_script(p, node1)
    assert "net.ipv6.conf.all.forwarding=1" in script
    assert f"ip -6 route add fd00:10:244:3::6/128 dev {blue.host_if}" in script
    assert f"ip -6 addr add fe80::1/64 dev {blue.host_if} nodad" in script
    ps = pod_script(blue)
    assert "ip -6 addr add fd00:10:244:3::6/128 dev eth0 nodad" in ps
    assert "ip -6 route add default via fe80::1 dev eth0" in ps
    assert "mcast_snooping 0" in fabric_script(p)
    # The IPv4 seed builds exactly as before: no IPv6 anywhere.
    seed = plan(load_cluster([SEED / "cluster.yaml"]), "s")
    assert not seed.dual_stack
    assert all("-6" not in node_script(seed, n) for n in seed.nodes)


def test_ipv6_pod_on_a_node_without_ipv6_is_refused() -> None:
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1"},
        "spec": {"podCIDR": "10.244.1.0/24"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.110.11"}]},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "a", "namespace": "x"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
        "status": {"podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}, {"ip": "fd00::5"}]},
    }
    with pytest.raises(LabError, match="node n1 has no IPv6 InternalIP"):
        plan(cluster_from_objects([node, pod]), "ds")


@pytest.mark.privileged
@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_seed_dualstack_passes_lab_run(lab_name: str, lab_root: Path, backend: str) -> None:
    run = subprocess.run(
        [
            sys.executable, "-m", "sekisho", "lab", "run", str(DUAL), str(SEED / "part2"),
            "--name", lab_name, "--backend", backend, "--timeout", "0.5", "-o", "json",
        ],
        cwd=ROOT, env=cli_env(lab_root), capture_output=True, text=True, timeout=360, check=False,
    )  # fmt: skip
    assert not lab_namespaces(lab_name)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    doc = json.loads(run.stdout)
    families = doc["families"]
    assert [{p["family"] for p in f["probes"]} for f in families] == [{4}, {6}]
    for f in families:
        assert [(p["port"], p["protocol"]) for p in f["probes"]] == [(80, "TCP"), (None, "ICMP")]
        red = f["pods"].index("dev/red")
        green = f["pods"].index("dev/green")
        blue = f["pods"].index("dev/blue")
        tcp = f["probes"][0]["observed"]
        # part2: dev/red accepts TCP 80 from dev/blue only, and sends only to dev/green.
        assert tcp[blue][red] == "allowed" and tcp[green][red] == "dropped"
        assert tcp[red][green] == "allowed" and tcp[red][blue] == "dropped"
