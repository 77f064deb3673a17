"""The main job: reproduce every finding of the seed report with real packets.

The seed (``examples/seed``) is built as a lab: 6 nodes, the report's pods,
labels and IPs, the nginx ingress controller, an external host. Each finding
of /work/shared/seed/README.md becomes a headed section of checks; every check
is a real ``ping``/``curl`` run inside a pod or node namespace (or the
installed rules read back with ``iptables-save``/``ipset``/``nft``), and its
PASS or FAIL is decided from what that command returned. What the report
says is the *expectation*; nothing observed is written down here.

Without root or network namespaces, :func:`offline` checks the same findings
with the semantics and the rendered rules instead (:mod:`sekisho.lab.offline`).
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sekisho.errors import LabError
from sekisho.lab import netns
from sekisho.lab.core import Lab
from sekisho.lab.logs import LogCapture, Observed
from sekisho.lab.manifests import read_objects
from sekisho.lab.report import Out, Report, conclusion
from sekisho.model.types import Cluster

CONTROLLER = "kube-system/nginx-ingress-controller"


@dataclass(frozen=True)
class Check:
    """One command and what the report says it must show."""

    title: str
    where: str
    """Lab target: ``ns/pod``, a node name or ``external``."""
    argv: tuple[str, ...]
    expect: str
    """``reply`` / ``no reply`` (ping); ``answer`` / ``timeout`` / ``refused`` (curl)."""
    client: str | None = None
    """For ``answer``: the client IP the answering server must report."""
    pod: str | None = None
    """For ``answer``: the pod that must answer."""


@dataclass(frozen=True)
class Outcome:
    check: Check
    got: str
    answer: dict[str, Any] | None
    passed: bool
    why: str


def ping(where: str, ip: str, title: str, expect: str) -> Check:
    return Check(title, where, ("ping", "-c", "1", "-W", "1", ip), expect)


def curl(
    where: str,
    url: str,
    title: str,
    expect: str,
    client: str | None = None,
    pod: str | None = None,
) -> Check:
    # A dropped SYN costs the connect timeout; an answer, once connected, may take long on
    # a loaded machine (nginx's proxy_read_timeout matches: nginx.py).
    argv = ("curl", "-sS", "--connect-timeout", "1", "-m", "10", url)
    return Check(title, where, argv, expect, client, pod)


def _classify(check: Check, rc: int, stdout: str) -> tuple[str, dict[str, Any] | None]:
    if check.argv[0] == "ping":
        return ("reply" if rc == 0 else "no reply"), None
    if rc == 0:
        try:
            doc = json.loads(stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            doc = None
        return "answer", doc if isinstance(doc, dict) else None
    return {7: "refused", 28: "timeout"}.get(rc, f"curl exit {rc}"), None


def run_checks(lab: Lab, checks: Sequence[Check]) -> list[Outcome]:
    """Run every check at once, each inside its namespace; judge each by what it returned."""
    procs = [
        subprocess.Popen(
            lab.exec_argv(c.where, list(c.argv)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in checks
    ]
    out: list[Outcome] = []
    for c, proc in zip(checks, procs, strict=True):
        try:
            stdout, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, _ = proc.communicate()
        got, doc = _classify(c, proc.returncode, stdout)
        passed, why = got == c.expect, ""
        if passed and c.pod is not None:
            who = doc.get("pod") if doc else None
            passed = who == c.pod
            why = f"answered by {who}"
        if passed and c.client is not None:
            seen = str(doc.get("client", "")).rsplit(":", 1)[0] if doc else ""
            passed = seen == c.client
            why = f"server saw client {seen or '?'}"
        out.append(Outcome(c, got, doc, passed, why))
    return out


def report_outcomes(r: Report, outcomes: Sequence[Outcome]) -> None:
    """One PASS/FAIL line per check: the command, what it returned and what the report saw."""
    for o in outcomes:
        c = o.check
        cmd = " ".join(c.argv[:1] + c.argv[-1:])
        extra = f"; {o.why}" if o.why else ""
        r.verdict(
            o.passed,
            f"{c.title}: [{c.where}]$ {cmd} -> {o.got}{extra} (report: {c.expect})",
        )


def _need(cluster: Cluster, key: str) -> tuple[str, str]:
    pod = cluster.pod(key)
    if pod is None or pod.ip is None or pod.node is None:
        raise LabError(f"the seed cluster has no pod {key} with an IP and a node")
    return str(pod.ip), pod.node


def _node_ip(cluster: Cluster, name: str) -> str:
    node = cluster.node(name)
    if node is None:
        raise LabError(f"the seed cluster has no node {name}")
    return str(node.internal_ip)


def finding1(lab: Lab, r: Report) -> None:
    c = lab.cluster
    green_ip, green_node = _need(c, "prod/green")
    ctrl_ip, _ = _need(c, CONTROLLER)
    backend = lab.state.backend
    r.heading(
        f"Finding 1: enforced with {'iptables + ipset' if backend == 'iptables' else 'nftables sets'}"
        f" (node {green_node}, where prod/green {green_ip} runs)"
    )
    sets: dict[str, list[str]] = {}
    blocks: dict[str, list[str]] = {}
    rules: list[str] = []
    if backend == "iptables":
        res = lab.run(green_node, ["ipset", "list"])
        name = ""
        members = False
        for line in res.stdout.splitlines():
            if line.startswith("Name: "):
                name, members = line[6:].strip(), False
                sets[name], blocks[name] = [], []
            elif line.startswith("Members:"):
                members = True
            elif members and line.strip() and name:
                sets[name].append(line.split()[0])
            if name and line.strip():
                blocks[name].append(line)
        saved = lab.run(green_node, ["iptables-save", "-t", "filter"]).stdout
        rules = [ln for ln in saved.splitlines() if "--match-set" in ln]
    else:
        text = lab.run(green_node, ["nft", "list", "ruleset"]).stdout
        for m in re.finditer(r"\n(\s*)set (\S+) \{(.*?)\n\s*\}", text, re.S):
            el = re.search(r"elements = \{([^}]*)\}", m.group(3))
            sets[m.group(2)] = [e.strip() for e in el.group(1).split(",")] if el else []
            blocks[m.group(2)] = m.group(0).strip("\n").splitlines()
        rules = [ln.strip() for ln in text.splitlines() if "@" in ln]
    only = [n for n, mem in sets.items() if [m.removesuffix("/32") for m in mem] == [ctrl_ip]]
    for n in only:
        r.out(f"  $ {'ipset list' if backend == 'iptables' else 'nft list ruleset'} (the set)")
        for line in blocks.get(n, []):
            r.out("    " + line.replace("\t", "  ").rstrip())
    r.verdict(
        bool(only),
        f"a set holds exactly the ingress controller's IP {ctrl_ip}: {', '.join(only) or 'none found'}",
    )
    matching = []
    for ln in rules:
        for n in only:
            if backend == "iptables":
                hit = (
                    f"--match-set {n} src" in ln and re.search(r"dports? 80\b", ln) and "MARK" in ln
                )
            else:
                hit = f"saddr @{n}" in ln and "dport 80" in ln and "mark set" in ln
            if hit:
                matching.append(ln)
    for ln in matching:
        r.out(f"  $ {'iptables-save' if backend == 'iptables' else 'nft list ruleset'} (excerpt)")
        r.out(f"    {ln}")
    r.verdict(
        bool(matching),
        "a policy rule matches that set as the source on TCP 80 and sets the accept mark",
    )


def finding2(lab: Lab, r: Report) -> None:
    c = lab.cluster
    ip, node = _need(c, "prod/blue")
    other_node = next(n.name for n in c.nodes if n.name != node and n.schedulable)
    same_pod = next(
        p.key for p in c.pods if p.node == node and p.namespace == "dev" and not p.host_network
    )
    far = next(p for p in c.pods if p.node != node and p.namespace == "dev")
    far_pod = far.key
    r.heading(
        f"Finding 2: a pod's own node is not filtered (part1: only TCP 80 into prod;"
        f" prod/blue {ip} on {node})"
    )
    report_outcomes(
        r,
        run_checks(
            lab,
            [
                ping(node, ip, f"its own node {node} pings prod/blue", "reply"),
                curl(
                    node,
                    f"http://{ip}:81/",
                    f"its own node {node} reaches TCP 81 (the pod answers RST: no listener)",
                    "refused",
                ),
                curl(node, f"http://{ip}/", f"its own node {node} curls prod/blue", "answer"),
                ping(same_pod, ip, f"{same_pod} (same node) pings prod/blue", "no reply"),
                curl(
                    same_pod,
                    f"http://{ip}:81/",
                    f"{same_pod} (same node) on TCP 81",
                    "timeout",
                ),
                curl(same_pod, f"http://{ip}/", f"{same_pod} curls prod/blue", "answer"),
                ping(
                    far_pod,
                    ip,
                    f"{far_pod} (node {far.node}) pings prod/blue",
                    "no reply",
                ),
                curl(far_pod, f"http://{ip}/", f"{far_pod} curls prod/blue", "answer"),
                ping(other_node, ip, f"another node {other_node} pings prod/blue", "no reply"),
            ],
        ),
    )


def finding3(lab: Lab, r: Report) -> None:
    c = lab.cluster
    ip, node = _need(c, "prod/blue")
    dev_blue, _ = _need(c, "dev/blue")
    prod_green, _ = _need(c, "prod/green")
    ext = str(lab.plan.external_ip)
    node_ip = _node_ip(c, node)
    r.heading(
        "Finding 3: stateful, replies pass (part1: prod/blue accepts only TCP 80,"
        f" yet its own pings and requests get answers; external host {ext} stands in for 8.8.8.8)"
    )
    report_outcomes(
        r,
        run_checks(
            lab,
            [
                ping(
                    "prod/blue", dev_blue, "prod/blue pings dev/blue, the reply comes back", "reply"
                ),
                curl(
                    "prod/blue",
                    f"http://{prod_green}/",
                    "prod/blue curls prod/green, the response comes back",
                    "answer",
                    pod="prod/green",
                ),
                ping("prod/blue", ext, "prod/blue pings the external host", "reply"),
                curl(
                    "prod/blue",
                    f"http://{ext}/",
                    f"prod/blue curls the external host through NAT (source becomes node {node_ip})",
                    "answer",
                    client=node_ip,
                ),
                ping("dev/blue", ip, "contrast: dev/blue's ping INTO prod/blue", "no reply"),
            ],
        ),
    )


def finding4(lab: Lab, r: Report) -> None:
    c = lab.cluster
    red, _ = _need(c, "dev/red")
    blue, _ = _need(c, "dev/blue")
    green, _ = _need(c, "dev/green")
    r.heading(
        "Finding 4: matchExpressions, ingress and egress together"
        " (part2: dev/red takes TCP 80 from dev/blue, sends TCP 80 to dev/green)"
    )
    report_outcomes(
        r,
        run_checks(
            lab,
            [
                ping("dev/blue", red, "dev/blue -> dev/red ping fails", "no reply"),
                curl("dev/blue", f"http://{red}/", "dev/blue -> dev/red curl succeeds", "answer"),
                ping("dev/green", red, "dev/green -> dev/red ping fails", "no reply"),
                curl("dev/green", f"http://{red}/", "dev/green -> dev/red curl fails", "timeout"),
                ping("dev/red", blue, "dev/red -> dev/blue ping fails", "no reply"),
                curl("dev/red", f"http://{blue}/", "dev/red -> dev/blue curl fails", "timeout"),
                ping("dev/red", green, "dev/red -> dev/green ping fails", "no reply"),
                curl("dev/red", f"http://{green}/", "dev/red -> dev/green curl succeeds", "answer"),
            ],
        ),
    )


def finding5(lab: Lab, r: Report) -> None:
    c = lab.cluster
    ctrl, _ = _need(c, CONTROLLER)
    green, _ = _need(c, "prod/green")
    r.heading(
        "Finding 5: ingress controller traffic is SNATed"
        f" (part2: prod/green takes TCP 80 only from the controller {ctrl}; nginx proxies /prod/green)"
    )
    report_outcomes(
        r,
        run_checks(
            lab,
            [
                curl(
                    "prod/blue",
                    f"http://{ctrl}/prod/green",
                    "prod/blue -> nginx -> prod/green works; prod/green sees the controller's IP",
                    "answer",
                    client=ctrl,
                    pod="prod/green",
                ),
                curl(
                    "prod/blue",
                    f"http://{green}/",
                    "prod/blue -> prod/green directly does not",
                    "timeout",
                ),
            ],
        ),
    )


def full_matrix(lab: Lab, r: Report) -> None:
    from sekisho.lab.reach import format_tables, measure

    r.heading("Every pod pair, expected (semantics) against observed (packets), part2 in force")
    result = measure(lab.cluster, lab.plan, [(80, "TCP"), (None, "ICMP")])
    for line in format_tables(result).splitlines():
        r.out("  " + line)
    r.verdict(
        result.mismatches == 0,
        f"observed equals expected in every cell ({result.mismatches} wrong)",
    )


def _log_rules(lab: Lab, node: str) -> list[str]:
    """The installed Log rules of :data:`calico_demo.LOGGED` on ``node`` (``NFLOG`` to the
    lab's log group, ``LOG`` without one)."""
    from sekisho.lab.calico_demo import LOGGED
    from sekisho.render.names import rule_log_prefix

    if lab.state.backend == "iptables":
        text = lab.run(node, ["iptables-save", "-t", "filter"]).stdout
    else:
        text = lab.run(node, ["nft", "list", "ruleset"]).stdout
    return [ln.strip() for ln in text.splitlines() if rule_log_prefix(ln) and LOGGED in ln]


def calico_act(lab: Lab, r: Report, seed: Path, calico: Path, out: Out) -> None:
    """Act 2 (:mod:`sekisho.lab.calico_demo`) with packets: each probe must show its
    expectation, and trace must say the same."""
    from sekisho.lab import calico_demo as cd
    from sekisho.model import cluster_from_objects

    cd.intro(out)
    base = read_objects([seed / "cluster.yaml"])
    for step in cd.steps(seed, calico):
        why = cd.hosts_refused(cluster_from_objects(base + step.objects))
        if why is not None:
            for line in cd.left_out(why):
                out(line)
            continue
        t = time.monotonic()
        cluster = lab.apply(step.objects)
        out("")
        out(f"applied {step.note} ({time.monotonic() - t:.1f} s)")
        for sec in step.sections:
            r.heading(sec.heading)
            if sec.preview:
                ok, lines = cd.preview(cluster)
                for line in lines:
                    r.out(line)
                r.verdict(ok, "the preview says prod/green -> prod/blue would be denied")
            _, red_node = _need(cluster, "dev/red")
            checks = []
            for p in sec.probes:
                if p.via is not None:
                    ip, _ = _need(cluster, p.src)
                    checks.append(curl(p.via, f"http://{ip}/{p.dst}", p.title, p.expect, pod=p.dst))
                    continue
                if p.dst == cd.EXTERNAL:
                    ip = p.dst
                elif cluster.node(p.dst) is not None:
                    ip = _node_ip(cluster, p.dst)
                else:
                    ip = _need(cluster, p.dst)[0]
                if p.protocol == "ICMP":
                    checks.append(ping(p.src, ip, p.title, p.expect))
                else:
                    port = "" if p.port == 80 else f":{p.port}"
                    checks.append(curl(p.src, f"http://{ip}{port}/", p.title, p.expect))
            observed: Observed = []
            with LogCapture(lab) if sec.log else contextlib.nullcontext() as capture:
                outcomes = run_checks(lab, checks)
                if capture is not None:
                    observed = capture.read()
            for p, o in zip(sec.probes, outcomes, strict=True):
                trace_ok, lines = cd.trace_lines(cluster, p, sec.pending)
                c = o.check
                cmd = " ".join(c.argv[:1] + c.argv[-1:])
                extra = f"; {o.why}" if o.why else ""
                r.verdict(
                    o.passed and trace_ok,
                    f"{c.title}: [{c.where}]$ {cmd} -> {o.got}{extra} (expected: {c.expect})",
                )
                for line in lines:
                    r.out(line)
                if capture is not None:
                    _log_lines(r, cluster, p, capture, observed, lab.state.backend)
            if sec.log:
                after = _log_rules(lab, red_node)
                cmd = "iptables-save" if lab.state.backend == "iptables" else "nft list ruleset"
                r.out(f"  $ {cmd} (on {red_node}, the Log rule of dev/{cd.LOGGED})")
                for ln in after:
                    r.out(f"    {ln}")
                r.verdict(*cd.log_prefix_check(after, f"NetworkPolicy dev/{cd.LOGGED}"))
                for problem in capture.problems if capture is not None else []:
                    r.verdict(False, f"log lines not read: {problem}")


def _log_lines(
    r: Report, cluster: Cluster, p: Any, capture: LogCapture, observed: Observed, backend: str
) -> None:
    """The lines the Log rules wrote for probe ``p`` (read from nfnetlink_log in the nodes),
    judged against the Log rules the walk meets on the way."""
    from sekisho.lab import calico_demo as cd

    src, _ = _need(cluster, p.src)
    dst, _ = _need(cluster, p.dst)
    lines = capture.lines(observed, src, dst, p.protocol, p.port)
    for line in lines:
        r.out(f"        log: {line.text()}")
    want = cd.expected_log_prefixes(cluster, p, backend)
    got = [line.prefix for line in lines]
    if want:
        said = ", ".join(repr(w) for w in want)
        ok = sorted(got) == sorted(want)
        r.verdict(ok, f"{p.title}: the Log rule's line came, as trace says ({said})")
    else:
        r.verdict(not got, f"{p.title}: no log line, as trace says (no Log rule on the way)")


def _apply(lab: Lab, objects: list[dict[str, Any]], what: str, out: Out) -> None:
    t = time.monotonic()
    lab.apply(objects)
    out("")
    out(f"applied {what}: every agent shows it ({time.monotonic() - t:.1f} s)")


ACTS = ("both", "seed", "calico")
"""``seed``: the report's findings; ``calico``: Calico's own policy model
(:mod:`sekisho.lab.calico_demo`); ``both``: one after the other in one lab."""


def run(
    seed: Path,
    backend: str,
    out: Out,
    name: str = "demo",
    store: str = "etcd",
    acts: str = "both",
    calico: Path | None = None,
) -> bool:
    """Build the seed lab, reproduce findings 1-5, print the matrix, then (``acts``) show
    Calico's own policies with packets; tear down; True if all pass."""
    from sekisho.lab.lifecycle import guarded

    start = time.monotonic()
    cluster_objs = read_objects([seed / "cluster.yaml"])
    part1 = read_objects([seed / "part1"])
    part2 = read_objects([seed / "part2"])
    r = Report(out)
    with guarded(name):
        Lab(name).down()  # remains of an earlier, crashed demo
        out(f"building the seed cluster from {seed} ({backend}) ...")
        lab = Lab.up(cluster_objs + part2, name=name, backend=backend, store=store)
        p = lab.plan
        out(
            f"lab up in {time.monotonic() - start:.1f} s: {len(p.nodes)} nodes, {len(p.pods)} pods,"
            f" one sekisho agent per node, nginx in {CONTROLLER}, external host {p.external_ip}"
        )
        if store == "etcd":
            out(
                "the agents learn the cluster from a three-member etcd inside the lab"
                " (TLS, read-only role); changes are written to it as `sekisho apply` does"
            )
        policies = ", ".join(o["metadata"]["name"] for o in part2)
        out(f"applied part2 ({policies})")
        if acts in ("both", "seed"):
            out("")
            out("Act 1: the seed report's findings")
            finding1(lab, r)
            _apply(lab, part1, "part1 (allow-tcp-80 in prod)", out)
            finding2(lab, r)
            finding3(lab, r)
            _apply(lab, part2, f"part2 ({policies})", out)
            finding4(lab, r)
            finding5(lab, r)
            full_matrix(lab, r)
        if acts in ("both", "calico"):
            t = time.monotonic()
            calico_act(lab, r, seed, calico or seed.parent / "calico", out)
            out(f"(act 2 took {time.monotonic() - t:.1f} s)")
        out("")
        out("removing the lab ...")
    out(f"{conclusion(r.passed, r.failed)} in {time.monotonic() - start:.1f} s")
    return r.failed == 0


def offline(seed: Path, out: Out, why: str, acts: str = "both", calico: Path | None = None) -> bool:
    """The findings without a kernel (semantics and rendered rules); True if all agree."""
    from sekisho.lab import calico_demo
    from sekisho.lab.offline import run_offline

    out(f"no lab here: {why}")
    out("showing the offline analysis instead: each finding checked by the semantics and by")
    out("walking the flow through the iptables rules sekisho renders (no packets are sent).")
    ok = True
    if acts in ("both", "seed"):
        ok = run_offline(seed, out)
    if acts in ("both", "calico"):
        passed, failed = calico_demo.run_offline(seed, calico or seed.parent / "calico", out)
        out("")
        out(
            conclusion(passed, failed, " (offline act 2: semantics and rendered rules, no packets)")
        )
        ok = ok and failed == 0
    return ok


def unavailable() -> str | None:
    """Why the lab cannot run here, or None when it can."""
    return netns.namespaces_supported()
