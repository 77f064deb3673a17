"""The rendered seed rulesets load into a real kernel and read back as rendered.

Each test works in its own throwaway network namespace (never the host's):
``ipset restore`` + ``iptables-restore --noflush`` + the hook rules, or
``nft -f``; applied twice (the second time over existing sets and chains, as an
update does); then ``iptables-save``/``ipset save``/``nft list table`` are
normalized and compared with what we rendered and with goldens under
tests/golden/kernel/.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import secrets
import shlex
import subprocess
from collections.abc import Callable, Iterator

import pytest

from render.goldens import check_golden, seed_part2
from render.seed_cluster import seed_cluster
from sekisho.model.types import (
    Cluster,
    ContainerPort,
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    Peer,
    PolicyPort,
    Rule,
)
from sekisho.render import (
    IptablesRuleset,
    NftRuleset,
    normalize_ipset_save,
    normalize_iptables_save,
    normalize_nft,
    render_node,
)

pytestmark = pytest.mark.privileged

Run = Callable[..., str]
NODES = ("k8s-node1", "k8s-node2", "k8s-node3")
NET = ipaddress.IPv4Network


@pytest.fixture
def netns() -> Iterator[Run]:
    """A fresh network namespace ``sk-t-<hex>``; yields a runner inside it; always deleted."""
    name = f"sk-t-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:

        def run(*argv: str, stdin: str | None = None) -> str:
            proc = subprocess.run(
                ["ip", "netns", "exec", name, *argv],
                input=stdin,
                text=True,
                capture_output=True,
                timeout=30,
            )
            assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stderr}"
            return proc.stdout

        yield run
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def apply_iptables(run: Run, rs: IptablesRuleset) -> None:
    run("ipset", "restore", stdin=rs.ipset_restore())
    for tool, family, hooks in (("iptables", 4, rs.hooks), ("ip6tables", 6, rs.hooks6)):
        run(f"{tool}-restore", "--noflush", stdin=rs.iptables_restore(family))
        for chain, rule in hooks:
            words = shlex.split(rule)
            # hooks are inserted once: an update leaves them in place
            if f"-j {words[-1]}" in run(tool, "-t", "filter", "-S", chain):
                continue
            run(tool, "-t", "filter", "-I", chain, "1", *words)


def read_back_both(run: Run, rs: IptablesRuleset) -> None:
    """Both families' tables read back as rendered."""
    for tool, family in (("iptables", 4), ("ip6tables", 6)):
        rules = normalize_iptables_save(run(f"{tool}-save", "-t", "filter"), rs.prefix)
        want = normalize_iptables_save(
            rs.iptables_restore(family) + rs.hook_lines(family), rs.prefix
        )
        assert sorted(rules) == sorted(want), tool


@pytest.mark.parametrize("node", [pytest.param(n, id=n) for n in NODES])
def test_iptables_round_trip(netns: Run, node: str) -> None:
    rs = render_node(seed_part2(), node)
    assert isinstance(rs, IptablesRuleset)
    apply_iptables(netns, rs)
    apply_iptables(netns, rs)  # an update over existing sets and chains
    rules = normalize_iptables_save(netns("iptables-save", "-t", "filter"), rs.prefix)
    sets = normalize_ipset_save(netns("ipset", "save"), rs.prefix)
    assert sorted(rules) == sorted(
        normalize_iptables_save(rs.iptables_restore() + rs.hook_lines(), rs.prefix)
    )
    assert sets == normalize_ipset_save(rs.ipset_restore(), rs.prefix)
    assert not any("-t-" in s.split()[0] for s in sets), "scratch sets must be destroyed"
    read_back_both(netns, rs)
    rules6 = normalize_iptables_save(netns("ip6tables-save", "-t", "filter"), rs.prefix)
    check_golden(f"kernel/seed-part2-{node}.iptables", "\n".join(rules) + "\n")
    check_golden(f"kernel/seed-part2-{node}.ip6tables", "\n".join(rules6) + "\n")
    check_golden(f"kernel/seed-part2-{node}.ipset", "\n".join(sets) + "\n")


@pytest.mark.parametrize("node", [pytest.param(n, id=n) for n in NODES])
def test_nftables_round_trip(netns: Run, node: str) -> None:
    rs = render_node(seed_part2(), node, backend="nftables")
    assert isinstance(rs, NftRuleset)
    netns("nft", "-f", "-", stdin=rs.script())
    netns("nft", "-f", "-", stdin=rs.script())  # replaces the table atomically
    listed = normalize_nft(netns("nft", "list", "table", "inet", rs.table))
    assert listed == rs.table_text()
    assert netns("nft", "list", "tables").split().count(rs.table) == 1
    check_golden(f"kernel/seed-part2-{node}.nft", listed)


def test_seed_finding_1_ingress_controller_set(netns: Run) -> None:
    """Finding 1: the peer set holds only the controller (10.244.3.8); the rule marks 0x10000."""
    rs = render_node(seed_part2(), "k8s-node3")
    assert isinstance(rs, IptablesRuleset)
    apply_iptables(netns, rs)
    saved = netns("iptables-save", "-t", "filter")
    controller = [s for s in rs.sets if "nginx-ingress" in s.description and s.family == "inet"]
    assert len(controller) == 1
    name = controller[0].name
    listing = netns("ipset", "list", name)
    members = listing.split("Members:\n", 1)[1].split()
    assert members == ["10.244.3.8"]
    rule = next(line for line in saved.splitlines() if f"--match-set {name} src" in line)
    assert "-p tcp" in rule
    assert "--dports 80" in rule
    assert "--set-xmark 0x10000/0x10000" in rule
    assert "policy prod/allow-ingresscontroller-traffic ingress rule 0 peer 0" in rule


