"""The one way into a network namespace (`sekisho.dataplane.netns`), and that it stays the one."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
from sk_kernel import throwaway_netns

from sekisho.dataplane import netns
from sekisho.errors import DataplaneError

SRC = Path(__file__).resolve().parents[2] / "src" / "sekisho"


def test_a_command_runs_inside_through_ip_netns_exec() -> None:
    assert netns.exec_argv("skl-x-n1", ["iptables-save"]) == [
        "ip",
        "netns",
        "exec",
        "skl-x-n1",
        "iptables-save",
    ]
    assert netns.exec_argv(None, ["nft", "list", "ruleset"]) == ["nft", "list", "ruleset"]
    assert netns.exec_argv("", ("true",)) == ["true"]


def test_a_missing_namespace_has_no_identity_and_cannot_be_entered() -> None:
    name = f"sk-missing-{os.getpid()}"
    assert netns.identity(name) is None
    assert netns.identity(None) == (0, 0)
    with pytest.raises(DataplaneError, match=f"network namespace {name} does not exist"):
        netns.enter(name)


def test_no_other_module_enters_a_namespace_its_own_way() -> None:
    """``ip netns exec`` and ``setns`` are spelled in one module; every caller goes through it."""
    own = SRC / "dataplane" / "netns.py"
    spelled = re.compile(r"""["']netns["'],\s*["']exec["']|\.setns\(|CLONE_NEWNET\s*=""")
    others = [
        f"{path.relative_to(SRC)}:{n}"
        for path in sorted(SRC.rglob("*.py"))
        if path != own
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if spelled.search(line)
    ]
    assert others == []


@pytest.mark.privileged
def test_a_thread_enters_and_the_others_stay() -> None:
    before = os.stat("/proc/thread-self/ns/net").st_ino
    seen: list[object] = []
    with throwaway_netns() as ns:

        def inside() -> None:
            try:
                entered = netns.enter(ns)
                seen.append((entered, os.stat("/proc/thread-self/ns/net").st_ino))
            except BaseException as exc:
                seen.append(exc)

        t = threading.Thread(target=inside)
        t.start()
        t.join()
        want = netns.identity(ns)
    assert want is not None
    assert seen == [(want, want[1])]
    assert os.stat("/proc/thread-self/ns/net").st_ino == before
