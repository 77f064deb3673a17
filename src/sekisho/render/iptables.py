"""iptables + ipset text for one node (Calico's shape), from a :class:`NodeRenderer`'s state.

Rules are written in the form ``iptables-save`` prints them (``-i``/``-o``/``-p``
first, then ``-m`` matches in order, the comment last before the target), so
read-back compares token by token after :func:`normalize_iptables_save`.

Layout, all in table ``filter``::

    FORWARD -> P-FORWARD: clear mark; -i cali+ -> P-fw-dispatch;
                          -o cali+ -> P-tw-dispatch; mark set -> ACCEPT
    INPUT   -> P-INPUT:   clear mark; -i cali+ -> P-fw-dispatch; mark set -> ACCEPT
    P-fw-dispatch: -i caliX -g P-fw-caliX ... ; DROP (unknown cali interface)
    P-fw-caliX: ESTABLISHED,RELATED ACCEPT; INVALID DROP; clear the accept and pass marks;
                per tier: clear the pass mark; per policy of it: pass mark clear -> P-po-H,
                accept mark set -> RETURN; pass mark clear -> DROP (end of tier, deny);
                then the profile: set the accept mark
    P-po-H:     per rule: match -> MARK accept (then RETURN) | MARK pass (then RETURN)
                | DROP | LOG (NFLOG with a log group)

A from-endpoint chain RETURNs with the accept mark rather than accepting, so a
packet between two local pods still passes the destination's to-endpoint chain.
What the node itself sends to its pods is not filtered (OUTPUT is hooked only on
a node with a host endpoint, and there returns first for ``-o cali+``).

A node with a host endpoint (Felix's ``felix/rules/static.go`` layout)::

    INPUT   -> P-INPUT:  ... ; [-i IFACE | ! -i cali+] -> P-fh-H; mark set -> ACCEPT
    OUTPUT  -> P-OUTPUT: -o cali+ RETURN; clear mark; [-o IFACE | ! -o cali+] -> P-th-H;
                         mark set -> ACCEPT
    FORWARD -> P-FORWARD: clear mark; [-i IFACE | ! -i cali+] -> P-fhfw-H; the workload
                         dispatch; [-o IFACE | ! -o cali+] -> P-thfw-H; mark set -> ACCEPT
    P-fh-H, P-th-H: replies ACCEPT; INVALID DROP; failsafe ports ACCEPT; the tiers as in
                an endpoint chain; then the profile: mark (projectcalico-default-allow)
                or DROP
    P-fhfw-H, P-thfw-H: the same with the applyOnForward policies, no failsafe ports,
                and the mark at the end (forwarded traffic is allowed by default)

A host endpoint with ``doNotTrack`` or ``preDNAT`` policies (Felix's raw and mangle
chains, ``felix/rules/static.go``) also gets, before the filter table::

    raw PREROUTING -> P-raw-PRE: clear the marks; [-i IFACE | ! -i cali+] -> P-rfh-H;
                         mark set -> ACCEPT (accepted untracked)
    raw OUTPUT     -> P-raw-OUT: clear the marks; [-o IFACE | ! -o cali+] -> P-rth-H;
                         mark set -> ACCEPT
    mangle PREROUTING -> P-mangle-PRE: ESTABLISHED,RELATED ACCEPT; mark set -> ACCEPT;
                         [-i IFACE | ! -i cali+] -> P-mfh-H; mark set -> ACCEPT
    P-rfh-H, P-rth-H, P-mfh-H: failsafe ports ACCEPT (in raw also their replies, by
                source port); the tiers as in an endpoint chain, but an untracked allow
                also NOTRACKs, and no drop at the end of a tier, no profile

and the filter table accepts what they accepted (the accept mark) first in P-INPUT and
P-OUTPUT, and P-FORWARD skips the host endpoint's applyOnForward policies for it (a
local pod's own policies still apply). The policy chains of those policies live in the
raw and mangle tables.

IPv6 gets the same layout in ip6tables' own filter table (the same chain names),
as Felix writes one ruleset per family: policy chains hold the IPv6 rendering of
each program rule, sets of family ``inet6`` (their own names: ipset has one
namespace) hold the IPv6 members, and P-INPUT first accepts the ICMPv6 types IPv6
needs from a local endpoint (neighbour discovery, MLD), as Felix's
workload-to-host chain does.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from functools import partial

from sekisho.model.reader import paused_gc
from sekisho.render import names
from sekisho.render.compile import DIRECTIONS, Direction, Match, PolicyRule, member_texts
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
from sekisho.semantics.program import IcmpMatch

MARK = f"{names.ACCEPT_MARK:#x}/{names.ACCEPT_MARK:#x}"
CLEAR = f"0x0/{names.ACCEPT_MARK:#x}"


@dataclass(frozen=True)
class IpSetSpec:
    """One ipset: name, type, members in ipset syntax (sorted by address)."""

    name: str
    type: str
    """``hash:net`` or ``hash:ip,port``."""
    members: tuple[str, ...]
    family: str = "inet"
    description: str = ""
    """What the set holds, for humans (not part of the kernel object)."""


Chains = tuple[tuple[str, tuple[str, ...]], ...]
"""(our chain, rule specs: the words after ``-A CHAIN``)."""
Table = tuple[str, Chains, tuple[tuple[str, str], ...]]
"""(table name, our chains in it, (builtin chain, rule spec) hook rules)."""

EARLY_TABLES = ("raw", "mangle")
"""The tables before ``filter`` that the early stages (doNotTrack, preDNAT) use."""


@dataclass(frozen=True)
class IptablesRuleset:
    """One node's iptables and ipset documents (see the module docstring for the layout)."""

    prefix: str
    sets: tuple[IpSetSpec, ...]
    chains: tuple[tuple[str, tuple[str, ...]], ...]
    """(our chain, rule specs: the words after ``-A CHAIN``)."""
    hooks: tuple[tuple[str, str], ...]
    """(builtin chain of table filter, rule spec) to sit first in that builtin chain."""
    chains6: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """The same for ip6tables' filter table (the ``inet6`` sets are in :attr:`sets`)."""
    hooks6: tuple[tuple[str, str], ...] = ()
    tables: tuple[Table, ...] = ()
    """The raw and mangle tables (doNotTrack and preDNAT policies), when the node has
    them: written in the same restore document as filter, before it."""
    tables6: tuple[Table, ...] = ()
    node: str = ""
    notes: tuple[str, ...] = ()
    """Comment lines for humans (what was not rendered, and why)."""

    def ipset_restore(self) -> str:
        """``ipset restore`` input: each set is filled under a scratch name and swapped in.

        ``create NAME ... -exist`` makes sure the live set exists; the scratch set is
        created, flushed, filled, swapped with it atomically, and destroyed, so the
        rules referencing ``NAME`` never see it half-filled.
        """
        lines: list[str] = []
        for s in self.sets:
            tmp = names.temp_set_name(s.name, self.prefix)
            lines.append(f"create {s.name} {s.type} family {s.family} -exist")
            lines.append(f"create {tmp} {s.type} family {s.family} -exist")
            lines.append(f"flush {tmp}")
            lines.extend(f"add {tmp} {m}" for m in s.members)
            lines.append(f"swap {tmp} {s.name}")
            lines.append(f"destroy {tmp}")
        return "".join(line + "\n" for line in lines)

    def iptables_restore(self, family: int = 4) -> str:
        """``iptables-restore --noflush`` input (``ip6tables-restore`` for ``family`` 6):
        declares (and so flushes) only our chains."""
        chains = self.chains if family == 4 else self.chains6
        out: list[str] = []
        for name, early, _hooks in self.tables if family == 4 else self.tables6:
            out.append(f"*{name}")
            out.extend(f":{chain} - [0:0]" for chain, _ in early)
            for chain, rules in early:
                out.extend(f"-A {chain} {rule}" for rule in rules)
            out.append("COMMIT")
        out.append("*filter")
        out.extend(f":{name} - [0:0]" for name, _ in chains)
        for name, rules in chains:
            out.extend(f"-A {name} {rule}" for rule in rules)
        out.append("COMMIT")
        return "".join(line + "\n" for line in out)

    def hook_lines(self, family: int = 4, table: str = "filter") -> str:
        """The hook rules of ``table`` as ``-I BUILTIN 1 ...`` lines (first hook inserted last)."""
        if table == "filter":
            hooks = self.hooks if family == 4 else self.hooks6
        else:
            found = [h for n, _c, h in (self.tables if family == 4 else self.tables6) if n == table]
            hooks = found[0] if found else ()
        return "".join(f"-I {chain} 1 {rule}\n" for chain, rule in hooks)

    def header(self) -> str:
        """Comment lines for humans: the node, what each set holds, the notes."""
        parts = [f"# sekisho iptables ruleset for node {self.node} (prefix {self.prefix})\n"]
        for s in self.sets:
            parts.append(f"#   set {s.name} ({s.type}): {s.description}\n")
        parts.extend(f"#   note: {n}\n" for n in self.notes)
        return "".join(parts)

    def render_text(self) -> str:
        """Both documents and the hooks, each after a comment (the renderer's own form;
        ``sekisho render`` prints what the applier sends, with its hash comments)."""
        parts = [self.header()]
        parts.append("# --- ipset restore ---\n")
        parts.append(self.ipset_restore())
        for family, tool in ((4, "iptables"), (6, "ip6tables")):
            if family == 6 and not self.chains6:
                continue
            early = [name for name, _c, _h in (self.tables if family == 4 else self.tables6)]
            which = f"tables {', '.join(early)}, filter" if early else "table filter"
            parts.append(f"# --- {tool}-restore --noflush ({which}) ---\n")
            parts.append(self.iptables_restore(family))
            for table in ("filter", *early):
                parts.append(
                    f"# --- hooks: insert first in the builtin chains ({tool} -t {table}) ---\n"
                )
                parts.append(self.hook_lines(family, table))
        return "".join(parts)

    def chain(self, name: str, family: int = 4) -> tuple[str, ...]:
        for n, rules in self.chains if family == 4 else self.chains6:
            if n == name:
                return rules
        raise KeyError(name)


