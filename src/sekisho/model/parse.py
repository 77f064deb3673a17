"""Raw objects to typed drafts: the API server's validation and defaults, every problem at once.

A draft is what one object says; :mod:`sekisho.model.load` then joins the
drafts into a :class:`~sekisho.model.types.Cluster` (duplicates, workloads,
placement, IPAM). NetworkPolicy specs are read by :mod:`sekisho.model.policy`.
Nothing here fails open: a value that is wrong is reported
and the object is still walked to the end so that every problem shows up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sekisho.model import fields as F
from sekisho.model import kinds, names
from sekisho.model.checks import (
    IPAddress,
    IPNetwork,
    Report,
    boolean,
    cidr,
    integer,
    ip_address,
    labels,
    mapping,
    sequence,
    string,
    string_map,
)
from sekisho.model.policy import network_policy, parse_protocol, selector
from sekisho.model.reader import FieldPath, Issue, RawObject, describe, format_path
from sekisho.model.types import ContainerPort, Namespace, NetworkPolicy, Source
from sekisho.records import Record

if TYPE_CHECKING:
    from sekisho.model import npa
    from sekisho.model.calico import CalicoDrafts


class Meta(Record, frozen=False):
    """An object's metadata as checked: name, namespace (defaulted) and labels."""

    __slots__ = ("labels", "name", "namespace")

    name: str
    namespace: str
    labels: dict[str, str]

    def __init__(self, name: str, namespace: str, labels: dict[str, str]) -> None:
        self.name = name
        self.namespace = namespace
        self.labels = labels


class NodeDraft(Record, frozen=False):
    """A Node as read, before the cluster is put together."""

    __slots__ = (
        "internal_ip",
        "labels",
        "name",
        "other_ips",
        "other_pod_cidrs",
        "pod_cidr",
        "report",
        "schedulable",
        "source",
    )

    name: str
    internal_ip: IPAddress | None
    pod_cidr: IPNetwork | None
    schedulable: bool
    labels: dict[str, str]
    source: Source
    report: Report
    other_ips: tuple[IPAddress, ...]
    """InternalIPs of the other family (a dual-stack node)."""
    other_pod_cidrs: tuple[IPNetwork, ...]
    """``spec.podCIDRs`` of the other family (a dual-stack node)."""

    def __init__(
        self,
        name: str,
        internal_ip: IPAddress | None,
        pod_cidr: IPNetwork | None,
        schedulable: bool,
        labels: dict[str, str],
        source: Source,
        report: Report,
        other_ips: tuple[IPAddress, ...] = (),
        other_pod_cidrs: tuple[IPNetwork, ...] = (),
    ) -> None:
        self.name = name
        self.internal_ip = internal_ip
        self.pod_cidr = pod_cidr
        self.schedulable = schedulable
        self.labels = labels
        self.source = source
        self.report = report
        self.other_ips = other_ips
        self.other_pod_cidrs = other_pod_cidrs


class PodTemplate(Record, frozen=False):
    """What a pod (or a workload's template) says about networking."""

    __slots__ = ("host_network", "ip", "labels", "node", "other_ips", "ports", "service_account")

    labels: dict[str, str]
    node: str | None
    host_network: bool
    ports: tuple[ContainerPort, ...]
    ip: IPAddress | None
    service_account: str
    """``serviceAccountName`` (the ServiceAccount admission plugin sets "default")."""
    other_ips: tuple[IPAddress, ...]
    """``status.podIPs`` after ``ip`` (the other family's address of a dual-stack pod)."""

    def __init__(
        self,
        labels: dict[str, str],
        node: str | None,
        host_network: bool,
        ports: tuple[ContainerPort, ...],
        ip: IPAddress | None = None,
        service_account: str = "default",
        other_ips: tuple[IPAddress, ...] = (),
    ) -> None:
        self.labels = labels
        self.node = node
        self.host_network = host_network
        self.ports = ports
        self.ip = ip
        self.service_account = service_account
        self.other_ips = other_ips


