"""The labels Calico adds to what selectors see, and how a rule's selectors are scoped.

Felix evaluates every selector against one label map per entity. For a pod
(a workload endpoint) Calico adds to the pod's own labels:

* ``projectcalico.org/namespace``: the pod's namespace;
* ``projectcalico.org/orchestrator``: ``k8s``;
* ``projectcalico.org/serviceaccount``: the pod's service account (when known);
* the namespace's labels, each key prefixed with ``pcns.`` (what a rule's
  ``namespaceSelector`` is evaluated against, after its keys get the prefix);
  ``pcns.projectcalico.org/name`` is the namespace's name;
* the service account's labels prefixed with ``pcsa.``.

This module is the one home of those names and of the scoping rules of
``libcalico-go``'s ``updateprocessors/rules.go`` (quoted below), shared by every
policy kind's compiler.
"""

from __future__ import annotations

from collections.abc import Mapping

from sekisho.selectors.expr import (
    All,
    And,
    Compare,
    Expr,
    Global,
    Has,
    Not,
    Or,
    conj,
    equal,
    prefix_keys,
)

NAMESPACE = "projectcalico.org/namespace"
ORCHESTRATOR = "projectcalico.org/orchestrator"
SERVICE_ACCOUNT = "projectcalico.org/serviceaccount"
NAME = "projectcalico.org/name"
NS_PREFIX = "pcns."
SA_PREFIX = "pcsa."


def namespace_part(namespace: str, namespace_labels: Mapping[str, str]) -> dict[str, str]:
    """The labels a namespace gives each of its pods: ``pcns.`` labels and the namespace."""
    out = {NS_PREFIX + k: v for k, v in namespace_labels.items()}
    out[NS_PREFIX + NAME] = namespace
    out[NAMESPACE] = namespace
    out[ORCHESTRATOR] = "k8s"
    return out


def is_namespace_key(key: str) -> bool:
    """Whether a key is one a pod gets from its namespace (see :func:`namespace_part`)."""
    return key.startswith(NS_PREFIX) or key in (NAMESPACE, ORCHESTRATOR)


def workload_labels(
    labels: Mapping[str, str],
    namespace: str,
    namespace_labels: Mapping[str, str],
    service_account: str | None = None,
    service_account_labels: Mapping[str, str] | None = None,
    *,
    ns_part: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The label map selectors see for a pod: its labels plus the ones Calico adds.

    ``ns_part``: :func:`namespace_part` of the pod's namespace, when the caller keeps it.
    """
    out = dict(labels)
    if service_account is not None:
        out[SERVICE_ACCOUNT] = service_account
        out[SA_PREFIX + NAME] = service_account
        for k, v in (service_account_labels or {}).items():
            out[SA_PREFIX + k] = v
    out.update(ns_part if ns_part is not None else namespace_part(namespace, namespace_labels))
    return out


def in_namespace(namespace: str) -> Expr:
    return equal(NAMESPACE, namespace)


K8S_POD = equal(ORCHESTRATOR, "k8s")
"""Calico's converter prefixes every Kubernetes pod selector with this, so that it
never selects host endpoints or network sets."""


def _replace_all(e: Expr, by: Expr) -> Expr:
    """``e`` with every ``all()`` replaced (Calico's ``strings.Replace(sel, "all()", ...)``)."""
    if isinstance(e, All):
        return by
    if isinstance(e, Not):
        return Not(_replace_all(e.operand, by))
    if isinstance(e, And):
        return And(tuple(_replace_all(o, by) for o in e.operands))
    if isinstance(e, Or):
        return Or(tuple(_replace_all(o, by) for o in e.operands))
    return e


def namespace_selector(selector: Expr) -> Expr:
    """A ``namespaceSelector`` over endpoint labels: keys get ``pcns.``.

    "We treat "all()" as "select all namespaces". Since in the v1 data model
    "all()" will select all endpoints, translate this to an equivalent
    expressions which means select any workload that is in a namespace."
    "We treat "global()" as opposite to `all()`, selects only host endpoints or
    GlobalNetworksets".
    """
    if isinstance(selector, Global):
        return Not(Has(NAMESPACE))
    return _replace_all(prefix_keys(selector, NS_PREFIX), Has(NAMESPACE))


def service_account_selector(selector: Expr) -> Expr:
    """A policy's ``serviceAccountSelector`` over endpoint labels: keys get ``pcsa.``;
    "all()" is any service account (``has(projectcalico.org/serviceaccount)``)."""
    return _replace_all(prefix_keys(selector, SA_PREFIX), Has(SERVICE_ACCOUNT))


def service_accounts(names: tuple[str, ...], selector: Expr | None) -> Expr | None:
    """A rule's ``serviceAccounts`` match (``parseServiceAccounts``): "converting the list
    of service account names into a set of service account with key:
    "projectcalico.org/serviceaccount" in { 'sa-1', 'sa-2' } AND by prefixing the keys
    with the `pcsa.` prefix"; None when it has neither."""
    parts: list[Expr] = []
    if selector is not None:
        parts.append(prefix_keys(selector, SA_PREFIX))
    if names:
        parts.append(Compare(SERVICE_ACCOUNT, "in", tuple(sorted(set(names)))))
    return conj(*parts) if parts else None


def entity_selector(
    policy_namespace: str | None,
    selector: Expr | None,
    namespace_sel: Expr | None,
    *,
    has_not_selector: bool = False,
    accounts: Expr | None = None,
) -> Expr | None:
    """A rule side's effective selector, as ``GetEntityRuleSelector`` scopes it.

    "A namespace selector was given - the rule applies to all namespaces which
    match this selector." / "No namespace selector was given and this is a
    namespaced network policy, so the rule applies only to its own namespace."
    / "We need to namespace the rule's selector when converting to a v1 object.
    This occurs when the selector (and/or SA Selector), NotSelector, or
    NamespaceSelector is provided". ``accounts``: the side's service account
    match (:func:`service_accounts`). None: the side has no selector.
    """
    ns_part: Expr | None = None
    if namespace_sel is not None:
        ns_part = namespace_selector(namespace_sel)
    elif policy_namespace is not None:
        ns_part = in_namespace(policy_namespace)
    chosen = [e for e in (accounts, selector) if e is not None]
    combined = conj(*chosen) if chosen else None
    if ns_part is not None and (
        combined is not None or has_not_selector or namespace_sel is not None
    ):
        return conj(ns_part, combined) if combined is not None else ns_part
    return combined