def _q(comment: str) -> str:
    return '"' + names.comment_text(comment) + '"'


def _c(comment: str) -> str:
    return f"-m comment --comment {_q(comment)}"


PASS = f"{names.PASS_MARK:#x}/{names.PASS_MARK:#x}"
NO_PASS = f"0x0/{names.PASS_MARK:#x}"
CLEAR_BOTH = f"0x0/{names.ACCEPT_MARK | names.PASS_MARK:#x}"

PROTOCOL_WORDS = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp", 136: "udplite"}
"""How ``iptables-save`` names the protocols the program names (others stay numbers)."""


def protocol_word(number: int) -> str:
    return PROTOCOL_WORDS.get(number, str(number))


def set_spec(r: NodeRenderer, key: str, family: int = 4) -> IpSetSpec:
    sd = r.set_defs[key]
    proto = sd.protocol or ""
    return IpSetSpec(
        name=r.set_name(key, family),
        type="hash:net" if sd.kind == "net" else "hash:ip,port",
        members=tuple(
            f"{a}" if port is None else f"{a},{proto}:{port}"
            for a, port in member_texts(r.members[key], family)
        ),
        family="inet" if family == 4 else "inet6",
        description=sd.description + ("" if family == 4 else " (IPv6)"),
    )


def _multiport(ranges: tuple[tuple[int, int], ...]) -> str:
    return ",".join(str(a) if a == b else f"{a}:{b}" for a, b in ranges)


