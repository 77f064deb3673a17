"""The demo's second act: Calico's own policy model on the seed's cluster, with real packets.

The policies are ``examples/calico`` (a platform tier, a GlobalNetworkSet for
the partner API, Calico policies ordered around a Kubernetes NetworkPolicy, a
staged lockdown of prod) on top of the seed's part1 and part2. Each check is
a real ``ping``/``curl`` in the lab. What a check must show is written here,
from Calico's documented model (tiers walked by order, policies by order
within a tier, the first Allow/Deny decides, Pass goes to the next tier,
staged policies are never enforced); it is the *expectation*. Beside it, each
check also asks sekisho's trace, which must say the same and names the rule
that decided: a check passes only when the packets and trace both agree with
the expectation.

``hosts.yaml`` (the node under a HostEndpoint) is left out: the renderer does
not draw host endpoints yet, so the lab refuses it rather than enforce less.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sekisho.lab.core import Lab
from sekisho.lab.manifests import read_objects
from sekisho.lab.report import Out, Report
from sekisho.model.types import Cluster
from sekisho.semantics import Flow, resolve_endpoint, verdict
from sekisho.semantics.verdict import Verdict

if TYPE_CHECKING:
    from sekisho.lab.demo import Check

FILES = ("tiers.yaml", "platform.yaml", "dev.yaml")
"""``examples/calico`` files the act applies (``staged.yaml`` comes later, by itself)."""

THROUGH = {"answer": True, "refused": True, "reply": True, "timeout": False, "no reply": False}
"""Whether a command's result means the packet got through (``refused``: the
destination itself answered with a reset)."""


@dataclass(frozen=True)
class Probe:
    """One check of the act: a command in the lab and the flow it sends."""

    check: Check
    src: str
    dst: str
    protocol: str
    port: int | None


def _flow(cluster: Cluster, p: Probe) -> Flow:
    return Flow(
        resolve_endpoint(cluster, p.src),
        resolve_endpoint(cluster, p.dst),
        p.protocol,  # type: ignore[arg-type]
        p.port,
    )


def because(v: Verdict) -> str:
    """One line: what decided, with the Log rules met on the way."""
    sides = [s for s in (v.egress, v.ingress) if s is not None and s.isolated]
    if not v.allowed:
        sides = [s for s in sides if not s.allowed]
    words = [f"{s.direction}: {s.because()}" for s in sides]
    words += [f"logged by {r.where()}" for s in sides for r in s.logged]
    return "; ".join(words) or f"not filtered ({v.reason})"


def run_probes(
    lab: Lab, r: Report, cluster: Cluster, probes: Sequence[Probe], *, pending: bool = False
) -> None:
    """Run ``probes`` at once; each passes if packets and trace both show its expectation.

    ``pending``: the trace compared is the staged preview (what Calico's flow
    logs call the pending verdict), the packets still show what is enforced."""
    from sekisho.lab.demo import run_checks

    outcomes = run_checks(lab, [p.check for p in probes])
    for p, o in zip(probes, outcomes, strict=True):
        c = p.check
        want = THROUGH[c.expect]
        v = verdict(cluster, _flow(cluster, p))
        trace_ok = v.allowed == want
        cmd = " ".join(c.argv[:1] + c.argv[-1:])
        r.verdict(
            o.passed and trace_ok,
            f"{c.title}: [{c.where}]$ {cmd} -> {o.got} (expected: {c.expect})",
        )
        r.out(f"        trace: {'ALLOWED' if v.allowed else 'DENIED'}: {because(v)}")
        if pending:
            pv = verdict(cluster, _flow(cluster, p), pending=True)
            r.out(
                f"        pending (staged): {'ALLOWED' if pv.allowed else 'DENIED'}: {because(pv)}"
            )


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


def _log_counters(lab: Lab, node: str, policy: str) -> list[str]:
    """The installed Log rule of ``policy`` on ``node`` with its packet counter."""
    if lab.state.backend == "iptables":
        text = lab.run(node, ["iptables-save", "-c", "-t", "filter"]).stdout
        return [ln for ln in text.splitlines() if "-j LOG" in ln and policy in ln]
    text = lab.run(node, ["nft", "list", "ruleset"]).stdout
    return [ln.strip() for ln in text.splitlines() if " log prefix" in ln and policy in ln]


def act(lab: Lab, r: Report, seed: Path, calico: Path, out: Out) -> None:
    """Apply the Calico policies in three steps and check each claim with packets."""
    from sekisho.lab.demo import _need, curl, ping
    from sekisho.semantics.probe import parse_service
    from sekisho.semantics.staged import matrix_changes, pending_matrix

    part1 = read_objects([seed / "part1"])
    part2 = read_objects([seed / "part2"])
    calico_objs = read_objects([calico / f for f in FILES])
    staged = read_objects([calico / "staged.yaml"])
    kube = part1 + part2
    ext = str(lab.plan.external_ip)
    out("")
    out("Act 2: Calico's own policies (examples/calico) on the seed's cluster")
    out("  part1 and part2 stay in force; Calico walks tier platform (order 100) first,")
    out("  then the default tier, where the Kubernetes NetworkPolicies have order 1000.")

    # Step 1: everything but the deny of order 1500 (the allow of order 2000 then decides).
    cluster = lab.apply(kube + _without(calico_objs, "deny-green-to-red"))
    out("")
    out(
        "applied tier platform, GlobalNetworkSet partner-api (203.0.113.0/24), "
        "platform.dev-never-reaches-prod, platform.dev-egress, dev/block-blue-to-red (order 500), "
        "dev/allow-green-to-red (order 2000)"
    )
    c = cluster
    prod_blue, _ = _need(c, "prod/blue")
    dev_red, red_node = _need(c, "dev/red")
    r.heading(
        "A platform tier denies what applications may not override"
        " (part1 lets TCP 80 into prod from anywhere; platform.dev-never-reaches-prod denies dev)"
    )
    run_probes(
        lab,
        r,
        c,
        [
            Probe(
                curl("dev/blue", f"http://{prod_blue}/", "dev/blue -> prod/blue denied", "timeout"),
                "dev/blue",
                "prod/blue",
                "TCP",
                80,
            ),
            Probe(
                ping("dev/red", prod_blue, "dev/red -> prod/blue ping denied", "no reply"),
                "dev/red",
                "prod/blue",
                "ICMP",
                None,
            ),
            Probe(
                curl(
                    "prod/green",
                    f"http://{prod_blue}/",
                    "prod/green -> prod/blue passed to the default tier, part1 allows",
                    "answer",
                ),
                "prod/green",
                "prod/blue",
                "TCP",
                80,
            ),
        ],
    )
    r.heading(
        "A GlobalNetworkPolicy with a GlobalNetworkSet: dev reaches outside only on TCP 443"
        f" of partner-api (the external host {ext} is in it)"
    )
    run_probes(
        lab,
        r,
        c,
        [
            Probe(
                curl("dev/blue", f"http://{ext}:443/", "dev/blue -> partner-api TCP 443", "answer"),
                "dev/blue",
                ext,
                "TCP",
                443,
            ),
            Probe(
                curl(
                    "dev/blue",
                    f"http://{ext}/",
                    "dev/blue -> the same host on TCP 80 (Deny: notNets)",
                    "timeout",
                ),
                "dev/blue",
                ext,
                "TCP",
                80,
            ),
            Probe(
                curl("prod/blue", f"http://{ext}/", "prod/blue -> outside (not dev)", "answer"),
                "prod/blue",
                ext,
                "TCP",
                80,
            ),
        ],
    )
    r.heading(
        "Order: a lower-order Calico Deny beats a Kubernetes NetworkPolicy's Allow"
        " (dev/allow-blue-to-red, order 1000; act 1 showed dev/blue -> dev/red answered)"
    )
    before = _log_counters(lab, red_node, "block-blue-to-red")
    run_probes(
        lab,
        r,
        c,
        [
            Probe(
                curl(
                    "dev/blue",
                    f"http://{dev_red}/",
                    "dev/blue -> dev/red: block-blue-to-red (order 500) logs, then denies",
                    "timeout",
                ),
                "dev/blue",
                "dev/red",
                "TCP",
                80,
            ),
            Probe(
                curl(
                    "dev/green",
                    f"http://{dev_red}/",
                    "dev/green -> dev/red: allow-green-to-red (order 2000) allows",
                    "answer",
                ),
                "dev/green",
                "dev/red",
                "TCP",
                80,
            ),
        ],
    )
    log_rules(r, lab, red_node, before)

    # Step 2: the deny of order 1500 arrives; the allow of order 2000 now comes too late.
    cluster = lab.apply(kube + calico_objs + staged)
    out("")
    out("applied dev/deny-green-to-red (order 1500) and the StagedNetworkPolicy prod/lockdown")
    c = cluster
    r.heading("Order: a higher-order Allow comes too late (deny-green-to-red, order 1500, first)")
    run_probes(
        lab,
        r,
        c,
        [
            Probe(
                curl(
                    "dev/green",
                    f"http://{dev_red}/",
                    "dev/green -> dev/red: denied at order 1500 before the allow at 2000",
                    "timeout",
                ),
                "dev/green",
                "dev/red",
                "TCP",
                80,
            ),
        ],
    )
    r.heading(
        "A staged policy is shown before it is applied (prod/lockdown: prod takes TCP only"
        " from the ingress controller): never enforced, its pending verdicts previewed"
    )
    enforced = _prod_matrix(c)
    pend = pending_matrix(c, parse_service("80/TCP"), enforced)
    preview = matrix_changes(enforced, pend) if pend is not None else ["no staged policy read"]
    r.out("  $ sekisho matrix ... --probe 80/TCP  (the staged preview, prod and kube-system)")
    for line in preview:
        r.out(f"    {line}")
    r.verdict(
        pend is not None and "prod/green -> prod/blue: allowed -> denied" in "\n".join(preview),
        "the preview says prod/green -> prod/blue would be denied",
    )
    staged_probes = [
        Probe(
            curl(
                "prod/green",
                f"http://{prod_blue}/",
                "staged, not enforced: prod/green -> prod/blue still answered",
                "answer",
            ),
            "prod/green",
            "prod/blue",
            "TCP",
            80,
        ),
    ]
    run_probes(lab, r, c, staged_probes, pending=True)

    # Step 3: the staged policy applied as what it stages.
    cluster = lab.apply(kube + calico_objs + _unstage(staged))
    out("")
    out("applied prod/lockdown as a NetworkPolicy (what the staged policy would set)")
    c = cluster
    ctrl, _ = _need(c, "kube-system/nginx-ingress-controller")
    r.heading("prod/lockdown applied: the pending verdicts are now the enforced ones")
    run_probes(
        lab,
        r,
        c,
        [
            Probe(
                curl(
                    "prod/green",
                    f"http://{prod_blue}/",
                    "prod/green -> prod/blue denied, as previewed",
                    "timeout",
                ),
                "prod/green",
                "prod/blue",
                "TCP",
                80,
            ),
            Probe(
                curl(
                    "prod/blue",
                    f"http://{ctrl}/prod/green",
                    "prod/blue -> nginx -> prod/green still works (lockdown allows the controller)",
                    "answer",
                    pod="prod/green",
                ),
                "kube-system/nginx-ingress-controller",
                "prod/green",
                "TCP",
                80,
            ),
        ],
    )


def _prod_matrix(cluster: Cluster) -> Any:
    from sekisho.semantics import compute_matrix
    from sekisho.semantics.probe import parse_service

    pods = [
        p for p in cluster.pods if p.namespace in ("prod", "kube-system") and not p.host_network
    ]
    return compute_matrix(cluster, parse_service("80/TCP"), pods=pods)


def log_rules(r: Report, lab: Lab, node: str, before: list[str]) -> None:
    """The Log rule's installed line and its packet count, read back after the probe."""
    after = _log_counters(lab, node, "block-blue-to-red")
    backend = lab.state.backend
    cmd = "iptables-save -c" if backend == "iptables" else "nft list ruleset"
    r.out(f"  $ {cmd} (on {node}, the Log rule of dev/block-blue-to-red)")
    for ln in after:
        r.out(f"    {ln}")
    if backend == "iptables":
        count = [int(m.group(1)) for ln in after if (m := re.match(r"\[(\d+):", ln))]
        was = [int(m.group(1)) for ln in before if (m := re.match(r"\[(\d+):", ln))]
        grew = bool(count) and sum(count) > sum(was)
        r.verdict(grew, f"the Log rule counted the probe's packets ({sum(was)} -> {sum(count)})")
    else:
        r.verdict(bool(after), "the Log rule is installed before the deny")
