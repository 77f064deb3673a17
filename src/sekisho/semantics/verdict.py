"""A flow's verdict with its explanation: the walk through the policy program, and the
flow-level rules that decide before any policy is read.

The walk (tiers, policies, rules, actions, end of tier, profile) is the
program's meaning, documented in :mod:`sekisho.semantics.program`; this module
follows it for one packet and records every step. What is decided here, each
in one place:

* A pod to itself never leaves the pod: allowed, shown as self.
* Egress is policed only for workload pods (hostNetwork pods are their node,
  and what a node sends does not pass an endpoint chain).
* "Traffic is allowed to a pod if ... the traffic source is the pod's local
  node": a node (or hostNetwork pod) reaching a pod on its own node is never
  filtered (Calico: the node's OUTPUT path is not policed; seed finding 2).
* Ingress is policed only for workload pods; a node or an external address as
  destination meets only the source's egress.
* Replies of an allowed connection are allowed (conntrack), shown on the verdict,
  except that the raw table sees them too: they are walked through the untracked
  (doNotTrack) stage of every host endpoint they cross (:func:`_reply_stages`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sekisho.model.types import Cluster
from sekisho.selectors.expr import explain, matches
from sekisho.semantics.compiler import compile_program
from sekisho.semantics.endpoint import Endpoint, Flow
from sekisho.semantics.labels import NAMESPACE, NS_PREFIX, ORCHESTRATOR
from sekisho.semantics.program import (
    EPHEMERAL_PORTS,
    PORT_PROTOCOLS,
    PROTOCOL_NUMBERS,
    Action,
    Direction,
    EntityMatch,
    Policy,
    PortMatch,
    Program,
    Rule,
    SelectorSet,
    Stage,
    Tier,
    protocol_name,
    source_ports_cover,
)
from sekisho.semantics.universe import (
    Entity,
    IPAddress,
    Universe,
    node_host_endpoint,
    universe_of,
)

if TYPE_CHECKING:
    from sekisho.model.calico import HostEndpoint

Ending = Literal["rule", "end-of-tier", "profile", "failsafe", "continue"]
"""``continue``: an untracked or preDNAT stage where no rule decided (no drop there)."""

STAGE_NAMES: dict[Stage, str] = {
    "untracked": "doNotTrack",
    "prednat": "preDNAT",
    "normal": "normal",
}
STAGE_WHERE: dict[Stage, str] = {
    "untracked": "raw table, before connection tracking",
    "prednat": "mangle table, before DNAT",
    "normal": "filter table",
}

_PAST = {"allow": "allowed", "deny": "denied", "pass": "passed", "log": "logged"}


# ------------------------------------------------------------------------- the record


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule met on the walk: whether it matched, and if not, why."""

    policy: Policy
    direction: Direction
    index: int
    rule: Rule
    matched: bool
    reasons: tuple[str, ...] = ()

    def where(self) -> str:
        return f"{self.policy.label} {self.rule.origin}"

    def __str__(self) -> str:
        if self.matched:
            return f"{self.where()}: {self.rule.action}"
        return f"{self.where()}: " + "; ".join(self.reasons)

    def to_json(self) -> dict[str, object]:
        return {
            "policy": self.policy.label,
            "kind": self.policy.kind,
            "tier": self.policy.tier,
            "rule": self.index,
            "origin": self.rule.origin,
            "action": self.rule.action,
            "matched": self.matched,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True, slots=True)
class PolicyVisit:
    """One policy's part in a walk: the rules evaluated and the one that decided."""

    policy: Policy
    rules: tuple[RuleResult, ...]
    """Every rule evaluated, up to and including the one that decided."""
    decided: RuleResult | None
    """The rule whose action (allow, deny, pass) ended the policy; None: none matched."""

    def to_json(self) -> dict[str, object]:
        return {
            "policy": self.policy.label,
            "kind": self.policy.kind,
            "order": self.policy.order,
            "source": str(self.policy.source),
            "rules": [r.to_json() for r in self.rules],
            "decided": None if self.decided is None else self.decided.rule.action,
        }


@dataclass(frozen=True, slots=True)
class TierVisit:
    """One tier's part in a walk: the policies visited and how the tier ended."""

    tier: Tier
    policies: tuple[PolicyVisit, ...]
    outcome: Action | Literal["end-deny", "end-pass"]
    """The deciding rule's action, or the tier's end action when no rule decided."""

    def to_json(self) -> dict[str, object]:
        return {
            "tier": self.tier.name,
            "order": self.tier.order,
            "policies": [p.to_json() for p in self.policies],
            "outcome": self.outcome,
        }


