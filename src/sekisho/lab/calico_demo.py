"""The demo's second act: Calico's own policy model on the seed's cluster.

The policies are ``examples/calico`` (a platform tier, a GlobalNetworkSet for
the partner API, Calico policies ordered around a Kubernetes NetworkPolicy, a
staged lockdown of prod) on top of the seed's part1 and part2, applied in three
steps (:func:`steps`). What each probe must show is written here, from Calico's
documented model (tiers walked by order, policies by order within a tier, the
first Allow or Deny decides, Pass goes on to the next tier, a policy without
order comes last, staged policies are never enforced); it is the
*expectation*. With a lab (:func:`sekisho.lab.demo.calico_act`) each probe is a
real ``ping``/``curl`` and also asks sekisho's trace, which must say the same
and names the rule that decided. Offline (:func:`run_offline`) each probe is
checked by the semantics and by walking the flow through the rendered rules.

The last step, ``hosts.yaml`` (k8s-node1 under a HostEndpoint), runs only where
the renderer draws host endpoints (:func:`hosts_refused` asks the one function
that decides what the agent refuses); otherwise the act says it is left out and
why, rather than enforce less than the manifests say.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sekisho.lab.manifests import read_objects
from sekisho.lab.report import Out
from sekisho.model.types import Cluster
from sekisho.semantics import Flow, compute_matrix, resolve_endpoint, verdict
from sekisho.semantics.probe import parse_service
from sekisho.semantics.staged import matrix_changes, pending_matrix
from sekisho.semantics.verdict import Verdict

FILES = ("tiers.yaml", "platform.yaml", "dev.yaml")
"""``examples/calico`` files the act applies (``staged.yaml`` comes later, by itself)."""

EXTERNAL = "203.0.113.10"
"""The lab's external host, inside the GlobalNetworkSet partner-api (203.0.113.0/24)."""

CONTROLLER = "kube-system/nginx-ingress-controller"

THROUGH = {"answer": True, "refused": True, "reply": True, "timeout": False, "no reply": False}
"""Whether a command's result means the packet got through (``refused``: the
destination itself answered with a reset: nothing listens there)."""

LOGGED = "block-blue-to-red"
"""The policy whose Log rule the act reads back."""


@dataclass(frozen=True)
class Probe:
    """One flow of the act and what Calico's model says it must do."""

    title: str
    src: str
    dst: str
    """A pod (``ns/name``), a node or an IP (the external host)."""
    protocol: Literal["TCP", "ICMP"]
    port: int | None
    expect: str
    """``answer`` / ``refused`` / ``timeout`` (curl), ``reply`` / ``no reply`` (ping)."""
    via: str | None = None
    """In the lab: curl from this pod to ``src`` (the ingress controller) with the path
    ``/dst``, so that the proxy makes the flow ``src -> dst``."""

    @property
    def through(self) -> bool:
        return THROUGH[self.expect]

    def flow(self, cluster: Cluster) -> Flow:
        return Flow(
            resolve_endpoint(cluster, self.src),
            resolve_endpoint(cluster, self.dst),
            self.protocol,
            self.port,
        )


@dataclass(frozen=True)
class Section:
    heading: str
    probes: list[Probe]
    pending: bool = False
    """Show each probe's pending verdict (what the staged policies would do)."""
    preview: bool = False
    """Show the staged preview of the matrix first (prod and kube-system, TCP 80)."""
    log: bool = False
    """Read back the Log rule of :data:`LOGGED` on the destination's node."""


@dataclass(frozen=True)
class Step:
    note: str
    objects: list[dict[str, Any]]
    sections: list[Section] = field(default_factory=list)


def because(v: Verdict) -> str:
    """One line: what decided, with the Log rules met on the way."""
    sides = [
        s
        for s in (v.egress, v.ingress)
        if s is not None and (s.isolated or s.host is not None or s.ending == "failsafe")
    ]
    if not v.allowed:
        sides = [s for s in sides if not s.allowed]
    words = [f"{s.direction}: {s.because()}" for s in sides]
    words += [f"logged by {r.where()}" for s in sides for r in s.logged]
    if v.reason == "same-node":
        words.insert(0, "traffic from a node to its own pods is never filtered")
    return "; ".join(words) or f"not filtered ({v.reason})"


