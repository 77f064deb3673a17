"""The lab's store: a three-member etcd cluster inside the lab, with TLS and roles.

::

    fabric ns (bridge br0) --- node ns ... (route to the store network on eth0)
       |-- skl-<lab>-e1  etcd member 198.51.100.1  (one namespace per member)
       |-- skl-<lab>-e2  etcd member 198.51.100.2
       |-- skl-<lab>-e3  etcd member 198.51.100.3
       `-- skl-<lab>-o   the orchestrator 198.51.100.10: where the lab's writes come from

The store network is TEST-NET-2, on the same bridge as the nodes (each node
routes it on-link; the members route the node networks back). Nothing of it
touches the host's namespace: the lab process writes through a worker thread
that entered the orchestrator namespace, so every socket it opens lives there.
Writes go through :class:`~sekisho.sources.store.Store` (what ``sekisho apply``
does: the whole change validated, one transaction) as user ``sekisho-writer``;
agents read as ``sekisho-agent`` (read only). PKI, passwords and member data
live in the lab's state directory, so ``lab down`` removes them with it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ipaddress
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sekisho.dataplane.netns import enter
from sekisho.lab import netns
from sekisho.lab.etcd import (
    AGENT,
    WRITER,
    Certs,
    Member,
    admin_config,
    client_config,
    make_certs,
    member_argv,
    passwords,
    setup_auth,
    wait_healthy,
)
from sekisho.lab.topology import PREFIX, Plan
from sekisho.sources.etcd import EtcdClient, EtcdConfig
from sekisho.sources.store import Outcome, Store

log = logging.getLogger(__name__)

T = TypeVar("T")

STORE_NET = ipaddress.IPv4Network("198.51.100.0/24")
"""TEST-NET-2: the members' and the orchestrator's addresses, only inside the lab."""
MEMBERS = 3
ORCHESTRATOR_IP = "198.51.100.10"
FAULT_TABLE = "sekisho_lab_fault"
"""The nft table :meth:`LabStore.partition` puts in a node to cut it off the store."""
METRICS_PORT = 9099
"""Where each lab agent serves /metrics and /readyz, on 127.0.0.1 inside its node."""


@dataclass(frozen=True, slots=True)
class StorePlan:
    lab: str
    members: tuple[tuple[Member, str], ...]
    """(member, its namespace)."""
    orchestrator: str
    """The namespace the lab's writes come from."""

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (*(ns for _, ns in self.members), self.orchestrator)

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url(True) for m, _ in self.members]


def store_plan(lab: str, members: int = MEMBERS) -> StorePlan:
    return StorePlan(
        lab,
        tuple(
            (Member(f"e{i}", str(STORE_NET.network_address + i)), f"{PREFIX}{lab}-e{i}")
            for i in range(1, members + 1)
        ),
        f"{PREFIX}{lab}-o",
    )


def link_script(sp: StorePlan) -> str:
    """Shell run in the fabric namespace: one veth per member and the orchestrator, on br0."""
    lines = []
    for i, ns in enumerate(sp.namespaces):
        lines.append(f"ip link add s{i} type veth peer name eth0 netns {ns}")
        lines.append(f"ip link set s{i} master br0 up")
    return "\n".join(lines) + "\n"


def host_script(ip: str, p: Plan) -> str:
    """Shell run in a member's or the orchestrator's namespace: its address, routes to nodes."""
    lines = [
        "ip link set lo up",
        f"ip addr add {ip}/{STORE_NET.prefixlen} dev eth0",
        "ip link set eth0 up",
    ]
    lines += [f"ip route add {net} dev eth0" for net in p.node_networks]
    return "\n".join(lines) + "\n"