@dataclass(frozen=True, slots=True)
class DirectionVerdict:
    """One side of a flow: the source pod's egress or the destination pod's ingress."""

    direction: Direction
    endpoint: Endpoint
    """The pod whose policies count."""
    allowed: bool
    tiers: tuple[TierVisit, ...]
    """The tiers that apply to the endpoint, in the order walked."""
    decided: RuleResult | None
    """The rule that decided; None when the end of a tier or the profile did."""
    ending: Ending
    logged: tuple[RuleResult, ...] = ()
    """Log rules that matched on the way."""
    host: HostEndpoint | None = None
    """The host endpoint walked (the node's own traffic); None for a workload pod."""
    forward: bool = False
    """Traffic forwarded through :attr:`host` (its ``applyOnForward`` policies only)."""
    stage: Stage = "normal"
    """The untracked or preDNAT stage at :attr:`host` (program.py), or the normal walk."""
    reply: bool = False
    """A reply packet of the flow (server to client) through the untracked stage."""

    @property
    def accepted(self) -> bool:
        """An allow rule decided (in a stage: the endpoint's later stages are skipped)."""
        return self.ending == "rule" and self.decided is not None and self.allowed

    @property
    def isolated(self) -> bool:
        """Some policy applies to the endpoint in this direction."""
        return bool(self.tiers)

    @property
    def policies(self) -> tuple[Policy, ...]:
        return tuple(pv.policy for tv in self.tiers for pv in tv.policies)

    def because(self) -> str:
        """One line: what decided."""
        if self.reply and self.stage == "untracked":
            if self.ending == "failsafe":
                return (
                    "the reply of a failsafe port: Felix's raw chain accepts it (its source "
                    "port) before any doNotTrack policy"
                )
            if self.ending == "rule":
                assert self.decided is not None
                r = self.decided
                did = "accepted untracked" if self.allowed else "dropped"
                return (
                    f"reply {did} in raw by {r.policy.label} {r.rule.origin} "
                    f"(doNotTrack, tier {r.policy.tier})"
                )
            head = "no rule decided" if self.tiers else "no doNotTrack policy applies"
            return f"doNotTrack stage: {head} for the reply: on past the raw table"
        if self.stage != "normal":
            name = STAGE_NAMES[self.stage]
            if self.ending == "rule":
                assert self.decided is not None
                r = self.decided
                then = (
                    "accepted"
                    + (" untracked" if self.stage == "untracked" else "")
                    + ", the endpoint's later stages are skipped"
                    if self.allowed
                    else "dropped"
                )
                return (
                    f"{name} stage: {r.policy.label} {r.rule.origin}: {then} (tier {r.policy.tier})"
                )
            head = "no rule decided" if self.tiers else f"no {name} policy applies"
            return f"{name} stage: {head}: on to the next stage (no drop at the end of a tier here)"
        if self.ending == "rule":
            assert self.decided is not None
            r = self.decided
            return f"{_PAST[r.rule.action]} by {r.where()} (tier {r.policy.tier})"
        if self.ending == "end-of-tier":
            last = self.tiers[-1].tier.name
            return f"end of tier {last}: no rule matched: denied"
        if self.ending == "failsafe":
            assert self.host is not None
            return (
                f"a failsafe port of Felix (Failsafe{'Inbound' if self.direction == 'ingress' else 'Outbound'}"
                f"HostPorts): host endpoint {self.host.name} always allows it, before any policy"
            )
        if self.host is not None and not self.allowed:
            head = "every tier passed" if self.tiers else f"no policy applies for {self.direction}"
            return (
                f"{head}: host endpoint {self.host.name} has no profile that allows "
                "(projectcalico-default-allow): denied"
            )
        head = "every tier passed" if self.tiers else f"no policy applies for {self.direction}"
        if self.forward:
            return f"{head}: forwarded traffic is allowed when no applyOnForward policy decides"
        if self.host is not None:
            from sekisho.model.calico import DEFAULT_ALLOW_PROFILE

            return f"{head}: its profile {DEFAULT_ALLOW_PROFILE} allows"
        return f"{head}: the profile allows"

    def lines(self) -> list[str]:
        head = f"{self.direction} of {self.endpoint.label}"
        if self.reply and self.host is None:
            head = (
                f"reply: ingress of {self.endpoint.label} (accepted untracked on the way in, "
                "so not ESTABLISHED: its own policy decides it again)"
            )
        if self.reply and self.host is not None:
            head = (
                f"reply at the doNotTrack stage of host endpoint {self.host.name} "
                f"({self.direction}, {STAGE_WHERE['untracked']})"
            )
            if not self.tiers:
                return [f"{head}: {self.because()}"]
        elif self.host is not None and self.stage != "normal":
            head = (
                f"{STAGE_NAMES[self.stage]} stage at host endpoint {self.host.name} "
                f"({self.direction}, {STAGE_WHERE[self.stage]})"
            )
            if not self.tiers:
                return [f"{head}: {self.because()}"]
        elif self.host is not None and self.forward:
            way = "out of" if self.direction == "egress" else "into"
            head = (
                f"forwarded {way} node {self.host.node} through host endpoint "
                f"{self.host.name} ({self.direction}, applyOnForward policies)"
            )
        elif self.host is not None:
            head += f" (host endpoint {self.host.name})"
            if self.ending == "failsafe" or not self.tiers:
                return [f"{head}: {self.because()}"]
        if not self.tiers:
            return [f"{head}: not isolated (no policy selects it for {self.direction}): allowed"]
        n = len(self.policies)
        out = [f"{head}: isolated by {n} polic{'y' if n == 1 else 'ies'}"]
        for tv in self.tiers:
            order = "" if tv.tier.order is None else f", order {_num(tv.tier.order)}"
            out.append(f"  tier {tv.tier.name}{order}:")
            for pv in tv.policies:
                porder = "" if pv.policy.order is None else f", order {_num(pv.policy.order)}"
                out.append(f"  - {pv.policy.label} ({pv.policy.source}{porder})")
                for rr in pv.rules:
                    if rr.matched:
                        out.append(f"    {_PAST[rr.rule.action]} by {rr.where()}")
                    else:
                        out.append(f"    no match: {rr}")
                if not pv.rules:
                    out.append(f"    no {self.direction} rules")
            if tv.outcome == "pass":
                out.append(f"  tier {tv.tier.name}: passed to the next tier")
            elif tv.outcome == "end-pass":
                out.append(
                    f"  end of tier {tv.tier.name}: no rule matched: passed to the next tier"
                )
            elif tv.outcome == "end-deny":
                out.append(f"  end of tier {tv.tier.name}: no rule matched: denied")
        if self.ending in ("profile", "continue") or self.stage != "normal":
            out.append(f"  {self.because()}")
            return out
        if not self.allowed and self.ending == "rule":
            out.append(f"  {self.direction} denied: {self.because()}")
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "endpoint": self.endpoint.label,
            "allowed": self.allowed,
            "isolated": self.isolated,
            "ending": self.ending,
            "because": self.because(),
            "policies": [
                {
                    "name": p.label,
                    "kind": p.kind,
                    "tier": p.tier,
                    "order": p.order,
                    "source": str(p.source),
                }
                for p in self.policies
            ],
            "decided_by": None if self.decided is None else self.decided.to_json(),
            "tiers": [t.to_json() for t in self.tiers],
            "logged": [r.to_json() for r in self.logged],
            "host_endpoint": None if self.host is None else self.host.name,
            "forwarded": self.forward,
            "stage": STAGE_NAMES[self.stage],
            "reply": self.reply,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a flow is allowed, the reason, and both sides' walks."""

    flow: Flow
    allowed: bool
    reason: str
    """``self``, ``same-node``, ``unfiltered``, ``not-isolated``, ``policy``,
    ``egress-denied``, ``ingress-denied``, ``denied`` (both sides) or ``reply-denied``
    (the request passes, the untracked stage drops its replies: :attr:`replies`)."""
    egress: DirectionVerdict | None
    """None when the source is not a workload pod (its egress is not evaluated)."""
    ingress: DirectionVerdict | None
    """None when the destination is not a workload pod, or the source is its own node."""
    src_host: str | None = None
    """The source node's host endpoint (a node or hostNetwork pod source), if any."""
    dst_host: str | None = None
    hosts: bool = False
    """Whether the cluster has host endpoints (explanations then say when a node has none)."""
    forward_egress: DirectionVerdict | None = None
    """A workload's traffic leaving its node through the node's host endpoint: the
    ``applyOnForward`` policies that select that endpoint, for egress."""
    forward_ingress: DirectionVerdict | None = None
    """Traffic entering a workload's node through the node's host endpoint."""
    stages: tuple[DirectionVerdict, ...] = ()
    """The untracked and preDNAT stages walked at host endpoints, in kernel order
    (program.py): the source node's egress, then the destination's ingress."""
    loopback: HostEndpoint | None = None
    """A node's traffic to itself, over ``lo``: the host endpoint (on a named interface)
    that does not police it."""
    replies: tuple[DirectionVerdict, ...] = ()
    """The reply packets (server to client) through the untracked stage of every host
    endpoint they cross, in path order (:func:`_reply_stages`); empty when the request
    did not pass or the program has no doNotTrack policy."""

    @property
    def reply_dropped(self) -> DirectionVerdict | None:
        """The untracked stage that drops the replies, if one does."""
        for st in self.replies:
            if not st.allowed:
                return st
        return None

    @property
    def replies_untracked(self) -> bool:
        """Every host endpoint the replies cross accepted them untracked (and one did)."""
        raw = [st for st in self.replies if st.stage == "untracked"]
        return bool(raw) and all(st.ending == "rule" and st.allowed for st in self.replies)

    @property
    def untracked(self) -> DirectionVerdict | None:
        """The untracked stage that accepted the request, if one did: its replies are
        not in conntrack."""
        for st in self.stages:
            if st.stage == "untracked" and st.accepted:
                return st
        return None

    @property
    def established(self) -> bool:
        """Whether a later packet of this connection, once a node's conntrack knows it,
        passes. Each node accepts ``ESTABLISHED,RELATED`` first in the mangle and filter
        tables, but the raw table comes before conntrack: the untracked stage still sees
        every packet. A deny there drops it; an allow NOTRACKs it, so to what follows it
        is not ESTABLISHED: at a node it is accepted by the mark, forwarded to a pod the
        pod's own ingress policy decides it again (program.py)."""
        if self.reason == "self":
            return True
        for st in self.stages:
            if st.stage != "untracked" or st.ending != "rule":
                continue
            if not st.allowed:
                return False
            if st.direction == "ingress" and self.ingress is not None:
                return self.ingress.allowed
        return True

    def lines(self) -> list[str]:
        f = self.flow
        out = [f"flow: {f.src.describe()} -> {f.dst.describe()} {f.service}"]
        for st in self.stages:
            out += st.lines()
        if self.loopback is not None:
            out.append(
                f"a node's traffic to itself goes over lo, which host endpoint "
                f"{self.loopback.name} (interface {self.loopback.interface}) does not police"
            )
        if self.reason == "self":
            out.append("a pod's traffic to itself never leaves the pod: not filtered")
        elif self.reason == "same-node":
            who = (
                f"node {f.src.label} is"
                if f.src.kind == "node"
                else f"{f.src.label} (hostNetwork) runs on"
            )
            out.append(
                f"{who} {f.dst.label}'s own node: traffic from the local node is never filtered"
            )
            if self.src_host is not None:
                out.append(
                    f"  not even by host endpoint {self.src_host}: Felix returns early in "
                    "OUTPUT for traffic to local workloads (cali+ interfaces)"
                )
        decided = {st.direction: st for st in self.stages if st.ending == "rule"}
        if self.egress is not None:
            out += self.egress.lines()
        elif "egress" in decided and f.src.is_node_like:
            out.append(f"egress: not evaluated ({decided['egress'].because()})")
        elif self.reason != "self":
            why = _why_unfiltered(f.src, "source")
            if f.src.is_node_like and self.src_host is None and self.hosts:
                why += "; its node has no host endpoint"
            out.append(f"egress: not evaluated ({why})")
        if self.ingress is not None:
            out += self.ingress.lines()
        elif "ingress" in decided and f.dst.is_node_like:
            out.append(f"ingress: not evaluated ({decided['ingress'].because()})")
        elif self.reason not in ("self", "same-node"):
            why = _why_unfiltered(f.dst, "destination")
            if f.dst.is_node_like and self.dst_host is not None:
                why = (
                    f"traffic from a pod to its own node passes the pod's egress, not host "
                    f"endpoint {self.dst_host}'s ingress"
                )
            elif f.dst.is_node_like and self.hosts:
                why += "; its node has no host endpoint"
            out.append(f"ingress: not evaluated ({why})")
        for fwd in (self.forward_egress, self.forward_ingress):
            if fwd is not None:
                out += fwd.lines()
        for st in self.replies:
            out += st.lines()
        out.append(f"verdict: {'ALLOWED' if self.allowed else 'DENIED'} ({self.reason})")
        untracked = self.untracked
        dropped = self.reply_dropped
        if dropped is not None:
            why = (
                "the raw table sees every packet, replies of a tracked connection too"
                if dropped.stage == "untracked"
                else "accepted untracked into its node, the reply is not ESTABLISHED there"
            )
            out.append(f"the request passes, but its replies do not: {dropped.because()}; {why}")
        elif self.allowed and untracked is not None and self.replies_untracked:
            out.append(
                "replies are not tracked, and doNotTrack policies accept them untracked "
                "at every host endpoint they cross"
            )
        elif self.allowed and untracked is not None and untracked.decided is not None:
            out.append(
                f"replies are not tracked (accepted untracked by "
                f"{untracked.decided.where()}): conntrack does not allow them, so the "
                "return direction needs its own rule; sekisho walks replies through the "
                "raw table only"
            )
        elif self.allowed:
            out.append(
                "replies of this connection are allowed (stateful: ESTABLISHED,RELATED accepted first)"
            )
        return out

    def to_json(self) -> dict[str, object]:
        f = self.flow
        return {
            "from": f.src.label,
            "to": f.dst.label,
            "protocol": f.protocol,
            "port": f.port,
            "allowed": self.allowed,
            "reason": self.reason,
            "replies_allowed": (
                self.allowed
                if self.untracked is None or self.replies_untracked or not self.allowed
                else None
            ),
            "stages": [st.to_json() for st in self.stages],
            "replies": [st.to_json() for st in self.replies],
            "egress": self.egress.to_json() if self.egress is not None else None,
            "ingress": self.ingress.to_json() if self.ingress is not None else None,
            "forward_egress": None
            if self.forward_egress is None
            else self.forward_egress.to_json(),
            "forward_ingress": None
            if self.forward_ingress is None
            else self.forward_ingress.to_json(),
        }


