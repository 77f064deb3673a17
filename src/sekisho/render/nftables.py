"""One ``inet`` nftables table for one node, from a :class:`NodeRenderer`'s state.

Same layout and marks as the iptables backend (see :mod:`sekisho.render.iptables`),
with nftables' own tools so per-packet cost does not grow with the cluster:
dispatch by interface through a verdict map, peers as named ``ipv4_addr`` sets
with ``flags interval`` (ipBlock excepts already subtracted exactly), named
ports as ``ipv4_addr . inet_service`` concatenations, port lists as anonymous
sets. Rules are written the way ``nft list table`` prints them, so a read-back
compares after :func:`normalize_nft`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial

from sekisho.render import names
from sekisho.render.compile import DIRECTIONS, AllowRule, Direction, member_texts
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
    return 'comment "' + comment.replace('"', "'") + '"'


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


def _ports(rule: AllowRule) -> str:
    # nft merges adjacent and overlapping ranges of an anonymous set; so do we, so that
    # what we render is what `nft list` prints back
    merged: list[list[int]] = []
    for a, b in sorted(rule.ports):
        if merged and a <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    items = [str(a) if a == b else f"{a}-{b}" for a, b in merged]
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def allow_rule(r: NodeRenderer, rule: AllowRule, direction: Direction) -> str:
    words: list[str] = []
    if rule.peer_set is not None:
        where = "saddr" if direction == "ingress" else "daddr"
        words.append(f"ip {where} @{r.set_name(rule.peer_set)}")
    if rule.port_set is not None:
        words.append(f"ip daddr . th dport @{r.set_name(rule.port_set)}")
        words.append(f"meta l4proto {rule.protocol}")
    elif rule.ports:
        words.append(f"{rule.protocol} dport {_ports(rule)}")
    elif rule.protocol is not None:
        words.append(f"meta l4proto {rule.protocol}")
    words.append(f"meta mark set meta mark | {MARK} return")
    words.append(_c(rule.comment))
    return " ".join(words)


def policy_rules(r: NodeRenderer, key: str, direction: Direction) -> tuple[str, ...]:
    return tuple(allow_rule(r, rule, direction) for rule in r.chains[(key, direction)])


_ENDPOINT_STEP = {
    "replies": "ct state established,related accept {c}",
    "invalid": "ct state invalid drop {c}",
    "clear": "meta mark set meta mark & " + KEEP + " {c}",
    "policy": "jump {chain} {c}",
    "allowed": "meta mark & " + MARK + " == " + MARK + " return {c}",
    "isolated": "drop {c}",
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