def _icmp(m: IcmpMatch) -> str:
    return str(m.type) if m.code is None else f"{m.type}/{m.code}"


ICMPV6_NEEDED = (130, 131, 132, 133, 135, 136)
"""ICMPv6 types a workload sends its host that are always accepted (Felix's
``ICMPv6Filter`` on the workload-to-host chain): multicast listener query, report
and done; router solicitation; neighbour solicitation and advertisement."""


def match_words(r: NodeRenderer, m: Match, family: int = 4) -> list[str]:
    """The match of one rendered rule in ``iptables-save`` (``ip6tables-save``) order."""
    words: list[str] = []
    if m.protocol is not None:
        words.append(f"-p {protocol_word(m.protocol)}")
    elif m.not_protocol is not None:
        words.append(f"! -p {protocol_word(m.not_protocol)}")
    for keys, neg, where in (
        (m.src_sets, "", "src"),
        (m.not_src_sets, "! ", "src"),
        (m.dst_sets, "", "dst"),
        (m.not_dst_sets, "! ", "dst"),
        ((m.src_named,) if m.src_named else (), "", "src,src"),
        (m.not_src_named, "! ", "src,src"),
        ((m.dst_named,) if m.dst_named else (), "", "dst,dst"),
        (m.not_dst_named, "! ", "dst,dst"),
    ):
        words.extend(f"-m set {neg}--match-set {r.set_name(k, family)} {where}" for k in keys)
    if m.src_ports:
        words.append(f"-m multiport --sports {_multiport(m.src_ports)}")
    words.extend(f"-m multiport ! --sports {_multiport(g)}" for g in m.not_src_ports)
    if m.dst_ports:
        words.append(f"-m multiport --dports {_multiport(m.dst_ports)}")
    words.extend(f"-m multiport ! --dports {_multiport(g)}" for g in m.not_dst_ports)
    module, option = ("icmp", "--icmp-type") if family == 4 else ("icmp6", "--icmpv6-type")
    if m.icmp is not None:
        words.append(f"-m {module} {option} {_icmp(m.icmp)}")
    if m.not_icmp is not None:
        words.append(f"-m {module} ! {option} {_icmp(m.not_icmp)}")
    return words