def kitchen_sink() -> Cluster:
    """Every shape the renderer emits: ipBlock with excepts and 0.0.0.0/0, named ports
    (TCP, UDP, SCTP), ranges, more than 15 ports, protocol-only ports, any peer."""
    base = seed_cluster()
    pods = tuple(
        dataclasses.replace(
            p,
            ports=(
                ContainerPort(80, "TCP", "http"),
                ContainerPort(53, "UDP", "dns"),
                ContainerPort(9, "SCTP", "sc"),
            ),
        )
        for p in base.pods
    )
    everything = LabelSelector()
    rules = (
        Rule(
            (
                Peer(
                    ip_block=IPBlock(
                        NET("0.0.0.0/0"), (NET("10.0.0.0/8"), NET("192.168.110.22/32"))
                    )
                ),
                Peer(namespace_selector=everything),
                Peer(pod_selector=LabelSelector((("app", "blue"),))),
            ),
            (
                PolicyPort("TCP", "http"),
                PolicyPort("UDP", "dns"),
                PolicyPort("SCTP", "sc"),
                PolicyPort("TCP", 1000, 2000),
                PolicyPort("UDP"),
                *(PolicyPort("TCP", p) for p in range(3000, 3020)),
            ),
        ),
        Rule(None, (PolicyPort("SCTP", 7),)),
        Rule(),
    )
    pol = NetworkPolicy(
        "dev",
        "sink",
        everything,
        ingress=rules,
        egress=rules,
        affects_ingress=True,
        affects_egress=True,
    )
    return dataclasses.replace(base, pods=pods, policies=(*base.policies, pol))


@pytest.mark.parametrize("backend", [pytest.param(b, id=b) for b in ("iptables", "nftables")])
def test_kitchen_sink_round_trip(netns: Run, backend: str) -> None:
    rs = render_node(kitchen_sink(), "k8s-node1", backend=backend)  # type: ignore[call-overload]
    if isinstance(rs, IptablesRuleset):
        apply_iptables(netns, rs)
        apply_iptables(netns, rs)
        read_back_both(netns, rs)
        assert normalize_ipset_save(netns("ipset", "save"), rs.prefix) == normalize_ipset_save(
            rs.ipset_restore(), rs.prefix
        )
        assert any("hash:ip,port" in line for line in netns("ipset", "save").splitlines())
    else:
        netns("nft", "-f", "-", stdin=rs.script())
        netns("nft", "-f", "-", stdin=rs.script())
        assert normalize_nft(netns("nft", "list", "table", "inet", rs.table)) == rs.table_text()


@pytest.mark.parametrize("backend", [pytest.param(b, id=b) for b in ("iptables", "nftables")])
def test_generated_node_round_trip(netns: Run, backend: str) -> None:
    """A realistic node (about 100 local pods: the iptables dispatch tree, large sets)."""
    from collections import Counter

    from render.test_differential import _generator
    from sekisho.model import cluster_from_objects

    cluster = cluster_from_objects(_generator().generate(1000, policies=100, seed=3))
    node = Counter(p.node for p in cluster.pods).most_common(1)[0][0]
    rs = render_node(cluster, str(node), backend=backend)  # type: ignore[call-overload]
    if isinstance(rs, IptablesRuleset):
        assert any(name.startswith("sekisho-fw-d-") for name, _ in rs.chains)
        apply_iptables(netns, rs)
        read_back_both(netns, rs)
        assert normalize_ipset_save(netns("ipset", "save"), rs.prefix) == normalize_ipset_save(
            rs.ipset_restore(), rs.prefix
        )
    else:
        netns("nft", "-f", "-", stdin=rs.script())
        assert normalize_nft(netns("nft", "list", "table", "inet", rs.table)) == rs.table_text()


@pytest.mark.parametrize("node", ["n1", "n2"])
def test_tiered_program_round_trip(netns: Run, node: str) -> None:
    """A program with tiers, Deny, Pass, Log, negations and ICMP type/code loads into the
    kernel with both backends and reads back as rendered (goldens of the read-back)."""
    from render import tiered

    c, prog = tiered.cluster(), tiered.program()
    rs = render_node(c, node, program=prog)
    apply_iptables(netns, rs)
    apply_iptables(netns, rs)
    rules = normalize_iptables_save(netns("iptables-save", "-t", "filter"), rs.prefix)
    assert sorted(rules) == sorted(
        normalize_iptables_save(rs.iptables_restore() + rs.hook_lines(), rs.prefix)
    )
    sets = normalize_ipset_save(netns("ipset", "save"), rs.prefix)
    assert sets == normalize_ipset_save(rs.ipset_restore(), rs.prefix)
    read_back_both(netns, rs)
    rules6 = normalize_iptables_save(netns("ip6tables-save", "-t", "filter"), rs.prefix)
    check_golden(f"kernel/tiered-{node}.iptables", "\n".join(rules) + "\n")
    check_golden(f"kernel/tiered-{node}.ip6tables", "\n".join(rules6) + "\n")
    nft = render_node(c, node, backend="nftables", program=prog)
    netns("nft", "-f", "-", stdin=nft.script())
    netns("nft", "-f", "-", stdin=nft.script())
    listed = normalize_nft(netns("nft", "list", "table", "inet", nft.table))
    assert listed == nft.table_text()
    check_golden(f"kernel/tiered-{node}.nft", listed)
