"""A directory of manifests as a cluster source, and a watcher that says when it changed.

The same files ``sekisho validate`` takes (``*.yaml``, ``*.yml``, ``*.json``,
in subdirectories too) are loaded by the model's loader. The watcher uses
inotify: it follows new subdirectories, sees editors' write-to-temp-then-rename,
and coalesces a burst of events into one change (debounce).
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from sekisho.errors import ManifestError, Problem
from sekisho.model.types import Cluster

__all__ = ["DirWatcher", "FileSource", "manifest_files"]

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

Loader = Callable[[Sequence[str]], Cluster]


def _ignored(name: str) -> bool:
    # Hidden files, editor swap/backup files and half-written temporaries.
    return name.startswith((".", "#")) or name.endswith(("~", ".swp", ".tmp"))


def manifest_files(root: Path) -> list[Path]:
    """Every manifest file under ``root`` (or ``root`` itself if it is a file).

    Sorted as the model's loader sorts a directory (by path components), so a
    directory given here and to ``sekisho validate`` loads in the same order.
    Hidden files and directories are skipped: editors' temporaries, and the
    ``..data`` directory behind a ConfigMap volume's symlinks.
    """
    if root.is_file():
        return [root]
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not _ignored(d)]
        found += [
            Path(dirpath) / f
            for f in filenames
            if not _ignored(f) and f.endswith(MANIFEST_SUFFIXES)
        ]
    return sorted(found, key=lambda p: p.relative_to(root).parts)


class CachingLoader:
    """The model's loader, re-reading only files whose (inode, size, mtime) changed.

    Parsing YAML is most of a load; a policy edit changes one file. Each file's
    parse is kept and the joined objects are validated together by the model, so
    the result equals ``load_cluster(paths)``, and the problems of an invalid load
    equal its problems, lines included (a test holds it to both).
    """

    def __init__(self) -> None:
        self._files: dict[str, tuple[tuple[int, int, int], Any]] = {}

    def __call__(self, paths: Sequence[str]) -> Cluster:
        from sekisho.model import ReadResult, load_read, read_paths

        merged = ReadResult()
        texts: dict[str, str] = {}
        cache: dict[str, tuple[tuple[int, int, int], Any]] = {}
        for path in paths:
            try:
                st = os.stat(path)
            except OSError:
                return default_loader(paths)  # vanished mid-walk: let the loader report it
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
            hit = self._files.get(path)
            one = hit[1] if hit is not None and hit[0] == key else read_paths([path])
            cache[path] = (key, one)
            merged.objects.extend(one.objects)
            merged.issues.extend(one.issues)
            texts.update(one.texts)
            merged.files += one.files
        self._files = cache
        # Without the texts the model finds no line numbers, so it does not re-parse
        # files to place warnings (the agent does not report them): a valid load skips
        # that work; an invalid one is validated again with the texts, for the lines.
        result = load_read(merged)
        if result.cluster is None:
            merged.texts = texts
            raise ManifestError(load_read(merged).problems)
        return result.cluster


def refuse_unrendered(cluster: Cluster) -> Cluster:
    """``cluster``, or :class:`ManifestError` when it has objects the renderer cannot draw.

    The renderer draws every policy of the program on workload endpoints and on the
    node's host endpoint (its own traffic, failsafe ports, ``applyOnForward``
    policies on forwarded traffic, ``doNotTrack`` policies in the raw table and
    ``preDNAT`` policies in the mangle table), one host endpoint per node. It does
    not draw a second host endpoint of a node: enforcing a cluster without it would
    enforce something other than the manifests say, so the agent keeps its last good
    state and ``render`` and ``trace --node`` stop, naming each one (validate, trace
    and matrix read them).
    """
    if cluster.calico is None:
        return cluster
    problems: list[Problem] = []
    # One host endpoint per node is drawn (the one the walk takes: sekisho's nodes have
    # one interface); another one of that node would go unenforced.
    from sekisho.semantics.universe import node_host_endpoint

    for h in cluster.calico.host_endpoints:
        node = cluster.node(h.node)
        drawn = node_host_endpoint(cluster, h.node, None if node is None else node.internal_ip)
        if drawn is not None and drawn.name != h.name:
            problems.append(
                Problem(
                    h.source.file,
                    h.source.line,
                    "HostEndpoint",
                    h.name,
                    "spec.node",
                    f"not rendered: node {h.node} has another host endpoint, {drawn.name}, and "
                    "sekisho draws one per node (the one with its InternalIP, else a named "
                    "interface); refusing to enforce the cluster without this one",
                )
            )
    if problems:
        raise ManifestError(problems)
    return cluster


def refuse_unsupported(cluster: Cluster) -> Cluster:
    """``cluster``, or :class:`ManifestError` when it has objects of kinds sekisho does not read.

    Such an object (a Calico or Cilium policy, a custom resource, see
    :mod:`sekisho.model.kinds`) may deny or allow traffic that the rendered rules
    would not: enforcing without it is enforcing a partial picture. The agent keeps
    its last good state and reports itself degraded with these problems as the reason.
    """
    if not cluster.unsupported:
        return cluster
    raise ManifestError(cluster.unsupported)


def default_loader(paths: Sequence[str]) -> Cluster:
    """The model's loader (``sekisho.model.load_cluster``); raises ``ManifestError``."""
    model = importlib.import_module("sekisho.model")
    load = getattr(model, "load_cluster", None)
    if load is None:  # the package may not re-export it yet
        load = importlib.import_module("sekisho.model.load").load_cluster
    return cast(Cluster, load(list(paths)))


