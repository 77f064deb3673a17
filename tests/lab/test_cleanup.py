"""Nothing is left behind: after an exception, after SIGINT in the middle of ``lab run``,
and by ``lab down`` after a crash that left the state file (or only namespaces) behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sekisho.lab.core import Lab
from sekisho.lab.lifecycle import guarded
from sekisho.lab.manifests import read_objects

from .conftest import ROOT, SEED, cli_env, lab_namespaces, pid_alive

pytestmark = pytest.mark.privileged


def _state_pids(root: Path, name: str) -> list[int]:
    doc = json.loads((root / name / "state.json").read_text())
    return [p["pid"] for p in doc["procs"]]


def _wait_for_agents(root: Path, name: str, timeout: float = 120.0) -> list[int]:
    """Poll until the lab has its servers and agents recorded; their pids."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pids = _state_pids(root, name)
            doc = json.loads((root / name / "state.json").read_text())
            if (
                any(p["role"].startswith("agent:") for p in doc["procs"])
                and len(list((root / name).glob("agent-*.ready"))) == 6
            ):
                return pids
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError("lab did not come up")


def test_exception_inside_guarded_cleans_up(lab_name: str, lab_root: Path) -> None:
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="boom"), guarded(lab_name, lab_root):
        lab = Lab.up(read_objects([SEED / "cluster.yaml"]), name=lab_name, root=lab_root)
        pids = [p.pid for p in lab.state.procs]
        assert lab_namespaces(lab_name)
        raise RuntimeError("boom")
    assert pids
    assert not lab_namespaces(lab_name)
    assert not any(pid_alive(p) for p in pids)
    assert not (lab_root / lab_name).exists()


def test_failed_up_removes_what_it_built(lab_name: str, lab_root: Path) -> None:
    objs = read_objects([SEED / "cluster.yaml"])
    Lab.up(objs, name=lab_name, root=lab_root, enforce="none").plan  # noqa: B018
    # A second lab of the same name must be refused without touching the first.
    with pytest.raises(Exception, match="already up"):
        Lab.up(objs, name=lab_name, root=lab_root)
    assert lab_namespaces(lab_name)
    Lab(lab_name, lab_root).down()
    assert not lab_namespaces(lab_name)


def _sigint_as_a_terminal_sends_it() -> None:
    """SIGINT back to its default in the child: a suite started in the background by a
    shell without job control (`cmd &`) ignores SIGINT, and children inherit that, so
    the `lab run` under test would never see the Ctrl-C this test stands for."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(
    "sig", [pytest.param(signal.SIGINT, id="sigint"), pytest.param(signal.SIGTERM, id="sigterm")]
)
def test_signal_in_the_middle_of_lab_run(sig: int, lab_name: str, lab_root: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sekisho", "lab", "run", str(SEED / "cluster.yaml"),
         str(SEED / "part2"), "--name", lab_name, "--probe", "80/TCP", "--timeout", "5"],
        cwd=ROOT, env=cli_env(lab_root), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=_sigint_as_a_terminal_sends_it,
    )  # fmt: skip
    try:
        pids = _wait_for_agents(lab_root, lab_name)
        time.sleep(0.5)  # now probing (5 s timeouts on the dropped cells)
        proc.send_signal(sig)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    assert not lab_namespaces(lab_name)
    assert not any(pid_alive(p) for p in pids)
    assert not (lab_root / lab_name).exists()


@pytest.mark.parametrize(
    "lose_state", [pytest.param(False, id="state-file-left"), pytest.param(True, id="state-lost")]
)
def test_down_after_crash(lose_state: bool, lab_name: str, lab_root: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sekisho", "lab", "run", str(SEED / "cluster.yaml"),
         "--name", lab_name, "--probe", "81/TCP", "--timeout", "5"],
        cwd=ROOT, env=cli_env(lab_root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        pids = _wait_for_agents(lab_root, lab_name)
    finally:
        proc.kill()  # a crash: no cleanup runs
        proc.wait()
    assert lab_namespaces(lab_name)
    assert any(pid_alive(p) for p in pids)
    if lose_state:
        import shutil

        shutil.rmtree(lab_root / lab_name)  # only the namespaces (and what runs in them) remain
    args = ["--name", lab_name]
    down = subprocess.run(
        [sys.executable, "-m", "sekisho", "lab", "down", *args],
        cwd=ROOT, env=cli_env(lab_root), capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert down.returncode == 0, down.stderr
    assert not lab_namespaces(lab_name)
    assert not any(pid_alive(p) for p in pids)
    assert not (lab_root / lab_name).exists()
