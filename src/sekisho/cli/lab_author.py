"""``sekisho lab test`` and ``sekisho lab diff``: the author's checks with real packets."""

from __future__ import annotations

from pathlib import Path

import click

from sekisho.cli.options import backend_option


@click.command("test")
@click.argument("expect_file", metavar="EXPECT.yaml")
@click.argument("paths", nargs=-1)
@click.option("--name", default="lab", show_default=True, help="Lab name ([a-z0-9], <= 10).")
@backend_option("Dataplane the agents program (with PATH...).")
@click.option("--timeout", type=float, default=1.0, show_default=True, help="Seconds per probe.")
@click.option("--junit", default=None, metavar="FILE", help="Also write JUnit XML to FILE.")
def lab_test(
    expect_file: str,
    paths: tuple[str, ...],
    name: str,
    backend: str,
    timeout: float,
    junit: str | None,
) -> int:
    """Run the expectations of EXPECT.yaml for real: every pair probed in the lab.

    With PATH..., a lab of PATH... is built, tested and removed on every exit
    path; without, the running lab NAME is tested. The lines are those of
    `sekisho test`; a pair the lab cannot probe fails. Exit 0, 1 or 2.
    """
    from sekisho.cli.test import failure_lines, junit_xml, read_expectations
    from sekisho.lab.author import lab_oracle
    from sekisho.lab.core import Lab
    from sekisho.lab.lifecycle import guarded
    from sekisho.lab.manifests import read_objects
    from sekisho.semantics.expect import run_checks

    spec = read_expectations(expect_file)

    def run(lab_: Lab) -> int:
        outcome = run_checks(lab_.cluster, spec, lab_oracle(lab_.plan, timeout))
        if junit is not None:
            Path(junit).write_bytes(junit_xml([outcome], suite="sekisho lab"))
        for line in failure_lines([outcome]):
            click.echo(line)
        return 0 if outcome.ok else 1

    if not paths:
        return run(Lab(name))
    objects = read_objects(paths)
    with guarded(name):
        return run(Lab.up(objects, name=name, backend=backend))


@click.command(
    "diff", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": True}
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--name", default="lab", show_default=True, help="Lab name ([a-z0-9], <= 10).")
@backend_option("Dataplane the agents program.")
@click.option("--pairs", type=int, default=6, show_default=True, help="Lost pairs to hold open.")
def lab_diff(args: tuple[str, ...], name: str, backend: str, pairs: int) -> int:
    """Show with real connections what a change does to connections already open.

    sekisho lab diff OLD... --against NEW...

    Builds a lab of OLD..., opens a TCP connection for each of the first
    --pairs pairs the change loses (one per line of `sekisho diff`) and keeps
    it busy, applies NEW... without forgetting conntrack, then checks that
    each open connection is still answered and that a new one is dropped.
    The lab is removed on every exit path. Exit 0 when all is as diff says.
    """
    from sekisho.errors import UsageError
    from sekisho.lab.author import prove_established
    from sekisho.lab.core import Lab
    from sekisho.lab.lifecycle import guarded
    from sekisho.lab.manifests import read_objects
    from sekisho.model import load_cluster
    from sekisho.semantics.diff import diff_clusters, fold

    if "--against" not in args:
        raise UsageError("expected OLD... --against NEW...")
    at = args.index("--against")
    old_paths, new_paths = list(args[:at]), list(args[at + 1 :])
    if not old_paths or not new_paths:
        raise UsageError("expected paths on both sides of --against")
    result = diff_clusters(load_cluster(old_paths), load_cluster(new_paths))
    chosen: list[tuple[str, str, int]] = []
    for probe in result.probes:
        if probe.service.protocol != "TCP" or probe.service.port is None:
            continue
        for line in fold(probe.lost):
            src = line.sources[0].pods[0]
            dst = line.destinations[0].pods[0]
            if src != dst and len(chosen) < pairs:
                chosen.append((src, dst, probe.service.port))
    if not chosen:
        click.echo("the change loses no TCP pair: no open connection to hold")
        return 0
    new_objects = read_objects(new_paths)
    with guarded(name):
        lab_ = Lab.up(read_objects(old_paths), name=name, backend=backend)
        results = prove_established(
            lab_.plan, chosen, lambda: lab_.apply(new_objects, forget=False)
        )
    for r in results:
        click.echo(str(r))
    good = sum(r.as_said for r in results)
    click.echo(
        f"{good} of {len(results)} lost pairs as diff says: open connections keep working, "
        "new ones are denied"
    )
    return 0 if good == len(results) else 1