def _num(x: float) -> str:
    return str(int(x)) if x == int(x) else str(x)


def _why_unfiltered(end: Endpoint, role: str) -> str:
    if end.pod is not None and end.pod.host_network:
        return f"{end.label} is a hostNetwork pod: policy treats it as its node {end.node_name}"
    if end.kind == "node":
        if role == "source":
            return f"node {end.label} sends from the host: it passes no pod's endpoint chain"
        return f"node {end.label} is not a pod: only the source's egress applies"
    if role == "source":
        return f"{end.label} is outside the cluster: it has no egress policy"
    return f"{end.label} is outside the cluster: only the source's egress applies"


# ------------------------------------------------------------------------- matching


def flow_protocol(flow: Flow) -> int:
    """The IP protocol number of a flow (ICMP over IPv6 is ICMPv6)."""
    if flow.protocol == "ICMP":
        return PROTOCOL_NUMBERS["ICMPv6" if flow.dst.ip.version == 6 else "ICMP"]
    return PROTOCOL_NUMBERS[flow.protocol]


def _who(universe: Universe, ip: IPAddress) -> str:
    owners = universe.owners(ip)
    names = [e.key for e in owners if e.kind == "workload"] or [
        f"node {e.key}" for e in owners if e.kind == "node"
    ]
    return f"{ip} ({', '.join(names)})" if names else str(ip)


