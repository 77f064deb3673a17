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
