"""Expectation files: what a team says its policies must allow and deny, checked.

A file a team keeps beside its policies (``sekisho test EXPECT.yaml PATH...``)::

    expectations:
    - from: dev/blue                # a pod, a workload prefix, ns/*, a node or an IP
      to: dev/red
      port: 80                      # a number or a port name; none with ICMP
      protocol: TCP                 # TCP (default), UDP, SCTP or ICMP
      expect: allow                 # allow or deny
    - name: nothing reaches the database but the api
      from: {namespaceSelector: {}, podSelector: {matchExpressions: [...]}}
      to: {namespace: prod, labels: {app: db}}
      port: 5432
      expect: deny
    snapshots:                      # whole matrices: every pair not listed is denied
    - probe: 80/TCP
      allowed:
        dev/blue: [dev/red]
        dev/red: []

Each expectation expands into concrete pairs (:class:`Check`): every source pod
to every destination pod its selectors pick (a pod never checks itself); a
snapshot into every ordered pair of distinct pods. Who decides a pair is a
parameter (:data:`Oracle`): the semantics (:func:`semantic_oracle`, with the
matrix for pod pairs and the walk for the rest) offline, or real probes in the
lab (``sekisho lab test``). A failed pair carries the walk's decision in words:
the side and the policy and rule (or tier end) that decided.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from sekisho.errors import UsageError
from sekisho.model.checks import Report
from sekisho.model.policy import selector as parse_selector
from sekisho.model.reader import FieldPath, Issue, Loc, format_path
from sekisho.model.types import Cluster, LabelSelector, Pod
from sekisho.semantics.endpoint import Endpoint, Flow, pod_endpoint, resolve_endpoints
from sekisho.semantics.probe import Service, parse_service
from sekisho.semantics.verdict import DirectionVerdict, Verdict, verdict

Expect = Literal["allow", "deny"]

EXPECTATION_FIELDS = frozenset(("name", "from", "to", "port", "protocol", "expect"))
SELECTOR_FIELDS = frozenset(("pod", "namespace", "namespaceSelector", "podSelector", "labels"))
SNAPSHOT_FIELDS = frozenset(("name", "probe", "allowed"))


@dataclass(frozen=True, slots=True)
class PodPick:
    """Pods picked by a namespace (name or selector) and a pod selector; all must hold."""

    namespace: str | None = None
    namespace_selector: LabelSelector | None = None
    pod_selector: LabelSelector | None = None

    def pods(self, cluster: Cluster) -> list[Pod]:
        out = []
        for pod in cluster.pods:
            if self.namespace is not None and pod.namespace != self.namespace:
                continue
            if self.namespace_selector is not None and not self.namespace_selector.matches(
                cluster.namespace_labels(pod.namespace)
            ):
                continue
            if self.pod_selector is not None and not self.pod_selector.matches(pod.labels):
                continue
            out.append(pod)
        return out


@dataclass(frozen=True, slots=True)
class Expectation:
    """One expectation as written, with where it was written."""

    line: int
    name: str
    src: str | PodPick
    dst: str | PodPick
    service: Service
    expect: Expect


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A whole matrix for one probe: the pods each pod may reach; every other pair denied."""

    line: int
    name: str
    service: Service
    allowed: dict[str, tuple[str, ...]]
    lines: dict[str, int] = field(default_factory=dict)
    """The line of each source pod's row."""


@dataclass(frozen=True, slots=True)
class ExpectFile:
    file: str
    expectations: tuple[Expectation, ...]
    snapshots: tuple[Snapshot, ...]


@dataclass(frozen=True, slots=True)
class Check:
    """One concrete pair to decide, and what is expected of it."""

    file: str
    line: int
    what: str
    """The expectation's name, or the snapshot's."""
    flow: Flow
    expect: bool


@dataclass(frozen=True, slots=True)
class Observed:
    allowed: bool | None
    """None: could not be decided (an unsupported probe in the lab): a failure, never a pass."""
    detail: str = ""


