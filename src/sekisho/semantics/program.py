"""The policy program: one compiled, immutable form of every policy kind, read by every consumer.

This is the model Felix evaluates (``felix/calc`` builds it, ``felix/rules``
renders it), and the one home of the walk's meaning:

* For each direction, **tiers** in order (``order`` ascending, none last, then
  name). A tier with no policy that applies to the endpoint (for the direction)
  is skipped.
* Inside a tier, the **policies** that select the endpoint, by ``order`` (none
  last), then by key.
* Inside a policy, the **rules** in order; the first rule that matches decides
  with its action: ``allow`` (accepted, the walk ends), ``deny`` (dropped, the
  walk ends), ``pass`` (on to the next tier), ``log`` (recorded, the walk goes on).
* A tier whose policies select the endpoint but whose rules all miss ends with
  its default action: ``deny`` (Calico's "drop if no policies passed packet") or
  ``pass``.
* After the last tier, or when no tier applies: the endpoint's profile, which
  allows (Kubernetes namespaces' profiles allow everything).

At a host endpoint, Felix walks **three stages** of policies, each with the rules
above except where said (``felix/rules/static.go``, ``endpoints.go``); a workload
endpoint meets only the normal one. Calico's documentation: "Policy for host
endpoints can be marked as ``doNotTrack``. This means that rules in that policy
should be applied before any data plane connection tracking, and that packets
allowed by these rules should not be tracked"; "``preDNAT`` ... means that rules in
that policy should be applied before any DNAT"; "Untracked policies and pre-DNAT
policies must have applyOnForward set to true because they apply to all forwarded
traffic".

1. **untracked** (``doNotTrack``; raw table, PREROUTING for a packet arriving on the
   endpoint, OUTPUT for one the host sends out of it): ``allow`` accepts the packet
   untracked (the accept mark, NOTRACK) and the endpoint's later stages are skipped
   ("The ingress host endpoint may have already accepted this packet in the raw or
   mangle table. In that case, accept the packet immediately here too"); ``deny``
   drops it. A tier whose rules all miss does not drop: "For untracked and pre-DNAT
   rules, we don't do that because there may be normal rules still to be applied to
   the packet in the filter table"; no profile. Traffic from a workload is not sent
   to these chains, and forwarded traffic never passes raw OUTPUT.
2. **preDNAT** (mangle PREROUTING, ingress only: "a preDNAT policy cannot have
   egress rules"): the same, for a packet arriving on the endpoint, to the host or
   forwarded.
3. **normal** (filter): the tiers above with their end actions and the profile;
   forwarded traffic meets the ``applyOnForward`` ones ("Apply forward policy for the
   incoming Host endpoint if accept bit is clear which means the packet was not
   accepted in a previous raw or pre-DNAT chain"). A workload's own policy still
   applies to a packet an earlier stage accepted.

Felix's failsafe ports come first in each stage (a failsafe packet skips the
untracked and preDNAT stages). Replies of a connection the untracked stage accepted
are not in conntrack: "there will be no conntrack state for the return packets to
match", so its return direction needs a rule of its own; each node judges the packets
it did not track by their own state (:mod:`sekisho.semantics.conntrack`). The raw
table has no conntrack check: the untracked stage sees the replies of a tracked
connection too, and the walk walks them (:func:`verdict._replies`).

Matches are on addresses, as the kernel matches them: a selector is the set of
the addresses of the entities it selects (and the nets of the network sets it
selects); a named port is the set of (address, port) of the entities that
declare it. Sets are values with a canonical key, shared by every rule that
uses them: the renderer makes one IP set per key, the matrix one boolean vector.

Policy kinds compile into this form (:mod:`sekisho.semantics.kubernetes` for
Kubernetes NetworkPolicy); consumers never read policy objects directly.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from collections.abc import Iterable, Iterator
from typing import Literal

from sekisho.model.types import UNKNOWN_SOURCE, Source
from sekisho.records import Record, set_field
from sekisho.selectors.expr import ALL, Expr

Direction = Literal["ingress", "egress"]
DIRECTIONS: tuple[Direction, Direction] = ("ingress", "egress")

Action = Literal["allow", "deny", "pass", "log"]
ACTIONS: tuple[Action, ...] = ("allow", "deny", "pass", "log")

Stage = Literal["normal", "untracked", "prednat"]
"""Where Felix evaluates a policy (see :class:`Program`): the filter table (``normal``),
the raw table before connection tracking (``untracked``: ``doNotTrack``), the mangle
table before DNAT (``prednat``: ``preDNAT``)."""

EndAction = Literal["deny", "pass"]
"""What a tier does with a packet of an endpoint it applies to when no rule decided."""

EntityKind = Literal["workload", "host", "networkset", "node"]
"""What a selector can select: pods with their own network namespace (workload
endpoints), host endpoints, network sets (labelled nets), and nodes (for the
``nodes`` peers of the cluster-wide APIs)."""

CALICO_UNIVERSE: frozenset[EntityKind] = frozenset(("workload", "host", "networkset"))
WORKLOADS: frozenset[EntityKind] = frozenset(("workload",))

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# ----------------------------------------------------------------------------- protocols

PROTOCOL_NUMBERS: dict[str, int] = {
    "ICMP": 1,
    "TCP": 6,
    "UDP": 17,
    "ICMPv6": 58,
    "SCTP": 132,
    "UDPLite": 136,
}
"""Protocol names Calico accepts, and their IANA numbers (any number 1-255 is also accepted)."""

PORT_PROTOCOLS = frozenset((6, 17, 132, 136))
"""Protocols with ports: a rule may match ports only for these."""


EPHEMERAL_PORTS = (32768, 60999)
"""Linux's default ``ip_local_port_range``: the source port of a probe is one of these.

