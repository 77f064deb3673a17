"""A packet interpreter over rendered TEXT: what would the kernel do with this packet?

It parses exactly what the kernel is given (the ``ipset restore`` document, the
``iptables-restore`` document and the hook lines, as ``render_text()`` prints
them; or the ``nft -f`` script) and walks one packet through it: conntrack
state, interfaces, addresses, protocol, destination port, the packet mark,
jumps, gotos and returns, verdict maps, IP sets. Only the subset of both
languages that the renderer emits is understood; anything else is an error,
so the interpreter can never silently skip a rule it does not know.

A packet meets the tables in the kernel's order for its hook: what arrives
(``INPUT``, ``FORWARD``) passes raw PREROUTING, then mangle PREROUTING, then the
filter hook; what the node sends (``OUTPUT``) raw OUTPUT, then filter OUTPUT. The
mark carries from one to the next, an ACCEPT ends only its own table (a DROP is
final), and a NOTRACK there makes the packet ``UNTRACKED`` for what follows (it is
neither a new nor an established connection to conntrack's matches).

The result is the verdict (``ACCEPT`` when no rule decides: every builtin chain
has policy ACCEPT) and the comments of the rules that matched on the way, the
last of which decided.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, cast

from sekisho.render.nftables import (
    ICMP_CODES,
    ICMP_TYPES,
    ICMPV6_CODES,
    ICMPV6_TYPES,
    PROTOCOL_WORDS,
)

Verdict = Literal["ACCEPT", "DROP"]
Hook = Literal["FORWARD", "INPUT", "OUTPUT"]
State = Literal["NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED"]
Table = Literal["raw", "mangle", "filter"]

TABLES: dict[str, tuple[tuple[Table, str], ...]] = {
    "INPUT": (("raw", "PREROUTING"), ("mangle", "PREROUTING"), ("filter", "INPUT")),
    "FORWARD": (("raw", "PREROUTING"), ("mangle", "PREROUTING"), ("filter", "FORWARD")),
    "OUTPUT": (("raw", "OUTPUT"), ("filter", "OUTPUT")),
}
"""(table, builtin chain) a packet of each hook passes, in the kernel's order (only
the tables and chains the renderer writes: nat has nothing of ours)."""
IPv4 = ipaddress.IPv4Address
IPv4Net = ipaddress.IPv4Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

ICMP_ECHO = {4: (8, 0), 6: (128, 0)}


class RulesetSyntaxError(ValueError):
    """The text holds something the interpreter does not understand (a renderer bug)."""


@dataclass(frozen=True, slots=True)
class Packet:
    """One packet as netfilter sees it at ``hook``."""

    src: str
    dst: str
    protocol: str = "TCP"
    """TCP, UDP, SCTP or ICMP."""
    port: int | None = None
    """Destination port (None for ICMP)."""
    state: State = "NEW"
    iif: str = ""
    oif: str = ""
    hook: Hook = "FORWARD"
    sport: int | None = None
    """Source port; None: unknown (a rule on source ports does not match it, a negated one does)."""
    icmp: tuple[int, int] | None = None
    """ICMP type and code of an ICMP packet; None: an echo request of the packet's family
    (what probes send). ICMP over IPv6 is ICMPv6."""

    @property
    def family(self) -> int:
        return 6 if ":" in self.src or ":" in self.dst else 4

    @property
    def proto_word(self) -> str:
        """The protocol as the rules name it (``ipv6-icmp`` for ICMP over IPv6)."""
        word = self.protocol.lower()
        return "ipv6-icmp" if word == "icmp" and self.family == 6 else word

    @property
    def icmp_type_code(self) -> tuple[int, int]:
        return self.icmp if self.icmp is not None else ICMP_ECHO[self.family]


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    rule: str
    """Comment of the rule that decided, or why nothing did."""
    trail: tuple[str, ...] = ()
    """Comments of every rule that matched, in order (the last one decided)."""
    logs: tuple[str, ...] = ()
    """Prefixes of the log rules that matched, in order (what the kernel log shows;
    :func:`sekisho.render.names.parse_log_prefix` names their policy rule)."""
    table: Table = "filter"
    """The table (nftables: the priority) whose rule decided: a drop in ``raw`` or
    ``mangle`` is final there; an accept always comes from ``filter``."""
    untracked: bool = False
    """The raw table NOTRACKed the packet: the node's conntrack keeps no entry for it."""

    @property
    def because(self) -> str:
        """The rule that made the difference: for an ACCEPT after the endpoint chains, the
        last policy rule that set the accept mark (or "not isolated"), else :attr:`rule`."""
        if self.verdict == "ACCEPT":
            for comment in reversed(self.trail):
                if comment.endswith(ALLOWING):
                    return comment
        return self.rule


