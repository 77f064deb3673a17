"""Calico's own kinds (``projectcalico.org/v3``), read and validated as Calico validates them.

The kinds, as ``calicoctl get -o yaml`` prints them (one object or a ``List``):
NetworkPolicy, GlobalNetworkPolicy, Tier, NetworkSet, GlobalNetworkSet,
HostEndpoint, StagedNetworkPolicy, StagedGlobalNetworkPolicy and
StagedKubernetesNetworkPolicy; and ServiceAccounts (``v1``), whose labels
``serviceAccountSelector`` reads. :data:`KINDS` is the one list of them.

The checks are libcalico-go's (``lib/validator/v3/validator.go``, ``lib/names``)
and the defaults ``clientv3`` applies before it stores an object (``types``
from the rules present, the ``default`` tier, ``stagedAction: Set``), each
quoted where it is applied; every problem is reported at its field path and
line, a policy with any problem is dropped and the loader returns no cluster.
Selectors are parsed by the one selector parser
(:func:`sekisho.selectors.expr.parse`), so a syntax error names its column.

Where Calico accepts a field sekisho cannot give a meaning offline it is
refused, never ignored: ``http`` (application layer policy needs Calico's L7
proxy), ``services`` peers (no Service objects are read), and staged actions
other than Set and Delete. Meaning lives in :mod:`sekisho.semantics.calico`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from sekisho.model import fields as F
from sekisho.model import kinds, names
from sekisho.model.checks import (
    IPAddress,
    IPNetwork,
    Report,
    boolean,
    ip_address,
    mapping,
    sequence,
    string,
)
from sekisho.model.reader import FieldPath, Issue, describe
from sekisho.model.types import UNKNOWN_SOURCE, NetworkPolicy, Source
from sekisho.selectors.expr import ALL, Expr, Global, SelectorSyntaxError, parse

API_VERSION = "projectcalico.org/v3"

PolicyKind = Literal[
    "NetworkPolicy",
    "GlobalNetworkPolicy",
    "StagedNetworkPolicy",
    "StagedGlobalNetworkPolicy",
]
KINDS: dict[str, str] = {k: v for k, v in F.API_VERSIONS.items() if k in F.CALICO_KINDS}
"""Every kind this module reads and its apiVersion (registered in
:data:`sekisho.model.fields.CALICO_KINDS`). Calico's NetworkPolicy shares its kind name
with Kubernetes' and is told apart by its apiVersion (:func:`is_calico`)."""

DEFAULT_TIER = "default"
BUILTIN_TIER_ORDERS: dict[str, float] = {
    "kube-admin": 1_000.0,
    DEFAULT_TIER: 1_000_000.0,
    "kube-baseline": 10_000_000.0,
}
"""The tiers Calico always has and the order each must keep (``apiv3.DefaultTierOrder``,
``KubeAdminTierOrder``, ``KubeBaselineTierOrder``)."""

DEFAULT_ALLOW_PROFILE = "projectcalico-default-allow"
"""The one profile sekisho knows: Calico's built-in profile that allows everything (the
profile of auto-created host endpoints). Other profiles are not read."""

FAILSAFE_INBOUND: tuple[tuple[str, int], ...] = (
    ("TCP", 22),
    ("UDP", 68),
    ("TCP", 179),
    ("TCP", 2379),
    ("TCP", 2380),
    ("TCP", 5473),
    ("TCP", 6443),
    ("TCP", 6666),
    ("TCP", 6667),
)
"""Felix's ``FailsafeInboundHostPorts`` default: always allowed into a host endpoint."""
FAILSAFE_OUTBOUND: tuple[tuple[str, int], ...] = (
    ("UDP", 53),
    ("UDP", 67),
    ("TCP", 179),
    ("TCP", 2379),
    ("TCP", 2380),
    ("TCP", 5473),
    ("TCP", 6443),
    ("TCP", 6666),
    ("TCP", 6667),
)
"""Felix's ``FailsafeOutboundHostPorts`` default: always allowed out of a host endpoint."""

PROTOCOL_NAMES: dict[str, int] = {
    "TCP": 6,
    "UDP": 17,
    "ICMP": 1,
    "ICMPv6": 58,
    "SCTP": 132,
    "UDPLite": 136,
}
"""``protocolRegex``: ``^(TCP|UDP|ICMP|ICMPv6|SCTP|UDPLite)$``; a number 1-255 also."""
PORT_PROTOCOLS = frozenset((6, 17, 132, 136))

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = _LABEL + r"(\." + _LABEL + r")*"
_NP_NAME = re.compile(rf"^(({_LABEL})(\.{_LABEL})?|((knp|ossg)\.default\.({_SUBDOMAIN})))$")
"""``networkPolicyNameRegex``."""
_GNP_NAME = re.compile(rf"^({_LABEL}\.)?{_LABEL}$")
"""``globalNetworkPolicyNameRegex``."""
_TIER_NAME = re.compile(rf"^{_LABEL}$")
_INTERFACE = re.compile(r"^[a-zA-Z0-9_.-]{1,15}$")
_RANGE = re.compile(r"^(\d+):(\d+)$")


is_calico = kinds.is_calico
"""Whether an object is one this module reads (the registry tells)."""


# ------------------------------------------------------------------------------- the types


