"""``sekisho matrix``: truth tables of who can reach whom, per probe."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

import click

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from sekisho.model.types import Pod
    from sekisho.semantics import Matrix, ProbeMatrix

MAX_PODS = 40
"""Above this, the table view groups pods by identity (namespace, labels, ports)."""
ALLOWED, DENIED, SELF, MIXED = ".", "X", "-", "~"
TABLES = ("ingress", "egress", "allowed")
STYLES = {ALLOWED: "green", DENIED: "bold red", SELF: "dim", MIXED: "yellow"}


def probe_name(probe: ProbeMatrix) -> str:
    return str(probe.service)


# --- grouping ------------------------------------------------------------------------------------


def groups(pods: Sequence[Pod]) -> list[tuple[str, list[int]]]:
    """Pods grouped by what policy sees (namespace, labels, ports, hostNetwork), in order."""
    found: dict[tuple[str, tuple[tuple[str, str], ...], object, bool], list[int]] = {}
    for i, pod in enumerate(pods):
        key = (pod.namespace, tuple(sorted(pod.labels.items())), pod.ports, pod.host_network)
        found.setdefault(key, []).append(i)
    out = []
    for (ns, labels, _ports, host_network), members in found.items():
        text = ",".join(f"{k}={v}" for k, v in labels) or "(no labels)"
        hn = " hostNetwork" if host_network else ""
        out.append((f"{ns} {{{text}}}{hn} x{len(members)}", members))
    return out


def group_counts(
    probe: ProbeMatrix, which: str, group_of_pod: npt.NDArray[np.int64], n_groups: int
) -> npt.NDArray[np.int64]:
    """(G, G): allowed ordered pairs of distinct pods per (row group, column group).

    Summed from the identity-level table (K^2) and the number of pods of each
    identity in each group (K x G), never from the pods^2 table. An identity may
    span groups (pods that differ only in labels no policy reads).
    """
    import numpy as np

    allowed = probe.identity_table(which)
    table = allowed.astype(np.float64)
    ident = probe.pod_identity
    per = np.zeros((table.shape[0], n_groups), dtype=np.float64)
    np.add.at(per, (ident, group_of_pod), 1.0)
    out = per.T @ table @ per  # BLAS; exact below 2**53
    # A pod with itself is no pair.
    np.add.at(out, (group_of_pod, group_of_pod), -np.diagonal(table)[ident])
    if which != "egress":
        # A hostNetwork pod reaches the pods of its own node unfiltered.
        for row, cols in probe.same_node:
            missed = cols[~allowed[ident[row], ident[cols]]]
            np.add.at(out, (np.full(len(missed), group_of_pod[row]), group_of_pod[missed]), 1.0)
    result: npt.NDArray[np.int64] = np.rint(out).astype(np.int64)
    return result


def cell_marks(
    probe: ProbeMatrix,
    which: str,
    pod_identity: npt.NDArray[np.int64],
    members: list[list[int]],
) -> list[str]:
    """One string of marks per row group: all allowed, all denied, mixed or self.

    ``members`` are pod indexes per group (every pod in one group).
    """
    import numpy as np

    g = len(members)
    group_of_pod = np.zeros(len(pod_identity), dtype=np.int64)
    sizes = np.zeros(g, dtype=np.int64)
    for n, rows in enumerate(members):
        group_of_pod[rows] = n
        sizes[n] = len(rows)
    hit = group_counts(probe, which, group_of_pod, g)
    total = np.outer(sizes, sizes)
    total[np.diag_indices(g)] -= sizes
    code = np.where(total == 0, 2, np.where(hit >= total, 0, np.where(hit <= 0, 1, 3)))
    symbols = np.array([ALLOWED, DENIED, SELF, MIXED])
    return ["".join(row) for row in symbols[code].tolist()]


# --- views ---------------------------------------------------------------------------------------


class Line(NamedTuple):
    """One line of the table view: plain text and (start, end, style) spans for a terminal."""

    plain: str
    spans: tuple[tuple[int, int, str], ...] = ()
    marks: str = ""
    """A table row's marks, styled on a terminal by :func:`line_spans`."""
    mark_start: int = 0
    mark_step: int = 0


