"""The lines Log rules wrote for the lab's probes, read from nfnetlink_log in each node.

The lab's agents render Log rules to the nfnetlink_log group of the lab's state
(:data:`sekisho.lab.agents.LOG_GROUP`; a kernel ``LOG`` rule writes nothing in a
network namespace unless the host sets ``nf_log_all_netns``, which the lab never
changes). :class:`LogCapture` binds that group in every node's namespace
(:class:`sekisho.dataplane.nflog.NflogListener`) around a batch of probes and
reads what came; :func:`lines_for` picks a probe's lines by its packet (source
and destination address, protocol, destination port or echo request) and names
the policy rule of each prefix: the comment of the rendered rule that carries
it (:func:`sekisho.render.explain.log_rules`), else what
:func:`sekisho.render.names.parse_log_prefix` reads from the prefix itself.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sekisho.dataplane.nflog import LogRecord, NflogError, NflogListener
from sekisho.errors import LabError, SekishoError
from sekisho.lab.agents import AGENT_PREFIX

if TYPE_CHECKING:
    from sekisho.lab.core import Lab
    from sekisho.render.backends import Ruleset
    from sekisho.render.interpret import Decision, IptablesProgram, NftProgram, Packet
    from sekisho.semantics import Flow

__all__ = ["LogCapture", "LogLine", "lines_for"]

ECHO_REQUESTS = (8, 128)
"""ICMP and ICMPv6 echo request types: what an ICMP probe sends."""


@dataclass(frozen=True, slots=True)
class LogLine:
    """One log rule that logged a probe's packets on one node."""

    node: str
    prefix: str
    rule: str
    """The policy rule the prefix belongs to, in words."""
    packets: int
    """How many of the probe's packets it logged (a dropped TCP probe's SYN is resent)."""
    flow: str = ""
    """The first packet as the record shows it (``TCP 10.0.0.1:40000 -> 10.0.0.2:80``)."""
    at: float | None = None
    """When the kernel received the first packet (its timestamp; else when it was read)."""

    def text(self) -> str:
        s = "" if self.packets == 1 else "s"
        when = ""
        if self.at is not None:
            clock = time.strftime("%H:%M:%S", time.gmtime(self.at))
            when = f" at {clock}.{int(self.at % 1 * 1e6):06d} UTC"
        first = f"; first {self.flow}{when}" if self.flow else ""
        return f"{self.node}: {self.prefix!r} = {self.rule} ({self.packets} packet{s}{first})"

    def to_json(self) -> dict[str, object]:
        return {
            "node": self.node,
            "prefix": self.prefix,
            "rule": self.rule,
            "packets": self.packets,
            "flow": self.flow,
            "time": self.at,
        }


Observed = list[tuple[str, LogRecord]]
"""(node, record) of each packet logged, in the order read."""


def _matches(r: LogRecord, src: str, dst: str, protocol: str, port: int | None) -> bool:
    if r.src != src or r.dst != dst:
        return False
    if protocol == "ICMP":
        return r.protocol in ("ICMP", "ICMPv6") and r.icmp_type in ECHO_REQUESTS
    return r.protocol == protocol and (port is None or r.dport == port)


def lines_for(
    observed: Observed,
    src: str,
    dst: str,
    protocol: str,
    port: int | None,
    rule_of: Any = None,
) -> list[LogLine]:
    """The log lines of the packets from ``src`` to ``dst`` (``protocol``, destination
    ``port``; ICMP: echo requests), one per node and prefix, in the order first seen.
    ``rule_of(node, prefix)`` names the policy rule (default: the prefix read alone)."""
    counts: dict[tuple[str, str], int] = {}
    first: dict[tuple[str, str], LogRecord] = {}
    for node, r in observed:
        if _matches(r, src, dst, protocol, port):
            counts[(node, r.prefix)] = counts.get((node, r.prefix), 0) + 1
            first.setdefault((node, r.prefix), r)
    name = rule_of or (lambda _node, prefix: rule_from_prefix(prefix))
    return [
        LogLine(node, p, name(node, p), n, first[(node, p)].flow(), _when(first[(node, p)]))
        for (node, p), n in counts.items()
    ]


def _when(r: LogRecord) -> float | None:
    return r.timestamp if r.timestamp is not None else (r.received or None)