Linux (Documentation/networking/ip-sysctl): "ip_local_port_range - 2 INTEGERS:
Defines the local port range that is used by TCP and UDP to choose the local port.
[...] The default values are 32768 and 60999 respectively." The lab keeps the
default in every namespace, so its probes' source ports are drawn from it."""

ICMP_ECHO = {4: (8, 0), 6: (128, 0)}
"""An ICMP probe is an echo request (ICMP type 8 code 0; ICMPv6 type 128 code 0)."""

ICMP_ECHO_REPLY = {4: (0, 0), 6: (129, 0)}
"""Its reply is an echo reply (ICMP type 0 code 0; ICMPv6 type 129 code 0)."""


_PROTOCOL_NAMES = {n: name for name, n in PROTOCOL_NUMBERS.items()}


def protocol_name(number: int) -> str:
    return _PROTOCOL_NAMES.get(number) or str(number)


# ---------------------------------------------------------------------------------- sets


class SelectorSet(Record, uncompared=("description", "key"), unshown=("key",)):
    """The addresses of the entities (of ``kinds``) whose labels satisfy ``selector``,
    and the nets of the network sets it selects."""

    __slots__ = ("description", "key", "kinds", "selector")

    selector: Expr
    kinds: frozenset[EntityKind]
    description: str
    """For humans: what the set holds, in the terms of the policy that made it."""
    key: str
    """Canonical identity: equal keys hold equal addresses (one IP set, one row)."""

    def __init__(
        self, selector: Expr, kinds: frozenset[EntityKind] = CALICO_UNIVERSE, description: str = ""
    ) -> None:
        set_field(self, "selector", selector)
        set_field(self, "kinds", kinds)
        set_field(self, "description", description)
        set_field(self, "key", f"sel {','.join(sorted(kinds))} {selector.canonical()}")