def _selector_miss(universe: Universe, s: SelectorSet, ip: IPAddress) -> str:
    """Why ``ip`` is not in the selector's set, in the terms of the entity that has it."""
    owners = [e for e in universe.owners(ip) if e.kind in s.kinds]
    if not owners:
        what = "pods" if s.kinds & {"workload"} and "node" not in s.kinds else "nodes"
        if "node" in s.kinds and "workload" in s.kinds:
            what = "pods and nodes"
        return f"{_who(universe, ip)} is not an endpoint: these selectors match only {what}"
    e = owners[0]
    term = explain(s.selector, e.labels) or s.selector.canonical()
    return f"{e.key}{_term_reason(e, term)}"


def _term_reason(e: Entity, term: str) -> str:
    if term.startswith(NAMESPACE + " "):
        ns = e.labels.get(NAMESPACE, "?")
        want = term.split(" ", 2)[2].strip("'\"")
        return f" is in namespace {ns}, not in namespace {want}"
    if term.startswith(ORCHESTRATOR + " "):
        return " is not a Kubernetes pod"
    if NS_PREFIX in term:
        ns = e.labels.get(NAMESPACE, "?")
        ns_labels = {k[len(NS_PREFIX) :]: v for k, v in e.labels.items() if k.startswith(NS_PREFIX)}
        ns_labels.pop("projectcalico.org/name", None)
        return (
            f": namespace {ns} labels {_fmt(ns_labels)} do not satisfy "
            f"{term.replace(NS_PREFIX, '')}"
        )
    return f": labels {_fmt(e.own_labels)} do not satisfy {term}"