def rule_from_prefix(prefix: str) -> str:
    """The policy rule a prefix names by itself (a shortened one keeps the start of the name)."""
    from sekisho.render import names

    parsed = names.parse_log_prefix(prefix)
    if parsed is None:
        return "not a prefix of sekisho's"
    _, name, direction, index = parsed
    return f"policy {name} {direction} rule {index}"


class LogCapture:
    """Listeners for the lab's log group in each node (``nodes``: node names; default all),
    opened on entry and closed on every exit. A node whose group cannot be bound (no
    group in the lab's state, another reader holds it) is named in :attr:`problems`
    and the capture goes on without it."""

    def __init__(self, lab: Lab, nodes: Sequence[str] | None = None) -> None:
        self.lab = lab
        self.group: int | None = lab.state.log_group
        plan = lab.plan
        self.nodes = [n for n in plan.nodes if nodes is None or n.name in nodes]
        self.problems: list[str] = []
        self._listeners: list[tuple[str, NflogListener]] = []
        self._stack = contextlib.ExitStack()
        self._rules: dict[str, dict[str, str]] = {}
        self._rulesets: dict[str, Ruleset | None] = {}
        self._programs: dict[str, IptablesProgram | NftProgram | None] = {}

    def __enter__(self) -> LogCapture:
        if self.group is None:
            self.problems.append(
                f"lab {self.lab.name}'s agents log to the kernel log, which a network namespace"
                " does not show (a lab started by an older sekisho: 'lab down', then 'lab up')"
            )
            return self
        try:
            for n in self.nodes:
                listener = NflogListener(self.group, n.netns)
                try:
                    listener.open()
                except NflogError as exc:
                    self.problems.append(f"{n.name}: {exc}")
                    continue
                self._stack.callback(listener.close)
                self._listeners.append((n.name, listener))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def active(self) -> bool:
        return bool(self._listeners)

    def read(self) -> Observed:
        """What every listener got so far (waiting briefly for the last records)."""
        out: Observed = []
        for node, listener in self._listeners:
            try:
                out.extend((node, r) for r in listener.read())
            except NflogError as exc:
                self.problems.append(f"{node}: {exc}")
            lost = f"{node}: the kernel dropped log records (buffer full)"
            if listener.lost and lost not in self.problems:
                self.problems.append(lost)
        return out

    def _ruleset(self, node: str) -> Ruleset | None:
        """What ``node``'s agent enforces for the lab's cluster now (None: not renderable)."""
        if node not in self._rulesets:
            from sekisho.render import render_node

            try:
                self._rulesets[node] = render_node(
                    self.lab.cluster,
                    node,
                    backend="nftables" if self.lab.state.backend == "nftables" else "iptables",
                    prefix=AGENT_PREFIX,
                    log_group=self.group,
                )
            except SekishoError:
                self._rulesets[node] = None
        return self._rulesets[node]

    def rule_of(self, node: str, prefix: str) -> str:
        """The policy rule of ``prefix`` on ``node``: the comment of the rule rendered with it
        (what the node's agent enforces for the lab's cluster now)."""
        if node not in self._rules:
            from sekisho.render.explain import log_rules

            ruleset = self._ruleset(node)
            self._rules[node] = log_rules(ruleset) if ruleset is not None else {}
        found = self._rules[node].get(prefix)
        return found if found is not None else rule_from_prefix(prefix)

    def _decide(self, node: str, packet: Packet) -> Decision:
        if node not in self._programs:
            from sekisho.render.backends import render_backend

            ruleset = self._ruleset(node)
            spell = render_backend(self.lab.state.backend)
            self._programs[node] = (
                spell.interpret(ruleset.render_text()) if ruleset is not None else None
            )
        program = self._programs[node]
        if program is None:
            raise LabError(f"node {node}: its rules cannot be rendered, so no line is expected")
        return program.evaluate(packet)

    def expected(self, flow: Flow) -> list[tuple[str, str]]:
        """(node, prefix) of each Log rule ``flow``'s first packet meets on its way through
        the nodes' rendered rules (the interpreter over the agents' text: ``trace --node``),
        up to the node that drops it."""
        from sekisho.render.path import enforce

        _, trail = enforce(flow, self._decide)
        return list(dict.fromkeys((hop.node, p) for hop, d in trail for p in d.logs))

    def lines(
        self, observed: Observed, src: str, dst: str, protocol: str, port: int | None
    ) -> list[LogLine]:
        return lines_for(observed, src, dst, protocol, port, self.rule_of)
