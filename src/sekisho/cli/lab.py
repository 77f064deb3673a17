"""``sekisho lab``: a virtual cluster of network namespaces on this host.

    sekisho lab up PATH... [--name LAB] [--backend iptables|nftables]
    sekisho lab apply PATH... [--name LAB]
    sekisho lab probe [--probe 80/TCP ...] [--from X] [--to Y] [-o table|json]
    sekisho lab exec NODE|POD|external -- CMD...
    sekisho lab down [--name LAB | --all]
    sekisho lab run PATH... [probe options]      (up, probe, down; cleanup guaranteed)

Heavy modules are imported inside the commands so ``sekisho --help`` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from sekisho.cli.options import backend_option, family_option

F = TypeVar("F", bound=Callable[..., Any])


def _name_option(f: F) -> F:
    return click.option(
        "--name", "name", default="lab", show_default=True, help="Lab name ([a-z0-9], <= 10)."
    )(f)


def _probe_options(f: F) -> F:
    for opt in reversed(
        [
            click.option(
                "--probe",
                "probes",
                multiple=True,
                metavar="PORT/PROTO",
                help="80/TCP, 81/UDP, 80/SCTP or ICMP (repeatable). Default: every declared port.",
            ),
            click.option("--port", type=int, help="One probe port (with --protocol)."),
            click.option(
                "--protocol",
                type=click.Choice(["TCP", "UDP", "SCTP", "ICMP"], case_sensitive=False),
                help="Protocol of --port (default TCP).",
            ),
            click.option(
                "--from", "sources", multiple=True, help="Source pod (ns/name) or namespace."
            ),
            click.option(
                "--to", "targets", multiple=True, help="Destination pod (ns/name) or namespace."
            ),
            click.option(
                "--timeout", type=float, default=1.0, show_default=True, help="Seconds per probe."
            ),
            click.option(
                "-o",
                "--output",
                type=click.Choice(["table", "json"]),
                default="table",
                show_default=True,
            ),
            family_option(
                "IP family of the probes: 4 or 6. Default: each family the pods have"
                " addresses of (a dual-stack cluster is probed over both)."
            ),
        ]
    ):
        f = opt(f)
    return f


def _specs(cluster: Any, probes: Sequence[str], port: int | None, protocol: str | None) -> Any:
    """The probes of matrix and trace (one rule: :mod:`sekisho.semantics.probe`)."""
    from sekisho.semantics.probe import default_services, services_from_flags

    chosen = services_from_flags(probes, port, protocol)
    return chosen if chosen is not None else default_services(cluster)


def _probe_and_print(
    lab: Any,
    probes: Sequence[str],
    port: int | None,
    protocol: str | None,
    sources: Sequence[str],
    targets: Sequence[str],
    timeout: float,
    output: str,
    family: int | None = None,
) -> int:
    import contextlib

    from sekisho.lab.logs import LogCapture
    from sekisho.lab.reach import format_tables, measure_families

    specs = _specs(lab.cluster, probes, port, protocol)
    # the lines the Log rules write for the probes, read in each node (agents only)
    with LogCapture(lab) if lab.state.enforce == "agent" else contextlib.nullcontext() as capture:
        results = measure_families(
            lab.cluster, lab.plan, specs, sources, targets, timeout, family, capture
        )
    if output == "json":
        if len(results) == 1:
            click.echo(json.dumps(results[0].to_json()))
        else:  # a dual-stack cluster: one object per family, as the single-family one
            click.echo(json.dumps({"families": [r.to_json() for r in results]}))
    else:
        click.echo("\n\n".join(format_tables(r) for r in results))
    return 1 if any(r.mismatches or r.log_mismatches for r in results) else 0


@click.group("lab")
def lab() -> None:
    """A virtual cluster of network namespaces: up, apply, probe, exec, down, run.

    Needs root. Every namespace is named skl-<lab>-...; nothing is linked to the
    host's own namespace. State: /run/sekisho/lab/<lab>/.
    """


@lab.command("up")
@click.argument("paths", nargs=-1, required=True)
@_name_option
@backend_option("Dataplane the agents program.")
@click.option(
    "--no-agent", is_flag=True, help="Build the topology only; enforce nothing (debugging)."
)
@click.option(
    "--store",
    type=click.Choice(["files", "etcd"]),
    default="files",
    show_default=True,
    help="Where agents learn the cluster: a shared directory, or a three-member etcd inside "
    "the lab (TLS, roles; `lab apply` writes through it as `sekisho apply` does).",
)
def up(paths: tuple[str, ...], name: str, backend: str, no_agent: bool, store: str) -> int:
    """Build the cluster of PATH... and start servers and one agent per node."""
    import time

    from sekisho.lab.core import Lab
    from sekisho.lab.manifests import read_objects

    start = time.monotonic()
    lab_ = Lab.up(
        read_objects(paths),
        name=name,
        backend=backend,
        enforce="none" if no_agent else "agent",
        store=store,
    )
    p = lab_.plan
    click.echo(
        f"lab {name} up in {time.monotonic() - start:.1f} s: {len(p.nodes)} nodes,"
        f" {len(p.pods)} pods, external host {p.external_ip} ({backend}"
        f"{', no agents' if no_agent else ''}{', etcd store' if store == 'etcd' else ''}"
        f"{'' if no_agent else f', Log rules to NFLOG group {lab_.state.log_group}'})"
    )
    for n in p.nodes:
        six = f" {n.ip6}" if n.ip6 is not None else ""
        click.echo(f"  node {n.name:<16} {n.ip!s:<16} netns {n.netns}{six}")
    for pod in p.pods:
        six = f" {pod.ip6}" if pod.ip6 is not None else ""
        click.echo(f"  pod  {pod.key:<32} {pod.ip!s:<16} on {pod.node:<12} netns {pod.netns}{six}")
    return 0


@lab.command("apply")
@click.argument("paths", nargs=-1, required=True)
@_name_option
@click.option("--timeout", type=float, default=30.0, show_default=True)
def apply(paths: tuple[str, ...], name: str, timeout: float) -> int:
    """Replace the lab's policies (and labels) with PATH...; wait until every agent applied."""
    import time

    from sekisho.lab.core import Lab
    from sekisho.lab.manifests import read_objects

    start = time.monotonic()
    cluster = Lab(name).apply(read_objects(paths), timeout)
    click.echo(
        f"applied {len(cluster.policies)} policies to lab {name} in {time.monotonic() - start:.1f} s"
    )
    return 0


