"""``sekisho report``: one self-contained HTML page to look at the policies' effect."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "-o", "--output", "out", required=True, metavar="FILE", help="The HTML file to write."
)
@click.option(
    "--probe",
    "probes",
    multiple=True,
    metavar="PORT/PROTO",
    help="A probe: 80/TCP, 53/UDP, metrics/TCP, ICMP (default: every declared port and ICMP).",
)
@click.option("--title", default=None, help="The page's title (default: the paths).")
def report(paths: tuple[str, ...], out: str, probes: tuple[str, ...], title: str | None) -> int:
    """Write one HTML file showing what the policies in PATH... allow.

    The groups (pods policy cannot tell apart) as a graph with the allowed
    connections of the chosen probe, the matrix as a heat map, filters by
    namespace and probe (port), and a click on a pair shows trace's explanation.
    The file needs no network access to open.
    """
    from sekisho.cli.report_page import page
    from sekisho.cli.trace import load
    from sekisho.semantics.probe import default_services, services_from_flags
    from sekisho.semantics.report import report_data

    cluster = load(paths)
    chosen = services_from_flags(probes, None, None) or default_services(cluster)
    data = report_data(cluster, chosen, title=title or "sekisho report: " + " ".join(paths))
    Path(out).write_text(page(data), encoding="utf-8")
    n_groups = len(data["groups"])  # type: ignore[arg-type]
    click.echo(f"wrote {out}: {data['pods']} pods in {n_groups} groups, {len(chosen)} probes")
    return 0
