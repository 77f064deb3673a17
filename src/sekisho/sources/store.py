"""Writing the cluster's store: apply, delete and get, each change validated whole first.

An apply or a delete is checked as ``sekisho validate`` checks files, on the cluster
the store *would* hold after it: the objects read at revision R, with the change
laid over them. Only when that cluster is valid is the change written, as one etcd
transaction (all objects or none) guarded by two compares:

- no resource key changed after R (``mod_revision < R + 1`` over the whole range),
- the write mark (``meta/write``, bumped by every sekisho write) is the one read,
  so a delete by another writer since R is seen too.

If either fails, another write came in between: nothing is written and
:class:`~sekisho.errors.StoreConflict` says so (the caller may read and try
again; ``sekisho apply`` does, a few times, since its own change is still
validated against what is there now). A change is never lost and never half made.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sekisho.errors import ManifestError, Problem, StoreConflict, UsageError
from sekisho.model.types import Cluster
from sekisho.sources.etcd import (
    RESOURCES,
    WRITE_MARK,
    EtcdClient,
    KeyValue,
    _b64,
    _range_end,
    identity,
    object_key,
    split_key,
)

__all__ = ["Outcome", "Store"]

Identity = tuple[str, str, str]
"""(kind, namespace or "", name)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one write did, object by object (``kubectl``'s words)."""

    results: tuple[tuple[Identity, str], ...]
    """(object, ``created`` | ``configured`` | ``unchanged`` | ``deleted``)."""
    revision: int
    """The store's revision after the write (the one read when nothing changed)."""
    cluster: Cluster | None = None
    """The validated cluster the store holds now."""

    @property
    def changed(self) -> bool:
        return any(what != "unchanged" for _, what in self.results)


def show(ident: Identity) -> str:
    kind, ns, name = ident
    return f"{kind} {ns}/{name}" if ns else f"{kind} {name}"


def encode(data: Mapping[str, Any]) -> bytes:
    """An object's stored value: compact JSON with sorted keys (equal objects, equal bytes)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


class Store:
    """The objects under one prefix of one etcd: read them, and change them validated and whole."""

    def __init__(self, client: EtcdClient, *, prefix: str | None = None, retries: int = 3) -> None:
        self.client = client
        self.prefix = prefix or client.config.prefix
        self.retries = retries

    # -- reading ---------------------------------------------------------------------------------

    def read(self) -> tuple[int, dict[str, KeyValue]]:
        rev, kvs = self.client.range_prefix(self.prefix)
        return rev, {kv.key: kv for kv in kvs}

    def objects(self) -> list[dict[str, Any]]:
        """Every stored object (unreadable values are left out; ``validate --etcd`` names them)."""
        _, values = self.read()
        out = []
        for key in sorted(values):
            if split_key(self.prefix, key) is None:
                continue
            try:
                data = json.loads(values[key].value)
            except ValueError:
                continue
            if isinstance(data, dict):
                out.append(data)
        return out

    def get(self, kind: str, name: str | None = None, namespace: str | None = None) -> list[Any]:
        """Objects of ``kind`` (case-insensitive; ``all``: every kind), maybe one name and namespace."""
        found = []
        for obj in self.objects():
            k, ns, n = identity(obj)
            wanted = kind.lower()
            if wanted != "all" and k.lower() != wanted and k.lower() + "s" != wanted:
                continue
            if name is not None and n != name:
                continue
            if namespace is not None and ns and ns != namespace:
                continue
            found.append(obj)
        return found

    # -- writing ---------------------------------------------------------------------------------

    def apply(self, read: Any, prune: Callable[[Identity], bool] | None = None) -> Outcome:
        """Create or replace the objects of ``read`` (a model ``ReadResult``), validated, in one txn.

        With ``prune``, stored objects it selects that ``read`` does not hold are deleted
        in the same transaction (the lab replaces its policies so).
        """
        from sekisho.model.kinds import classify

        if read.issues:
            from sekisho.model.reader import resolve

            raise ManifestError(resolve(read.issues, read.texts))
        problems: list[Problem] = []
        new: dict[str, tuple[Identity, Any]] = {}
        for obj in read.objects:
            ident = identity(obj.data)
            kind, ns, name = ident
            known = classify(obj.data.get("apiVersion"), obj.data.get("kind") or "")
            if known.verdict in ("skipped", "unsupported"):
                problems.append(
                    Problem(
                        obj.loc.file,
                        obj.loc.line,
                        kind,
                        name,
                        "kind",
                        "a kind sekisho does not read",
                    )
                )
                continue
            data = dict(obj.data)
            scoped = known.info is not None and known.info.cluster_scoped
            if not scoped and isinstance(data.get("metadata"), dict):
                data["metadata"] = {**data["metadata"], "namespace": ns}
            new[object_key(self.prefix, kind, ns, name)] = (ident, data)
        if problems:
            raise ManifestError(problems)

        def change(values: dict[str, KeyValue]) -> tuple[dict[str, Any], list[str]]:
            if prune is None:
                return new, []
            stale = []
            for key in values:
                ident = split_key(self.prefix, key)
                if ident is not None and key not in new and prune(ident):
                    stale.append(key)
            return new, stale

        return self._write(change, read)

    def apply_objects(
        self,
        objects: Iterable[Mapping[str, Any]],
        source: str = "<objects>",
        prune: Callable[[Identity], bool] | None = None,
    ) -> Outcome:
        """:meth:`apply` for objects given as dicts (the lab, tests)."""
        from sekisho.model.reader import iter_objects

        return self.apply(iter_objects(list(objects), source), prune)

    def delete(self, idents: Sequence[Identity]) -> Outcome:
        """Delete these objects (each must exist), if what stays is valid; one txn."""
        keys = []
        for kind, ns, name in idents:
            keys.append(object_key(self.prefix, kind, ns, name))

        def change(
            values: dict[str, KeyValue],
        ) -> tuple[dict[str, tuple[Identity, Any]], Sequence[str]]:
            missing = [show(i) for i, k in zip(idents, keys, strict=True) if k not in values]
            if missing:
                raise UsageError(f"not in the store: {', '.join(missing)}")
            return {}, keys

        return self._write(change, None)

    def _write(self, change: Any, read: Any) -> Outcome:
        for _ in range(self.retries + 1):
            rev, values = self.read()
            puts, deletes = change(values)
            cluster = self._validate(values, puts, deletes, read)
            results: list[tuple[Identity, str]] = []
            writes: dict[str, bytes] = {}
            for key, (ident, data) in puts.items():
                body = encode(data)
                old = values.get(key)
                if old is not None and old.value == body:
                    results.append((ident, "unchanged"))
                    continue
                writes[key] = body
                results.append((ident, "configured" if old is not None else "created"))
            for key in deletes:
                parts = split_key(self.prefix, key)
                assert parts is not None
                results.append((parts, "deleted"))
            if not writes and not deletes:
                return Outcome(tuple(results), rev, cluster)
            mark = values.get(self.prefix + WRITE_MARK)
            base = self.prefix + RESOURCES
            compare = [
                {
                    "key": _b64(base),
                    "range_end": _b64(_range_end(base)),
                    "target": "MOD",
                    "result": "LESS",
                    "mod_revision": rev + 1,
                },
                {
                    "key": _b64(self.prefix + WRITE_MARK),
                    "target": "MOD",
                    "result": "EQUAL",
                    "mod_revision": mark.mod_revision if mark else 0,
                },
            ]
            writes[self.prefix + WRITE_MARK] = json.dumps({"time": time.time()}).encode()
            ok, new_rev = self.client.txn(compare, writes, deletes)
            if ok:
                return Outcome(tuple(results), new_rev, cluster)
        raise StoreConflict(
            f"the store changed while this change was validated ({self.retries + 1} tries);"
            " nothing was written: try again"
        )

    def _validate(
        self,
        values: Mapping[str, KeyValue],
        puts: Mapping[str, tuple[Identity, Any]],
        deletes: Sequence[str],
        read: Any,
    ) -> Cluster:
        """The cluster the store would hold after the change; ManifestError with every problem."""
        from sekisho.model import ReadResult, load_read
        from sekisho.model.reader import Loc, RawObject

        merged = ReadResult()
        gone = set(deletes) | set(puts)
        for key in sorted(values):
            if key in gone or split_key(self.prefix, key) is None:
                continue
            try:
                data = json.loads(values[key].value)
            except ValueError:
                continue  # replaced by nothing: the agent reports it, this change does not own it
            merged.objects.append(RawObject(Loc(f"etcd:{key}", 0), data))
        if read is not None:
            merged.objects.extend(read.objects)
            merged.texts.update(read.texts)
        else:
            merged.objects.extend(
                RawObject(Loc(f"<new> {key}", 0), data) for key, (_, data) in puts.items()
            )
        result = load_read(merged)
        if result.cluster is None:
            raise ManifestError(result.problems)
        return result.cluster


def identities_of(paths: Sequence[str | Path]) -> list[Identity]:
    """(kind, namespace, name) of every object in these files (for ``delete -f``)."""
    from sekisho.model import read_paths
    from sekisho.model.reader import resolve

    read = read_paths(paths)
    if read.issues:
        raise ManifestError(resolve(read.issues, read.texts))
    return [identity(o.data) for o in read.objects]
