"""Random programs (every action, tiers, negations): the matrix engine equals the walk.

The walk (:func:`sekisho.semantics.verdict`) follows the program rule by rule;
the matrix takes runs of one action at once. On every pair of pods, every
probe and both directions they must agree.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings

from programs import PROBES, clusters, programs
from sekisho.model.types import Cluster
from sekisho.semantics import Flow, compute_matrix, pod_endpoint, verdict
from sekisho.semantics.program import Program


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters(), programs())
def test_matrix_equals_walk_on_random_programs(c: Cluster, program: Program) -> None:
    m = compute_matrix(c, PROBES, program=program)
    ends = [pod_endpoint(c, p) for p in m.pods]
    for probe in m.probes:
        for (i, s), (j, d) in itertools.product(enumerate(ends), repeat=2):
            v = verdict(c, Flow(s, d, probe.protocol, probe.port), program=program)  # type: ignore[arg-type]
            eg = v.egress is None or v.egress.allowed
            ing = v.ingress is None or v.ingress.allowed
            where = (probe.protocol, probe.port, s.label, d.label)
            assert bool(probe.egress[i, j]) is eg, (where, v.lines())
            assert bool(probe.ingress[i, j]) is ing, (where, v.lines())
            assert bool(probe.allowed[i, j]) is v.allowed, (where, v.lines())


def test_tiers_order_and_actions_by_hand() -> None:
    """A deny in an earlier tier beats an allow later; pass hands over; log goes on."""
    import ipaddress

    from programs import NAMESPACES, NODES
    from sekisho.model.types import Pod
    from sekisho.selectors.expr import conj, equal
    from sekisho.semantics.labels import K8S_POD
    from sekisho.semantics.program import (
        CALICO_UNIVERSE,
        EntityMatch,
        Policy,
        Rule,
        SelectorSet,
        Tier,
        build_program,
    )

    pods = (
        Pod("a", "x", {"app": "x"}, "n1", ipaddress.ip_address("10.0.1.2")),
        Pod("a", "y", {"app": "y"}, "n1", ipaddress.ip_address("10.0.1.3")),
        Pod("a", "z", {"app": "z"}, "n2", ipaddress.ip_address("10.0.2.3")),
    )
    c = Cluster(nodes=NODES, namespaces=dict(NAMESPACES), pods=pods)
    pods_of = {
        p.name: SelectorSet(conj(K8S_POD, equal("app", p.name)), CALICO_UNIVERSE) for p in pods
    }
    everyone = SelectorSet(K8S_POD, CALICO_UNIVERSE)

    def policy(key: str, tier: str, order: float | None, *rules: Rule) -> Policy:
        return Policy(key, key, "test", tier, order, pods_of["x"], frozenset({"ingress"}), rules)

    from_y = EntityMatch(selector=pods_of["y"])
    prog = build_program(
        [
            policy("deny-y", "platform", 1, Rule("log", "log all"), Rule("deny", "y", src=from_y)),
            policy(
                "pass-rest", "platform", 2, Rule("pass", "rest", src=EntityMatch(selector=everyone))
            ),
            policy("allow-y", "default", 1, Rule("allow", "y", src=from_y)),
            policy(
                "allow-z-late",
                "default",
                5,
                Rule("allow", "z", src=EntityMatch(selector=pods_of["z"])),
            ),
            policy(
                "deny-z-first",
                "default",
                3,
                Rule("deny", "z", src=EntityMatch(selector=pods_of["z"])),
            ),
        ],
        [Tier("platform", 10, "deny"), Tier("default", 1_000_000, "deny")],
    )
    x, y, z = (pod_endpoint(c, p) for p in pods)

    def ingress(src: object) -> object:
        v = verdict(c, Flow(src, x, "TCP", 80), program=prog)  # type: ignore[arg-type]
        assert v.ingress is not None
        return v.ingress

    vy = ingress(y)
    assert not vy.allowed and vy.decided.policy.key == "deny-y"  # type: ignore[attr-defined]
    assert [r.rule.origin for r in vy.logged] == ["log all"]  # type: ignore[attr-defined]
    vz = ingress(z)
    # platform passes z on; in the default tier the lower order (3) denies before 5 allows
    assert not vz.allowed and vz.decided.policy.key == "deny-z-first"  # type: ignore[attr-defined]
    assert [t.outcome for t in vz.tiers] == ["pass", "deny"]  # type: ignore[attr-defined]
    m = compute_matrix(c, [(80, "TCP")], program=prog)
    names = [p.name for p in m.pods]
    allowed = m.probes[0].ingress
    assert not allowed[names.index("y"), names.index("x")]
    assert not allowed[names.index("z"), names.index("x")]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters(), programs())
def test_named_probe_resolved_on_each_destination(c: Cluster, program: Program) -> None:
    """``--probe http/TCP``: each destination is probed on the port it names http."""
    from sekisho.semantics.probe import Service

    for svc in (Service("TCP", name="http"), Service("UDP", name="dns")):
        if not any(
            p.named_port(svc.name or "", svc.protocol) for p in c.pods if not p.host_network
        ):
            continue
        m = compute_matrix(c, [svc], program=program)
        (probe,) = m.probes
        ends = [pod_endpoint(c, p) for p in m.pods]
        for (i, s), (j, d) in itertools.product(enumerate(ends), repeat=2):
            if i == j:
                continue
            number = svc.port_on(d.pod)
            if number is None:
                assert not probe.allowed[i, j]
                continue
            v = verdict(c, Flow(s, d, svc.protocol, number), program=program)
            assert bool(probe.allowed[i, j]) is v.allowed, (svc, s.label, d.label, v.lines())
