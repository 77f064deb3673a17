"""A hand-built policy program with tiers, Deny, Pass and Log, and negations, over three pods.

Used by the render tests (walk = interpreter on both backends, goldens) and the
kernel tests (the rendered text loads and reads back unchanged). What it says:

* tier ``platform`` (order 100, ends with pass): ``log-all`` logs everything;
  ``deny-y`` denies ingress from y; ``pass-z`` passes what comes from z;
  ``allow-rest`` (a later order in the same tier) allows everything, so a packet
  z passed must skip it;
* tier ``default`` (order 1,000,000, ends with deny): ``allow-web`` allows TCP
  80 and 8000-8080 from pods that are not y, and ICMP echo requests (type 8, any
  code) except code 1 from 10.0.2.0/24, passes UDP, denies other ICMP from 10/8;
* tier ``baseline`` (no order, ends with pass): ``deny-udp`` denies UDP except
  to the named port ``dns``.
"""

from __future__ import annotations

import ipaddress

from programs import NAMESPACES, NODES
from sekisho.model.types import Cluster, ContainerPort, Pod
from sekisho.selectors.expr import conj, equal
from sekisho.semantics.labels import K8S_POD
from sekisho.semantics.program import (
    CALICO_UNIVERSE,
    EntityMatch,
    IcmpMatch,
    NamedPortSet,
    Policy,
    PortMatch,
    Program,
    Rule,
    SelectorSet,
    Tier,
    build_program,
    net_set,
)


def cluster() -> Cluster:
    ports = (ContainerPort(80, "TCP", "http"), ContainerPort(53, "UDP", "dns"))
    pods = (
        Pod("a", "x", {"app": "x"}, "n1", ipaddress.ip_address("10.0.1.2"), ports=ports),
        Pod("a", "y", {"app": "y"}, "n1", ipaddress.ip_address("10.0.1.3"), ports=ports),
        Pod("b", "z", {"app": "z"}, "n2", ipaddress.ip_address("10.0.2.3"), ports=ports),
    )
    return Cluster(nodes=NODES, namespaces=dict(NAMESPACES), pods=pods)


def _pods(app: str) -> SelectorSet:
    return SelectorSet(conj(K8S_POD, equal("app", app)), CALICO_UNIVERSE, f"pods app={app}")


def program() -> Program:
    everyone = SelectorSet(K8S_POD, CALICO_UNIVERSE, "every pod")
    x = _pods("x")

    def pol(key: str, tier: str, order: float | None, *rules: Rule) -> Policy:
        return Policy(key, key, "test", tier, order, x, frozenset({"ingress"}), rules)

    tcp, udp, icmp = 6, 17, 1
    return build_program(
        [
            pol("log-all", "platform", 1, Rule("log", "log everything")),
            pol(
                "deny-y",
                "platform",
                2,
                Rule("deny", "from y", src=EntityMatch(selector=_pods("y"))),
            ),
            pol(
                "pass-z",
                "platform",
                3,
                Rule("pass", "from z", src=EntityMatch(selector=_pods("z"))),
            ),
            pol("allow-rest", "platform", 4, Rule("allow", "everything")),
            pol(
                "allow-web",
                "default",
                1,
                Rule(
                    "allow",
                    "web from pods but y",
                    protocol=tcp,
                    src=EntityMatch(selector=everyone, not_selector=_pods("y")),
                    dst=EntityMatch(ports=PortMatch(((80, 80), (8000, 8080)))),
                ),
                Rule(
                    "allow",
                    "echo but code 1, not from 10/8 but 10.0.2/24",
                    protocol=icmp,
                    icmp=IcmpMatch(8),
                    not_icmp=IcmpMatch(8, 1),
                    src=EntityMatch(
                        nets=net_set([ipaddress.ip_network("10.0.2.0/24")]),
                    ),
                ),
                Rule(
                    "allow",
                    "echo6 but code 1, from fd00:10:2::/64",
                    protocol=58,
                    icmp=IcmpMatch(128),
                    not_icmp=IcmpMatch(128, 1),
                    src=EntityMatch(nets=net_set([ipaddress.ip_network("fd00:10:2::/64")])),
                ),
                Rule("deny", "ICMPv6 1/4 (IPv6 only)", protocol=58, icmp=IcmpMatch(1, 4)),
                Rule("pass", "udp on to the baseline", protocol=udp),
                Rule(
                    "deny",
                    "other echo from 10/8",
                    protocol=icmp,
                    src=EntityMatch(nets=net_set([ipaddress.ip_network("10.0.0.0/8")])),
                ),
            ),
            pol(
                "deny-udp",
                "baseline",
                None,
                Rule(
                    "deny",
                    "udp but dns",
                    protocol=udp,
                    dst=EntityMatch(not_ports=PortMatch(named=(NamedPortSet("dns", udp),))),
                ),
                Rule("allow", "not tcp", not_protocol=tcp),
            ),
        ],
        [
            Tier("platform", 100.0, "pass"),
            Tier("default", 1_000_000.0, "deny"),
            Tier("baseline", None, "pass"),
        ],
    )
