"""``sekisho render``: one node's iptables + ipset documents, or its nft script.

Also :func:`explain_enforcement`, the helper ``sekisho trace --node`` uses to
show what the rendered rules of a node do with a flow (the interpreter walks
the very text ``render`` prints).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from sekisho.cli.options import backend_option, etcd_options, prefix_option

if TYPE_CHECKING:
    from sekisho.model.types import Cluster
    from sekisho.render import Backend, IptablesRuleset, NftRuleset
    from sekisho.semantics import Flow


def write_outputs(ruleset: IptablesRuleset | NftRuleset, out_dir: Path) -> list[Path]:
    """Write the documents into ``out_dir`` (created if missing); return the paths written."""
    from sekisho.render import IptablesRuleset

    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, str]
    if isinstance(ruleset, IptablesRuleset):
        files = {
            "ipset.restore": ruleset.ipset_restore(),
            "iptables.restore": ruleset.iptables_restore(),
            "hooks.txt": ruleset.hook_lines(),
        }
    else:
        files = {"ruleset.nft": ruleset.script()}
    written = []
    for name, text in files.items():
        path = out_dir / name
        path.write_text(text)
        written.append(path)
    return written


def explain_enforcement(
    cluster: Cluster, flow: Flow, node: str | None = None, backend: str = "iptables"
) -> list[str]:
    """Lines saying what the rendered rules do with ``flow`` on each node it passes.

    With ``node``, only that node's filtering points are shown (and a line when the
    flow does not pass that node's filters). Each hop shows the hook, interfaces,
    verdict, the rule that decided and the rules that matched before it.
    """
    from functools import cache

    from sekisho.render import check_node, render_node
    from sekisho.render.interpret import Decision, IptablesProgram, NftProgram, Packet, program
    from sekisho.render.path import enforce, hops
    from sekisho.sources.files import refuse_unrendered

    refuse_unrendered(cluster)
    if node is not None:
        check_node(cluster, node)

    @cache
    def ruleset(name: str) -> IptablesRuleset | NftRuleset:
        return render_node(cluster, name, backend=cast("Backend", backend))

    @cache
    def prog(name: str) -> IptablesProgram | NftProgram:
        return program(ruleset(name).render_text())

    def evaluate(name: str, packet: Packet) -> Decision:
        return prog(name).evaluate(packet)

    path = hops(flow)
    lines = [
        f"enforcement ({backend} rules as rendered): {flow.src.label} -> {flow.dst.label} {flow.service}"
    ]
    if not path:
        lines.append("  no node filters this flow (same pod, or node-originated to its own pod)")
        return lines
    allowed, trail = enforce(flow, evaluate)
    shown = [(h, d) for h, d in trail if node is None or h.node == node]
    if node is not None and not any(h.node == node for h in path):
        lines.append(f"  the flow does not pass node {node}'s filters")
    for hop, d in shown:
        p = hop.packet
        where = (
            f"{hop.node} {p.hook}"
            + (f" in={p.iif}" if p.iif else "")
            + (f" out={p.oif}" if p.oif else "")
        )
        because = "" if d.because == d.rule else f" (because: {d.because})"
        lines.append(f"  {where}: {d.verdict} by: {d.rule}{because}")
        lines.extend(f"      matched: {c}" for c in d.trail[:-1])
        lines.extend(_enforcing_rule(ruleset(hop.node), d.because))
    lines.append(f"  rules say: {'allowed' if allowed else 'denied'}")
    return lines


def _enforcing_rule(ruleset: IptablesRuleset | NftRuleset, comment: str) -> list[str]:
    """The rendered rule whose comment is ``comment``, and the members of each set it uses."""
    import re

    from sekisho.render import IpSetSpec

    quoted = f'"{comment}"'
    rule = next((ln for ln in ruleset.render_text().splitlines() if quoted in ln), None)
    if rule is None:
        return []
    out = [f"      rule: {rule.strip()}"]
    members: dict[str, tuple[str, ...]] = {
        s.name: s.members if isinstance(s, IpSetSpec) else s.elements for s in ruleset.sets
    }
    for name in re.findall(r"--match-set (\S+)|@([\w.-]+)", rule):
        set_name = name[0] or name[1]
        if set_name in members:
            shown = ", ".join(members[set_name][:8])
            more = len(members[set_name]) - 8
            out.append(f"      set {set_name}: {shown}" + (f" (+{more} more)" if more > 0 else ""))
    return out


@click.command("render")
@click.argument("paths", nargs=-1)
@click.option("--node", required=True, help="The node whose rules to render.")
@backend_option("Which ruleset to render.")
@prefix_option()
@click.option(
    "-o",
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write ipset.restore, iptables.restore, hooks.txt (or ruleset.nft) here.",
)
@etcd_options()
def render(
    paths: tuple[str, ...],
    node: str,
    backend: str,
    prefix: str,
    out_dir: Path | None,
    **etcd: object,
) -> int:
    """Render NODE's dataplane for the policies in PATH...

    iptables: the `ipset restore` document and the `iptables-restore --noflush`
    document of table filter (only our own chains), plus the hook rules to insert
    first in FORWARD and INPUT. nftables: one `nft -f` script that creates or
    replaces table inet PREFIX. Output is deterministic.
    """
    from sekisho.cli.trace import load
    from sekisho.render import render_node
    from sekisho.sources.files import refuse_unrendered

    cluster = refuse_unrendered(load(paths, etcd))
    ruleset = render_node(cluster, node, backend=cast("Backend", backend), prefix=prefix)
    if out_dir is None:
        click.echo(ruleset.render_text(), nl=False)
    else:
        for path in write_outputs(ruleset, out_dir):
            click.echo(f"wrote {path}", err=True)
    return 0