def _target(r: NodeRenderer, rule: PolicyRule) -> str:
    action = rule.action
    if action == "allow":
        return f"-j MARK --set-xmark {MARK}"
    if action == "pass":
        return f"-j MARK --set-xmark {PASS}"
    if action == "deny":
        return "-j DROP"
    key, label, direction = rule.policy
    text = names.log_prefix(r.prefix, key, label, direction, rule.index, names.XT_LOG_PREFIX_MAX)
    if r.log_group is not None:  # as iptables-save prints it: prefix, then group
        return f'-j NFLOG --nflog-prefix "{text}" --nflog-group {r.log_group}'
    return f'-j LOG --log-prefix "{text}"'


def policy_rule(r: NodeRenderer, rule: PolicyRule, family: int = 4) -> list[str]:
    """One rendered rule (and, after the last of its program rule, the return of an
    allow or a pass: Felix's "set the mark, then return if it is set")."""
    words = match_words(r, rule.match, family)
    out = [" ".join([*words, _c(rule.comment), _target(r, rule)])]
    if rule.last and rule.action == "allow":
        out.append(f"-m mark --mark {MARK} -j RETURN")
    elif rule.last and rule.action == "pass":
        out.append(f"-m mark --mark {PASS} -j RETURN")
    return out


def policy_rules(
    r: NodeRenderer, key: str, direction: Direction, family: int = 4
) -> tuple[str, ...]:
    return tuple(
        line for rule in r.rules((key, direction), family) for line in policy_rule(r, rule, family)
    )


_ENDPOINT_STEP = {
    "replies": "-m conntrack --ctstate RELATED,ESTABLISHED {c} -j ACCEPT",
    "invalid": "-m conntrack --ctstate INVALID {c} -j DROP",
    "clear": "{c} -j MARK --set-xmark " + CLEAR_BOTH,
    "tier": "{c} -j MARK --set-xmark " + NO_PASS,
    "policy": "-m mark --mark " + NO_PASS + " {c} -j {chain}",
    "allowed": "-m mark --mark " + MARK + " {c} -j RETURN",
    "end-of-tier": "-m mark --mark " + NO_PASS + " {c} -j DROP",
    "profile": "{c} -j MARK --set-xmark " + MARK,
    "open": "{c} -j MARK --set-xmark " + MARK,
    "no-profile": "{c} -j DROP",
    "notrack": "-m mark --mark " + MARK + " {c} -j NOTRACK",
}


