r"""etcd v3 as the cluster's store: one key per object, a client, and a watched source.

Layout (under a prefix, ``/sekisho/`` by default)::

    /sekisho/resources/<Kind>/<namespace or _>/<name>   the object as JSON
    /sekisho/meta/write                                 bumped by every sekisho write

The client talks to etcd's gRPC gateway (``/v3/...``, JSON) through ``etcd3gw``
(requests underneath: TLS with a CA and a client certificate, one session per
endpoint). What ``etcd3gw`` does not do is done here: authentication (a token
from ``/v3/auth/authenticate`` sent as the ``Authorization`` header, renewed when
etcd says it expired), a watch that starts at a revision and reports compaction
and cancellation (its own watcher drops both), and moving to the next endpoint
when one is unreachable.

:class:`EtcdSource` is what an agent reads: a thread lists the prefix, then
watches it from the listed revision; each watch response is applied whole (the
objects one ``sekisho apply`` wrote are one revision, so one response), and
``load()`` validates the snapshot with the model's loader, exactly as ``sekisho
validate`` validates files. When etcd is unreachable the snapshot is kept but not
trusted: ``load()`` raises :class:`~sekisho.errors.StoreUnavailable`, so the agent
keeps enforcing its last good state, reports itself degraded, and the thread
reconnects with a doubling, jittered delay, resuming the watch from the last
revision it saw (relisting when etcd compacted it away).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
from etcd3gw.client import Etcd3Client
from etcd3gw.exceptions import ConnectionFailedError, ConnectionTimeoutError, Etcd3Exception

from sekisho.errors import ManifestError, StoreError, StoreUnavailable
from sekisho.model.types import Cluster

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PREFIX",
    "EtcdClient",
    "EtcdConfig",
    "EtcdSource",
    "KeyValue",
    "Snapshot",
    "object_key",
    "snapshot_cluster",
]

DEFAULT_PREFIX = "/sekisho/"
RESOURCES = "resources/"
WRITE_MARK = "meta/write"
CLUSTER_SCOPE = "_"
"""The namespace part of a cluster-scoped object's key (no Kubernetes name can be ``_``)."""


# ---- keys ------------------------------------------------------------------------------------


def object_key(prefix: str, kind: str, namespace: str, name: str) -> str:
    """``/sekisho/resources/NetworkPolicy/dev/allow-80``; ``_`` for a cluster-scoped object."""
    return f"{prefix}{RESOURCES}{kind}/{namespace or CLUSTER_SCOPE}/{name}"


def split_key(prefix: str, key: str) -> tuple[str, str, str] | None:
    """``(kind, namespace, name)`` of a resource key; None when the key is not one."""
    base = prefix + RESOURCES
    if not key.startswith(base):
        return None
    parts = key[len(base) :].split("/")
    if len(parts) != 3 or not all(parts):
        return None
    kind, ns, name = parts
    return kind, "" if ns == CLUSTER_SCOPE else ns, name


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def _unb64(data: str | None) -> bytes:
    return base64.b64decode(data) if data else b""


def _range_end(prefix: str) -> str:
    """The end of the key range of every key starting with ``prefix`` (its last byte + 1)."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return raw.decode()


# ---- configuration and the client ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EtcdConfig:
    """Where etcd is and how to talk to it."""

    endpoints: tuple[str, ...]
    """``https://10.0.0.1:2379``...; the client sticks to one and moves on when it fails."""
    ca: str | None = None
    """CA bundle that signed the members' certificates (``https`` endpoints)."""
    cert: str | None = None
    """Client certificate (members started with ``--client-cert-auth`` require one)."""
    key: str | None = None
    user: str | None = None
    """etcd user (its roles say what it may read and write); None when auth is off."""
    password: str | None = None
    prefix: str = DEFAULT_PREFIX
    timeout: float = 5.0
    """Seconds for one request (a watch waits up to ``4 * timeout`` between messages)."""

    @classmethod
    def parse(
        cls,
        endpoints: str | Sequence[str],
        **kwargs: Any,
    ) -> EtcdConfig:
        """From ``--etcd URL[,URL...]`` (a bare ``host:port`` is taken as ``http``)."""
        items = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
        urls = []
        for item in (i.strip() for i in items):
            if not item:
                continue
            if "://" not in item:
                item = "http://" + item
            if not item.startswith(("http://", "https://")):
                raise StoreError(f"etcd endpoint {item!r}: expected http://HOST:PORT or https://")
            urls.append(item.rstrip("/"))
        if not urls:
            raise StoreError("no etcd endpoint given (--etcd URL[,URL...])")
        prefix = kwargs.pop("prefix", None) or DEFAULT_PREFIX
        if not prefix.endswith("/"):
            prefix += "/"
        return cls(tuple(urls), prefix=prefix, **kwargs)

    def describe(self) -> str:
        return f"etcd {','.join(self.endpoints)} {self.prefix}"


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    mod_revision: int