class NetSet(Record, uncompared=("key",), unshown=("key",)):
    """A set of networks (``nets``, an ipBlock's ``cidr`` or its ``except`` list)."""

    __slots__ = ("key", "nets")

    nets: tuple[IPNetwork, ...]
    """Sorted, de-duplicated, as written (overlaps allowed)."""
    key: str

    def __init__(self, nets: tuple[IPNetwork, ...]) -> None:
        set_field(self, "nets", nets)
        set_field(self, "key", "nets " + ",".join(str(n) for n in nets))

    def contains(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(ip.version == n.version and ip in n for n in self.nets)

    @property
    def description(self) -> str:
        return ", ".join(str(n) for n in self.nets)


def net_set(nets: tuple[IPNetwork, ...] | list[IPNetwork]) -> NetSet:
    return _net_set(tuple(nets))


@functools.lru_cache(maxsize=4096)
def _net_set(nets: tuple[IPNetwork, ...]) -> NetSet:
    # The same ipBlocks recur across policies; a net's text (the set's key) costs more
    # than finding the set made for it before.
    return NetSet(
        tuple(sorted(set(nets), key=lambda n: (n.version, n.network_address, n.prefixlen)))
    )


class NamedPortSet(Record, uncompared=("key",), unshown=("key",)):
    """(address, port) of every entity in ``within`` that declares a port ``name``/``protocol``."""

    __slots__ = ("key", "name", "protocol", "within")

    name: str
    protocol: int
    within: SelectorSet | None
    """The rule's selector on that side (None: every workload)."""
    key: str

    def __init__(self, name: str, protocol: int, within: SelectorSet | None = None) -> None:
        set_field(self, "name", name)
        set_field(self, "protocol", protocol)
        set_field(self, "within", within)
        scope = within.key if within is not None else "all"
        set_field(self, "key", f"port {protocol_name(protocol)} {name} in {scope}")


class PortMatch(Record):
    """Ports: numeric ranges (inclusive) or named ports; matches if any one does."""

    __slots__ = ("named", "ranges")

    ranges: tuple[tuple[int, int], ...]
    named: tuple[NamedPortSet, ...]

    def __init__(
        self, ranges: tuple[tuple[int, int], ...] = (), named: tuple[NamedPortSet, ...] = ()
    ) -> None:
        set_field(self, "ranges", ranges)
        set_field(self, "named", named)

    def __str__(self) -> str:
        parts = [str(a) if a == b else f"{a}-{b}" for a, b in self.ranges]
        parts += [n.name for n in self.named]
        return ",".join(parts)


class EntityMatch(Record):
    """One side of a rule (source or destination); every given criterion must match."""

    __slots__ = ("nets", "not_nets", "not_ports", "not_selector", "ports", "selector")

    nets: NetSet | None
    not_nets: NetSet | None
    selector: SelectorSet | None
    not_selector: SelectorSet | None
    ports: PortMatch | None
    not_ports: PortMatch | None

    def __init__(
        self,
        nets: NetSet | None = None,
        not_nets: NetSet | None = None,
        selector: SelectorSet | None = None,
        not_selector: SelectorSet | None = None,
        ports: PortMatch | None = None,
        not_ports: PortMatch | None = None,
    ) -> None:
        set_field(self, "nets", nets)
        set_field(self, "not_nets", not_nets)
        set_field(self, "selector", selector)
        set_field(self, "not_selector", not_selector)
        set_field(self, "ports", ports)
        set_field(self, "not_ports", not_ports)

    @property
    def is_any(self) -> bool:
        return self == ANY_ENTITY


ANY_ENTITY = EntityMatch()


class IcmpMatch(Record):
    """An ICMP type, and code if given, that a rule matches (or excludes)."""

    __slots__ = ("code", "type")

    type: int
    code: int | None

    def __init__(self, type: int, code: int | None = None) -> None:
        set_field(self, "type", type)
        set_field(self, "code", code)

    def __str__(self) -> str:
        return f"type {self.type}" + (f" code {self.code}" if self.code is not None else "")


def source_ports_cover(pm: PortMatch, declared: Iterable[int] = ()) -> bool | None:
    """Whether every ephemeral source port is in ``pm`` (True), none is (False), or it
    depends on the port the kernel picks (None: such a rule never matches a probe, and
    the explanation says why).

    ``declared``: every number an endpoint (a workload or a host endpoint) declares
    under one of ``pm``'s names, for its protocol. A named source port holds (address,
    port) of the endpoints that declare it, and a probe's source port is one the
    kernel picks from the ephemeral range, so a name declared only outside that range
    never holds it (service ports, the usual case, are below 32768)."""
    lo, hi = EPHEMERAL_PORTS
    if any(a <= lo and hi <= b for a, b in pm.ranges):
        return True
    outside = all(b < lo or a > hi for a, b in pm.ranges)
    if outside and (not pm.named or all(not lo <= p <= hi for p in declared)):
        return False
    return None


# --------------------------------------------------------------------------------- rules


class Rule(Record):
    """One rule of a policy direction: a match and an action."""

    __slots__ = (
        "action",
        "dst",
        "icmp",
        "ip_version",
        "not_icmp",
        "not_protocol",
        "origin",
        "protocol",
        "src",
    )

    action: Action
    origin: str
    """Where it comes from, in the source object's own terms (``ingress rule 0 peer 1``)."""
    protocol: int | None
    not_protocol: int | None
    icmp: IcmpMatch | None
    not_icmp: IcmpMatch | None
    ip_version: int | None
    src: EntityMatch
    dst: EntityMatch

    def __init__(
        self,
        action: Action,
        origin: str,
        protocol: int | None = None,
        not_protocol: int | None = None,
        icmp: IcmpMatch | None = None,
        not_icmp: IcmpMatch | None = None,
        ip_version: int | None = None,
        src: EntityMatch = ANY_ENTITY,
        dst: EntityMatch = ANY_ENTITY,
    ) -> None:
        set_field(self, "action", action)
        set_field(self, "origin", origin)
        set_field(self, "protocol", protocol)
        set_field(self, "not_protocol", not_protocol)
        set_field(self, "icmp", icmp)
        set_field(self, "not_icmp", not_icmp)
        set_field(self, "ip_version", ip_version)
        set_field(self, "src", src)
        set_field(self, "dst", dst)

    def protocol_fails(
        self, proto: int, family: int, echo: bool, reply: bool = False
    ) -> tuple[str, ...]:
        """Which protocol-level criteria (``ip_version``, ``protocol``, ``not_protocol``,
        ``icmp``, ``not_icmp``) miss a packet of protocol number ``proto`` and IP
        ``family``; empty when they all match. ``echo``: the packet is an ICMP echo
        request (what probes send), or with ``reply`` its echo reply."""
        out: tuple[str, ...] = ()
        if self.ip_version is not None and family != self.ip_version:
            out += ("ip_version",)
        if self.protocol is not None and proto != self.protocol:
            out += ("protocol",)
        if self.not_protocol is not None and proto == self.not_protocol:
            out += ("not_protocol",)
        if self.icmp is not None or self.not_icmp is not None:
            t, c = (ICMP_ECHO_REPLY if reply else ICMP_ECHO)[family]
            for m, negated, what in ((self.icmp, False, "icmp"), (self.not_icmp, True, "not_icmp")):
                if m is None:
                    continue
                hit = echo and m.type == t and (m.code is None or m.code == c)
                if hit == negated:
                    out += (what,)
        return out

    def protocol_misses(
        self, proto: int, family: int, echo: bool, reply: bool = False
    ) -> list[str]:
        """:meth:`protocol_fails` in words."""
        name = protocol_name(proto)
        what = ("an echo reply" if reply else "an echo request") if echo else name
        words = {
            "ip_version": f"the flow is IPv{family}, the rule IPv{self.ip_version}",
            "protocol": f"protocol {name} is not {protocol_name(self.protocol or 0)}",
            "not_protocol": f"{name} is the excluded protocol {protocol_name(self.not_protocol or 0)}",
            "icmp": f"{what} is not ICMP {self.icmp}",
            "not_icmp": f"{what} is the excluded ICMP {self.not_icmp}",
        }
        return [words[f] for f in self.protocol_fails(proto, family, echo, reply)]

    def sets(self) -> Iterator[SelectorSet | NetSet | NamedPortSet]:
        """Every set this rule refers to."""
        for side in (self.src, self.dst):
            for s in (side.nets, side.not_nets, side.selector, side.not_selector):
                if s is not None:
                    yield s
            for pm in (side.ports, side.not_ports):
                if pm is not None:
                    yield from pm.named


class Policy(Record, uncompared=("source",)):
    """One policy of one tier: whom it applies to, and its rules per direction."""

    __slots__ = (
        "egress",
        "forward",
        "ingress",
        "key",
        "kind",
        "label",
        "namespace",
        "order",
        "selector",
        "source",
        "stage",
        "staged",
        "stages",
        "tier",
        "types",
    )

    key: str
    """Unique in the program (kind tag, namespace, name): names chains, orders ties."""
    label: str
    """How a person names it (``dev/allow-web`` for a Kubernetes NetworkPolicy)."""
    kind: str
    """The source kind, e.g. ``NetworkPolicy`` (networking.k8s.io/v1)."""
    tier: str
    order: float | None
    selector: SelectorSet
    """The endpoints it applies to."""
    types: frozenset[Direction]
    """Directions it applies to (an endpoint it selects is policed there)."""
    ingress: tuple[Rule, ...]
    egress: tuple[Rule, ...]
    namespace: str | None
    staged: Literal["set", "delete"] | None
    """A staged policy is never enforced: it previews replacing (``set``) or
    deleting (``delete``) the enforced policy of key :attr:`stages`."""
    stages: str | None
    forward: bool
    """Also polices traffic forwarded through a host endpoint it selects (Calico's
    ``applyOnForward``; preDNAT and doNotTrack policies have it too)."""
    stage: Stage
    """``untracked`` (doNotTrack) and ``prednat`` (preDNAT) policies are kept out of
    :attr:`Program.tiers`: they are walked in their own stages, at host endpoints only."""
    source: Source

    def __init__(
        self,
        key: str,
        label: str,
        kind: str,
        tier: str,
        order: float | None,
        selector: SelectorSet,
        types: frozenset[Direction],
        ingress: tuple[Rule, ...] = (),
        egress: tuple[Rule, ...] = (),
        namespace: str | None = None,
        staged: Literal["set", "delete"] | None = None,
        stages: str | None = None,
        forward: bool = False,
        stage: Stage = "normal",
        source: Source = UNKNOWN_SOURCE,
    ) -> None:
        set_field(self, "key", key)
        set_field(self, "label", label)
        set_field(self, "kind", kind)
        set_field(self, "tier", tier)
        set_field(self, "order", order)
        set_field(self, "selector", selector)
        set_field(self, "types", types)
        set_field(self, "ingress", ingress)
        set_field(self, "egress", egress)
        set_field(self, "namespace", namespace)
        set_field(self, "staged", staged)
        set_field(self, "stages", stages)
        set_field(self, "forward", forward)
        set_field(self, "stage", stage)
        set_field(self, "source", source)

    def rules(self, direction: Direction) -> tuple[Rule, ...]:
        return self.ingress if direction == "ingress" else self.egress

    @property
    def sort_key(self) -> tuple[float, str]:
        # "If the order field is omitted, the policy is applied last"; ties by name.
        return (math.inf if self.order is None else self.order, self.key)


class Tier(Record):
    """Ordered policies and what happens when none of them decides."""

    __slots__ = ("default_action", "name", "order", "policies")

    name: str
    order: float | None
    default_action: EndAction
    policies: tuple[Policy, ...]
    """Sorted by :attr:`Policy.sort_key`."""

    def __init__(
        self,
        name: str,
        order: float | None,
        default_action: EndAction = "deny",
        policies: tuple[Policy, ...] = (),
    ) -> None:
        set_field(self, "name", name)
        set_field(self, "order", order)
        set_field(self, "default_action", default_action)
        set_field(self, "policies", policies)

    @property
    def sort_key(self) -> tuple[float, str]:
        return (math.inf if self.order is None else self.order, self.name)


DEFAULT_TIER = "default"
DEFAULT_TIER_ORDER = 1_000_000.0
"""Calico's default tier (where Kubernetes NetworkPolicies live) has order 1,000,000."""

KUBE_ADMIN_TIER = "kube-admin"
KUBE_ADMIN_TIER_ORDER = 1_000.0
KUBE_BASELINE_TIER = "kube-baseline"
KUBE_BASELINE_TIER_ORDER = 10_000_000.0
"""Calico's tiers for the network-policy-api's cluster-wide policies, before and after
the default tier (``apiv3.KubeAdminTierOrder`` 1K, ``KubeBaselineTierOrder`` 10M);
both end with Pass."""

BUILTIN_TIERS: dict[str, tuple[float, EndAction]] = {
    KUBE_ADMIN_TIER: (KUBE_ADMIN_TIER_ORDER, "pass"),
    DEFAULT_TIER: (DEFAULT_TIER_ORDER, "deny"),
    KUBE_BASELINE_TIER: (KUBE_BASELINE_TIER_ORDER, "pass"),
}
"""The tiers Calico always has: name -> (order, default action)."""


class Program(Record):
    """The whole ordered program; build with :func:`build_program`."""

    __slots__ = ("notes", "pre_dnat", "staged", "tiers", "untracked")

    tiers: tuple[Tier, ...]
    staged: tuple[Policy, ...]
    """Staged policies, kept out of :attr:`tiers`; see :meth:`pending`."""
    notes: tuple[str, ...]
    """What the compilers could not express (shown by every consumer)."""
    untracked: tuple[Tier, ...]
    """The ``doNotTrack`` policies, by tier: the first stage at a host endpoint."""
    pre_dnat: tuple[Tier, ...]
    """The ``preDNAT`` policies, by tier: the second stage, ingress at a host endpoint."""

    def __init__(
        self,
        tiers: tuple[Tier, ...] = (),
        staged: tuple[Policy, ...] = (),
        notes: tuple[str, ...] = (),
        untracked: tuple[Tier, ...] = (),
        pre_dnat: tuple[Tier, ...] = (),
    ) -> None:
        set_field(self, "tiers", tiers)
        set_field(self, "staged", staged)
        set_field(self, "notes", notes)
        set_field(self, "untracked", untracked)
        set_field(self, "pre_dnat", pre_dnat)

    def policies(self) -> Iterator[Policy]:
        """The normal policies (:attr:`tiers`): not the untracked and preDNAT stages."""
        for tier in self.tiers:
            yield from tier.policies

    def all_policies(self) -> Iterator[Policy]:
        """Every enforced policy, of every stage."""
        for tiers in (self.tiers, self.untracked, self.pre_dnat):
            for tier in tiers:
                yield from tier.policies

    def stage(self, stage: Stage) -> Program:
        """The program of one stage's policies (``tiers`` holds them)."""
        if stage == "normal":
            return self
        return Program(self.untracked if stage == "untracked" else self.pre_dnat, notes=self.notes)

    @property
    def has_stages(self) -> bool:
        return bool(self.untracked or self.pre_dnat)

    def policy(self, key: str) -> Policy | None:
        for p in self.all_policies():
            if p.key == key:
                return p
        return None

    def forwarded(self) -> Program:
        """The program of forwarded traffic at host endpoints: the ``forward`` policies."""
        return build_program(
            [p for p in self.policies() if p.forward], list(self.tiers), notes=self.notes
        )

    def pending(self) -> Program:
        """The program as if every staged policy were applied (Calico's staged preview)."""
        if not self.staged:
            return self
        removed = {s.stages for s in self.staged if s.stages is not None}
        added = [
            Policy(
                key=s.stages or s.key,
                label=s.label,
                kind=s.kind,
                tier=s.tier,
                order=s.order,
                selector=s.selector,
                types=s.types,
                ingress=s.ingress,
                egress=s.egress,
                namespace=s.namespace,
                forward=s.forward,
                stage=s.stage,
                source=s.source,
            )
            for s in self.staged
            if s.staged == "set"
        ]
        kept = [p for p in self.all_policies() if p.key not in removed]
        tiers = {t.name: t for t in self.tiers}
        return build_program(kept + added, list(tiers.values()), notes=self.notes)


def build_program(
    policies: list[Policy],
    tiers: list[Tier],
    *,
    staged: list[Policy] | None = None,
    notes: tuple[str, ...] = (),
) -> Program:
    """Sort policies into their tiers (tiers named by a policy but not given get the defaults),
    each stage apart (:attr:`Policy.stage`)."""

    def of(stage: Stage) -> tuple[Tier, ...]:
        return _sort_tiers([p for p in policies if p.stage == stage], tiers)

    untracked, pre_dnat = of("untracked"), of("prednat")
    return Program(
        of("normal"),
        tuple(staged or ()),
        notes,
        tuple(t for t in untracked if t.policies),
        tuple(t for t in pre_dnat if t.policies),
    )


def _sort_tiers(policies: list[Policy], tiers: list[Tier]) -> tuple[Tier, ...]:
    by_name: dict[str, Tier] = {t.name: t for t in tiers}
    groups: dict[str, list[Policy]] = {}
    for p in policies:
        groups.setdefault(p.tier, []).append(p)
        if p.tier not in by_name:
            builtin = BUILTIN_TIERS.get(p.tier)
            if builtin is not None:
                by_name[p.tier] = Tier(p.tier, builtin[0], builtin[1])
            else:
                by_name[p.tier] = Tier(p.tier, None)
    out = [
        Tier(t.name, t.order, t.default_action, tuple(sorted(groups.get(t.name, ()), key=_pkey)))
        for t in by_name.values()
    ]
    out.sort(key=lambda t: t.sort_key)
    return tuple(out)


def _pkey(p: Policy) -> tuple[float, str]:
    return p.sort_key


EVERYTHING = SelectorSet(ALL)