@dataclass(frozen=True, slots=True)
class Selector:
    """A parsed Calico selector and its text as written."""

    text: str
    expr: Expr

    def __str__(self) -> str:
        return self.text or "all()"


@dataclass(frozen=True, slots=True)
class CalicoPort:
    """A port of ``ports``/``notPorts``: a range (``start == end`` for one) or a name."""

    start: int = 0
    end: int = 0
    name: str | None = None

    def __str__(self) -> str:
        if self.name is not None:
            return self.name
        return str(self.start) if self.start == self.end else f"{self.start}:{self.end}"


@dataclass(frozen=True, slots=True)
class ServiceAccountMatch:
    names: tuple[str, ...] = ()
    selector: Selector | None = None


@dataclass(frozen=True, slots=True)
class EntityRule:
    """``source`` or ``destination``; every given criterion must match."""

    nets: tuple[IPNetwork, ...] = ()
    not_nets: tuple[IPNetwork, ...] = ()
    selector: Selector | None = None
    not_selector: Selector | None = None
    namespace_selector: Selector | None = None
    service_accounts: ServiceAccountMatch | None = None
    ports: tuple[CalicoPort, ...] = ()
    not_ports: tuple[CalicoPort, ...] = ()


@dataclass(frozen=True, slots=True)
class Icmp:
    type: int
    code: int | None = None


@dataclass(frozen=True, slots=True)
class CalicoRule:
    action: Literal["Allow", "Deny", "Pass", "Log"]
    protocol: int | None = None
    not_protocol: int | None = None
    icmp: Icmp | None = None
    not_icmp: Icmp | None = None
    ip_version: int | None = None
    source: EntityRule = EntityRule()
    destination: EntityRule = EntityRule()


@dataclass(frozen=True, slots=True)
class CalicoPolicy:
    """A (Staged)NetworkPolicy or (Staged)GlobalNetworkPolicy with Calico's defaults applied."""

    kind: PolicyKind
    name: str
    """As written (``platform.deny-db``, or ``deny-db`` in the default tier)."""
    tier: str
    order: float | None
    """None: "If the order is omitted, it is applied last"."""
    namespace: str | None
    """None for the global kinds."""
    selector: Selector
    types: frozenset[Literal["Ingress", "Egress"]]
    ingress: tuple[CalicoRule, ...] = ()
    egress: tuple[CalicoRule, ...] = ()
    namespace_selector: Selector | None = None
    """GlobalNetworkPolicy only."""
    service_account_selector: Selector | None = None
    do_not_track: bool = False
    pre_dnat: bool = False
    apply_on_forward: bool = False
    staged_action: Literal["Set", "Delete"] | None = None
    """None for an enforced policy."""
    source: Source = field(default=UNKNOWN_SOURCE, compare=False)

    @property
    def tiered_name(self) -> str:
        """The name with its tier prefix (Calico's backend name: ``default.x`` for ``x``)."""
        return self.name if "." in self.name else f"{DEFAULT_TIER}.{self.name}"

    @property
    def display(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True, slots=True)
class StagedKubernetesPolicy:
    """A StagedKubernetesNetworkPolicy: a Kubernetes NetworkPolicy spec not yet enforced."""

    policy: NetworkPolicy
    action: Literal["Set", "Delete"]


@dataclass(frozen=True, slots=True)
class CalicoTier:
    name: str
    order: float | None
    default_action: Literal["Deny", "Pass"] = "Deny"
    source: Source = field(default=UNKNOWN_SOURCE, compare=False)


@dataclass(frozen=True, slots=True)
class NetworkSet:
    """A NetworkSet (``namespace`` set) or a GlobalNetworkSet: labelled nets."""

    name: str
    namespace: str | None
    labels: dict[str, str] = field(hash=False)
    nets: tuple[IPNetwork, ...]
    source: Source = field(default=UNKNOWN_SOURCE, compare=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True, slots=True)
class EndpointPort:
    name: str
    protocol: str
    port: int


@dataclass(frozen=True, slots=True)
class HostEndpoint:
    """A node's interface (``*``: all of them) under policy."""

    name: str
    node: str
    interface: str | None
    expected_ips: tuple[IPAddress, ...]
    labels: dict[str, str] = field(hash=False)
    profiles: tuple[str, ...] = ()
    ports: tuple[EndpointPort, ...] = ()
    source: Source = field(default=UNKNOWN_SOURCE, compare=False)


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    namespace: str
    name: str
    labels: dict[str, str] = field(hash=False)
    source: Source = field(default=UNKNOWN_SOURCE, compare=False)


@dataclass(frozen=True, slots=True)
class CalicoResources:
    """Every Calico object of a cluster (sorted by kind, namespace and name)."""

    tiers: tuple[CalicoTier, ...] = ()
    policies: tuple[CalicoPolicy, ...] = ()
    """Enforced and staged Calico policies."""
    staged_kubernetes: tuple[StagedKubernetesPolicy, ...] = ()
    network_sets: tuple[NetworkSet, ...] = ()
    host_endpoints: tuple[HostEndpoint, ...] = ()
    service_accounts: tuple[ServiceAccount, ...] = ()

    def __bool__(self) -> bool:
        return bool(
            self.tiers
            or self.policies
            or self.staged_kubernetes
            or self.network_sets
            or self.host_endpoints
            or self.service_accounts
        )

    def service_account_labels(self) -> dict[tuple[str, str], dict[str, str]]:
        return {(s.namespace, s.name): s.labels for s in self.service_accounts}