Oracle = Callable[[Cluster, Sequence[Check]], list[Observed]]
"""Decides every check (in order): the semantics offline, real packets in the lab."""


@dataclass(frozen=True, slots=True)
class Failure:
    check: Check
    observed: Observed
    decision: str
    """What the semantics says decided the pair (the side, policy and rule)."""

    def __str__(self) -> str:
        c = self.check
        want = "allow" if c.expect else "deny"
        got = {True: "allow", False: "deny", None: "no answer"}[self.observed.allowed]
        extra = f" [{self.observed.detail}]" if self.observed.detail else ""
        return (
            f"{c.file}:{c.line}: {c.flow.src.label} -> {c.flow.dst.label} "
            f"{_service(c.flow)}: expected {want}, got {got}{extra}: {self.decision}"
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """Every check of a file, and the ones that failed."""

    file: str
    checks: tuple[Check, ...]
    failures: tuple[Failure, ...]
    cases: tuple[tuple[str, int, int], ...] = ()
    """(expectation or snapshot name, pairs, failed pairs), for JUnit test cases."""

    @property
    def ok(self) -> bool:
        return not self.failures


# ------------------------------------------------------------------------------- parsing


def parse_expectations(text: str, file: str) -> ExpectFile:
    """Parse an expectation file; :class:`UsageError` with ``file:line: path: message``."""
    try:
        root = yaml.compose(text, Loader=yaml.CSafeLoader)
        data = yaml.load(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise UsageError(f"{file}:{line}: not YAML: {getattr(exc, 'problem', exc)}") from exc
    errors: list[str] = []

    def fail(path: FieldPath, message: str) -> None:
        where = format_path(path)
        errors.append(f"{file}:{_line(root, path)}: {where + ': ' if where else ''}{message}")

    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(f"{file}:1: expected a mapping with expectations and snapshots")
    for key in data:
        if key not in ("expectations", "snapshots"):
            fail((str(key),), f"unknown field {key!r}: expected expectations, snapshots")
    expectations: list[Expectation] = []
    for i, item in enumerate(_list(data.get("expectations"), ("expectations",), fail)):
        e = _expectation(item, ("expectations", i), root, fail)
        if e is not None:
            expectations.append(e)
    snapshots: list[Snapshot] = []
    for i, item in enumerate(_list(data.get("snapshots"), ("snapshots",), fail)):
        s = _snapshot(item, ("snapshots", i), root, fail)
        if s is not None:
            snapshots.append(s)
    if errors:
        raise UsageError("\n".join(errors))
    if not expectations and not snapshots:
        raise UsageError(f"{file}: no expectations and no snapshots")
    return ExpectFile(file, tuple(expectations), tuple(snapshots))


Fail = Callable[[FieldPath, str], None]


def _list(value: Any, path: FieldPath, fail: Fail) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        fail(path, "expected a list")
        return []
    return value


def _unknown(item: dict[str, Any], known: frozenset[str], path: FieldPath, fail: Fail) -> None:
    for key in item:
        if key not in known:
            fail(
                (*path, str(key)),
                f"unknown field {key!r}; expected one of {', '.join(sorted(known))}",
            )


def _service(flow: Flow) -> str:
    return flow.service


def _probe(item: dict[str, Any], path: FieldPath, fail: Fail) -> Service | None:
    protocol = str(item.get("protocol", "TCP")).upper()
    port = item.get("port")
    try:
        if protocol == "ICMP":
            if port is not None:
                fail((*path, "port"), "ICMP has no port")
                return None
            return Service("ICMP")
        if port is None:
            fail((*path, "port"), f"{protocol} needs a port (a number or a port name)")
            return None
        found = parse_service(f"{port}/{protocol}")
    except UsageError as exc:
        fail((*path, "port"), str(exc).removeprefix("--probe "))
        return None
    if len(found) != 1:
        fail((*path, "port"), "one port per expectation (write one expectation per port)")
        return None
    return found[0]


def _expectation(item: Any, path: FieldPath, root: Any, fail: Fail) -> Expectation | None:
    if not isinstance(item, dict):
        fail(path, "expected a mapping {from, to, port, protocol, expect}")
        return None
    _unknown(item, EXPECTATION_FIELDS, path, fail)
    expect = item.get("expect")
    if expect not in ("allow", "deny"):
        fail((*path, "expect"), f"expected allow or deny, got {expect!r}")
    src = _pick(item.get("from"), (*path, "from"), fail)
    dst = _pick(item.get("to"), (*path, "to"), fail)
    svc = _probe(item, path, fail)
    if src is None or dst is None or svc is None or expect not in ("allow", "deny"):
        return None
    line = _line(root, path)
    name = str(item.get("name") or f"{_show(src)} -> {_show(dst)} {svc} {expect}")
    return Expectation(line, name, src, dst, svc, expect)


def _show(pick: str | PodPick) -> str:
    if isinstance(pick, str):
        return pick
    parts = []
    if pick.namespace is not None:
        parts.append(f"namespace {pick.namespace}")
    if pick.namespace_selector is not None:
        parts.append(f"namespaces {pick.namespace_selector}")
    if pick.pod_selector is not None:
        parts.append(f"pods {pick.pod_selector}")
    return "{" + ", ".join(parts) + "}"


def _pick(value: Any, path: FieldPath, fail: Fail) -> str | PodPick | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if not isinstance(value, dict):
        fail(
            path,
            "expected a pod (ns/name), a workload, ns/*, a node, an IP, or a mapping "
            "{namespace, namespaceSelector, podSelector, labels}",
        )
        return None
    _unknown(value, SELECTOR_FIELDS, path, fail)
    if "pod" in value:
        if len(value) > 1 or not isinstance(value["pod"], str):
            fail((*path, "pod"), "pod: ns/name stands alone")
            return None
        return str(value["pod"])
    sink: list[Issue] = []
    report = Report(Loc("", 0), "", "", sink)
    ns_sel = None
    if "namespaceSelector" in value:
        ns_sel = parse_selector(
            report, value["namespaceSelector"] or {}, (*path, "namespaceSelector")
        )
    pod_sel = None
    if "podSelector" in value and "labels" in value:
        fail(path, "use podSelector or labels, not both")
        return None
    if "podSelector" in value:
        pod_sel = parse_selector(report, value["podSelector"] or {}, (*path, "podSelector"))
    elif "labels" in value:
        pod_sel = parse_selector(report, {"matchLabels": value["labels"]}, (*path, "labels"))
    for issue in sink:
        fail(issue.path, issue.message)
    if sink:
        return None
    namespace = value.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        fail((*path, "namespace"), "expected a namespace name")
        return None
    return PodPick(namespace, ns_sel, pod_sel)


def _snapshot(item: Any, path: FieldPath, root: Any, fail: Fail) -> Snapshot | None:
    if not isinstance(item, dict):
        fail(path, "expected a mapping {probe, allowed}")
        return None
    _unknown(item, SNAPSHOT_FIELDS, path, fail)
    try:
        found = parse_service(str(item.get("probe", "")))
    except UsageError as exc:
        fail((*path, "probe"), str(exc).removeprefix("--probe "))
        return None
    if len(found) != 1:
        fail((*path, "probe"), "one probe per snapshot")
        return None
    rows = item.get("allowed")
    if not isinstance(rows, dict):
        fail((*path, "allowed"), "expected a mapping: source pod -> [destination pods]")
        return None
    allowed: dict[str, tuple[str, ...]] = {}
    lines: dict[str, int] = {}
    for src, dsts in rows.items():
        if not isinstance(dsts, list) or not all(isinstance(d, str) for d in dsts):
            fail((*path, "allowed", str(src)), "expected a list of pods (ns/name)")
            continue
        allowed[str(src)] = tuple(dsts)
        lines[str(src)] = _line(root, (*path, "allowed", str(src)))
    svc = found[0]
    return Snapshot(
        _line(root, path), str(item.get("name") or f"snapshot {svc}"), svc, allowed, lines
    )


def _line(node: Any, path: FieldPath) -> int:
    """The line of the field at ``path`` in a composed YAML tree (1-based; 0 unknown)."""
    if node is None:
        return 0
    line = int(node.start_mark.line) + 1
    for elem in path:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(elem):
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                return line
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(elem, int) and elem < len(node.value)
        ):
            node = node.value[elem]
            line = node.start_mark.line + 1
        else:
            return line
    return line


# ------------------------------------------------------------------------------- checking


def _endpoints(cluster: Cluster, pick: str | PodPick) -> list[Endpoint]:
    if isinstance(pick, PodPick):
        return [pod_endpoint(cluster, p) for p in pick.pods(cluster)]
    if pick == "*":
        return [pod_endpoint(cluster, p) for p in cluster.pods]
    if pick.endswith("/*"):
        ns = pick[:-2]
        return [pod_endpoint(cluster, p) for p in cluster.pods if p.namespace == ns]
    return list(resolve_endpoints(cluster, pick))


def plan(cluster: Cluster, spec: ExpectFile) -> list[Check]:
    """Every concrete pair the file's expectations and snapshots name.

    :class:`UsageError` when an expectation picks no pod, or a snapshot names a pod
    the cluster does not have (or misses one it has): a check that checks nothing
    must not pass.
    """
    out: list[Check] = []
    for e in spec.expectations:
        where = f"{spec.file}:{e.line}"
        try:
            sources = _endpoints(cluster, e.src)
            targets = _endpoints(cluster, e.dst)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from exc
        for role, found, pick in (("from", sources, e.src), ("to", targets, e.dst)):
            if not found:
                raise UsageError(f"{where}: {role} {_show(pick)} picks no pod")
        for d in targets:
            port = e.service.port_on(d.pod) if e.service.name is not None else e.service.port
            if e.service.name is not None and port is None:
                raise UsageError(
                    f"{where}: {d.label} declares no {e.service.protocol} port named {e.service.name}"
                )
            for s in sources:
                if s.pod is not None and d.pod is not None and s.pod.key == d.pod.key:
                    continue
                flow = Flow(s, d, e.service.protocol, port)
                out.append(Check(spec.file, e.line, e.name, flow, e.expect == "allow"))
    keys = [p.key for p in cluster.pods]
    known = set(keys)
    for snap in spec.snapshots:
        where = f"{spec.file}:{snap.line}"
        listed = set(snap.allowed)
        named = listed | {d for ds in snap.allowed.values() for d in ds}
        unknown = sorted(named - known)
        if unknown:
            raise UsageError(f"{where}: {snap.name}: no such pods: {', '.join(unknown)}")
        missing = sorted(known - listed)
        if missing:
            raise UsageError(
                f"{where}: {snap.name}: pods without a row (write `NS/NAME: []` for a pod "
                f"that reaches nothing): {', '.join(missing)}"
            )
        for src in keys:
            allowed = set(snap.allowed[src])
            s_pod = cluster.pod(src)
            assert s_pod is not None
            s = pod_endpoint(cluster, s_pod)
            for dst in keys:
                if dst == src:
                    continue
                d_pod = cluster.pod(dst)
                assert d_pod is not None
                port = (
                    snap.service.port_on(d_pod)
                    if snap.service.name is not None
                    else snap.service.port
                )
                if snap.service.name is not None and port is None:
                    continue  # nothing to reach: the pod declares no such port
                flow = Flow(s, pod_endpoint(cluster, d_pod), snap.service.protocol, port)
                out.append(
                    Check(
                        spec.file, snap.lines.get(src, snap.line), snap.name, flow, dst in allowed
                    )
                )
    return out


def semantic_oracle(cluster: Cluster, checks: Sequence[Check]) -> list[Observed]:
    """The semantics decides: the matrix for pod pairs (one per probe), the walk otherwise."""
    from sekisho.semantics.matrix import compute_matrix

    services: dict[tuple[str, int | None], Service] = {}
    for c in checks:
        if c.flow.src.pod is not None and c.flow.dst.pod is not None:
            key = (c.flow.protocol, c.flow.port)
            if key not in services:
                services[key] = Service(c.flow.protocol, c.flow.port)
    tables = {}
    index = {
        p.key: i for i, p in enumerate(sorted(cluster.pods, key=lambda p: (p.namespace, p.name)))
    }
    if services:
        m = compute_matrix(cluster, list(services.values()))
        tables = {k: pm.allowed for k, pm in zip(services, m.probes, strict=True)}
    out = []
    for c in checks:
        f = c.flow
        if f.src.pod is not None and f.dst.pod is not None:
            table = tables[(f.protocol, f.port)]
            out.append(Observed(bool(table[index[f.src.pod.key], index[f.dst.pod.key]])))
        else:
            out.append(Observed(verdict(cluster, f).allowed))
    return out


def decision(v: Verdict) -> str:
    """What decided a verdict, in one line: the sides that count, with policy and rule."""
    if v.reason == "self":
        return "a pod reaching itself is never filtered"
    if v.reason == "same-node":
        return f"{v.flow.src.label} is on {v.flow.dst.label}'s node: never filtered"
    sides = [d for d in (v.egress, v.ingress) if d is not None]
    if not v.allowed:
        sides = [d for d in sides if not d.allowed]
    else:
        open_sides = [d for d in sides if not d.isolated]
        sides = [d for d in sides if d.isolated]
        if not sides:
            ends = " or ".join(f"{d.endpoint.label} for {d.direction}" for d in open_sides)
            return f"not isolated: no policy selects {ends or 'either end'}"
    return "; ".join(_side(d) for d in sides)


def _side(d: DirectionVerdict) -> str:
    head = f"{d.direction} of {d.endpoint.label}"
    if d.ending == "end-of-tier":
        names = ", ".join(p.label for p in d.policies)
        return f"{head}: isolated by {names}; no rule matches: denied"
    return f"{head}: {d.because()}"


def run_checks(cluster: Cluster, spec: ExpectFile, oracle: Oracle = semantic_oracle) -> Outcome:
    """Plan every pair, let ``oracle`` decide them, and explain each failure with the walk."""
    checks = plan(cluster, spec)
    observed = oracle(cluster, checks)
    failures = []
    stats: dict[str, list[int]] = {}
    for c, o in zip(checks, observed, strict=True):
        row = stats.setdefault(c.what, [0, 0])
        row[0] += 1
        if o.allowed is not c.expect:
            row[1] += 1
            failures.append(Failure(c, o, decision(verdict(cluster, c.flow))))
    cases = tuple((name, n, bad) for name, (n, bad) in stats.items())
    return Outcome(spec.file, tuple(checks), tuple(failures), cases)


def snapshot_of(cluster: Cluster, service: Service) -> dict[str, list[str]]:
    """The ``allowed`` rows of a snapshot of ``cluster`` for ``service`` (every pod a row)."""
    from sekisho.semantics.matrix import compute_matrix

    m = compute_matrix(cluster, [service])
    table = m.probes[0].allowed
    keys = [p.key for p in m.pods]
    out: dict[str, list[str]] = {}
    for i, src in enumerate(keys):
        row = []
        for j, dst in enumerate(keys):
            if i == j:
                continue
            if service.name is not None and service.port_on(m.pods[j]) is None:
                continue
            if table[i, j]:
                row.append(dst)
        out[src] = row
    return out
