"""The appliers against a real kernel, in throwaway namespaces, for both backends."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sk_kernel import (
    PREFIX,
    egress_policy,
    foreign_state,
    ingress_policy,
    make_foreign,
    ours_everywhere,
    sh,
    throwaway_netns,
    write_cluster,
    write_policy,
)

from sekisho.dataplane import IptablesApplier, LibnftRunner, NftApplier, SubprocessRunner
from sekisho.errors import CommandFailed
from sekisho.render import render_node
from sekisho.sources import FileSource

pytestmark = pytest.mark.privileged

BACKENDS = [pytest.param("iptables", id="iptables"), pytest.param("nftables", id="nftables")]


@pytest.fixture
def ns() -> Iterator[str]:
    with throwaway_netns() as name:
        yield name


@pytest.fixture
def cluster_dir(tmp_path: Path) -> Path:
    root = tmp_path / "cluster"
    write_cluster(root)
    write_policy(root, "p1", ingress_policy("p1", target="a0", peer="a1"))
    write_policy(root, "p2", egress_policy("p2", target="a1", peer_ns="prod"))
    return root


def applier(backend: str, ns: str) -> IptablesApplier | NftApplier:
    runner = LibnftRunner(ns)  # the agent's runner: nft in-process, everything else as processes
    return IptablesApplier(runner, PREFIX) if backend == "iptables" else NftApplier(runner, PREFIX)


def desired(root: Path, backend: str) -> Any:
    b = "iptables" if backend == "iptables" else "nftables"
    return render_node(FileSource(root).load(), "n1", backend=b, prefix=PREFIX)


def installed_names(ns: str, backend: str) -> tuple[set[str], set[str]]:
    """(our chains, our sets) as the kernel lists them."""
    if backend == "iptables":
        chains = {
            line[1:].split()[0]
            for line in sh(ns, "iptables-save -t filter").splitlines()
            if line.startswith(f":{PREFIX}")
        }
        sets = {n for n in sh(ns, "ipset list -n").split() if n.startswith(PREFIX)}
        return chains, sets
    text = sh(ns, f"nft list table inet {PREFIX}")
    return set(re.findall(r"^\s*chain (\S+) \{", text, re.M)), set(
        re.findall(r"^\s*(?:set|map) (\S+) \{", text, re.M)
    )


def desired_names(rs: Any) -> tuple[set[str], set[str]]:
    return {c[0] for c in rs.chains}, {s.name for s in rs.sets}


@pytest.mark.parametrize("backend", BACKENDS)
def test_apply_update_delete_follow_the_policies(backend: str, ns: str, cluster_dir: Path) -> None:
    a = applier(backend, ns)
    first = desired(cluster_dir, backend)
    assert a.apply(first).changed
    assert installed_names(ns, backend) == desired_names(first)
    assert a.drift(first) == ()
    assert not a.apply(first).changed, "a second apply of the same ruleset changes nothing"

    # change p1, remove p2, add p3
    write_policy(cluster_dir, "p1", ingress_policy("p1", target="a0", peer="a2", port=443))
    (cluster_dir / "policies" / "p2.yaml").unlink()
    write_policy(cluster_dir, "p3", ingress_policy("p3", target="a1", peer="a0", port=8080))
    second = desired(cluster_dir, backend)
    result = a.apply(second)
    assert result.changed
    assert installed_names(ns, backend) == desired_names(second)
    assert a.drift(second) == ()
    gone_chains = desired_names(first)[0] - desired_names(second)[0]
    assert gone_chains, "p2's chain is obsolete"
    assert all(any(c in line and "deleted" in line for line in result.changes) for c in gone_chains)
    # a fresh applier (a restarted agent) adopts what is there and changes nothing
    assert applier(backend, ns).apply(second).changes == ()


def _counters(ns: str, chain: str) -> list[str]:
    return [
        line for line in sh(ns, "iptables-save -t filter -c").splitlines() if f"-A {chain} " in line
    ]


def _handles(ns: str, chain: str) -> list[str]:
    text = sh(ns, f"nft -a list chain inet {PREFIX} {chain}")
    return re.findall(r"# handle \d+", text)


@pytest.mark.parametrize("backend", BACKENDS)
def test_untouched_chains_keep_their_counters(backend: str, ns: str, cluster_dir: Path) -> None:
    a = applier(backend, ns)
    a.apply(desired(cluster_dir, backend))
    sh(ns, "ping -c 2 -W 1 127.0.0.1 >/dev/null")  # INPUT -> sekisho-INPUT counts these
    untouched = f"{PREFIX}-INPUT"
    if backend == "iptables":
        before = _counters(ns, untouched)
        assert any(not line.startswith("[0:0]") for line in before), before
    else:
        before = _handles(ns, untouched)
        table_before = sh(ns, f"nft -a list table inet {PREFIX}").splitlines()[0]
    write_policy(cluster_dir, "p1", ingress_policy("p1", target="a0", peer="a2", port=443))
    result = a.apply(desired(cluster_dir, backend))
    assert any("rewritten" in c for c in result.changes)
    assert not any(untouched + " " in c + " " for c in result.changes)
    if backend == "iptables":
        assert _counters(ns, untouched) == before
    else:
        assert _handles(ns, untouched) == before
        assert sh(ns, f"nft -a list table inet {PREFIX}").splitlines()[0] == table_before


TAMPER = {
    "iptables": [
        pytest.param(f"iptables -D {PREFIX}-FORWARD 1", "rule", id="delete-rule"),
        pytest.param(f"iptables -R {PREFIX}-FORWARD 1 -j ACCEPT", "rule", id="alter-rule"),
        pytest.param(f"iptables -F {PREFIX}-INPUT", "flushed", id="flush-chain"),
        pytest.param(
            "for s in $(ipset list -n | grep sekisho); do ipset flush $s; done",
            "set",
            id="flush-set",
        ),
        pytest.param(
            f"iptables -D FORWARD -m comment --comment '{PREFIX}: hook' -j {PREFIX}-FORWARD || "
            f"iptables-save | grep -- '-A FORWARD.*{PREFIX}-FORWARD' | sed 's/-A/-D/' | xargs -L1 iptables",
            "hook",
            id="delete-hook",
        ),
        pytest.param("iptables -I FORWARD 1 -j ACCEPT", "not first", id="hook-not-first"),
    ],
    "nftables": [
        pytest.param(f"nft flush chain inet {PREFIX} {PREFIX}-INPUT", "chain", id="flush-chain"),
        pytest.param(
            f"nft delete rule inet {PREFIX} {PREFIX}-FORWARD handle "
            f"$(nft -a list chain inet {PREFIX} {PREFIX}-FORWARD | sed -n 's/.* # handle \\([0-9]*\\)$/\\1/p' | sed -n 3p)",
            "chain",
            id="delete-rule",
        ),
        pytest.param(
            f"for s in $(nft list table inet {PREFIX} | sed -n 's/^\\tset \\(\\S*\\) {{/\\1/p'); do nft flush set inet {PREFIX} $s; done",
            "set",
            id="flush-set",
        ),
        pytest.param(f"nft delete table inet {PREFIX}", "missing", id="delete-table"),
    ],
}


@pytest.mark.parametrize(
    ("backend", "command", "expect"),
    [
        pytest.param(b, *p.values, id=f"{b}-{p.id}")
        for b in ("iptables", "nftables")
        for p in TAMPER[b]
    ],
)
def test_resync_repairs_tampering(
    backend: str, command: str, expect: str, ns: str, cluster_dir: Path
) -> None:
    a = applier(backend, ns)
    want = desired(cluster_dir, backend)
    a.apply(want)
    a.resync(want)  # learn the kernel's spelling of every rule
    before = sorted(ours_everywhere(ns))
    sh(ns, command)
    drift = a.drift(want)
    assert drift, f"{command!r} went unnoticed"
    assert any(expect in d for d in drift), drift
    assert a.apply(want).changes == (), "apply trusts its cache; only resync reads back"
    repaired = a.resync(want)
    assert repaired.changes == drift
    assert a.drift(want) == ()
    if backend == "iptables":
        assert sorted(ours_everywhere(ns)) == before
        hooks = [
            line for line in sh(ns, "iptables-save -t filter").splitlines() if "-A FORWARD " in line
        ]
        assert f"-j {PREFIX}-FORWARD" in hooks[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_foreign_objects_untouched_and_cleanup_leaves_nothing(
    backend: str, ns: str, cluster_dir: Path
) -> None:
    make_foreign(ns)
    before = foreign_state(ns)
    a = applier(backend, ns)
    a.apply(desired(cluster_dir, backend))
    assert ours_everywhere(ns)
    write_policy(cluster_dir, "p1", ingress_policy("p1", target="a0", peer="a2", port=443))
    a.apply(desired(cluster_dir, backend))
    a.resync(desired(cluster_dir, backend))
    assert foreign_state(ns) == before
    result = a.cleanup()
    assert result.changed
    assert ours_everywhere(ns) == []
    assert foreign_state(ns) == before
    assert a.cleanup().changes == ()


@pytest.mark.parametrize("backend", BACKENDS)
def test_hook_is_inserted_before_foreign_rules_and_kept_first(
    backend: str, ns: str, cluster_dir: Path
) -> None:
    if backend == "nftables":
        # our base chains run at priority filter - 1: before iptables' and other tables' filter chains
        a = applier(backend, ns)
        a.apply(desired(cluster_dir, backend))
        assert "priority filter - 1" in sh(ns, f"nft list chain inet {PREFIX} {PREFIX}-FORWARD")
        return
    make_foreign(ns)
    a = applier(backend, ns)
    a.apply(desired(cluster_dir, backend))
    forward = [
        line for line in sh(ns, "iptables-save -t filter").splitlines() if "-A FORWARD " in line
    ]
    assert f"-j {PREFIX}-FORWARD" in forward[0]
    assert forward[1:] == ["-A FORWARD -j FOREIGN"]


def test_libnft_runner_acts_in_its_namespace_like_the_nft_command(
    ns: str, cluster_dir: Path
) -> None:
    host_before = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    lib, cli = LibnftRunner(ns), SubprocessRunner(ns)
    try:
        ruleset = desired(cluster_dir, "nftables")
        lib(["nft", "-f", "-"], stdin=ruleset.script())
        listed = lib(["nft", "list", "table", "inet", PREFIX])
        assert listed == cli(["nft", "list", "table", "inet", PREFIX])
        assert f"table inet {PREFIX}" in lib(["nft", "list", "tables"])
        with pytest.raises(CommandFailed) as missing:
            lib(["nft", "list", "table", "inet", "sekisho-absent"])
        assert "No such file" in missing.value.stderr
        with pytest.raises(CommandFailed):  # a refused batch changes nothing (one transaction)
            lib(["nft", "-f", "-"], stdin=f"flush table inet {PREFIX}\nbogus\n")
        assert cli(["nft", "list", "table", "inet", PREFIX]) == listed
    finally:
        lib.close()
    host_after = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert host_after == host_before, "the host's namespace is never touched"


def test_libnft_runner_follows_a_namespace_re_created_under_its_name() -> None:
    with throwaway_netns() as ns:
        lib = LibnftRunner(ns)
        try:
            lib(["nft", "-f", "-"], stdin=f"table inet {PREFIX} {{\n}}\n")
            assert f"table inet {PREFIX}" in lib(["nft", "list", "tables"])
            subprocess.run(["ip", "netns", "del", ns], check=True)
            with pytest.raises(CommandFailed):  # gone: reported as `ip netns exec` reports it
                lib(["nft", "list", "tables"])
            subprocess.run(["ip", "netns", "add", ns], check=True)
            assert lib(["nft", "list", "tables"]).strip() == ""  # the new, empty namespace
        finally:
            lib.close()
