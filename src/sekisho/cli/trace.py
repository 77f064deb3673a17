"""``sekisho trace``: can A reach B on a port, and why?"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from sekisho.cli.options import backend_option, etcd_config, etcd_options, family_option

if TYPE_CHECKING:
    from sekisho.model.types import Cluster
    from sekisho.semantics import Verdict


def load(paths: Sequence[str], etcd: dict[str, object] | None = None) -> Cluster:
    """The cluster from manifest files, or from the store with ``--etcd`` (errors exit 2).

    Objects of kinds sekisho does not read are never ignored in silence: each is
    a warning on stderr (and in the JSON outputs, see :func:`warnings_json`).
    """
    from sekisho.model import load_cluster

    config = etcd_config(etcd) if etcd is not None else None
    if bool(paths) == (config is not None):
        raise click.UsageError("give PATH... or --etcd URLS")
    if config is not None:
        from sekisho.sources.etcd import store_cluster

        cluster = store_cluster(config)
    else:
        from sekisho.sources.split import read_paths

        cluster = load_cluster(list(paths), reader=read_paths)
    warn_unsupported(cluster)
    return cluster


def warn_unsupported(cluster: Cluster) -> None:
    """One ``warning:`` line on stderr per object of a kind sekisho does not read."""
    for problem in cluster.unsupported:
        click.echo(f"warning: {problem}", err=True)


def warnings_json(cluster: Cluster) -> list[dict[str, object]]:
    """The unsupported objects as the JSON outputs carry them (``"warnings"``)."""
    return [p.to_json() for p in cluster.unsupported]


def trace_family(cluster: Cluster, src: str, dst: str, family: int | None) -> int | None:
    """The family to trace over: the one asked for, else the family of an address given
    as SRC or DST (an IPv6 address means a probe over IPv6), else None (as given)."""
    import ipaddress

    if family is not None:
        return family
    for text in (src, dst):
        try:
            return ipaddress.ip_address(text.strip()).version
        except ValueError:
            continue
    return None


def run_trace(
    cluster: Cluster,
    src: str,
    dst: str,
    port: int | str | None,
    protocol: str,
    family: int | None = None,
) -> list[Verdict]:
    """Verdicts for every (source, destination) pair the two names resolve to.

    ``port`` is a number or a port name (resolved on each destination pod);
    ``family``: trace over IPv4 or IPv6 (:func:`trace_family`).
    """
    from sekisho.errors import UsageError
    from sekisho.semantics import Flow, resolve_endpoints, verdict
    from sekisho.semantics.probe import family_view, services_from_flags

    family = trace_family(cluster, src, dst, family)
    if family is not None and any(
        p.ip is not None and p.ip.version != family for p in cluster.pods
    ):
        cluster = family_view(cluster, family)

    if port is None:
        services = services_from_flags((), None, protocol)
    else:
        services = services_from_flags((f"{port}/{protocol}",), None, None)
    if services is None or len(services) != 1:
        raise UsageError("trace takes one port (or ICMP)")
    (svc,) = services
    sources = resolve_endpoints(cluster, src)
    destinations = resolve_endpoints(cluster, dst)
    out = []
    for d in destinations:
        number = svc.port_on(d.pod) if svc.name is not None else svc.port
        if svc.name is not None and number is None:
            raise UsageError(f"{d.label} declares no {svc.protocol} port named {svc.name}")
        for s in sources:
            if s.ip.version != d.ip.version:
                raise UsageError(
                    f"{s.label} ({s.ip}) and {d.label} ({d.ip}) are of two IP families;"
                    " a flow has one (--family 4|6)"
                )
            out.append(verdict(cluster, Flow(s, d, svc.protocol, number)))
    return out


def _color() -> bool | None:
    return False if os.environ.get("NO_COLOR") else None


def render_text(verdicts: Sequence[Verdict]) -> list[str]:
    out: list[str] = []
    for n, v in enumerate(verdicts):
        if n:
            out.append("")
        for line in v.lines():
            if line.startswith("verdict: "):
                line = click.style(line, fg="green" if v.allowed else "red", bold=True)
            out.append(line)
    if len(verdicts) > 1:
        allowed = sum(v.allowed for v in verdicts)
        out += ["", f"{allowed} of {len(verdicts)} pairs allowed"]
    return out


class _PortType(click.ParamType[int | str]):
    name = "PORT"

    def convert(self, value: object, param: object, ctx: object) -> int | str:
        text = str(value)
        if text.isdigit():
            number = int(text)
            if not 1 <= number <= 65535:
                self.fail(f"{text} is not a port 1-65535")
            return number
        return text


_PORT = _PortType()


@click.command("trace")
@click.argument("paths", nargs=-1)
@click.option("--from", "src", required=True, help="Source: ns/pod, ns/workload, node name or IP.")
@click.option("--to", "dst", required=True, help="Destination: ns/pod, ns/workload, node or IP.")
@click.option(
    "--port",
    type=_PORT,
    default=None,
    help="Destination port: a number, or a port name resolved on the destination pod.",
)
@click.option(
    "--protocol",
    type=click.Choice(["TCP", "UDP", "SCTP", "ICMP"], case_sensitive=False),
    default="TCP",
    show_default=True,
)
@click.option(
    "--node",
    default=None,
    help="Also show the rendered rules and sets that enforce the verdict on NODE "
    "('all' for every node the flow passes).",
)
@backend_option("Ruleset to interpret with --node.")
@family_option()
@click.option(
    "-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@etcd_options()
def trace(
    paths: tuple[str, ...],
    src: str,
    dst: str,
    port: int | str | None,
    protocol: str,
    node: str | None,
    backend: str,
    family: int | None,
    output: str,
    **etcd: object,
) -> int:
    """Say whether SRC can reach DST on a port under the policies in PATH..., and why.

    Shows the source's egress and the destination's ingress: isolated or not, by
    which policies (file:line), the rule, peer and port that matched, or for each
    rule why it did not. Exit 0 allowed, 1 denied, 2 bad input.
    """
    from sekisho.semantics.probe import family_view
    from sekisho.semantics.staged import pending_verdict, verdict_lines

    cluster = load(paths, etcd)
    fam = trace_family(cluster, src, dst, family)
    if fam is not None and any(p.ip is not None and p.ip.version != fam for p in cluster.pods):
        cluster = family_view(cluster, fam)  # the walk, the staged view and --node all over it
    verdicts = run_trace(cluster, src, dst, port, protocol, fam)
    pending = [pending_verdict(cluster, v.flow) for v in verdicts]
    enforcement: list[list[str]] = []
    if node is not None:
        from sekisho.cli.render import explain_enforcement

        target = None if node == "all" else node
        enforcement = [explain_enforcement(cluster, v.flow, target, backend) for v in verdicts]
    if output == "json":
        import json  # only here: its decoder's regexes are compiled at import

        doc: dict[str, object] = {
            "allowed": all(v.allowed for v in verdicts),
            "verdicts": [v.to_json() for v in verdicts],
            "warnings": warnings_json(cluster),
        }
        if any(p is not None for p in pending):
            # Staged policies are never enforced: their verdicts are shown beside.
            doc["pending"] = [None if p is None else p.to_json() for p in pending]
        if enforcement:
            doc["enforcement"] = enforcement
        click.echo(json.dumps(doc, indent=2))
    else:
        color = _color()
        for line in render_text(verdicts):
            click.echo(line, color=color)
        for v, p in zip(verdicts, pending, strict=True):
            if p is not None:
                click.echo("")
                if len(verdicts) > 1:
                    click.echo(f"{v.flow.src.label} -> {v.flow.dst.label}:")
                for line in verdict_lines(v, p, cluster):
                    click.echo(line, color=color)
        for lines in enforcement:
            click.echo("")
            for line in lines:
                click.echo(line, color=color)
    return 0 if all(v.allowed for v in verdicts) else 1
