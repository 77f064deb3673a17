"""Watch fan-out: N agents without a dataplane (processes) on one etcd holding a big cluster.

    .venv/bin/python bench/bench_fanout.py                    # 10,000 pods; N = 1 (baseline), 10, 50, 100
    .venv/bin/python bench/bench_fanout.py --pods 10000 --watchers 10 50 100 --changes 200 --interval 0.1
    .venv/bin/python bench/bench_fanout.py --pods 1000 --watchers 10 --changes 50 --validated

No root needed: one etcd member listens on 127.0.0.1 (``LocalEtcd``: free ports,
its own data directory, removed at the end). The cluster (``generator.py``:
``--pods`` pods, about pods/10 policies, their nodes and namespaces) is written
with the store's code (``Store.apply_objects``: validated whole, one transaction).

Each watcher is a process running the agent's watch path, ``EtcdSource`` (list
the prefix, then watch it from the listed revision; each response applied to the
snapshot), without building the model or touching a dataplane. It records two
receipt times per revision (``time.monotonic``, one clock for every process on
Linux):

* receive: the source's watch thread applied the response (the observer's
  ``store_revision_seen``, which the agent's metrics implement);
* decode: the agent's loop woke from ``EtcdSource.wait`` (its 5 ms debounce
  included) and parsed the changed values as JSON (what the agent's per-object
  cache parses on a change; the model build after it is left out: at 10,000
  pods it costs ~0.6 s per change and per node, which 100 processes on 2 cores
  cannot share fairly).

Runs, one etcd for all: N = 1 (the baseline), then each ``--watchers`` count. In
each run every watcher is started, imports, and waits; then all are told to go at
once, so N lists hit etcd together (a cold start of N nodes): the list time per
watcher (go -> synced) and until all are synced. Then ``--changes`` changes are
written every ``--interval`` seconds, alternating a pod's label and a policy's port,
each as the store writes it (one transaction: the object and the write mark; with
``--validated`` through ``Store.apply_objects``, which validates the whole cluster
first). The clock of a change starts when its transaction is sent (its commit is
after that, and before the answer: the figures are upper bounds by at most the
transaction's round trip, printed too) and stops at each watcher's receipt:
p50/p99/max over every (change, watcher), and over the last watcher of each change.
etcd's resident memory (``/proc/PID/status`` VmRSS, sampled every 50 ms) before,
at its peak during the lists, and after the changes; etcd's CPU time
(``/proc/PID/stat``) spent on the N lists and on the changes (that one covers N
streams and the byte counter's); the bytes of one list answer and of one change's
watch message (a raw watch stream in this process). Ratios are against N = 1 of
the same run. Exit status 1 when a watcher missed a change.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent

GO = "go\n"


# ---- the watcher process -----------------------------------------------------------------------


class Recorder:
    """The observer a watcher gives its source: when each revision arrived."""

    def __init__(self) -> None:
        self.received: list[tuple[int, float]] = []
        self.relists: list[tuple[str, float]] = []

    def store_connected(self, up: bool) -> None:
        pass

    def store_revision_seen(self, revision: int) -> None:
        self.received.append((revision, time.monotonic()))

    def store_events_seen(self, count: int) -> None:
        pass

    def store_relist(self, reason: str) -> None:
        self.relists.append((reason, time.monotonic()))


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def watcher(endpoint: str, prefix: str, timeout: float, out: IO[str] = sys.stdout) -> int:
    """One watcher: ``ready``, wait for ``go`` on stdin, list and watch, ``listed ...``; on
    ``until REV`` answer ``done REV`` once it has it; at EOF on stdin stop and print what was
    received as one JSON line."""
    from sekisho.sources.etcd import EtcdConfig, EtcdSource

    rec = Recorder()
    source = EtcdSource(EtcdConfig((endpoint,), prefix=prefix, timeout=timeout), observer=rec)
    decoded: list[tuple[int, float]] = []
    stop = threading.Event()

    def agent_loop() -> None:  # what the agent's loop does on a change, up to the model build
        while not stop.is_set():
            keys = source.wait(0.2)
            if not keys:
                continue
            with source._cond:
                values = source._snap.values
                got = [values[k].value for k in keys if k in values]
                rev = source._snap.revision
            for raw in got:
                json.loads(raw)
            decoded.append((rev, time.monotonic()))

    print("ready", file=out, flush=True)
    if sys.stdin.readline() != GO:
        return 1
    t_go = time.monotonic()
    source.start()
    if not source.synced.wait(timeout):
        print("listed -1 -1 0 0", file=out, flush=True)
        source.close()
        return 1
    t_listed = time.monotonic()
    loop = threading.Thread(target=agent_loop, daemon=True)
    loop.start()
    keys = len(source._snap.values)
    print(f"listed {t_go} {t_listed} {keys} {rss_mib():.1f}", file=out, flush=True)
    for line in sys.stdin:  # ``until REV``: answer once REV arrived and was decoded; EOF: stop
        want = int(line.split()[1])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if decoded and decoded[-1][0] >= want and rec.received[-1][0] >= want:
                break
            time.sleep(0.01)
        print(f"done {want}", file=out, flush=True)
    stop.set()
    source.close()
    loop.join(2)
    doc = {
        "received": rec.received,
        "decoded": decoded,
        "relists": [r for r, _ in rec.relists],
        "rss": rss_mib(),
    }
    print(json.dumps(doc), file=out, flush=True)
    return 0


# ---- the harness ---------------------------------------------------------------------------------


@dataclass
class Watcher:
    """A watcher process and what it reported."""

    proc: subprocess.Popen[str]
    t_go: float = 0.0
    t_listed: float = 0.0
    keys: int = 0
    rss_listed: float = 0.0
    report: dict[str, Any] = field(default_factory=dict)

    def line(self, deadline: float) -> str:
        assert self.proc.stdout is not None
        left = deadline - time.monotonic()
        ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, left))
        if not ready:
            raise TimeoutError(f"watcher {self.proc.pid}: no answer in time")
        got = self.proc.stdout.readline()
        if not got:
            raise RuntimeError(f"watcher {self.proc.pid} ended (status {self.proc.poll()})")
        return got


def spawn(endpoint: str, prefix: str, n: int, timeout: float) -> list[Watcher]:
    """Start ``n`` watcher processes and wait until each is ready (imported, not listing)."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--watch", endpoint]
    argv += ["--prefix", prefix, "--timeout", str(timeout)]
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}
    out = []
    try:
        for _ in range(n):
            out.append(
                Watcher(
                    subprocess.Popen(
                        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
                    )
                )
            )
        deadline = time.monotonic() + 60 + n
        for w in out:
            if w.line(deadline) != "ready\n":
                raise RuntimeError(f"watcher {w.proc.pid}: not ready")
    except BaseException:
        stop_all(out)
        raise
    return out