class PodDraft(Record, frozen=False):
    """A Pod as read (or made from a workload's template), before the cluster is put together."""

    __slots__ = ("name", "namespace", "path_prefix", "report", "source", "template", "workload")

    namespace: str
    name: str
    template: PodTemplate
    source: Source
    report: Report
    workload: str | None
    path_prefix: FieldPath
    """Where the pod's fields sit in the object (``spec.template`` for a workload)."""

    def __init__(
        self,
        namespace: str,
        name: str,
        template: PodTemplate,
        source: Source,
        report: Report,
        workload: str | None = None,
        path_prefix: FieldPath = (),
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.template = template
        self.source = source
        self.report = report
        self.workload = workload
        self.path_prefix = path_prefix


class WorkloadDraft(Record, frozen=False):
    """A workload (Deployment, StatefulSet, ...) as read, before its pods are made."""

    __slots__ = (
        "kind",
        "name",
        "namespace",
        "replicas",
        "report",
        "source",
        "template",
        "template_raw",
    )

    kind: str
    namespace: str
    name: str
    replicas: int
    template: PodTemplate
    template_raw: Any
    source: Source
    report: Report

    def __init__(
        self,
        kind: str,
        namespace: str,
        name: str,
        replicas: int,
        template: PodTemplate,
        template_raw: Any,
        source: Source,
        report: Report,
    ) -> None:
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.replicas = replicas
        self.template = template
        self.template_raw = template_raw
        self.source = source
        self.report = report


class Drafts(Record, frozen=False):
    """Every object of a read, by kind, before the cluster is put together."""

    __slots__ = (
        "calico",
        "cluster_policies",
        "mentioned_namespaces",
        "namespaces",
        "nodes",
        "notes",
        "pods",
        "policies",
        "seen",
        "skipped",
        "unsupported",
        "workloads",
    )

    namespaces: list[Namespace]
    nodes: list[NodeDraft]
    pods: list[PodDraft]
    workloads: list[WorkloadDraft]
    policies: list[NetworkPolicy]
    cluster_policies: list[npa.ClusterPolicy]
    calico: CalicoDrafts | None
    """Calico's objects; None while there is none (the module is imported for the first)."""
    skipped: list[tuple[str, str]]
    """``(location, "Kind ns/name")`` of every object not read (unsupported ones too)."""
    notes: list[Issue]
    """Warnings found while parsing (an ipBlock with host bits set)."""
    unsupported: list[Issue]
    """Objects of kinds sekisho does not know (:mod:`sekisho.model.kinds`): warnings."""
    seen: dict[tuple[str, str, str], tuple[Source, Report]]
    mentioned_namespaces: set[str]

    def __init__(
        self,
        namespaces: list[Namespace] | None = None,
        nodes: list[NodeDraft] | None = None,
        pods: list[PodDraft] | None = None,
        workloads: list[WorkloadDraft] | None = None,
        policies: list[NetworkPolicy] | None = None,
        cluster_policies: list[npa.ClusterPolicy] | None = None,
        calico: CalicoDrafts | None = None,
        skipped: list[tuple[str, str]] | None = None,
        notes: list[Issue] | None = None,
        unsupported: list[Issue] | None = None,
        seen: dict[tuple[str, str, str], tuple[Source, Report]] | None = None,
        mentioned_namespaces: set[str] | None = None,
    ) -> None:
        self.namespaces = [] if namespaces is None else namespaces
        self.nodes = [] if nodes is None else nodes
        self.pods = [] if pods is None else pods
        self.workloads = [] if workloads is None else workloads
        self.policies = [] if policies is None else policies
        self.cluster_policies = [] if cluster_policies is None else cluster_policies
        self.calico = calico
        self.skipped = [] if skipped is None else skipped
        self.notes = [] if notes is None else notes
        self.unsupported = [] if unsupported is None else unsupported
        self.seen = {} if seen is None else seen
        self.mentioned_namespaces = set() if mentioned_namespaces is None else mentioned_namespaces

    def calico_drafts(self) -> CalicoDrafts:
        """Calico's drafts, made (and Calico's module imported) at the first use."""
        if self.calico is None:
            from sekisho.model import calico

            self.calico = calico.CalicoDrafts()
        return self.calico


def parse_objects(objects: list[RawObject], sink: list[Issue]) -> Drafts:
    drafts = Drafts()
    for obj in objects:
        parse_object(obj, drafts, sink)
    return drafts


def parse_object(obj: RawObject, drafts: Drafts, sink: list[Issue]) -> None:
    data: dict[str, Any] = obj.data
    source = Source(obj.loc.file, obj.loc.line)
    kind = data.get("kind")
    api_version = data.get("apiVersion")
    kind_text = kind if isinstance(kind, str) else ""
    r = Report(obj.loc, kind_text, _display_name(data, kind_text), sink, drafts.notes)
    if not isinstance(kind, str) or not kind:
        r.error(
            ("kind",),
            "missing kind" if kind is None else f"expected a string, got {describe(kind)}",
        )
        return
    found = kinds.classify(api_version, kind)
    if found.verdict == "skipped":
        drafts.skipped.append((str(source), f"{kind} {r.name}".rstrip()))
        return
    if found.verdict == "unsupported":
        drafts.unsupported.append(
            Issue(obj.loc, kind, r.name, (), kinds.unsupported_message(api_version, kind))
        )
        return
    assert found.info is not None
    expected = found.info.api_version
    is_calico = kinds.is_calico(kind, expected)
    meta = _metadata(r, data, kind)
    if found.verdict == "wrong-version":
        if api_version is None:
            r.error(("apiVersion",), f"missing apiVersion: expected {expected} for {kind}")
        elif not isinstance(api_version, str):
            r.error(("apiVersion",), f"expected a string, got {describe(api_version)}")
        else:
            r.error(
                ("apiVersion",),
                f'"{api_version}" is not supported for {kind}: expected {expected}',
            )
    if is_calico:
        # Calico's module (and cluster-wide policies' below) is imported for the first
        # object of its kinds: a Kubernetes-only cluster never loads it.
        from sekisho.model import calico
    mapping(r, data, (), calico.SERVICE_ACCOUNT_TOP if kind == "ServiceAccount" else F.TOP)
    if meta is None:
        return
    key = (("calico/" if is_calico else "") + kind, meta.namespace, meta.name)
    first = drafts.seen.get(key)
    if first is not None:
        r.error(("metadata", "name"), f"duplicate {kind} {r.name} (first defined at {first[0]})")
        return
    drafts.seen[key] = (source, r)
    if meta.namespace:
        drafts.mentioned_namespaces.add(meta.namespace)
    spec = data.get("spec")
    # One branch per kind of sekisho.model.kinds.READ.
    if is_calico:
        calico.parse_object(
            r, kind, data, meta.name, meta.namespace, meta.labels, source, drafts.calico_drafts()
        )
    elif kind == "NetworkPolicy":
        policy = network_policy(r, spec, meta.namespace, meta.name, source)
        if policy is not None:
            drafts.policies.append(policy)
    elif kind in kinds.CLUSTER_WIDE_POLICY_KINDS:
        from sekisho.model import npa

        cluster_policy = npa.cluster_policy(r, kind, data, meta.name, source)
        if cluster_policy is not None:
            drafts.cluster_policies.append(cluster_policy)
    elif kind == "Pod":
        template = _pod_spec(r, spec, ("spec",), meta.labels)
        ip, others = _pod_status(r, data.get("status"))
        template.ip = ip
        template.other_ips = others
        drafts.pods.append(PodDraft(meta.namespace, meta.name, template, source, r))
    elif kind == "Namespace":
        mapping(r, spec, ("spec",), F.NAMESPACE_SPEC)
        mapping(r, data.get("status"), ("status",))
        ns_labels = dict(meta.labels)
        ns_labels["kubernetes.io/metadata.name"] = meta.name
        drafts.namespaces.append(Namespace(meta.name, ns_labels, False, source))
    elif kind == "Node":
        drafts.nodes.append(_node(r, data, meta, source))
    else:
        workload = _workload(r, kind, spec, meta, source)
        if workload is not None:
            drafts.workloads.append(workload)


def _display_name(data: dict[str, Any], kind: str = "") -> str:
    """``namespace/name`` (``name`` for cluster-scoped kinds) as far as the raw object says."""
    meta = data.get("metadata")
    if not isinstance(meta, dict):
        return ""
    name, ns = meta.get("name"), meta.get("namespace")
    if not isinstance(name, str):
        return ""
    if kind in F.CLUSTER_SCOPED:
        return name
    if kind in F.API_VERSIONS and not ns:
        ns = "default"
    return f"{ns}/{name}" if isinstance(ns, str) and ns else name


def _metadata(r: Report, data: dict[str, Any], kind: str) -> Meta | None:
    """``metadata``: the name rules of each kind, namespace defaulting, labels."""
    path: FieldPath = ("metadata",)
    meta = mapping(r, data.get("metadata"), path, F.METADATA)
    if meta is None:
        if data.get("metadata") is None:
            r.error(path, "missing metadata (metadata.name is required)")
        return None
    cluster_scoped = kind in F.CLUSTER_SCOPED
    namespace = ""
    if not cluster_scoped:
        raw_ns = meta.get("namespace")
        ns = string(r, raw_ns, (*path, "namespace"))
        if raw_ns is None or ns == "":
            ns = "default"
        if ns is not None:
            err = names.dns1123_label_error(ns)
            if err is not None:
                r.error((*path, "namespace"), err)
            namespace = ns
    name = string(r, meta.get("name"), (*path, "name"))
    r.name = f"{namespace}/{name}" if namespace and name else (name or "")
    ok = True
    if not name:
        msg = "metadata.name is required"
        if meta.get("generateName"):
            msg += " (generateName cannot be used: sekisho needs a stable name)"
        r.error((*path, "name"), msg)
        ok = False
    else:
        checker = (
            names.dns1123_label_error if kind == "Namespace" else names.dns1123_subdomain_error
        )
        err = checker(name)
        if err is not None:
            r.error((*path, "name"), err)
            ok = False
    obj_labels = labels(r, meta.get("labels"), (*path, "labels"))
    string_map(r, meta.get("annotations"), (*path, "annotations"))
    if not ok or name is None:
        return None
    return Meta(name, namespace, obj_labels)


# --- Pods, nodes, workloads ----------------------------------------------------------------


def _pod_spec(r: Report, value: Any, path: FieldPath, pod_labels: dict[str, str]) -> PodTemplate:
    spec = mapping(r, value, path, F.POD_SPEC) or {}
    host_network = boolean(r, spec.get("hostNetwork"), (*path, "hostNetwork")) or False
    node = string(r, spec.get("nodeName"), (*path, "nodeName"))
    if node:
        err = names.dns1123_subdomain_error(node)
        if err:
            r.error((*path, "nodeName"), err)
            node = None
    labels(r, spec.get("nodeSelector"), (*path, "nodeSelector"))
    account = string(r, spec.get("serviceAccountName"), (*path, "serviceAccountName"))
    # serviceAccount: "DeprecatedServiceAccount is a deprecated alias for ServiceAccountName."
    account = account or string(r, spec.get("serviceAccount"), (*path, "serviceAccount"))
    ports: list[ContainerPort] = []
    port_names: dict[str, FieldPath] = {}
    for group in ("initContainers", "containers", "ephemeralContainers"):
        if spec.get(group) is None:
            continue
        containers = sequence(r, spec.get(group), (*path, group))
        for i, item in enumerate(containers or ()):
            c_path = (*path, group, i)
            container = mapping(r, item, c_path, F.CONTAINER)
            if container is None:
                continue
            c_name = string(r, container.get("name"), (*c_path, "name"))
            if c_name:
                err = names.dns1123_label_error(c_name)
                if err:
                    r.error((*c_path, "name"), f"container name {err}")
            c_ports = sequence(r, container.get("ports"), (*c_path, "ports"))
            for j, p in enumerate(c_ports or ()):
                port = _container_port(r, p, (*c_path, "ports", j), port_names)
                # Ports of running containers: regular ones and native sidecars (init
                # containers with restartPolicy Always); other init containers have exited.
                serving = group == "containers" or (
                    group == "initContainers" and container.get("restartPolicy") == "Always"
                )
                if port is not None and serving:
                    ports.append(port)
    return PodTemplate(
        dict(pod_labels), node or None, host_network, tuple(ports), None, account or "default"
    )


_PORT_CACHE: dict[tuple[tuple[str, Any], ...], ContainerPort] = {}
"""Container ports that validated without a problem, by their fields: replicas repeat them."""


def _container_port(
    r: Report, value: Any, path: FieldPath, seen_names: dict[str, FieldPath]
) -> ContainerPort | None:
    if type(value) is dict:
        try:
            key = tuple(value.items())
            cached = _PORT_CACHE.get(key)
        except TypeError:  # an unhashable value: validate it the long way
            key, cached = (), None
        if cached is not None:
            name = cached.name
            if name is None or name not in seen_names:
                if name is not None:
                    seen_names[name] = path
                return cached
    else:
        key = ()
    before = len(r.sink)
    port = _check_container_port(r, value, path, seen_names)
    if port is not None and key and len(r.sink) == before:
        if len(_PORT_CACHE) > 10_000:
            _PORT_CACHE.clear()
        _PORT_CACHE[key] = port
    return port


def _check_container_port(
    r: Report, value: Any, path: FieldPath, seen_names: dict[str, FieldPath]
) -> ContainerPort | None:
    raw = mapping(r, value, path, F.CONTAINER_PORT)
    if raw is None:
        return None
    ok = True
    number = integer(r, raw.get("containerPort"), (*path, "containerPort"))
    if number is None:
        if raw.get("containerPort") is None:
            r.error((*path, "containerPort"), "containerPort is required")
        ok = False
    else:
        err = names.port_number_error(number)
        if err:
            r.error((*path, "containerPort"), err)
            ok = False
    host_port = integer(r, raw.get("hostPort"), (*path, "hostPort"))
    if host_port is not None and host_port != 0:
        err = names.port_number_error(host_port)
        if err:
            r.error((*path, "hostPort"), f"hostPort: {err}")
    if raw.get("hostIP") is not None:
        ip_address(r, raw.get("hostIP"), (*path, "hostIP"))
    protocol = parse_protocol(r, raw.get("protocol"), (*path, "protocol"))
    name = string(r, raw.get("name"), (*path, "name"))
    if name is not None:
        err = names.port_name_error(name)
        if err:
            r.error((*path, "name"), err)
            ok = False
        elif name in seen_names:
            r.error(
                (*path, "name"),
                f'port name "{name}" is already used in this pod (at {format_path(seen_names[name])})',
            )
            ok = False
        else:
            seen_names[name] = path
    if not ok or number is None or protocol is None:
        return None
    return ContainerPort(number, protocol, name or None)


def _pod_status(r: Report, value: Any) -> tuple[IPAddress | None, tuple[IPAddress, ...]]:
    """``status.podIP`` (else the first of ``podIPs``) and the other addresses of
    ``podIPs`` ("podIPs holds the IP addresses allocated to the pod. If this field is
    specified, the 0th entry must match the podIP field. Pods may be allocated at most 1
    value for each of IPv4 and IPv6.")."""
    path: FieldPath = ("status",)
    status = mapping(r, value, path, F.POD_STATUS)
    if status is None:
        return None, ()
    if status.get("hostIP") is not None:
        ip_address(r, status.get("hostIP"), (*path, "hostIP"))
    ip = ip_address(r, status.get("podIP"), (*path, "podIP")) if status.get("podIP") else None
    pod_ips = sequence(r, status.get("podIPs"), (*path, "podIPs"))
    others: list[IPAddress] = []
    for i, item in enumerate(pod_ips or ()):
        entry = mapping(r, item, (*path, "podIPs", i), F.POD_IP)
        if entry is None:
            continue
        addr = ip_address(r, entry.get("ip"), (*path, "podIPs", i, "ip"))
        if ip is None and addr is not None and status.get("podIP") is None:
            ip = addr
        elif addr is not None and addr != ip:
            if any(o.version == addr.version for o in (*others, *([ip] if ip else []))):
                r.error(
                    (*path, "podIPs", i, "ip"),
                    f"{addr}: a pod has at most one address of each family (IPv{addr.version})",
                )
            else:
                others.append(addr)
    return ip, tuple(others)


def _node(r: Report, data: dict[str, Any], meta: Meta, source: Source) -> NodeDraft:
    spec = mapping(r, data.get("spec"), ("spec",), F.NODE_SPEC) or {}
    # "podCIDRs represents the IP ranges assigned to the node for usage by Pods on that
    # node. If this field is specified, the 0th entry must match the podCIDR field. It
    # may contain at most 1 value for each of IPv4 and IPv6."
    pod_cidr = cidr(r, spec.get("podCIDR"), ("spec", "podCIDR"))
    other_cidrs: list[IPNetwork] = []
    for i, item in enumerate(sequence(r, spec.get("podCIDRs"), ("spec", "podCIDRs")) or ()):
        net = cidr(r, item, ("spec", "podCIDRs", i))
        if net is None:
            continue
        if pod_cidr is None and spec.get("podCIDR") is None:
            pod_cidr = net
        elif net != pod_cidr:
            if any(
                o.version == net.version for o in (*other_cidrs, *([pod_cidr] if pod_cidr else []))
            ):
                r.error(
                    ("spec", "podCIDRs", i),
                    f"{net}: a node has at most one pod CIDR of each family (IPv{net.version})",
                )
            else:
                other_cidrs.append(net)
    unschedulable = boolean(r, spec.get("unschedulable"), ("spec", "unschedulable")) or False
    tainted = False
    for i, item in enumerate(sequence(r, spec.get("taints"), ("spec", "taints")) or ()):
        t_path: FieldPath = ("spec", "taints", i)
        taint = mapping(r, item, t_path, F.TAINT)
        if taint is None:
            continue
        key = string(r, taint.get("key"), (*t_path, "key"))
        if key is None:
            r.error((*t_path, "key"), "key is required")
        elif names.label_key_error(key):
            r.error((*t_path, "key"), f"taint {names.label_key_error(key)}")
        string(r, taint.get("value"), (*t_path, "value"))
        effect = string(r, taint.get("effect"), (*t_path, "effect"))
        if effect not in F.TAINT_EFFECTS:
            r.error(
                (*t_path, "effect"),
                f'unsupported taint effect "{effect}": expected {", ".join(F.TAINT_EFFECTS)}',
            )
        elif effect in ("NoSchedule", "NoExecute"):
            tainted = True
    internal_ip: IPAddress | None = None
    other_ips: list[IPAddress] = []
    status = mapping(r, data.get("status"), ("status",), F.NODE_STATUS) or {}
    for i, item in enumerate(sequence(r, status.get("addresses"), ("status", "addresses")) or ()):
        a_path: FieldPath = ("status", "addresses", i)
        addr = mapping(r, item, a_path, F.NODE_ADDRESS)
        if addr is None:
            continue
        kind = string(r, addr.get("type"), (*a_path, "type"))
        if kind in ("InternalIP", "ExternalIP"):
            ip = ip_address(r, addr.get("address"), (*a_path, "address"))
            if kind == "InternalIP" and ip is not None:
                if internal_ip is None:
                    internal_ip = ip
                elif ip.version != internal_ip.version and not any(
                    o.version == ip.version for o in other_ips
                ):
                    other_ips.append(ip)  # a dual-stack node's InternalIP of the other family
        else:
            string(r, addr.get("address"), (*a_path, "address"))
    return NodeDraft(
        name=meta.name,
        internal_ip=internal_ip,
        pod_cidr=pod_cidr,
        schedulable=not unschedulable and not tainted,
        labels=meta.labels,
        source=source,
        report=r,
        other_ips=tuple(other_ips),
        other_pod_cidrs=tuple(other_cidrs),
    )


def _workload(
    r: Report, kind: str, spec_value: Any, meta: Meta, source: Source
) -> WorkloadDraft | None:
    path: FieldPath = ("spec",)
    spec = mapping(r, spec_value, path, F.WORKLOAD_SPEC[kind])
    if spec is None:
        if spec_value is None:
            r.error(path, "missing spec")
        return None
    replicas = 1
    if kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        value = integer(r, spec.get("replicas"), (*path, "replicas"))
        replicas = 1 if value is None else value
    elif kind == "Job":
        value = integer(r, spec.get("parallelism"), (*path, "parallelism"))
        replicas = 1 if value is None else value
        completions = integer(r, spec.get("completions"), (*path, "completions"))
        if completions is not None and completions >= 0:
            replicas = min(replicas, completions)
    if replicas < 0:
        field_name = "parallelism" if kind == "Job" else "replicas"
        r.error((*path, field_name), f"{field_name} must be 0 or more, got {replicas}")
        replicas = 0
    t_path = (*path, "template")
    template_raw = mapping(r, spec.get("template"), t_path, F.POD_TEMPLATE)
    if template_raw is None:
        if spec.get("template") is None:
            r.error(t_path, "template is required")
        return None
    t_meta = mapping(r, template_raw.get("metadata"), (*t_path, "metadata"), F.METADATA) or {}
    t_labels = labels(r, t_meta.get("labels"), (*t_path, "metadata", "labels"))
    string_map(r, t_meta.get("annotations"), (*t_path, "metadata", "annotations"))
    template = _pod_spec(r, template_raw.get("spec"), (*t_path, "spec"), t_labels)
    sel = selector(r, spec.get("selector"), (*path, "selector"))
    if spec.get("selector") is None:
        if kind != "Job":
            r.error((*path, "selector"), f"selector is required for a {kind} in apps/v1")
    elif sel is not None and (sel.is_empty or not sel.matches(t_labels)):
        r.error(
            (*path, "selector"),
            f"selector ({sel}) does not match template labels "
            f"({', '.join(f'{k}={v}' for k, v in sorted(t_labels.items())) or 'none'})",
        )
    return WorkloadDraft(
        kind, meta.namespace, meta.name, replicas, template, template_raw, source, r
    )