def _step_rules(
    r: NodeRenderer, steps: tuple[tuple[str, str, str | None], ...], direction: Direction
) -> tuple[str, ...]:
    """A host endpoint chain's steps (the failsafe ports: one rule per protocol)."""
    out: list[str] = []
    for action, comment, pkey in steps:
        if action in FAILSAFE:
            option = "--sports" if action in FAILSAFE_REPLY else "--dports"
            out.extend(
                f"-p {proto} -m multiport {option} {','.join(map(str, ports))} {_c(comment)}"
                " -j ACCEPT"
                for proto, ports in failsafe_groups(action)
            )
            continue
        out.append(
            _ENDPOINT_STEP[action].format(
                c=_c(comment), chain=r.policy_chain(pkey, direction) if pkey else ""
            )
        )
    return tuple(out)


def host_rules(r: NodeRenderer, chain: HostChain) -> tuple[str, ...]:
    """One host endpoint chain of the filter table."""
    assert r.host is not None
    return _step_rules(r, r.host.steps(chain), HOST_CHAINS[chain][0])


def stage_rules(r: NodeRenderer, chain: StageChain) -> tuple[str, ...]:
    """One host endpoint chain of the raw or mangle table (doNotTrack, preDNAT)."""
    assert r.host is not None
    return _step_rules(r, r.host.stage_steps(chain), STAGE_CHAINS[chain][0])


def _host_iface(r: NodeRenderer, flag: str) -> str:
    """The interface match of the host endpoint (``flag`` ``-i`` or ``-o``)."""
    assert r.host is not None
    if r.host.iface is not None:
        return f"{flag} {r.host.iface}"
    return f"! {flag} {r.iface_prefix}+"


def endpoint_rules(r: NodeRenderer, ep: Endpoint, direction: Direction) -> tuple[str, ...]:
    return tuple(
        _ENDPOINT_STEP[action].format(
            c=_c(comment), chain=r.policy_chain(pkey, direction) if pkey else ""
        )
        for action, comment, pkey in ep.steps(direction)
    )


DISPATCH_TREE_MIN = 16
"""From this many local endpoints on, dispatch goes through one chain per next character."""


def dispatch_chains(
    r: NodeRenderer, eps: list[Endpoint], d: Direction, chain: str, flag: str
) -> list[tuple[str, tuple[str, ...]]]:
    """Dispatch by interface: a flat list, or (many endpoints) a two-level tree like Calico's.

    The tree branches on the first character after the interface prefix (a hex digit of
    the name's hash), so a packet passes about 16/2 + n/32 rules instead of n/2.
    """
    unknown = f"{_c(r.prefix + ': unknown endpoint interface')} -j DROP"

    def leaf(group: list[Endpoint]) -> list[str]:
        return [
            f"{flag} {ep.iface} {_c('endpoint ' + ep.pod)} -g {r.endpoint_chain(ep.iface, d)}"
            for ep in group
        ]

    if len(eps) < DISPATCH_TREE_MIN:
        return [(chain, (*leaf(eps), unknown))]
    at = len(r.iface_prefix)
    groups: dict[str, list[Endpoint]] = {}
    for ep in eps:
        groups.setdefault(ep.iface[at : at + 1], []).append(ep)
    top: list[str] = []
    out: list[tuple[str, tuple[str, ...]]] = []
    for key in sorted(groups):
        sub = names.fit(r.prefix, ("fw" if d == "egress" else "tw") + "-d", key, 28)
        top.append(
            f"{flag} {r.iface_prefix}{key}+ {_c(f'{r.prefix}: endpoints {r.iface_prefix}{key}*')}"
            f" -g {sub}"
        )
        out.append((sub, (*leaf(groups[key]), unknown)))
    return [(chain, (*top, unknown)), *out]


