"""The seam where sekisho runs netfilter tools: one protocol, one production runner.

Every command the dataplane issues goes through a :class:`CommandRunner`, so tests
can pass a fake and the agent can aim the same code at the host or at a network
namespace (``ip netns exec NAME ...``). Failures are translated here, once:
a missing binary becomes :class:`~sekisho.errors.ToolMissing`, a non-zero exit
:class:`~sekisho.errors.CommandFailed` carrying argv, status and stderr.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from typing import Protocol

from sekisho.errors import CommandFailed, ToolMissing

log = logging.getLogger(__name__)

__all__ = ["CommandRunner", "SubprocessRunner"]


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
        if self.netns:
            return ["ip", "netns", "exec", self.netns, *argv]
        return list(argv)

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
            if self.netns and proc.returncode == 255 and "No such file" in stderr:
                raise ToolMissing(f"{argv[0]} is not installed: {stderr.strip()}")
            raise CommandFailed(full, proc.returncode, stderr)
        log.debug("ran %s", " ".join(full))
        return proc.stdout