def trace_lines(cluster: Cluster, p: Probe, pending: bool) -> tuple[bool, list[str]]:
    """(trace agrees with the expectation, lines): trace's verdict and, if asked, the pending one."""
    v = verdict(cluster, p.flow(cluster))
    lines = [f"        trace: {'ALLOWED' if v.allowed else 'DENIED'}: {because(v)}"]
    if pending:
        pv = verdict(cluster, p.flow(cluster), pending=True)
        lines.append(
            f"        pending (staged): {'ALLOWED' if pv.allowed else 'DENIED'}: {because(pv)}"
        )
    return v.allowed == p.through, lines


def preview(cluster: Cluster) -> tuple[bool, list[str]]:
    """The staged preview of TCP 80 among prod and kube-system pods, as ``matrix`` shows it;
    (it says prod/green -> prod/blue would be denied, lines)."""
    pods = [
        p for p in cluster.pods if p.namespace in ("prod", "kube-system") and not p.host_network
    ]
    probes = parse_service("80/TCP")
    enforced = compute_matrix(cluster, probes, pods=pods)
    pend = pending_matrix(cluster, probes, enforced)
    lines = ["  $ sekisho matrix ... --probe 80/TCP  (the staged preview, prod and kube-system)"]
    changes = matrix_changes(enforced, pend) if pend is not None else ["no staged policy read"]
    lines += [f"    {line}" for line in changes]
    return any(c.strip() == "prod/green -> prod/blue: allowed -> denied" for c in changes), lines


def _without(objs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["metadata"]["name"] != name]