@lab.command("probe")
@_name_option
@_probe_options
def probe(
    name: str,
    probes: tuple[str, ...],
    port: int | None,
    protocol: str | None,
    sources: tuple[str, ...],
    targets: tuple[str, ...],
    timeout: float,
    output: str,
    family: int | None,
) -> int:
    """Probe every ordered pod pair for real; print expected against observed; exit 1 if wrong."""
    from sekisho.lab.core import Lab

    return _probe_and_print(
        Lab(name), probes, port, protocol, sources, targets, timeout, output, family
    )


@lab.command(
    "exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@_name_option
@click.argument("target")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(name: str, target: str, argv: tuple[str, ...]) -> int:
    """Run CMD inside a node, a pod (ns/name) or the external host: lab exec POD -- CMD..."""
    import subprocess

    from sekisho.lab.core import Lab

    args = list(argv[1:] if argv and argv[0] == "--" else argv)
    return subprocess.call(Lab(name).exec_argv(target, args))


@lab.command("down")
@_name_option
@click.option("--all", "all_", is_flag=True, help="Every lab, also remains of crashed runs.")
def down(name: str, all_: bool) -> int:
    """Kill the lab's processes and delete its namespaces and state."""
    from sekisho.lab.core import Lab, down_all

    if all_:
        removed = down_all()
        click.echo(f"removed {len(removed)} lab(s){': ' + ', '.join(removed) if removed else ''}")
    else:
        Lab(name).down()
        click.echo(f"lab {name} removed")
    return 0


@lab.command("run")
@click.argument("paths", nargs=-1, required=True)
@_name_option
@backend_option("Dataplane the agents program.")
@_probe_options
def run(
    paths: tuple[str, ...],
    name: str,
    backend: str,
    probes: tuple[str, ...],
    port: int | None,
    protocol: str | None,
    sources: tuple[str, ...],
    targets: tuple[str, ...],
    timeout: float,
    output: str,
    family: int | None,
) -> int:
    """Up, probe, down in one go; the lab is removed on every exit path, Ctrl-C included."""
    from sekisho.lab.core import Lab
    from sekisho.lab.lifecycle import guarded
    from sekisho.lab.manifests import read_objects

    objects = read_objects(paths)
    with guarded(name):
        lab_ = Lab.up(objects, name=name, backend=backend)
        return _probe_and_print(
            lab_, probes, port, protocol, sources, targets, timeout, output, family
        )


def _author_commands() -> None:
    # `lab test` and `lab diff` live beside the offline commands they mirror.
    from sekisho.cli.lab_author import lab_diff, lab_test

    lab.add_command(lab_test)
    lab.add_command(lab_diff)


_author_commands()