ALLOWING = (
    ": allow",
    ": not isolated",
    ": the profile allows",
    ": replies and related",
    "HostPorts)",
    "(Felix returns early)",
)
"""How the comments of the rules that can allow a packet end (see :attr:`Decision.because`)."""


@dataclass(slots=True)
class _Walk:
    packet: Packet
    src: Address | None
    dst: Address | None
    mark: int = 0
    trail: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    depth: int = 0
    chains: dict[str, list[_IptRule]] = field(default_factory=dict)
    """The iptables table being walked, of the packet's family."""
    state: str = "NEW"
    """The conntrack state the rules see (``UNTRACKED`` after a NOTRACK)."""


def _addr(text: str) -> Address | None:
    return ipaddress.ip_address(text)


def _iface_match(pattern: str, name: str) -> bool:
    if pattern.endswith(("+", "*")):
        return name.startswith(pattern[:-1])
    return name == pattern


def _ports_match(spec: list[tuple[int, int]], port: int | None) -> bool:
    return port is not None and any(a <= port <= b for a, b in spec)


_PORT_PROTOCOLS = ("tcp", "udp", "sctp", "udplite")
_PROTOCOL_NUMBERS = {
    "icmp": 1,
    "tcp": 6,
    "udp": 17,
    "ipv6-icmp": 58,
    "sctp": 132,
    "udplite": 136,
}

# ====================================================================== iptables


@dataclass(slots=True)
class _IptRule:
    text: str
    comment: str = ""
    log_prefix: str = ""
    iif: tuple[str, bool] | None = None
    """(interface pattern, negated)."""
    oif: tuple[str, bool] | None = None
    protocol: tuple[str, bool] | None = None
    """(protocol, negated)."""
    ctstates: frozenset[str] | None = None
    sets: list[tuple[str, list[str], bool]] = field(default_factory=list)
    """(set, directions, negated)."""
    ports: list[tuple[str, list[tuple[int, int]], bool]] = field(default_factory=list)
    """(``sport`` or ``dport``, ranges, negated): every one must hold."""
    icmp: list[tuple[int, int | None, bool]] = field(default_factory=list)
    """(type, code or None, negated)."""
    mark: tuple[int, int] | None = None
    target: str | None = None
    goto: bool = False
    set_xmark: tuple[int, int] | None = None


def _mask(text: str) -> tuple[int, int]:
    value, _, mask = text.partition("/")
    return int(value, 0), int(mask, 0) if mask else 0xFFFFFFFF


