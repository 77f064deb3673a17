"""Into a named network namespace: the one way sekisho does it, for the dataplane and the lab.

Two ways in, both here. A command runs inside a namespace as
``ip netns exec NAME ARGV`` (:func:`exec_argv`); a thread moves itself into one
with ``setns(2)`` (:func:`enter`): network namespaces belong to a thread in
Linux, so the sockets that thread opens afterwards (a probe, a libnftables
netlink socket) live there, and the other threads of the process stay put.
Namespaces are iproute2's named ones, a file under ``/run/netns``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Sequence

from sekisho.errors import DataplaneError

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
"""``setns(2)``'s nstype for a network namespace (``<sched.h>``)."""

NamespaceId = tuple[int, int]
"""(device, inode) of a namespace file: a namespace re-created under the same name is another."""


def exec_argv(netns: str | None, argv: Sequence[str]) -> list[str]:
    """``argv`` run inside ``netns`` (``ip netns exec``); ``argv`` itself when ``netns`` is None."""
    if netns:
        return ["ip", "netns", "exec", netns, *argv]
    return list(argv)


def identity(netns: str | None) -> NamespaceId | None:
    """Which namespace ``netns`` names now; ``(0, 0)`` for none (the caller's), None if missing."""
    if not netns:
        return (0, 0)
    try:
        st = os.stat(os.path.join(NETNS_DIR, netns))
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


_libc: ctypes.CDLL | None = None


def enter(netns: str) -> NamespaceId:
    """Move the CALLING THREAD into ``netns``; which namespace it entered.

    Raises :class:`~sekisho.errors.DataplaneError` when the namespace does not
    exist or the kernel refuses (no privilege).
    """
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    path = os.path.join(NETNS_DIR, netns)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise DataplaneError(f"network namespace {netns} does not exist ({path})") from exc
    try:
        st = os.fstat(fd)
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise DataplaneError(f"setns into {netns}: {os.strerror(err)}")
    finally:
        os.close(fd)
    return (st.st_dev, st.st_ino)