@dataclass(slots=True)
class CalicoDrafts:
    """What the objects said, before the cross-object checks of :func:`finish`."""

    tiers: list[tuple[CalicoTier, Report]] = field(default_factory=list)
    policies: list[tuple[CalicoPolicy, Report]] = field(default_factory=list)
    staged_kubernetes: list[StagedKubernetesPolicy] = field(default_factory=list)
    network_sets: list[NetworkSet] = field(default_factory=list)
    host_endpoints: list[tuple[HostEndpoint, Report]] = field(default_factory=list)
    service_accounts: list[ServiceAccount] = field(default_factory=list)


# ------------------------------------------------------------------------ the field sets

_POLICY_SPEC = frozenset(
    {"tier", "order", "selector", "types", "ingress", "egress", "serviceAccountSelector"}
    | {"performanceHints"}
)
_GLOBAL_SPEC = _POLICY_SPEC | {"namespaceSelector", "doNotTrack", "preDNAT", "applyOnForward"}
_SPECS: dict[str, frozenset[str]] = {
    "NetworkPolicy": _POLICY_SPEC,
    "GlobalNetworkPolicy": _GLOBAL_SPEC,
    "StagedNetworkPolicy": _POLICY_SPEC | {"stagedAction"},
    "StagedGlobalNetworkPolicy": _GLOBAL_SPEC | {"stagedAction"},
}
_RULE = frozenset(
    {"action", "ipVersion", "protocol", "notProtocol", "icmp", "notICMP"}
    | {"source", "destination", "http", "metadata"}
)
_ENTITY = frozenset(
    {"nets", "notNets", "selector", "notSelector", "namespaceSelector"}
    | {"serviceAccounts", "ports", "notPorts", "services"}
)
_SA_MATCH = frozenset({"names", "selector"})
_ICMP = frozenset({"type", "code"})
_RULE_METADATA = frozenset({"annotations"})
_TIER_SPEC = frozenset({"order", "defaultAction"})
_NETSET_SPEC = frozenset({"nets", "allowedEgressDomains"})
_HEP_SPEC = frozenset({"node", "interfaceName", "expectedIPs", "profiles", "ports"})
_HEP_PORT = frozenset({"name", "protocol", "port"})
_STAGED_K8S_SPEC = F.NETWORK_POLICY_SPEC | {"stagedAction"}
SERVICE_ACCOUNT_TOP = F.TOP | {"secrets", "imagePullSecrets", "automountServiceAccountToken"}

_ACTIONS = ("Allow", "Deny", "Pass", "Log")


def _quoted_list(items: Iterable[str]) -> str:
    shown = [f'"{i}"' for i in items]
    return ", ".join(shown[:-1]) + f" or {shown[-1]}" if len(shown) > 1 else shown[0]


def _enum(r: Report, value: Any, path: FieldPath, allowed: tuple[str, ...]) -> str | None:
    text = string(r, value, path)
    if text is None:
        return None
    if text not in allowed:
        close = [a for a in allowed if a.lower() == text.lower()]
        hint = f' (values are case-sensitive: "{close[0]}")' if close else ""
        r.error(path, f'unsupported value "{text}": expected {_quoted_list(allowed)}{hint}')
        return None
    return text


def _number(r: Report, value: Any, path: FieldPath) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        r.error(path, f"expected a number, got {describe(value)}")
        return None
    return float(value)


def _selector(
    r: Report, value: Any, path: FieldPath, *, allow_global: bool = False
) -> Selector | None:
    """A selector expression; a syntax error is reported with its column."""
    text = string(r, value, path)
    if text is None:
        return None
    try:
        expr = parse(text)
    except SelectorSyntaxError as exc:
        r.error(path, f'invalid selector "{text}": column {exc.column}: {exc.message}')
        return None
    if _uses_global(expr):
        # "global() can only be used in an EntityRule namespaceSelector"; "global() cannot
        # be combined with other selectors".
        if not allow_global:
            r.error(path, f'"{text}": global() can only be used in a rule\'s namespaceSelector')
            return None
        if not isinstance(expr, Global):
            r.error(path, f'"{text}": global() cannot be combined with other selectors')
            return None
    return Selector(text, expr)


def _uses_global(expr: Expr) -> bool:
    return "global()" in expr.canonical()


# ------------------------------------------------------------------------------ the parser


def parse_object(
    r: Report,
    kind: str,
    data: dict[str, Any],
    name: str,
    namespace: str,
    obj_labels: dict[str, str],
    source: Source,
    into: CalicoDrafts,
) -> None:
    """Validate one object of a kind in :data:`KINDS` (or Calico's NetworkPolicy) into ``into``."""
    spec = data.get("spec")
    if kind in _SPECS:
        policy = _policy(r, kind, spec, name, namespace, source)
        if policy is not None:
            into.policies.append((policy, r))
    elif kind == "StagedKubernetesNetworkPolicy":
        staged = _staged_kubernetes(r, spec, name, namespace, source)
        if staged is not None:
            into.staged_kubernetes.append(staged)
    elif kind == "Tier":
        tier = _tier(r, spec, name, source)
        if tier is not None:
            into.tiers.append((tier, r))
    elif kind in ("NetworkSet", "GlobalNetworkSet"):
        netset = _network_set(r, kind, spec, name, namespace, obj_labels, source)
        if netset is not None:
            into.network_sets.append(netset)
    elif kind == "HostEndpoint":
        hep = _host_endpoint(r, spec, name, obj_labels, source)
        if hep is not None:
            into.host_endpoints.append((hep, r))
    elif kind == "ServiceAccount":
        for key in ("secrets", "imagePullSecrets"):
            sequence(r, data.get(key), (key,))
        boolean(r, data.get("automountServiceAccountToken"), ("automountServiceAccountToken",))
        into.service_accounts.append(ServiceAccount(namespace, name, obj_labels, source))