def _parse_ipt_rule(words: list[str], text: str) -> _IptRule:
    r = _IptRule(text)
    i = 0
    negated = False

    def arg() -> str:
        nonlocal i
        if i + 1 >= len(words):
            raise RulesetSyntaxError(f"missing value after {words[i]!r} in: {text}")
        i += 1
        return words[i]

    while i < len(words):
        w = words[i]
        if w == "!":
            negated = True
            i += 1
            continue
        if w == "-i":
            r.iif = (arg(), negated)
        elif w == "-o":
            r.oif = (arg(), negated)
        elif w == "-p":
            r.protocol = (arg().lower(), negated)
        elif w == "-m":
            arg()  # the option names below identify the module
        elif w == "--ctstate":
            r.ctstates = frozenset(arg().split(","))
        elif w == "--match-set":
            name = arg()
            r.sets.append((name, arg().split(","), negated))
        elif w in ("--dports", "--sports"):
            ranges = [
                (int(a), int(b or a)) for a, _, b in (p.partition(":") for p in arg().split(","))
            ]
            r.ports.append((w[2:-1], ranges, negated))
        elif w in ("--icmp-type", "--icmpv6-type"):
            t, _, c = arg().partition("/")
            r.icmp.append((int(t), int(c) if c else None, negated))
        elif w == "--mark":
            r.mark = _mask(arg())
        elif w == "--comment":
            r.comment = arg()
        elif w in ("-j", "-g"):
            r.goto = w == "-g"
            r.target = arg()
        elif w == "--set-xmark":
            r.set_xmark = _mask(arg())
        elif w in ("--log-prefix", "--nflog-prefix"):
            r.log_prefix = arg()
        elif w in ("--log-level", "--nflog-group"):
            arg()
        elif w == "--notrack":
            r.target = "NOTRACK"
        else:
            raise RulesetSyntaxError(f"unknown word {w!r} in rule: {text}")
        if negated and w not in (
            "-i",
            "-o",
            "-p",
            "--match-set",
            "--dports",
            "--sports",
            "--icmp-type",
            "--icmpv6-type",
        ):
            raise RulesetSyntaxError(f"'!' before {w!r} in rule: {text}")
        negated = False
        i += 1
    return r


_TABLE_SWITCH = re.compile(r"-t (raw|mangle|filter)\b")


