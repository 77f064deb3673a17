"""Warnings: valid manifests that probably do not say what their author meant.

The API server accepts all of these, so they never make input invalid; ``sekisho
validate`` prints them and still exits 0. Each is a classic NetworkPolicy mistake:

- rules for a direction that ``policyTypes`` leaves out are ignored
  ("policyTypes: [Ingress]" with an ``egress`` section);
- a ``namespaceSelector`` that selects no namespace (often ``name: kube-system``
  where namespaces carry ``kubernetes.io/metadata.name``);
- a ``podSelector`` (of the policy or of a peer) that selects no pod, checked only
  when the manifests include pods at all;
- two cluster-wide policies of one tier with the same ``priority``: "the
  implementation can apply any of the matching policies to the connection".
"""

from __future__ import annotations

from sekisho.model.checks import Report
from sekisho.model.parse import Drafts
from sekisho.model.reader import FieldPath, Issue
from sekisho.model.types import Cluster, LabelSelector


def lint(cluster: Cluster, drafts: Drafts, sink: list[Issue]) -> None:
    _same_priority(cluster, drafts, sink)
    # Pods that policy can select, as the distinct label sets of each namespace
    # (replicas share theirs); answers are memoized per selector and namespaces, so
    # the cost grows with distinct selectors and label sets, not policies x pods.
    labels_by_ns: dict[str, dict[tuple[tuple[str, str], ...], dict[str, str]]] = {}
    for pod in cluster.pods:
        if not pod.host_network:  # never selected by a policy or a selector peer
            distinct = labels_by_ns.setdefault(pod.namespace, {})
            distinct.setdefault(tuple(pod.labels.items()), pod.labels)
    check_pods = bool(cluster.pods)
    namespaces = cluster.namespaces
    any_memo: dict[tuple[LabelSelector, tuple[str, ...]], bool] = {}
    ns_memo: dict[LabelSelector, tuple[str, ...]] = {}

    def any_pod(selector: LabelSelector, in_namespaces: tuple[str, ...]) -> bool:
        key = (selector, in_namespaces)
        found = any_memo.get(key)
        if found is None:
            found = any_memo[key] = any(
                selector.matches(labels)
                for ns in in_namespaces
                for labels in labels_by_ns.get(ns, {}).values()
            )
        return found

    def selected_namespaces(selector: LabelSelector) -> tuple[str, ...]:
        found = ns_memo.get(selector)
        if found is None:
            found = ns_memo[selector] = tuple(
                name for name, ns in namespaces.items() if selector.matches(ns.labels)
            )
        return found

    for policy in cluster.policies:
        seen = drafts.seen.get(("NetworkPolicy", policy.namespace, policy.name))
        if seen is None:
            continue
        report = seen[1]
        warn = Report(report.loc, report.kind, report.name, sink)
        for field, rules, affects, direction in (
            ("ingress", policy.ingress, policy.affects_ingress, "Ingress"),
            ("egress", policy.egress, policy.affects_egress, "Egress"),
        ):
            if rules and not affects:
                warn.error(
                    ("spec", field),
                    f"ignored: policyTypes does not include {direction}, so these rules do nothing",
                )
        if check_pods and not any_pod(policy.pod_selector, (policy.namespace,)):
            warn.error(
                ("spec", "podSelector"),
                f"selects no pod in namespace {policy.namespace} ({policy.pod_selector})",
            )
        for field, peers_field, rules in (
            ("ingress", "from", policy.ingress),
            ("egress", "to", policy.egress),
        ):
            for i, rule in enumerate(rules):
                for j, peer in enumerate(rule.peers or ()):
                    path: FieldPath = ("spec", field, i, peers_field, j)
                    if peer.namespace_selector is not None:
                        selected = selected_namespaces(peer.namespace_selector)
                        if not selected:
                            known = ", ".join(list(namespaces)[:5]) or "none"
                            more = ", ..." if len(namespaces) > 5 else ""
                            warn.error(
                                (*path, "namespaceSelector"),
                                f"selects no namespace ({peer.namespace_selector}); "
                                f"namespaces here: {known}{more}",
                            )
                            continue
                    else:
                        selected = (policy.namespace,)
                    if (
                        check_pods
                        and peer.pod_selector is not None
                        and not any_pod(peer.pod_selector, selected)
                    ):
                        where = (
                            f"namespace {policy.namespace}"
                            if peer.namespace_selector is None
                            else "the selected namespaces"
                        )
                        warn.error(
                            (*path, "podSelector"),
                            f"selects no pod in {where} ({peer.pod_selector})",
                        )


def _same_priority(cluster: Cluster, drafts: Drafts, sink: list[Issue]) -> None:
    # priority: "If two (or more) policies in the same tier with the same priority could
    # match a connection, then the implementation can apply any of the matching policies
    # to the connection, and there is no way for the user to reliably determine which one
    # it will choose."
    first: dict[tuple[str, int], str] = {}
    for p in cluster.cluster_policies:
        if p.priority is None:
            continue
        earlier = first.setdefault((p.tier, p.priority), f"{p.kind} {p.name}")
        seen = drafts.seen.get((p.kind, "", p.name))
        if earlier == f"{p.kind} {p.name}" or seen is None:
            continue
        report = seen[1]
        Report(report.loc, report.kind, report.name, sink).error(
            ("spec", "priority"),
            f"same priority {p.priority} as {earlier} in the {p.tier} tier: the API leaves "
            "their order to the implementation (Calico and sekisho order them by name)",
        )