def table_lines(matrix: Matrix) -> list[Line]:
    """The e2e ``Reachability`` view: rows = from, columns = to, a legend of indices."""
    pods = matrix.pods
    if len(pods) > MAX_PODS:
        grouped = groups(pods)
        names = [name for name, _ in grouped]
        members = [m for _, m in grouped]
        note = f"{len(pods)} pods in {len(grouped)} groups (same namespace, labels, ports); "
        note += f"{MIXED} = some pairs allowed"
    else:
        names = [p.key for p in pods]
        members = [[i] for i in range(len(pods))]
        note = ""
    width = len(str(max(len(names) - 1, 0)))
    styles = STYLES
    lines: list[Line] = [Line("legend:", ((0, 7, "bold"),))]
    lines += [Line(f"  {i:>{width}}  {name}") for i, name in enumerate(names)]
    if note:
        lines.append(Line(note, ((0, len(note), "dim"),)))
    keys = f"{ALLOWED} allowed  {DENIED} denied  {SELF} self  (rows: from, columns: to)"
    lines.append(Line(keys, ((0, len(keys), "dim"),)))
    header = " " * width + " | " + " ".join(f"{j:>{width}}" for j in range(len(names)))
    rule = "-" * len(header)
    pad = " " * (width - 1)
    for probe in matrix.probes:
        for which in TABLES:
            title = f"{probe_name(probe)} {which}"
            lines += [Line(""), Line(title, ((0, len(title), "bold"),)), Line(header), Line(rule)]
            marks = cell_marks(probe, which, matrix.pod_identity, members)
            for i, row in enumerate(marks):
                lines.append(_row(f"{i:>{width}} | ", row, pad, styles))
    return lines


def _row(head: str, marks: str, pad: str, styles: dict[str, str]) -> Line:
    """One table row: plain text now; runs of equal marks become style spans only on a terminal."""
    spread = str.maketrans({m: " " + pad + m for m in styles})
    return Line(head + marks.translate(spread)[1:], (), marks, len(head), len(pad) + 2)


def line_spans(line: Line, styles: dict[str, str]) -> list[tuple[int, int, str]]:
    """Style spans of a line: its own, plus one per run of equal marks of a table row."""
    import itertools

    spans = list(line.spans)
    pos = 0
    for mark, run in itertools.groupby(line.marks):
        length = sum(1 for _ in run)
        begin = line.mark_start + pos * line.mark_step
        spans.append((begin, begin + length * line.mark_step - 1, styles[mark]))
        pos += length
    return spans


# --- summary ---------------------------------------------------------------------------------------