class IptablesProgram:
    """Tables ``raw``, ``mangle`` and ``filter`` of iptables and of ip6tables, and the IP
    sets, parsed from ``render_text()``-style documents (a ``# --- ip6tables...`` or
    ``# --- hooks ... (ip6tables ...)`` line starts the IPv6 part, a ``# --- ...`` line
    naming iptables goes back to IPv4; ``*TABLE`` in a restore document and ``-t TABLE``
    in a hooks line say the table)."""

    def __init__(self, text: str) -> None:
        self.sets: dict[str, tuple[str, set[object]]] = {}
        self.tables: dict[int, dict[str, dict[str, list[_IptRule]]]] = {
            f: {t: {} for t in ("raw", "mangle", "filter")} for f in (4, 6)
        }
        family, table = 4, "filter"
        self.chains = self.tables[family][table]
        for raw in text.splitlines():
            line = raw.strip()
            if line.startswith("# --- "):
                six = "ip6tables" in line
                if six or "iptables" in line:
                    family = 6 if six else 4
                    switch = _TABLE_SWITCH.search(line)
                    table = switch.group(1) if switch else "filter"
                    self.chains = self.tables[family][table]
                continue
            if line.startswith("*") and line[1:] in ("raw", "mangle", "filter"):
                self.chains = self.tables[family][line[1:]]
                continue
            if not line or line.startswith("#") or line == "COMMIT":
                continue
            words = shlex.split(line)
            head = words[0]
            if head in ("create", "add", "flush", "swap", "destroy"):
                self._ipset(words)
            elif head.startswith(":"):
                self.chains[head[1:]] = []
            elif head == "-A":
                self.chains.setdefault(words[1], []).append(_parse_ipt_rule(words[2:], line))
            elif head == "-I":
                pos = int(words[2]) if words[2].isdigit() else 1
                rest = words[3:] if words[2].isdigit() else words[2:]
                self.chains.setdefault(words[1], []).insert(pos - 1, _parse_ipt_rule(rest, line))
            else:
                raise RulesetSyntaxError(f"unknown line: {line}")

    def _ipset(self, w: list[str]) -> None:
        cmd = w[0]
        if cmd == "create":
            if w[1] not in self.sets:
                self.sets[w[1]] = (w[2], set())
        elif cmd == "add":
            kind, members = self.sets[w[1]]
            members.add(self._member(kind, w[2]))
        elif cmd == "flush":
            self.sets[w[1]][1].clear()
        elif cmd == "swap":
            self.sets[w[1]], self.sets[w[2]] = self.sets[w[2]], self.sets[w[1]]
        elif cmd == "destroy":
            del self.sets[w[1]]

    @staticmethod
    def _member(kind: str, text: str) -> object:
        if kind == "hash:net":
            return ipaddress.ip_network(text)
        if kind == "hash:ip,port":
            ip, _, rest = text.partition(",")
            proto, _, port = rest.partition(":")
            return (ipaddress.ip_address(ip), proto, int(port))
        raise RulesetSyntaxError(f"unknown set type {kind!r}")

    def _in_set(self, name: str, dirs: list[str], w: _Walk) -> bool:
        if name not in self.sets:
            raise RulesetSyntaxError(f"rule references set {name!r} that does not exist")
        kind, members = self.sets[name]
        addr = w.src if dirs[0] == "src" else w.dst
        if addr is None:
            return False
        if kind == "hash:net":
            return any(addr in net for net in members)  # type: ignore[operator]
        if len(dirs) != 2:
            raise RulesetSyntaxError(f"set {name} of type {kind} needs two directions")
        proto = w.packet.proto_word
        port = w.packet.sport if dirs[1] == "src" else w.packet.port
        if port is None or proto not in _PORT_PROTOCOLS:
            return False
        return (addr, proto, port) in members

    def _matches(self, r: _IptRule, w: _Walk) -> bool:
        p = w.packet
        if r.iif is not None and _iface_match(r.iif[0], p.iif) == r.iif[1]:
            return False
        if r.oif is not None and _iface_match(r.oif[0], p.oif) == r.oif[1]:
            return False
        if r.protocol is not None and (r.protocol[0] == p.proto_word) == r.protocol[1]:
            return False
        if r.ctstates is not None and w.state not in r.ctstates:
            return False
        if r.mark is not None and (w.mark & r.mark[1]) != r.mark[0]:
            return False
        for which, ranges, negated in r.ports:
            if r.protocol is None or r.protocol[1] or r.protocol[0] not in _PORT_PROTOCOLS:
                raise RulesetSyntaxError(f"multiport without a port protocol: {r.text}")
            port = p.port if which == "dport" else p.sport
            if _ports_match(ranges, port) == negated:
                return False
        for t, c, negated in r.icmp:
            if r.protocol not in (("icmp", False), ("ipv6-icmp", False)):
                raise RulesetSyntaxError(f"--icmp-type without -p icmp: {r.text}")
            icmp = p.icmp_type_code
            hit = icmp[0] == t and (c is None or icmp[1] == c)
            if hit == negated:
                return False
        return all(self._in_set(name, dirs, w) != neg for name, dirs, neg in r.sets)

    def _run(self, chain: str, w: _Walk) -> Verdict | None:
        w.depth += 1
        if w.depth > 64:
            raise RulesetSyntaxError("jump depth exceeds 64 (a loop?)")
        try:
            for r in w.chains.get(chain, ()):
                if not self._matches(r, w):
                    continue
                if r.comment:
                    w.trail.append(r.comment)
                t = r.target
                if t is None:
                    continue
                if t == "ACCEPT":
                    return "ACCEPT"
                if t == "DROP":
                    return "DROP"
                if t == "RETURN":
                    return None
                if t in ("LOG", "NFLOG"):
                    w.logs.append(r.log_prefix)
                    continue
                if t in ("NOTRACK", "CT"):
                    w.state = "UNTRACKED"
                    continue
                if t == "MARK":
                    assert r.set_xmark is not None
                    value, mask = r.set_xmark
                    w.mark = (w.mark & ~mask) ^ value
                    continue
                if t not in w.chains:
                    raise RulesetSyntaxError(f"jump to unknown chain {t!r}: {r.text}")
                result = self._run(t, w)
                if result is not None or r.goto:
                    return result
            return None
        finally:
            w.depth -= 1

    def evaluate(self, packet: Packet) -> Decision:
        """The packet through each table of its hook (:data:`TABLES`) in order."""

        def entry(w: _Walk, table: str, builtin: str) -> str | None:
            w.chains = self.tables[packet.family][table]
            return builtin if w.chains.get(builtin) else None

        return _through_tables(
            packet,
            entry,
            self._run,
            f"no rule in builtin chain {packet.hook}: not filtered",
            "no rule decided: builtin policy ACCEPT",
        )


