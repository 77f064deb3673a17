"""``sekisho render``: one node's iptables + ipset documents, or its nft script.

``sekisho trace --node`` reads :func:`explain_enforcement` (its logic lives beside
the interpreter, in :mod:`sekisho.render.explain`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from sekisho.cli.options import backend_option, etcd_options, log_group_option, prefix_option

if TYPE_CHECKING:
    from sekisho.model.types import Cluster
    from sekisho.render import Backend, Ruleset
    from sekisho.semantics import Flow


def write_outputs(ruleset: Ruleset, out_dir: Path, backend: str) -> list[Path]:
    """Write the documents into ``out_dir`` (created if missing); return the paths written."""
    from sekisho.dataplane.backends import backend as backend_named

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in backend_named(backend).files(ruleset).items():
        path = out_dir / name
        path.write_text(text)
        written.append(path)
    return written


def explain_enforcement(
    cluster: Cluster, flow: Flow, node: str | None = None, backend: str = "iptables"
) -> list[str]:
    """:func:`sekisho.render.explain.explain_enforcement`, for a cluster the renderer draws
    (one with a second host endpoint on a node is refused)."""
    from sekisho.render.explain import explain_enforcement as explain
    from sekisho.sources.files import refuse_unrendered

    return explain(refuse_unrendered(cluster), flow, node, backend)


@click.command("render")
@click.argument("paths", nargs=-1)
@click.option("--node", required=True, help="The node whose rules to render.")
@backend_option("Which ruleset to render.")
@prefix_option()
@log_group_option()
@click.option(
    "-o",
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write ipset.restore and iptables.restore (or ruleset.nft) here.",
)
@etcd_options()
def render(
    paths: tuple[str, ...],
    node: str,
    backend: str,
    prefix: str,
    log_group: int | None,
    out_dir: Path | None,
    **etcd: object,
) -> int:
    """Render NODE's dataplane for the policies in PATH...

    Exactly what the agent sends to a node that has nothing of ours yet.
    iptables: the `ipset restore` document and the `iptables-restore --noflush`
    document of table filter, after tables raw and mangle when doNotTrack or
    preDNAT policies apply to the node's host endpoint (only our own chains, each
    rule tagged with its hash, then the hook rules inserted first in the builtin
    chains). nftables: one
    `nft -f` script that creates or replaces table inet PREFIX. Output is
    deterministic.
    """
    from sekisho.cli.trace import load
    from sekisho.dataplane.backends import backend as backend_named
    from sekisho.render import render_node
    from sekisho.sources.files import refuse_unrendered

    cluster = refuse_unrendered(load(paths, etcd))
    ruleset = render_node(
        cluster, node, backend=cast("Backend", backend), prefix=prefix, log_group=log_group
    )
    if out_dir is None:
        click.echo(backend_named(backend).documents(ruleset), nl=False)
    else:
        for path in write_outputs(ruleset, out_dir, backend):
            click.echo(f"wrote {path}", err=True)
    return 0