def summary_lines(matrix: Matrix) -> Iterator[str]:
    """The compact connectivity map: allowed connections between groups of pods, per probe.

    A group is an identity of :func:`compute_matrix` (pods policy cannot tell
    apart), so every pair of a listed group pair is allowed and every pair not
    listed is denied; the one exception, a hostNetwork pod reaching the pods
    of its own node unfiltered, is stated in the group's legend line. Source
    groups with the same destinations share a line; a namespace whose groups
    are all listed is written ``NAMESPACE/*``; ``*`` is every group.
    """
    import numpy as np

    pods = matrix.pods
    n = len(pods)
    order = np.argsort(matrix.pod_identity, kind="stable").tolist()
    k = len(matrix.identities)
    sizes = np.bincount(matrix.pod_identity, minlength=k).tolist()
    members: list[list[int]] = []
    at = 0
    for size in sizes:
        members.append(order[at : at + size])
        at += size
    names = [f"g{i + 1}" for i in range(k)]
    ns_of = [ident.namespace for ident in matrix.identities]
    by_ns: dict[str, list[int]] = {}
    for i, ident in enumerate(matrix.identities):
        by_ns.setdefault(ident.namespace, []).append(i)

    def spell(ids: list[int]) -> str:
        if len(ids) == k:
            return "*"
        count: dict[str, int] = {}
        for i in ids:
            count[ns_of[i]] = count.get(ns_of[i], 0) + 1
        whole = {ns for ns, c in count.items() if c > 1 and c == len(by_ns[ns])}
        out: list[str] = []
        for i in ids:
            ns = ns_of[i]
            if ns not in whole:
                out.append(names[i])
            elif by_ns[ns][0] == i:
                out.append(f"{ns}/*")
        return " ".join(out)

    n_probes = len(matrix.probes)
    yield f"# {n} pods in {k} groups; {n_probes} probe{'s' if n_probes != 1 else ''}"
    yield "# a group is pods that policy cannot tell apart: namespace, the labels and named ports"
    yield "#   that policies look at (shown), and which ipBlocks hold their address"
    yield "# 'g1 g2 -> g3 ns/*' : every pod of g1 and g2 may connect to every other pod of g3"
    yield "#   and of every group of namespace ns; '*' is every group; unlisted pairs are denied"
    yield "# a pod may always reach itself (not counted)"
    yield ""
    yield "groups:"
    for i, ident in enumerate(matrix.identities):
        labels = ",".join(f"{a}={b}" for a, b in ident.labels)
        ports = ",".join(
            (f"{p.name}:" if p.name else "") + f"{p.port}/{p.protocol}" for p in ident.ports
        )
        extra = ""
        if ident.host_network:
            extra = f" hostNetwork node={ident.node} (also reaches its node's pods, unfiltered)"
        pod_names = " ".join(pods[j].name for j in members[i])
        yield (
            f"  {names[i]} {ident.namespace} {{{labels}}} [{ports}]{extra}"
            f" {sizes[i]} pod{'s' if sizes[i] != 1 else ''}: {pod_names}"
        )
    total = n * (n - 1)
    seen: dict[bytes, str] = {}
    for probe in matrix.probes:
        table = probe.identity_allowed
        allowed = probe.pair_total("allowed")
        share = f" ({100 * allowed / total:.1f}%)" if total else ""
        yield ""
        yield (
            f"{probe_name(probe)}: {allowed} of {total} ordered pod pairs allowed{share},"
            f" {total - allowed} denied"
        )
        key = np.packbits(table).tobytes()
        if key in seen:
            yield f"  same connections as {seen[key]}"
            continue
        seen[key] = probe_name(probe)
        rows: dict[bytes, list[int]] = {}
        packed = np.packbits(table, axis=1)
        for i in range(k):
            rows.setdefault(packed[i].tobytes(), []).append(i)
        for sources in rows.values():
            dst = np.flatnonzero(table[sources[0]]).tolist()
            if not dst:
                target = "nothing"
            elif len(dst) == k:
                target = "*"
            elif len(dst) > k // 2 + 1:
                missing = np.flatnonzero(~table[sources[0]]).tolist()
                target = f"* except {spell(missing)}"
            else:
                target = spell(dst)
            yield f"  {spell(sources)} -> {target}"


def iter_csv(matrix: Matrix) -> Iterator[str]:
    """CSV text, one chunk per source pod: a header, then one row per (probe, from, to)."""
    yield "protocol,port,from,to,ingress,egress,allowed\n"
    keys = [_csv_field(p.key) for p in matrix.pods]
    flags = ("false", "true")
    tails = [f",{flags[c >> 2]},{flags[(c >> 1) & 1]},{flags[c & 1]}\n" for c in range(8)]
    for probe in matrix.probes:
        port = "" if probe.port is None else str(probe.port)
        codes = probe.ingress.astype("u1") * 4 + probe.egress.astype("u1") * 2 + probe.allowed
        for i, src in enumerate(keys):
            head = f"{probe.protocol},{port},{src},"
            yield "".join(
                [head + dst + tails[c] for dst, c in zip(keys, codes[i].tolist(), strict=True)]
            )


