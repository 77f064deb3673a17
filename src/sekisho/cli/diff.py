"""``sekisho diff``: what a policy change does, before it is applied."""

from __future__ import annotations

import json
import subprocess
import tarfile
import tempfile
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sekisho.semantics.diff import Diff, Line

WIDTH = 80


def text_lines(diff: Diff) -> list[str]:
    """The change for a terminal: per probe, gained (+) and lost (-) group pairs, each with
    what decides now, then what happens to connections already open."""
    from sekisho.semantics.diff import fold

    out: list[str] = []
    head = f"{diff.pods} pods compared"
    if diff.added_pods:
        head += f"; {len(diff.added_pods)} new pods (not compared): " + ", ".join(
            diff.added_pods[:5]
        )
        head += ", ..." if len(diff.added_pods) > 5 else ""
    if diff.removed_pods:
        head += f"; {len(diff.removed_pods)} pods gone: " + ", ".join(diff.removed_pods[:5])
        head += ", ..." if len(diff.removed_pods) > 5 else ""
    out += _wrap(head, "")
    for sign, names in (
        ("+", diff.policies_added),
        ("-", diff.policies_removed),
        ("~", diff.policies_changed),
    ):
        out += [f"  {sign} {name}" for name in names]
    for probe in diff.probes:
        gained = sum(g.pairs for g in probe.gained)
        lost = sum(g.pairs for g in probe.lost)
        if not gained and not lost:
            out.append(f"{probe.service}: no change")
            continue
        out.append("")
        out.append(f"{probe.service}: {gained} pairs gained, {lost} pairs lost")
        for sign, changes in (("+", probe.gained), ("-", probe.lost)):
            for line in fold(changes):
                out += _line(sign, line)
        if probe.lost:
            out += _wrap(f"established: {probe.established}", "  ", "    ")
    if not diff.changed:
        policies = diff.policies_added or diff.policies_removed or diff.policies_changed
        out.append(
            "no change in who can reach whom" + (" (the policies differ)" if policies else "")
        )
    return out


def _line(sign: str, line: Line) -> list[str]:
    count = f"{line.pairs} pair{'s' if line.pairs != 1 else ''}"
    srcs = " ".join(g.name for g in line.sources)
    dsts = " ".join(g.name for g in line.destinations)
    lines = _wrap(f"{sign} {srcs} -> {dsts} ({count})", "  ", "      ")
    return lines + _wrap(line.cause, "      ", "        ")


def _wrap(text: str, first: str, rest: str | None = None) -> list[str]:
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent=first,
        subsequent_indent=first if rest is None else rest,
        break_on_hyphens=False,
        break_long_words=False,
    ) or [first]


def markdown(diff: Diff) -> str:
    """A comment for a pull request."""
    out = ["### sekisho diff", ""]
    if not diff.changed:
        return "\n".join([*out, "No change in who can reach whom.", ""])
    for sign, names in (
        ("added", diff.policies_added),
        ("removed", diff.policies_removed),
        ("changed", diff.policies_changed),
    ):
        if names:
            out.append(f"Policies {sign}: " + ", ".join(f"`{n}`" for n in names))
    out.append("")
    for probe in diff.probes:
        if not probe.gained and not probe.lost:
            continue
        gained = sum(g.pairs for g in probe.gained)
        lost = sum(g.pairs for g in probe.lost)
        out += [f"#### {probe.service}: +{gained} / -{lost} pod pairs", ""]
        out += ["| | from | to | pairs | decided by (after) |", "|---|---|---|---|---|"]
        for sign, changes in (("+", probe.gained), ("−", probe.lost)):
            for g in changes:
                cause = g.cause.replace("|", "\\|")
                out.append(
                    f"| {sign} | `{g.src.name}` | `{g.dst.name}` | {g.pairs}/{g.of} | {cause} |"
                )
        if probe.lost:
            out += ["", f"Established connections: {probe.established}."]
        out.append("")
    return "\n".join(out)


