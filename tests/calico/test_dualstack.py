"""Calico v3 ``ipVersion`` and nets, and ClusterNetworkPolicy ``networks``, of both families
on a dual-stack cluster: each family's probe meets only what applies to that family.

One row per case: the policies, then per family whether ``a/client`` reaches
``b/server``. The walk (``trace --family``), the matrix over that family and the
rendered rules of both backends (interpreted along the flow's path) must all say it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from sekisho.cli.trace import run_trace
from sekisho.model import Cluster, cluster_from_objects
from sekisho.model.types import in_family
from sekisho.render import BACKENDS, render_node
from sekisho.render.interpret import program
from sekisho.render.path import enforce
from sekisho.semantics import compute_matrix
from semantics_npa.test_mixed import cnp, out

from .test_semantics import allow, cnpv3, deny, gnp

Manifest = dict[str, Any]


def _node(name: str, k: int) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": {"podCIDRs": [f"10.244.{k}.0/24", f"fd00:10:244:{k}::/64"]},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": f"172.18.0.{k + 1}"},
                {"type": "InternalIP", "address": f"fd00:172:18::{k + 1}"},
            ]
        },
    }


def _pod(ns: str, name: str, node: str, k: int, host: int) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "ports": [{"containerPort": 80, "name": "http"}]}],
        },
        "status": {
            "podIP": f"10.244.{k}.{host}",
            "podIPs": [{"ip": f"10.244.{k}.{host}"}, {"ip": f"fd00:10:244:{k}::{host}"}],
        },
    }


BASE: list[Manifest] = [
    _node("n1", 0),
    _node("n2", 1),
    *(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"team": ns}}}
        for ns in ("a", "b")
    ),
    _pod("a", "client", "n1", 0, 10),
    _pod("b", "server", "n2", 1, 10),
]
V4 = "10.244.0.0/16"
V6 = "fd00:10:244::/48"
SERVER_V6 = "fd00:10:244:1::10/128"

CASES = [
    # (policies, service, allowed over IPv4, allowed over IPv6)
    pytest.param(
        [cnpv3("v6", ingress=[allow(ipVersion=6)])], "TCP/80", False, True, id="ipv6-only"
    ),
    pytest.param(
        [cnpv3("v4", ingress=[allow(ipVersion=4)])], "TCP/80", True, False, id="ipv4-only"
    ),
    pytest.param(
        [cnpv3("n4", ingress=[allow(source={"nets": [V4]})])], "TCP/80", True, False, id="v4-nets"
    ),
    pytest.param(
        [cnpv3("n6", ingress=[allow(source={"nets": [V6]})])], "TCP/80", False, True, id="v6-nets"
    ),
    pytest.param(
        # One rule per family: libcalico-go refuses a rule with CIDRs of both.
        [cnpv3("n46", ingress=[allow(source={"nets": [V6]}), allow(source={"nets": [V4]})])],
        "TCP/80",
        True,
        True,
        id="nets-of-both",
    ),
    pytest.param(
        # A negated net of the other family is no constraint (Felix leaves it out).
        [cnpv3("not6", ingress=[allow(source={"notNets": [V6]})])],
        "TCP/80",
        True,
        False,
        id="v6-notnets",
    ),
    pytest.param(
        [cnpv3("icmp", ingress=[allow(protocol="ICMP")])], "ICMP", True, False, id="icmp-is-ipv4"
    ),
    pytest.param(
        [cnpv3("icmp6", ingress=[allow(protocol="ICMPv6", ipVersion=6)])],
        "ICMP",
        False,
        True,
        id="icmpv6-is-ipv6",
    ),
    pytest.param(
        [
            gnp("deny6", order=10, ingress=[deny(ipVersion=6)]),
            gnp("rest", order=20, ingress=[allow()]),
        ],
        "TCP/80",
        True,
        False,
        id="gnp-deny-ipv6-first",
    ),
    pytest.param(
        [
            cnp(
                "deny-v6",
                "Admin",
                10,
                subject={
                    "pods": {
                        "namespaceSelector": {},
                        "podSelector": {"matchLabels": {"app": "client"}},
                    }
                },
                egress=[out("Deny", {"networks": [SERVER_V6]})],
            )
        ],
        "TCP/80",
        True,
        False,
        id="cnp-networks-v6",
    ),
    pytest.param(
        [
            cnp(
                "deny-both",
                "Admin",
                10,
                subject={
                    "pods": {
                        "namespaceSelector": {},
                        "podSelector": {"matchLabels": {"app": "client"}},
                    }
                },
                egress=[out("Deny", {"networks": ["10.244.1.10/32", SERVER_V6]})],
            )
        ],
        "TCP/80",
        False,
        False,
        id="cnp-networks-both",
    ),
    pytest.param(
        [
            cnp(
                "deny-v4",
                "Admin",
                10,
                subject={
                    "pods": {
                        "namespaceSelector": {},
                        "podSelector": {"matchLabels": {"app": "client"}},
                    }
                },
                egress=[out("Deny", {"networks": [V4]})],
            )
        ],
        "ICMP",
        False,
        True,
        id="cnp-networks-v4-icmp",
    ),
]


def _cluster(policies: list[Manifest]) -> Cluster:
    return cluster_from_objects([*BASE, *policies], source="dual")


@pytest.mark.parametrize(("policies", "service", "over4", "over6"), CASES)
def test_per_family(policies: list[Manifest], service: str, over4: bool, over6: bool) -> None:
    cluster = _cluster(policies)
    proto, _, port = service.partition("/")
    for family, want in ((4, over4), (6, over6)):
        view = in_family(cluster, family)
        # trace
        (v,) = run_trace(
            cluster, "a/client", "b/server", int(port) if port else None, proto, family
        )
        assert v.flow.dst.ip.version == family
        assert v.allowed is want, (family, v.lines())
        # matrix
        m = compute_matrix(view, [(int(port) if port else None, proto)])
        keys = [p.key for p in m.pods]
        assert bool(m.probes[0].allowed[keys.index("a/client"), keys.index("b/server")]) is want
        # render: the rules of both backends along the flow's path
        for backend in BACKENDS:

            @cache
            def prog(node: str, backend: str = backend, view: Cluster = view):  # type: ignore[no-untyped-def]
                return program(render_node(view, node, backend=backend).render_text())

            got, trail = enforce(v.flow, lambda node, packet: prog(node).evaluate(packet))
            assert got is want, (family, backend, [(h.node, d.verdict, d.rule) for h, d in trail])


def test_a_calico_rule_with_cidrs_of_both_families_is_refused() -> None:
    from sekisho.errors import ManifestError

    with pytest.raises(ManifestError, match="rule contains both IPv4 and IPv6 CIDRs"):
        _cluster([cnpv3("n46", ingress=[allow(source={"nets": [V4, V6]})])])
