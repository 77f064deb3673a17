"""Cleanup guaranteed on every exit path of a one-shot lab (``lab run``, ``demo``).

``guarded(name)`` removes the lab when the block ends normally, raises, is
interrupted (SIGINT raises KeyboardInterrupt; SIGTERM and SIGHUP are turned
into SystemExit so ``finally`` runs), and, as a last resort, at interpreter
exit (atexit). While it cleans up, further SIGINT/SIGTERM are ignored so a
second Ctrl-C cannot leave half a lab behind. Children run in their own
process groups and are killed by group.
"""

from __future__ import annotations

import atexit
import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)

_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def guarded(name: str, root: Path | None = None) -> Iterator[None]:
    from sekisho.lab.core import Lab

    done = False

    def cleanup() -> None:
        nonlocal done
        if done:
            return
        done = True
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, *_SIGNALS)}
        try:
            Lab(name, root).down()
        except Exception as exc:  # cleanup must not mask the original error
            log.error("lab %s: cleanup failed: %s", name, exc)
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    previous = {s: signal.signal(s, _raise_exit) for s in _SIGNALS}
    atexit.register(cleanup)
    try:
        yield
    finally:
        cleanup()
        atexit.unregister(cleanup)
        for s, h in previous.items():
            signal.signal(s, h)
