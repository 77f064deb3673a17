"""The network-policy-api's cluster-wide policies: ClusterNetworkPolicy (``v1alpha2``) and
AdminNetworkPolicy / BaselineAdminNetworkPolicy (``v1alpha1``), read and validated.

Each kind is checked exactly as its CRD schema and CEL rules in
kubernetes-sigs/network-policy-api define it (the experimental channel, a
superset of the standard one: ``nodes`` and ``domainNames`` peers, named ports),
with every problem reported at its field path: types, enums, required fields,
"exactly one field" objects (``minProperties``/``maxProperties`` 1), list
lengths, ``x-kubernetes-list-type: set`` (no duplicates), ``isCIDR``, the
domain-name pattern, and the CEL rules quoted where they are checked. Versions:

* ``policy.networking.k8s.io/v1alpha2`` ClusterNetworkPolicy as of the
  repository's HEAD (the conformance suite's commit ``0eec1b0``; CRD bundle v0.2.0);
* ``policy.networking.k8s.io/v1alpha1`` AdminNetworkPolicy and
  BaselineAdminNetworkPolicy as of tag ``v0.1.7``.

Where the CRD leaves a value unchecked but the API text says what it must be,
sekisho is stricter rather than guessing (nothing fails open): label selectors
are checked like every Kubernetes label selector, a v1alpha1 ``protocol`` must
be TCP, UDP or SCTP, a v1alpha1 ``portRange`` must not run backwards, and
``domainNames`` (which no offline tool can resolve) are accepted only in the
Accept/Allow rules the API allows them in. Meaning lives in
:mod:`sekisho.semantics.npa`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from sekisho.model import fields as F
from sekisho.model.checks import IPNetwork, Report, integer, mapping, sequence, string
from sekisho.model.policy import parse_protocol, selector
from sekisho.model.reader import FieldPath
from sekisho.model.types import UNKNOWN_SOURCE, LabelSelector, Protocol, Source

ClusterKind = Literal["ClusterNetworkPolicy", "AdminNetworkPolicy", "BaselineAdminNetworkPolicy"]
KINDS: tuple[ClusterKind, ...] = (
    "ClusterNetworkPolicy",
    "AdminNetworkPolicy",
    "BaselineAdminNetworkPolicy",
)
API_VERSIONS: dict[str, str] = {k: F.API_VERSIONS[k] for k in KINDS}
"""The kinds this module reads and their one apiVersion (all cluster-scoped)."""

TierName = Literal["Admin", "Baseline"]
ClusterAction = Literal["Accept", "Allow", "Deny", "Pass"]
"""As written: ``Accept`` (v1alpha2) and ``Allow`` (v1alpha1) mean the same."""


# ------------------------------------------------------------------------------- the types


@dataclass(frozen=True, slots=True)
class NamespacedPods:
    """``pods``: the pods matching ``pod_selector`` in the namespaces matching
    ``namespace_selector`` (an empty selector selects every namespace / pod)."""

    namespace_selector: LabelSelector
    pod_selector: LabelSelector


@dataclass(frozen=True, slots=True)
class ClusterPeer:
    """One ``from``/``to`` entry; exactly one field is set."""

    namespaces: LabelSelector | None = None
    """Every pod (hostNetwork pods excepted) of the selected namespaces."""
    pods: NamespacedPods | None = None
    nodes: LabelSelector | None = None
    """The addresses of the selected nodes (egress only)."""
    networks: tuple[IPNetwork, ...] = ()
    """CIDRs, host bits cleared (egress only)."""
    domain_names: tuple[str, ...] = ()
    """Domain names (egress Accept/Allow rules only); never resolved offline."""

    def __str__(self) -> str:
        if self.namespaces is not None:
            return f"namespaces {self.namespaces}"
        if self.pods is not None:
            return f"pods {self.pods.pod_selector} in namespaces {self.pods.namespace_selector}"
        if self.nodes is not None:
            return f"nodes {self.nodes}"
        if self.networks:
            return "networks " + ", ".join(str(n) for n in self.networks)
        return "domainNames " + ", ".join(self.domain_names)


@dataclass(frozen=True, slots=True)
class ClusterPort:
    """One destination port match: a number, an inclusive range, or a named container port."""

    protocol: Protocol | None
    """None only for a named port (it has the protocol its container port declares)."""
    start: int | None = None
    end: int | None = None
    """Equal to ``start`` for a single number."""
    name: str | None = None

    def __str__(self) -> str:
        if self.name is not None:
            return self.name
        if self.start == self.end:
            return f"{self.protocol}/{self.start}"
        return f"{self.protocol}/{self.start}-{self.end}"


@dataclass(frozen=True, slots=True)
class ClusterRule:
    """One ingress or egress rule: an action for traffic matching a peer and a port."""

    action: ClusterAction
    peers: tuple[ClusterPeer, ...]
    """``from``/``to``: at least one."""
    ports: tuple[ClusterPort, ...] | None = None
    """``protocols`` (v1alpha2) or ``ports`` (v1alpha1); None: every port and protocol."""
    name: str = ""


@dataclass(frozen=True, slots=True)
class ClusterPolicy:
    """A ClusterNetworkPolicy, AdminNetworkPolicy or BaselineAdminNetworkPolicy."""

    kind: ClusterKind
    name: str
    tier: TierName
    """``spec.tier``; an AdminNetworkPolicy is Admin, a BaselineAdminNetworkPolicy Baseline."""
    priority: int | None
    """0 (first) to 1000; None for a BaselineAdminNetworkPolicy (there is only one)."""
    subject_namespaces: LabelSelector | None = None
    """``subject.namespaces``: every pod of the selected namespaces (exclusive with pods)."""
    subject_pods: NamespacedPods | None = None
    ingress: tuple[ClusterRule, ...] = ()
    egress: tuple[ClusterRule, ...] = ()
    source: Source = field(default=UNKNOWN_SOURCE, compare=False)

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"


# ------------------------------------------------------------------------ the CRD schemas


@dataclass(frozen=True, slots=True)
class _Schema:
    """What differs between the two API versions (and BANP)."""

    spec: frozenset[str]
    ingress_rule: frozenset[str]
    egress_rule: frozenset[str]
    egress_peer: frozenset[str]
    actions: tuple[str, ...]
    max_rules: int
    max_peers: int
    max_ports: int
    ports_field: str
    """``protocols`` (v1alpha2) or ``ports`` (v1alpha1)."""
    pods_needs_namespace_selector: bool
    """v1alpha1 requires ``namespaceSelector`` in ``pods``; v1alpha2 defaults it to {}."""
    domain_pattern: re.Pattern[str] | None
    """None where ``domainNames`` is not a field."""


_SELECTORS = frozenset({"namespaces", "pods"})
_NAMESPACED_POD = frozenset({"namespaceSelector", "podSelector"})
_STATUS = frozenset({"conditions"})

_CNP = _Schema(
    spec=frozenset({"tier", "priority", "subject", "ingress", "egress"}),
    ingress_rule=frozenset({"name", "action", "from", "protocols"}),
    egress_rule=frozenset({"name", "action", "to", "protocols"}),
    egress_peer=frozenset({"namespaces", "pods", "nodes", "networks", "domainNames"}),
    actions=("Accept", "Deny", "Pass"),
    max_rules=25,
    max_peers=25,
    max_ports=25,
    ports_field="protocols",
    pods_needs_namespace_selector=False,
    domain_pattern=re.compile(
        r"^(\*\.)?([a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.)+"
        r"[a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.?$"
    ),
)
_ANP = _Schema(
    spec=frozenset({"priority", "subject", "ingress", "egress"}),
    ingress_rule=frozenset({"name", "action", "from", "ports"}),
    egress_rule=frozenset({"name", "action", "to", "ports"}),
    egress_peer=frozenset({"namespaces", "pods", "nodes", "networks", "domainNames"}),
    actions=("Allow", "Deny", "Pass"),
    max_rules=100,
    max_peers=100,
    max_ports=100,
    ports_field="ports",
    pods_needs_namespace_selector=True,
    # v0.1.7's pattern as written (its "A-z" also admits [\]^_` between Z and a).
    domain_pattern=re.compile(
        r"^(\*\.)?([a-zA-z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.)+"
        r"[a-zA-z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.?$"
    ),
)
_BANP = _Schema(
    spec=frozenset({"subject", "ingress", "egress"}),
    ingress_rule=_ANP.ingress_rule,
    egress_rule=_ANP.egress_rule,
    egress_peer=frozenset({"namespaces", "pods", "nodes", "networks"}),
    actions=("Allow", "Deny"),
    max_rules=100,
    max_peers=100,
    max_ports=100,
    ports_field="ports",
    pods_needs_namespace_selector=True,
    domain_pattern=None,
)
_SCHEMAS: dict[str, _Schema] = {
    "ClusterNetworkPolicy": _CNP,
    "AdminNetworkPolicy": _ANP,
    "BaselineAdminNetworkPolicy": _BANP,
}

_CNP_PROTOCOL = frozenset({"tcp", "udp", "sctp", "destinationNamedPort"})
_CNP_PROTOCOL_PORTS = frozenset({"destinationPort"})
_CNP_PORT = frozenset({"number", "range"})
_RANGE = frozenset({"start", "end"})
_ANP_PORT = frozenset({"portNumber", "portRange", "namedPort"})
_ANP_PORT_NUMBER = frozenset({"protocol", "port"})
_ANP_PORT_RANGE = frozenset({"protocol", "start", "end"})

_MAX_NETWORKS = 25
_MAX_DOMAINS = 25
_MAX_NAME = 100
_MAX_CIDR = 43


def _one_of(items: list[str]) -> str:
    quoted = [f'"{i}"' for i in items]
    return ", ".join(quoted[:-1]) + f" or {quoted[-1]}" if len(quoted) > 1 else quoted[0]


# ------------------------------------------------------------------------------ the parser


def cluster_policy(
    r: Report, kind: str, data: dict[str, Any], name: str, source: Source
) -> ClusterPolicy | None:
    """Validate one object of a kind in :data:`API_VERSIONS`; None when it has any problem
    (every problem is reported to ``r``)."""
    schema = _SCHEMAS[kind]
    errors_before = len(r.sink)
    status = mapping(r, data.get("status"), ("status",), _STATUS)
    if status is not None:
        sequence(r, status.get("conditions"), ("status", "conditions"))
    if kind == "BaselineAdminNetworkPolicy" and name != "default":
        # x-kubernetes-validations: rule: self.metadata.name == 'default'
        r.error(
            ("metadata", "name"),
            f'"{name}": only one baseline admin network policy with metadata.name="default" '
            "can be created in the cluster",
        )
    path: FieldPath = ("spec",)
    raw = mapping(r, data.get("spec"), path, schema.spec)
    if raw is None:
        if data.get("spec") is None:
            r.error(path, "missing spec")
        return None
    tier: TierName | None
    if kind == "ClusterNetworkPolicy":
        # tier: "Tier is used as the top-level grouping for network policy prioritization."
        # +kubebuilder:validation:Enum={"Admin", "Baseline"}
        tier = _enum(r, raw.get("tier"), (*path, "tier"), ("Admin", "Baseline"))  # type: ignore[assignment]
    else:
        tier = "Admin" if kind == "AdminNetworkPolicy" else "Baseline"
    priority: int | None = None
    if "priority" in schema.spec:
        # priority: "a value from 0 to 1000 indicating the precedence of the policy within
        # its tier" (Minimum=0, Maximum=1000; required).
        priority = integer(r, raw.get("priority"), (*path, "priority"))
        if raw.get("priority") is None:
            r.error((*path, "priority"), "priority is required: an integer from 0 to 1000")
        elif priority is not None and not 0 <= priority <= 1000:
            r.error((*path, "priority"), f"{priority} is not between 0 and 1000")
            priority = None
    subject = _subject(r, raw.get("subject"), (*path, "subject"), schema)
    ingress = _rules(r, raw.get("ingress"), (*path, "ingress"), schema, "ingress")
    egress = _rules(r, raw.get("egress"), (*path, "egress"), schema, "egress")
    if len(r.sink) != errors_before or tier is None or subject is None:
        return None
    if "priority" in schema.spec and priority is None:
        return None
    return ClusterPolicy(
        kind=kind,  # type: ignore[arg-type]
        name=name,
        tier=tier,
        priority=priority,
        subject_namespaces=subject[0],
        subject_pods=subject[1],
        ingress=tuple(ingress),
        egress=tuple(egress),
        source=source,
    )


def _enum(r: Report, value: Any, path: FieldPath, allowed: tuple[str, ...]) -> str | None:
    if value is None:
        r.error(path, f"{path[-1]} is required: {_one_of(list(allowed))}")
        return None
    text = string(r, value, path)
    if text is None:
        return None
    if text not in allowed:
        close = [a for a in allowed if a.lower() == text.lower()]
        hint = f' (values are case-sensitive: "{close[0]}")' if close else ""
        r.error(path, f'unsupported value "{text}": expected {_one_of(list(allowed))}{hint}')
        return None
    return text


def _exactly_one(
    r: Report, raw: dict[str, Any], path: FieldPath, fields: frozenset[str], what: str
) -> str | None:
    """The one field set in an object with ``minProperties: 1`` and ``maxProperties: 1``.

    A field given as null is absent (the API server prunes nulls before validating).
    """
    given = sorted(k for k in raw if k in fields and raw[k] is not None)
    if len(given) == 1:
        return given[0]
    options = _one_of(sorted(fields))
    if not given:
        nulls = sorted(k for k in raw if k in fields)
        hint = (
            f" ({', '.join(nulls)} given as null: write {{}} to select everything)" if nulls else ""
        )
        r.error(path, f"{what} must set exactly one of {options}{hint}")
    else:
        r.error(path, f"{what} must set exactly one of {options}, not {' and '.join(given)}")
    return None


def _required_selector(
    r: Report, raw: dict[str, Any], key: str, path: FieldPath
) -> LabelSelector | None:
    if raw.get(key) is None:
        r.error((*path, key), f"{key} is required (write {{}} to select everything)")
        return None
    return selector(r, raw.get(key), (*path, key))


def _namespaced_pods(
    r: Report, value: Any, path: FieldPath, schema: _Schema
) -> NamespacedPods | None:
    raw = mapping(r, value, path, _NAMESPACED_POD)
    if raw is None:
        return None
    # podSelector: "Used to explicitly select pods within a namespace; if empty, it selects
    # all Pods." (required). namespaceSelector: "follows standard label selector semantics;
    # if empty, it selects all Namespaces." (required in v1alpha1; in v1alpha2 optional,
    # a value that is {} when left out).
    pods = _required_selector(r, raw, "podSelector", path)
    if schema.pods_needs_namespace_selector or raw.get("namespaceSelector") is not None:
        nss = _required_selector(r, raw, "namespaceSelector", path)
    else:
        nss = LabelSelector()
    if pods is None or nss is None:
        return None
    return NamespacedPods(nss, pods)


def _subject(
    r: Report, value: Any, path: FieldPath, schema: _Schema
) -> tuple[LabelSelector | None, NamespacedPods | None] | None:
    # subject: "Subject defines the pods to which this ... applies. Exactly one field must
    # be set. Note that host-networked pods are not included in subject selection."
    if value is None:
        r.error(path, "subject is required: namespaces or pods")
        return None
    raw = mapping(r, value, path, _SELECTORS)
    if raw is None:
        return None
    which = _exactly_one(r, raw, path, _SELECTORS, "subject")
    if which == "namespaces":
        nss = selector(r, raw["namespaces"], (*path, "namespaces"))
        return None if nss is None else (nss, None)
    if which == "pods":
        pods = _namespaced_pods(r, raw["pods"], (*path, "pods"), schema)
        return None if pods is None else (None, pods)
    return None


def _bounded_list(
    r: Report, value: Any, path: FieldPath, low: int, high: int, what: str
) -> list[Any] | None:
    items = sequence(r, value, path)
    if items is None:
        return None
    if len(items) < low:
        r.error(path, f"{what} must have at least {low} item{'s' if low > 1 else ''}")
    elif len(items) > high:
        r.error(path, f"{what} has {len(items)} items: at most {high} are allowed")
    return items


def _rules(
    r: Report,
    value: Any,
    path: FieldPath,
    schema: _Schema,
    direction: Literal["ingress", "egress"],
) -> list[ClusterRule]:
    # ingress/egress: "A maximum of 25 rules is allowed in this block." (v1alpha2; "A total
    # of 100 rules will be allowed in each ANP instance." in v1alpha1)
    items = _bounded_list(r, value, path, 0, schema.max_rules, f"{direction}")
    out: list[ClusterRule] = []
    peers_field = "from" if direction == "ingress" else "to"
    known = schema.ingress_rule if direction == "ingress" else schema.egress_rule
    peer_fields = _SELECTORS if direction == "ingress" else schema.egress_peer
    for i, item in enumerate(items or ()):
        rule_path = (*path, i)
        raw = mapping(r, item, rule_path, known)
        if raw is None:
            if item is None:
                r.error(rule_path, f"expected a rule {{action, {peers_field}}}, got null")
            continue
        name = string(r, raw.get("name"), (*rule_path, "name")) or ""
        if len(name) > _MAX_NAME:
            r.error((*rule_path, "name"), f"is {len(name)} characters long: at most {_MAX_NAME}")
        action = _enum(r, raw.get("action"), (*rule_path, "action"), schema.actions)
        # from/to: "This field must be defined and contain at least one item."
        peers_path = (*rule_path, peers_field)
        if raw.get(peers_field) is None:
            r.error(peers_path, f"{peers_field} is required: a list of at least one peer")
        peers_raw = _bounded_list(
            r, raw.get(peers_field), peers_path, 1, schema.max_peers, peers_field
        )
        peers = [
            _peer(r, p, (*peers_path, j), schema, peer_fields, action)
            for j, p in enumerate(peers_raw or ())
        ]
        ports_path = (*rule_path, schema.ports_field)
        ports_raw = _bounded_list(
            r, raw.get(schema.ports_field), ports_path, 1, schema.max_ports, schema.ports_field
        )
        ports: list[ClusterPort | None] = []
        for k, p in enumerate(ports_raw or ()):
            if schema is _CNP:
                ports.append(_cnp_protocol(r, p, (*ports_path, k)))
            else:
                ports.append(_anp_port(r, p, (*ports_path, k)))
        if direction == "egress":
            # CEL on the egress rule: "!(self.to.exists(peer, has(peer.networks) ||
            # has(peer.nodes) || has(peer.domainNames)) && has(self.protocols) &&
            # self.protocols.exists(protocol, has(protocol.destinationNamedPort)))": "networks/
            # nodes/domainNames peer cannot be set with namedPorts since there are no
            # namedPorts for networks/nodes/domainNames" (v1alpha1: ports, namedPort).
            hostless = [
                j
                for j, p in enumerate(peers)
                if p is not None and (p.networks or p.nodes is not None or p.domain_names)
            ]
            named = [k for k, p in enumerate(ports) if p is not None and p.name is not None]
            if hostless and named:
                kinds = "networks/nodes" if schema is _BANP else "networks/nodes/domainNames"
                r.error(
                    (*ports_path, named[0]),
                    f"{kinds} peer ({peers_field}[{hostless[0]}]) cannot be set with "
                    f"namedPorts since there are no namedPorts for {kinds}",
                )
        if action is None or any(p is None for p in peers) or any(p is None for p in ports):
            continue
        out.append(
            ClusterRule(
                action=action,  # type: ignore[arg-type]
                peers=tuple(p for p in peers if p is not None),
                ports=tuple(p for p in ports if p is not None) if ports_raw else None,
                name=name,
            )
        )
    return out


def _peer(
    r: Report,
    value: Any,
    path: FieldPath,
    schema: _Schema,
    fields: frozenset[str],
    action: str | None,
) -> ClusterPeer | None:
    # "Exactly one of the fields must be set for a given peer and this is enforced by the
    # validation rules on the CRD." (minProperties 1, maxProperties 1)
    if value is None:
        r.error(path, f"a peer must set exactly one of {_one_of(sorted(fields))}")
        return None
    raw = mapping(r, value, path, fields)
    if raw is None:
        return None
    which = _exactly_one(r, raw, path, fields, "a peer")
    sub = (*path, which) if which else path
    if which == "namespaces":
        # namespaces: "Namespaces defines a way to select all pods within a set of
        # Namespaces. Note that host-networked pods are not included in this type of peer."
        nss = selector(r, raw[which], sub)
        return None if nss is None else ClusterPeer(namespaces=nss)
    if which == "pods":
        pods = _namespaced_pods(r, raw[which], sub, schema)
        return None if pods is None else ClusterPeer(pods=pods)
    if which == "nodes":
        # nodes: "It selects the nodeIPs as the peer type by matching on the IPs present in
        # the node.Status.Addresses field of the node. This field follows standard label
        # selector semantics; if present but empty, it selects all Nodes."
        nodes = selector(r, raw[which], sub)
        return None if nodes is None else ClusterPeer(nodes=nodes)
    if which == "networks":
        nets = _networks(r, raw[which], sub)
        return None if nets is None else ClusterPeer(networks=nets)
    if which == "domainNames":
        assert schema.domain_pattern is not None
        names = _domain_names(r, raw[which], sub, schema.domain_pattern)
        # domainNames: "DomainNames is only supported for Accept rules." (v1alpha1: "for
        # ALLOW rules"). The CRD does not check it; sekisho refuses the rest.
        if action is not None and action not in ("Accept", "Allow"):
            r.error(
                sub,
                f"domainNames peers are only supported in {schema.actions[0]} rules, not {action}",
            )
            return None
        return None if names is None else ClusterPeer(domain_names=names)
    return None


def _networks(r: Report, value: Any, path: FieldPath) -> tuple[IPNetwork, ...] | None:
    # networks: "Each item in Networks should be provided in the CIDR format and should be
    # IPv4 or IPv6 ... Networks can have up to 25 CIDRs specified." (MinItems=1,
    # MaxItems=25, listType=set; each: MaxLength=43, CEL isCIDR(self) "Invalid CIDR format
    # provided"). isCIDR accepts host bits; Calico clears them (cnet.ParseCIDR), as here.
    items = _bounded_list(r, value, path, 1, _MAX_NETWORKS, "networks")
    if items is None:
        return None
    out: list[IPNetwork] = []
    seen: set[str] = set()
    ok = True
    for i, item in enumerate(items):
        p = (*path, i)
        text = string(r, item, p)
        if text is None:
            if item is None:
                r.error(p, "expected a CIDR, got null")
            ok = False
            continue
        if text in seen:
            r.error(p, f'duplicate value "{text}" (networks is a set)')
            ok = False
            continue
        seen.add(text)
        if len(text) > _MAX_CIDR:
            r.error(p, f"is {len(text)} characters long: at most {_MAX_CIDR}")
            ok = False
            continue
        try:
            if "/" not in text:
                raise ValueError(text)
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            r.error(
                p,
                f'"{text}": invalid CIDR format provided: expected an address and a '
                "prefix length (10.0.0.0/8 or fd00::/8)",
            )
            ok = False
    return tuple(out) if ok else None


def _domain_names(
    r: Report, value: Any, path: FieldPath, pattern: re.Pattern[str]
) -> tuple[str, ...] | None:
    # domainNames: "DomainNames can have up to 25 domain names specified in one rule."
    # (MinItems=1, MaxItems=25, listType=set; each matching the DomainName pattern)
    items = _bounded_list(r, value, path, 1, _MAX_DOMAINS, "domainNames")
    if items is None:
        return None
    out: list[str] = []
    ok = True
    for i, item in enumerate(items):
        p = (*path, i)
        text = string(r, item, p)
        if text is None:
            ok = False
            continue
        if text in out:
            r.error(p, f'duplicate value "{text}" (domainNames is a set)')
            ok = False
        elif not pattern.match(text):
            r.error(
                p,
                f'"{text}" is not a domain name: labels of letters, digits, "-" and "_", '
                'an optional "*." prefix (e.g. "*.kubernetes.io")',
            )
            ok = False
        else:
            out.append(text)
    return tuple(out) if ok else None


def _port_number(r: Report, value: Any, path: FieldPath) -> int | None:
    number = integer(r, value, path)
    if value is None:
        r.error(path, f"{path[-1]} is required: a port from 1 to 65535")
        return None
    if number is not None and not 1 <= number <= 65535:
        r.error(path, f"{number} is not between 1 and 65535")
        return None
    return number


def _range(
    r: Report, raw: dict[str, Any], path: FieldPath, *, strict: bool
) -> tuple[int, int] | None:
    start = _port_number(r, raw.get("start"), (*path, "start"))
    end = _port_number(r, raw.get("end"), (*path, "end"))
    if start is None or end is None:
        return None
    if strict and not start < end:
        # PortRange CEL: rule: self.start < self.end, "Start port must be less than End port"
        r.error(path, f"start port must be less than end port (start {start}, end {end})")
        return None
    if not strict and start > end:
        # "the Start value must be less than End" (not checked by the v1alpha1 CRD; Calico
        # refuses such a range: "minimum port number ... is greater than maximum")
        r.error(path, f"start {start} is greater than end {end}")
        return None
    return start, end


def _named_port(r: Report, value: Any, path: FieldPath) -> ClusterPort | None:
    text = string(r, value, path)
    if text is None:
        return None
    if not text:
        r.error(path, "expected the name of a container port, got an empty string")
        return None
    return ClusterPort(None, name=text)


_CNP_PROTOCOLS: dict[str, Protocol] = {"tcp": "TCP", "udp": "UDP", "sctp": "SCTP"}


def _cnp_protocol(r: Report, value: Any, path: FieldPath) -> ClusterPort | None:
    # ClusterNetworkPolicyProtocol: "describes additional protocol-specific match rules.
    # Exactly one field must be set." (tcp, udp, sctp, destinationNamedPort)
    if value is None:
        r.error(path, f"must set exactly one of {_one_of(sorted(_CNP_PROTOCOL))}")
        return None
    raw = mapping(r, value, path, _CNP_PROTOCOL)
    if raw is None:
        return None
    which = _exactly_one(r, raw, path, _CNP_PROTOCOL, "a protocol")
    if which is None:
        return None
    sub = (*path, which)
    if which == "destinationNamedPort":
        # "DestinationNamedPort selects a destination port on a pod based on the
        # ContainerPort name."
        return _named_port(r, raw[which], sub)
    # tcp/udp/sctp: MinProperties=1, so destinationPort must be given.
    proto = mapping(r, raw[which], sub, _CNP_PROTOCOL_PORTS)
    if proto is None:
        return None
    if proto.get("destinationPort") is None:
        r.error((*sub, "destinationPort"), "destinationPort is required: number or range")
        return None
    # Port: "matches on port number. You must specify either Port or Range."
    dport_path = (*sub, "destinationPort")
    dport = mapping(r, proto["destinationPort"], dport_path, _CNP_PORT)
    if dport is None:
        return None
    kind = _exactly_one(r, dport, dport_path, _CNP_PORT, "destinationPort")
    protocol = _CNP_PROTOCOLS[which]
    if kind == "number":
        number = _port_number(r, dport["number"], (*dport_path, "number"))
        return None if number is None else ClusterPort(protocol, number, number)
    if kind == "range":
        rng = mapping(r, dport["range"], (*dport_path, "range"), _RANGE)
        if rng is None:
            return None
        bounds = _range(r, rng, (*dport_path, "range"), strict=True)
        return None if bounds is None else ClusterPort(protocol, *bounds)
    return None


def _anp_port(r: Report, value: Any, path: FieldPath) -> ClusterPort | None:
    # AdminNetworkPolicyPort: "describes how to select network ports on pod(s). Exactly one
    # field must be set." (portNumber, portRange, namedPort)
    if value is None:
        r.error(path, f"must set exactly one of {_one_of(sorted(_ANP_PORT))}")
        return None
    raw = mapping(r, value, path, _ANP_PORT)
    if raw is None:
        return None
    which = _exactly_one(r, raw, path, _ANP_PORT, "a port")
    if which is None:
        return None
    sub = (*path, which)
    if which == "namedPort":
        # namedPort: "NamedPort selects a port on a pod(s) based on name."
        return _named_port(r, raw[which], sub)
    known = _ANP_PORT_NUMBER if which == "portNumber" else _ANP_PORT_RANGE
    port = mapping(r, raw[which], sub, known)
    if port is None:
        return None
    # protocol: "Protocol is the network protocol (TCP, UDP, or SCTP) which traffic must
    # match. If not specified, this field defaults to TCP." (default: TCP)
    protocol = parse_protocol(r, port.get("protocol"), (*sub, "protocol"))
    if which == "portNumber":
        number = _port_number(r, port.get("port"), (*sub, "port"))
        if number is None or protocol is None:
            return None
        return ClusterPort(protocol, number, number)
    bounds = _range(r, port, sub, strict=False)
    if bounds is None or protocol is None:
        return None
    return ClusterPort(protocol, *bounds)