# ====================================================================== nftables


def _tokens(line: str) -> list[str]:
    """Words of one nft line; a quoted string and a ``{ ... }`` group are one token each."""
    out: list[str] = []
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c.isspace():
            i += 1
        elif c == '"':
            j = line.index('"', i + 1)
            out.append(line[i : j + 1])
            i = j + 1
        elif c == "{":
            j = line.index("}", i)
            out.append(line[i : j + 1])
            i = j + 1
        else:
            j = i
            while j < n and not line[j].isspace():
                j += 1
            out.append(line[i:j])
            i = j
    return out


def _unquote(tok: str) -> str:
    return tok[1:-1] if tok.startswith('"') else tok


def _group(tok: str) -> list[str]:
    if tok.startswith("{"):
        return [t.strip() for t in tok[1:-1].split(",") if t.strip()]
    return [tok]


def _port_ranges(tok: str) -> list[tuple[int, int]]:
    out = []
    for item in _group(tok):
        a, _, b = item.partition("-")
        out.append((int(a), int(b or a)))
    return out


@dataclass(slots=True)
class _NftRule:
    text: str
    matches: list[tuple[str, object]] = field(default_factory=list)
    statements: list[tuple[str, int]] = field(default_factory=list)
    verdict: tuple[str, str] | None = None
    vmap: tuple[str, dict[str, tuple[str, str]] | str] | None = None
    """(``iifname``/``oifname``, the verdict table, or the name of a map holding it)."""
    comment: str = ""
    log: str | None = None
    """The prefix of a ``log`` statement (records the packet; changes nothing)."""


_VERDICTS = ("accept", "drop", "return")


def _neg(rest: list[str], at: int) -> tuple[bool, int]:
    """Whether ``rest[at]`` is ``!=`` (and the index of the value after it)."""
    if at < len(rest) and rest[at] == "!=":
        return True, at + 1
    return False, at


def _number(tok: str, names: dict[int, str]) -> int:
    for number, name in names.items():
        if name == tok:
            return number
    try:
        return int(tok)
    except ValueError:
        raise RulesetSyntaxError(f"unknown name {tok!r}") from None


def _verdict_table(items: list[str]) -> dict[str, tuple[str, str]]:
    """``"key" : goto chain`` items of a verdict map: key -> (verdict, chain)."""
    table: dict[str, tuple[str, str]] = {}
    for item in items:
        key, _, verdict = item.partition(":")
        words = verdict.split()
        table[_unquote(key.strip())] = (words[0], words[1] if len(words) > 1 else "")
    return table