def _fmt(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(labels.items())) + "}"


def _side_reasons(
    universe: Universe,
    side: EntityMatch,
    ip: IPAddress,
    role: str,
    proto: int,
    port: int | None,
    ephemeral: bool,
) -> list[str]:
    """``ephemeral``: this side's port is the client's, picked by the kernel from
    :data:`EPHEMERAL_PORTS` (a request's source, a reply's destination)."""
    out: list[str] = []
    if side.nets is not None and not side.nets.contains(ip):
        out.append(f"{role} {_who(universe, ip)} is not in {side.nets.description}")
    if side.not_nets is not None and side.not_nets.contains(ip):
        out.append(f"{role} {_who(universe, ip)} is in excluded {side.not_nets.description}")
    if side.selector is not None and not universe.in_selector(side.selector, ip):
        out.append(f"{role} {_selector_miss(universe, side.selector, ip)}")
    if side.not_selector is not None and universe.in_selector(side.not_selector, ip):
        out.append(
            f"{role} {_who(universe, ip)} matches notSelector {side.not_selector.selector.canonical()}"
        )
    for pm, negated in ((side.ports, False), (side.not_ports, True)):
        if pm is None:
            continue
        if ephemeral:
            hit = source_ports_cover(pm, universe.declared_numbers(pm))
            picked = f"a probe's ephemeral port ({EPHEMERAL_PORTS[0]}-{EPHEMERAL_PORTS[1]})"
            if hit is None:
                out.append(
                    f"{role} port: {picked} is not known to be"
                    f" {'outside' if negated else 'in'} {pm}"
                )
            elif hit == negated:
                out.append(
                    f"{role} port: {picked} is {'one of the excluded ports' if negated else 'not'}"
                    f" {pm}"
                )
            continue
        else:
            hit = universe.in_ports(pm, ip, proto, port)
        if hit == negated:
            shown = "port" if port is None else f"port {port}"
            if negated:
                out.append(f"{role} {shown} is one of the excluded ports {pm}")
            else:
                out.append(f"{role} {shown} is not {pm}" + _named_detail(universe, pm, ip, proto))
    return out


def _named_detail(universe: Universe, pm: PortMatch, ip: IPAddress, proto: int) -> str:
    if not pm.named:
        return ""
    details = []
    for n in pm.named:
        owners = [e for e in universe.owners(ip) if e.kind == "workload"]
        if not owners:
            details.append(f"{ip} is not a pod: named ports never match")
            continue
        number = owners[0].named_port(n.name, protocol_name(n.protocol))
        if number is None:
            details.append(
                f"{owners[0].key} declares no {protocol_name(n.protocol)} port named {n.name}"
            )
        else:
            details.append(
                f"{owners[0].key} declares {n.name} as {protocol_name(n.protocol)}/{number}"
            )
    return f" ({'; '.join(details)})"


def rule_mismatch(universe: Universe, rule: Rule, flow: Flow, *, reply: bool = False) -> list[str]:
    """Empty when ``rule`` matches ``flow``; else every criterion that fails, in words.

    ``reply``: ``flow`` is a reply packet (:func:`reply_flow`): its source port is
    ``flow.port`` (the server's), its destination port the client's ephemeral one,
    treated as a request's source port is (:func:`source_ports_cover`); an ICMP reply
    is an echo reply."""
    proto = flow_protocol(flow)
    out = rule.protocol_misses(proto, flow.dst.ip.version, flow.protocol == "ICMP", reply)
    if not out:
        port = flow.port if proto in PORT_PROTOCOLS else None
        sport, dport = (port, None) if reply else (None, port)
        out += _side_reasons(universe, rule.src, flow.src.ip, "source", proto, sport, not reply)
        out += _side_reasons(universe, rule.dst, flow.dst.ip, "destination", proto, dport, reply)
    return out


def rule_matches(universe: Universe, rule: Rule, flow: Flow) -> bool:
    return not rule_mismatch(universe, rule, flow)


# ------------------------------------------------------------------------- the walk


def applies(policy: Policy, entity: Entity, direction: Direction) -> bool:
    """Whether ``policy`` applies to ``entity`` for ``direction``."""
    return (
        direction in policy.types
        and entity.kind in policy.selector.kinds
        and matches(policy.selector.selector, entity.labels)
    )