def _policy_name_errors(r: Report, kind: str, name: str, tier: str) -> bool:
    regex = _NP_NAME if kind in ("NetworkPolicy", "StagedNetworkPolicy") else _GNP_NAME
    path: FieldPath = ("metadata", "name")
    if not regex.match(name):
        r.error(
            path,
            f'"{name}": a {kind} name is one or two DNS-1123 labels (lower-case alphanumeric '
            "characters or '-') joined by one '.', the first being the tier",
        )
        return False
    # names.ValidateTieredPolicyName: "policies in the default tier can be named without the
    # default. prefix. Policy names in non default tier have to be in a format of tier.name".
    prefix, dot, _ = name.partition(".")
    if not dot and tier == DEFAULT_TIER:
        return True
    if dot and prefix == tier:
        return True
    if dot and name.startswith(("knp.default.", "ossg.")):
        r.error(path, f'"{name}": the prefixes knp.default. and ossg. are reserved for Calico')
        return False
    expected = f"{tier}.{name.partition('.')[2] or name}" if dot else f"{tier}.{name}"
    r.error(
        path,
        f'"{name}" is not a name of tier "{tier}": a policy outside the default tier is '
        f'named "<tier>.<name>" (e.g. "{expected}")',
    )
    return False


def _policy(
    r: Report, kind: str, value: Any, name: str, namespace: str, source: Source
) -> CalicoPolicy | None:
    before = len(r.sink)
    path: FieldPath = ("spec",)
    spec = mapping(r, value, path, _SPECS[kind])
    if spec is None:
        if value is not None:
            return None
        spec = {}
    glob = kind in ("GlobalNetworkPolicy", "StagedGlobalNetworkPolicy")
    tier = string(r, spec.get("tier"), (*path, "tier")) or DEFAULT_TIER
    _policy_name_errors(r, kind, name, tier)
    staged: Literal["Set", "Delete"] | None = None
    if kind.startswith("Staged"):
        staged = _staged_action(r, spec.get("stagedAction"), (*path, "stagedAction"))
        if staged == "Delete":
            # "Spec fields, except Tier, should all be zero-value if stagedAction is Delete"
            extra = sorted(k for k, v in spec.items() if k not in ("tier", "stagedAction") and v)
            for k in extra:
                r.error(
                    (*path, k),
                    "must be left out when stagedAction is Delete (only tier may be given)",
                )
    order = _number(r, spec.get("order"), (*path, "order"))
    # Selector: "An empty selector selects all endpoints" (all()); global() is only for a
    # rule's namespaceSelector.
    sel = _selector(r, spec.get("selector", ""), (*path, "selector")) or Selector("", ALL)
    ns_sel = (
        _selector(r, spec.get("namespaceSelector"), (*path, "namespaceSelector"))
        if glob and spec.get("namespaceSelector")
        else None
    )
    sa_sel = (
        _selector(r, spec.get("serviceAccountSelector"), (*path, "serviceAccountSelector"))
        if spec.get("serviceAccountSelector")
        else None
    )
    for hint_field in ("performanceHints",):
        sequence(r, spec.get(hint_field), (*path, hint_field))
    ingress = _rules(r, spec.get("ingress"), (*path, "ingress"))
    egress = _rules(r, spec.get("egress"), (*path, "egress"))
    types = _types(r, spec.get("types"), (*path, "types"), bool(ingress), bool(egress))
    dnt = pre = aof = False
    if glob:
        dnt = boolean(r, spec.get("doNotTrack"), (*path, "doNotTrack")) or False
        pre = boolean(r, spec.get("preDNAT"), (*path, "preDNAT")) or False
        aof = boolean(r, spec.get("applyOnForward"), (*path, "applyOnForward")) or False
        if dnt and pre:
            r.error((*path, "preDNAT"), "preDNAT and doNotTrack cannot both be true")
        if pre and spec.get("egress"):
            r.error((*path, "egress"), "a preDNAT policy cannot have egress rules")
        if pre and types is not None and "Egress" in types:
            r.error((*path, "types"), "a preDNAT policy cannot have the Egress type")
        if not aof and (dnt or pre):
            r.error(
                (*path, "applyOnForward"),
                "applyOnForward must be true if either preDNAT or doNotTrack is true",
            )
    if len(r.sink) != before or types is None:
        return None
    return CalicoPolicy(
        kind=kind,  # type: ignore[arg-type]
        name=name,
        tier=tier,
        order=order,
        namespace=None if glob else namespace,
        selector=sel,
        types=types,
        ingress=tuple(ingress),
        egress=tuple(egress),
        namespace_selector=ns_sel,
        service_account_selector=sa_sel,
        do_not_track=dnt,
        pre_dnat=pre,
        apply_on_forward=aof,
        staged_action=staged,
        source=source,
    )


