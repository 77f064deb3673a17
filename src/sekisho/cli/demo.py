"""``sekisho demo``: reproduce the seed report's findings with real packets (or offline)."""

from __future__ import annotations

from pathlib import Path

import click

from sekisho.cli.options import backend_option


def _find_seed(given: str | None) -> Path:
    if given:
        return Path(given)
    here = Path(__file__).resolve()
    for candidate in (Path.cwd() / "examples" / "seed", here.parents[3] / "examples" / "seed"):
        if (candidate / "cluster.yaml").exists():
            return candidate
    raise click.UsageError("cannot find examples/seed; give it with --seed DIR")


@click.command("demo")
@backend_option("Dataplane the lab's agents program.")
@click.option("--seed", "seed", default=None, help="The seed directory (default examples/seed).")
@click.option("--name", default="demo", show_default=True, help="Lab name.")
@click.option("--offline", is_flag=True, help="Show the analysis without building a lab.")
@click.option(
    "--store",
    type=click.Choice(["etcd", "files"]),
    default="etcd",
    show_default=True,
    help="Where the nodes learn the cluster: the lab's etcd, or a shared directory.",
)
@click.option(
    "--act",
    "act",
    type=click.Choice(["both", "seed", "calico"]),
    default="both",
    show_default=True,
    help="seed: the report's findings; calico: Calico's own policies (tiers, order, "
    "a GlobalNetworkSet, a staged policy) from examples/calico; both: one lab, one after the other.",
)
def demo(backend: str, seed: str | None, name: str, offline: bool, store: str, act: str) -> int:
    """Build the seed's 6-node cluster as a lab and reproduce each finding of the report,
    then show Calico's own policy model on it (act 2, examples/calico).

    Every PASS comes from a real ping/curl (or the installed rules read back);
    in act 2, sekisho's trace must also agree with the expectation.
    Exit 0 only if every check passes. Without root or network namespaces it
    says why and checks the findings offline instead: with the semantics and by
    walking each flow through the rendered iptables rules (no packets).
    """
    from sekisho.lab import demo as d

    seed_dir = _find_seed(seed)
    why = "--offline given" if offline else d.unavailable()
    if why:
        return 0 if d.offline(seed_dir, click.echo, why, act) else 1
    return 0 if d.run(seed_dir, backend, click.echo, name, store, act) else 1