def _parse_nft_rule(line: str) -> _NftRule:
    r = _NftRule(line)
    t = _tokens(line)
    i = 0
    while i < len(t):
        w = t[i]
        rest = t[i + 1 :]
        if w in ("iifname", "oifname") and rest[0] == "vmap":
            if rest[1].startswith("@"):  # a named map: looked up when the rule runs
                r.vmap = (w, rest[1][1:])
            else:
                r.vmap = (w, _verdict_table(_group(rest[1])))
            i += 3
        elif w in ("iifname", "oifname"):
            neg, at = _neg(rest, 0)
            r.matches.append((w, (_unquote(rest[at]), neg)))
            i += at + 2
        elif w == "ct" and rest[0] == "state":
            r.matches.append(("ct state", frozenset(s.upper() for s in rest[1].split(","))))
            i += 3
        elif w == "meta" and rest[:4] == ["mark", "set", "meta", "mark"]:
            op, value = rest[4], int(rest[5], 16)
            r.statements.append(("and" if op == "&" else "or", value))
            i += 7
        elif w == "meta" and rest[0] == "mark" and rest[1] == "&" and rest[3] == "==":
            r.matches.append(("mark", (int(rest[2], 16), int(rest[4], 16))))
            i += 6
        elif w == "meta" and rest[0] == "nfproto":
            r.matches.append(("nfproto", rest[1]))
            i += 3
        elif w == "meta" and rest[0] == "l4proto":
            neg, at = _neg(rest, 1)
            r.matches.append(("l4proto", (_number(rest[at], PROTOCOL_WORDS), neg)))
            i += at + 2
        elif w in ("ip", "ip6") and rest[0] in ("saddr", "daddr") and rest[1:3] == [".", "th"]:
            neg, at = _neg(rest, 4)
            if rest[3] not in ("sport", "dport") or not rest[at].startswith("@"):
                raise RulesetSyntaxError(f"unknown concatenation in: {line}")
            fam = 4 if w == "ip" else 6
            r.matches.append(("addr.port", (fam, rest[0], rest[3], rest[at][1:], neg)))
            i += at + 2
        elif w in ("ip", "ip6") and rest[0] in ("saddr", "daddr"):
            neg, at = _neg(rest, 1)
            if not rest[at].startswith("@"):
                raise RulesetSyntaxError(f"expected a named set in: {line}")
            r.matches.append(("addr", (4 if w == "ip" else 6, rest[0], rest[at][1:], neg)))
            i += at + 2
        elif w in _PORT_PROTOCOLS and rest[0] in ("sport", "dport"):
            neg, at = _neg(rest, 1)
            r.matches.append(("port", (w, rest[0], _port_ranges(rest[at]), neg)))
            i += at + 2
        elif w in ("icmp", "icmpv6") and rest[0] in ("type", "code"):
            neg, at = _neg(rest, 1)
            if w == "icmp":
                names = ICMP_TYPES if rest[0] == "type" else ICMP_CODES
            else:
                names = ICMPV6_TYPES if rest[0] == "type" else ICMPV6_CODES
            wanted = frozenset(_number(x, names) for x in _group(rest[at]))
            r.matches.append((f"{w} {rest[0]}", (wanted, neg)))
            i += at + 2
        elif w == "log" and rest[0] == "prefix":
            r.log = _unquote(rest[1])
            i += 3
            if i < len(t) and t[i] in ("level", "group"):
                i += 2
        elif w == "comment":
            r.comment = _unquote(rest[0])
            i += 2
        elif w == "notrack":
            r.statements.append(("notrack", 0))
            i += 1
        elif w in _VERDICTS:
            r.verdict = (w, "")
            i += 1
        elif w in ("jump", "goto"):
            r.verdict = (w, rest[0])
            i += 2
        else:
            raise RulesetSyntaxError(f"unknown word {w!r} in rule: {line}")
    return r


