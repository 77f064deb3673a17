"""Raw objects to typed drafts: the API server's validation and defaults, every problem at once.

A draft is what one object says; :mod:`sekisho.model.build` then joins the
drafts into a :class:`~sekisho.model.types.Cluster` (duplicates, workloads,
placement, IPAM). Nothing here fails open: a value that is wrong is reported
and the object is still walked to the end so that every problem shows up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from sekisho.model import fields as F
from sekisho.model import names
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
from sekisho.model.reader import FieldPath, Issue, RawObject, describe
from sekisho.model.types import (
    PROTOCOLS,
    ContainerPort,
    IPBlock,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Operator,
    Peer,
    PolicyPort,
    Protocol,
    Requirement,
    Rule,
    Source,
)

OPERATORS: tuple[Operator, ...] = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(slots=True)
class Meta:
    name: str
    namespace: str
    labels: dict[str, str]


@dataclass(slots=True)
class NodeDraft:
    name: str
    internal_ip: IPAddress | None
    pod_cidr: IPNetwork | None
    schedulable: bool
    labels: dict[str, str]
    source: Source
    report: Report


@dataclass(slots=True)
class PodTemplate:
    """What a pod (or a workload's template) says about networking."""

    labels: dict[str, str]
    node: str | None
    host_network: bool
    ports: tuple[ContainerPort, ...]
    ip: IPAddress | None = None


@dataclass(slots=True)
class PodDraft:
    namespace: str
    name: str
    template: PodTemplate
    source: Source
    report: Report
    workload: str | None = None
    path_prefix: FieldPath = ()
    """Where the pod's fields sit in the object (``spec.template`` for a workload)."""


@dataclass(slots=True)
class WorkloadDraft:
    kind: str
    namespace: str
    name: str
    replicas: int
    template: PodTemplate
    template_raw: Any
    source: Source
    report: Report


@dataclass(slots=True)
class Drafts:
    namespaces: list[Namespace] = field(default_factory=list)
    nodes: list[NodeDraft] = field(default_factory=list)
    pods: list[PodDraft] = field(default_factory=list)
    workloads: list[WorkloadDraft] = field(default_factory=list)
    policies: list[NetworkPolicy] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seen: dict[tuple[str, str, str], tuple[Source, Report]] = field(default_factory=dict)
    mentioned_namespaces: set[str] = field(default_factory=set)


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
    r = Report(obj.loc, kind_text, _display_name(data, kind_text), sink)
    if not isinstance(kind, str) or not kind:
        r.error(
            ("kind",),
            "missing kind" if kind is None else f"expected a string, got {describe(kind)}",
        )
        return
    expected = F.API_VERSIONS.get(kind)
    if expected is None:
        drafts.skipped.append((str(source), f"{kind} {r.name}".rstrip()))
        return
    meta = _metadata(r, data, kind)
    if api_version != expected:
        if api_version is None:
            r.error(("apiVersion",), f"missing apiVersion: expected {expected} for {kind}")
        else:
            r.error(
                ("apiVersion",),
                f'"{api_version}" is not supported for {kind}: expected {expected}',
            )
    mapping(r, data, (), F.TOP)
    if meta is None:
        return
    key = (kind, meta.namespace, meta.name)
    first = drafts.seen.get(key)
    if first is not None:
        r.error(("metadata", "name"), f"duplicate {kind} {r.name} (first defined at {first[0]})")
        return
    drafts.seen[key] = (source, r)
    if meta.namespace:
        drafts.mentioned_namespaces.add(meta.namespace)
    spec = data.get("spec")
    if kind == "NetworkPolicy":
        policy = _network_policy(r, spec, meta, source)
        if policy is not None:
            drafts.policies.append(policy)
    elif kind == "Pod":
        template = _pod_spec(r, spec, ("spec",), meta.labels)
        ip = _pod_status(r, data.get("status"))
        template.ip = ip
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


# --- NetworkPolicy -------------------------------------------------------------------------


def _network_policy(r: Report, spec: Any, meta: Meta, source: Source) -> NetworkPolicy | None:
    path: FieldPath = ("spec",)
    # A missing spec is an empty one, as the API server reads it: {} selects every pod of
    # the namespace for ingress, with no rule (deny all ingress). That fails closed.
    raw = mapping(r, spec, path, F.NETWORK_POLICY_SPEC)
    if raw is None:
        if spec is not None:
            return None
        raw = {}
    # podSelector is a value (not a pointer) in the Go type: missing means {} (every pod).
    pod_selector = selector(r, raw.get("podSelector"), (*path, "podSelector")) or LabelSelector()
    ingress = _rules(r, raw.get("ingress"), (*path, "ingress"), "from", F.INGRESS_RULE)
    egress = _rules(r, raw.get("egress"), (*path, "egress"), "to", F.EGRESS_RULE)
    # "If this field is not specified, it will default based on the existence of ingress or
    # egress rules; policies that contain an egress section are assumed to affect egress,
    # and all policies (whether or not they contain an ingress section) are assumed to
    # affect ingress."
    types = sequence(r, raw.get("policyTypes"), (*path, "policyTypes"))
    if types:
        affects_ingress = affects_egress = False
        for i, value in enumerate(types):
            if value == "Ingress":
                affects_ingress = True
            elif value == "Egress":
                affects_egress = True
            else:
                r.error(
                    (*path, "policyTypes", i),
                    f'unsupported value "{value}": expected "Ingress" or "Egress"',
                )
    else:
        affects_ingress, affects_egress = True, bool(egress)
    return NetworkPolicy(
        namespace=meta.namespace,
        name=meta.name,
        pod_selector=pod_selector,
        ingress=tuple(ingress),
        egress=tuple(egress),
        affects_ingress=affects_ingress,
        affects_egress=affects_egress,
        source=source,
    )


def _rules(
    r: Report, value: Any, path: FieldPath, peers_field: str, known: frozenset[str]
) -> list[Rule]:
    items = sequence(r, value, path)
    out: list[Rule] = []
    for i, item in enumerate(items or ()):
        rule_path = (*path, i)
        raw = mapping(r, item, rule_path, known)
        if raw is None:
            if item is None:
                out.append(Rule())  # "- {}" written as a bare "-": every peer, every port
            continue
        peers_raw = sequence(r, raw.get(peers_field), (*rule_path, peers_field))
        peers: list[Peer] = []
        for j, peer in enumerate(peers_raw or ()):
            parsed = _peer(r, peer, (*rule_path, peers_field, j))
            if parsed is not None:
                peers.append(parsed)
        ports_raw = sequence(r, raw.get("ports"), (*rule_path, "ports"))
        ports: list[PolicyPort] = []
        for j, port in enumerate(ports_raw or ()):
            parsed_port = _policy_port(r, port, (*rule_path, "ports", j))
            if parsed_port is not None:
                ports.append(parsed_port)
        # "If this field is empty or missing, this rule matches all sources/destinations
        # (traffic not restricted by source/destination)" and likewise for ports.
        out.append(
            Rule(
                peers=tuple(peers) if peers_raw else None,
                ports=tuple(ports) if ports_raw else None,
            )
        )
    return out


def _peer(r: Report, value: Any, path: FieldPath) -> Peer | None:
    raw = mapping(r, value, path, F.PEER)
    if raw is None:
        if value is None:
            r.error(path, "a peer must set podSelector, namespaceSelector or ipBlock")
        return None
    pod_sel = selector(r, raw.get("podSelector"), (*path, "podSelector"))
    ns_sel = selector(r, raw.get("namespaceSelector"), (*path, "namespaceSelector"))
    block = _ip_block(r, raw.get("ipBlock"), (*path, "ipBlock"))
    # A field given as null ("podSelector:" with nothing after it) is a nil pointer to the
    # API server: absent, not {}. Reading it as {} would widen the peer (fail open).
    has_selector = raw.get("podSelector") is not None or raw.get("namespaceSelector") is not None
    has_block = raw.get("ipBlock") is not None
    if has_block and has_selector:
        r.error(
            path,
            "a peer sets either ipBlock or selectors (podSelector, namespaceSelector), not both",
        )
        return None
    if not has_selector and not has_block:
        given = [k for k in ("podSelector", "namespaceSelector", "ipBlock") if k in raw]
        hint = (
            f" ({', '.join(given)} given as null: write {{}} to select everything)" if given else ""
        )
        r.error(path, f"a peer must set podSelector, namespaceSelector or ipBlock{hint}")
        return None
    if has_block:
        return Peer(ip_block=block) if block is not None else None
    if pod_sel is None and ns_sel is None:
        return None
    return Peer(pod_selector=pod_sel, namespace_selector=ns_sel)


def _ip_block(r: Report, value: Any, path: FieldPath) -> IPBlock | None:
    raw = mapping(r, value, path, F.IP_BLOCK)
    if raw is None:
        return None
    if raw.get("cidr") is None:
        r.error((*path, "cidr"), "cidr is required")
        return None
    net = cidr(r, raw.get("cidr"), (*path, "cidr"))
    excepts: list[IPNetwork] = []
    ok = net is not None
    for i, item in enumerate(sequence(r, raw.get("except"), (*path, "except")) or ()):
        ex_path = (*path, "except", i)
        ex = cidr(r, item, ex_path)
        if ex is None:
            ok = False
            continue
        if net is None:
            continue
        if ex.version != net.version:
            r.error(ex_path, f"{ex} is IPv{ex.version} but cidr {net} is IPv{net.version}")
            ok = False
        elif not ex.subnet_of(net):  # type: ignore[arg-type]  # same family checked above
            r.error(ex_path, f"{ex} is not inside {net}")
            ok = False
        elif ex == net:
            r.error(ex_path, f"{ex} must be strictly inside {net}, not equal to it")
            ok = False
        else:
            excepts.append(ex)
    if not ok or net is None:
        return None
    return IPBlock(net, tuple(excepts))


def _protocol(r: Report, value: Any, path: FieldPath) -> Protocol | None:
    if value is None:
        return "TCP"  # "If not specified, this field defaults to TCP."
    text = string(r, value, path)
    if text is None:
        return None
    if text not in PROTOCOLS:
        hint = f' (protocols are upper case: "{text.upper()}")' if text.upper() in PROTOCOLS else ""
        r.error(path, f'unsupported protocol "{text}": expected TCP, UDP or SCTP{hint}')
        return None
    return text


def _policy_port(r: Report, value: Any, path: FieldPath) -> PolicyPort | None:
    raw = mapping(r, value, path, F.POLICY_PORT)
    if raw is None:
        if value is None:
            return PolicyPort()
        return None
    protocol = _protocol(r, raw.get("protocol"), (*path, "protocol"))
    port_value = raw.get("port")
    port: int | str | None = None
    ok = protocol is not None
    if isinstance(port_value, bool) or not isinstance(port_value, int | str | None):
        r.error(
            (*path, "port"), f"expected a port number or name, got a {type(port_value).__name__}"
        )
        ok = False
    elif isinstance(port_value, int):
        err = names.port_number_error(port_value)
        if err:
            r.error((*path, "port"), err)
            ok = False
        port = port_value
    elif isinstance(port_value, str):
        err = names.port_name_error(port_value)
        if err:
            r.error((*path, "port"), err)
            ok = False
        port = port_value
    end_port = integer(r, raw.get("endPort"), (*path, "endPort"))
    if raw.get("endPort") is not None and end_port is None:
        ok = False
    if end_port is not None:
        if not isinstance(port_value, int) or isinstance(port_value, bool):
            r.error((*path, "endPort"), "endPort may only be set with a numeric port")
            ok = False
        elif end_port < port_value:
            r.error((*path, "endPort"), f"endPort {end_port} is less than port {port_value}")
            ok = False
        elif not 1 <= end_port <= 65535:
            r.error((*path, "endPort"), f"endPort {end_port} is not between 1 and 65535")
            ok = False
    if not ok or protocol is None:
        return None
    return PolicyPort(protocol, port, end_port)


def selector(r: Report, value: Any, path: FieldPath) -> LabelSelector | None:
    """A ``LabelSelector``: ``matchLabels`` AND ``matchExpressions``; None when missing or wrong."""
    raw = mapping(r, value, path, F.LABEL_SELECTOR)
    if raw is None:
        return None
    match_labels = labels(r, raw.get("matchLabels"), (*path, "matchLabels"))
    reqs: list[Requirement] = []
    ok = True
    exprs = sequence(r, raw.get("matchExpressions"), (*path, "matchExpressions"))
    for i, item in enumerate(exprs or ()):
        req = _requirement(r, item, (*path, "matchExpressions", i))
        if req is None:
            ok = False
        else:
            reqs.append(req)
    if not ok:
        return None
    return LabelSelector(tuple(sorted(match_labels.items())), tuple(reqs))


def _requirement(r: Report, value: Any, path: FieldPath) -> Requirement | None:
    raw = mapping(r, value, path, F.SELECTOR_REQUIREMENT)
    if raw is None:
        if value is None:
            r.error(path, "expected a requirement {key, operator, values}")
        return None
    ok = True
    key = string(r, raw.get("key"), (*path, "key"))
    if key is None:
        if raw.get("key") is None:
            r.error((*path, "key"), "key is required")
        ok = False
    else:
        err = names.label_key_error(key)
        if err:
            r.error((*path, "key"), err)
            ok = False
    op = string(r, raw.get("operator"), (*path, "operator"))
    if op is None:
        if raw.get("operator") is None:
            r.error((*path, "operator"), "operator is required: In, NotIn, Exists or DoesNotExist")
        return None
    values_raw = sequence(r, raw.get("values"), (*path, "values"))
    values: list[str] = []
    for i, v in enumerate(values_raw or ()):
        if not isinstance(v, str):
            r.error(
                (*path, "values", i), f"label values must be strings, got {describe(v)} (quote it)"
            )
            ok = False
            continue
        err = names.label_value_error(v)
        if err:
            r.error((*path, "values", i), err)
            ok = False
        values.append(v)
    if op in ("In", "NotIn"):
        if not values_raw:
            r.error((*path, "values"), f"values must be non-empty when operator is {op}")
            ok = False
    elif op in ("Exists", "DoesNotExist"):
        if values_raw:
            r.error((*path, "values"), f"values must be empty when operator is {op}")
            ok = False
    else:
        r.error(
            (*path, "operator"),
            f'unknown operator "{op}": expected one of {", ".join(OPERATORS)}',
        )
        return None
    if not ok or key is None:
        return None
    return Requirement(key, cast(Operator, op), tuple(sorted(set(values))))


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
    ports: list[ContainerPort] = []
    port_names: dict[str, FieldPath] = {}
    for group in ("initContainers", "containers", "ephemeralContainers"):
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
    return PodTemplate(dict(pod_labels), node or None, host_network, tuple(ports))


def _container_port(
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
    protocol = _protocol(r, raw.get("protocol"), (*path, "protocol"))
    name = string(r, raw.get("name"), (*path, "name"))
    if name is not None:
        err = names.port_name_error(name)
        if err:
            r.error((*path, "name"), err)
            ok = False
        elif name in seen_names:
            r.error(
                (*path, "name"),
                f'port name "{name}" is already used in this pod (at {_fmt(seen_names[name])})',
            )
            ok = False
        else:
            seen_names[name] = path
    if not ok or number is None or protocol is None:
        return None
    return ContainerPort(number, protocol, name or None)


def _fmt(path: FieldPath) -> str:
    from sekisho.model.reader import format_path

    return format_path(path)


def _pod_status(r: Report, value: Any) -> IPAddress | None:
    path: FieldPath = ("status",)
    status = mapping(r, value, path, F.POD_STATUS)
    if status is None:
        return None
    if status.get("hostIP") is not None:
        ip_address(r, status.get("hostIP"), (*path, "hostIP"))
    ip = ip_address(r, status.get("podIP"), (*path, "podIP")) if status.get("podIP") else None
    pod_ips = sequence(r, status.get("podIPs"), (*path, "podIPs"))
    for i, item in enumerate(pod_ips or ()):
        entry = mapping(r, item, (*path, "podIPs", i), F.POD_IP)
        if entry is None:
            continue
        addr = ip_address(r, entry.get("ip"), (*path, "podIPs", i, "ip"))
        if ip is None and addr is not None and status.get("podIP") is None:
            ip = addr
    return ip


def _node(r: Report, data: dict[str, Any], meta: Meta, source: Source) -> NodeDraft:
    spec = mapping(r, data.get("spec"), ("spec",), F.NODE_SPEC) or {}
    pod_cidr = cidr(r, spec.get("podCIDR"), ("spec", "podCIDR"))
    for i, item in enumerate(sequence(r, spec.get("podCIDRs"), ("spec", "podCIDRs")) or ()):
        net = cidr(r, item, ("spec", "podCIDRs", i))
        if pod_cidr is None and net is not None and spec.get("podCIDR") is None:
            pod_cidr = net
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
    status = mapping(r, data.get("status"), ("status",), F.NODE_STATUS) or {}
    for i, item in enumerate(sequence(r, status.get("addresses"), ("status", "addresses")) or ()):
        a_path: FieldPath = ("status", "addresses", i)
        addr = mapping(r, item, a_path, F.NODE_ADDRESS)
        if addr is None:
            continue
        kind = string(r, addr.get("type"), (*a_path, "type"))
        if kind in ("InternalIP", "ExternalIP"):
            ip = ip_address(r, addr.get("address"), (*a_path, "address"))
            if kind == "InternalIP" and internal_ip is None:
                internal_ip = ip
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
