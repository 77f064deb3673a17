"""``sekisho matrix``: truth tables of who can reach whom, per probe."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

import click

from sekisho.cli.options import etcd_options, family_option

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from sekisho.model.types import Pod
    from sekisho.semantics import Matrix, ProbeMatrix
    from sekisho.semantics.summary import Connection, GroupSet

MAX_PODS = 40
"""Above this, the table view groups pods by identity (namespace, labels, ports)."""
ALLOWED, DENIED, SELF, MIXED = ".", "X", "-", "~"
TABLES = ("ingress", "egress", "allowed")
STYLES = {ALLOWED: "green", DENIED: "bold red", SELF: "dim", MIXED: "yellow"}


def probe_name(probe: ProbeMatrix) -> str:
    return str(probe.service)


# --- grouping (decided in sekisho.semantics.summary; spelled here) ------------------------------


def groups(pods: Sequence[Pod]) -> list[tuple[str, list[int]]]:
    """Pods grouped by what policy sees, each with its legend name, in order."""
    from sekisho.semantics.summary import pod_groups

    out = []
    for g in pod_groups(pods):
        text = ",".join(f"{k}={v}" for k, v in g.labels) or "(no labels)"
        hn = " hostNetwork" if g.host_network else ""
        out.append((f"{g.namespace} {{{text}}}{hn} x{len(g.members)}", g.members))
    return out


def cell_marks(
    probe: ProbeMatrix,
    which: str,
    pod_identity: npt.NDArray[np.int64],
    members: list[list[int]],
) -> list[str]:
    """One string of marks per row group: all allowed, all denied, mixed or self."""
    import numpy as np

    from sekisho.semantics.summary import group_cells

    symbols = np.array([ALLOWED, DENIED, SELF, MIXED])  # in the order of the codes
    codes = group_cells(probe, which, pod_identity, members)
    return ["".join(row) for row in symbols[codes].tolist()]


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


def _spell(groups: GroupSet) -> str:
    if groups.every:
        return "*"
    return " ".join(f"{p}/*" if isinstance(p, str) else f"g{p + 1}" for p in groups.parts)


def _target(c: Connection) -> str:
    if c.reach == "nothing":
        return "nothing"
    if c.reach == "every":
        return "*"
    if c.reach == "every-except":
        return f"* except {_spell(c.groups)}"
    return _spell(c.groups)


def summary_lines(matrix: Matrix) -> Iterator[str]:
    """The compact connectivity map (:func:`sekisho.semantics.summary.summarize`), spelled.

    Groups are ``g1``, ``g2``... in identity order; every pair of a listed group
    pair is allowed and every pair not listed is denied; the one exception, a
    hostNetwork pod reaching the pods of its own node unfiltered, is stated in
    the group's legend line. Source groups with the same destinations share a
    line; a namespace whose groups are all listed is written ``NAMESPACE/*``;
    ``*`` is every group.
    """
    from sekisho.semantics.summary import summarize

    summary = summarize(matrix)
    pods = matrix.pods
    n = len(pods)
    k = len(matrix.identities)
    n_probes = len(matrix.probes)
    yield f"# {n} pods in {k} groups; {n_probes} probe{'s' if n_probes != 1 else ''}"
    yield "# a group is pods that policy cannot tell apart: namespace, the labels and named ports"
    yield "#   that policies look at (shown), and which ipBlocks hold their address"
    yield "# 'g1 g2 -> g3 ns/*' : every pod of g1 and g2 may connect to every other pod of g3"
    yield "#   and of every group of namespace ns; '*' is every group; unlisted pairs are denied"
    yield "# a pod may always reach itself (not counted)"
    yield ""
    yield "groups:"
    for i, (ident, members) in enumerate(zip(matrix.identities, summary.members, strict=True)):
        labels = ",".join(f"{a}={b}" for a, b in ident.labels)
        ports = ",".join(
            (f"{p.name}:" if p.name else "") + f"{p.port}/{p.protocol}" for p in ident.ports
        )
        extra = ""
        if ident.host_network:
            extra = f" hostNetwork node={ident.node} (also reaches its node's pods, unfiltered)"
        pod_names = " ".join(pods[j].name for j in members)
        size = len(members)
        yield (
            f"  g{i + 1} {ident.namespace} {{{labels}}} [{ports}]{extra}"
            f" {size} pod{'s' if size != 1 else ''}: {pod_names}"
        )
    for p in summary.probes:
        share = f" ({100 * p.allowed / p.total:.1f}%)" if p.total else ""
        yield ""
        yield (
            f"{probe_name(p.probe)}: {p.allowed} of {p.total} ordered pod pairs allowed{share},"
            f" {p.total - p.allowed} denied"
        )
        if p.same_as is not None:
            yield f"  same connections as {probe_name(matrix.probes[p.same_as])}"
            continue
        for c in p.connections:
            yield f"  {_spell(c.sources)} -> {_target(c)}"


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
@click.argument("paths", nargs=-1)
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
@family_option()
@etcd_options()
def matrix(
    paths: tuple[str, ...],
    port: int | None,
    protocol: str | None,
    probes: tuple[str, ...],
    output: str,
    family: int | None,
    **etcd: object,
) -> int:
    """Ingress, egress and combined truth tables for every pod pair of PATH...

    Without --probe or --port, probes every declared container port and ICMP.
    --family 6 probes a dual-stack cluster over IPv6 (the pods' IPv6 addresses).

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
    from sekisho.cli.trace import load, warnings_json
    from sekisho.semantics import compute_matrix
    from sekisho.semantics.probe import default_services, family_view, services_from_flags
    from sekisho.semantics.staged import matrix_changes, pending_matrix, staged_labels

    loaded = load(paths, etcd)
    cluster = family_view(loaded, family)
    if len(cluster.pods) < len(loaded.pods):
        kept = {p.key for p in cluster.pods}
        left = [p.key for p in loaded.pods if p.key not in kept]
        click.echo(
            f"note: {len(left)} pod(s) have no IPv{family} address and are not in the matrix:"
            f" {', '.join(left[:10])}{', ...' if len(left) > 10 else ''}",
            err=True,
        )
    chosen = services_from_flags(probes, port, protocol)
    services = chosen if chosen is not None else default_services(cluster)
    result = compute_matrix(cluster, services)
    # Staged policies are never enforced: what they would change is shown beside.
    pending = pending_matrix(cluster, services, result)
    if output == "json":
        import json  # only here: its decoder's regexes are compiled at import
    if output == "json" and pending is not None:
        doc = {"warnings": warnings_json(cluster), **result.to_json()}
        doc["pending"] = {
            "staged": staged_labels(cluster),
            "probes": [p.to_json() for p in pending.probes],
        }
        click.echo(json.dumps(doc))
    elif output == "json":
        stream = sys.stdout.buffer
        stream.write(b'{"warnings": ' + json.dumps(warnings_json(cluster)).encode() + b", ")
        for n, chunk in enumerate(result.iter_json_bytes()):
            stream.write(chunk[1:] if n == 0 else chunk)  # the object opened above
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
