"""One ``inet`` nftables table for one node, from a :class:`NodeRenderer`'s state.

Same layout and marks as the iptables backend (see :mod:`sekisho.render.iptables`),
with nftables' own tools so per-packet cost does not grow with the cluster:
dispatch by interface through a verdict map, every program set as two named
sets, ``ipv4_addr`` and ``ipv6_addr``: with ``flags interval`` when it holds a
network (members disjoint), without when it holds single addresses only (most
sets: pods' addresses), since before any element command libnftables reads the
elements of every interval set of the ruleset into its cache (see
:attr:`NftSet.interval`); named ports as ``ipv4_addr . inet_service``
(``ipv6_addr . ...``) concatenations, port lists as anonymous sets. Both IP families pass the same
chains (the table is ``inet``): a policy rule that names addresses or ICMP types
is written once per family (``ip saddr``/``ip6 saddr``, ``icmp``/``icmpv6``;
nft adds the family as a dependency), one that does not is written once for
both. What comes from a local endpoint to the node accepts the ICMPv6 types
IPv6 needs first (neighbour discovery, multicast listeners), as Felix's
workload-to-host chain does. Rules are written the way ``nft list table`` prints
them, so a read-back compares after :func:`normalize_nft`. A node with a host
endpoint also has an ``output`` base chain and the host endpoint's four chains,
as the iptables backend (``iifname != "cali*"`` where it names no interface). Its
doNotTrack and preDNAT policies get base chains at the raw (-300) and mangle (-150)
priorities of the prerouting and output hooks, in the same table and with the same
marks and chains as the iptables backend's raw and mangle tables (``notrack`` for an
untracked allow).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

from sekisho.model.reader import paused_gc
from sekisho.render import names
from sekisho.render.compile import (
    DIRECTIONS,
    Direction,
    Match,
    PolicyRule,
    member_texts,
    move_sorted,
    sorted_members,
)
from sekisho.render.node import (
    FAILSAFE,
    FAILSAFE_REPLY,
    HOST_CHAINS,
    STAGE_CHAINS,
    Endpoint,
    HostChain,
    NodeRenderer,
    StageChain,
    failsafe_groups,
)

MARK = f"0x{names.ACCEPT_MARK:08x}"
KEEP = f"0x{0xFFFFFFFF & ~names.ACCEPT_MARK:08x}"
PRIORITY = "filter - 1"
RAW = "raw"
"""The doNotTrack stage's priority (-300: before connection tracking, -200)."""
MANGLE = "mangle"
"""The preDNAT stage's priority (-150: after connection tracking, before DNAT at -100)."""


@dataclass(frozen=True)
class NftSet:
    name: str
    type: str
    """``ipv4_addr``/``ipv6_addr`` or ``... . inet_service``; a map's ``ifname : verdict``."""
    elements: tuple[str, ...]
    description: str = ""
    kind: str = "set"
    """``set``, or ``map`` (the dispatch's verdict maps: interface -> endpoint chain)."""
    interval: bool = False
    """``flags interval``: the set holds a network (``10.0.0.0/8``), which only an
    interval set can. An address set of single addresses is written without it: before
    an ``add element``/``delete element`` libnftables reads the elements of every
    interval set of the ruleset (about 30x the cost of the command at 300 sets, see
    ``bench/bench_nft_cache.py``), never those of a plain set. A set's flags are fixed
    when it is created, so a set that gains or loses its last network is deleted and
    made again, in the transaction that rewrites the rules that use it
    (:class:`sekisho.dataplane.nftables.NftApplier`)."""


