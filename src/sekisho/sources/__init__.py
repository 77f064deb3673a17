"""Where clusters come from: files (watched with inotify) and etcd (listed, then watched).

Public surface: :class:`FileSource` (``load()``, ``fingerprint()``) and
:class:`DirWatcher` (``wait(timeout)`` -> changed paths, debounced). The store
lives in its own modules, imported only by those who use it (they bring in
requests): :mod:`sekisho.sources.etcd` (``EtcdConfig``, ``EtcdClient``,
``EtcdSource``) and :mod:`sekisho.sources.store` (``Store``: apply, delete, get).
"""

from __future__ import annotations

from sekisho.sources.files import DirWatcher, FileSource, manifest_files

__all__ = ["DirWatcher", "FileSource", "manifest_files"]