class NftProgram:
    """The last ``table`` block of an ``nft -f`` script (earlier ones are deleted by it)."""

    def __init__(self, script: str) -> None:
        self.sets: dict[str, tuple[str, set[object]]] = {}
        self.maps: dict[str, dict[str, tuple[str, str]]] = {}
        """Verdict maps: key -> (verdict, chain)."""
        self.chains: dict[str, list[_NftRule]] = {}
        self.hooks: dict[tuple[str, str], str] = {}
        """(hook, table) -> base chain; the table from the priority (``raw``, ``mangle``,
        else ``filter``)."""
        lines = [ln.strip() for ln in script.splitlines()]
        lines = [ln for ln in lines if ln and not ln.startswith("#")]
        start = max(i for i, ln in enumerate(lines) if ln.startswith("table ") and ln.endswith("{"))
        block: str | None = None
        kind = ""
        for line in lines[start + 1 :]:
            if line == "}":
                block = None
                continue
            if block is None:
                words = line.split()
                if words[0] in ("set", "chain", "map") and words[-1] == "{":
                    kind, block = words[0], words[1]
                    if kind == "set":
                        self.sets[block] = ("", set())
                    elif kind == "map":
                        self.maps[block] = {}
                    else:
                        self.chains[block] = []
                    continue
                raise RulesetSyntaxError(f"unknown line in table: {line}")
            if kind == "set":
                self._set_line(block, line)
            elif kind == "map":
                if line.startswith("elements = "):
                    self.maps[block].update(_verdict_table(_group(line[len("elements = ") :])))
                elif line != "type ifname : verdict":
                    raise RulesetSyntaxError(f"unknown line in map {block}: {line}")
            elif line.startswith("type filter hook "):
                words = line.replace(";", " ").split()
                prio = words[5]
                table = prio if prio in ("raw", "mangle") else "filter"
                if prio not in ("raw", "mangle", "filter"):
                    raise RulesetSyntaxError(f"unknown priority in: {line}")
                self.hooks[(words[3].upper(), table)] = block
            else:
                self.chains[block].append(_parse_nft_rule(line))

    def _set_line(self, name: str, line: str) -> None:
        kind, members = self.sets[name]
        if line.startswith("type "):
            self.sets[name] = (line[5:].strip(), members)
        elif line.startswith("flags "):
            pass
        elif line.startswith("elements = "):
            for item in _group(line[len("elements = ") :]):
                if kind in ("ipv4_addr", "ipv6_addr"):
                    members.add(ipaddress.ip_network(item))
                else:
                    ip, _, port = item.partition(" . ")
                    members.add((ipaddress.ip_address(ip), int(port)))
        else:
            raise RulesetSyntaxError(f"unknown line in set {name}: {line}")

    def _member(self, name: str) -> tuple[str, set[object]]:
        if name not in self.sets:
            raise RulesetSyntaxError(f"rule references set {name!r} that does not exist")
        return self.sets[name]

    def _matches(self, r: _NftRule, w: _Walk) -> bool:
        p = w.packet
        proto = p.proto_word
        number = _PROTOCOL_NUMBERS.get(proto, -1)
        family = p.family
        for kind, arg in r.matches:
            if kind in ("iifname", "oifname"):
                pattern, neg = cast("tuple[str, bool]", arg)
                ok = _iface_match(pattern, p.iif if kind == "iifname" else p.oif) != neg
            elif kind == "ct state":
                ok = w.state in arg  # type: ignore[operator]
            elif kind == "mark":
                mask, value = cast("tuple[int, int]", arg)
                ok = (w.mark & mask) == value
            elif kind == "l4proto":
                want, neg = cast("tuple[int, bool]", arg)
                ok = (number == want) != neg
            elif kind == "nfproto":
                ok = ("ipv6" if ":" in p.src else "ipv4") == arg
            elif kind == "addr":
                fam, where, name, neg = cast("tuple[int, str, str, bool]", arg)
                addr = w.src if where == "saddr" else w.dst
                members = self._member(name)[1]
                hit = addr is not None and any(addr in n for n in members)  # type: ignore[operator]
                # ``ip saddr`` needs an IPv4 packet, ``ip6 saddr`` an IPv6 one, negated or not
                ok = fam == family and hit != neg
            elif kind == "addr.port":
                fam, where, which, name, neg = cast("tuple[int, str, str, str, bool]", arg)
                addr = w.src if where == "saddr" else w.dst
                port = p.port if which == "dport" else p.sport
                members = self._member(name)[1]
                if fam != family:
                    ok = False
                elif addr is None or port is None or proto not in _PORT_PROTOCOLS:
                    # nft needs a transport header for th: without one the rule fails
                    ok = False
                else:
                    ok = ((addr, port) in members) != neg
            elif kind == "port":
                want_proto, which, ranges, neg = cast(
                    "tuple[str, str, list[tuple[int, int]], bool]", arg
                )
                port = p.port if which == "dport" else p.sport
                # "tcp dport != 80" needs TCP too: the protocol is a dependency, not negated
                ok = proto == want_proto and _ports_match(ranges, port) != neg
            elif kind in ("icmp type", "icmp code", "icmpv6 type", "icmpv6 code"):
                wanted, neg = cast("tuple[frozenset[int], bool]", arg)
                icmp = p.icmp_type_code
                value = icmp[0] if kind.endswith("type") else icmp[1]
                need = "icmp" if kind.startswith("icmp ") else "ipv6-icmp"
                ok = proto == need and (value in wanted) != neg
            else:  # pragma: no cover - the parser produces only the kinds above
                raise RulesetSyntaxError(kind)
            if not ok:
                return False
        return True

    def _run(self, chain: str, w: _Walk) -> Verdict | None:
        w.depth += 1
        if w.depth > 64:
            raise RulesetSyntaxError("jump depth exceeds 64 (a loop?)")
        try:
            for r in self.chains[chain]:
                if not self._matches(r, w):
                    continue
                verdict = r.verdict
                if r.vmap is not None:
                    key, table = r.vmap
                    if isinstance(table, str):
                        if table not in self.maps:
                            raise RulesetSyntaxError(
                                f"rule references map {table!r} that does not exist"
                            )
                        table = self.maps[table]
                    name = w.packet.iif if key == "iifname" else w.packet.oif
                    if name not in table:
                        continue
                    verdict = table[name]
                if r.comment:
                    w.trail.append(r.comment)
                if r.log is not None:
                    w.logs.append(r.log)
                for op, value in r.statements:
                    if op == "notrack":
                        w.state = "UNTRACKED"
                    else:
                        w.mark = (w.mark & value) if op == "and" else (w.mark | value)
                if verdict is None:
                    continue
                what, target = verdict
                if what == "accept":
                    return "ACCEPT"
                if what == "drop":
                    return "DROP"
                if what == "return":
                    return None
                if target not in self.chains:
                    raise RulesetSyntaxError(f"jump to unknown chain {target!r}: {r.text}")
                result = self._run(target, w)
                if result is not None or what == "goto":
                    return result
            return None
        finally:
            w.depth -= 1

    def evaluate(self, packet: Packet) -> Decision:
        """Run our base chains for the packet's hook (policy accept), by priority (raw,
        mangle, filter: :data:`TABLES`); no filter base chain: ACCEPT.

        In nftables an ``accept`` ends only that base chain (the packet goes on to the
        next priority), and in our filter chain only our table's verdict, which is what
        we report; a ``drop`` is final for the packet.
        """
        return _through_tables(
            packet,
            lambda _w, table, builtin: self.hooks.get((builtin, table)),
            self._run,
            f"no base chain on hook {packet.hook}: not filtered",
            "no rule decided: base chain policy accept",
        )