def _staged_action(r: Report, value: Any, path: FieldPath) -> Literal["Set", "Delete"] | None:
    # stagedAction: "Set" (default), "Delete"; Calico also has Learn and Ignore, which are
    # not previews of an enforced policy: sekisho refuses them rather than guess.
    if value is None:
        return "Set"
    text = _enum(r, value, path, ("Set", "Delete", "Learn", "Ignore"))
    if text in ("Learn", "Ignore"):
        r.error(path, f'stagedAction "{text}" is not supported by sekisho: use Set or Delete')
        return None
    return text  # type: ignore[return-value]


def _types(
    r: Report, value: Any, path: FieldPath, has_ingress: bool, has_egress: bool
) -> frozenset[Literal["Ingress", "Egress"]] | None:
    items = sequence(r, value, path)
    if not items:
        # clientv3's defaultPolicyTypesField: "Policy has no egress rules, so apply this
        # policy to ingress only. (Note: intentionally including the case where the policy
        # also has no ingress rules.)" / "Policy has egress rules but no ingress rules, so
        # apply this policy to egress only." / "Policy has both ingress and egress rules, so
        # apply this policy to both ingress and egress."
        if not has_egress:
            return frozenset({"Ingress"})
        if not has_ingress:
            return frozenset({"Egress"})
        return frozenset({"Ingress", "Egress"})
    out: set[Literal["Ingress", "Egress"]] = set()
    ok = True
    for i, item in enumerate(items):
        t = _enum(r, item, (*path, i), ("Ingress", "Egress"))
        if t is None:
            ok = False
        elif t in out:
            r.error((*path, i), f"'{t}' type specified more than once")
            ok = False
        else:
            out.add(t)  # type: ignore[arg-type]
    return frozenset(out) if ok else None


def _rules(r: Report, value: Any, path: FieldPath) -> list[CalicoRule]:
    out: list[CalicoRule] = []
    for i, item in enumerate(sequence(r, value, path) or ()):
        rule = _rule(r, item, (*path, i))
        if rule is not None:
            out.append(rule)
    return out


def _protocol(r: Report, value: Any, path: FieldPath) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        r.error(path, f"expected a protocol name or number, got {describe(value)}")
        return None
    if isinstance(value, int) or value.isdigit():
        number = int(value)
        if not 1 <= number <= 255:
            r.error(path, f"protocol number {number} is not between 1 and 255")
            return None
        return number
    if value not in PROTOCOL_NAMES:
        close = [n for n in PROTOCOL_NAMES if n.lower() == value.lower()]
        hint = f' (names are case-sensitive: "{close[0]}")' if close else ""
        r.error(
            path,
            f'unsupported protocol "{value}": expected {_quoted_list(PROTOCOL_NAMES)} '
            f"or a number 1-255{hint}",
        )
        return None
    return PROTOCOL_NAMES[value]


def _icmp(r: Report, value: Any, path: FieldPath) -> Icmp | None:
    raw = mapping(r, value, path, _ICMP)
    if raw is None:
        return None
    t, c = raw.get("type"), raw.get("code")
    ok = True
    for key, v, high in (("type", t, 254), ("code", c, 255)):
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int):
            r.error((*path, key), f"expected an integer, got {describe(v)}")
            ok = False
        elif not 0 <= v <= high:
            r.error((*path, key), f"ICMP {key} {v} is not between 0 and {high}")
            ok = False
    if c is not None and t is None:
        # "Due to Kernel limitations, ICMP code must always be specified with a type."
        r.error((*path, "code"), "ICMP code specified without an ICMP type")
        return None
    if not ok or t is None:
        if ok:
            r.error(path, "an ICMP match needs a type (and optionally a code)")
        return None
    return Icmp(t, c)


