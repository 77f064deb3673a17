"""Workload controllers expanded into the pods they would run, with stable names.

Names follow the controllers' own patterns, with the random parts replaced by
hashes of stable inputs so that a run is reproducible and independent of file
order:

- Deployment ``web`` -> ReplicaSet ``web-<template hash>`` -> pods
  ``web-<template hash>-<suffix>``, labelled ``pod-template-hash=<template hash>``;
- ReplicaSet ``web`` -> pods ``web-<suffix>``;
- StatefulSet ``db`` -> pods ``db-0`` .. ``db-N-1``, labelled
  ``statefulset.kubernetes.io/pod-name`` and ``apps.kubernetes.io/pod-index``;
- DaemonSet ``agent`` -> one pod ``agent-<suffix>`` per schedulable node, bound to it;
- Job ``batch`` -> ``parallelism`` (default 1, at most ``completions``) pods
  ``batch-<suffix>``, labelled ``job-name`` and ``batch.kubernetes.io/job-name``.

Suffixes use the controllers' alphabet (``bcdfghjklmnpqrstvwxz2456789``, no vowels).

Placement (a scheduler's job, made deterministic): a pod whose template names no node
goes on the schedulable nodes in name order, round robin from a node chosen by a hash
of its workload (``Kind/namespace/name``): the ``i``-th replica on node ``(start + i)
mod n``. A workload's pods depend only on it and the schedulable nodes, so adding,
changing or deleting one workload moves no other pod (``model.patch`` relies on it);
a change of the schedulable nodes may move every workload's pods.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sekisho.model.parse import PodDraft, PodTemplate, WorkloadDraft

ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _encode(data: str, length: int) -> str:
    import hashlib  # on use: loading OpenSSL is start-up time most commands never need

    number = int.from_bytes(hashlib.sha1(data.encode()).digest()[:10], "big")
    out = []
    for _ in range(length):
        number, digit = divmod(number, len(ALPHABET))
        out.append(ALPHABET[digit])
    return "".join(out)


def template_hash(template_raw: Any) -> str:
    """A stable 10-character hash of a pod template (Kubernetes uses FNV of the template)."""
    canonical = json.dumps(template_raw, sort_keys=True, separators=(",", ":"), default=str)
    return _encode(canonical, 10)


def suffix(owner: str, index: int) -> str:
    """The 5-character suffix of the ``index``-th pod of ``owner`` (``Kind/ns/name``)."""
    return _encode(f"{owner}#{index}", 5)


def expand(workload: WorkloadDraft, schedulable_nodes: Sequence[str]) -> list[PodDraft]:
    """The pods one workload would run (DaemonSets: one per schedulable node)."""
    kind, name = workload.kind, workload.name
    owner = f"{kind}/{workload.namespace}/{name}"
    t = workload.template
    pods: list[PodDraft] = []
    start = hash_index(owner) if schedulable_nodes else 0

    def place(i: int) -> str | None:
        if t.node is not None or not schedulable_nodes:
            return t.node  # an undefined one is reported by the join
        return schedulable_nodes[(start + i) % len(schedulable_nodes)]

    def pod(pod_name: str, extra: dict[str, str], node: str | None) -> PodDraft:
        template = PodTemplate(
            labels={**t.labels, **extra},
            node=node,
            host_network=t.host_network,
            ports=t.ports,
            service_account=t.service_account,
        )
        return PodDraft(
            namespace=workload.namespace,
            name=pod_name,
            template=template,
            source=workload.source,
            report=workload.report,
            workload=f"{kind}/{name}",
            path_prefix=("spec", "template"),
        )

    if kind == "Deployment":
        h = template_hash(workload.template_raw)
        rs = f"{name}-{h}"
        for i in range(workload.replicas):
            pods.append(
                pod(f"{rs}-{suffix(owner, i)}", {"pod-template-hash": h}, place(i)),
            )
    elif kind == "ReplicaSet":
        for i in range(workload.replicas):
            pods.append(pod(f"{name}-{suffix(owner, i)}", {}, place(i)))
    elif kind == "StatefulSet":
        for i in range(workload.replicas):
            pod_name = f"{name}-{i}"
            extra = {
                "statefulset.kubernetes.io/pod-name": pod_name,
                "apps.kubernetes.io/pod-index": str(i),
            }
            pods.append(pod(pod_name, extra, place(i)))
    elif kind == "DaemonSet":
        nodes = [t.node] if t.node else list(schedulable_nodes)
        for node in nodes:
            pods.append(pod(f"{name}-{suffix(owner, hash_index(node))}", {}, node))
    elif kind == "Job":
        extra = {"job-name": name, "batch.kubernetes.io/job-name": name}
        for i in range(workload.replicas):
            pods.append(pod(f"{name}-{suffix(owner, i)}", extra, place(i)))
    return pods


def hash_index(text: str) -> int:
    """A stable number from ``text``: a DaemonSet pod's suffix depends on its node, not on
    how many nodes sort before it; a workload's first node depends on the workload only."""
    import hashlib  # on use: loading OpenSSL is start-up time most commands never need

    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:4], "big")