def go(watchers: list[Watcher], timeout: float) -> None:
    """Let every watcher list at once; wait until all are synced."""
    for w in watchers:
        assert w.proc.stdin is not None
        w.proc.stdin.write(GO)
        w.proc.stdin.flush()
    deadline = time.monotonic() + timeout
    for w in watchers:
        parts = w.line(deadline).split()
        if parts[0] != "listed" or float(parts[1]) < 0:
            raise RuntimeError(f"watcher {w.proc.pid}: did not list: {parts}")
        w.t_go, w.t_listed = float(parts[1]), float(parts[2])
        w.keys, w.rss_listed = int(parts[3]), float(parts[4])


def settle(watchers: list[Watcher], revision: int, timeout: float) -> None:
    """Wait until every watcher received and decoded ``revision`` (or gave up waiting)."""
    for w in watchers:
        assert w.proc.stdin is not None
        w.proc.stdin.write(f"until {revision}\n")
        w.proc.stdin.flush()
    deadline = time.monotonic() + timeout
    for w in watchers:
        if w.line(deadline) != f"done {revision}\n":
            raise RuntimeError(f"watcher {w.proc.pid}: unexpected answer")


def finish(watchers: list[Watcher], timeout: float = 30) -> None:
    """Stop every watcher (EOF on its stdin) and collect what it received."""
    for w in watchers:
        assert w.proc.stdin is not None
        w.proc.stdin.close()
    for w in watchers:
        assert w.proc.stdout is not None
        out = w.proc.stdout.read()
        w.proc.stdout.close()
        w.proc.wait(timeout=timeout)
        w.report = json.loads(out.strip().splitlines()[-1])


