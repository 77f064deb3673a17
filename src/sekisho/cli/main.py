"""``sekisho``: one group whose subcommands are imported only when they run.

Start-up is part of every command a user feels, so the group knows its
subcommands by module path and imports just the one being run.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from typing import Any

import click

from sekisho import __version__

# numpy's BLAS (OpenBLAS) starts a thread per core when numpy is imported, and each
# thread spins, waiting for work, for about 2**28 cycles after starting and after every
# call. On a command that lasts a fraction of a second that spinning is CPU burnt beside
# the work (60 ms of the 0.3 s of `matrix -o summary` at 1,000 pods) and a core taken
# from everything else on the machine. With the shortest timeout the threads still do
# their share of a large product and sleep as soon as it ends. A user's setting wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

# name -> (module, attribute, one-line help shown by `sekisho --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "validate": ("sekisho.cli.validate", "validate", "Load manifests and report every problem."),
    "trace": ("sekisho.cli.trace", "trace", "Can A reach B on a port, and why?"),
    "lint": ("sekisho.cli.lint", "lint", "Pitfalls in valid policies, with codes and fixes."),
    "matrix": ("sekisho.cli.matrix", "matrix", "Truth tables of who can reach whom."),
    "report": ("sekisho.cli.report", "report", "One self-contained HTML page: graph, heat map."),
    "test": ("sekisho.cli.test", "test", "Check expectation files (allow/deny, snapshots)."),
    "render": (
        "sekisho.cli.render",
        "render",
        "Render one node's iptables/ipset or nftables rules.",
    ),
    "agent": ("sekisho.cli.agent", "agent", "Enforce policies on a node and keep them right."),
    "apply": (
        "sekisho.cli.store",
        "apply",
        "Write objects to the cluster's store (etcd), validated.",
    ),
    "delete": ("sekisho.cli.store", "delete", "Delete objects from the cluster's store (etcd)."),
    "get": ("sekisho.cli.store", "get", "Print objects from the cluster's store (etcd)."),
    "store": ("sekisho.cli.store", "store", "The cluster's store (etcd): apply, delete, get."),
    "lab": ("sekisho.cli.lab", "lab", "A virtual cluster of network namespaces: up, probe, down."),
    "diff": ("sekisho.cli.diff", "diff", "What a policy change does: pairs gained and lost."),
    "demo": ("sekisho.cli.demo", "demo", "Reproduce the seed report with real packets."),
}


ONE_SHOT = frozenset({"validate", "trace", "matrix", "render"})
"""Commands that load, answer and exit (the agent and the lab run on)."""


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it is invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr, short = entry
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            return _missing(cmd_name, short)
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help lists every command without importing any of them.
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _missing(name: str, short: str) -> click.Command:
    @click.command(name=name, help=short)
    def not_built() -> None:
        raise click.ClickException(f"'{name}' is not built yet in this version")

    return not_built


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sekisho")
def cli() -> None:
    """sekisho: Kubernetes NetworkPolicy the way Calico enforces it.

    Understand (validate, trace, matrix), compile (render), enforce (agent)
    and prove (lab, demo) with one meaning of policy.
    """


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 denied/mismatch, 2 bad input)."""
    args = sys.argv[1:] if argv is None else argv
    collecting = gc.isenabled()
    one_shot = bool(args) and args[0] in ONE_SHOT
    if one_shot:
        # A one-shot command's heap is the loaded cluster, alive to the end: cyclic
        # collection would walk millions of objects for nothing (a second at 100,000 pods).
        gc.disable()
    try:
        status = _main(argv)
    finally:
        # Called in a process that goes on (argv given: tests, scripts), collection is
        # turned back on; the console script's process ends, so it is left off.
        if collecting and argv is not None:
            gc.enable()
    if one_shot and argv is None:
        _end_process(status)
    return status


def _end_process(status: int) -> None:
    """End a one-shot command's process now, without tearing its heap down.

    At interpreter exit CPython frees every object the command built, one by one: a
    tenth of ``matrix -o summary`` at 1,000 pods, for a process that is ending anyway.
    What was printed is flushed first; if that fails (a closed pipe), this returns and
    the ordinary exit reports it.
    """
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        return
    os._exit(status)


def _main(argv: list[str] | None) -> int:
    from sekisho.errors import InputError, SekishoError

    try:
        result: Any = cli.main(args=argv, prog_name="sekisho", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return 2
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except InputError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except SekishoError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    except BrokenPipeError:
        sys.stderr.close()
        return 141
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