def _rule(r: Report, value: Any, path: FieldPath) -> CalicoRule | None:
    before = len(r.sink)
    raw = mapping(r, value, path, _RULE)
    if raw is None:
        if value is None:
            r.error(path, "expected a rule {action, ...}, got null")
        return None
    if raw.get("action") is None:
        r.error((*path, "action"), f"action is required: {_quoted_list(_ACTIONS)}")
    action = _enum(r, raw.get("action"), (*path, "action"), _ACTIONS)
    if raw.get("http") is not None:
        # HTTP match: application layer policy, enforced by Calico's Envoy-based L7 proxy,
        # not by Felix's rules: sekisho cannot enforce or explain it, so it refuses it.
        r.error(
            (*path, "http"),
            "HTTP matches need Calico's application layer policy (an L7 proxy); sekisho "
            "enforces L3/L4 only: remove http or keep this policy out of sekisho",
        )
    meta = mapping(r, raw.get("metadata"), (*path, "metadata"), _RULE_METADATA)
    if meta is not None:
        mapping(r, meta.get("annotations"), (*path, "metadata", "annotations"))
    ip_version: int | None = None
    if raw.get("ipVersion") is not None:
        v = raw.get("ipVersion")
        if v not in (4, 6) or isinstance(v, bool):
            r.error((*path, "ipVersion"), f"ipVersion must be 4 or 6, got {describe(v)}")
        else:
            ip_version = v
    proto = _protocol(r, raw.get("protocol"), (*path, "protocol"))
    not_proto = _protocol(r, raw.get("notProtocol"), (*path, "notProtocol"))
    icmp = _icmp(r, raw.get("icmp"), (*path, "icmp"))
    not_icmp = _icmp(r, raw.get("notICMP"), (*path, "notICMP"))
    for key, m in (("icmp", icmp), ("notICMP", not_icmp)):
        if m is not None and proto not in (1, 58):
            # "rules that specify ICMP fields must set protocol to ICMP"
            r.error(
                (*path, key), "rules that specify ICMP fields must set protocol to ICMP or ICMPv6"
            )
    for number, version in ((1, 4), (58, 6)):
        if (proto == number or not_proto == number) and ip_version not in (None, version):
            name = "ICMP" if number == 1 else "ICMPv6"
            r.error((*path, "ipVersion"), f"must set ipVersion to {version} with protocol {name}")
    src = _entity(r, raw.get("source"), (*path, "source"), proto, ip_version)
    dst = _entity(r, raw.get("destination"), (*path, "destination"), proto, ip_version)
    if src is not None and dst is not None:
        families = {n.version for n in (*src.nets, *src.not_nets, *dst.nets, *dst.not_nets)}
        if len(families) > 1:
            r.error(path, "rule contains both IPv4 and IPv6 CIDRs")
    if len(r.sink) != before or action is None or src is None or dst is None:
        return None
    return CalicoRule(
        action=action,  # type: ignore[arg-type]
        protocol=proto,
        not_protocol=not_proto,
        icmp=icmp,
        not_icmp=not_icmp,
        ip_version=ip_version,
        source=src,
        destination=dst,
    )


def _nets(r: Report, value: Any, path: FieldPath, ip_version: int | None) -> list[IPNetwork]:
    out: list[IPNetwork] = []
    for i, item in enumerate(sequence(r, value, path) or ()):
        p = (*path, i)
        text = string(r, item, p)
        if text is None:
            continue
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            r.error(p, f'"{text}" is not a CIDR or an IP address')
            continue
        # EntityRule nets: validate:"omitempty,dive,net": a correctly masked network (an
        # address alone means the full mask).
        if net.network_address != ipaddress.ip_interface(text).ip:
            r.error(p, f'"{text}" has host bits set: did you mean "{net}"?')
            continue
        if ip_version is not None and net.version != ip_version:
            r.error(p, f"rule IP version {ip_version} doesn't match CIDR {text}")
            continue
        out.append(net)
    return out


def _ports(r: Report, value: Any, path: FieldPath, proto: int | None) -> list[CalicoPort] | None:
    items = sequence(r, value, path)
    if not items:
        return [] if value is None or items is not None else None
    if proto not in PORT_PROTOCOLS:
        # protocolPortsMsg: "rules that specify ports must set protocol to TCP or UDP or SCTP"
        r.error(path, "rules that specify ports must set protocol to TCP, UDP, SCTP or UDPLite")
        return None
    out: list[CalicoPort] = []
    ok = True
    for i, item in enumerate(items):
        port = _port(r, item, (*path, i))
        if port is None:
            ok = False
        else:
            out.append(port)
    return out if ok else None


def _port(r: Report, value: Any, path: FieldPath) -> CalicoPort | None:
    # numorstring.Port: a number, "min:max", or a named port.
    if isinstance(value, bool) or not isinstance(value, int | str):
        r.error(
            path, f'expected a port number, a range "a:b" or a port name, got {describe(value)}'
        )
        return None
    if isinstance(value, int) or value.isdigit():
        n = int(value)
        if not 1 <= n <= 65535:
            r.error(path, f"port {n} is not between 1 and 65535")
            return None
        return CalicoPort(n, n)
    m = _RANGE.match(value)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
        if not (1 <= lo <= 65535 and 1 <= hi <= 65535):
            r.error(path, f'port range "{value}": port numbers must be between 1 and 65535')
            return None
        if lo > hi:
            r.error(path, f'port range "{value}" is invalid: {lo} is greater than {hi}')
            return None
        return CalicoPort(lo, hi)
    err = names.port_name_error(value)
    if err:
        r.error(path, f'"{value}" is not a port number, a range "a:b" or a port name: {err}')
        return None
    return CalicoPort(name=value)