def walk(
    program: Program,
    universe: Universe,
    direction: Direction,
    subject: Endpoint,
    flow: Flow,
    host: HostEndpoint | None = None,
    *,
    forward: bool = False,
    stage: Stage = "normal",
    reply: bool = False,
) -> DirectionVerdict:
    """Walk ``flow`` through the program at ``subject`` for ``direction``: a workload pod,
    or (``host``) the host endpoint of a node whose own traffic it is, or that the
    traffic is ``forward``-ed through (give :meth:`Program.forwarded` then), or one of
    its untracked and preDNAT ``stage``-s (give :meth:`Program.stage` then): there a
    tier that decides nothing does not drop, and no profile ends the walk."""
    if host is not None:
        entity = universe.by_key[("host", host.name)]
    else:
        assert subject.pod is not None
        entity = universe.by_key[("workload", subject.pod.key)]
    visits: list[TierVisit] = []
    logged: list[RuleResult] = []
    for tier in program.tiers:
        chosen = [p for p in tier.policies if applies(p, entity, direction)]
        if not chosen:
            continue  # "a tier with no policy for the endpoint is skipped"
        pvisits: list[PolicyVisit] = []
        decided: RuleResult | None = None
        for pol in chosen:
            results: list[RuleResult] = []
            for idx, rule in enumerate(pol.rules(direction)):
                why = rule_mismatch(universe, rule, flow, reply=reply)
                rr = RuleResult(pol, direction, idx, rule, not why, tuple(why))
                results.append(rr)
                if why:
                    continue
                if rule.action == "log":
                    logged.append(rr)
                    continue
                decided = rr
                break
            pvisits.append(PolicyVisit(pol, tuple(results), decided))
            if decided is not None:
                break
        if decided is not None:
            visits.append(TierVisit(tier, tuple(pvisits), decided.rule.action))
            if decided.rule.action == "pass":
                continue
            return DirectionVerdict(
                direction,
                subject,
                decided.rule.action == "allow",
                tuple(visits),
                decided,
                "rule",
                tuple(logged),
                host,
                forward,
                stage,
                reply,
            )
        if tier.default_action == "pass" or stage != "normal":
            visits.append(TierVisit(tier, tuple(pvisits), "end-pass"))
            continue
        visits.append(TierVisit(tier, tuple(pvisits), "end-deny"))
        return DirectionVerdict(
            direction,
            subject,
            False,
            tuple(visits),
            None,
            "end-of-tier",
            tuple(logged),
            host,
            forward,
        )
    if stage != "normal":
        return DirectionVerdict(
            direction,
            subject,
            True,
            tuple(visits),
            None,
            "continue",
            tuple(logged),
            host,
            forward,
            stage,
            reply,
        )
    # The profile: a Kubernetes namespace's allows; a host endpoint's only when it names
    # projectcalico-default-allow ("Drop if no profiles matched").
    # Forwarded traffic: "if a host endpoint is configured, but there are no policies
    # with applyOnForward set to true that apply to that host endpoint and traffic
    # direction, forwarded traffic is allowed in that direction".
    ok = host is None or forward or _default_allow(host)
    return DirectionVerdict(
        direction, subject, ok, tuple(visits), None, "profile", tuple(logged), host, forward
    )


def _default_allow(host: HostEndpoint) -> bool:
    """Whether a host endpoint's profiles allow (Calico's module is loaded with it)."""
    from sekisho.model.calico import DEFAULT_ALLOW_PROFILE

    return DEFAULT_ALLOW_PROFILE in host.profiles


def host_endpoint_of(cluster: Cluster, end: Endpoint) -> HostEndpoint | None:
    """The host endpoint that polices a node's own traffic (a node, or a hostNetwork pod,
    which is its node), if the node has one (:func:`node_host_endpoint`)."""
    if not end.is_node_like or end.node_name is None:
        return None
    return node_host_endpoint(cluster, end.node_name, end.ip)


def _failsafe(
    host: HostEndpoint, direction: Direction, subject: Endpoint, flow: Flow, reply: bool = False
) -> DirectionVerdict | None:
    """Felix's failsafe rules come before any host endpoint policy. ``reply``: the
    replies of a failsafe connection in the raw stage (the other direction's ports,
    matched as the reply's source port)."""
    from sekisho.model.calico import FAILSAFE_INBOUND, FAILSAFE_OUTBOUND

    ports = FAILSAFE_INBOUND if (direction == "ingress") != reply else FAILSAFE_OUTBOUND
    if flow.port is None or (flow.protocol, flow.port) not in ports:
        return None
    if reply:
        return DirectionVerdict(
            direction, subject, True, (), None, "failsafe", (), host, False, "untracked", True
        )
    return DirectionVerdict(direction, subject, True, (), None, "failsafe", (), host)


def _host_walk(
    program: Program,
    universe: Universe,
    direction: Direction,
    subject: Endpoint,
    flow: Flow,
    host: HostEndpoint,
) -> DirectionVerdict:
    return _failsafe(host, direction, subject, flow) or walk(
        program, universe, direction, subject, flow, host
    )


# ------------------------------------------------------------------------- the flow


