"""What the rendered rules of the nodes on a flow's path do with it, in words.

``sekisho trace --node`` prints this beside the walk: for each filtering point
the flow passes (:mod:`sekisho.render.path`), the hook and interfaces, the
verdict of the interpreter over the very text ``render`` prints (and the table a
drop happened in when it is not filter: ``raw`` for a doNotTrack deny, ``mangle``
for a preDNAT one), the rule that
decided (and, for an accept, the rule that made the difference), the rules that
matched before it, the rendered rule itself and the members of the sets it uses.
With doNotTrack policies, the replies of a flow the rules let through are shown
too (the raw table sees them: a drop there fails the connection).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

from sekisho.model.types import Cluster
from sekisho.render import names
from sekisho.render.backends import Ruleset, render_backend
from sekisho.render.interpret import Decision, IptablesProgram, NftProgram, Packet
from sekisho.render.iptables import IpSetSpec
from sekisho.render.path import Hop, enforce, enforce_replies, hops
from sekisho.semantics import Flow, compile_program

__all__ = ["enforcing_rule", "explain_enforcement", "log_rules", "logged_as"]


def explain_enforcement(
    cluster: Cluster,
    flow: Flow,
    node: str | None = None,
    backend: str = "iptables",
) -> list[str]:
    """Lines saying what the rendered rules do with ``flow`` on each node it passes.

    With ``node``, only that node's filtering points are shown (and a line when the
    flow does not pass that node's filters). Each hop shows the hook, interfaces,
    verdict, the rule that decided and the rules that matched before it.
    """
    from sekisho.render import check_node, render_node

    spell = render_backend(backend)
    if node is not None:
        check_node(cluster, node)

    @cache
    def ruleset(name: str) -> Ruleset:
        return render_node(cluster, name, backend=spell.name)

    @cache
    def parsed(name: str) -> IptablesProgram | NftProgram:
        return spell.interpret(ruleset(name).render_text())

    def evaluate(name: str, packet: Packet) -> Decision:
        return parsed(name).evaluate(packet)

    path = hops(flow)
    lines = [
        f"enforcement ({backend} rules as rendered): {flow.src.label} -> {flow.dst.label} {flow.service}"
    ]
    if not path:
        lines.append("  no node filters this flow (same pod, or node-originated to its own pod)")
        return lines
    allowed, trail = enforce(flow, evaluate)
    if node is not None and not any(h.node == node for h in path):
        lines.append(f"  the flow does not pass node {node}'s filters")
    _hop_lines(lines, trail, node, ruleset)
    if allowed and compile_program(cluster).untracked:
        # The raw table sees the replies too (the walk walks them: semantics/verdict.py).
        allowed, back = enforce_replies(flow, evaluate)
        lines.append(
            "  replies (to the client's ephemeral port; each node's conntrack state:"
            " ESTABLISHED where it tracked the request, else INVALID, or NEW for UDP;"
            " then TCP's next packets where only the reply was untracked, INVALID):"
        )
        _hop_lines(lines, back, node, ruleset)
        if not allowed:
            lines.append("  the replies are dropped: the connection fails")
    lines.append(f"  rules say: {'allowed' if allowed else 'denied'}")
    return lines


def _hop_lines(
    lines: list[str],
    trail: list[tuple[Hop, Decision]],
    node: str | None,
    ruleset: Callable[[str], Ruleset],
) -> None:
    shown = [(h, d) for h, d in trail if node is None or h.node == node]
    for hop, d in shown:
        p = hop.packet
        where = (
            f"{hop.node} {p.hook}"
            + (f" in={p.iif}" if p.iif else "")
            + (f" out={p.oif}" if p.oif else "")
            + (f" {p.state}" if p.state != "NEW" else "")
        )
        because = "" if d.because == d.rule else f" (because: {d.because})"
        table = "" if d.table == "filter" else f" in {d.table}"
        lines.append(f"  {where}: {d.verdict}{table} by: {d.rule}{because}")
        before = d.trail[:-1] if d.trail and d.trail[-1] == d.rule else d.trail
        lines.extend(f"      matched: {c}" for c in before)
        lines.extend(logged_as(ruleset(hop.node), p) for p in dict.fromkeys(d.logs))
        lines.extend(enforcing_rule(ruleset(hop.node), d.because))


def enforcing_rule(ruleset: Ruleset, comment: str) -> list[str]:
    """The rendered rule whose comment is ``comment``, and the members of each set it uses."""
    quoted = f'"{comment}"'
    rule = next((ln for ln in ruleset.render_text().splitlines() if quoted in ln), None)
    if rule is None:
        return []
    out = [f"      rule: {rule.strip()}"]
    members: dict[str, tuple[str, ...]] = {
        s.name: s.members if isinstance(s, IpSetSpec) else s.elements for s in ruleset.sets
    }
    for name in re.findall(r"--match-set (\S+)|@([\w.-]+)", rule):
        set_name = name[0] or name[1]
        if set_name in members:
            shown = ", ".join(members[set_name][:8])
            more = len(members[set_name]) - 8
            out.append(f"      set {set_name}: {shown}" + (f" (+{more} more)" if more > 0 else ""))
    return out


def log_rules(ruleset: Ruleset) -> dict[str, str]:
    """Each log prefix of ``ruleset`` and the policy rule it belongs to: the comment of the
    rendered rule that carries it (``policy KIND NAME DIRECTION rule N (Log)``)."""
    out: dict[str, str] = {}
    for ln in ruleset.render_text().splitlines():
        prefix = names.rule_log_prefix(ln)
        comment = re.search(r'comment "([^"]*)"', ln) if prefix is not None else None
        if prefix is not None and comment is not None:
            out.setdefault(prefix, comment[1].removesuffix(": log"))
    return out


def logged_as(ruleset: Ruleset, prefix: str) -> str:
    """A line naming the kernel log prefix a Log rule wrote for the packet and the policy
    rule it belongs to (the comment of the rendered rule with that prefix)."""
    which = log_rules(ruleset).get(prefix)
    return f"      logged as {prefix!r} by: {which + ': log' if which else 'not a rule of this ruleset'}"
