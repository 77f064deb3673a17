"""Random Calico v3 objects (``tests/calico/test_property.py``: tiers, both scopes, every
action and negation, network sets, service accounts, a Kubernetes NetworkPolicy, host
endpoints with applyOnForward policies) through the rendered rules of both backends: the
interpreter equals the walk and the matrix."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from calico.test_property import BASE, objects
from render.test_program_differential import check
from sekisho.model import cluster_from_objects
from sekisho.semantics import compile_program


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(objects())
def test_rendered_calico_objects_agree(objs: list[dict[str, Any]]) -> None:
    cluster = cluster_from_objects([*BASE, *objs], source="random")
    check(cluster, compile_program(cluster))


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(objects(stages=True))
def test_rendered_calico_stages_agree(objs: list[dict[str, Any]]) -> None:
    """With doNotTrack and preDNAT policies too: the raw and mangle stages as rendered
    (NOTRACK, the accept mark read by the filter table) say what the walk says, for new
    and for later (ESTABLISHED) packets."""
    cluster = cluster_from_objects([*BASE, *objs], source="random")
    check(cluster, compile_program(cluster))


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(objects(stages=True), objects(stages=True))
def test_kept_renderer_equals_a_fresh_one_with_stages(
    a: list[dict[str, Any]], b: list[dict[str, Any]]
) -> None:
    """The same with doNotTrack and preDNAT policies appearing, changing and going."""
    test_kept_renderer_equals_a_fresh_one_with_host_endpoints.hypothesis.inner_test(a, b)  # type: ignore[attr-defined]


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(objects(), objects())
def test_kept_renderer_equals_a_fresh_one_with_host_endpoints(
    a: list[dict[str, Any]], b: list[dict[str, Any]]
) -> None:
    """The agent's kept renderer, moved from one cluster to another (host endpoints
    appearing, changing, going) and then through changes that keep the Calico objects
    (the Kubernetes NetworkPolicy removed, a pod relabelled), says what a fresh one says."""
    import dataclasses

    from sekisho.render import NodeRenderer, render_iptables, render_nftables, render_node

    first = cluster_from_objects([*BASE, *a], source="random")
    second = cluster_from_objects([*BASE, *b], source="random")
    steps = [second, dataclasses.replace(second, policies=())]
    pod = second.pods[0]
    steps.append(
        dataclasses.replace(
            steps[-1],
            pods=tuple(
                dataclasses.replace(p, labels={"relabelled": "yes"}) if p.key == pod.key else p
                for p in second.pods
            ),
        )
    )
    for node in ("node-1", "node-2"):
        r = NodeRenderer(node)
        r.update(first)
        for cluster in steps:
            r.update(cluster)
            assert render_iptables(r) == render_node(cluster, node)
            assert render_nftables(r) == render_node(cluster, node, backend="nftables")