def verdict(
    cluster: Cluster, flow: Flow, *, program: Program | None = None, pending: bool = False
) -> Verdict:
    """Whether ``flow`` is allowed, with the reason and both sides' walks.

    ``program``: another program over the same cluster (default: the cluster's
    own, :func:`compile_program`); ``pending``: as if its staged policies were
    applied (Calico's preview).
    """
    if program is None:
        program = compile_program(cluster)
    if pending:
        program = program.pending()
    universe = universe_of(cluster)
    src, dst = flow.src, flow.dst
    # A pod to itself never leaves the pod.
    if src.pod is not None and dst.pod is not None and src.pod.key == dst.pod.key:
        return Verdict(flow, True, "self", None, None)
    # "Traffic is allowed to a pod if ... the traffic source is the pod's local node":
    # a node (or hostNetwork pod) reaching a pod on the same node is never filtered
    # (Felix returns early for it in OUTPUT, host endpoint or not).
    same_node = (
        dst.is_workload
        and src.is_node_like
        and src.node_name is not None
        and dst.pod is not None
        and src.node_name == dst.pod.node
    )
    # Egress: a workload pod's own policy; a node's (or hostNetwork pod's) own traffic
    # only under its host endpoint, and never toward its own pods.
    src_host = host_endpoint_of(cluster, src)
    # A node to itself goes over lo, which a host endpoint on a named interface does not
    # police (Felix matches the interface's name); one on every interface (``*``, or
    # expectedIPs only: every interface that is not a workload's) polices lo too.
    loopback = (
        src.is_node_like
        and dst.is_node_like
        and src.node_name is not None
        and src.node_name == dst.node_name
        and src_host is not None
        and src_host.interface not in (None, "*")
    )
    if loopback:
        src_host = None
    stages: list[DirectionVerdict] = []
    egress = None
    eg_stage: DirectionVerdict | None = None
    if src.is_workload:
        egress = walk(program, universe, "egress", src, flow)
    elif src_host is not None and not same_node:
        # The untracked stage first (raw OUTPUT); an accept or a drop there ends it.
        eg_stage = _stages(program, universe, "egress", src, flow, src_host, stages)
        if eg_stage is None:
            egress = _host_walk(program, universe, "egress", src, flow, src_host)
    # Ingress: a workload pod's policy; a node's under its host endpoint, except traffic
    # from its own pods (Felix sends it through the pod's egress, then its
    # DefaultEndpointToHostAction, not through the host endpoint's ingress policy).
    dst_host = None if loopback else host_endpoint_of(cluster, dst)
    from_own_pod = (
        src.is_workload
        and src.pod is not None
        and dst.node_name is not None
        and src.pod.node == dst.node_name
    )
    ingress = None
    in_stage: DirectionVerdict | None = None
    if dst.is_workload and not same_node:
        ingress = walk(program, universe, "ingress", dst, flow)
    elif dst_host is not None and not from_own_pod:
        # Untracked (raw PREROUTING), then preDNAT (mangle PREROUTING), then filter INPUT.
        in_stage = _stages(program, universe, "ingress", dst, flow, dst_host, stages)
        if in_stage is None:
            ingress = _host_walk(program, universe, "ingress", dst, flow, dst_host)
    # Forwarded through a host endpoint ("applyOnForward ... Traffic from a local workload
    # that is forwarded out via a host endpoint"; "Traffic that comes in via a host
    # endpoint and is forwarded to a local workload"): a workload's traffic with anything
    # off its node.
    forward_egress = forward_ingress = None
    src_node = src.pod.node if src.is_workload and src.pod is not None else None
    dst_node = dst.pod.node if dst.is_workload and dst.pod is not None else None
    if src_node is not None and dst.node_name != src_node:
        out_host = node_host_endpoint(cluster, src_node, _node_ip(cluster, src_node))
        if out_host is not None:
            forward_egress = walk(
                program.forwarded(), universe, "egress", src, flow, out_host, forward=True
            )
    if dst_node is not None and src.node_name != dst_node:
        in_host = node_host_endpoint(cluster, dst_node, _node_ip(cluster, dst_node))
        if in_host is not None:
            # Arriving on the host endpoint: its untracked and preDNAT stages, then (if
            # they did not decide) its applyOnForward policies; the pod's own still apply.
            in_stage = _stages(program, universe, "ingress", dst, flow, in_host, stages)
            if in_stage is None:
                forward_ingress = walk(
                    program.forwarded(), universe, "ingress", dst, flow, in_host, forward=True
                )
    eg_ok = (
        (egress is None or egress.allowed)
        and (forward_egress is None or forward_egress.allowed)
        and (eg_stage is None or eg_stage.allowed)
    )
    in_ok = (
        (ingress is None or ingress.allowed)
        and (forward_ingress is None or forward_ingress.allowed)
        and (in_stage is None or in_stage.allowed)
    )
    replies: list[DirectionVerdict] = []
    if eg_ok and in_ok and program.untracked:
        # Where the replies cross a host endpoint, in their path's order: out of the
        # server's node (it is the destination's own traffic), into the client's node
        # (its own traffic, or a pod's forwarded back through its node's endpoint).
        crossings: list[tuple[Direction, Endpoint, HostEndpoint]] = []
        if dst_host is not None and not dst.is_workload and not from_own_pod:
            crossings.append(("egress", dst, dst_host))
        if src_host is not None and not src.is_workload and not same_node:
            crossings.append(("ingress", src, src_host))
        to_pod = None
        if src_node is not None and dst.node_name != src_node:
            back = node_host_endpoint(cluster, src_node, _node_ip(cluster, src_node))
            if back is not None:
                crossings.append(("ingress", src, back))
                to_pod = back
        replies = _reply_stages(program, universe, flow, crossings, to_pod)
    reply_ok = all(st.allowed for st in replies)
    allowed = eg_ok and in_ok and reply_ok
    if not eg_ok and not in_ok:
        reason = "denied"
    elif not eg_ok:
        reason = "egress-denied"
    elif not in_ok:
        reason = "ingress-denied"
    elif not reply_ok:
        reason = "reply-denied"
    elif same_node and egress is None:
        reason = "same-node"
    elif egress is None and ingress is None:
        reason = "unfiltered"
    elif any(
        d is not None and d.isolated
        for d in (egress, ingress, forward_egress, forward_ingress, *stages)
    ):
        reason = "policy"
    else:
        reason = "not-isolated"
    return Verdict(
        flow,
        allowed,
        reason,
        egress,
        ingress,
        src_host.name if src_host is not None else None,
        dst_host.name if dst_host is not None else None,
        bool(cluster.calico and cluster.calico.host_endpoints),
        forward_egress,
        forward_ingress,
        tuple(stages),
        host_endpoint_of(cluster, src) if loopback else None,
        tuple(replies),
    )


