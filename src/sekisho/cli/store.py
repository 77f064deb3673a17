"""``sekisho apply``, ``delete`` and ``get`` (also as ``sekisho store ...``): the cluster's store.

kubectl-like. An apply or delete is validated whole, on the cluster the store
would hold after it, and written as one etcd transaction (all or nothing); a write
that raced another is retried on the new state, then refused (never lost).
"""

from __future__ import annotations

import json
from typing import Any

import click

from sekisho.cli.options import etcd_config, etcd_options


def _store(kwargs: dict[str, Any]) -> Any:
    from sekisho.sources.etcd import EtcdClient
    from sekisho.sources.store import Store

    config = etcd_config(kwargs)
    if config is None:
        raise click.UsageError("--etcd URLS is required (or SEKISHO_ETCD)")
    return Store(EtcdClient(config))


def _report(outcome: Any, dry: bool = False) -> None:
    from sekisho.sources.store import show

    for ident, what in outcome.results:
        click.echo(f"{show(ident)} {what}{' (dry run)' if dry else ''}")


def _problems(exc: Any) -> int:
    for problem in exc.problems:
        click.echo(str(problem), err=True)
    click.echo(f"nothing written: {len(exc.problems)} problem(s)", err=True)
    return 2


@click.command(name="apply")
@click.option(
    "-f",
    "--filename",
    "paths",
    multiple=True,
    required=True,
    type=click.Path(allow_dash=True),
    help="Manifest file or directory (as `validate` takes); '-' for stdin. Repeatable.",
)
@etcd_options()
def apply(paths: tuple[str, ...], **kwargs: Any) -> int:
    """Create or replace objects in the store, all in one transaction, after validating the whole result."""
    from sekisho.errors import ManifestError
    from sekisho.model import read_paths

    store = _store(kwargs)
    try:
        outcome = store.apply(read_paths(list(paths)))
    except ManifestError as exc:
        return _problems(exc)
    _report(outcome)
    return 0


@click.command(name="delete")
@click.argument("kind", required=False)
@click.argument("names", nargs=-1)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option(
    "-f",
    "--filename",
    "paths",
    multiple=True,
    type=click.Path(allow_dash=True),
    help="Delete the objects these manifests name.",
)
@etcd_options()
def delete(
    kind: str | None, names: tuple[str, ...], namespace: str, paths: tuple[str, ...], **kwargs: Any
) -> int:
    """Delete objects (KIND NAME... or -f PATH...), in one transaction, if what stays is valid."""
    from sekisho.errors import ManifestError
    from sekisho.model.kinds import READ, is_kubernetes_group
    from sekisho.sources.store import identities_of

    if paths and kind:
        raise click.UsageError("give KIND NAME... or -f PATH..., not both")
    if paths:
        idents = identities_of(list(paths))
    else:
        if not kind or not names:
            raise click.UsageError("give KIND NAME... or -f PATH...")
        known = {
            (k.kind if is_kubernetes_group(k.group) else f"{k.kind}.{k.group}"): k for k in READ
        }
        lower = {name.lower(): name for name in known}
        real = lower.get(kind.lower()) or lower.get(kind.lower().removesuffix("s"))
        if real is None:
            raise click.UsageError(f"kind {kind!r}: expected one of {', '.join(sorted(known))}")
        ns = "" if known[real].cluster_scoped else namespace
        idents = [(real, ns, name) for name in names]
    store = _store(kwargs)
    try:
        outcome = store.delete(idents)
    except ManifestError as exc:
        return _problems(exc)
    _report(outcome)
    return 0


@click.command(name="get")
@click.argument("kind")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default=None, help="Only this namespace (default: all).")
@click.option(
    "-o", "--output", type=click.Choice(["name", "yaml", "json"]), default="name", show_default=True
)
@etcd_options()
def get(kind: str, name: str | None, namespace: str | None, output: str, **kwargs: Any) -> int:
    """Print stored objects of KIND (maybe one NAME); status 1 when none is found.

    KIND ``all`` prints every object, so any command reads the store through a pipe:
    ``sekisho get all -o yaml --etcd URL | sekisho matrix -``.
    """
    import yaml

    from sekisho.sources.etcd import identity

    found = _store(kwargs).get(kind, name, namespace)
    if output == "name":
        for obj in found:
            k, ns, n = identity(obj)
            click.echo(f"{k} {ns + '/' if ns else ''}{n}")
    else:
        doc: Any = (
            found[0]
            if name and len(found) == 1
            else {
                "apiVersion": "v1",
                "kind": "List",
                "items": found,
            }
        )
        if output == "json":
            click.echo(json.dumps(doc, indent=2, sort_keys=True))
        else:
            click.echo(yaml.safe_dump(doc, sort_keys=False).rstrip())
    if not found:
        click.echo(f"no {kind}{' ' + name if name else ''} in the store", err=True)
        return 1
    return 0


@click.group(name="store")
def store() -> None:
    """The cluster's store (etcd): apply, delete, get."""


store.add_command(apply)
store.add_command(delete)
store.add_command(get)