def _error_of(exc: Etcd3Exception) -> tuple[int, str]:
    """(gRPC code, message) of an error answer of the gateway (0, text when not JSON)."""
    text = exc.detail_text or str(exc)
    try:
        doc = json.loads(text)
    except (TypeError, ValueError):
        return 0, str(text)
    if not isinstance(doc, dict):
        return 0, str(text)
    return int(doc.get("code", 0) or 0), str(doc.get("message") or doc.get("error") or text)


GRPC_OUT_OF_RANGE = 11
GRPC_PERMISSION_DENIED = 7
GRPC_UNAUTHENTICATED = 16
GRPC_INVALID_ARGUMENT = 3


class StoreRefused(StoreError):
    """etcd refused the request: permission denied, bad credentials, or a bad request."""


class Compacted(StoreError):
    """The revision asked for was compacted away; list again."""

    def __init__(self, revision: int) -> None:
        self.revision = revision
        super().__init__(f"revision compacted (oldest kept: {revision})")


class EtcdClient:
    """A small etcd v3 client over the gRPC gateway: range, txn, watch, with auth and failover."""

    def __init__(self, config: EtcdConfig) -> None:
        self.config = config
        self._clients: list[Etcd3Client] = []
        for url in config.endpoints:
            scheme, _, rest = url.partition("://")
            host, _, port = rest.rpartition(":")
            session = requests.Session()
            # Not the environment's CA bundle or proxies (requests lets REQUESTS_CA_BUNDLE
            # override ``verify``): etcd is reached directly, trusting only its own CA.
            session.trust_env = False
            if config.ca:
                session.verify = config.ca
            if config.cert and config.key:
                session.cert = (config.cert, config.key)
            self._clients.append(
                Etcd3Client(
                    host=host.strip("[]"),
                    port=int(port or 2379),
                    protocol=scheme,
                    timeout=config.timeout,
                    api_path="/v3/",
                    session=session,
                )
            )
        self._current = 0
        self._token: str | None = None
        self.active_watch: requests.Response | None = None
        """The open watch stream (closed by :meth:`EtcdSource.close` to end a watch at once)."""
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return self.config.endpoints[self._current]

    def _next(self) -> None:
        with self._lock:
            self._current = (self._current + 1) % len(self._clients)
            self._token = None

    def _authenticate(self, client: Etcd3Client) -> None:
        if self.config.user is None:
            return
        client.session.headers.pop("Authorization", None)  # an old token would be refused
        try:
            got = client.post(
                client.get_url("/auth/authenticate"),
                json={"name": self.config.user, "password": self.config.password or ""},
            )
        except (ConnectionFailedError, ConnectionTimeoutError):
            raise
        except Etcd3Exception as exc:
            _, msg = _error_of(exc)
            raise StoreRefused(
                f"etcd {self.endpoint}: authentication of {self.config.user!r} failed: {msg}"
            ) from exc
        self._token = str(got["token"])
        client.session.headers["Authorization"] = self._token

    def call(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST one request; move to the next endpoint on a connection failure (each tried once)."""
        last: Exception | None = None
        for _ in range(len(self._clients)):
            client = self._clients[self._current]
            try:
                if self.config.user is not None and self._token is None:
                    self._authenticate(client)
                return self._post_authed(client, path, body)
            except (
                ConnectionFailedError,
                ConnectionTimeoutError,
                requests.RequestException,
            ) as exc:
                log.debug("etcd %s unreachable: %s", self.endpoint, exc)
                last = exc
                self._next()
        why = getattr(last, "detail_text", None) or str(last)
        raise StoreUnavailable(f"etcd unreachable ({', '.join(self.config.endpoints)}): {why}")

    def _post_authed(
        self, client: Etcd3Client, path: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        for attempt in (0, 1):
            try:
                got = client.post(client.get_url(path), json=dict(body))
                return dict(got)
            except (ConnectionFailedError, ConnectionTimeoutError):
                raise
            except Etcd3Exception as exc:
                code, msg = _error_of(exc)
                if "auth token" in msg and attempt == 0 and self.config.user is not None:
                    self._authenticate(client)  # the token expired: once more with a new one
                    continue
                if code == GRPC_OUT_OF_RANGE and "compacted" in msg:
                    raise Compacted(0) from exc
                if "no leader" in msg or "leader changed" in msg or "timed out" in msg:
                    raise ConnectionFailedError(msg) from exc
                raise StoreRefused(f"etcd {self.endpoint} refused {path}: {msg}") from exc
        raise AssertionError("unreachable")

    # -- KV --------------------------------------------------------------------------------------

    def range_prefix(self, prefix: str) -> tuple[int, list[KeyValue]]:
        """Every key under ``prefix`` at one revision: (revision, key-values sorted by key)."""
        got = self.call("/kv/range", {"key": _b64(prefix), "range_end": _b64(_range_end(prefix))})
        rev = int(got.get("header", {}).get("revision", 0))
        kvs = [
            KeyValue(_unb64(kv["key"]).decode(), _unb64(kv.get("value")), int(kv["mod_revision"]))
            for kv in got.get("kvs", [])
        ]
        return rev, kvs

    def get(self, key: str) -> KeyValue | None:
        got = self.call("/kv/range", {"key": _b64(key)})
        kvs = got.get("kvs", [])
        if not kvs:
            return None
        kv = kvs[0]
        return KeyValue(key, _unb64(kv.get("value")), int(kv["mod_revision"]))

    def txn(
        self,
        compare: Sequence[Mapping[str, Any]],
        puts: Mapping[str, bytes],
        deletes: Sequence[str] = (),
    ) -> tuple[bool, int]:
        """One transaction: if every compare holds, put and delete; (succeeded, revision)."""
        success: list[dict[str, Any]] = [
            {"request_put": {"key": _b64(k), "value": _b64(v)}} for k, v in puts.items()
        ]
        success += [{"request_delete_range": {"key": _b64(k)}} for k in deletes]
        got = self.call("/kv/txn", {"compare": list(compare), "success": success, "failure": []})
        return bool(got.get("succeeded", False)), int(got.get("header", {}).get("revision", 0))

    def put(self, key: str, value: bytes) -> int:
        got = self.call("/kv/put", {"key": _b64(key), "value": _b64(value)})
        return int(got.get("header", {}).get("revision", 0))

    def compact(self, revision: int) -> None:
        self.call("/kv/compaction", {"revision": revision, "physical": True})

    # -- watch -----------------------------------------------------------------------------------

    def watch(
        self, prefix: str, start_revision: int, stop: threading.Event | None = None
    ) -> Iterator[tuple[int, list[tuple[str, KeyValue]]]]:
        """Watch ``prefix`` from ``start_revision``: yields (revision, [(PUT|DELETE, kv)]).

        Each item is one watch response (never a part of a revision). A response
        with no events is a progress notification: everything up to its revision was
        delivered. Raises :class:`Compacted` when ``start_revision`` is gone,
        :class:`StoreUnavailable` when the stream breaks.
        """
        client = self._clients[self._current]
        if self.config.user is not None and self._token is None:
            try:
                self._authenticate(client)
            except (ConnectionFailedError, ConnectionTimeoutError) as exc:
                self._next()
                raise StoreUnavailable(f"etcd {self.endpoint} unreachable: {exc}") from exc
        body: dict[str, Any] = {
            "create_request": {
                "key": _b64(prefix),
                "range_end": _b64(_range_end(prefix)),
                "start_revision": start_revision,
                "progress_notify": True,
            }
        }
        try:
            resp = client.session.post(
                client.get_url("/watch"),
                json=body,
                stream=True,
                timeout=(self.config.timeout, 4 * self.config.timeout),
            )
        except requests.RequestException as exc:
            self._next()
            raise StoreUnavailable(f"etcd {self.endpoint} unreachable: {exc}") from exc
        self.active_watch = resp
        try:
            if resp.status_code != 200:
                text = resp.text
                raise StoreRefused(f"etcd {self.endpoint} refused the watch: {text.strip()}")
            yield from self._stream(resp, stop)
        except (requests.RequestException, OSError, ValueError) as exc:
            if stop is not None and stop.is_set():
                return
            self._next()
            raise StoreUnavailable(f"etcd watch on {self.endpoint} broke: {exc}") from exc
        finally:
            resp.close()

    def _stream(
        self, resp: requests.Response, stop: threading.Event | None
    ) -> Iterator[tuple[int, list[tuple[str, KeyValue]]]]:
        decoder = json.JSONDecoder()
        buf = ""
        for chunk in resp.iter_content(chunk_size=None, decode_unicode=False):
            if stop is not None and stop.is_set():
                return
            buf += chunk.decode()
            while True:
                buf = buf.lstrip()
                if not buf:
                    break
                try:
                    doc, end = decoder.raw_decode(buf)
                except ValueError:
                    break  # an incomplete message: read more
                buf = buf[end:]
                item = self._message(doc)
                if item is not None:
                    yield item
        if stop is None or not stop.is_set():
            raise StoreUnavailable(f"etcd {self.endpoint} closed the watch")

    def _message(self, doc: Any) -> tuple[int, list[tuple[str, KeyValue]]] | None:
        if not isinstance(doc, dict):
            raise ValueError(f"unexpected watch message: {doc!r}")
        if "error" in doc:
            err = doc["error"]
            msg = str(err.get("message", err)) if isinstance(err, dict) else str(err)
            if "auth token" in msg or "permission denied" in msg:
                self._token = None
                raise StoreRefused(f"etcd {self.endpoint} refused the watch: {msg}")
            raise StoreUnavailable(f"etcd {self.endpoint} watch error: {msg}")
        result = doc.get("result", {})
        compact = int(result.get("compact_revision", 0) or 0)
        if compact:
            raise Compacted(compact)
        if result.get("canceled"):
            reason = str(result.get("cancel_reason", ""))
            if "auth" in reason or "permission" in reason:
                self._token = None
                raise StoreRefused(f"etcd {self.endpoint} canceled the watch: {reason}")
            raise StoreUnavailable(f"etcd {self.endpoint} canceled the watch: {reason}")
        if result.get("created") and not result.get("events"):
            return -1, []  # the watch is in place: events from the start revision follow
        events = []
        rev = int(result.get("header", {}).get("revision", 0))
        top = 0
        for ev in result.get("events", []):
            kv = ev.get("kv", {})
            mod = int(kv.get("mod_revision", 0))
            top = max(top, mod)
            events.append(
                (
                    str(ev.get("type", "PUT")),  # PUT is the enum's zero value: left out
                    KeyValue(_unb64(kv.get("key")).decode(), _unb64(kv.get("value")), mod),
                )
            )
        return (top if events else rev), events

    def close(self) -> None:
        for c in self._clients:
            c.session.close()


def end_stream(resp: requests.Response) -> None:
    """Wake a thread blocked reading ``resp`` now: shut its socket down (closing it from
    another thread does not interrupt a read)."""
    try:
        fd = resp.raw.fileno()
        with socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, ValueError, AttributeError) as exc:  # already closed
        log.debug("ending the watch stream: %s", exc)
    with contextlib.suppress(Exception):
        resp.close()


# ---- the snapshot and its cluster ----------------------------------------------------------


@dataclass(slots=True)
class Snapshot:
    """The objects under the prefix at one revision."""

    revision: int = 0
    values: dict[str, KeyValue] = field(default_factory=dict)


_decoded: dict[tuple[str, int], Any] = {}
"""(key, mod_revision) -> decoded JSON, kept for the keys of the last snapshot loaded."""


def snapshot_cluster(snapshot: Snapshot, prefix: str, cache: Any = None) -> Cluster:
    """Validate every object of ``snapshot`` with the model's loader; raise ManifestError.

    A value that is not JSON, or an object whose kind, namespace or name differ from
    its key, is a problem located at ``etcd:KEY`` like a file's. Keys outside the
    resource layout, and kinds sekisho does not read, are problems too: the agent
    never enforces a store it does not fully understand.
    """
    from sekisho.errors import Problem
    from sekisho.sources.files import refuse_unrendered, refuse_unsupported

    result = snapshot_result(snapshot, prefix, warnings=False, cache=cache)
    if result.cluster is None:
        raise ManifestError(result.problems)
    if result.skipped:
        raise ManifestError(
            [
                Problem(where, 0, "", what, "", "a kind sekisho does not read")
                for where, what in result.skipped
            ]
        )
    return refuse_unsupported(refuse_unrendered(result.cluster))


def store_cluster(config: EtcdConfig) -> Cluster:
    """The cluster the store holds now, validated (``trace``, ``matrix``, ``render`` with
    ``--etcd``); ManifestError with every problem, located at ``etcd:KEY``."""
    client = EtcdClient(config)
    try:
        rev, kvs = client.range_prefix(config.prefix)
    finally:
        client.close()
    result = snapshot_result(
        Snapshot(rev, {kv.key: kv for kv in kvs}), config.prefix, warnings=False
    )
    if result.cluster is None:
        raise ManifestError(result.problems)
    return result.cluster  # type: ignore[no-any-return]


def snapshot_result(
    snapshot: Snapshot, prefix: str, *, warnings: bool = True, cache: Any = None
) -> Any:
    """The model's ``LoadResult`` of ``snapshot`` (what ``validate --etcd`` prints).

    With ``cache`` (a ``model.load.PartCache``), objects whose key and revision were
    parsed by the last load are not parsed again (the agent's path).
    """
    global _decoded
    from sekisho.model import ReadResult, load_read
    from sekisho.model.load import load_parts
    from sekisho.model.reader import Issue, Loc, RawObject

    read = ReadResult()
    keys: list[tuple[str, int]] = []
    memo: dict[tuple[str, int], Any] = {}
    for key in sorted(snapshot.values):
        kv = snapshot.values[key]
        where = f"etcd:{key}"
        if not key.startswith(prefix + RESOURCES):
            if key.startswith(prefix + "meta/"):
                continue
            read.issues.append(Issue(Loc(where, 0), "", "", (), "not a sekisho resource key"))
            continue
        parts = split_key(prefix, key)
        if parts is None:
            read.issues.append(
                Issue(Loc(where, 0), "", "", (), "expected a key KIND/NAMESPACE/NAME")
            )
            continue
        cache_key = (key, kv.mod_revision)
        known = _decoded.get(cache_key)
        if known is None:
            try:
                data = json.loads(kv.value)
            except (ValueError, UnicodeDecodeError) as exc:
                read.issues.append(Issue(Loc(where, 0), parts[0], parts[2], (), f"not JSON: {exc}"))
                continue
            known = (data, identity(data) if isinstance(data, dict) else None, None)
        data, got, raw = known
        if raw is None and got is not None and got == parts:
            raw = RawObject(Loc(where, 0), data)
            known = (data, got, raw)
        memo[cache_key] = known
        if raw is not None:  # a value already checked against its key
            read.objects.append(raw)
            keys.append(cache_key)
            read.files += 1
            continue
        if got is None:
            read.issues.append(Issue(Loc(where, 0), parts[0], parts[2], (), "not an object"))
        else:
            read.issues.append(
                Issue(
                    Loc(where, 0),
                    parts[0],
                    parts[2],
                    (),
                    f"the object is {got[0]} {got[1] + '/' if got[1] else ''}{got[2]}: "
                    "it does not belong under this key",
                )
            )
    _decoded = memo
    if cache is not None and not read.issues and not warnings:
        return load_parts(list(zip(keys, read.objects, strict=True)), cache)
    return load_read(read, warnings=warnings)


def identity(data: Mapping[str, Any]) -> tuple[str, str, str]:
    """(kind, namespace, name) an object is stored under (namespace ``default`` when left out).

    The kind is qualified by its API group outside Kubernetes' own groups
    (``NetworkPolicy.projectcalico.org``), as ``kubectl`` names resources, so
    Calico's NetworkPolicy and Kubernetes' never share a key.
    """
    from sekisho.model.kinds import classify, group_of, is_kubernetes_group

    kind = data.get("kind")
    meta = data.get("metadata")
    kind = kind if isinstance(kind, str) else ""
    version = data.get("apiVersion")
    group = group_of(version) if isinstance(version, str) else ""
    info = classify(version, kind).info
    name = meta.get("name") if isinstance(meta, dict) else None
    ns = meta.get("namespace") if isinstance(meta, dict) else None
    if info is not None and info.cluster_scoped:
        ns = ""
    elif not ns:
        ns = "default"
    segment = kind if is_kubernetes_group(group) else f"{kind}.{group}"
    return segment, ns if isinstance(ns, str) else "", name if isinstance(name, str) else ""


# ---- the watched source --------------------------------------------------------------------


class StoreObserver(Protocol):
    """What the source tells about the store (the agent's metrics implement it)."""

    def store_connected(self, up: bool) -> None: ...
    def store_revision_seen(self, revision: int) -> None: ...
    def store_events_seen(self, count: int) -> None: ...
    def store_relist(self, reason: str) -> None: ...


class _NoObserver:
    def store_connected(self, up: bool) -> None:
        pass

    def store_revision_seen(self, revision: int) -> None:
        pass

    def store_events_seen(self, count: int) -> None:
        pass

    def store_relist(self, reason: str) -> None:
        pass


BACKOFF_MIN = 0.1
BACKOFF_MAX = 2.0


class EtcdSource:
    """A cluster kept in step with etcd by list-then-watch; ``load()`` validates the snapshot."""

    def __init__(
        self,
        config: EtcdConfig,
        *,
        client: EtcdClient | None = None,
        observer: StoreObserver | None = None,
        debounce: float = 0.005,
        max_delay: float = 0.02,
        backoff: tuple[float, float] = (BACKOFF_MIN, BACKOFF_MAX),
        sleep: Callable[[float], None] | None = None,
        patch: bool = True,
    ) -> None:
        self.config = config
        self.patch = patch
        """Apply the changed keys to the last good cluster when the model can (False:
        every load is a whole one, the reference path; the bench's baseline)."""
        self.root = config.describe()
        """How logs name the source."""
        self.client = client or EtcdClient(config)
        self.observer: StoreObserver = observer or _NoObserver()
        self.debounce = debounce
        self.max_delay = max_delay
        self.backoff = backoff
        self._snap = Snapshot()
        self._synced = False
        """A complete list arrived and the watch since then is unbroken."""
        self._problem: str | None = "not listed yet"
        self._loaded_rev = -1
        self._content = 0
        """Bumped whenever the snapshot's objects change (a progress notification moves the
        revision only)."""
        self._loaded_content = -1
        self._dirty: dict[str, KeyValue | None] | None = None
        """Keys changed since the last load (None: relisted, the next load is a full one)."""
        self._changed: list[str] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wait = sleep or self._stop.wait
        self.relists = 0
        from sekisho.model.load import PartCache

        self.parts = PartCache()
        """Each stored object's parse, kept while its revision stays (a change costs its objects)."""
        self.synced = threading.Event()
        """Set once the first list arrived."""

    # -- what the agent calls --------------------------------------------------------------------

    def start(self) -> EtcdSource:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="etcd-watch", daemon=True)
            self._thread.start()
        return self

    def load(self) -> Cluster:
        """The cluster at the last revision seen; StoreUnavailable while out of step with etcd."""
        if self._thread is None and not self._synced:
            self._list("start")  # one-shot use (``agent --once``, trace, matrix)
        with self._cond:
            if not self._synced:
                raise StoreUnavailable(
                    f"{self.root}: out of step with the store: {self._problem or 'not listed'}"
                )
            snap = Snapshot(self._snap.revision, dict(self._snap.values))
            self._loaded_rev = snap.revision
            self._loaded_content = self._content
            dirty, self._dirty = self._dirty, {}
        try:
            cluster = None if dirty is None else self._patch(dirty)
            if cluster is None:
                return snapshot_cluster(snap, self.config.prefix, self.parts)
            from sekisho.sources.files import refuse_unrendered, refuse_unsupported

            return refuse_unsupported(refuse_unrendered(cluster))
        except BaseException:
            self.parts.base = None  # the changes taken are not in it: load whole next time
            raise

    def _patch(self, dirty: Mapping[str, KeyValue | None]) -> Cluster | None:
        """The last good cluster with the keys changed since applied, when the model can
        patch it (:func:`sekisho.model.patch.patch_parts`); None: load the snapshot whole.

        Anything the full load would report (a value that is not JSON, an object under
        another key, a key outside the layout) is left to it, so it is reported the same.
        """
        from sekisho.model.patch import patch_parts
        from sekisho.model.reader import Loc, RawObject

        if self.parts.base is None or not self.patch:
            return None
        prefix = self.config.prefix
        changes: list[tuple[str, object | None, RawObject | None]] = []
        for key, kv in dirty.items():
            if key.startswith(prefix + "meta/"):
                continue
            parts = split_key(prefix, key)
            if parts is None:
                return None
            if kv is None:
                changes.append((key, None, None))
                continue
            try:
                data = json.loads(kv.value)
            except (ValueError, UnicodeDecodeError):
                return None
            if not isinstance(data, dict) or identity(data) != parts:
                return None
            changes.append((key, kv.mod_revision, RawObject(Loc(f"etcd:{key}", 0), data)))
        return patch_parts(self.parts, changes)

    @property
    def revision(self) -> int:
        return self._snap.revision

    @property
    def loaded_revision(self) -> int:
        """The store revision of the snapshot the last :meth:`load` gave (-1: none yet)."""
        return self._loaded_rev

    def health(self) -> tuple[bool, str]:
        """(in step with etcd, why not)."""
        with self._cond:
            return self._synced, "" if self._synced else f"{self.root}: {self._problem}"

    def changed_since_load(self) -> bool:
        with self._cond:
            return self._synced and self._content != self._loaded_content

    def wait(self, timeout: float) -> list[str]:
        """Block up to ``timeout`` for a change; the keys that changed (``<store>`` for a status change)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            # Changes that came while the caller's last sync ran are taken at once: under
            # steady churn the batch is what came meanwhile, and a debounce would only add
            # its delay to every sync (smaller batches, applied sooner).
            pending = bool(self._changed)
            while not self._changed:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    return []
                self._cond.wait(left)
            first = time.monotonic()
            # From idle, a short trailing debounce: more responses right behind this one
            # are one change, but never more than ``max_delay`` after the first.
            while not pending:
                n = len(self._changed)
                left = min(self.debounce, first + self.max_delay - time.monotonic())
                if left <= 0:
                    break
                self._cond.wait(left)
                if len(self._changed) == n:
                    break
            out, self._changed = self._changed, []
        return sorted(set(out))

    def close(self) -> None:
        self._stop.set()
        resp = getattr(self.client, "active_watch", None)
        if resp is not None:
            end_stream(resp)
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- the thread ------------------------------------------------------------------------------

    def _signal(self, keys: list[str]) -> None:
        with self._cond:
            self._changed.extend(keys)
            self._cond.notify_all()

    def _list(self, reason: str) -> None:
        rev, kvs = self.client.range_prefix(self.config.prefix)
        # The figures first, then the state readers wait on (health, ``synced``): whoever
        # sees the source in step sees this list counted.
        self.relists += 1
        self.observer.store_relist(reason)
        self.observer.store_revision_seen(rev)
        self.observer.store_connected(True)
        with self._cond:
            self._snap = Snapshot(rev, {kv.key: kv for kv in kvs})
            self._dirty = None
            self._content += 1
            was, self._synced, self._problem = self._synced, True, None
            self._changed.append("<relist>")
            self._cond.notify_all()
        self.synced.set()
        log.info(
            "listed %d key(s) at revision %d (%s)",
            len(kvs),
            rev,
            reason,
            extra={
                "fields": {"revision": rev, "keys": len(kvs), "reason": reason, "was_synced": was}
            },
        )

    def _lost(self, why: str) -> None:
        with self._cond:
            # the gauge moves with the state, under the lock ``health()`` reads it with
            self.observer.store_connected(False)
            first = self._synced or self._problem != why
            self._synced = False
            self._problem = why
            self._changed.append("<store>")
            self._cond.notify_all()
        if first:
            log.error("store out of step: %s; enforcing the last good state", why)

    def _run(self) -> None:
        delay = self.backoff[0]
        reason = "start"
        need_list = not self._synced  # a one-shot load() already listed: watch from there
        while not self._stop.is_set():
            try:
                if need_list:
                    self._list(reason)
                    need_list = False
                delay = self.backoff[0]
                self._follow()
            except Compacted as exc:
                log.warning(
                    "watch from revision %d: %s; listing again", self._snap.revision + 1, exc
                )
                need_list, reason = True, "compacted"
                continue
            except StoreError as exc:
                if self._stop.is_set():
                    return
                self._lost(str(exc))
                # A watch that broke after a good list resumes from the last revision seen.
                reason = "reconnect"
                need_list = need_list or not self._snap.revision
            except Exception as exc:  # a bug must not end the watch: log, back off, relist
                log.exception("etcd watch failed: %s", exc)
                self._lost(f"internal error: {exc}")
                need_list, reason = True, "error"
            self._wait(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.backoff[1])

    def _follow(self) -> None:
        start = self._snap.revision + 1
        for rev, events in self.client.watch(self.config.prefix, start, self._stop):
            if self._stop.is_set():
                return
            keys = []
            with self._cond:
                if rev < 0:  # created: the snapshot is a consistent, maybe older, revision
                    self.observer.store_connected(True)
                    if not self._synced:
                        self._synced, self._problem = True, None
                        self._changed.append("<store>")
                        self._cond.notify_all()
                        log.info("store back in step from revision %d", start)
                    continue
                values = self._snap.values
                dirty = self._dirty
                for kind, kv in events:
                    keys.append(kv.key)
                    if kind == "DELETE":
                        values.pop(kv.key, None)
                    else:
                        values[kv.key] = kv
                    if dirty is not None:
                        dirty[kv.key] = None if kind == "DELETE" else kv
                revision = max(self._snap.revision, rev)
                # the figures before the revision and the state readers wait on
                self.observer.store_revision_seen(revision)
                if events:
                    self.observer.store_events_seen(len(events))
                self._snap.revision = revision
                if events:
                    self._content += 1
                if not self._synced:
                    self.observer.store_connected(True)
                    self._synced, self._problem = True, None
                    keys.append("<store>")
                    log.info("store back in step at revision %d", self._snap.revision)
                if keys:
                    self._changed.extend(keys)
                    self._cond.notify_all()
