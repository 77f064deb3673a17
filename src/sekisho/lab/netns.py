"""Network namespaces: create, run scripts inside, list and delete; spawn and kill children.

The only module of the lab that runs ``ip``. Commands go through a
:class:`Runner` so tests can record them. Getting into a namespace (a command
through ``ip netns exec``, a thread through ``setns(2)``) is
:mod:`sekisho.dataplane.netns`'s, shared with the dataplane.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sekisho.dataplane.netns import NETNS_DIR, exec_argv
from sekisho.errors import CommandFailed, LabError, ToolMissing


@dataclass(frozen=True, slots=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


Runner = Callable[[Sequence[str], str | None], Result]
"""``runner(argv, stdin_text) -> Result``; never raises for a non-zero exit."""


def run_process(argv: Sequence[str], stdin: str | None = None) -> Result:
    """The production runner: subprocess with captured text output."""
    try:
        proc = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, check=False, timeout=60
        )
    except FileNotFoundError as exc:
        raise ToolMissing(f"{argv[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(argv)} did not finish in 60 s") from exc
    return Result(proc.returncode, proc.stdout, proc.stderr)


def check(runner: Runner, argv: Sequence[str], stdin: str | None = None) -> str:
    res = runner(argv, stdin)
    if res.returncode != 0:
        raise CommandFailed(argv, res.returncode, res.stderr)
    return res.stdout


def list_netns(runner: Runner = run_process) -> list[str]:
    """Names of every named network namespace (``ip netns list``)."""
    out = check(runner, ["ip", "netns", "list"])
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def add_all(names: Sequence[str], runner: Runner = run_process) -> None:
    """Create namespaces in one ``ip -batch``."""
    if names:
        check(runner, ["ip", "-batch", "-"], "".join(f"netns add {n}\n" for n in names))


def delete(name: str, runner: Runner = run_process) -> None:
    """Kill whatever still runs in ``name``, then delete it; a missing namespace is fine."""
    kill_pids(pids_in(name, runner))
    res = runner(["ip", "netns", "del", name], None)
    if res.returncode != 0 and os.path.exists(os.path.join(NETNS_DIR, name)):
        raise CommandFailed(["ip", "netns", "del", name], res.returncode, res.stderr)


def pids_in(name: str, runner: Runner = run_process) -> list[int]:
    """Processes whose network namespace is ``name`` (``ip netns pids``)."""
    res = runner(["ip", "netns", "pids", name], None)
    if res.returncode != 0:
        return []
    return [int(x) for x in res.stdout.split() if x.isdigit()]


_children: dict[int, subprocess.Popen[bytes]] = {}
"""Detached children this process started, kept so they can be reaped (no zombies, no warnings)."""


def spawn(argv: Sequence[str], log: str, cwd: str) -> int:
    """Start ``argv`` detached (own session and process group), output to ``log``; its pid."""
    with open(log, "ab") as logf:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
        )
    _children[proc.pid] = proc
    return proc.pid


def _reap(pid: int) -> bool:
    """True when ``pid`` is gone (reaped if it was our child)."""
    proc = _children.get(pid)
    if proc is not None:
        if proc.poll() is None:
            return False
        del _children[pid]
        return True
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return True
    except ChildProcessError:
        pass
    return not os.path.exists(f"/proc/{pid}") or _zombie(pid)


def kill_pids(pids: Sequence[int], grace: float = 2.0) -> None:
    """SIGTERM each process group (our children lead their own), then SIGKILL what is left."""
    alive = [p for p in pids if p != os.getpid()]
    for pid in alive:
        for fn in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                fn(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if not _reap(pid)]
        if alive:
            time.sleep(0.02)
    for pid in alive:
        for fn in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                fn(pid, signal.SIGKILL)
    # SIGKILL is delivered, not yet acted on: return once each is gone (our children
    # reaped), so a caller that checks finds none still running.
    deadline = time.monotonic() + 10.0
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if not _reap(pid)]
        if alive:
            time.sleep(0.02)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def run_script(netns: str, script: str, runner: Runner = run_process) -> None:
    """Run a ``sh -e`` script inside ``netns``; raise with its stderr on failure."""
    check(runner, exec_argv(netns, ["sh", "-ec", script]))


def start_scripts(jobs: Sequence[tuple[str, str]]) -> None:
    """Run several ``(netns, script)`` at once and wait for all; raise on the first failure."""
    procs = [
        (ns, subprocess.Popen(exec_argv(ns, ["sh", "-ec", sc]), stderr=subprocess.PIPE, text=True))
        for ns, sc in jobs
    ]
    errors = []
    for ns, proc in procs:
        _, err = proc.communicate(timeout=60)
        if proc.returncode != 0:
            errors.append(f"{ns}: {err.strip()}")
    if errors:
        raise LabError("building namespaces failed: " + "; ".join(errors))


def namespaces_supported(runner: Runner = run_process) -> str | None:
    """None when this process can create network namespaces, else the reason it cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root (this process is not root)"
    name = f"skl-check-{os.getpid()}"
    res = runner(["ip", "netns", "add", name], None)
    if res.returncode != 0:
        return f"'ip netns add' failed: {res.stderr.strip()}"
    runner(["ip", "netns", "del", name], None)
    return None


def is_child(pid: int) -> bool:
    """Whether this process started ``pid`` with :func:`spawn` and has not reaped it yet."""
    return pid in _children
