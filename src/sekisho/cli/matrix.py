"""``sekisho matrix``: truth tables of who can reach whom, per probe."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from rich.text import Text

    from sekisho.model.types import Pod
    from sekisho.semantics import Matrix, Probe, ProbeMatrix

MAX_PODS = 40
"""Above this, the table view groups pods by identity (namespace, labels, ports)."""
ALLOWED, DENIED, SELF, MIXED = ".", "X", "-", "~"
TABLES = ("ingress", "egress", "allowed")


def parse_probe(text: str) -> Probe:
    """``80/TCP``, ``53/udp``, ``80`` (TCP) or ``ICMP``."""
    from sekisho.errors import UsageError

    value = text.strip()
    if value.upper() == "ICMP":
        return (None, "ICMP")
    port_text, _, proto = value.partition("/")
    proto = (proto or "TCP").upper()
    if proto not in ("TCP", "UDP", "SCTP") or not port_text.isdigit():
        raise UsageError(f"--probe {text!r}: expected PORT/PROTOCOL (e.g. 80/TCP, 53/UDP) or ICMP")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise UsageError(f"--probe {text!r}: port must be 1-65535")
    return (port, proto)


def choose_probes(
    port: int | None, protocol: str | None, probes: Sequence[str]
) -> list[Probe] | None:
    """The probes the flags ask for; None means the cluster's default probes."""
    from sekisho.errors import UsageError

    if probes and (port is not None or protocol is not None):
        raise UsageError("use either --probe or --port/--protocol, not both")
    if probes:
        return [parse_probe(p) for p in probes]
    if protocol is not None and protocol.upper() == "ICMP":
        if port is not None:
            raise UsageError("--port makes no sense with --protocol ICMP")
        return [(None, "ICMP")]
    if port is not None:
        return [(port, (protocol or "TCP").upper())]
    if protocol is not None:
        raise UsageError(f"--protocol {protocol} needs --port")
    return None


def probe_name(probe: ProbeMatrix) -> str:
    return probe.protocol if probe.port is None else f"{probe.protocol}/{probe.port}"


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


def cell_marks(table: npt.NDArray[np.bool_], members: list[list[int]]) -> list[list[str]]:
    """One mark per (row group, column group): all allowed, all denied, mixed or self.

    Counts allowed pairs per block with one-hot matrix products (in row chunks),
    leaving out each pod's pair with itself.
    """
    import numpy as np

    n, g = table.shape[0], len(members)
    onehot = np.zeros((n, g), dtype=np.float32)
    for k, rows in enumerate(members):
        onehot[rows, k] = 1.0
    counts = np.zeros((g, g), dtype=np.float64)
    step = 2048
    for lo in range(0, n, step):
        part = table[lo : lo + step].astype(np.float32) @ onehot
        counts += onehot[lo : lo + step].T @ part
    sizes = np.asarray([len(m) for m in members], dtype=np.float64)
    pairs = np.outer(sizes, sizes)
    # the diagonal of ``table`` is self (always True): not a pair between two pods
    np.fill_diagonal(pairs, sizes * sizes - sizes)
    np.fill_diagonal(counts, np.diag(counts) - sizes)
    out: list[list[str]] = []
    for i in range(g):
        line = []
        for j in range(g):
            total, hit = pairs[i, j], counts[i, j]
            if total == 0:
                line.append(SELF)
            else:
                line.append(ALLOWED if hit >= total else DENIED if hit <= 0 else MIXED)
        out.append(line)
    return out


# --- views ---------------------------------------------------------------------------------------


def table_lines(matrix: Matrix) -> list[Text]:
    """The e2e ``Reachability`` view: rows = from, columns = to, a legend of indices."""
    from rich.text import Text

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
    styles = {ALLOWED: "green", DENIED: "bold red", SELF: "dim", MIXED: "yellow"}
    lines: list[Text] = [Text("legend:", style="bold")]
    lines += [Text(f"  {i:>{width}}  {name}") for i, name in enumerate(names)]
    if note:
        lines.append(Text(note, style="dim"))
    lines.append(
        Text(
            f"{ALLOWED} allowed  {DENIED} denied  {SELF} self  (rows: from, columns: to)",
            style="dim",
        )
    )
    header = " " * width + " | " + " ".join(f"{j:>{width}}" for j in range(len(names)))
    for probe in matrix.probes:
        for which in TABLES:
            table = getattr(probe, which)
            lines.append(Text(""))
            lines.append(Text(f"{probe_name(probe)} {which}", style="bold"))
            lines.append(Text(header))
            lines.append(Text("-" * len(header)))
            marks = cell_marks(table, members)
            for i, row in enumerate(marks):
                lines.append(_row(f"{i:>{width}} | ", row, width, styles))
    return lines


def _row(head: str, marks: list[str], width: int, styles: dict[str, str]) -> Text:
    """One table row; runs of equal marks share one style span (rich renders spans slowly)."""
    from rich.text import Text

    text = Text(head + " ".join(f"{m:>{width}}" for m in marks))
    start = len(head)
    run = 0
    for k in range(1, len(marks) + 1):
        if k == len(marks) or marks[k] != marks[run]:
            begin = start + run * (width + 1)
            end = start + k * (width + 1) - 1
            text.stylize(styles[marks[run]], begin, end)
            run = k
    return text


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
    "--probe", "probes", multiple=True, metavar="PORT/PROTO", help="A probe: 80/TCP, 53/UDP, ICMP."
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json", "csv", "md"]),
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
    """
    from sekisho.cli.trace import load
    from sekisho.semantics import compute_matrix, default_probes

    cluster = load(paths)
    chosen = choose_probes(port, protocol, probes)
    result = compute_matrix(cluster, chosen if chosen is not None else default_probes(cluster))
    if output == "json":
        stream = sys.stdout.buffer
        for chunk in result.iter_json_bytes():
            stream.write(chunk)
        stream.write(b"\n")
        stream.flush()
    elif output == "csv":
        for text in iter_csv(result):
            sys.stdout.write(text)
        sys.stdout.flush()
    elif output == "md":
        click.echo(markdown_text(result))
    else:
        from rich.console import Console

        console = Console(
            no_color=bool(os.environ.get("NO_COLOR")), highlight=False, soft_wrap=True
        )
        lines = table_lines(result)
        if console.no_color or not console.is_terminal:
            sys.stdout.write("".join(t.plain + "\n" for t in lines))
        else:
            for line in lines:
                console.print(line)
    return 0
