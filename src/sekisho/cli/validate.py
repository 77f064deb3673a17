"""``sekisho validate``: load manifests and report every problem, one per line.

Exit status: 0 when everything is valid, 2 when there is any problem. Each
problem is ``FILE:LINE: KIND NAMESPACE/NAME: FIELD.PATH: message``; ``-o json``
prints ``{"valid", "problems", "summary"}`` for CI.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from sekisho.cli.options import etcd_config, etcd_options


def _count(n: int, noun: str) -> str:
    plural = "policies" if noun == "policy" else f"{noun}s"
    return f"{n} {noun if n == 1 else plural}"


def summary_line(summary: dict[str, int]) -> str:
    s = summary
    counts = ", ".join(
        _count(s[key], noun)
        for key, noun in (
            ("nodes", "node"),
            ("namespaces", "namespace"),
            ("pods", "pod"),
            ("policies", "policy"),
        )
    )
    unsupported = f", {s['unsupported']} unsupported" if s.get("unsupported") else ""
    return (
        f"{_count(s['files'], 'file')}, {_count(s['objects'], 'object')}: {counts} "
        f"({s['skipped']} skipped{unsupported})"
    )


@click.command(name="validate")
@click.argument("paths", nargs=-1, required=False, metavar="PATH...")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format; json prints one object for CI.",
)
@click.option("-v", "--verbose", is_flag=True, help="Also list objects of kinds sekisho skips.")
@click.option(
    "--cluster-cidr",
    default="10.244.0.0/16",
    show_default=True,
    help="Pod network from which nodes without a podCIDR get a /24.",
)
@etcd_options()
def validate(
    paths: tuple[str, ...], output: str, verbose: bool, cluster_cidr: str, **etcd: Any
) -> int:
    """Load manifests (files, directories, or - for stdin) and report every problem.

    Reads Namespace, Node, Pod, NetworkPolicy, ClusterNetworkPolicy,
    AdminNetworkPolicy, BaselineAdminNetworkPolicy and the workload controllers
    (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job). Built-in kinds that
    neither allow traffic nor run pods (Service, ConfigMap, RBAC...) are skipped;
    any other kind (Calico or Cilium policies, custom resources) is unsupported:
    a "warning: ... unsupported kind" line, since verdicts leave it out. Directories are read recursively (*.yaml, *.yml, *.json, sorted;
    hidden files and directories left out).

    Each problem is one line, FILE:LINE: KIND NAMESPACE/NAME: FIELD.PATH:
    message. Warnings (valid, but probably not meant: rules that policyTypes
    ignores, selectors that select nothing) are printed as "warning: ..." lines.
    Exits 0 when valid (warnings or not), 2 on any problem. With --etcd URLS
    instead of paths it validates what the store holds, as an agent reads it
    (problems at etcd:KEY).
    """
    config = etcd_config(etcd)
    if bool(paths) == (config is not None):
        raise click.UsageError("give PATH... or --etcd URLS")
    if config is not None:
        from sekisho.sources.etcd import EtcdClient, Snapshot, snapshot_result

        rev, kvs = EtcdClient(config).range_prefix(config.prefix)
        snapshot = Snapshot(rev, {kv.key: kv for kv in kvs})
        result = snapshot_result(snapshot, config.prefix)
    else:
        from sekisho.model import load_paths
        from sekisho.sources.split import read_paths

        result = load_paths(
            list(paths), stdin=sys.stdin, cluster_cidr=cluster_cidr, reader=read_paths
        )
    summary = result.summary()
    if output == "json":
        doc: dict[str, object] = {
            "valid": result.valid,
            "problems": [p.to_json() for p in result.problems],
            "warnings": [w.to_json() for w in result.warnings],
            "summary": summary,
        }
        if verbose:
            doc["skipped"] = [{"location": loc, "object": obj} for loc, obj in result.skipped]
        click.echo(json.dumps(doc, indent=2))
        return 0 if result.valid else 2
    if verbose:
        for loc, obj in result.skipped:
            click.echo(f"{loc}: skipped {obj}")
    for problem in result.problems:
        click.echo(str(problem))
    for warning in result.warnings:
        click.echo(f"warning: {warning}")
    if result.valid:
        n = len(result.warnings)
        notes = f", {n} warning{'s' if n != 1 else ''}" if n else ""
        click.echo(f"ok: {summary_line(summary)}{notes}")
        return 0
    n = len(result.problems)
    click.echo(
        f"invalid: {_count(n, 'problem')} in {_count(result.files, 'file')}, "
        f"{_count(result.objects, 'object')}",
        err=True,
    )
    return 2
