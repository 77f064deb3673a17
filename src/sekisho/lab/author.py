"""The policy author's checks with real packets: expectations, and open connections across a change.

* :func:`lab_oracle` decides the pairs of an expectation file
  (:mod:`sekisho.semantics.expect`) by probing them in a running lab: the same
  files ``sekisho test`` checks offline, run for real by ``sekisho lab test``.
* :func:`prove_established` shows what ``sekisho diff`` says about connections
  already open: before a change it opens a TCP connection for each pair the
  change loses and keeps it busy, applies the change *without* forgetting
  conntrack, then finishes each request on its old connection (it must be
  answered: established flows and their replies pass the new rules) and probes
  a new connection on the same pair (it must be dropped).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sekisho.dataplane.netns import enter
from sekisho.lab import probe as pr
from sekisho.lab.topology import Plan
from sekisho.model.types import Cluster
from sekisho.semantics.expect import Check, Observed, Oracle


def lab_oracle(plan: Plan, timeout: float = 1.0) -> Oracle:
    """Decide checks by probing in the lab of ``plan``: pod to pod, and node to pod.

    A pair the lab cannot probe (an external address, SCTP) is undecided
    (``Observed(None)``), which fails its expectation: nothing passes unprobed.
    """

    def decide(cluster: Cluster, checks: Sequence[Check]) -> list[Observed]:
        jobs: list[tuple[int, pr.Probe]] = []
        out: list[Observed] = [Observed(None, "not probed in the lab")] * len(checks)
        for n, c in enumerate(checks):
            f = c.flow
            if f.dst.pod is None:
                out[n] = Observed(None, f"{f.dst.label} is not a pod of the lab")
                continue
            dst = plan.pod(f.dst.pod.key)
            src_ns = None
            if f.src.pod is not None:
                s = plan.pod(f.src.pod.key)
                src_ns = s.netns if s is not None else None
            elif f.src.node is not None:
                node = plan.node(f.src.node.name)
                src_ns = node.netns if node is not None else None
            if dst is None or src_ns is None:
                out[n] = Observed(None, f"{f.src.label} is not a pod or node of the lab")
                continue
            port = f.port or 0
            jobs.append(
                (
                    n,
                    pr.Probe(
                        src_ns,
                        str(dst.ip),
                        port,
                        f.protocol,
                        served=dst.serves(port, f.protocol),
                        pod=None if dst.host_network else dst.key,
                    ),
                )
            )
        results = pr.run([p for _, p in jobs], timeout=timeout)
        for (n, _), o in zip(jobs, results, strict=True):
            if o.outcome in ("unsupported", "error"):
                out[n] = Observed(None, f"{o.outcome}: {o.detail}")
            else:
                out[n] = Observed(o.reached, o.outcome)
        return out

    return decide


# --------------------------------------------------------------------------- held connections


class HeldConnection:
    """A TCP connection from a namespace to ``ip:port``, kept busy by a thread.

    It sends an HTTP request line, then one header line every ``every`` seconds
    (the lab's server waits for the blank line that ends the headers), so the
    connection stays open and established for as long as needed; :meth:`finish`
    ends the request and reads the answer.
    """

    def __init__(self, netns: str, ip: str, port: int, every: float = 0.4) -> None:
        self.netns, self.ip, self.port, self.every = netns, ip, port, every
        self.error: str | None = None
        self.answer: bytes = b""
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sekisho-held")

    def start(self, timeout: float = 3.0) -> HeldConnection:
        self._thread.start()
        self._opened.wait(timeout)
        if self._sock is None and self.error is None:
            self.error = "connect timed out"
        return self

    def _run(self) -> None:
        try:
            enter(self.netns)  # this thread only
            s = socket.create_connection((self.ip, self.port), timeout=3.0)
            s.sendall(b"GET /held HTTP/1.0\r\n")
            self._sock = s
        except OSError as exc:
            self.error = f"connect: {exc}"
            return
        finally:
            self._opened.set()
        n = 0
        while not self._stop.wait(self.every):
            try:
                s.sendall(f"X-Held-{n}: 1\r\n".encode())
            except OSError as exc:
                self.error = f"send: {exc}"
                return
            n += 1

    def finish(self, timeout: float = 10.0) -> bytes:
        """End the request, read the whole answer (empty when none came)."""
        self._stop.set()
        self._thread.join(timeout)
        s = self._sock
        if s is None:
            return b""
        try:
            s.settimeout(timeout)
            s.sendall(b"\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            self.answer = data
        except OSError as exc:
            self.error = f"after the change: {exc}"
        finally:
            s.close()
        return self.answer


@dataclass(frozen=True, slots=True)
class EstablishedResult:
    """One lost pair: its open connection across the change, and a new one after it."""

    src: str
    dst: str
    port: int
    kept: bool
    """The connection opened before the change was answered after it."""
    new: str
    """The outcome of a new connection after the change (``dropped`` expected)."""
    detail: str = ""

    @property
    def as_said(self) -> bool:
        """What ``sekisho diff`` says: open connections keep working, new ones are denied."""
        return self.kept and self.new in ("dropped", "rejected")

    def __str__(self) -> str:
        kept = "kept working (answered after the change)" if self.kept else "BROKEN"
        mark = "ok" if self.as_said else "WRONG"
        extra = f" [{self.detail}]" if self.detail else ""
        return (
            f"{mark}: {self.src} -> {self.dst} TCP/{self.port}: open connection {kept}; "
            f"new connection {self.new}{extra}"
        )


def prove_established(
    plan: Plan,
    pairs: Sequence[tuple[str, str, int]],
    apply: Callable[[], Any],
    timeout: float = 1.0,
) -> list[EstablishedResult]:
    """Open a held connection per (source pod, destination pod, TCP port), run ``apply``
    (the change, with conntrack kept), then check each connection and a new one."""
    held: list[tuple[tuple[str, str, int], HeldConnection]] = []
    for src, dst, port in pairs:
        s, d = plan.pod(src), plan.pod(dst)
        if s is None or d is None:
            raise ValueError(f"{src} or {dst} is not a pod of the lab")
        held.append(((src, dst, port), HeldConnection(s.netns, str(d.ip), port).start()))
    time.sleep(0.2)
    apply()
    probes = []
    for (src, dst, port), _ in held:
        s, d = plan.pod(src), plan.pod(dst)
        assert s is not None and d is not None
        probes.append(pr.Probe(s.netns, str(d.ip), port, "TCP", served=True, pod=d.key))
    # New connections first, while the held ones are still open.
    fresh = pr.run(probes, timeout=timeout)
    # All at once: a connection the change cut costs finish()'s whole timeout.
    with ThreadPoolExecutor(max_workers=max(1, len(held))) as pool:
        answers = list(pool.map(lambda item: item[1].finish(), held))
    out = []
    for ((src, dst, port), h), new, answer in zip(held, fresh, answers, strict=True):
        kept = h.error is None and dst.encode() in answer and b"200 OK" in answer
        out.append(EstablishedResult(src, dst, port, kept, new.outcome, h.error or ""))
    return out