def reply_flow(flow: Flow) -> Flow:
    """The replies of ``flow``: from its destination to its source, ``port`` now their
    source port (:func:`rule_mismatch` with ``reply``)."""
    return Flow(flow.dst, flow.src, flow.protocol, flow.port)


# The replies of a connection, through the raw table. Calico: "Unlike normal network
# policy rules, doNotTrack network policy rules are stateless, meaning you must
# explicitly specify rules to allow return traffic that would normally be
# automatically allowed by conntrack"; "Since there is no connection tracking for a
# doNotTrack policy, it is important that the policy's ingress and egress rules are
# specified symmetrically. For example, for a server on port 999, the policy must
# include an ingress rule allowing access to port 999 and an egress rule allowing
# outbound traffic from port 999." Felix renders doNotTrack policies in the raw table,
# before conntrack, with no ESTABLISHED rule there: every packet meets them, the replies
# of a tracked connection too. So a reply is walked through the untracked stage of
# every host endpoint it crosses (egress where the server's node sends it, ingress
# where it arrives on the client's node), as any packet is, with the failsafe ports'
# replies first ("We're in the raw table, before conntrack, so we need to allow
# response traffic", felix/rules/static.go: a source port of the other direction's
# failsafe ports). A drop there fails the connection: the flow is denied
# (``reply-denied``). An allow accepts the reply untracked; no decision lets it on
# (conntrack then knows a tracked connection's reply). The reply's destination port is
# the client's ephemeral one, treated as a request's source port is: a rule on it
# matches only when it holds every ephemeral port or none
# (:func:`~sekisho.semantics.program.source_ports_cover`). A reply accepted untracked on
# its way into a workload client's node is not ESTABLISHED there (NOTRACK): as any
# packet the untracked stage accepted (``Verdict.established``), the client pod's own
# ingress policy decides it again ("A workload's own policy still applies", program.py).
def _reply_stages(
    program: Program,
    universe: Universe,
    flow: Flow,
    crossings: list[tuple[Direction, Endpoint, HostEndpoint]],
    to_pod: HostEndpoint | None = None,
) -> list[DirectionVerdict]:
    back = reply_flow(flow)
    untracked = program.stage("untracked")
    out: list[DirectionVerdict] = []
    for direction, subject, host in crossings:
        failsafe = _failsafe(host, direction, subject, flow, reply=True)
        if failsafe is not None:
            out.append(failsafe)
            continue
        v = walk(untracked, universe, direction, subject, back, host, stage="untracked", reply=True)
        out.append(v)
        if not v.allowed:
            break
        if host is to_pod and v.accepted:
            pod = walk(program, universe, "ingress", subject, back, reply=True)
            out.append(pod)
            if not pod.allowed:
                break
    return out


def _stages(
    program: Program,
    universe: Universe,
    direction: Direction,
    subject: Endpoint,
    flow: Flow,
    host: HostEndpoint,
    out: list[DirectionVerdict],
) -> DirectionVerdict | None:
    """The untracked and (ingress) preDNAT stages at ``host`` (program.py), in order,
    each walked recorded in ``out``; the one that decided (accepted: the endpoint's
    later stages are skipped; or dropped), or None: on to the normal policies.

    Felix's failsafe ports come first in the raw and mangle chains too: a failsafe
    packet is accepted there without the accept mark, so it meets no stage policy
    and goes on to the filter table."""
    if not program.has_stages:
        return None
    from sekisho.model.calico import FAILSAFE_INBOUND, FAILSAFE_OUTBOUND

    ports = FAILSAFE_INBOUND if direction == "ingress" else FAILSAFE_OUTBOUND
    if flow.port is not None and (flow.protocol, flow.port) in ports:
        return None
    names: tuple[Stage, ...] = (
        ("untracked", "prednat") if direction == "ingress" else ("untracked",)
    )
    for st in names:
        staged = program.stage(st)
        if not staged.tiers:
            continue
        v = walk(staged, universe, direction, subject, flow, host, stage=st)
        out.append(v)
        if v.ending == "rule":
            return v
    return None


def _node_ip(cluster: Cluster, name: str) -> IPAddress | None:
    node = cluster.node(name)
    return node.internal_ip if node is not None else None
