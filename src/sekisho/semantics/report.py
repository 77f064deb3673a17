"""The data of ``sekisho report``: groups, allowed pairs per probe, and the walks that explain them.

A group is an identity of :func:`~sekisho.semantics.matrix.compute_matrix`:
pods that policy cannot tell apart, so every pair of pods between two groups
has the same verdict (save a hostNetwork pod reaching its own node's pods,
counted in the pair counts). For each probe the report holds, per group pair,
how many ordered pairs of distinct pods are allowed out of how many, and the
walk of one of those pairs (:meth:`~sekisho.semantics.verdict.Verdict.lines`,
what ``trace`` prints). Explanations are shared text: identical walks are
stored once.

The value is plain JSON-able data; the page that shows it is the CLI's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sekisho.model.types import Cluster
from sekisho.semantics.endpoint import Endpoint, Flow, pod_endpoint
from sekisho.semantics.matrix import compute_matrix
from sekisho.semantics.probe import Service
from sekisho.semantics.verdict import verdict

EXPLAIN_LIMIT = 40_000
"""Walks at most (group pairs x probes); above it the first groups' pairs are explained."""


def report_data(
    cluster: Cluster, services: Sequence[Service], *, title: str = "sekisho report"
) -> dict[str, object]:
    """Everything the report page shows, as JSON-able data."""
    m = compute_matrix(cluster, list(services))
    k = len(m.identities)
    ident = m.pod_identity
    sizes = np.bincount(ident, minlength=k).astype(np.int64)
    members: list[list[int]] = [[] for _ in range(k)]
    for i, g in enumerate(ident.tolist()):
        members[g].append(i)
    # Groups ordered by namespace, then their first pod, so a namespace sits together.
    order = sorted(range(k), key=lambda g: (m.identities[g].namespace, members[g][0]))
    rank = {g: n for n, g in enumerate(order)}
    groups = []
    for n, g in enumerate(order):
        ident_g = m.identities[g]
        groups.append(
            {
                "id": f"g{n + 1}",
                "ns": ident_g.namespace,
                "labels": ",".join(f"{a}={b}" for a, b in ident_g.labels),
                "ports": ",".join(
                    (f"{p.name}:" if p.name else "") + f"{p.port}/{p.protocol}"
                    for p in ident_g.ports
                ),
                "hostNetwork": ident_g.host_network,
                "pods": [m.pods[i].key for i in members[g]],
            }
        )
    total = np.outer(sizes, sizes)
    total[np.diag_indices(k)] -= sizes
    total_sorted = total[np.ix_(order, order)]
    reps = [pod_endpoint(cluster, m.pods[members[g][0]]) for g in order]
    # Within one group, its first pod to its second.
    seconds = [
        pod_endpoint(cluster, m.pods[members[g][1]]) if len(members[g]) > 1 else None for g in order
    ]
    budget = max(1, EXPLAIN_LIMIT // max(1, len(m.probes)))
    explained = min(k, int(budget**0.5))
    strings: dict[str, int] = {}
    probes = []
    for pm in m.probes:
        counts = pm.pair_counts("allowed")[np.ix_(order, order)]
        explain: list[list[int]] = []
        for a in range(k):
            row = []
            for b in range(k):
                if a >= explained or b >= explained or total_sorted[a, b] == 0:
                    row.append(-1)
                    continue
                dst = seconds[a] if a == b else reps[b]
                assert dst is not None
                row.append(_explain(cluster, reps[a], dst, pm.service, strings))
            explain.append(row)
        probes.append(
            {
                "name": str(pm.service),
                "protocol": pm.protocol,
                "port": pm.port,
                "counts": counts.tolist(),
                "allowed": int(counts.sum()),
                "explain": explain,
            }
        )
    return {
        "title": title,
        "pods": len(m.pods),
        "namespaces": sorted({p.namespace for p in m.pods}),
        "groups": groups,
        "totals": total_sorted.tolist(),
        "probes": probes,
        "strings": list(strings),
        "explained_groups": explained,
        "rank": [rank[g] for g in ident.tolist()],
    }


def _explain(
    cluster: Cluster, src: Endpoint, dst: Endpoint, service: Service, strings: dict[str, int]
) -> int:
    port = service.port_on(dst.pod) if service.name is not None else service.port
    if service.name is not None and port is None:
        text = f"{dst.label} declares no {service.protocol} port named {service.name}"
    elif src.pod is not None and dst.pod is not None and src.pod.key == dst.pod.key:
        text = "a pod to itself"
    else:
        v = verdict(cluster, Flow(src, dst, service.protocol, port))
        text = "\n".join(v.lines())
    return strings.setdefault(text, len(strings))