def _unstage(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A StagedNetworkPolicy with ``stagedAction: Set`` applied: the NetworkPolicy it stages."""
    out = []
    for o in objs:
        o = copy.deepcopy(o)
        if o["kind"] == "StagedNetworkPolicy":
            o["kind"] = "NetworkPolicy"
            o["spec"].pop("stagedAction", None)
        out.append(o)
    return out


def steps(seed: Path, calico: Path) -> list[Step]:
    """The act: three sets of policies, each with its probes."""
    kube = read_objects([seed / "part1"]) + read_objects([seed / "part2"])
    cal = read_objects([calico / f for f in FILES])
    staged = read_objects([calico / "staged.yaml"])
    first = Step(
        "tier platform, GlobalNetworkSet partner-api (203.0.113.0/24), "
        "platform.dev-never-reaches-prod, platform.dev-egress, dev/block-blue-to-red "
        "(order 500), dev/allow-green-to-red (order 2000), over part1 and part2",
        kube + _without(cal, "deny-green-to-red"),
        [
            Section(
                "A platform tier denies what applications may not override"
                " (part1 lets TCP 80 into prod from anywhere; platform.dev-never-reaches-prod"
                " denies dev)",
                [
                    Probe(
                        "dev/blue -> prod/blue denied",
                        "dev/blue",
                        "prod/blue",
                        "TCP",
                        80,
                        "timeout",
                    ),
                    Probe(
                        "dev/red -> prod/blue ping denied",
                        "dev/red",
                        "prod/blue",
                        "ICMP",
                        None,
                        "no reply",
                    ),
                    Probe(
                        "prod/green -> prod/blue passed to the default tier, part1 allows",
                        "prod/green",
                        "prod/blue",
                        "TCP",
                        80,
                        "answer",
                    ),
                ],
            ),
            Section(
                "A GlobalNetworkPolicy with a GlobalNetworkSet: dev reaches outside only on"
                f" TCP 443 of partner-api (the external host {EXTERNAL} is in it)",
                [
                    Probe(
                        "dev/blue -> partner-api TCP 443",
                        "dev/blue",
                        EXTERNAL,
                        "TCP",
                        443,
                        "answer",
                    ),
                    Probe(
                        "dev/blue -> the same host on TCP 80 (Deny: notNets)",
                        "dev/blue",
                        EXTERNAL,
                        "TCP",
                        80,
                        "timeout",
                    ),
                    Probe(
                        "prod/blue -> outside (not dev)", "prod/blue", EXTERNAL, "TCP", 80, "answer"
                    ),
                ],
            ),
            Section(
                "Order: a lower-order Calico Deny beats a Kubernetes NetworkPolicy's Allow"
                " (dev/allow-blue-to-red, order 1000; in act 1 dev/blue -> dev/red answered)",
                [
                    Probe(
                        "dev/blue -> dev/red: block-blue-to-red (order 500) logs, then denies",
                        "dev/blue",
                        "dev/red",
                        "TCP",
                        80,
                        "timeout",
                    ),
                    Probe(
                        "dev/green -> dev/red: allow-green-to-red (order 2000) allows",
                        "dev/green",
                        "dev/red",
                        "TCP",
                        80,
                        "answer",
                    ),
                ],
                log=True,
            ),
        ],
    )
    second = Step(
        "dev/deny-green-to-red (order 1500) and the StagedNetworkPolicy prod/lockdown",
        kube + cal + staged,
        [
            Section(
                "Order: a higher-order Allow comes too late (deny-green-to-red, order 1500, first)",
                [
                    Probe(
                        "dev/green -> dev/red: denied at order 1500 before the allow at 2000",
                        "dev/green",
                        "dev/red",
                        "TCP",
                        80,
                        "timeout",
                    )
                ],
            ),
            Section(
                "A staged policy is shown before it is applied (prod/lockdown: prod takes TCP"
                " only from the ingress controller): never enforced, its pending verdicts previewed",
                [
                    Probe(
                        "staged, not enforced: prod/green -> prod/blue still answered",
                        "prod/green",
                        "prod/blue",
                        "TCP",
                        80,
                        "answer",
                    )
                ],
                pending=True,
                preview=True,
            ),
        ],
    )
    third = Step(
        "prod/lockdown as a NetworkPolicy (what the staged policy would set)",
        kube + cal + _unstage(staged),
        [
            Section(
                "prod/lockdown applied: the pending verdicts are now the enforced ones",
                [
                    Probe(
                        "prod/green -> prod/blue denied, as previewed",
                        "prod/green",
                        "prod/blue",
                        "TCP",
                        80,
                        "timeout",
                    ),
                    Probe(
                        "prod/blue -> nginx -> prod/green still works (lockdown allows the controller)",
                        CONTROLLER,
                        "prod/green",
                        "TCP",
                        80,
                        "answer",
                        via="prod/blue",
                    ),
                    Probe(
                        "k8s-node2 -> k8s-node1 TCP 80: no host endpoint yet, the node is open",
                        "k8s-node2",
                        "k8s-node1",
                        "TCP",
                        80,
                        "refused",
                    ),
                ],
            )
        ],
    )
    fourth = Step(
        "k8s-node1's eth0 as a HostEndpoint (examples/calico/hosts.yaml)",
        kube + cal + _unstage(staged) + read_objects([calico / "hosts.yaml"]),
        [
            Section(
                "A HostEndpoint protects the node (platform.protect-nodes: only the kubelet"
                " port from the node network; Felix's failsafe ports stay open; nothing"
                " listens on the node, so a packet let in is answered with a reset)",
                [
                    Probe(
                        "k8s-node2 -> k8s-node1 TCP 10250 (kubelet) let in",
                        "k8s-node2",
                        "k8s-node1",
                        "TCP",
                        10250,
                        "refused",
                    ),
                    Probe(
                        "k8s-node2 -> k8s-node1 TCP 22, a failsafe port, let in",
                        "k8s-node2",
                        "k8s-node1",
                        "TCP",
                        22,
                        "refused",
                    ),
                    Probe(
                        "k8s-node2 -> k8s-node1 TCP 80 denied",
                        "k8s-node2",
                        "k8s-node1",
                        "TCP",
                        80,
                        "timeout",
                    ),
                    Probe(
                        "k8s-node2 -> k8s-node1 ping denied",
                        "k8s-node2",
                        "k8s-node1",
                        "ICMP",
                        None,
                        "no reply",
                    ),
                    Probe(
                        "k8s-node1 -> its own pod dev/blue still unfiltered (finding 2)",
                        "k8s-node1",
                        "dev/blue",
                        "ICMP",
                        None,
                        "reply",
                    ),
                ],
            )
        ],
    )
    return [first, second, third, fourth]


def hosts_refused(cluster: Cluster) -> str | None:
    """Why the agent would refuse ``cluster``'s host endpoints (None: it enforces them)."""
    from sekisho.errors import ManifestError
    from sekisho.sources.files import refuse_unrendered

    try:
        refuse_unrendered(cluster)
    except ManifestError as e:
        return "; ".join(p.message for p in e.problems)
    return None


def left_out(why: str) -> list[str]:
    return [
        "",
        "left out: the node under a HostEndpoint (examples/calico/hosts.yaml): the agent",
        f"  would refuse it ({why})",
    ]


def intro(out: Out) -> None:
    out("")
    out("Act 2: Calico's own policies (examples/calico) on the seed's cluster")
    out("  part1 and part2 stay in force; Calico walks tier platform (order 100) first,")
    out("  then the default tier, where the Kubernetes NetworkPolicies have order 1000.")


def run_offline(seed: Path, calico: Path, out: Out) -> tuple[int, int]:
    """Act 2 without a kernel: each probe by the semantics and the rendered rules,
    the staged preview, the rendered Log rule; (passed, failed)."""
    from sekisho.lab.offline import Expect, Offline
    from sekisho.model import cluster_from_objects
    from sekisho.render import render_node

    base = read_objects([seed / "cluster.yaml"])
    intro(out)
    passed = failed = 0
    for step in steps(seed, calico):
        cluster = cluster_from_objects(base + step.objects)
        why = hosts_refused(cluster)
        if why is not None:
            for line in left_out(why):
                out(line)
            continue
        o = Offline(cluster, out)
        out("")
        out(f"with {step.note}")
        for sec in step.sections:
            o.heading(sec.heading)
            if sec.preview:
                ok, lines = preview(cluster)
                for line in lines:
                    o.out(line)
                o.verdict(ok, "the preview says prod/green -> prod/blue would be denied")
            for p in sec.probes:
                o.check(Expect(p.title, p.src, p.dst, p.protocol, p.port, p.through))
                ok, lines = trace_lines(cluster, p, sec.pending)
                for line in lines:
                    o.out(line)
            if sec.log:
                red = cluster.pod("dev/red")
                assert red is not None and red.node is not None
                text = render_node(cluster, red.node, backend="iptables").render_text()
                rules = [ln for ln in text.splitlines() if "-j LOG" in ln and LOGGED in ln]
                for ln in rules:
                    o.out(f"  {ln}")
                o.verdict(bool(rules), f"the rendered rules of {red.node} log it before the deny")
                o.verdict(*log_prefix_check(rules, f"NetworkPolicy dev/{LOGGED}"))
        passed += o.passed
        failed += o.failed
    return passed, failed


def expected_log_prefixes(cluster: Cluster, p: Probe, backend: str) -> list[str]:
    """The log prefixes the walk says ``p``'s packets meet on the nodes (the Log rules it
    records on the way: egress first, ingress only when egress lets the packet out), as
    the agents' renderer spells them for ``backend``."""
    from sekisho.lab.agents import AGENT_PREFIX
    from sekisho.render import names

    limit = names.NFT_LOG_PREFIX_MAX if backend == "nftables" else names.XT_LOG_PREFIX_MAX
    v = verdict(cluster, p.flow(cluster))
    sides = [v.egress] if v.egress is not None else []
    if v.ingress is not None and (v.egress is None or v.egress.allowed):
        sides.append(v.ingress)
    out = [
        names.log_prefix(AGENT_PREFIX, r.policy.key, r.policy.label, r.direction, r.index, limit)
        for s in sides
        for r in s.logged
    ]
    return list(dict.fromkeys(out))


def log_prefix_check(rules: list[str], label: str) -> tuple[bool, str]:
    """(whether the Log rules' prefixes name a rule of ``label``, what the kernel log line
    starts with and which policy rule that is)."""
    from sekisho.render import names

    found = [names.rule_log_prefix(r) for r in rules]
    prefixes = sorted({p for p in found if p is not None})
    parsed = [names.parse_log_prefix(p) for p in prefixes]
    ok = bool(rules) and None not in found
    ok = ok and all(names.log_prefix_names(p, label) for p in prefixes)
    where = ", ".join(
        f"{p!r} = {label} {x[2]} rule {x[3]}" if x is not None else f"{p!r} = ?"
        for p, x in zip(prefixes, parsed, strict=True)
    )
    return ok, f"the kernel log line names the policy and rule: {where or 'no prefix'}"