def _entity(
    r: Report, value: Any, path: FieldPath, proto: int | None, ip_version: int | None
) -> EntityRule | None:
    before = len(r.sink)
    raw = mapping(r, value, path, _ENTITY)
    if raw is None:
        return None if value is not None else EntityRule()
    if raw.get("services") is not None:
        r.error(
            (*path, "services"),
            "services peers are not supported by sekisho (it reads no Service or "
            "EndpointSlice objects): select the pods by label instead",
        )
    nets = _nets(r, raw.get("nets"), (*path, "nets"), ip_version)
    not_nets = _nets(r, raw.get("notNets"), (*path, "notNets"), ip_version)
    sel = _selector(r, raw.get("selector"), (*path, "selector")) if raw.get("selector") else None
    not_sel = (
        _selector(r, raw.get("notSelector"), (*path, "notSelector"))
        if raw.get("notSelector")
        else None
    )
    ns_sel = (
        _selector(r, raw.get("namespaceSelector"), (*path, "namespaceSelector"), allow_global=True)
        if raw.get("namespaceSelector")
        else None
    )
    sa: ServiceAccountMatch | None = None
    sa_raw = mapping(r, raw.get("serviceAccounts"), (*path, "serviceAccounts"), _SA_MATCH)
    if sa_raw is not None:
        names_raw = sequence(r, sa_raw.get("names"), (*path, "serviceAccounts", "names")) or []
        sa_names: list[str] = []
        for i, n in enumerate(names_raw):
            text = string(r, n, (*path, "serviceAccounts", "names", i))
            if text is not None:
                sa_names.append(text)
        sa_sel = (
            _selector(r, sa_raw.get("selector"), (*path, "serviceAccounts", "selector"))
            if sa_raw.get("selector")
            else None
        )
        sa = ServiceAccountMatch(tuple(sa_names), sa_sel)
    ports = _ports(r, raw.get("ports"), (*path, "ports"), proto)
    not_ports = _ports(r, raw.get("notPorts"), (*path, "notPorts"), proto)
    if len(r.sink) != before or ports is None or not_ports is None:
        return None
    return EntityRule(
        nets=tuple(nets),
        not_nets=tuple(not_nets),
        selector=sel,
        not_selector=not_sel,
        namespace_selector=ns_sel,
        service_accounts=sa,
        ports=tuple(ports),
        not_ports=tuple(not_ports),
    )


def _staged_kubernetes(
    r: Report, value: Any, name: str, namespace: str, source: Source
) -> StagedKubernetesPolicy | None:
    from sekisho.model.policy import network_policy

    path: FieldPath = ("spec",)
    spec = mapping(r, value, path, _STAGED_K8S_SPEC)
    if spec is None:
        if value is not None:
            return None
        spec = {}
    action = _staged_action(r, spec.get("stagedAction"), (*path, "stagedAction"))
    rest = {k: v for k, v in spec.items() if k != "stagedAction"}
    if action == "Delete":
        for k in sorted(k for k, v in rest.items() if v):
            r.error((*path, k), "must be left out when stagedAction is Delete")
    before = len(r.sink)
    policy = network_policy(r, rest, namespace, name, source)
    if policy is None or action is None or len(r.sink) != before:
        return None
    return StagedKubernetesPolicy(policy, action)


def _tier(r: Report, value: Any, name: str, source: Source) -> CalicoTier | None:
    path: FieldPath = ("spec",)
    spec = mapping(r, value, path, _TIER_SPEC) or {}
    before = len(r.sink)
    # "Tiers must have simple (no dot) names, since they appear as sub-components of other
    # names."
    if not _TIER_NAME.match(name) or len(name) > 63:
        r.error(
            ("metadata", "name"),
            f'"{name}": a tier name is a DNS-1123 label (lower-case alphanumeric characters '
            "or '-', at most 63, no '.')",
        )
    order = _number(r, spec.get("order"), (*path, "order"))
    builtin = BUILTIN_TIER_ORDERS.get(name)
    if builtin is not None and order != builtin:
        # "default tier order must be 1e+06" (and the kube-admin/kube-baseline tiers')
        r.error((*path, "order"), f"the {name} tier's order must be {builtin:g}")
    action: Literal["Deny", "Pass"] = "Deny"
    if spec.get("defaultAction") is not None:
        # defaultAction: "Deny" (the default) or "Pass".
        got = _enum(r, spec.get("defaultAction"), (*path, "defaultAction"), ("Deny", "Pass"))
        action = got or "Deny"  # type: ignore[assignment]
    if len(r.sink) != before:
        return None
    return CalicoTier(name, order, action, source)


def _network_set(
    r: Report,
    kind: str,
    value: Any,
    name: str,
    namespace: str,
    obj_labels: dict[str, str],
    source: Source,
) -> NetworkSet | None:
    path: FieldPath = ("spec",)
    spec = mapping(r, value, path, _NETSET_SPEC) or {}
    before = len(r.sink)
    if "projectcalico.org/namespace" in obj_labels:
        # "The namespace label should only be used when mapping the real namespace through to
        # the v1 datamodel. It shouldn't appear in the v3 datamodel."
        r.error(
            ("metadata", "labels", "projectcalico.org/namespace"),
            "projectcalico.org/namespace is not a valid label name (Calico sets it)",
        )
    if spec.get("allowedEgressDomains") is not None:
        r.error(
            (*path, "allowedEgressDomains"),
            "domain names (a Calico Enterprise field) are not resolved by sekisho",
        )
    nets: list[IPNetwork] = []
    for i, item in enumerate(sequence(r, spec.get("nets"), (*path, "nets")) or ()):
        text = string(r, item, (*path, "nets", i))
        if text is None:
            continue
        try:
            # validate:"cidr": "Validates an arbitrary CIDR (does not need to be correctly
            # masked). Also accepts an IP address without a mask."
            nets.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            r.error((*path, "nets", i), f'"{text}" is not a CIDR or an IP address')
    if len(r.sink) != before:
        return None
    return NetworkSet(
        name,
        namespace if kind == "NetworkSet" else None,
        dict(obj_labels),
        tuple(sorted(set(nets), key=lambda n: (n.version, n.network_address, n.prefixlen))),
        source,
    )


