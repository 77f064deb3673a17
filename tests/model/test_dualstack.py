"""Dual stack in the model: nodes and pods with an address of each family, IPAM per
family, and the cluster as one family's probes see it (``in_family``, ``--family``)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from sekisho.cli.main import main
from sekisho.errors import ManifestError, UsageError
from sekisho.model import cluster_from_objects
from sekisho.model.types import cluster_families, in_family
from sekisho.semantics import compute_matrix
from sekisho.semantics.probe import Service, family_view, probe_families


def node(name: str, i: int, *, v6: bool = True, **spec: Any) -> dict[str, Any]:
    cidrs = [f"10.244.{i}.0/24"] + ([f"fd00:10:244:{i}::/64"] if v6 else [])
    addrs = [{"type": "InternalIP", "address": f"192.168.110.{10 + i}"}]
    if v6:
        addrs.append({"type": "InternalIP", "address": f"fd00:192:168:110::{10 + i}"})
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs, **spec},
        "status": {"addresses": addrs},
    }


def pod(name: str, node_name: str, *ips: str, host: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nodeName": node_name,
        "containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}],
    }
    if host:
        spec["hostNetwork"] = True
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "x", "labels": {"app": name}},
        "spec": spec,
    }
    if ips:
        obj["status"] = {"podIP": ips[0], "podIPs": [{"ip": ip} for ip in ips]}
    return obj


def ipblock_policy(cidr: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "from-block", "namespace": "x"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "b"}},
            "ingress": [{"from": [{"ipBlock": {"cidr": cidr}}]}],
        },
    }


def test_node_reads_both_families() -> None:
    c = cluster_from_objects([node("n1", 1)])
    (n,) = c.nodes
    assert str(n.internal_ip) == "192.168.110.11"
    assert [str(ip) for ip in n.ips] == ["192.168.110.11", "fd00:192:168:110::11"]
    assert [str(net) for net in n.pod_cidrs] == ["10.244.1.0/24", "fd00:10:244:1::/64"]
    assert str(n.pod_cidr_of(6)) == "fd00:10:244:1::/64"
    assert str(n.ip_of(6)) == "fd00:192:168:110::11"


def test_two_pod_cidrs_of_one_family_are_refused() -> None:
    bad = node("n1", 1)
    bad["spec"]["podCIDRs"] = ["10.244.1.0/24", "10.244.9.0/24"]
    with pytest.raises(ManifestError, match=r"spec\.podCIDRs\[1\].*at most one pod CIDR of each"):
        cluster_from_objects([bad])


def test_v6_pod_cidrs_of_two_nodes_must_not_overlap() -> None:
    a, b = node("n1", 1), node("n2", 2)
    b["spec"]["podCIDRs"][1] = "fd00:10:244:1:1::/80"
    with pytest.raises(ManifestError, match=r"podCIDR fd00:10:244:1:1::/80 overlaps .* n1"):
        cluster_from_objects([a, b])


def test_ipam_gives_one_address_of_each_family_on_a_dual_stack_node() -> None:
    c = cluster_from_objects(
        [node("n1", 1), node("n2", 2, v6=False), pod("a", "n1"), pod("b", "n2")]
    )
    a, b = c.pod("x/a"), c.pod("x/b")
    assert a is not None and b is not None and a.ip is not None
    assert a.ip in ipaddress.ip_network("10.244.1.0/24")
    assert [ip.version for ip in a.ips] == [4, 6]
    assert a.ip_of(6) in ipaddress.ip_network("fd00:10:244:1::/64")
    assert [ip.version for ip in b.ips] == [4]  # its node is IPv4 only
    again = cluster_from_objects(
        [pod("b", "n2"), pod("a", "n1"), node("n2", 2, v6=False), node("n1", 1)]
    )
    assert again.pod("x/a").ips == a.ips  # type: ignore[union-attr]  # stable, order-free


def test_host_network_pod_has_both_node_addresses() -> None:
    c = cluster_from_objects([node("n1", 1), pod("h", "n1", host=True)])
    h = c.pod("x/h")
    assert h is not None
    assert [str(ip) for ip in h.ips] == ["192.168.110.11", "fd00:192:168:110::11"]


def test_given_addresses_of_both_families_are_kept_and_unique() -> None:
    c = cluster_from_objects([node("n1", 1), pod("a", "n1", "10.244.1.5", "fd00:10:244:1::5")])
    assert [str(ip) for ip in c.pod("x/a").ips] == ["10.244.1.5", "fd00:10:244:1::5"]  # type: ignore[union-attr]
    with pytest.raises(ManifestError, match="fd00:10:244:1::5 is already used by pod x/a"):
        cluster_from_objects(
            [
                node("n1", 1),
                pod("a", "n1", "10.244.1.5", "fd00:10:244:1::5"),
                pod("b", "n1", "10.244.1.6", "fd00:10:244:1::5"),
            ]
        )


def dual(cidr: str = "10.244.0.0/16") -> Any:
    return cluster_from_objects(
        [
            node("n1", 1),
            node("n2", 2),
            pod("a", "n1", "10.244.1.5", "fd00:10:244:1::5"),
            pod("b", "n2", "10.244.2.5", "fd00:10:244:2::5"),
            pod("v4only", "n2", "10.244.2.9"),
            ipblock_policy(cidr),
        ]
    )


def test_in_family_puts_that_familys_addresses_first() -> None:
    c = dual()
    assert cluster_families(c) == (4, 6)
    v6 = in_family(c, 6)
    assert [p.key for p in v6.pods] == ["x/a", "x/b"]  # nothing reaches x/v4only over IPv6
    assert str(v6.pod("x/a").ip) == "fd00:10:244:1::5"  # type: ignore[union-attr]
    assert set(v6.pod("x/a").ips) == set(c.pod("x/a").ips)  # type: ignore[union-attr]
    assert str(v6.node("n1").internal_ip) == "fd00:192:168:110::11"  # type: ignore[union-attr]
    assert in_family(c, 4).pods == c.pods
    assert probe_families(c, None) == (4, 6)
    assert probe_families(c, 6) == (6,)
    with pytest.raises(UsageError, match="no pod has an IPv6 address"):
        family_view(cluster_from_objects([node("n1", 1, v6=False), pod("a", "n1")]), 6)


@pytest.mark.parametrize(
    ("cidr", "over4", "over6"),
    [
        ("10.244.0.0/16", True, False),  # an IPv4 ipBlock never matches an IPv6 source
        ("fd00:10:244::/48", False, True),  # and the other way round
        ("0.0.0.0/0", True, False),
        ("::/0", False, True),
    ],
)
def test_ipblocks_of_one_family_never_match_the_others_addresses(
    cidr: str, over4: bool, over6: bool
) -> None:
    c = dual(cidr)
    for family, want in ((4, over4), (6, over6)):
        view = in_family(c, family)
        m = compute_matrix(view, [Service("TCP", 80), Service("ICMP")])
        pods = [p.key for p in m.pods]
        a, b = pods.index("x/a"), pods.index("x/b")
        for probe in m.probes:
            assert bool(probe.allowed[a, b]) is want, (family, probe.service)
            assert bool(probe.allowed[b, a])  # x/a is not isolated


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def write(tmp_path: Path, cidr: str) -> str:
    import yaml

    path = tmp_path / "dual.yaml"
    c = [
        node("n1", 1),
        node("n2", 2),
        pod("a", "n1", "10.244.1.5", "fd00:10:244:1::5"),
        pod("b", "n2", "10.244.2.5", "fd00:10:244:2::5"),
        ipblock_policy(cidr),
    ]
    path.write_text(yaml.safe_dump_all(c))
    return str(path)


def test_cli_trace_and_matrix_per_family(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write(tmp_path, "10.244.0.0/16")
    base = ["trace", f, "--from", "x/a", "--to", "x/b", "--port", "80"]
    assert run(capsys, *base)[0] == 0
    assert run(capsys, *base, "--family", "4")[0] == 0
    code, out = run(capsys, *base, "--family", "6")
    assert code == 1 and "fd00:10:244:1::5 (x/a) is not in 10.244.0.0/16" in out
    # An IPv6 address as an endpoint means a probe over IPv6.
    code, out = run(capsys, "trace", f, "--from", "fd00:10:244:1::5", "--to", "x/b", "--port", "80")
    assert code == 1
    # ICMP over IPv6 is ICMPv6: the rule has no protocol, so the family decides.
    assert (
        run(
            capsys,
            "trace",
            f,
            "--from",
            "x/a",
            "--to",
            "x/b",
            "--protocol",
            "ICMP",
            "--family",
            "6",
        )[0]
        == 1
    )
    for family, want in (("4", True), ("6", False)):
        code, out = run(capsys, "matrix", f, "--probe", "80/TCP", "--family", family, "-o", "json")
        doc = json.loads(out)
        assert doc["pods"] == ["x/a", "x/b"]
        assert doc["probes"][0]["allowed"][0][1] is want


def test_trace_refuses_a_flow_of_two_families(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write(tmp_path, "10.244.0.0/16")
    code = main(
        ["trace", f, "--from", "x/a", "--to", "203.0.113.9", "--port", "80", "--family", "6"]
    )
    assert code == 2
    assert "two IP families" in capsys.readouterr().err


def test_lint_sees_ipv6_pod_ranges(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SK006 (an ipBlock over pod addresses) for an IPv6 block over dual-stack pods."""
    f = write(tmp_path, "fd00:10:244::/48")
    main(["lint", f])
    out = capsys.readouterr().out
    assert "SK006" in out and "fd00:10:244:1::/64" in out and "x/a" in out


def test_matrix_over_ipv6_names_the_pods_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    path = tmp_path / "mixed.yaml"
    path.write_text(
        yaml.safe_dump_all(
            [
                node("n1", 1),
                pod("a", "n1", "10.244.1.5", "fd00:10:244:1::5"),
                pod("b", "n1", "10.244.1.6"),
            ]
        )
    )
    assert main(["matrix", str(path), "--family", "6", "--probe", "80/TCP", "-o", "json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["pods"] == ["x/a"]
    assert "1 pod(s) have no IPv6 address and are not in the matrix: x/b" in out.err