@contextmanager
def git_snapshots(spec: str, paths: Sequence[str]) -> Iterator[tuple[list[str], list[str]]]:
    """``REV1..REV2`` and paths inside one git work tree -> the paths as of each revision,
    extracted with ``git archive`` into temporary directories removed on exit."""
    from sekisho.errors import UsageError

    rev1, dots, rev2 = spec.partition("..")
    if not dots or not rev1 or not rev2:
        raise UsageError(f"--git {spec}: expected REV1..REV2 (e.g. main..HEAD)")
    if not paths:
        raise UsageError(
            "--git needs the paths to compare (files or directories in the repository)"
        )
    first = Path(paths[0]).resolve()
    top = _git(["rev-parse", "--show-toplevel"], first if first.is_dir() else first.parent)
    root = Path(top.strip())
    rel = [str(Path(p).resolve().relative_to(root)) for p in paths]
    with tempfile.TemporaryDirectory(prefix="sekisho-diff-") as tmp:
        sides: list[list[str]] = []
        for n, rev in enumerate((rev1, rev2)):
            dest = Path(tmp) / str(n)
            dest.mkdir()
            archive = dest / "tree.tar"
            _git(["archive", "--format=tar", "-o", str(archive), rev, "--", *rel], root)
            with tarfile.open(archive) as tar:
                tar.extractall(dest, filter="data")
            archive.unlink()
            sides.append([str(dest / r) for r in rel])
        yield sides[0], sides[1]


def _git(argv: list[str], cwd: Path) -> str:
    from sekisho.errors import UsageError

    try:
        done = subprocess.run(["git", *argv], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise UsageError("--git needs the git command") from exc
    if done.returncode != 0:
        raise UsageError(f"git {' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


@click.command(
    "diff",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": True},
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--git", "git", default=None, metavar="REV1..REV2", help="Compare PATH... at two revisions."
)
@click.option(
    "--probe",
    "probes",
    multiple=True,
    metavar="PORT/PROTO",
    help="A probe: 80/TCP, 53/UDP, metrics/TCP, ICMP (default: every declared port and ICMP).",
)
@click.option(
    "--staged",
    is_flag=True,
    help="PATH...: what applying its staged policies would change (Calico's preview).",
)
@click.option(
    "-o", "--output", type=click.Choice(["text", "json", "md"]), default="text", show_default=True
)
def diff(
    args: tuple[str, ...], git: str | None, probes: tuple[str, ...], staged: bool, output: str
) -> int:
    """What changing OLD... into NEW... does: the pod pairs gained and lost per probe.

    \b
    sekisho diff OLD... --against NEW...
    sekisho diff --git main..HEAD PATH...
    sekisho diff --staged PATH...

    Each changed group pair names the side and rule that decide after the change.
    Lost pairs keep their open connections (conntrack accepts established
    traffic before any policy): the output says so and for how long.
    Exit 0 when who can reach whom does not change (policies rewritten to the
    same effect included), 1 when it does, 2 on bad input.
    """
    from sekisho.cli.trace import load
    from sekisho.errors import UsageError
    from sekisho.semantics.diff import diff_clusters
    from sekisho.semantics.probe import services_from_flags

    chosen = services_from_flags(probes, None, None)
    if staged:
        if git is not None or "--against" in args or not args:
            raise UsageError("--staged takes PATH... alone")
        from sekisho.semantics.diff import diff_staged

        result = diff_staged(load(args), chosen)
    elif git is not None:
        if "--against" in args:
            raise UsageError("use either --git REV1..REV2 PATH... or OLD... --against NEW...")
        with git_snapshots(git, args) as (old, new):
            result = diff_clusters(load(old), load(new), chosen)
    else:
        if "--against" not in args:
            raise UsageError("expected OLD... --against NEW... (or --git REV1..REV2 PATH...)")
        at = args.index("--against")
        old_paths, new_paths = list(args[:at]), list(args[at + 1 :])
        for p in old_paths + new_paths:
            if p.startswith("-") and p != "-":
                raise UsageError(f"unknown option {p}")
        if not old_paths or not new_paths:
            raise UsageError("expected paths on both sides of --against")
        result = diff_clusters(load(old_paths), load(new_paths), chosen)
    if output == "json":
        click.echo(json.dumps(result.to_json(), indent=2))
    elif output == "md":
        click.echo(markdown(result))
    else:
        for line in text_lines(result):
            click.echo(line)
    return 1 if result.changed else 0
