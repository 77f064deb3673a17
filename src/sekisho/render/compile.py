"""From the policy program to backend-neutral rules: IP sets and their members, policy chains.

The renderer reads the compiled :class:`~sekisho.semantics.program.Program` and
nothing else (plus the addresses of the entities its sets hold). Each set of the
program (a :class:`SelectorSet`, a :class:`NetSet`, a :class:`NamedPortSet`)
becomes one :class:`SetDef`, named by the set's canonical key, so every rule
that uses it (in any policy) shares one IP set. A policy direction becomes a
tuple of :class:`PolicyRule`: a match and the rule's action, as Felix renders
them (``felix/rules/policy.go``): allow sets the accept mark and returns, pass
sets the pass mark and returns, deny drops, log logs and goes on.

A match the kernel cannot say in one rule is split the way the program's OR
reads: a port list is "any one of" its numeric ranges (at most 15 multiport
slots per rule) and its named ports, so a rule with several such alternatives
becomes one rendered rule per alternative, in a row, with the same action
(first match decides, so the row decides as the program rule does; a log rule
may log once per alternative that matches). Negations are ANDed in one rule.

Both IP families are policed, each by its own rules and sets, as Felix renders
one ruleset per family: a rule is compiled once per family (``family=4`` or
``6``). A rule for the other family only (``ipVersion``), or an ICMP type match
of the other family's ICMP, is left out; a set holds the addresses and nets of
both families and each backend writes one set per family from it; a positive
match on a net set with no net of the family never matches, so its rule is left
out of that family; a negated one is no constraint there.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import operator
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from operator import itemgetter
from typing import Any, Literal, cast

from sekisho.selectors.expr import matches
from sekisho.semantics.program import (
    PORT_PROTOCOLS,
    PROTOCOL_NUMBERS,
    Action,
    Direction,
    EntityMatch,
    IcmpMatch,
    NamedPortSet,
    NetSet,
    Policy,
    PortMatch,
    Rule,
    SelectorSet,
    protocol_name,
)
from sekisho.semantics.universe import Entity

__all__ = [
    "DIRECTIONS",
    "FAMILIES",
    "MULTIPORT_MAX",
    "Direction",
    "Family",
    "Match",
    "Member",
    "PolicyRule",
    "SetDef",
    "compile_rules",
    "member_texts",
    "networks",
]

DIRECTIONS: tuple[Direction, Direction] = ("ingress", "egress")

IPv4Net = ipaddress.IPv4Network
IPv4 = ipaddress.IPv4Address
IPv6Net = ipaddress.IPv6Network
IPv6 = ipaddress.IPv6Address
Address = IPv4 | IPv6
Network = IPv4Net | IPv6Net
Member = Address | Network | tuple[Address, int]
"""A ``net`` set holds addresses (hosts) and networks; a ``port`` set (address, port) of one
protocol; of both families (each backend writes one set per family)."""
Family = Literal[4, 6]
FAMILIES: tuple[Family, Family] = (4, 6)

ICMP_OF: dict[int, int] = {4: PROTOCOL_NUMBERS["ICMP"], 6: PROTOCOL_NUMBERS["ICMPv6"]}
"""The ICMP of each family (an ICMP type match is about this protocol)."""

ProgramSet = SelectorSet | NetSet | NamedPortSet

MULTIPORT_MAX = 15
"""``-m multiport`` takes at most 15 ports; a range ``a:b`` counts as two."""


# --------------------------------------------------------------------------- sets


@dataclass(frozen=True, slots=True)
class SetDef:
    """One IP set: a program set, named by its canonical key (equal key => one shared set)."""

    key: str
    kind: Literal["net", "port"]
    """``net``: networks (addresses as /32, /128); ``port``: (address, port) of ``protocol``."""
    description: str
    """One line for humans: what the set holds."""
    source: ProgramSet
    protocol: str | None = None
    """Lower-case protocol name of a ``port`` set (``tcp``)."""

    @property
    def static(self) -> bool:
        """Members depend on no entity (a net set)."""
        return isinstance(self.source, NetSet)

    @property
    def selector(self) -> SelectorSet | None:
        """The selector an entity must satisfy to contribute (None: a net set, or a named
        port of every workload)."""
        s = self.source
        if isinstance(s, NamedPortSet):
            return s.within
        return s if isinstance(s, SelectorSet) else None

    def holds(self, entity: Entity, selected: bool | None = None) -> tuple[Member, ...]:
        """The members ``entity`` contributes (empty when the set does not hold it).

        ``selected``: whether the entity's labels satisfy :attr:`selector`, when the
        caller evaluated it already (over a whole table at once)."""
        s = self.source
        if isinstance(s, NamedPortSet):
            if s.within is not None:
                if entity.kind not in s.within.kinds:
                    return ()
                if selected is None:
                    selected = matches(s.within.selector, entity.labels)
                if not selected:
                    return ()
            elif entity.kind not in ("workload", "host"):
                return ()
            number = entity.named_port(s.name, protocol_name(s.protocol))
            if number is None:
                return ()
            return tuple([(ip, number) for ip in entity.ips])
        if isinstance(s, SelectorSet):
            if entity.kind not in s.kinds:
                return ()
            if selected is None:
                selected = matches(s.selector, entity.labels)
            if not selected:
                return ()
            out: list[Member] = list(entity.ips)
            out += networks(entity.nets)
            return tuple(out)
        return ()

    def static_members(self) -> tuple[Member, ...]:
        """Members of a net set: its nets."""
        assert isinstance(self.source, NetSet)
        return tuple(networks(self.source.nets))


def set_def(s: ProgramSet) -> SetDef:
    if isinstance(s, NamedPortSet):
        proto = protocol_name(s.protocol)
        within = "every pod" if s.within is None else (s.within.description or s.within.key)
        return SetDef(
            s.key,
            "port",
            f"{proto} port {s.name!r} of {within}, and its number",
            s,
            proto.lower(),
        )
    if isinstance(s, NetSet):
        return SetDef(s.key, "net", f"nets {s.description}", s)
    return SetDef(s.key, "net", s.description or s.selector.canonical(), s)


def networks(nets: Iterable[Network], family: int | None = None) -> list[Network]:
    """The networks of ``nets`` (of ``family`` only, if given), /0 as its two halves
    (ipset's hash:net refuses /0)."""
    out: list[Network] = []
    for n in nets:
        if family is None or n.version == family:
            out.extend(n.subnets(1) if n.prefixlen == 0 else (n,))
    return out


_ADDRESSES = (IPv4, IPv6)
_NETWORKS = (IPv4Net, IPv6Net)
_EXACT = frozenset((IPv4, IPv6, IPv4Net, IPv6Net))
"""Tuples, not ``A | B`` unions: a union in ``isinstance`` is built anew on every call."""


def member_family(m: Member) -> int:
    return m[0].version if isinstance(m, tuple) else m.version


def member_sort_key(m: Member) -> tuple[int, int, int]:
    if isinstance(m, _ADDRESSES):
        return (m.version, int(m), m.max_prefixlen)
    if isinstance(m, _NETWORKS):
        return (m.version, int(m.network_address), m.prefixlen)
    return (m[0].version, int(m[0]), m[1])


@cache
def address_text(ip: Address) -> str:
    """``str(ip)``, cached: the same pod IPs are printed in many sets and on every render."""
    return str(ip)


_Row = tuple[int, int, Member]
"""(address as a number, prefix length or port, member): a member with its sort key
within one family."""


def _rows(members: Iterable[Member], family: int | None) -> list[_Row]:
    """The members (of ``family``; None: all) sorted by :func:`member_sort_key`, each once.

    Exact types are tested first: this runs over every member of every set on a full
    render (tens of thousands), and ``isinstance`` and ``.version`` cost more."""
    if not isinstance(members, dict | set | frozenset):
        members = dict.fromkeys(members)
    if family is None:
        rows4, rows6 = _rows(members, 4), _rows(members, 6)
        return rows4 + rows6
    addr_t, net_t = (IPv4, IPv4Net) if family == 4 else (IPv6, IPv6Net)
    bits = 32 if family == 4 else 128
    out: list[_Row] = []
    # (No typing.cast here: a subscripted type in the loop is built on every pass.)
    for m in members:
        t = type(m)
        if t is addr_t:
            out.append((int(m), bits, m))  # type: ignore[arg-type]
        elif t is tuple:
            ip, port = m  # type: ignore[misc]
            if ip.version == family:
                out.append((int(ip), port, m))  # type: ignore[arg-type]
        elif t is net_t:
            out.append((int(m.network_address), m.prefixlen, m))  # type: ignore[union-attr]
        elif t not in _EXACT and member_family(m) == family:
            _version, a, b = member_sort_key(m)
            out.append((a, b, m))
    out.sort(key=_SORT_KEY)
    return out


_SORT_KEY = itemgetter(0, 1)


def _uncovered(rows: list[_Row]) -> list[_Row]:
    """``rows`` (sorted) with every address or network inside an earlier network left out."""
    if not any(isinstance(m, _NETWORKS) for _a, _b, m in rows):
        return rows
    out: list[_Row] = []
    cover: Network | None = None
    for row in rows:
        m = row[2]
        if isinstance(m, tuple):
            out.append(row)
            continue
        net = m if isinstance(m, _NETWORKS) else ipaddress.ip_network(m)
        if cover is not None and net.version == cover.version and net.subnet_of(cover):  # type: ignore[arg-type]
            continue
        out.append(row)
        cover = net
    return out


def disjoint(members: Iterable[Member]) -> list[Member]:
    """Sorted members with every address or network inside another network left out
    (nftables' interval sets refuse overlapping elements; ipset would keep both)."""
    return [m for _a, _b, m in _uncovered(_rows(members, None))]


_TEXTS: dict[int, dict[int, str]] = {4: {}, 6: {}}
"""Address text by family and number: the same pod IPs are printed in many sets and on
every render (a number hashes faster than an address object)."""

_ADDRESS_INT = operator.attrgetter("_ip")
"""``int(address)`` without a Python call (the sort key of plain addresses)."""


def _pair_key(m: tuple[Address, int]) -> tuple[int, int]:
    return (_ADDRESS_INT(m[0]), m[1])


def _spell(texts: dict[int, str], ip: Address) -> str:
    text = texts[_ADDRESS_INT(ip)] = str(ip)
    return text


def member_texts(members: Iterable[Member], family: int = 4) -> list[tuple[str, int | None]]:
    """Sorted, disjoint members of ``family`` as (address or network text, port or None)."""
    if isinstance(members, dict | set | frozenset):
        # The common set (pod addresses only) without a Python call per member: the
        # same order as ``member_sort_key`` gives addresses of one family.
        kind = IPv4 if family == 4 else IPv6
        plain = [m for m in members if type(m) is kind]
        pairs = cast(
            list[tuple[Address, int]],
            [m for m in members if type(m) is tuple and type(m[0]) is kind],
        )
        nets = [m for m in members if type(m) is not tuple and type(m) is not IPv4]
        if not any(member_family(m) == family for m in nets if type(m) is not IPv6):
            # texts by number: an address object hashes in Python, a number does not
            texts = _TEXTS[family]
            get = texts.get
            if not pairs:
                plain.sort(key=_ADDRESS_INT)
                return [(get(_ADDRESS_INT(m)) or _spell(texts, m), None) for m in plain]
            if not plain:  # a named port's set: (address, port) pairs only
                pairs.sort(key=_pair_key)
                return [(get(_ADDRESS_INT(a)) or _spell(texts, a), port) for a, port in pairs]
    texts = _TEXTS[family]
    out: list[tuple[str, int | None]] = []
    for a, b, m in _uncovered(_rows(members, family)):
        if isinstance(m, tuple):
            text = texts.get(a)
            if text is None:
                text = texts[a] = str(m[0])
            out.append((text, b))
        elif isinstance(m, _NETWORKS):
            out.append((str(m.network_address) if m.prefixlen == m.max_prefixlen else str(m), None))
        else:
            text = texts.get(a)
            if text is None:
                text = texts[a] = str(m)
            out.append((text, None))
    return out


def sorted_members(
    members: Iterable[Member], family: int = 4
) -> tuple[list[Any], list[str]] | None:
    """(sort keys, texts) of ``family``'s members in :func:`member_texts`' order, for the
    sets its fast paths spell (addresses only, or named-port pairs only, and no network
    of ``family``; a named-port pair's text is ``address . port``); None for others.
    :func:`move_sorted` moves such a spelling by members that came and went."""
    kind = IPv4 if family == 4 else IPv6
    plain = [m for m in members if type(m) is kind]
    pairs = cast(
        list[tuple[Address, int]],
        [m for m in members if type(m) is tuple and type(m[0]) is kind],
    )
    if plain and pairs:
        return None
    if any(
        type(m) is not tuple
        and type(m) is not IPv4
        and type(m) is not IPv6
        and member_family(m) == family
        for m in members
    ):
        return None
    texts = _TEXTS[family]
    if pairs:
        pairs.sort(key=_pair_key)
        return [_pair_key(m) for m in pairs], [
            f"{texts.get(_ADDRESS_INT(a)) or _spell(texts, a)} . {port}" for a, port in pairs
        ]
    plain.sort(key=_ADDRESS_INT)
    return [_ADDRESS_INT(m) for m in plain], [
        texts.get(_ADDRESS_INT(m)) or _spell(texts, m) for m in plain
    ]


def move_sorted(
    keys: list[Any], texts: list[str], moves: Iterable[tuple[Member, bool]], family: int
) -> bool:
    """Apply members that came (True) or went (False), in order, to a spelling of
    :func:`sorted_members` in place; False when a move does not fit it (a network of
    ``family``, a pair into addresses or the reverse, a member already there or not
    there): then spell the set again. Members of the other family are not in it."""
    kind = IPv4 if family == 4 else IPv6
    pairs = bool(keys) and type(keys[0]) is tuple
    table = _TEXTS[family]
    for m, came in moves:
        t = type(m)
        if t is tuple:
            a = m[0]  # type: ignore[index]
            if type(a) is not kind:
                if type(a) is IPv4 or type(a) is IPv6:
                    continue
                return False
            if keys and not pairs:
                return False
            pairs = True
            k: Any = (_ADDRESS_INT(a), m[1])  # type: ignore[index]
            text = f"{table.get(k[0]) or _spell(table, a)} . {m[1]}"  # type: ignore[index]
        elif t is kind:
            if pairs:
                return False
            k = _ADDRESS_INT(m)
            text = table.get(k) or _spell(table, m)  # type: ignore[arg-type]
        elif t is IPv4 or t is IPv6:
            continue
        elif member_family(m) == family:
            return False
        else:
            continue
        i = bisect_left(keys, k)
        here = i < len(keys) and keys[i] == k
        if came:
            if here:
                return False
            keys.insert(i, k)
            texts.insert(i, text)
        else:
            if not here:
                return False
            del keys[i]
            del texts[i]
        if not keys:
            pairs = False
    return True


# -------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class Match:
    """What one rendered rule matches; every criterion must hold."""

    protocol: int | None = None
    not_protocol: int | None = None
    icmp: IcmpMatch | None = None
    not_icmp: IcmpMatch | None = None
    src_sets: tuple[str, ...] = ()
    """Net set keys the source address must be in."""
    not_src_sets: tuple[str, ...] = ()
    dst_sets: tuple[str, ...] = ()
    not_dst_sets: tuple[str, ...] = ()
    src_ports: tuple[tuple[int, int], ...] = ()
    """One multiport group of inclusive source port ranges (empty: any)."""
    dst_ports: tuple[tuple[int, int], ...] = ()
    not_src_ports: tuple[tuple[tuple[int, int], ...], ...] = ()
    """Multiport groups the source port must be outside of (each at most 15 slots)."""
    not_dst_ports: tuple[tuple[tuple[int, int], ...], ...] = ()
    src_named: str | None = None
    """A named-port set key that (source address, source port) must be in."""
    dst_named: str | None = None
    not_src_named: tuple[str, ...] = ()
    not_dst_named: tuple[str, ...] = ()
    family: int | None = None
    """The IP family the rule is restricted to (``ipVersion``), else None: a backend whose
    rules meet both families says it when nothing else in the rule does."""

    @property
    def proto_name(self) -> str | None:
        return None if self.protocol is None else protocol_name(self.protocol).lower()


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One rendered rule of a policy chain: a match and the program rule's action."""

    action: Action
    match: Match
    comment: str
    """Names the policy and the program rule (its origin) and the action."""
    first: bool = True
    """The first rendered rule of its program rule (False for further alternatives)."""
    last: bool = True
    """The last rendered rule of its program rule (allow and pass return after it)."""
    index: int = 0
    """Position of its program rule in the policy direction (both families' renderings
    of one program rule share it)."""
    policy: tuple[str, str, str] = ("", "", "ingress")
    """The policy's key and label and the direction (what a Log rule's prefix names)."""


def _groups(ranges: tuple[tuple[int, int], ...]) -> list[tuple[tuple[int, int], ...]]:
    """Ranges in groups of at most 15 multiport slots (a range takes two)."""
    out: list[tuple[tuple[int, int], ...]] = []
    chunk: list[tuple[int, int]] = []
    slots = 0
    for r in sorted(set(ranges)):
        need = 1 if r[0] == r[1] else 2
        if slots + need > MULTIPORT_MAX:
            out.append(tuple(chunk))
            chunk, slots = [], 0
        chunk.append(r)
        slots += need
    if chunk:
        out.append(tuple(chunk))
    return out


def _alternatives(pm: PortMatch | None) -> list[tuple[tuple[tuple[int, int], ...], str | None]]:
    """A port match as alternatives: (one multiport group, or a named-port set key)."""
    if pm is None:
        return [((), None)]
    out: list[tuple[tuple[tuple[int, int], ...], str | None]] = [
        (g, None) for g in _groups(pm.ranges)
    ]
    out += [((), n.key) for n in pm.named]
    return out


def _nets(s: NetSet | None, family: int) -> tuple[bool, NetSet | None]:
    """(the side can match at all, the set to match if any) for a positive net match."""
    if s is None:
        return True, None
    if not networks(s.nets, family):
        return False, None
    return True, s


def compile_rule(
    policy: Policy,
    direction: Direction,
    rule: Rule,
    sets: dict[str, SetDef],
    family: Family = 4,
    index: int = 0,
) -> list[PolicyRule]:
    """One program rule as rendered rules of ``family`` (none when it can never match a
    packet of that family)."""
    if rule.ip_version is not None and rule.ip_version != family:
        return []  # a rule of the other family never matches this family's packets
    not_protocol = rule.not_protocol
    if rule.protocol is not None and not_protocol is not None:
        if rule.protocol == not_protocol:
            return []  # "protocol P and not P" never holds
        not_protocol = None  # implied by the positive protocol
    icmp_protocol = ICMP_OF[family]
    if rule.protocol == ICMP_OF[10 - family]:
        return []  # the other family's ICMP never meets this family's packets
    if (rule.icmp is not None or rule.not_icmp is not None) and rule.protocol != icmp_protocol:
        # the other family's ICMP type matches never meet this family's packets; a
        # negated ICMP match on every protocol is not something any policy kind compiles to
        if rule.protocol is not None:
            return []
        if rule.icmp is None:
            raise ValueError(f"{policy.label} {rule.origin}: an ICMP match needs protocol ICMP")
    for side in (rule.src, rule.dst):
        if (side.ports is not None or side.not_ports is not None) and (
            rule.protocol not in PORT_PROTOCOLS
        ):
            raise ValueError(f"{policy.label} {rule.origin}: ports need TCP, UDP, SCTP or UDPLite")
    sides: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for name, side in (("src", rule.src), ("dst", rule.dst)):
        ok, nets = _nets(side.nets, family)
        if not ok:
            return []  # "in one of no nets of this family" never holds
        pos: list[ProgramSet] = [s for s in (nets, side.selector) if s is not None]
        neg: list[ProgramSet] = [s for s in (side.not_selector,) if s is not None]
        if side.not_nets is not None and networks(side.not_nets.nets, family):
            neg.insert(0, side.not_nets)
        for s in (*pos, *neg):
            sets.setdefault(s.key, set_def(s))
        sides[name] = (tuple(s.key for s in pos), tuple(s.key for s in neg))
    for side in (rule.src, rule.dst):
        for pm in (side.ports, side.not_ports):
            for n in pm.named if pm is not None else ():
                sets.setdefault(n.key, set_def(n))
    base = Match(
        protocol=icmp_protocol if rule.icmp is not None else rule.protocol,
        not_protocol=not_protocol,
        icmp=rule.icmp,
        not_icmp=rule.not_icmp,
        src_sets=sides["src"][0],
        not_src_sets=sides["src"][1],
        dst_sets=sides["dst"][0],
        not_dst_sets=sides["dst"][1],
        not_src_ports=_negated_groups(rule.src),
        not_dst_ports=_negated_groups(rule.dst),
        not_src_named=_negated_named(rule.src),
        not_dst_named=_negated_named(rule.dst),
        family=rule.ip_version,
    )
    comment = f"policy {policy.label} {rule.origin}: {rule.action}"
    matches_: list[Match] = [
        dataclasses.replace(base, src_ports=sp, src_named=sn, dst_ports=dp, dst_named=dn)
        for sp, sn in _alternatives(rule.src.ports)
        for dp, dn in _alternatives(rule.dst.ports)
    ]
    count = len(matches_)
    return [
        PolicyRule(
            rule.action,
            m,
            comment,
            first=i == 0,
            last=i == count - 1,
            index=index,
            policy=(policy.key, policy.label, direction),
        )
        for i, m in enumerate(matches_)
    ]


def _negated_groups(side: EntityMatch) -> tuple[tuple[tuple[int, int], ...], ...]:
    return tuple(_groups(side.not_ports.ranges)) if side.not_ports is not None else ()


def _negated_named(side: EntityMatch) -> tuple[str, ...]:
    return tuple(n.key for n in side.not_ports.named) if side.not_ports is not None else ()


def compile_rules(
    policy: Policy, direction: Direction, family: Family = 4
) -> tuple[tuple[PolicyRule, ...], dict[str, SetDef]]:
    """A policy's chain for one direction and family, and the sets it uses (by key)."""
    out: list[PolicyRule] = []
    sets: dict[str, SetDef] = {}
    for i, rule in enumerate(policy.rules(direction)):
        out += compile_rule(policy, direction, rule, sets, family, i)
    return tuple(out), sets