def render_iptables(r: NodeRenderer) -> IptablesRuleset:
    """The whole ruleset from the renderer's current state (deterministic)."""
    # Tens of thousands of strings and tuples, no cycles: a collection they trigger would
    # only walk the caller's heap (a loaded cluster: ~0.08 s at 10,000 pods) for nothing.
    with paused_gc():
        return _render_iptables(r)


def _render_iptables(r: NodeRenderer) -> IptablesRuleset:
    p = r.prefix
    ip = r.iface_prefix
    fwd, inp = names.top_chain(p, "FORWARD"), names.top_chain(p, "INPUT")
    from_d, to_d = names.dispatch_chain(p, "egress"), names.dispatch_chain(p, "ingress")
    chains: list[tuple[str, tuple[str, ...]]] = []
    clear = f"{_c(p + ': clear the accept mark')} -j MARK --set-xmark {CLEAR}"
    accept = f"-m mark --mark {MARK} {_c(p + ': endpoint policy allowed it')} -j ACCEPT"
    host = r.host
    fh: tuple[str, ...] = ()
    fhfw: tuple[str, ...] = ()
    thfw: tuple[str, ...] = ()
    early_in: tuple[str, ...] = ()
    early_out: tuple[str, ...] = ()
    if host is not None:
        hep = f"host endpoint {host.name}"
        fh = (
            f"{_host_iface(r, '-i')} {_c(f'{p}: to the node through {hep}')}"
            f" -j {r.host_chain('fh')}",
            f"-m mark --mark {MARK} {_c(p + ': host endpoint policy allowed it')} -j ACCEPT",
        )
        # After an accept in raw or mangle (the mark: raw PREROUTING cleared it first),
        # the host endpoint's applyOnForward policies are skipped.
        unaccepted = f"-m mark --mark {CLEAR} " if host.early_in else ""
        fhfw = (
            f"{_host_iface(r, '-i')} {unaccepted}{_c(f'{p}: forwarded in through {hep}')}"
            f" -j {r.host_chain('fhfw')}",
        )
        thfw = (
            f"{_host_iface(r, '-o')} {_c(f'{p}: forwarded out through {hep}')}"
            f" -j {r.host_chain('thfw')}",
        )
        early = (
            f"-m mark --mark {MARK} "
            f"{_c(f'{p}: accepted by a doNotTrack or preDNAT policy of {hep}')} -j ACCEPT",
        )
        early_in = early if host.early_in else ()
        early_out = early if host.early_out else ()
    chains.append(
        (
            fwd,
            (
                *(() if early_in else (clear,)),
                *fhfw,
                f"-i {ip}+ {_c(p + ': from a local endpoint')} -j {from_d}",
                f"-o {ip}+ {_c(p + ': to a local endpoint')} -j {to_d}",
                *thfw,
                accept,
            ),
        )
    )

    def input_rules(*first: str) -> tuple[str, ...]:
        return (
            *early_in,
            clear,
            *first,
            f"-i {ip}+ {_c(p + ': from a local endpoint')} -j {from_d}",
            accept,
            *fh,
        )

    chains.append((inp, input_rules()))
    eps = sorted(r.endpoints.values(), key=lambda e: e.iface)
    for direction, chain, flag in (("egress", from_d, "-i"), ("ingress", to_d, "-o")):
        d: Direction = "egress" if direction == "egress" else "ingress"
        chains.extend(dispatch_chains(r, eps, d, chain, flag))
    for ep in eps:
        for d in DIRECTIONS:
            rules_ = r.cached(
                "iptables", ("endpoint", ep.pod, d), partial(endpoint_rules, r, ep, d)
            )
            chains.append((r.endpoint_chain(ep.iface, d), rules_))
    hooks: tuple[tuple[str, str], ...] = (
        ("FORWARD", f"{_c(p + ': hook')} -j {fwd}"),
        ("INPUT", f"{_c(p + ': hook')} -j {inp}"),
    )
    if host is not None:
        out = names.top_chain(p, "OUTPUT")
        chains.append(
            (
                out,
                (
                    *early_out,
                    f"-o {ip}+ {_c(p + ': to a local endpoint: not policed (Felix returns early)')}"
                    " -j RETURN",
                    clear,
                    f"{_host_iface(r, '-o')} {_c(f'{p}: from the node through host endpoint {host.name}')}"
                    f" -j {r.host_chain('th')}",
                    f"-m mark --mark {MARK} {_c(p + ': host endpoint policy allowed it')} -j ACCEPT",
                ),
            )
        )
        chains.extend((r.host_chain(c), host_rules(r, c)) for c in HOST_CHAINS)
        hooks += (("OUTPUT", f"{_c(p + ': hook')} -j {out}"),)
    chains6 = list(chains)
    needed = _c(p + ": ICMPv6 that IPv6 needs (neighbour discovery, MLD)")
    chains6[1] = (
        inp,
        input_rules(
            *(
                f"-i {ip}+ -p ipv6-icmp -m icmp6 --icmpv6-type {t} {needed} -j ACCEPT"
                for t in ICMPV6_NEEDED
            )
        ),
    )
    staged: dict[str, tuple[list[tuple[str, tuple[str, ...]]], ...]] = {
        "untracked": ([], []),
        "prednat": ([], []),
    }
    for key, d in sorted(r.chains):
        rules_ = r.cached("iptables", ("policy", key, d), partial(policy_rules, r, key, d))
        rules6 = r.cached("iptables6", ("policy", key, d), partial(policy_rules, r, key, d, 6))
        stage = r.stage(key)
        four, six = (chains, chains6) if stage == "normal" else staged[stage]
        four.append((r.policy_chain(key, d), rules_))
        six.append((r.policy_chain(key, d), rules6))
    tables, tables6 = _early_tables(r, staged)
    specs = (
        r.cached(f"iptables{fam}", ("set", k), partial(set_spec, r, k, fam))
        for k, fam in r.set_families()
    )
    sets = tuple(sorted(specs, key=lambda s: s.name))
    return IptablesRuleset(
        prefix=p,
        sets=sets,
        chains=tuple(chains),
        hooks=hooks,
        chains6=tuple(chains6),
        hooks6=hooks,
        tables=tables,
        tables6=tables6,
        node=r.node,
        notes=r.notes(),
    )


