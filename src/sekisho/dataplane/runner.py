"""The seam where sekisho runs netfilter tools: one protocol, one production runner.

Every command the dataplane issues goes through a :class:`CommandRunner`, so tests
can pass a fake and the agent can aim the same code at the host or at a network
namespace (``ip netns exec NAME ...``; :mod:`sekisho.dataplane.netns` is the one way
in). Failures are translated here, once: a missing binary becomes :class:`~sekisho.errors.ToolMissing`, a non-zero exit
:class:`~sekisho.errors.CommandFailed` carrying argv, status and stderr.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import subprocess
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from sekisho.dataplane.netns import enter, exec_argv, identity
from sekisho.errors import CommandFailed, DataplaneError, ToolMissing

log = logging.getLogger(__name__)

__all__ = ["CommandRunner", "LibnftRunner", "SubprocessRunner"]


class CommandRunner(Protocol):
    """Runs one command to completion and returns its standard output."""

    def __call__(self, argv: Sequence[str], *, stdin: str | None = None) -> str:
        """Run ``argv`` (feeding ``stdin``); raise ``CommandFailed`` on a non-zero exit."""
        ...


class SubprocessRunner:
    """Runs commands with :mod:`subprocess`, in ``netns`` when one is named."""

    def __init__(self, netns: str | None = None, *, timeout: float = 60.0) -> None:
        self.netns = netns
        self.timeout = timeout

    def argv(self, argv: Sequence[str]) -> list[str]:
        """The command line actually run (``ip netns exec NAME`` prefixed when in a netns)."""
        return exec_argv(self.netns, argv)

    def __call__(self, argv: Sequence[str], *, stdin: str | None = None) -> str:
        full = self.argv(argv)
        try:
            proc = subprocess.run(
                full,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise ToolMissing(f"{full[0]} is not installed (needed to run {argv[0]})") from exc
        except subprocess.TimeoutExpired as exc:
            raise CommandFailed(full, -1, f"timed out after {self.timeout}s") from exc
        if proc.returncode != 0:
            stderr = proc.stderr
            # `ip netns exec` reports a missing inner tool as exit 255 + "No such file".
            if (
                self.netns
                and proc.returncode == 255
                and "No such file" in stderr
                and "network namespace" not in stderr  # that is a missing namespace
            ):
                raise ToolMissing(f"{argv[0]} is not installed: {stderr.strip()}")
            raise CommandFailed(full, proc.returncode, stderr)
        log.debug("ran %s", " ".join(full))
        return proc.stdout


_LIB: Any = None


def _libnftables() -> Any:
    """libnftables with its prototypes declared (loaded once); raises OSError when missing."""
    global _LIB
    if _LIB is None:
        lib = ctypes.CDLL(ctypes.util.find_library("nftables") or "libnftables.so.1")
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_int
        for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_char_p
        _LIB = lib
    return _LIB


class _Libnft:
    """One libnftables context whose netlink socket was opened inside ``netns``."""

    def __init__(self, lib: Any, netns: str | None) -> None:
        self.lib = lib
        self.ctx: int | None = None
        self.netns_id: tuple[int, int] | None = (0, 0)
        """Which namespace the socket lives in (a namespace re-created under the same
        name is another one: the runner then opens a new socket)."""
        box: list[object] = []

        def make() -> None:  # in a thread of its own: setns changes only the calling thread
            try:
                if netns:
                    self.netns_id = enter(netns)
                ctx = lib.nft_ctx_new(0)  # NFT_CTX_DEFAULT: opens the netlink socket now
                if not ctx:
                    raise OSError("nft_ctx_new failed")
                lib.nft_ctx_buffer_output(ctx)
                lib.nft_ctx_buffer_error(ctx)
                box.append(ctx)
            except BaseException as exc:  # handed to the caller's thread
                box.append(exc)

        t = threading.Thread(target=make, name="sekisho-libnft-setns")
        t.start()
        t.join()
        if isinstance(box[0], BaseException):
            raise box[0]
        self.ctx = int(box[0])  # type: ignore[call-overload]

    def run(self, command: str) -> tuple[int, str, str]:
        rc = self.lib.nft_run_cmd_from_buffer(self.ctx, command.encode())
        out = self.lib.nft_ctx_get_output_buffer(self.ctx) or b""
        err = self.lib.nft_ctx_get_error_buffer(self.ctx) or b""
        return rc, out.decode(errors="replace"), err.decode(errors="replace")

    def close(self) -> None:
        if self.ctx:
            self.lib.nft_ctx_free(self.ctx)  # closes the socket: the netns can go away
            self.ctx = None

    def __del__(self) -> None:
        self.close()


class LibnftRunner(SubprocessRunner):
    """:class:`SubprocessRunner`, except that ``nft -f -`` and ``nft list ...`` run in-process.

    They go through libnftables (the library behind ``nft``: same parser, same
    single-transaction batch) on one long-lived netlink socket opened in ``netns``.
    A process that commits to nf_tables waits, when it closes its netlink socket,
    for the kernel to free the transaction after an RCU grace period (10-15 ms
    here); the agent's socket stays open, so an update costs about 1 ms instead
    of a process start plus that wait. Every other command, and ``nft`` when the
    library cannot be loaded, runs as a process.
    """

    def __init__(self, netns: str | None = None, *, timeout: float = 60.0) -> None:
        super().__init__(netns, timeout=timeout)
        self._nft: _Libnft | None = None
        self._broken = False
        self._nft_lock = threading.Lock()

    def _lib(self) -> _Libnft | None:
        """The context for this call; None: run ``nft`` as a process this time."""
        if self._broken:
            return None
        current = identity(self.netns)
        if self._nft is not None and self._nft.netns_id != current:
            self._nft.close()  # the namespace went away or was re-created under its name
            self._nft = None
        if current is None:
            return None  # no such namespace: the process reports it as `ip netns exec` does
        if self._nft is None:
            try:
                lib = _libnftables()
            except OSError as exc:
                log.info("libnftables unavailable (%s); running nft as a process", exc)
                self._broken = True
                return None
            try:
                self._nft = _Libnft(lib, self.netns)
            except (OSError, DataplaneError) as exc:
                log.warning("cannot open libnftables in %s (%s); nft as a process", self.netns, exc)
                return None
        return self._nft

    def __call__(self, argv: Sequence[str], *, stdin: str | None = None) -> str:
        if not argv or argv[0] != "nft":
            return super().__call__(argv, stdin=stdin)
        if list(argv[1:]) == ["-f", "-"] and stdin is not None:
            command = stdin
        elif len(argv) > 1 and argv[1] == "list" and stdin is None:
            command = " ".join(argv[1:])
        else:
            return super().__call__(argv, stdin=stdin)
        with self._nft_lock:
            nft = self._lib()
            if nft is None:
                return super().__call__(argv, stdin=stdin)
            rc, out, err = nft.run(command)
        if rc != 0:
            raise CommandFailed([*self.argv(argv), "(libnftables)"], rc, err or "failed")
        log.debug("ran %s (libnftables)", " ".join(argv))
        return out

    def close(self) -> None:
        """Close the netlink socket (a later nft command opens a new one)."""
        with self._nft_lock:
            if self._nft is not None:
                self._nft.close()
                self._nft = None
