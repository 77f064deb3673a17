"""Reading many manifest files on two cores: a forked child reads the second half.

``sekisho validate``, ``matrix`` and the other one-shot commands read every file
before anything else; parsing YAML is most of that. When there are several files
and enough bytes for it to pay, the files :func:`~sekisho.model.reader.discover`
found are cut in two halves of about equal size: a forked child reads (and parses)
the second half while this process reads the first, and sends back what it read.
The result is the :class:`~sekisho.model.reader.ReadResult` that reading every
file in order gives (the same objects, problems, lines and texts): the child runs
the very same reader, and its half comes after this process's half.

The objects' values come back as JSON (orjson, several times faster than pickle
for them) only when that gives exactly what was read; otherwise, and for the rest
(locations, problems, texts), as pickle. If the child fails in any way, this
process reads the second half itself: nothing read is ever lost or guessed.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from sekisho.model.reader import RawObject, ReadResult, discover, paused_gc, read_found

SPLIT_FROM = 4 * 1024 * 1024
"""Bytes of input from which a second process pays for itself (forking and sending
back cost a few milliseconds and about a fifth of the child's parse)."""


def read_paths(paths: Sequence[str | Path], stdin: TextIO | None = None) -> ReadResult:
    """:func:`sekisho.model.reader.read_paths`, on two cores when it pays."""
    with paused_gc():
        result = ReadResult()
        found, result.issues = discover(paths)
        cut = _cut(found)
        if cut is None:
            read_found(found, stdin, result)
            return result
        mine, theirs = found[:cut], found[cut:]
        child = _start(theirs)
        try:
            read_found(mine, stdin, result)
        except BaseException:
            if child is not None:  # never leave it behind (Ctrl-C reaches both)
                os.close(child[1])
                os.kill(child[0], signal.SIGKILL)
                os.waitpid(child[0], 0)
            raise
        got = _finish(child) if child is not None else None
        if got is None:
            read_found(theirs, stdin, result)
        else:
            result.objects += got.objects
            result.issues += got.issues
            result.texts.update(got.texts)
            result.files += got.files
        return result


def _cut(found: Sequence[tuple[str, Path | None]]) -> int | None:
    """Where to cut ``found`` into halves of about equal size; None: read it all here."""
    if len(found) < 2 or (os.cpu_count() or 1) < 2 or not hasattr(os, "fork"):
        return None
    sizes: list[int] = []
    for _, path in found:
        if path is None:
            return None  # stdin is read here, in order
        try:
            sizes.append(path.stat().st_size)
        except OSError:
            return None  # the reader reports it, in order
    total = sum(sizes)
    if total < SPLIT_FROM:
        return None
    at = 0
    for n, size in enumerate(sizes):
        at += size
        if at * 2 >= total:
            return min(n + 1, len(found) - 1)
    return len(found) - 1


def _start(found: Sequence[tuple[str, Path | None]]) -> tuple[int, int] | None:
    """Fork a child that reads ``found`` and writes what it read to a pipe: (pid, read end)."""
    try:
        read_end, write_end = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None
    if pid:
        os.close(write_end)
        return pid, read_end
    # The child: read, send, and leave without running the parent's exit handlers.
    code = 1
    try:
        os.close(read_end)
        result = ReadResult()
        read_found(found, None, result)
        with os.fdopen(write_end, "wb") as out:
            out.write(_encode(result))
        code = 0
    finally:
        os._exit(code)


def _finish(child: tuple[int, int]) -> ReadResult | None:
    """What the child read; None if it failed (then the caller reads it instead)."""
    pid, read_end = child
    try:
        with os.fdopen(read_end, "rb") as stream:
            blob = stream.read()
    except OSError:
        blob = b""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0 or not blob:
        return None
    try:
        return _decode(blob)
    except Exception:  # a damaged answer: read again here, never trusted
        return None


_HEAD = 16
"""Bytes of the two part lengths at the start of an answer."""


def _encode(result: ReadResult) -> bytes:
    import pickle

    import orjson  # imported by the commands that split a read only (start-up)

    values = [o.data for o in result.objects]
    as_json = b""
    # Only what JSON gives back exactly: a timestamp, binary, a set, a key that is not
    # a string or an integer past 64 bits raises; NaN and infinities become null, so a
    # text with a null is read back and compared; YAML tags (``!!omap`` gives tuples)
    # are left to pickle.
    if not any("!" in text for text in result.texts.values()):
        try:
            text = orjson.dumps(values, option=orjson.OPT_PASSTHROUGH_DATETIME)
            if b"null" not in text or orjson.loads(text) == values:
                as_json = text
        except (TypeError, orjson.JSONEncodeError):
            pass
    rest: tuple[Any, ...] = (
        [o.loc for o in result.objects],
        None if as_json else values,
        result.issues,
        result.texts,
        result.files,
    )
    pickled = pickle.dumps(rest, protocol=pickle.HIGHEST_PROTOCOL)
    head = len(as_json).to_bytes(8, "little") + len(pickled).to_bytes(8, "little")
    return head + as_json + pickled


def _decode(blob: bytes) -> ReadResult:
    import pickle

    import orjson

    n_json = int.from_bytes(blob[:8], "little")
    n_pickled = int.from_bytes(blob[8:_HEAD], "little")
    if len(blob) != _HEAD + n_json + n_pickled:
        raise ValueError("a truncated answer")
    locs, values, issues, texts, files = pickle.loads(blob[_HEAD + n_json :])
    if values is None:
        values = orjson.loads(memoryview(blob)[_HEAD : _HEAD + n_json])
    if len(values) != len(locs):
        raise ValueError("objects and locations differ in number")
    objects = [RawObject(loc, data) for loc, data in zip(locs, values, strict=True)]
    return ReadResult(objects=objects, issues=issues, texts=texts, files=files)
