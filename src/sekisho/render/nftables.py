"""One ``inet`` nftables table for one node, from a :class:`NodeRenderer`'s state.

Same layout and marks as the iptables backend (see :mod:`sekisho.render.iptables`),
with nftables' own tools so per-packet cost does not grow with the cluster:
dispatch by interface through a verdict map, every program set as a named
``ipv4_addr`` set with ``flags interval`` (its members disjoint), named
ports as ``ipv4_addr . inet_service`` concatenations, port lists as anonymous
sets. Rules are written the way ``nft list table`` prints them, so a read-back
compares after :func:`normalize_nft`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial

from sekisho.render import names
from sekisho.render.compile import DIRECTIONS, Direction, Match, PolicyRule, member_texts
from sekisho.render.node import Endpoint, NodeRenderer

MARK = f"0x{names.ACCEPT_MARK:08x}"
KEEP = f"0x{0xFFFFFFFF & ~names.ACCEPT_MARK:08x}"
PRIORITY = "filter - 1"


@dataclass(frozen=True)
class NftSet:
    name: str
    type: str
    """``ipv4_addr`` (with ``flags interval``) or ``ipv4_addr . inet_service``."""
    elements: tuple[str, ...]
    description: str = ""


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
            out.append(f"\tset {s.name} {{")
            out.append(f"\t\ttype {s.type}")
            if s.type == "ipv4_addr":
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
            *(f"#   set {s.name}: {s.description}" for s in self.sets),
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


def nft_set(r: NodeRenderer, key: str) -> NftSet:
    sd = r.set_defs[key]
    return NftSet(
        name=r.set_name(key),
        type="ipv4_addr" if sd.kind == "net" else "ipv4_addr . inet_service",
        elements=tuple(
            f"{a}" if port is None else f"{a} . {port}" for a, port in member_texts(r.members[key])
        ),
        description=sd.description,
    )


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


def _icmp_type(t: int) -> str:
    return ICMP_TYPES.get(t, str(t))


def _icmp_code(c: int) -> str:
    return ICMP_CODES.get(c, str(c))


def match_variants(r: NodeRenderer, m: Match) -> list[list[str]]:
    """The match of one rendered rule as ``nft list`` prints it; a negated ICMP type
    and code ("not this type with this code") is two rules: another type, or this
    type with another code."""
    words: list[str] = []
    # named-port lookups first: after a protocol match nft would print them as
    # ``ip daddr . tcp dport`` (it folds the protocol into them)
    for named, neg, where in (
        ((m.src_named,) if m.src_named else (), "", "saddr . th sport"),
        (m.not_src_named, "!= ", "saddr . th sport"),
        ((m.dst_named,) if m.dst_named else (), "", "daddr . th dport"),
        (m.not_dst_named, "!= ", "daddr . th dport"),
    ):
        words.extend(f"ip {where} {neg}@{r.set_name(k)}" for k in named)
    for keys, neg, where in (
        (m.src_sets, "", "saddr"),
        (m.not_src_sets, "!= ", "saddr"),
        (m.dst_sets, "", "daddr"),
        (m.not_dst_sets, "!= ", "daddr"),
    ):
        words.extend(f"ip {where} {neg}@{r.set_name(k)}" for k in keys)
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
    if m.icmp is not None:
        words.append(f"icmp type {_icmp_type(m.icmp.type)}")
        if m.icmp.code is not None:
            words.append(f"icmp code {_icmp_code(m.icmp.code)}")
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
        return [[*words, f"icmp code != {_icmp_code(m.not_icmp.code)}"]]
    if m.not_icmp.code is None:
        return [[*words, f"icmp type != {t}"]]
    return [
        [*words, f"icmp type != {t}"],
        [*words, f"icmp type {t}", f"icmp code != {_icmp_code(m.not_icmp.code)}"],
    ]


def _verdict(r: NodeRenderer, action: str) -> str:
    if action == "allow":
        return f"meta mark set meta mark | {MARK} return"
    if action == "pass":
        return f"meta mark set meta mark | {PASS} return"
    if action == "deny":
        return "drop"
    return f'log prefix "{r.prefix}-packet: "'


def policy_rule(r: NodeRenderer, rule: PolicyRule) -> list[str]:
    return [
        " ".join([*words, _verdict(r, rule.action), _c(rule.comment)])
        for words in match_variants(r, rule.match)
    ]


def policy_rules(r: NodeRenderer, key: str, direction: Direction) -> tuple[str, ...]:
    return tuple(line for rule in r.chains[(key, direction)] for line in policy_rule(r, rule))


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
}


def endpoint_rules(r: NodeRenderer, ep: Endpoint, direction: Direction) -> tuple[str, ...]:
    return tuple(
        _ENDPOINT_STEP[action].format(
            c=_c(comment), chain=r.policy_chain(pkey, direction) if pkey else ""
        )
        for action, comment, pkey in ep.steps(direction)
    )


def render_nftables(r: NodeRenderer) -> NftRuleset:
    """The whole nftables table from the renderer's current state (deterministic)."""
    p = r.prefix
    ip = r.iface_prefix
    fwd, inp = names.top_chain(p, "FORWARD"), names.top_chain(p, "INPUT")
    from_d, to_d = names.dispatch_chain(p, "egress"), names.dispatch_chain(p, "ingress")
    clear = f"meta mark set meta mark & {KEEP} {_c(p + ': clear the accept mark')}"
    # the iptables backend programs only IPv4 (no ip6tables); keep both backends alike
    v4_only = f"meta nfproto ipv6 return {_c(p + ': IPv4 only, IPv6 is not policed')}"
    accept = f"meta mark & {MARK} == {MARK} accept {_c(p + ': endpoint policy allowed it')}"
    chains: list[tuple[str, str | None, tuple[str, ...]]] = [
        (
            fwd,
            f"type filter hook forward priority {PRIORITY}; policy accept;",
            (
                v4_only,
                clear,
                f'iifname "{ip}*" jump {from_d} {_c(p + ": from a local endpoint")}',
                f'oifname "{ip}*" jump {to_d} {_c(p + ": to a local endpoint")}',
                accept,
            ),
        ),
        (
            inp,
            f"type filter hook input priority {PRIORITY}; policy accept;",
            (
                v4_only,
                clear,
                f'iifname "{ip}*" jump {from_d} {_c(p + ": from a local endpoint")}',
                accept,
            ),
        ),
    ]
    eps = sorted(r.endpoints.values(), key=lambda e: e.iface)
    for chain, key, d in ((from_d, "iifname", "egress"), (to_d, "oifname", "ingress")):
        dd: Direction = "egress" if d == "egress" else "ingress"
        rules: list[str] = []
        if eps:
            entries = ", ".join(
                f'"{ep.iface}" : goto {r.endpoint_chain(ep.iface, dd)}' for ep in eps
            )
            rules.append(f"{key} vmap {{ {entries} }}")
        rules.append(f"drop {_c(p + ': unknown endpoint interface')}")
        chains.append((chain, None, tuple(rules)))
    for ep in eps:
        for d2 in DIRECTIONS:
            rules2 = r.cached(
                "nftables", ("endpoint", ep.pod, d2), partial(endpoint_rules, r, ep, d2)
            )
            chains.append((r.endpoint_chain(ep.iface, d2), None, rules2))
    for pkey, d3 in sorted(r.chains):
        chains.append(
            (
                r.policy_chain(pkey, d3),
                None,
                r.cached(
                    "nftables",
                    ("policy", pkey, d3),
                    partial(policy_rules, r, pkey, d3),
                ),
            )
        )
    made = (r.cached("nftables", ("set", k), partial(nft_set, r, k)) for k in r.set_defs)
    sets = tuple(sorted(made, key=lambda s: s.name))
    return NftRuleset(
        prefix=p, table=p, sets=sets, chains=tuple(chains), node=r.node, notes=r.notes()
    )


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