def _through_tables(
    packet: Packet,
    entry: Callable[[_Walk, str, str], str | None],
    run: Callable[[str, _Walk], Verdict | None],
    unfiltered: str,
    undecided: str,
) -> Decision:
    """The packet through each table of its hook in order (:data:`TABLES`: raw, mangle,
    filter), for both backends: ``entry`` names the chain a table starts the hook with
    (None: the table has none); an accept ends only its table, a drop is final, and a
    hook without a filter chain is not filtered."""
    w = _Walk(packet, _addr(packet.src), _addr(packet.dst), state=packet.state)
    verdict: Verdict | None = None
    for table, builtin in TABLES[packet.hook]:
        chain = entry(w, table, builtin)
        if chain is None:
            if table == "filter":
                return Decision(
                    "ACCEPT",
                    unfiltered,
                    tuple(w.trail),
                    tuple(w.logs),
                    untracked=w.state == "UNTRACKED",
                )
            continue
        verdict = run(chain, w)
        if verdict == "DROP":
            return Decision(
                "DROP",
                w.trail[-1] if w.trail else "",
                tuple(w.trail),
                tuple(w.logs),
                table,
                w.state == "UNTRACKED",
            )
    untracked = w.state == "UNTRACKED"
    if verdict is None:
        return Decision("ACCEPT", undecided, tuple(w.trail), tuple(w.logs), untracked=untracked)
    return Decision(
        verdict,
        w.trail[-1] if w.trail else "",
        tuple(w.trail),
        tuple(w.logs),
        untracked=untracked,
    )


def program(text: str) -> IptablesProgram | NftProgram:
    """Parse a rendered text of either backend (an nft script starts its table with ``table``)."""
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        return NftProgram(text) if s.startswith("table ") else IptablesProgram(text)
    return IptablesProgram(text)