def _early_tables(
    r: NodeRenderer, policies: dict[str, tuple[list[tuple[str, tuple[str, ...]]], ...]]
) -> tuple[tuple[Table, ...], tuple[Table, ...]]:
    """The raw and mangle tables of both families (none without doNotTrack and preDNAT
    policies on the node's host endpoint); ``policies``: each stage's policy chains
    (IPv4, IPv6)."""
    host = r.host
    if host is None or not host.stage_chains():
        return (), ()
    p = r.prefix
    have = host.stage_chains()
    hep = f"host endpoint {host.name}"
    clear = f"{_c(p + ': clear the accept and pass marks')} -j MARK --set-xmark {CLEAR_BOTH}"
    accepted = f"-m mark --mark {MARK} {_c(p + ': accepted untracked (doNotTrack)')} -j ACCEPT"
    raw: list[tuple[str, tuple[str, ...]]] = []
    raw_hooks: list[tuple[str, str]] = []
    if host.early_in:
        # Cleared for every arriving packet (even without doNotTrack ingress policies), so
        # the filter table's accept on the mark means an accept in raw or mangle.
        pre = names.top_chain(p, "raw-PRE")
        jump = (
            (
                f"{_host_iface(r, '-i')} {_c(f'{p}: arriving on {hep}: doNotTrack')}"
                f" -j {r.host_chain('rfh')}",
                accepted,
            )
            if "rfh" in have
            else ()
        )
        raw.append((pre, (clear, *jump)))
        raw_hooks.append(("PREROUTING", f"{_c(p + ': hook')} -j {pre}"))
    if host.early_out:
        out = names.top_chain(p, "raw-OUT")
        raw.append(
            (
                out,
                (
                    clear,
                    f"{_host_iface(r, '-o')} {_c(f'{p}: sent out of {hep}: doNotTrack')}"
                    f" -j {r.host_chain('rth')}",
                    accepted,
                ),
            )
        )
        raw_hooks.append(("OUTPUT", f"{_c(p + ': hook')} -j {out}"))
    raw += [(r.host_chain(c), stage_rules(r, c)) for c in have if c != "mfh"]
    out4: list[Table] = []
    out6: list[Table] = []
    for name, own, hooks, stage in (
        ("raw", raw, raw_hooks, "untracked"),
        ("mangle", _mangle(r) if "mfh" in have else [], [], "prednat"),
    ):
        if not own:
            continue
        if name == "mangle":
            hooks = [("PREROUTING", f"{_c(p + ': hook')} -j {names.top_chain(p, 'mangle-PRE')}")]
        four, six = policies[stage]
        out4.append((name, tuple(own + four), tuple(hooks)))
        out6.append((name, tuple(own + six), tuple(hooks)))
    return tuple(out4), tuple(out6)