def stop_all(watchers: list[Watcher]) -> None:
    """Kill the processes started here (by their own handles) that are still running."""
    for w in watchers:
        if w.proc.poll() is None:
            w.proc.kill()
    for w in watchers:
        with contextlib.suppress(subprocess.TimeoutExpired):
            w.proc.wait(timeout=10)
        for pipe in (w.proc.stdin, w.proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()


def first_at(seen: list[tuple[int, float]], revision: int) -> float | None:
    """When a revision >= ``revision`` was first seen (``seen`` in arrival order)."""
    for rev, t in seen:
        if rev >= revision:
            return t
    return None


def latencies(
    watchers: list[Watcher], writes: list[tuple[int, float, float]], which: str
) -> tuple[list[float], list[float], int]:
    """(every (change, watcher) latency, the last watcher's per change, receipts missing)."""
    every: list[float] = []
    last: list[float] = []
    missing = 0
    for rev, t_send, _ in writes:
        worst = 0.0
        for w in watchers:
            t = first_at(w.report[which], rev)
            if t is None:
                missing += 1
                continue
            every.append(t - t_send)
            worst = max(worst, t - t_send)
        last.append(worst)
    return every, last, missing


# ---- etcd's side -------------------------------------------------------------------------------


class RssSampler:
    """etcd's VmRSS every 50 ms, in a thread; ``peak(since)`` and ``now``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), rss_mib(self.pid)))
            self._stop.wait(0.05)

    def now(self) -> float:
        return rss_mib(self.pid)

    def peak(self, since: float) -> float:
        return max((r for t, r in self.samples if t >= since), default=self.now())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)


def list_bytes(endpoint: str, prefix: str) -> int:
    """The size of one list answer as the gateway sends it."""
    import requests

    from sekisho.sources.etcd import _b64, _range_end

    body = {"key": _b64(prefix), "range_end": _b64(_range_end(prefix))}
    with requests.Session() as s:
        s.trust_env = False
        return len(s.post(f"{endpoint}/v3/kv/range", json=body, timeout=300).content)


class ByteCounter:
    """A raw watch stream on the prefix in this process: bytes the gateway sends per watcher."""

    def __init__(self, endpoint: str, prefix: str, revision: int) -> None:
        import requests

        from sekisho.sources.etcd import _b64, _range_end

        self.bytes = 0
        self.revision = 0
        """The highest revision of an event counted so far."""
        self._moved = threading.Condition()
        self.session = requests.Session()
        self.session.trust_env = False
        body = {
            "create_request": {
                "key": _b64(prefix),
                "range_end": _b64(_range_end(prefix)),
                "start_revision": revision,
            }
        }
        self.resp = self.session.post(f"{endpoint}/v3/watch", json=body, stream=True, timeout=300)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        decoder = json.JSONDecoder()
        buf = ""
        try:
            for chunk in self.resp.iter_content(chunk_size=None):
                self.bytes += len(chunk)
                buf += chunk.decode()
                revs = []
                while buf.strip():  # the gateway's messages, one JSON object each
                    try:
                        doc, end = decoder.raw_decode(buf.lstrip())
                    except ValueError:
                        break  # an incomplete message: read more
                    buf = buf.lstrip()[end:]
                    events = doc.get("result", {}).get("events", [])
                    revs += [int(e.get("kv", {}).get("mod_revision", 0)) for e in events]
                if revs:
                    with self._moved:
                        self.revision = max(self.revision, *revs)
                        self._moved.notify_all()
        except Exception:  # the stream is ended by close()
            return

    def wait(self, revision: int, timeout: float) -> bool:
        """Block until the event of ``revision`` was counted (False: not within ``timeout``)."""
        with self._moved:
            return self._moved.wait_for(lambda: self.revision >= revision, timeout)

    def close(self) -> int:
        from sekisho.sources.etcd import end_stream

        end_stream(self.resp)
        self._thread.join(2)
        self.session.close()
        return self.bytes


# ---- the change stream ---------------------------------------------------------------------------


class Changes:
    """Pod label and policy port changes, written as the store writes them."""

    def __init__(self, client: Any, prefix: str, objs: list[dict[str, Any]], validated: bool):
        from sekisho.sources.etcd import WRITE_MARK
        from sekisho.sources.store import Store

        self.client, self.prefix, self.validated = client, prefix, validated
        self.mark = prefix + WRITE_MARK
        self.store = Store(client)
        self.pods = [o for o in objs if o["kind"] == "Pod"]
        self.namespace = self.pods[-1]["metadata"]["namespace"]
        self.k = 0
        self.bytes: list[int] = []
        self.sent: list[float] = []
        real = client.txn

        def txn(*args: Any, **kwargs: Any) -> Any:  # when the transaction leaves
            self.sent.append(time.monotonic())
            return real(*args, **kwargs)

        client.txn = txn

    def next_object(self) -> dict[str, Any]:
        k = self.k
        self.k += 1
        if k % 2 == 0:  # a pod's label
            pod = self.pods[(k // 2) % len(self.pods)]
            meta = dict(pod["metadata"])
            meta["labels"] = {**meta.get("labels", {}), "bench-rev": str(k)}
            return {**pod, "metadata": meta}
        return {  # a policy's port
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "fanout-probe", "namespace": self.namespace},
            "spec": {
                "podSelector": {"matchLabels": {"tier": "backend"}},
                "ingress": [{"ports": [{"port": 1000 + k % 60000}]}],
            },
        }

    def write(self) -> tuple[int, float, float]:
        """One change: (revision, sent, answered)."""
        from sekisho.sources.etcd import identity, object_key
        from sekisho.sources.store import encode

        obj = self.next_object()
        if self.validated:
            rev = self.store.apply_objects([obj]).revision
        else:
            key = object_key(self.prefix, *identity(obj))
            mark = json.dumps({"time": time.time()}).encode()
            _, rev = self.client.txn([], {key: encode(obj), self.mark: mark})
        done = time.monotonic()
        self.bytes.append(len(encode(obj)))
        return rev, self.sent[-1], done


# ---- one run ---------------------------------------------------------------------------------


@dataclass
class Run:
    n: int
    list_each: list[float]
    list_all: float
    every: list[float]
    last: list[float]
    decoded: list[float]
    missing: int
    rtt: list[float]
    rss_before: float
    rss_peak: float
    rss_after: float
    watcher_rss: float
    watch_bytes: int
    keys: list[int]
    cpu_list: float
    """etcd's CPU seconds while the N watchers listed."""
    cpu_changes: float
    """etcd's CPU seconds while the changes were written and delivered."""


def run(
    etcd: Any,
    sampler: RssSampler,
    changes: Changes,
    n: int,
    count: int,
    interval: float,
    *,
    prefix: str | None = None,
    pause: float = 1.0,
) -> Run:
    """One run: ``n`` watchers list at once, then ``count`` changes every ``interval`` s."""
    from sekisho.sources.etcd import EtcdClient

    config = etcd.config(timeout=600.0, **({"prefix": prefix} if prefix else {}))
    watchers = spawn(etcd.endpoint, config.prefix, n, 600.0)
    try:
        time.sleep(pause)  # let the last imports settle
        rss_before = sampler.now()
        t0 = time.monotonic()
        cpu0 = cpu_s(sampler.pid)
        go(watchers, 900.0)
        cpu_list = cpu_s(sampler.pid) - cpu0
        rss_peak = sampler.peak(t0)
        time.sleep(pause)  # every watch created
        probe = EtcdClient(config)
        rev0, _ = probe.range_prefix(config.prefix + "meta/")
        probe.close()
        counter = ByteCounter(etcd.endpoint, config.prefix, rev0 + 1)
        time.sleep(0.2)
        cpu0 = cpu_s(sampler.pid)
        writes = []
        start = time.monotonic()
        for k in range(count):
            writes.append(changes.write())
            wait = start + (k + 1) * interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        settle(watchers, writes[-1][0], 120.0)  # the last deliveries
        if not counter.wait(writes[-1][0], 120.0):  # and the byte counter's
            print("  !! the byte counter's stream did not deliver every change")
        cpu_changes = cpu_s(sampler.pid) - cpu0
        watch_bytes = counter.close()
        rss_after = sampler.now()
        finish(watchers)
    finally:
        stop_all(watchers)
    every, last, missing = latencies(watchers, writes, "received")
    _, decoded, missing_dec = latencies(watchers, writes, "decoded")
    relisted = sum(len(w.report["relists"]) - 1 for w in watchers)
    if relisted:
        print(f"  !! {relisted} relist(s) during the changes (compaction or a broken watch)")
    return Run(
        n=n,
        list_each=[w.t_listed - w.t_go for w in watchers],
        list_all=max(w.t_listed for w in watchers) - min(w.t_go for w in watchers),
        every=every,
        last=last,
        decoded=decoded,
        missing=missing + missing_dec,
        rtt=[done - sent for _, sent, done in writes],
        rss_before=rss_before,
        rss_peak=rss_peak,
        rss_after=rss_after,
        watcher_rss=sum(w.report["rss"] for w in watchers) / len(watchers),
        watch_bytes=watch_bytes,
        keys=[w.keys for w in watchers],
        cpu_list=cpu_list,
        cpu_changes=cpu_changes,
    )


# ---- output ------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def ms(x: float) -> str:
    return f"{x * 1000:.1f}"


def dist(values: list[float]) -> str:
    return f"{ms(pct(values, 0.5))} / {ms(pct(values, 0.99))} / {ms(max(values, default=0.0))}"


def report(runs: list[Run], changes: Changes, one_list: int, keys: int) -> None:
    base = runs[0]
    print()
    print("latencies in ms as p50 / p99 / max; list times in s; memory in MiB")
    head = (
        "N",
        "list each p50/max",
        "all listed",
        "etcd RSS before->peak->after",
        "receive, every",
        "receive, last watcher",
        "+decode, last watcher",
        "watcher RSS",
        "etcd CPU s: lists, per list",
        "etcd CPU ms: per change, per change and stream",
    )
    print(" | ".join(head))
    for r in runs:
        print(
            " | ".join(
                [
                    str(r.n),
                    f"{pct(r.list_each, 0.5):.2f}/{max(r.list_each):.2f}",
                    f"{r.list_all:.2f}",
                    f"{r.rss_before:.0f}->{r.rss_peak:.0f}->{r.rss_after:.0f}",
                    dist(r.every),
                    dist(r.last),
                    dist(r.decoded),
                    f"{r.watcher_rss:.0f}",
                    f"{r.cpu_list:.2f}, {r.cpu_list / r.n:.3f}",
                    f"{r.cpu_changes / len(r.last) * 1000:.2f},"
                    f" {r.cpu_changes / len(r.last) / (r.n + 1) * 1000:.3f}",
                ]
            )
        )
        if r.missing:
            print(f"  !! N={r.n}: {r.missing} receipt(s) missing (a watcher never saw a change)")
    print()
    print(f"ratios against N={base.n} (same run):")
    for r in runs[1:]:
        print(
            f"  N={r.n}: receive p99 (last watcher) {pct(r.last, 0.99) / pct(base.last, 0.99):.1f}x,"
            f" p50 {pct(r.last, 0.5) / pct(base.last, 0.5):.1f}x;"
            f" list per watcher p50 {pct(r.list_each, 0.5) / pct(base.list_each, 0.5):.1f}x;"
            f" all listed {r.list_all / base.list_all:.1f}x;"
            f" etcd peak RSS growth {(r.rss_peak - r.rss_before):.0f} MiB"
            f" ({(r.rss_peak - r.rss_before) / max(r.n, 1):.1f} MiB per watcher);"
            f" etcd CPU of the lists {r.cpu_list / max(base.cpu_list, 1e-9):.1f}x,"
            f" of the changes {r.cpu_changes / max(base.cpu_changes, 1e-9):.1f}x"
        )
    rtt = [x for r in runs for x in r.rtt]
    per_change = [r.watch_bytes / len(r.last) for r in runs]
    print()
    print("(etcd CPU of the changes covers N watchers + this bench's byte-counting stream)")
    print(
        f"one list answer: {one_list / 1e6:.1f} MB for {keys} keys;"
        f" one change on the wire per watcher: {sum(per_change) / len(per_change):.0f} bytes"
        f" (value {sum(changes.bytes) / len(changes.bytes):.0f} bytes encoded);"
        f" write round trip p50 {ms(pct(rtt, 0.5))} ms, p99 {ms(pct(rtt, 0.99))} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--policies", type=int, default=None, help="default: about pods/10")
    parser.add_argument("--watchers", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--baseline", type=int, default=1, help="watchers of the baseline run")
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between changes")
    parser.add_argument("--validated", action="store_true", help="write through Store.apply")
    parser.add_argument("--watch", metavar="ENDPOINT", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="/sekisho/", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=600.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.watch:
        return watcher(args.watch, args.prefix, args.timeout)

    sys.path.insert(0, str(HERE))
    import generator

    from sekisho.lab.etcd import LocalEtcd
    from sekisho.sources.etcd import EtcdClient
    from sekisho.sources.store import Store

    objs = generator.generate(args.pods, policies=args.policies, seed=3)
    print(
        f"== fan-out: {args.pods} pods ({len(objs)} objects); watchers {args.watchers},"
        f" baseline {args.baseline}; {args.changes} changes every {args.interval} s"
        f"{' (validated)' if args.validated else ''}",
        flush=True,
    )
    with LocalEtcd() as etcd:
        assert etcd.proc is not None
        sampler = RssSampler(etcd.proc.pid)
        try:
            client = EtcdClient(etcd.config(timeout=600.0))
            t = time.monotonic()
            Store(client).apply_objects(objs)
            print(f"  stored in {time.monotonic() - t:.1f} s (one validated transaction)")
            config = etcd.config()
            one_list = list_bytes(etcd.endpoint, config.prefix)
            keys = len(client.range_prefix(config.prefix)[1])
            changes = Changes(client, config.prefix, objs, args.validated)
            runs = []
            for n in [args.baseline, *args.watchers]:
                t = time.monotonic()
                r = run(etcd, sampler, changes, n, args.changes, args.interval)
                print(
                    f"  N={n}: done in {time.monotonic() - t:.0f} s; receive p99 (last watcher)"
                    f" {ms(pct(r.last, 0.99))} ms; all listed in {r.list_all:.2f} s;"
                    f" etcd peak {r.rss_peak:.0f} MiB",
                    flush=True,
                )
                runs.append(r)
            client.close()
        finally:
            sampler.close()
    report(runs, changes, one_list, keys)
    return 1 if any(r.missing for r in runs) else 0


if __name__ == "__main__":
    raise SystemExit(main())