class FileSource:
    """Loads a cluster from the manifests under one directory."""

    def __init__(self, root: str | Path, *, loader: Loader | None = None) -> None:
        self.root = Path(root)
        self.loader = loader or CachingLoader()
        self._stats: dict[str, tuple[int, int, int]] = {}

    def files(self) -> list[Path]:
        return manifest_files(self.root)

    def fingerprint(self) -> str:
        """A hash of every manifest's bytes: equal when nothing that matters changed."""
        import hashlib  # on use: the one-shot commands read through this package too

        digest = hashlib.sha1()
        for path in self.files():
            digest.update(str(path).encode() + b"\0")
            try:
                digest.update(path.read_bytes())
            except OSError:
                digest.update(b"<unreadable>")
        return digest.hexdigest()

    def load(self) -> Cluster:
        """Load and validate; raises :class:`~sekisho.errors.ManifestError` with every problem."""
        files = self.files()
        self._stats = self._stat(files)
        return refuse_unsupported(refuse_unrendered(self.loader([str(p) for p in files])))

    @staticmethod
    def _stat(files: list[Path]) -> dict[str, tuple[int, int, int]]:
        out = {}
        for path in files:
            try:
                st = path.stat()
            except OSError:
                continue
            out[str(path)] = (st.st_ino, st.st_size, st.st_mtime_ns)
        return out

    def changed_since_load(self) -> bool:
        """Whether any manifest appeared, vanished or changed since the last :meth:`load`."""
        return self._stat(self.files()) != self._stats


DEBOUNCE = 0.005
"""Seconds of quiet after the last file event before a change is reported."""
MAX_DELAY = 0.25
"""A change is reported at most this long after its first event, even if events keep coming."""


def _mask() -> int:
    """The events watched (inotify_simple, with the ctypes and subprocess it loads, is
    imported by a watcher only: a one-shot command reads through this package)."""
    from inotify_simple import flags

    return int(
        flags.CLOSE_WRITE
        | flags.MOVED_TO
        | flags.MOVED_FROM
        | flags.CREATE
        | flags.DELETE
        | flags.DELETE_SELF
        | flags.MOVE_SELF
        | flags.ATTRIB
    )


class DirWatcher:
    """inotify on a directory tree; :meth:`wait` returns the names that changed, after a debounce."""

    def __init__(
        self,
        root: str | Path,
        *,
        debounce: float = DEBOUNCE,
        max_delay: float = MAX_DELAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = Path(root)
        self.debounce = debounce
        self.max_delay = max_delay
        self.clock = clock
        from inotify_simple import INotify

        self._inotify = INotify()
        self._mask = _mask()
        self._dirs: dict[int, Path] = {}
        self._writing: set[str] = set()
        """Files created in this burst and not yet closed after writing."""
        self._watch_tree(self.root if self.root.is_dir() else self.root.parent)

    def _watch_tree(self, top: Path) -> None:
        # Watch a directory before listing it: a subdirectory made after the listing is
        # then an event of this watch, never missed between the listing and the watch.
        try:
            wd = self._inotify.add_watch(top, self._mask)
        except OSError as exc:  # vanished meanwhile
            import logging

            logging.getLogger(__name__).debug("cannot watch %s: %s", top, exc)
            return
        self._dirs[wd] = Path(top)
        try:
            entries = sorted(os.scandir(top), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and not _ignored(entry.name):
                self._watch_tree(Path(entry.path))

    def fileno(self) -> int:
        return int(self._inotify.fileno())

    def _read(self, timeout_ms: int) -> list[Any]:
        """The inotify events available within ``timeout_ms`` (none: empty list)."""
        return list(self._inotify.read(timeout=timeout_ms))

    def _drain(self, timeout_ms: int) -> list[str]:
        from inotify_simple import flags

        names: list[str] = []
        for event in self._read(timeout_ms):
            if event.mask & flags.Q_OVERFLOW:  # events were lost: say "everything changed"
                names.append(str(self.root))
                continue
            base = self._dirs.get(event.wd)
            if event.mask & flags.IGNORED:
                self._dirs.pop(event.wd, None)
                continue
            if base is None:
                continue
            path = base / event.name if event.name else base
            if event.mask & flags.ISDIR and event.mask & (flags.CREATE | flags.MOVED_TO):
                self._watch_tree(path)  # a new subdirectory, maybe already holding files
            # A ConfigMap volume swaps its ``..data`` symlink: that is a change of every file.
            configmap_swap = event.name.startswith("..")
            if (
                event.name
                and _ignored(event.name)
                and not configmap_swap
                and not event.mask & flags.MOVED_FROM
            ):
                continue
            if event.mask & flags.CREATE and not event.mask & flags.ISDIR:
                self._writing.add(str(path))  # created, maybe still being written
            elif event.mask & (flags.CLOSE_WRITE | flags.DELETE | flags.MOVED_FROM):
                self._writing.discard(str(path))
            names.append(str(path))
        return names

    def wait(self, timeout: float) -> list[str]:
        """Block up to ``timeout`` seconds for a change; return the paths touched (empty: none).

        Trailing-edge debounce: after the first event, keep reading until no event
        came for ``debounce`` seconds (the writes have settled), or ``max_delay``
        after the first event at the latest, so a burst is one change and a single
        write is reported ``debounce`` after it, not a fixed window later. A file
        created in the burst and not yet closed after writing is waited for (up to
        ``max_delay``): a half-written manifest is not read as the new state.
        """
        self._writing.clear()
        names = self._drain(max(0, int(timeout * 1000)))
        if not names:
            return []
        deadline = self.clock() + self.max_delay
        while True:
            left = deadline - self.clock()
            if left <= 0:
                break
            more = self._drain(max(1, round(min(self.debounce, left) * 1000)))
            if more:
                names += more
            elif not self._writing:
                break
        self._writing.clear()
        return sorted(set(names))

    def close(self) -> None:
        self._inotify.close()