@dataclass(frozen=True)
class NftRuleset:
    """One node's nftables table; ``script()`` creates or replaces it in one transaction."""

    prefix: str
    table: str
    family: str = "inet"
    sets: tuple[NftSet, ...] = ()
    chains: tuple[tuple[str, str | None, tuple[str, ...]], ...] = ()
    """(chain, base chain header line or None, rules as ``nft list`` prints them)."""
    node: str = ""
    notes: tuple[str, ...] = ()
    """Comment lines for humans (what was not rendered, and why)."""

    def _body(self) -> list[str]:
        out = [f"table {self.family} {self.table} {{"]
        first = True
        for s in self.sets:
            if not first:
                out.append("")
            first = False
            out.append(f"\t{s.kind} {s.name} {{")
            out.append(f"\t\ttype {s.type}")
            if s.interval:
                out.append("\t\tflags interval")
            if s.elements:
                out.append(f"\t\telements = {{ {', '.join(s.elements)} }}")
            out.append("\t}")
        for name, header, rules in self.chains:
            if not first:
                out.append("")
            first = False
            out.append(f"\tchain {name} {{")
            if header is not None:
                out.append(f"\t\t{header}")
            out.extend(f"\t\t{r}" for r in rules)
            out.append("\t}")
        out.append("}")
        return out

    def table_text(self) -> str:
        """The table as ``nft list table inet T`` prints it, normalized (see :func:`normalize_nft`)."""
        return normalize_nft("\n".join(self._body()))

    def script(self) -> str:
        """One ``nft -f`` script: create-if-missing, delete, create: atomic replace of our table."""
        head = [
            f"# sekisho nftables ruleset for node {self.node} (prefix {self.prefix})",
            *(f"#   {s.kind} {s.name}: {s.description}" for s in self.sets),
            *(f"#   note: {n}" for n in self.notes),
            f"table {self.family} {self.table} {{}}",
            f"delete table {self.family} {self.table}",
        ]
        return "\n".join(head + self._body()) + "\n"

    def render_text(self) -> str:
        return self.script()

    def chain(self, name: str) -> tuple[str, ...]:
        for n, _h, rules in self.chains:
            if n == name:
                return rules
        raise KeyError(name)


def _c(comment: str) -> str:
    return 'comment "' + names.comment_text(comment) + '"'


def nft_set(r: NodeRenderer, key: str, family: int = 4) -> NftSet:
    sd = r.set_defs[key]
    addr = "ipv4_addr" if family == 4 else "ipv6_addr"
    name = r.set_name(key, family)
    type_ = addr if sd.kind == "net" else f"{addr} . inet_service"
    description = sd.description + ("" if family == 4 else " (IPv6)")
    members = r.members[key]
    kept = _moved_spelling(r, key, family, members)
    if kept is not None:
        prev = kept.made
        if (prev.name, prev.type, prev.description) == (name, type_, description):
            return prev  # the same object: the applier and the digest take it by identity
        kept.made = NftSet(name, type_, prev.elements, description, interval=False)
        return kept.made
    sorted_ = sorted_members(members, family)
    if sorted_ is not None:  # addresses only, or named-port pairs only: no network here
        keys, texts = sorted_
        made = NftSet(name, type_, tuple(texts), description, interval=False)
        r.spelt.setdefault(key, {})[f"nftables{family}"] = _Spelt(
            members, r.moved_at(key), keys, texts, made
        )
        return made
    elements = tuple(
        f"{a}" if port is None else f"{a} . {port}" for a, port in member_texts(members, family)
    )
    return NftSet(
        name=name,
        type=type_,
        elements=elements,
        description=description,
        # member_texts spells a host network (/32, /128) as its address: a "/" is a network
        interval=sd.kind == "net" and any("/" in e for e in elements),
    )


@dataclass(slots=True)
class _Spelt:
    """One set of one family as last spelt, to move by its members' moves
    (:attr:`NodeRenderer.member_moves`) instead of spelling it again."""

    members: dict[Any, int]
    """The renderer's members dict it was spelt from (the very object)."""
    state: int
    """The update of the last change of that dict it includes."""
    keys: list[Any]
    """Sort keys of the elements (:func:`sorted_members`)."""
    texts: list[str]
    made: NftSet


