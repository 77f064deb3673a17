"""Warnings: valid input that probably does not say what was meant (exit status stays 0)."""

from __future__ import annotations

import io
import textwrap

import pytest

from sekisho.model import load_paths

PODS = """\
apiVersion: v1
kind: Namespace
metadata: {name: dev, labels: {team: a}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: dev, labels: {app: web}}
---
"""


def _warnings(policy_spec: str, with_pods: bool = True) -> list[str]:
    text = (PODS if with_pods else "") + (
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: p, namespace: dev}\nspec:\n"
        + textwrap.indent(textwrap.dedent(policy_spec), "  ")
    )
    result = load_paths(["-"], stdin=io.StringIO(text))
    assert result.problems == ()
    return [str(w) for w in result.warnings]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            "podSelector: {}\npolicyTypes: [Ingress]\negress:\n- {}\n",
            "<stdin>:15: NetworkPolicy dev/p: spec.egress: ignored: policyTypes does not include "
            "Egress, so these rules do nothing",
            id="rules-outside-policy-types",
        ),
        pytest.param(
            "podSelector: {matchLabels: {app: db}}\n",
            "<stdin>:13: NetworkPolicy dev/p: spec.podSelector: selects no pod in namespace dev (app=db)",
            id="policy-selects-no-pod",
        ),
        pytest.param(
            "podSelector: {}\ningress:\n- from:\n  - namespaceSelector: {matchLabels: {name: kube-system}}\n",
            "<stdin>:16: NetworkPolicy dev/p: spec.ingress[0].from[0].namespaceSelector: selects no "
            "namespace (name=kube-system); namespaces here: dev",
            id="namespace-selector-selects-nothing",
        ),
        pytest.param(
            "podSelector: {}\negress:\n- to:\n  - podSelector: {matchLabels: {app: api}}\n",
            "spec.egress[0].to[0].podSelector: selects no pod in namespace dev (app=api)",
            id="peer-selects-no-pod",
        ),
        pytest.param(
            "podSelector: {}\ningress:\n- from:\n  - namespaceSelector: {matchLabels: {team: a}}\n"
            "    podSelector: {matchLabels: {app: api}}\n",
            "spec.ingress[0].from[0].podSelector: selects no pod in the selected namespaces (app=api)",
            id="peer-selects-no-pod-in-selected-namespaces",
        ),
    ],
)
def test_warning(spec: str, expected: str) -> None:
    warnings = _warnings(spec)
    assert any(expected in w for w in warnings), "\n".join(warnings)


def test_no_warnings_for_a_policy_that_selects_what_exists() -> None:
    spec = (
        "podSelector: {matchLabels: {app: web}}\ningress:\n- from:\n"
        "  - namespaceSelector: {matchLabels: {team: a}}\n    podSelector: {matchLabels: {app: web}}\n"
    )
    assert _warnings(spec) == []


def test_pod_selectors_are_not_checked_without_pods() -> None:
    assert _warnings("podSelector: {matchLabels: {app: db}}\n", with_pods=False) == []