def _host_endpoint(
    r: Report, value: Any, name: str, obj_labels: dict[str, str], source: Source
) -> HostEndpoint | None:
    path: FieldPath = ("spec",)
    spec = mapping(r, value, path, _HEP_SPEC) or {}
    before = len(r.sink)
    node = string(r, spec.get("node"), (*path, "node"))
    if not node:
        r.error((*path, "node"), "no node has been specified")
    iface = string(r, spec.get("interfaceName"), (*path, "interfaceName"))
    if iface and iface != "*" and not _INTERFACE.match(iface):
        r.error(
            (*path, "interfaceName"),
            f'"{iface}" is not an interface name (1-15 of a-z, A-Z, 0-9, "_", "." or "-") or "*"',
        )
    ips: list[IPAddress] = []
    for i, item in enumerate(sequence(r, spec.get("expectedIPs"), (*path, "expectedIPs")) or ()):
        ip = ip_address(r, item, (*path, "expectedIPs", i))
        if ip is not None:
            ips.append(ip)
    if not iface and not spec.get("expectedIPs"):
        r.error((*path, "interfaceName"), "no interface or expected IPs have been specified")
    profiles: list[str] = []
    for i, item in enumerate(sequence(r, spec.get("profiles"), (*path, "profiles")) or ()):
        text = string(r, item, (*path, "profiles", i))
        if text is not None and text != DEFAULT_ALLOW_PROFILE:
            # A profile's rules come after every tier; sekisho reads no Profile objects,
            # so it refuses to guess what one would allow.
            r.error(
                (*path, "profiles", i),
                f'profile "{text}" is not read by sekisho: only {DEFAULT_ALLOW_PROFILE} '
                "(allow everything) is known; leave profiles out to deny what no policy allows",
            )
        elif text is not None:
            profiles.append(text)
    ports: list[EndpointPort] = []
    for i, item in enumerate(sequence(r, spec.get("ports"), (*path, "ports")) or ()):
        p_path = (*path, "ports", i)
        raw = mapping(r, item, p_path, _HEP_PORT)
        if raw is None:
            continue
        p_name = string(r, raw.get("name"), (*p_path, "name"))
        err = names.port_name_error(p_name) if p_name else "a port name is required"
        if err:
            r.error((*p_path, "name"), err)
        proto = _enum(r, raw.get("protocol"), (*p_path, "protocol"), ("TCP", "UDP", "SCTP"))
        number = raw.get("port")
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
            r.error((*p_path, "port"), f"expected a port 1-65535, got {describe(number)}")
            continue
        if p_name and proto:
            ports.append(EndpointPort(p_name, proto, number))
    if len(r.sink) != before or not node:
        return None
    return HostEndpoint(
        name,
        node,
        iface or None,
        tuple(ips),
        dict(obj_labels),
        tuple(profiles),
        tuple(ports),
        source,
    )


# -------------------------------------------------------------------- across the objects


def finish(drafts: CalicoDrafts, node_names: set[str], sink: list[Issue]) -> CalicoResources:
    """The checks that need every object: tiers exist, names are unique, nodes exist."""
    del sink  # problems go to each object's own report
    tiers: dict[str, CalicoTier] = {}
    for tier, _r in drafts.tiers:
        tiers[tier.name] = tier
    known = set(tiers) | set(BUILTIN_TIER_ORDERS)
    policies: list[CalicoPolicy] = []
    seen: dict[tuple[str, str | None, str, bool], Source] = {}
    for p, r in drafts.policies:
        if p.tier not in known:
            # Calico refuses a policy in a tier that does not exist.
            r.error(
                ("spec", "tier"),
                f'tier "{p.tier}" is not defined (tiers: {", ".join(sorted(known))}): '
                "add a Tier object",
            )
            continue
        glob = p.namespace is None
        key = (
            "global" if glob else "namespaced",
            p.namespace,
            p.tiered_name,
            p.staged_action is not None,
        )
        first = seen.get(key)
        if first is not None:
            r.error(
                ("metadata", "name"),
                f'"{p.name}" is the same policy as the one defined at {first} '
                f"(Calico names it {p.tiered_name})",
            )
            continue
        seen[key] = p.source
        policies.append(p)
    heps: list[HostEndpoint] = []
    for hep, r in drafts.host_endpoints:
        if node_names and hep.node not in node_names:
            r.error(
                ("spec", "node"),
                f'node "{hep.node}" is not defined (nodes: {", ".join(sorted(node_names))})',
            )
            continue
        heps.append(hep)
    return CalicoResources(
        tiers=tuple(sorted(tiers.values(), key=lambda t: t.name)),
        policies=tuple(sorted(policies, key=lambda p: (p.kind, p.namespace or "", p.tiered_name))),
        staged_kubernetes=tuple(
            sorted(drafts.staged_kubernetes, key=lambda s: (s.policy.namespace, s.policy.name))
        ),
        network_sets=tuple(sorted(drafts.network_sets, key=lambda n: (n.namespace or "", n.name))),
        host_endpoints=tuple(sorted(heps, key=lambda h: h.name)),
        service_accounts=tuple(
            sorted(drafts.service_accounts, key=lambda s: (s.namespace, s.name))
        ),
    )