def _moved_spelling(r: NodeRenderer, key: str, family: int, members: object) -> _Spelt | None:
    """The set's spelling moved to its members now, or None (spell it whole)."""
    mine = r.spelt.get(key)
    kept = None if mine is None else mine.get(f"nftables{family}")
    if not isinstance(kept, _Spelt) or kept.members is not members:
        return None
    now = r.moved_at(key)
    if kept.state == now:
        return kept
    moved = r.member_moves.get(key)
    if moved is None or moved[0] != kept.state:
        return None  # moves of an update not seen here: spell it whole
    assert mine is not None
    del mine[f"nftables{family}"]  # back only if the moves apply
    if not move_sorted(kept.keys, kept.texts, moved[1], family):
        return None
    prev = kept.made
    kept.made = NftSet(prev.name, prev.type, tuple(kept.texts), prev.description, interval=False)
    kept.state = now
    mine[f"nftables{family}"] = kept
    return kept


PASS = f"0x{names.PASS_MARK:08x}"
KEEP_NO_PASS = f"0x{0xFFFFFFFF & ~names.PASS_MARK:08x}"
KEEP_NEITHER = f"0x{0xFFFFFFFF & ~(names.ACCEPT_MARK | names.PASS_MARK):08x}"
NONE = "0x00000000"

PROTOCOL_WORDS = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp", 136: "udplite"}
"""How ``nft list`` names the protocols the program names (others stay numbers)."""

ICMP_TYPES = {
    0: "echo-reply",
    3: "destination-unreachable",
    4: "source-quench",
    5: "redirect",
    8: "echo-request",
    9: "router-advertisement",
    10: "router-solicitation",
    11: "time-exceeded",
    12: "parameter-problem",
    13: "timestamp-request",
    14: "timestamp-reply",
    15: "info-request",
    16: "info-reply",
    17: "address-mask-request",
    18: "address-mask-reply",
}
"""``nft list`` prints ICMP types by these names."""
ICMP_CODES = {
    0: "net-unreachable",
    1: "host-unreachable",
    2: "prot-unreachable",
    3: "port-unreachable",
    4: "frag-needed",
    9: "net-prohibited",
    10: "host-prohibited",
    13: "admin-prohibited",
}
"""... and ICMP codes by these."""
ICMPV6_TYPES = {
    1: "destination-unreachable",
    2: "packet-too-big",
    3: "time-exceeded",
    4: "parameter-problem",
    128: "echo-request",
    129: "echo-reply",
    130: "mld-listener-query",
    131: "mld-listener-report",
    132: "mld-listener-done",
    133: "nd-router-solicit",
    134: "nd-router-advert",
    135: "nd-neighbor-solicit",
    136: "nd-neighbor-advert",
    137: "nd-redirect",
    143: "mld2-listener-report",
}
"""``nft list`` prints ICMPv6 types by these names."""
ICMPV6_CODES = {
    0: "no-route",
    1: "admin-prohibited",
    3: "addr-unreachable",
    4: "port-unreachable",
    5: "policy-fail",
    6: "reject-route",
}
"""... and ICMPv6 codes by these."""

ICMPV6_NEEDED = (130, 131, 132, 133, 135, 136)
"""ICMPv6 types a workload sends its host that are always allowed (Felix's
``ICMPv6Filter`` on the workload-to-host chain): multicast listener query,
report and done; router solicitation; neighbour solicitation and advertisement.
IPv6 does not work without them, so no policy may drop them."""


def protocol_word(number: int) -> str:
    return PROTOCOL_WORDS.get(number, str(number))


