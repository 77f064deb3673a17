"""The manifests the lab's agents watch: the cluster written out, policies replaced in place.

``lab up`` writes the cluster it built (nodes, namespaces and pods with their
resolved IPs and nodes, so every agent sees exactly the lab's topology) to
``00-cluster.yaml`` and the policies, as the user wrote them, to
``10-policies.yaml``. ``lab apply`` replaces the policies and updates labels of
existing pods, namespaces and nodes, each file written atomically (temp file +
rename) so an agent never reads half a file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from sekisho.errors import LabError, ManifestError
from sekisho.model import npa
from sekisho.model.fields import CALICO_KINDS
from sekisho.model.types import Cluster, Pod

CLUSTER_FILE = "00-cluster.yaml"
POLICY_FILE = "10-policies.yaml"


def read_objects(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Every object of the files, read and checked by the model (as ``sekisho validate`` does).

    Directories are walked and ``List`` kinds flattened the model's way; a file
    that does not parse or an object that does not validate raises
    :class:`~sekisho.errors.ManifestError` with every problem located (file,
    line, field path), before the lab touches anything.
    """
    from sekisho.model import load_read, read_paths

    read = read_paths(paths)
    result = load_read(read)
    if result.cluster is None:
        raise ManifestError(result.problems)
    return [obj.data for obj in read.objects]


def is_policy(obj: dict[str, Any]) -> bool:
    """An object ``lab apply`` replaces as a whole: a policy of any kind sekisho reads
    (Kubernetes and Calico NetworkPolicy, the cluster-wide APIs, Calico's other kinds)."""
    kind = obj.get("kind")
    if kind == "NetworkPolicy" or kind in npa.KINDS:
        return True
    if kind not in CALICO_KINDS or kind == "ServiceAccount":
        return False
    api = obj.get("apiVersion")  # absent: a store identity (kind, namespace, name)
    return api is None or str(api).startswith("projectcalico.org/")


def cluster_objects(cluster: Cluster) -> list[dict[str, Any]]:
    """Nodes, namespaces and pods of ``cluster`` as Kubernetes manifests (no policies)."""
    out: list[dict[str, Any]] = []
    for n in cluster.nodes:
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": n.name, "labels": dict(n.labels)},
                "spec": {"podCIDR": str(n.pod_cidr), "unschedulable": not n.schedulable}
                | ({"podCIDRs": [str(c) for c in n.pod_cidrs]} if n.other_pod_cidrs else {}),
                "status": {
                    "addresses": [{"type": "InternalIP", "address": str(ip)} for ip in n.ips]
                },
            }
        )
    for ns in sorted(cluster.namespaces.values(), key=lambda x: x.name):
        labels = {k: v for k, v in ns.labels.items() if k != "kubernetes.io/metadata.name"}
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns.name, "labels": labels},
            }
        )
    for pod in cluster.pods:
        ports = [
            {"containerPort": p.port, "protocol": p.protocol} | ({"name": p.name} if p.name else {})
            for p in pod.ports
        ]
        spec: dict[str, Any] = {"containers": [{"name": "main", "image": "lab", "ports": ports}]}
        if pod.node:
            spec["nodeName"] = pod.node
        if pod.host_network:
            spec["hostNetwork"] = True
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod.name,
                    "namespace": pod.namespace,
                    "labels": dict(pod.labels),
                },
                "spec": spec,
                "status": _pod_status(pod),
            }
        )
    return out


def _pod_status(pod: Pod) -> dict[str, Any]:
    if pod.ip is None or pod.host_network:
        return {"podIP": str(pod.ip)} if pod.ip else {}
    out: dict[str, Any] = {"podIP": str(pod.ip)}
    if pod.other_ips:
        out["podIPs"] = [{"ip": str(ip)} for ip in pod.ips]
    return out


def write_atomic(path: Path, objects: Iterable[dict[str, Any]]) -> None:
    """Write ``objects`` as a YAML stream to ``path`` via a temp file and rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump_all(list(objects), sort_keys=False) or "")
    os.replace(tmp, path)


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    ns = str(meta.get("namespace") or "default") if obj.get("kind") == "Pod" else ""
    return (str(obj.get("kind")), ns, str(meta.get("name")))


def merge_labels(
    current: list[dict[str, Any]], updates: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``current`` with the labels of the Pods, Namespaces and Nodes in ``updates`` replaced.

    The lab's topology is fixed once it is up: an object that does not exist in
    it is an error, not an addition.
    """
    index = {_key(o): o for o in current}
    out = [dict(o) for o in current]
    by_key = {_key(o): i for i, o in enumerate(out)}
    for upd in updates:
        k = _key(upd)
        if k[0] not in ("Pod", "Namespace", "Node"):
            raise LabError(
                f"lab apply: {k[0]} {k[2]}: only policies (of any kind sekisho reads) and label changes of"
                " existing Pods, Namespaces and Nodes can be applied to a running lab"
            )
        if k not in index:
            where = f"{k[1]}/{k[2]}" if k[1] else k[2]
            raise LabError(
                f"lab apply: {k[0]} {where} is not part of the lab; bring the lab up with it"
            )
        i = by_key[k]
        obj = dict(out[i])
        meta = dict(obj.get("metadata") or {})
        meta["labels"] = dict((upd.get("metadata") or {}).get("labels") or {})
        obj["metadata"] = meta
        out[i] = obj
    return out
