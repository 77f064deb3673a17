"""Where clusters come from: files now (watched with inotify); etcd and the API later.

Public surface: :class:`FileSource` (``load()``, ``fingerprint()``) and
:class:`DirWatcher` (``wait(timeout)`` -> changed paths, debounced).
"""

from __future__ import annotations

from sekisho.sources.files import DirWatcher, FileSource, manifest_files

__all__ = ["DirWatcher", "FileSource", "manifest_files"]