def _csv_field(text: str) -> str:
    if any(ch in text for ch in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def markdown_text(matrix: Matrix) -> str:
    keys = [p.key for p in matrix.pods]
    out: list[str] = []
    for probe in matrix.probes:
        out.append(
            f"### {probe_name(probe)} (allowed = egress of the row AND ingress of the column)"
        )
        out.append("")
        out.append("| from \\ to | " + " | ".join(f"`{k}`" for k in keys) + " |")
        out.append("|---|" + "---|" * len(keys))
        for i, key in enumerate(keys):
            cells = []
            for j in range(len(keys)):
                if i == j:
                    cells.append(SELF)
                else:
                    cells.append(ALLOWED if probe.allowed[i, j] else DENIED)
            out.append(f"| `{key}` | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


@click.command("matrix")
@click.argument("paths", nargs=-1, required=True)
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="One probe's port.")
@click.option(
    "--protocol",
    type=click.Choice(["TCP", "UDP", "SCTP", "ICMP"], case_sensitive=False),
    default=None,
    help="One probe's protocol (default TCP).",
)
@click.option(
    "--probe",
    "probes",
    multiple=True,
    metavar="PORT/PROTO",
    help="A probe: 80/TCP, 53/UDP, metrics/TCP (a port name, per pod), 8000-8002/TCP, ICMP.",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "summary", "json", "csv", "md"]),
    default="table",
    show_default=True,
)
def matrix(
    paths: tuple[str, ...],
    port: int | None,
    protocol: str | None,
    probes: tuple[str, ...],
    output: str,
) -> int:
    """Ingress, egress and combined truth tables for every pod pair of PATH...

    Without --probe or --port, probes every declared container port and ICMP.

    \b
    -o table    rows: from, columns: to; above 40 pods, one row and column per
                group of pods with the same namespace, labels and ports
                (. allowed, X denied, ~ some pairs allowed, - self)
    -o summary  the compact connectivity map: a legend of groups (pods policy
                cannot tell apart, with their pod names), then per probe the
                allowed/denied pair totals and lines 'g1 g2 -> g3 ns/*'
                (every pod of g1 and g2 may connect to every other pod of g3
                and of every group of namespace ns; '*' is every group;
                'nothing' and '* except ...' as read); unlisted pairs are
                denied; probes with the same map say 'same connections as'
    -o json     every probe's pod-by-pod ingress, egress and allowed tables
    -o csv      one row per (probe, from, to);  -o md  Markdown tables
    """
    from sekisho.cli.trace import load
    from sekisho.semantics import compute_matrix
    from sekisho.semantics.probe import default_services, services_from_flags
    from sekisho.semantics.staged import matrix_changes, pending_matrix, staged_labels

    cluster = load(paths)
    chosen = services_from_flags(probes, port, protocol)
    services = chosen if chosen is not None else default_services(cluster)
    result = compute_matrix(cluster, services)
    # Staged policies are never enforced: what they would change is shown beside.
    pending = pending_matrix(cluster, services, result)
    if output == "json" and pending is not None:
        import json

        doc = result.to_json()
        doc["pending"] = {
            "staged": staged_labels(cluster),
            "probes": [p.to_json() for p in pending.probes],
        }
        click.echo(json.dumps(doc))
    elif output == "json":
        stream = sys.stdout.buffer
        for chunk in result.iter_json_bytes():
            stream.write(chunk)
        stream.write(b"\n")
        stream.flush()
    elif output == "csv":
        for text in iter_csv(result):
            sys.stdout.write(text)
        sys.stdout.flush()
    elif output == "summary":
        sys.stdout.write("".join(line + "\n" for line in summary_lines(result)))
        sys.stdout.flush()
    elif output == "md":
        click.echo(markdown_text(result))
    else:
        lines = table_lines(result)
        if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
            sys.stdout.write("".join(t.plain + "\n" for t in lines))
        else:
            from rich.console import Console
            from rich.text import Text

            console = Console(highlight=False, soft_wrap=True)
            for line in lines:
                styled = Text(line.plain)
                for begin, end, style in line_spans(line, STYLES):
                    styled.stylize(style, begin, end)
                console.print(styled)
    if pending is not None and output in ("table", "summary", "md"):
        click.echo("")
        click.echo(f"staged (not enforced): {', '.join(staged_labels(cluster))}")
        for change in matrix_changes(result, pending):
            click.echo(change)
    return 0
