"""The lab: build a cluster of namespaces, run servers and agents, apply, probe, tear down.

State lives in ``<root>/<name>/`` (default ``/run/sekisho/lab``): ``state.json``
(namespaces and processes, written before anything is created so ``lab down``
works after a crash), ``manifests/`` (what the agents watch), ready files and
logs. Every namespace starts with :data:`~sekisho.lab.topology.PREFIX`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sekisho.dataplane.netns import exec_argv
from sekisho.errors import LabError
from sekisho.lab import manifests as mf
from sekisho.lab import netns
from sekisho.lab.agents import LOG_GROUP
from sekisho.lab.nginx import is_ingress_controller, nginx_config
from sekisho.lab.topology import PREFIX, Plan, PodPlan, check_lab_name, plan
from sekisho.model.types import Cluster
from sekisho.render.backends import BACKEND_NAMES

log = logging.getLogger(__name__)

STATE_ROOT = Path(os.environ.get("SEKISHO_LAB_ROOT", "/run/sekisho/lab"))
BACKENDS = BACKEND_NAMES
NGINX = "/usr/sbin/nginx"


@dataclass
class Proc:
    role: str
    """``server:<pod>``, ``nginx:<pod>``, ``agent:<node>`` or ``server:external``."""
    pid: int
    netns: str
    marker: str
    """A string the process's command line contains (guards against a reused pid)."""

    def alive(self) -> bool:
        """Running (not a zombie); right after start the command line may not be ours yet."""
        try:
            with open(f"/proc/{self.pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False

    def ours(self) -> bool:
        """Alive and still the process we started (its pid was not reused)."""
        try:
            with open(f"/proc/{self.pid}/cmdline", "rb") as fh:
                return self.alive() and self.marker.encode() in fh.read()
        except OSError:
            return False


@dataclass
class State:
    name: str
    backend: str
    enforce: str
    """``agent`` (real ``sekisho agent`` per node) or ``none`` (topology only)."""
    namespaces: list[str] = field(default_factory=list)
    procs: list[Proc] = field(default_factory=list)
    created: float = 0.0
    store: str = "files"
    """Where agents learn the cluster: ``files`` (a shared directory) or ``etcd`` (the lab's
    three-member etcd, :mod:`sekisho.lab.store`)."""
    log_group: int | None = None
    """The nfnetlink_log group the agents render Log rules to (:mod:`sekisho.lab.logs`
    reads it in each node); None: the kernel log (a lab of an older sekisho)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": self.backend,
            "enforce": self.enforce,
            "namespaces": self.namespaces,
            "procs": [p.__dict__ for p in self.procs],
            "created": self.created,
            "store": self.store,
            "log_group": self.log_group,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> State:
        return cls(
            name=doc["name"],
            backend=doc.get("backend", "iptables"),
            enforce=doc.get("enforce", "agent"),
            namespaces=list(doc.get("namespaces", [])),
            procs=[Proc(**p) for p in doc.get("procs", [])],
            created=float(doc.get("created", 0.0)),
            store=str(doc.get("store", "files")),
            log_group=doc.get("log_group"),
        )


def load_cluster_objects(objects: list[dict[str, Any]]) -> Cluster:
    """Objects -> Cluster through the model's loader (the one meaning of manifests)."""
    from sekisho.model import cluster_from_objects

    return cluster_from_objects(objects)


class Lab:
    """One lab by name. ``Lab.up`` builds it; ``Lab(name)`` attaches to a running one."""

    def __init__(
        self,
        name: str,
        root: Path | None = None,
        runner: netns.Runner = netns.run_process,
    ) -> None:
        self.name = check_lab_name(name)
        self.root = root or STATE_ROOT
        self.dir = self.root / name
        self.runner = runner
        self._state: State | None = None
        self._cluster: Cluster | None = None
        self._plan: Plan | None = None
        self._store: Any = None

    # -- paths and state ---------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def manifests(self) -> Path:
        return self.dir / "manifests"

    def ready_file(self, node: str) -> Path:
        return self.dir / f"agent-{node}.ready"

    def exists(self) -> bool:
        return self.state_file.exists()

    @property
    def state(self) -> State:
        if self._state is None:
            try:
                self._state = State.from_json(json.loads(self.state_file.read_text()))
            except FileNotFoundError as exc:
                raise LabError(
                    f"no lab named {self.name!r} is up (no {self.state_file}); run 'sekisho lab up'"
                ) from exc
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise LabError(f"{self.state_file}: unreadable lab state: {exc}") from exc
        return self._state

    def _save(self) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state.to_json(), indent=1))
        os.replace(tmp, self.state_file)

    def current_objects(self) -> list[dict[str, Any]]:
        self.state  # noqa: B018 - raises "no lab named ... is up" before any file error
        return mf.read_objects([self.manifests / mf.CLUSTER_FILE, self.manifests / mf.POLICY_FILE])

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            self._cluster = load_cluster_objects(self.current_objects())
        return self._cluster

    @property
    def store(self) -> Any:
        """The lab's etcd (:class:`sekisho.lab.store.LabStore`) when it runs on one, else None."""
        if self._store is None and self.state.store == "etcd":
            from sekisho.lab.store import LabStore

            self._store = LabStore(self)
        return self._store

    @property
    def plan(self) -> Plan:
        if self._plan is None:
            self._plan = plan(self.cluster, self.name)
        return self._plan

    # -- up ------------------------------------------------------------------------------------

    @classmethod
    def up(
        cls,
        objects: list[dict[str, Any]],
        name: str = "lab",
        backend: str = "iptables",
        enforce: str = "agent",
        root: Path | None = None,
        runner: netns.Runner = netns.run_process,
        timeout: float = 60.0,
        store: str = "files",
        log_group: int | None = LOG_GROUP,
    ) -> Lab:
        """Build the lab for ``objects`` (manifest dicts); on any failure remove what was built."""
        if os.geteuid() != 0:
            raise LabError("the lab needs root: it creates network namespaces (try sudo)")
        if backend not in BACKENDS:
            raise LabError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
        lab = cls(name, root, runner)
        if lab.exists():
            raise LabError(
                f"lab {name!r} is already up ({lab.state_file}); 'sekisho lab down --name {name}' first"
            )
        cluster = load_cluster_objects(objects)
        topo = plan(cluster, name)
        clash = [n for n in netns.list_netns(runner) if n.startswith(f"{PREFIX}{name}-")]
        if clash:
            raise LabError(
                f"namespaces of a lab {name!r} are left over ({', '.join(clash)});"
                f" run 'sekisho lab down --name {name}'"
            )
        lab.dir.mkdir(parents=True, exist_ok=True)
        lab.manifests.mkdir(exist_ok=True)
        if store not in ("files", "etcd"):
            raise LabError(f"store {store!r}: expected files or etcd")
        lab._state = State(
            name, backend, enforce, list(topo.namespaces), [], time.time(), store, log_group
        )
        lab._save()
        lab._cluster, lab._plan = cluster, topo
        try:
            policies = [o for o in objects if mf.is_policy(o)]
            mf.write_atomic(lab.manifests / mf.CLUSTER_FILE, mf.cluster_objects(cluster))
            mf.write_atomic(lab.manifests / mf.POLICY_FILE, policies)
            lab._build(topo)
            if lab.store is not None:
                lab.store.build(topo)
                lab.store.start()
                lab.store.apply(mf.cluster_objects(cluster) + policies)
            lab._start_servers(topo)
            if enforce == "agent":
                lab._start_agents(topo)
            lab._wait_servers(topo, timeout)
            if enforce == "agent":
                lab.wait_agents(None, timeout)
        except BaseException:
            lab.down()
            raise
        return lab

    def _build(self, p: Plan) -> None:
        from sekisho.lab.topology import external_script, fabric_script, node_script, pod_script

        netns.add_all(p.namespaces, self.runner)
        netns.run_script(p.fabric, fabric_script(p), self.runner)
        netns.start_scripts([(n.netns, node_script(p, n)) for n in p.nodes])
        jobs = [(p.external, external_script(p))]
        jobs += [(pod.netns, pod_script(pod)) for pod in p.pods if not pod.host_network]
        netns.start_scripts(jobs)

    def _spawn(self, role: str, ns: str, argv: list[str], marker: str, log_name: str) -> None:
        pid = netns.spawn(exec_argv(ns, argv), str(self.dir / log_name), str(self.dir))
        self.state.procs.append(Proc(role, pid, ns, marker))
        self._save()

    def _server_argv(
        self, key: str, tcp: Sequence[int], udp: Sequence[int], ready: Path
    ) -> list[str]:
        argv = [sys.executable, "-m", "sekisho.lab.server", "--name", key, "--ready", str(ready)]
        for port in tcp:
            argv += ["--tcp", str(port)]
        for port in udp:
            argv += ["--udp", str(port)]
        return argv

    def _start_servers(self, p: Plan) -> None:
        for i, pod in enumerate(p.pods):
            tcp: tuple[int, ...] = pod.tcp
            if is_ingress_controller(self.cluster.pod(pod.key)) and pod.tcp:
                self._start_nginx(p, pod)
                tcp = ()
            if tcp or pod.udp:
                ready = self.dir / f"server-{i}.ready"
                self._spawn(
                    f"server:{pod.key}",
                    pod.netns,
                    self._server_argv(pod.key, tcp, pod.udp, ready),
                    "sekisho.lab.server",
                    f"server-{i}.log",
                )
        ready = self.dir / "server-external.ready"
        self._spawn(
            "server:external",
            p.external,
            self._server_argv("external", [80, 443], [80], ready),
            "sekisho.lab.server",
            "server-external.log",
        )

    def _start_nginx(self, p: Plan, pod: PodPlan) -> None:
        if not os.path.exists(NGINX):
            raise LabError(
                f"the ingress controller pod {pod.key} needs nginx ({NGINX}): apt-get install nginx"
            )
        prefix = self.dir / "nginx"
        (prefix / "tmp").mkdir(parents=True, exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_config(p, pod, prefix))
        self._spawn(
            f"nginx:{pod.key}",
            pod.netns,
            [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
            "nginx",
            "nginx.log",
        )

    def _wait_servers(self, p: Plan, timeout: float) -> None:
        want = [self.dir / "server-external.ready"]
        want += [
            self.dir / f"server-{i}.ready"
            for i, pod in enumerate(p.pods)
            if (pod.udp or pod.tcp)
            and not (is_ingress_controller(self.cluster.pod(pod.key)) and not pod.udp)
        ]
        if any(r.role.startswith("nginx:") for r in self.state.procs):
            want.append(self.dir / "nginx" / "nginx.pid")
        deadline = time.monotonic() + timeout
        while True:
            missing = [w for w in want if not w.exists()]
            if not missing:
                return
            dead = [
                r for r in self.state.procs if not r.role.startswith("agent:") and not r.alive()
            ]
            if dead or time.monotonic() > deadline:
                what = ", ".join(f"{r.role} (pid {r.pid})" for r in dead) or ", ".join(
                    map(str, missing)
                )
                raise LabError(f"lab servers did not start: {what}{self._log_tail(dead)}")
            time.sleep(0.02)

    def _log_tail(self, procs: Sequence[Proc]) -> str:
        out = []
        for r in procs:
            kind, _, what = r.role.partition(":")
            name = {"agent": f"agent-{what}.log", "nginx": "nginx.log"}.get(kind)
            if name is None:
                keys = [p.key for p in self.plan.pods]
                name = f"server-{keys.index(what)}.log" if what in keys else "server-external.log"
            try:
                lines = (self.dir / name).read_text(errors="replace").strip().splitlines()[-5:]
            except OSError:
                continue
            out.append(f"\n  {r.role}: " + "\n  ".join(lines))
        return "".join(out)

    # -- agents --------------------------------------------------------------------------------

    def _agent_argv(self, node: str, netns_: str) -> list[str]:
        return [
            sys.executable, "-m", "sekisho", "agent",
            "--node", node,
            *(self.store.agent_args(node) if self.store else ["--source", str(self.manifests)]),
            "--netns", netns_,
            "--backend", self.state.backend,
            "--ready-file", str(self.ready_file(node)),
            *(["--log-group", str(self.state.log_group)] if self.state.log_group is not None else []),
        ]  # fmt: skip

    def _start_agents(self, p: Plan) -> None:
        for n in p.nodes:
            argv = self._agent_argv(n.name, n.netns)
            # Run inside the node's namespace too, so a scan of the namespace finds it after a crash.
            self._spawn(f"agent:{n.name}", n.netns, argv, "agent", f"agent-{n.name}.log")

    def _agent_marks(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for n in self.plan.nodes:
            try:
                out[n.name] = self.ready_file(n.name).read_text()
            except OSError:
                out[n.name] = None
        return out

    def wait_agents(
        self,
        before: dict[str, str | None] | None,
        timeout: float = 30.0,
        cluster: Cluster | None = None,
        *,
        revision: int | None = None,
    ) -> None:
        """Wait until every agent's ready file shows the ruleset of ``cluster`` (or changed),
        rendered from store revision ``revision`` or later when given (etcd)."""
        from sekisho.lab.agents import applied, expected_fingerprints

        nodes = [n.name for n in self.plan.nodes]
        want = expected_fingerprints(
            cluster or self.cluster, nodes, self.state.backend, self.state.log_group
        )
        deadline = time.monotonic() + timeout
        while True:
            now = self._agent_marks()
            pending = [
                node
                for node, text in now.items()
                if not applied(text, before.get(node) if before else None, want.get(node), revision)
            ]
            if not pending:
                return
            dead = [r for r in self.state.procs if r.role.startswith("agent:") and not r.alive()]
            if dead:
                raise LabError("agent exited:" + self._log_tail(dead))
            if time.monotonic() > deadline:
                raise LabError(
                    f"agents did not apply within {timeout:.0f} s: {', '.join(pending)}"
                    f" (logs in {self.dir})"
                )
            time.sleep(0.05)

    # -- apply ---------------------------------------------------------------------------------

    def apply(
        self, objects: list[dict[str, Any]], timeout: float = 30.0, *, forget: bool = True
    ) -> Cluster:
        """Replace the policies (and labels) in place; wait until every agent applied them.

        ``forget=False`` keeps conntrack, so connections opened before the change
        stay established (what ``sekisho lab diff`` shows)."""
        self.state  # noqa: B018 - raises "no lab named ... is up" before any file error
        current = mf.read_objects([self.manifests / mf.CLUSTER_FILE])
        policies = [o for o in objects if mf.is_policy(o)]
        updates = [o for o in objects if not mf.is_policy(o)]
        merged = mf.merge_labels(current, updates)
        cluster = load_cluster_objects(merged + policies)  # validate before touching anything
        before = self._agent_marks() if self.state.enforce == "agent" else None
        if self.store is not None:  # as `sekisho apply` would: one validated transaction
            self.store.apply(
                merged + policies, prune=lambda ident: mf.is_policy({"kind": ident[0]})
            )
        if updates:
            mf.write_atomic(self.manifests / mf.CLUSTER_FILE, merged)
        mf.write_atomic(self.manifests / mf.POLICY_FILE, policies)
        self._cluster = cluster
        if self.state.enforce == "agent":
            self.wait_agents(before, timeout, cluster)
        if forget:
            self.forget_connections()
        return cluster

    def forget_connections(self) -> None:
        """Flush conntrack in every node namespace, so that later probes meet the new rules.

        Enforcement is stateful, as Calico's is: a flow accepted before a change
        keeps passing after it. Probes are about new connections, but a UDP probe
        that happens to reuse the source port of a recent allowed one would match
        that old entry and pass; after each change the lab forgets old flows.
        """
        for node in self.plan.nodes:
            netns.check(self.runner, exec_argv(node.netns, ["conntrack", "-F"]))

    # -- exec ----------------------------------------------------------------------------------

    def exec_argv(self, target: str, argv: Sequence[str]) -> list[str]:
        return exec_argv(self.plan.resolve(target), argv)

    def run(self, target: str, argv: Sequence[str]) -> netns.Result:
        """Run a command inside a node, pod or the external host and capture its output."""
        return self.runner(self.exec_argv(target, argv), None)

    # -- down ----------------------------------------------------------------------------------

    def down(self) -> None:
        """Kill our processes, delete our namespaces and the state directory."""
        state: State | None
        try:
            state = self.state
        except LabError:
            state = None
        if self._store is not None:
            self._store.close()
            self._store = None
        if state is not None:
            netns.kill_pids([p.pid for p in state.procs if p.ours() or netns.is_child(p.pid)])
        existing = set(netns.list_netns(self.runner))
        ours = {n for n in existing if n.startswith(f"{PREFIX}{self.name}-")}
        if state is not None:
            ours |= {n for n in state.namespaces if n in existing}
        for ns in sorted(ours):
            netns.delete(ns, self.runner)
        shutil.rmtree(self.dir, ignore_errors=True)
        self._state = None


def all_labs(root: Path | None = None, runner: netns.Runner = netns.run_process) -> list[str]:
    """Names of labs with a state directory or left-over namespaces."""
    root = root or STATE_ROOT
    names = set()
    if root.is_dir():
        names |= {d.name for d in root.iterdir() if d.is_dir()}
    for ns in netns.list_netns(runner):
        if ns.startswith(PREFIX):
            names.add(ns[len(PREFIX) :].rsplit("-", 1)[0])
    return sorted(names)


def down_all(root: Path | None = None, runner: netns.Runner = netns.run_process) -> list[str]:
    """Remove every lab (also the remains of crashed runs); return their names."""
    removed = []
    for name in all_labs(root, runner):
        try:
            Lab(name, root, runner).down()
        except LabError:
            # A name that is not a valid lab name: remove its namespaces directly.
            for ns in netns.list_netns(runner):
                if ns.startswith(f"{PREFIX}{name}-"):
                    netns.delete(ns, runner)
        removed.append(name)
    return removed


Callback = Callable[[str], None]