def _mangle(r: NodeRenderer) -> list[tuple[str, tuple[str, ...]]]:
    """The mangle table's chains: preDNAT policies on what arrives on the host endpoint,
    after connection tracking (a known connection is not policed there again)."""
    assert r.host is not None
    p = r.prefix
    hep = f"host endpoint {r.host.name}"
    pre = names.top_chain(p, "mangle-PRE")
    return [
        (
            pre,
            (
                f"-m conntrack --ctstate RELATED,ESTABLISHED {_c(p + ': replies and related')}"
                " -j ACCEPT",
                f"-m mark --mark {MARK} {_c(p + ': accepted untracked (doNotTrack)')} -j ACCEPT",
                f"{_host_iface(r, '-i')} {_c(f'{p}: arriving on {hep}: preDNAT')}"
                f" -j {r.host_chain('mfh')}",
                f"-m mark --mark {MARK} {_c(p + ': accepted before DNAT (preDNAT)')} -j ACCEPT",
            ),
        ),
        (r.host_chain("mfh"), stage_rules(r, "mfh")),
    ]


# ------------------------------------------------------------------ read-back


def normalize_iptables_save(text: str, prefix: str) -> list[str]:
    """Our chains and rules from ``iptables-save -t filter`` (or our restore text), canonical.

    Keeps ``:CHAIN`` declarations and ``-A`` rules of chains starting with
    ``prefix-`` plus rules in builtin chains that jump to them; drops counters and
    comments' quoting differences; sorts the chain declarations.
    """
    decls: list[str] = []
    rules: list[str] = []
    mine = prefix + "-"
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(":"):
            name = line[1:].split()[0]
            if name.startswith(mine):
                decls.append(":" + name)
        elif line.startswith(("-A ", "-I ")):
            words = shlex.split(line)
            if words[0] == "-I":
                words = ["-A", words[1], *words[3:]] if words[2].isdigit() else ["-A", *words[1:]]
            if words[1].startswith(mine) or any(w.startswith(mine) for w in words[2:]):
                rules.append(" ".join(shlex.quote(w) for w in words))
    return sorted(decls) + rules


def normalize_ipset_save(text: str, prefix: str) -> list[str]:
    """``ipset save`` (or the members of our restore text) as sorted ``NAME TYPE`` / ``NAME MEMBER``."""
    sets: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    tmp = prefix + "-t-"
    for raw in text.splitlines():
        words = raw.split()
        if len(words) < 2 or not words[1].startswith(prefix + "-"):
            continue
        if words[0] == "create" and not words[1].startswith(tmp):
            sets[words[1]] = words[2]
        elif words[0] == "add":
            members.setdefault(words[1].replace(tmp, prefix + "-s-", 1), []).append(words[2])
    out = [f"{n} {t}" for n, t in sorted(sets.items())]
    for n in sorted(members):
        out.extend(f"{n} {m}" for m in sorted(members[n]))
    return out