class LabStore:
    """The lab's etcd: build, start, write, and the faults the tests inject."""

    def __init__(self, lab: Any) -> None:
        self.lab = lab
        self.plan = store_plan(lab.name)
        self.dir: Path = lab.dir / "etcd"
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._store: Store | None = None

    @property
    def certs(self) -> Certs:
        return Certs(self.dir / "pki")

    def passwords(self) -> dict[str, str]:
        return passwords(self.dir / "pki")

    # -- in the orchestrator's namespace ---------------------------------------------------------

    def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the worker thread that lives in the orchestrator's namespace."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, initializer=enter, initargs=(self.plan.orchestrator,)
            )
        return self._pool.submit(fn).result()

    def config(self, user: str) -> EtcdConfig:
        pw = self.passwords()
        return client_config(self.plan.endpoints, self.certs, user, pw[user])

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(EtcdClient(self.config(WRITER)))
        return self._store

    def apply(
        self, objects: list[dict[str, Any]], prune: Callable[[Any], bool] | None = None
    ) -> Outcome:
        """Write ``objects`` as ``sekisho apply`` does (validated whole, one transaction)."""
        return self.run(lambda: self.store.apply_objects(objects, "<lab>", prune=prune))

    def delete(self, idents: list[tuple[str, str, str]]) -> Outcome:
        """Delete objects as ``sekisho delete`` does (what stays validated, one transaction)."""
        return self.run(lambda: self.store.delete(idents))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._store is not None:
            self._store.client.close()
            self._store = None

    # -- up ---------------------------------------------------------------------------------------

    def build(self, p: Plan) -> None:
        """The namespaces (recorded in the lab's state first), links, addresses and routes."""
        sp = self.plan
        self.lab.state.namespaces.extend(sp.namespaces)
        self.lab._save()
        netns.add_all(list(sp.namespaces), self.lab.runner)
        netns.run_script(p.fabric, link_script(sp), self.lab.runner)
        jobs = [(ns, host_script(m.ip, p)) for m, ns in sp.members]
        jobs.append((sp.orchestrator, host_script(ORCHESTRATOR_IP, p)))
        jobs += [(n.netns, f"ip route add {STORE_NET} dev eth0\n") for n in p.nodes]
        netns.start_scripts(jobs)

    def start(self) -> None:
        """PKI, members, roles; returns when the cluster answers with auth on."""
        self.dir.mkdir(parents=True, exist_ok=True)
        make_certs(self.dir / "pki", [m.ip for m, _ in self.plan.members])
        pw = self.passwords()
        for i in range(len(self.plan.members)):
            self.start_member(i)

        def init() -> None:
            admin = EtcdClient(admin_config(self.plan.endpoints, self.certs, None))
            wait_healthy(admin, timeout=30)
            setup_auth(admin, pw)
            admin.close()

        self.run(init)

    def start_member(self, i: int) -> None:
        member, ns = self.plan.members[i]
        members = [m for m, _ in self.plan.members]
        argv = member_argv(member, members, self.dir / member.name, self.certs)
        role = f"etcd:{member.name}"
        self.lab.state.procs = [r for r in self.lab.state.procs if r.role != role]
        self.lab._spawn(role, ns, argv, "etcd", f"etcd-{member.name}.log")

    def kill_member(self, i: int) -> None:
        """SIGKILL one member (its data stays; :meth:`start_member` brings it back)."""
        role = f"etcd:{self.plan.members[i][0].name}"
        procs = [r for r in self.lab.state.procs if r.role == role and r.ours()]
        sigkill([r.pid for r in procs])

    def wait_healthy(self, timeout: float = 30.0) -> None:
        def check() -> None:
            client = EtcdClient(self.config(WRITER))
            wait_healthy(client, timeout)
            client.close()

        self.run(check)

    def compact(self) -> int:
        """Compact the store to its current revision (watchers behind it must relist)."""

        def go() -> int:
            rev, _ = self.store.client.range_prefix(self.store.prefix)
            self.store.client.compact(rev)
            return rev

        return self.run(go)

    def put_raw(self, key: str, value: bytes) -> int:
        """Write bytes under a key as another writer could (bypassing validation)."""
        return self.run(lambda: self.store.client.put(key, value))

    def partition(self, node: str, cut: bool) -> None:
        """Cut ``node`` off the store (or heal it): new connections are reset and the open ones
        aborted (``ss -K``), inside the node's namespace only (nft table ``sekisho_lab_fault``)."""
        n = self.lab.plan.node(node)
        assert n is not None
        if cut:
            script = (
                f"nft -f - <<'EOF'\ntable ip {FAULT_TABLE} {{\n  chain output {{\n"
                "    type filter hook output priority 0; policy accept;\n"
                f"    ip daddr {STORE_NET} tcp dport 2379 reject with tcp reset\n  }}\n}}\nEOF\n"
                f"ss -K dst {STORE_NET} >/dev/null 2>&1 || true\n"
            )
        else:
            script = f"nft delete table ip {FAULT_TABLE}\n"
        netns.run_script(n.netns, script, self.lab.runner)

    def agent_args(self, node: str) -> list[str]:
        """What an agent is given to watch the store, as the read-only user."""
        pw_file = self.dir / "pki" / "agent-password"
        if not pw_file.exists():
            pw_file.write_text(self.passwords()[AGENT])
            pw_file.chmod(0o600)
        c = self.certs
        return [
            "--etcd", ",".join(self.plan.endpoints),
            "--etcd-ca", c.ca, "--etcd-cert", c.cert(AGENT), "--etcd-key", c.key(AGENT),
            "--etcd-user", AGENT, "--etcd-password-file", str(pw_file),
            "--metrics-port", str(METRICS_PORT),
        ]  # fmt: skip

    # -- agents -----------------------------------------------------------------------------------

    def readyz(self, node: str) -> tuple[int, str]:
        """(HTTP status, body) of an agent's ``/readyz``, asked inside its node's namespace."""
        return self.agent_get(node, "/readyz")

    def agent_get(self, node: str, path: str) -> tuple[int, str]:
        """(HTTP status, body) of a GET on an agent's health server, inside its node's namespace."""
        import urllib.error
        import urllib.request

        n = self.lab.plan.node(node)
        assert n is not None

        def ask() -> tuple[int, str]:
            enter(n.netns)
            try:
                with urllib.request.urlopen(  # generous: the agent may share a loaded CPU
                    f"http://127.0.0.1:{METRICS_PORT}{path}", timeout=15
                ) as r:
                    return int(r.status), r.read().decode()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read().decode()

        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(ask).result()

    def restart_agent(self, node: str) -> None:
        """SIGKILL ``node``'s agent (its rules stay in the kernel) and start a new one."""
        n = self.lab.plan.node(node)
        assert n is not None
        role = f"agent:{node}"
        sigkill([r.pid for r in self.lab.state.procs if r.role == role and r.ours()])
        self.lab.state.procs = [r for r in self.lab.state.procs if r.role != role]
        self.lab._spawn(
            role, n.netns, self.lab._agent_argv(node, n.netns), "agent", f"agent-{node}.log"
        )


def sigkill(pids: list[int]) -> None:
    """SIGKILL (no chance to clean up, as a crash), then reap."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    netns.kill_pids(pids, grace=5)


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    from sekisho.errors import LabError

    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise LabError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.05)
