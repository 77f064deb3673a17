"""The agent's loop logic with a fake runner: invalid input, readiness, metrics, logs, watcher."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from inotify_simple import Event, flags
from sk_kernel import ingress_policy, write_cluster, write_policy

from sekisho.agent import Agent, AgentMetrics, HealthServer
from sekisho.agent.logs import JsonFormatter, TextFormatter
from sekisho.sources import DirWatcher, FileSource, manifest_files


class FakeRunner:
    """An empty kernel that accepts every write and remembers it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, argv: Sequence[str], *, stdin: str | None = None) -> str:
        self.calls.append(" ".join(argv))
        if argv[0] == "iptables-save":
            return "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n"
        return ""

    def writes(self) -> list[str]:
        return [c for c in self.calls if "restore" in c or c.startswith("nft -f")]


BAD_POLICY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: dev}
spec:
  podSelector: {}
  ingress:
  - from: [{ipBlock: {cidr: 10.0.0.300/8}}]
"""


@pytest.fixture
def cluster_dir(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    write_cluster(root)
    write_policy(root, "p1", ingress_policy("p1", target="a0", peer="a1"))
    return root


def make_agent(root: Path, tmp_path: Path, runner: FakeRunner) -> Agent:
    return Agent(
        node="n1",
        source=root,
        runner=runner,
        ready_file=tmp_path / "ready.json",
        metrics=AgentMetrics(),
        resync=0.2,
    )


def test_first_load_invalid_applies_nothing_and_is_not_ready(
    cluster_dir: Path, tmp_path: Path
) -> None:
    write_policy(cluster_dir, "bad", BAD_POLICY)
    runner = FakeRunner()
    agent = make_agent(cluster_dir, tmp_path, runner)
    summary = agent.sync_once()
    assert summary.status == "invalid"
    assert "bad.yaml" in (summary.error or "")
    assert runner.calls == []
    ok, reason = agent.ready()
    assert not ok and "invalid manifests" in reason
    assert agent.metrics.value("sekisho_agent_errors_total", {"stage": "load"}) == 1
    assert not (tmp_path / "ready.json").exists()


def test_invalid_update_keeps_last_good_state(cluster_dir: Path, tmp_path: Path) -> None:
    runner = FakeRunner()
    agent = make_agent(cluster_dir, tmp_path, runner)
    good = agent.sync_once()
    assert good.status == "applied" and good.generation == 1
    assert agent.ready() == (True, "")
    assert json.loads((tmp_path / "ready.json").read_text())["generation"] == 1
    assert agent.metrics.value("sekisho_agent_policies") == 1
    assert agent.metrics.value("sekisho_agent_endpoints") == 4
    assert agent.metrics.value("sekisho_agent_degraded") == 0
    desired = agent.desired
    writes = len(runner.writes())

    write_policy(cluster_dir, "bad", BAD_POLICY)
    bad = agent.sync_once()
    assert bad.status == "invalid" and bad.generation == 1
    assert len(runner.writes()) == writes, "nothing of an invalid change is applied"
    assert agent.desired is desired
    ok, reason = agent.ready()
    assert not ok and "bad.yaml" in reason
    assert agent.metrics.value("sekisho_agent_degraded") == 1
    assert agent.metrics.value("sekisho_agent_errors_total", {"stage": "load"}) == 1

    (cluster_dir / "policies" / "bad.yaml").unlink()
    again = agent.sync_once()
    assert again.status == "unchanged" and again.generation == 2
    assert agent.ready() == (True, "")
    assert json.loads((tmp_path / "ready.json").read_text())["generation"] == 2


def test_unsupported_kind_is_refused_and_keeps_last_good_state(
    cluster_dir: Path, tmp_path: Path
) -> None:
    runner = FakeRunner()
    agent = make_agent(cluster_dir, tmp_path, runner)
    assert agent.sync_once().status == "applied"
    writes = len(runner.writes())
    write_policy(
        cluster_dir,
        "cilium",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n"
        "metadata: {name: deny, namespace: dev}\nspec: {endpointSelector: {}}\n",
    )
    refused = agent.sync_once()
    assert refused.status == "invalid" and len(runner.writes()) == writes
    ok, reason = agent.ready()
    assert not ok and "cilium.yaml:1: CiliumNetworkPolicy dev/deny: unsupported kind" in reason


def test_resync_before_any_good_apply_is_idle(cluster_dir: Path, tmp_path: Path) -> None:
    agent = make_agent(cluster_dir, tmp_path, FakeRunner())
    assert agent.resync().status == "idle"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_health_server_reports_readiness_and_metrics(cluster_dir: Path, tmp_path: Path) -> None:
    agent = make_agent(cluster_dir, tmp_path, FakeRunner())
    server = HealthServer(agent.metrics, agent.live, agent.ready, port=0).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert _get(base + "/healthz")[0] == 200
        code, body = _get(base + "/readyz")
        assert code == 503 and "no good apply yet" in body
        agent.sync_once()
        assert _get(base + "/readyz") == (200, "ok\n")
        code, body = _get(base + "/metrics")
        assert code == 200
        for name in (
            "sekisho_agent_apply_seconds_bucket",
            "sekisho_agent_rules ",
            "sekisho_agent_sets ",
            "sekisho_agent_last_good_apply_timestamp_seconds",
            "sekisho_agent_repairs_total",
        ):
            assert name in body, name
        assert _get(base + "/nope")[0] == 404
    finally:
        server.stop()


def wait_until(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``cond`` until it holds; fail after ``timeout`` seconds (generous: a loaded CI
    machine is slow, and a condition that never holds still fails)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_run_loop_follows_changes_and_stops(cluster_dir: Path, tmp_path: Path) -> None:
    runner = FakeRunner()
    agent = make_agent(cluster_dir, tmp_path, runner)
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    thread.start()
    try:
        wait_until(lambda: agent.generation >= 1)
        assert agent.generation == 1
        write_policy(cluster_dir, "p2", ingress_policy("p2", target="a1", peer="a0"))
        wait_until(lambda: agent.generation >= 2)
        assert agent.metrics.value("sekisho_agent_policies") == 2
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()


@pytest.mark.parametrize(
    ("formatter", "check"),
    [
        pytest.param(
            JsonFormatter(),
            lambda line: (
                json.loads(line)
                == {**json.loads(line), "level": "info", "msg": "applied 2", "changed": 2}
            ),
            id="json",
        ),
        pytest.param(TextFormatter(), lambda line: line.endswith("applied 2 changed=2"), id="text"),
    ],
)
def test_log_formats(formatter: logging.Formatter, check: object) -> None:
    record = logging.LogRecord("sekisho.agent", logging.INFO, __file__, 1, "applied %d", (2,), None)
    record.fields = {"changed": 2}
    line = formatter.format(record)
    assert callable(check) and check(line), line
    if isinstance(formatter, JsonFormatter):
        assert {"ts", "level", "msg"} <= set(json.loads(line))


def test_watcher_debounces_follows_renames_and_new_directories(tmp_path: Path) -> None:
    root = tmp_path / "w"
    root.mkdir()
    watcher = DirWatcher(root, debounce=0.03)
    try:
        assert watcher.wait(0.05) == []
        for i in range(20):  # a burst is one change
            (root / "a.yaml").write_text(f"n: {i}\n")
        assert watcher.wait(1.0) == [str(root / "a.yaml")]
        assert watcher.wait(0.1) == []
        tmp = root / ".b.yaml.tmp"  # editors write a temporary and rename it into place
        tmp.write_text("x: 1\n")
        tmp.rename(root / "b.yaml")
        assert str(root / "b.yaml") in watcher.wait(1.0)
        sub = root / "sub" / "deeper"
        sub.mkdir(parents=True)
        assert watcher.wait(1.0)
        (sub / "c.yaml").write_text("y: 1\n")
        assert str(sub / "c.yaml") in watcher.wait(1.0)
    finally:
        watcher.close()
    assert manifest_files(root) == [root / "a.yaml", root / "b.yaml", sub / "c.yaml"]
    before = FileSource(root).fingerprint()
    assert FileSource(root).fingerprint() == before
    (root / "a.yaml").write_text("n: changed\n")
    assert FileSource(root).fingerprint() != before


def test_caching_loader_equals_the_model_loader(cluster_dir: Path) -> None:
    from sekisho.errors import ManifestError
    from sekisho.model import load_cluster
    from sekisho.sources.files import CachingLoader

    loader = CachingLoader()
    files = [str(p) for p in manifest_files(cluster_dir)]
    assert loader(files) == load_cluster(files)
    write_policy(cluster_dir, "p2", ingress_policy("p2", target="a1", peer="a0", port=8080))
    files = [str(p) for p in manifest_files(cluster_dir)]
    assert loader(files) == load_cluster(files)
    write_policy(cluster_dir, "bad", BAD_POLICY)
    files = [str(p) for p in manifest_files(cluster_dir)]
    with pytest.raises(ManifestError) as got:
        loader(files)
    with pytest.raises(ManifestError) as want:
        load_cluster(files)
    assert [str(p) for p in got.value.problems] == [str(p) for p in want.value.problems]


def test_incremental_render_equals_full_render(cluster_dir: Path, tmp_path: Path) -> None:
    from sekisho.agent.agent import full_renderer

    agent = make_agent(cluster_dir, tmp_path, FakeRunner())
    agent.sync_once()
    write_policy(cluster_dir, "p2", ingress_policy("p2", target="a1", peer="a0", port=8080))
    (cluster_dir / "policies" / "p1.yaml").unlink()
    agent.sync_once()
    assert agent.cluster is not None
    assert agent.desired == full_renderer(agent.cluster, "n1", "iptables", "sekisho")
    assert agent.resync().status in ("unchanged", "applied")
    assert agent.metrics.value("sekisho_agent_errors_total", {"stage": "render"}) == 0


class FailingRunner(FakeRunner):
    """Refuses the next ``fail`` iptables-restore transactions."""

    def __init__(self, fail: int) -> None:
        super().__init__()
        self.fail = fail

    def __call__(self, argv: Sequence[str], *, stdin: str | None = None) -> str:
        if argv[0] == "iptables-restore" and self.fail:
            self.fail -= 1
            self.calls.append(" ".join(argv) + " (refused)")
            from sekisho.errors import CommandFailed

            raise CommandFailed(argv, 1, "iptables-restore: line 3 failed")
        return super().__call__(argv, stdin=stdin)


def test_refused_apply_is_degraded_then_retried_with_backoff(cluster_dir: Path) -> None:
    now = [100.0]
    runner = FailingRunner(fail=2)
    agent = Agent(
        node="n1", source=cluster_dir, runner=runner, clock=lambda: now[0], retry=1.0, resync=10.0
    )
    failed = agent.sync_once()
    assert failed.status == "failed" and "line 3 failed" in (failed.error or "")
    assert agent.desired is None and agent.ready()[0] is False
    assert agent.metrics.value("sekisho_agent_errors_total", {"stage": "apply"}) == 1
    assert agent._retry_at == 101.0
    assert agent.sync_once().status == "failed"
    assert agent._retry_at == 102.0, "the delay doubles"
    assert agent.sync_once().status == "applied"
    assert agent._retry_at is None and agent._failures == 0
    assert agent.ready() == (True, "")


def test_loop_survives_a_bug_and_notices_missed_changes(cluster_dir: Path, tmp_path: Path) -> None:
    calls = {"n": 0}

    def flaky(cluster: object, node: str, backend: str, prefix: str) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyError("a bug")
        from sekisho.agent.agent import full_renderer

        return full_renderer(cluster, node, backend, prefix)  # type: ignore[arg-type]

    agent = Agent(
        node="n1", source=cluster_dir, runner=FakeRunner(), renderer=flaky, resync=0.2, retry=0.05
    )
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    thread.start()
    try:
        wait_until(lambda: agent.generation >= 1)
        assert agent.generation == 1, "retried after the bug"
        assert agent.metrics.value("sekisho_agent_errors_total", {"stage": "internal"}) == 1
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    # The loop is stopped: a running one would reload on the unlink's inotify event, a
    # few ms later, and could clear what the test looks at before it looks.
    assert not agent.source.changed_since_load()
    (cluster_dir / "policies" / "p1.yaml").unlink()
    assert agent.source.changed_since_load()


def test_watcher_sees_a_configmap_style_symlink_swap(tmp_path: Path) -> None:
    root = tmp_path / "cm"
    (root / "..v1").mkdir(parents=True)
    (root / "..v1" / "p.yaml").write_text("a: 1\n")
    (root / "..data").symlink_to("..v1")
    (root / "p.yaml").symlink_to("..data/p.yaml")
    assert manifest_files(root) == [root / "p.yaml"], "the hidden ..data copy is not loaded twice"
    watcher = DirWatcher(root, debounce=0.02)
    try:
        (root / "..v2").mkdir()
        (root / "..v2" / "p.yaml").write_text("a: 2\n")
        (root / "..data_tmp").symlink_to("..v2")
        (root / "..data_tmp").rename(root / "..data")  # what the kubelet does
        assert watcher.wait(1.0), "the swap is a change"
    finally:
        watcher.close()
    assert (root / "p.yaml").read_text() == "a: 2\n"


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(
            ["agent", "--node", "n1", "--cleanup", "--prefix", "bad prefix!"], id="prefix"
        ),
        pytest.param(["agent", "--node", "n1"], id="no-source"),
        pytest.param(["agent", "--node", "n1", "--source", "/nonexistent"], id="missing-dir"),
    ],
)
def test_cli_usage_errors_exit_2_before_touching_anything(argv: list[str]) -> None:
    from sekisho.cli.main import main

    assert main(argv) == 2


class ScriptedWatcher(DirWatcher):
    """A watcher on a fake clock whose inotify events come from a script of (time, mask, name)."""

    def __init__(self, root: Path, script: list[tuple[float, int, str]], **kw: float) -> None:
        self.now = 0.0
        self.script = sorted(script)
        super().__init__(root, clock=lambda: self.now, **kw)
        self.wd = next(iter(self._dirs))

    def _read(self, timeout_ms: int) -> list[Event]:
        end = self.now + timeout_ms / 1000
        if not self.script or self.script[0][0] > end:
            self.now = end
            return []
        self.now = max(self.now, self.script[0][0])
        due = [e for e in self.script if e[0] <= self.now]
        self.script = self.script[len(due) :]
        return [Event(self.wd, mask, 0, name) for _, mask, name in due]


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[Callable[..., ScriptedWatcher]]:
    made: list[ScriptedWatcher] = []

    def make(script: list[tuple[float, int, str]], **kw: float) -> ScriptedWatcher:
        made.append(ScriptedWatcher(tmp_path, script, **kw))
        return made[-1]

    yield make
    for w in made:
        w.close()


WRITE = flags.CLOSE_WRITE
RENAME = flags.MOVED_TO


def test_debounce_fires_once_writes_settle_and_coalesces_a_burst(
    tmp_path: Path, scripted: Callable[..., ScriptedWatcher]
) -> None:
    # one write: reported one quiet period (5 ms) after it, not a fixed window later
    w = scripted([(1.0, RENAME, "a.yaml")], debounce=0.005)
    assert w.wait(2.0) == [str(tmp_path / "a.yaml")]
    assert w.now == pytest.approx(1.005)
    # a burst with gaps under the quiet period is one change, reported after its last event
    burst = [(1.0 + 0.003 * i, WRITE, f"f{i % 3}.yaml") for i in range(10)]
    w = scripted(burst, debounce=0.005)
    assert w.wait(2.0) == [str(tmp_path / f"f{i}.yaml") for i in range(3)]
    assert w.now == pytest.approx(1.027 + 0.005)
    assert w.wait(0.1) == []
    # a gap longer than the quiet period splits two changes
    w = scripted([(1.0, WRITE, "a.yaml"), (1.02, WRITE, "b.yaml")])
    assert w.wait(2.0) == [str(tmp_path / "a.yaml")]
    assert w.wait(2.0) == [str(tmp_path / "b.yaml")]
    # events that never stop: reported max_delay after the first one
    endless = [(1.0 + 0.002 * i, WRITE, "a.yaml") for i in range(1000)]
    w = scripted(endless, debounce=0.005, max_delay=0.25)
    assert w.wait(2.0) == [str(tmp_path / "a.yaml")]
    assert 1.25 <= w.now <= 1.26


def test_debounce_waits_for_a_created_file_to_be_closed(
    tmp_path: Path, scripted: Callable[..., ScriptedWatcher]
) -> None:
    # created at 1.0, written slowly, closed at 1.1: read only after the close
    script = [(1.0, flags.CREATE, "new.yaml"), (1.1, WRITE, "new.yaml")]
    w = scripted(script, debounce=0.005)
    assert w.wait(2.0) == [str(tmp_path / "new.yaml")]
    assert w.now == pytest.approx(1.105)
    # never closed (a symlink, a hard link): max_delay at the latest
    w = scripted([(1.0, flags.CREATE, "link.yaml")], max_delay=0.25)
    assert w.wait(2.0) == [str(tmp_path / "link.yaml")]
    assert 1.25 <= w.now <= 1.26
    # hidden temporaries are not waited for (write-to-temp-then-rename)
    script = [(1.0, flags.CREATE, ".x.yaml.tmp"), (1.001, RENAME, "x.yaml")]
    w = scripted(script, debounce=0.005)
    assert w.wait(2.0) == []  # only an ignored name so far
    assert w.wait(2.0) == [str(tmp_path / "x.yaml")]
    assert w.now == pytest.approx(1.006)


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_a_policy_edit_is_one_write_and_no_read_back(cluster_dir: Path, backend: str) -> None:
    runner = FakeRunner()
    agent = Agent(
        node="n1",
        source=cluster_dir,
        runner=runner,
        backend="nftables" if backend == "nftables" else "iptables",
        metrics=AgentMetrics(),
    )
    assert agent.sync_once().status == "applied"
    # iptables: one document per family (ip6tables has its own table); nftables: one script
    write = (
        ["iptables-restore --noflush -w 5", "ip6tables-restore --noflush -w 5"]
        if backend == "iptables"
        else ["nft -f -"]
    )
    for port in (81, 82, 83):  # a port edit: one chain rewritten, one command, nothing read
        runner.calls.clear()
        write_policy(cluster_dir, "p1", ingress_policy("p1", target="a0", peer="a1", port=port))
        assert agent.sync_once().status == "applied"
        assert runner.calls == write
    runner.calls.clear()  # a new peer set and a chain: iptables needs ipset restore first
    write_policy(cluster_dir, "p2", ingress_policy("p2", target="a1", peer="a2", port=8080))
    assert agent.sync_once().status == "applied"
    assert runner.calls == (["ipset restore", *write] if backend == "iptables" else write)
    runner.calls.clear()  # nothing changed: nothing run
    assert agent.sync_once().status == "unchanged"
    assert runner.calls == []


def test_fingerprint_is_equal_for_equal_rulesets_and_follows_every_change(
    cluster_dir: Path,
) -> None:
    import dataclasses

    from sekisho.agent import full_renderer, ruleset_fingerprint
    from sekisho.model import load_cluster
    from sekisho.render import IptablesRuleset, Ruleset

    def render(backend: str) -> Ruleset:
        cluster = load_cluster([str(p) for p in manifest_files(cluster_dir)])
        return full_renderer(cluster, "n1", backend, "sekisho")  # type: ignore[arg-type]

    for backend in ("iptables", "nftables"):
        before = ruleset_fingerprint(render(backend))
        assert ruleset_fingerprint(render(backend)) == before  # separately built, equal
        write_policy(cluster_dir, "p1", ingress_policy("p1", target="a0", peer="a1", port=81))
        after = ruleset_fingerprint(render(backend))
        assert after != before
        write_policy(cluster_dir, "p1", ingress_policy("p1", target="a0", peer="a1", port=80))
        assert ruleset_fingerprint(render(backend)) == before  # the memo never goes stale
    # the fingerprint tells the backends apart, and changes with a rule's text only
    ipt, nft = render("iptables"), render("nftables")
    assert ruleset_fingerprint(ipt) != ruleset_fingerprint(nft)
    assert isinstance(ipt, IptablesRuleset)
    name, rules = ipt.chains[-1]
    changed = dataclasses.replace(ipt, chains=(*ipt.chains[:-1], (name, (*rules[:-1], "x"))))
    assert ruleset_fingerprint(changed) != ruleset_fingerprint(ipt)
    name6, rules6 = ipt.chains6[-1]  # an IPv6 rule alone changes it too
    changed6 = dataclasses.replace(ipt, chains6=(*ipt.chains6[:-1], (name6, (*rules6[:-1], "x"))))
    assert ruleset_fingerprint(changed6) != ruleset_fingerprint(ipt)