def _ports(ranges: tuple[tuple[int, int], ...]) -> str:
    # nft merges adjacent and overlapping ranges of an anonymous set; so do we, so that
    # what we render is what `nft list` prints back
    merged: list[list[int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    items = [str(a) if a == b else f"{a}-{b}" for a, b in merged]
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def icmp_names(family: int) -> tuple[str, dict[int, str], dict[int, str]]:
    """(the ICMP keyword, type names, code names) of ``family``."""
    if family == 6:
        return "icmpv6", ICMPV6_TYPES, ICMPV6_CODES
    return "icmp", ICMP_TYPES, ICMP_CODES


def match_variants(
    r: NodeRenderer, m: Match, family: int = 4, qualify: bool = False
) -> list[list[str]]:
    """The match of one rendered rule of ``family`` as ``nft list`` prints it; a negated
    ICMP type and code ("not this type with this code") is two rules: another type, or
    this type with another code. ``qualify``: the rule must match ``family`` only, even
    when nothing in it names an address or an ICMP type."""
    ipw = "ip" if family == 4 else "ip6"
    icmp, types, codes = icmp_names(family)

    def _icmp_type(t: int) -> str:
        return types.get(t, str(t))

    def _icmp_code(c: int) -> str:
        return codes.get(c, str(c))

    words: list[str] = []
    # named-port lookups first: after a protocol match nft would print them as
    # ``ip daddr . tcp dport`` (it folds the protocol into them)
    for named, neg, where in (
        ((m.src_named,) if m.src_named else (), "", "saddr . th sport"),
        (m.not_src_named, "!= ", "saddr . th sport"),
        ((m.dst_named,) if m.dst_named else (), "", "daddr . th dport"),
        (m.not_dst_named, "!= ", "daddr . th dport"),
    ):
        words.extend(f"{ipw} {where} {neg}@{r.set_name(k, family)}" for k in named)
    for keys, neg, where in (
        (m.src_sets, "", "saddr"),
        (m.not_src_sets, "!= ", "saddr"),
        (m.dst_sets, "", "daddr"),
        (m.not_dst_sets, "!= ", "daddr"),
    ):
        words.extend(f"{ipw} {where} {neg}@{r.set_name(k, family)}" for k in keys)
    proto = None if m.protocol is None else protocol_word(m.protocol)
    ports = bool(m.src_ports or m.dst_ports or m.not_src_ports or m.not_dst_ports)
    if ports:
        if m.src_ports:
            words.append(f"{proto} sport {_ports(m.src_ports)}")
        words.extend(f"{proto} sport != {_ports(g)}" for g in m.not_src_ports)
        if m.dst_ports:
            words.append(f"{proto} dport {_ports(m.dst_ports)}")
        words.extend(f"{proto} dport != {_ports(g)}" for g in m.not_dst_ports)
    elif m.icmp is None and m.not_icmp is None and proto is not None:
        words.append(f"meta l4proto {proto}")
    if m.not_protocol is not None:
        words.append(f"meta l4proto != {protocol_word(m.not_protocol)}")
    qualified = m.icmp or m.not_icmp or any(w.startswith(ipw + " ") for w in words)
    if (qualify or m.family is not None) and not qualified:
        # an ipVersion rule that names no address: the table is inet, so say the family
        words.insert(0, f"meta nfproto ipv{family}")
    if m.icmp is not None:
        words.append(f"{icmp} type {_icmp_type(m.icmp.type)}")
        if m.icmp.code is not None:
            words.append(f"{icmp} code {_icmp_code(m.icmp.code)}")
    if m.not_icmp is None:
        return [words]
    t = _icmp_type(m.not_icmp.type)
    if m.icmp is not None:
        # the type is fixed already: another type never is the excluded one
        if m.icmp.type != m.not_icmp.type:
            return [words]
        if m.not_icmp.code is None:
            return []  # "type T and not type T" never holds
        if m.icmp.code is not None:
            return [words] if m.icmp.code != m.not_icmp.code else []
        return [[*words, f"{icmp} code != {_icmp_code(m.not_icmp.code)}"]]
    if m.not_icmp.code is None:
        return [[*words, f"{icmp} type != {t}"]]
    return [
        [*words, f"{icmp} type != {t}"],
        [*words, f"{icmp} type {t}", f"{icmp} code != {_icmp_code(m.not_icmp.code)}"],
    ]


def _verdict(r: NodeRenderer, rule: PolicyRule) -> str:
    action = rule.action
    if action == "allow":
        return f"meta mark set meta mark | {MARK} return"
    if action == "pass":
        return f"meta mark set meta mark | {PASS} return"
    if action == "deny":
        return "drop"
    key, label, direction = rule.policy
    text = names.log_prefix(r.prefix, key, label, direction, rule.index, names.NFT_LOG_PREFIX_MAX)
    if r.log_group is not None:  # as nft list prints it: prefix, then group
        return f'log prefix "{text}" group {r.log_group}'
    return f'log prefix "{text}"'


def policy_rule(
    r: NodeRenderer, rule: PolicyRule, family: int = 4, qualify: bool = False
) -> list[str]:
    return [
        " ".join([*words, _verdict(r, rule), _c(rule.comment)])
        for words in match_variants(r, rule.match, family, qualify)
    ]


def policy_rules(r: NodeRenderer, key: str, direction: Direction) -> tuple[str, ...]:
    """Both families' rules of a policy chain, program rule by program rule: when a
    program rule renders to the same lines for both families (nothing in it names an
    address or an ICMP type), they are written once and match both; otherwise its
    IPv4 lines, then its IPv6 lines, each restricted to its family (``meta nfproto``
    where no address or ICMP match already restricts it)."""
    by_index: dict[int, tuple[list[PolicyRule], list[PolicyRule]]] = {}
    for fam in (4, 6):
        for rule in r.rules((key, direction), fam):
            by_index.setdefault(rule.index, ([], []))[fam == 6].append(rule)
    out: list[str] = []
    for index in sorted(by_index):
        rules4, rules6 = by_index[index]
        v4 = [line for rule in rules4 for line in policy_rule(r, rule, 4)]
        v6 = [line for rule in rules6 for line in policy_rule(r, rule, 6)]
        if v4 == v6:
            out += v4
            continue
        out += [line for rule in rules4 for line in policy_rule(r, rule, 4, qualify=True)]
        out += [line for rule in rules6 for line in policy_rule(r, rule, 6, qualify=True)]
    return tuple(out)


_ENDPOINT_STEP = {
    "replies": "ct state established,related accept {c}",
    "invalid": "ct state invalid drop {c}",
    "clear": "meta mark set meta mark & " + KEEP_NEITHER + " {c}",
    "tier": "meta mark set meta mark & " + KEEP_NO_PASS + " {c}",
    "policy": "meta mark & " + PASS + " == " + NONE + " jump {chain} {c}",
    "allowed": "meta mark & " + MARK + " == " + MARK + " return {c}",
    "end-of-tier": "meta mark & " + PASS + " == " + NONE + " drop {c}",
    "profile": "meta mark set meta mark | " + MARK + " {c}",
    "open": "meta mark set meta mark | " + MARK + " {c}",
    "no-profile": "drop {c}",
    "notrack": "meta mark & " + MARK + " == " + MARK + " notrack {c}",
}


def host_rules(r: NodeRenderer, chain: HostChain) -> tuple[str, ...]:
    """One host endpoint chain of the filter hooks."""
    assert r.host is not None
    return _step_rules(r, r.host.steps(chain), HOST_CHAINS[chain][0])


def stage_rules(r: NodeRenderer, chain: StageChain) -> tuple[str, ...]:
    """One host endpoint chain of the raw or mangle priorities (doNotTrack, preDNAT)."""
    assert r.host is not None
    return _step_rules(r, r.host.stage_steps(chain), STAGE_CHAINS[chain][0])


def _step_rules(
    r: NodeRenderer, steps: tuple[tuple[str, str, str | None], ...], direction: Direction
) -> tuple[str, ...]:
    """A host endpoint chain's steps (the failsafe ports: one rule per protocol)."""
    out: list[str] = []
    for action, comment, pkey in steps:
        if action in FAILSAFE:
            which = "sport" if action in FAILSAFE_REPLY else "dport"
            out.extend(
                f"{proto} {which} {_ports(tuple((n, n) for n in ports))} accept {_c(comment)}"
                for proto, ports in failsafe_groups(action)
            )
            continue
        out.append(
            _ENDPOINT_STEP[action].format(
                c=_c(comment), chain=r.policy_chain(pkey, direction) if pkey else ""
            )
        )
    return tuple(out)


def _host_iface(r: NodeRenderer, key: str) -> str:
    """The interface match of the host endpoint (``key`` ``iifname`` or ``oifname``)."""
    assert r.host is not None
    if r.host.iface is not None:
        return f'{key} "{r.host.iface}"'
    return f'{key} != "{r.iface_prefix}*"'


def endpoint_rules(r: NodeRenderer, ep: Endpoint, direction: Direction) -> tuple[str, ...]:
    return tuple(
        _ENDPOINT_STEP[action].format(
            c=_c(comment), chain=r.policy_chain(pkey, direction) if pkey else ""
        )
        for action, comment, pkey in ep.steps(direction)
    )


def render_nftables(r: NodeRenderer) -> NftRuleset:
    """The whole nftables table from the renderer's current state (deterministic)."""
    # Tens of thousands of strings and tuples, no cycles: a collection they trigger would
    # only walk the caller's heap (a loaded cluster: ~0.08 s at 10,000 pods) for nothing.
    with paused_gc():
        return _render_nftables(r)


def _render_nftables(r: NodeRenderer) -> NftRuleset:
    p = r.prefix
    ip = r.iface_prefix
    fwd, inp = names.top_chain(p, "FORWARD"), names.top_chain(p, "INPUT")
    from_d, to_d = names.dispatch_chain(p, "egress"), names.dispatch_chain(p, "ingress")
    clear = f"meta mark set meta mark & {KEEP} {_c(p + ': clear the accept mark')}"
    needed = ", ".join(ICMPV6_TYPES[t] for t in ICMPV6_NEEDED)
    icmpv6 = f'iifname "{ip}*" icmpv6 type {{ {needed} }} accept ' + _c(
        p + ": ICMPv6 that IPv6 needs (neighbour discovery, MLD)"
    )
    accept = f"meta mark & {MARK} == {MARK} accept {_c(p + ': endpoint policy allowed it')}"
    host = r.host
    fh: tuple[str, ...] = ()
    fhfw: tuple[str, ...] = ()
    thfw: tuple[str, ...] = ()
    host_accept = (
        f"meta mark & {MARK} == {MARK} accept {_c(p + ': host endpoint policy allowed it')}"
    )
    early_in: tuple[str, ...] = ()
    early_out: tuple[str, ...] = ()
    if host is not None:
        hep = f"host endpoint {host.name}"
        fh = (
            f"{_host_iface(r, 'iifname')} jump {r.host_chain('fh')}"
            f" {_c(f'{p}: to the node through {hep}')}",
            host_accept,
        )
        # After an accept at the raw or mangle priority (the mark: the raw prerouting
        # chain cleared it first), the host endpoint's applyOnForward policies are skipped.
        unaccepted = f"meta mark & {MARK} == {NONE} " if host.early_in else ""
        fhfw = (
            f"{_host_iface(r, 'iifname')} {unaccepted}jump {r.host_chain('fhfw')}"
            f" {_c(f'{p}: forwarded in through {hep}')}",
        )
        early = (
            f"meta mark & {MARK} == {MARK} accept "
            + _c(f"{p}: accepted by a doNotTrack or preDNAT policy of {hep}"),
        )
        early_in = early if host.early_in else ()
        early_out = early if host.early_out else ()
        thfw = (
            f"{_host_iface(r, 'oifname')} jump {r.host_chain('thfw')}"
            f" {_c(f'{p}: forwarded out through {hep}')}",
        )
    chains: list[tuple[str, str | None, tuple[str, ...]]] = [
        (
            fwd,
            f"type filter hook forward priority {PRIORITY}; policy accept;",
            (
                *(() if early_in else (clear,)),
                *fhfw,
                f'iifname "{ip}*" jump {from_d} {_c(p + ": from a local endpoint")}',
                f'oifname "{ip}*" jump {to_d} {_c(p + ": to a local endpoint")}',
                *thfw,
                accept,
            ),
        ),
        (
            inp,
            f"type filter hook input priority {PRIORITY}; policy accept;",
            (
                *early_in,
                clear,
                icmpv6,
                f'iifname "{ip}*" jump {from_d} {_c(p + ": from a local endpoint")}',
                accept,
                *fh,
            ),
        ),
    ]
    if host is not None:
        chains.append(
            (
                names.top_chain(p, "OUTPUT"),
                f"type filter hook output priority {PRIORITY}; policy accept;",
                (
                    *early_out,
                    f'oifname "{ip}*" return '
                    + _c(p + ": to a local endpoint: not policed (Felix returns early)"),
                    clear,
                    f"{_host_iface(r, 'oifname')} jump {r.host_chain('th')}"
                    f" {_c(f'{p}: from the node through host endpoint {host.name}')}",
                    host_accept,
                ),
            )
        )
    eps = sorted(r.endpoints.values(), key=lambda e: e.iface)
    maps: list[NftSet] = []
    for chain, key, d in ((from_d, "iifname", "egress"), (to_d, "oifname", "ingress")):
        dd: Direction = "egress" if d == "egress" else "ingress"
        # A named verdict map (as Felix's nftables dataplane): a pod that comes or goes is
        # one element added or deleted, not the dispatch rule written again.
        vmap = names.dispatch_map(p, dd)
        maps.append(
            NftSet(
                vmap,
                "ifname : verdict",
                tuple(f'"{ep.iface}" : goto {r.endpoint_chain(ep.iface, dd)}' for ep in eps),
                f"local endpoint interface -> its {'from' if dd == 'egress' else 'to'}-endpoint chain",
                "map",
            )
        )
        rules = (
            f"{key} vmap @{vmap}",
            f"drop {_c(p + ': unknown endpoint interface')}",
        )
        chains.append((chain, None, rules))
    for ep in eps:
        for d2 in DIRECTIONS:
            key2 = ("endpoint", ep.pod, d2)
            rules2 = r.cached("nftables", key2, partial(endpoint_rules, r, ep, d2))
            chains.append(
                _kept_chain(r, key2, ep.iface, rules2, partial(r.endpoint_chain, ep.iface, d2))
            )
    if host is not None:
        chains.extend((r.host_chain(c), None, host_rules(r, c)) for c in HOST_CHAINS)
        chains.extend(_early_chains(r))
    for pkey, d3 in sorted(r.chains):
        key3 = ("policy", pkey, d3)
        rules3 = r.cached("nftables", key3, partial(policy_rules, r, pkey, d3))
        chains.append(_kept_chain(r, key3, pkey, rules3, partial(r.policy_chain, pkey, d3)))
    made = (
        r.cached(f"nftables{fam}", ("set", k), partial(nft_set, r, k, fam))
        for k, fam in r.set_families()
    )
    sets = (*maps, *sorted(made, key=lambda s: s.name))
    return NftRuleset(
        prefix=p, table=p, sets=sets, chains=tuple(chains), node=r.node, notes=r.notes()
    )


def _kept_chain(
    r: NodeRenderer,
    key: tuple[str, ...],
    ident: str,
    rules: tuple[str, ...],
    name: Callable[[], str],
) -> tuple[str, None, tuple[str, ...]]:
    """``(name, None, rules)`` of a policy or endpoint chain: the same tuple as the last
    render while its rules are the same object and it is named from the same ``ident``
    (the applier and the digest take what is handed again by identity; the name is not
    spelt again)."""
    entry = r.text_cache[key]  # made by r.cached for these rules
    kept = cast("tuple[str, tuple[str, None, tuple[str, ...]]] | None", entry.get("nftables-chain"))
    if kept is None or kept[0] != ident or kept[1][2] is not rules:
        kept = (ident, (name(), None, rules))
        entry["nftables-chain"] = kept
    return kept[1]


def _early_chains(r: NodeRenderer) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """The base chains at the raw and mangle priorities and the host endpoint's early
    chains (none without doNotTrack and preDNAT policies on it): as the iptables
    backend's raw and mangle tables (:func:`sekisho.render.iptables._early_tables`)."""
    host = r.host
    if host is None or not host.stage_chains():
        return []
    p = r.prefix
    have = host.stage_chains()
    hep = f"host endpoint {host.name}"
    clear = (
        f"meta mark set meta mark & {KEEP_NEITHER} {_c(p + ': clear the accept and pass marks')}"
    )
    accepted = f"meta mark & {MARK} == {MARK} accept {_c(p + ': accepted untracked (doNotTrack)')}"
    out: list[tuple[str, str | None, tuple[str, ...]]] = []
    if host.early_in:
        jump = (
            (
                f"{_host_iface(r, 'iifname')} jump {r.host_chain('rfh')}"
                f" {_c(f'{p}: arriving on {hep}: doNotTrack')}",
                accepted,
            )
            if "rfh" in have
            else ()
        )
        out.append(
            (
                names.top_chain(p, "raw-PRE"),
                f"type filter hook prerouting priority {RAW}; policy accept;",
                (clear, *jump),
            )
        )
    if host.early_out:
        out.append(
            (
                names.top_chain(p, "raw-OUT"),
                f"type filter hook output priority {RAW}; policy accept;",
                (
                    clear,
                    f"{_host_iface(r, 'oifname')} jump {r.host_chain('rth')}"
                    f" {_c(f'{p}: sent out of {hep}: doNotTrack')}",
                    accepted,
                ),
            )
        )
    if "mfh" in have:
        out.append(
            (
                names.top_chain(p, "mangle-PRE"),
                f"type filter hook prerouting priority {MANGLE}; policy accept;",
                (
                    f"ct state established,related accept {_c(p + ': replies and related')}",
                    accepted,
                    f"{_host_iface(r, 'iifname')} jump {r.host_chain('mfh')}"
                    f" {_c(f'{p}: arriving on {hep}: preDNAT')}",
                    f"meta mark & {MARK} == {MARK} accept "
                    + _c(p + ": accepted before DNAT (preDNAT)"),
                ),
            )
        )
    out += [(r.host_chain(c), None, stage_rules(r, c)) for c in have]
    return out


# ------------------------------------------------------------------ read-back

_BRACES = re.compile(r"\{ ([^{}]*) \}")


def normalize_nft(text: str) -> str:
    """``nft list table`` text in a canonical form: wrapped lines joined, whitespace
    collapsed, elements of every ``{ ... }`` list sorted, blank lines and handles dropped.
    """
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = " ".join(raw.split())
        if not line or line.startswith("#"):
            continue
        line = re.sub(r" # handle \d+$", "", line)
        pending = f"{pending} {line}" if pending else line
        if pending.count("{") - pending.count("}") > 0 and not pending.endswith("{"):
            continue
        lines.append(_BRACES.sub(_sort_braces, pending))
        pending = ""
    if pending:
        lines.append(pending)
    return "\n".join(lines) + "\n"


def _sort_braces(m: re.Match[str]) -> str:
    items = sorted(i.strip() for i in m.group(1).split(","))
    return "{ " + ", ".join(items) + " }"
