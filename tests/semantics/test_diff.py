"""``sekisho diff``: pairs gained and lost, their causes, open connections, exit codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sekisho.cli.main import main
from sekisho.model.types import NetworkPolicy, Peer, PolicyPort, Rule
from sekisho.semantics.diff import diff_clusters, fold
from sekisho.semantics.probe import Service

from .builders import cluster, pod, sel

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed"
PART1 = [str(SEED / "cluster.yaml"), str(SEED / "part1")]
PART2 = [str(SEED / "cluster.yaml"), str(SEED / "part2")]

PODS = [
    pod("a/web", "10.0.0.1", "n1", app="web"),
    pod("a/db", "10.0.0.2", "n1", app="db"),
    pod("b/client", "10.0.1.1", "n2", app="client"),
]
DENY_DB = NetworkPolicy("a", "deny-db", sel(app="db"))
WEB_TO_DB = NetworkPolicy(
    "a",
    "web-to-db",
    sel(app="db"),
    ingress=(Rule(peers=(Peer(pod_selector=sel(app="web")),), ports=(PolicyPort("TCP", 80),)),),
)
TCP80 = [Service("TCP", 80)]


def pairs(changes: object) -> set[tuple[str, str]]:
    return {c.example for c in changes}  # type: ignore[attr-defined]


CASES = [
    pytest.param([], [], set(), set(), id="nothing-changes"),
    pytest.param(
        [],
        [DENY_DB],
        set(),
        {("a/web", "a/db"), ("b/client", "a/db")},
        id="default-deny-loses-both",
    ),
    pytest.param([DENY_DB], [DENY_DB, WEB_TO_DB], {("a/web", "a/db")}, set(), id="allow-gains-one"),
    pytest.param([WEB_TO_DB], [], {("b/client", "a/db")}, set(), id="removing-isolation-gains"),
]


@pytest.mark.parametrize(("old", "new", "gained", "lost"), CASES)
def test_pairs(
    old: list[NetworkPolicy],
    new: list[NetworkPolicy],
    gained: set[tuple[str, str]],
    lost: set[tuple[str, str]],
) -> None:
    d = diff_clusters(cluster(PODS, old), cluster(PODS, new), TCP80)
    (probe,) = d.probes
    assert pairs(probe.gained) == gained
    assert pairs(probe.lost) == lost
    assert d.changed == bool(gained or lost)


def test_cause_names_the_policy_and_rule() -> None:
    d = diff_clusters(cluster(PODS, [DENY_DB]), cluster(PODS, [DENY_DB, WEB_TO_DB]), TCP80)
    (g,) = d.probes[0].gained
    assert "allowed by a/web-to-db ingress rule 0" in g.cause
    d = diff_clusters(cluster(PODS, []), cluster(PODS, [DENY_DB]), TCP80)
    lost = d.probes[0].lost
    assert all("isolated by a/deny-db; no rule matches: denied" in g.cause for g in lost)
    (line,) = fold(lost)  # one cause, one destination: the sources fold into one line
    assert {g.name for g in line.sources} == {"a/web", "b/client"}
    assert "connections already open keep working" in d.probes[0].established
    assert d.policies_added == ("NetworkPolicy a/deny-db",)


def test_pods_only_on_one_side_are_listed_not_compared() -> None:
    extra = pod("b/new", "10.0.1.2", "n2", app="client")
    d = diff_clusters(cluster(PODS, []), cluster([*PODS, extra], []), TCP80)
    assert d.added_pods == ("b/new",)
    assert d.pods == 3
    assert not d.probes[0].gained and not d.probes[0].lost
    assert d.changed  # a new pod is a change


def test_same_effect_is_no_change(capsys: pytest.CaptureFixture[str]) -> None:
    # Two policies that say the same as one: the policies differ, who reaches whom does not.
    twice = NetworkPolicy("a", "web-to-db-2", WEB_TO_DB.pod_selector, ingress=WEB_TO_DB.ingress)
    d = diff_clusters(cluster(PODS, [WEB_TO_DB]), cluster(PODS, [WEB_TO_DB, twice]), TCP80)
    assert not d.changed and d.policies_added == ("NetworkPolicy a/web-to-db-2",)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_seed_part1_to_part2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "diff", *PART1, "--against", *PART2, "--probe", "80/TCP")
    assert code == 1
    assert "TCP/80: 0 pairs gained, 14 pairs lost" in out
    assert "isolated by dev/allow-tcp-80-from-blue-to-green" in out
    assert "established: connections already open keep working" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_seed_same_is_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "diff", *PART2, "--against", *PART2)
    assert code == 0
    assert "no change in who can reach whom" in out


def test_json_and_md(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "diff", *PART1, "--against", *PART2, "-o", "json")
    doc = json.loads(out)
    assert code == 1 and doc["changed"]
    tcp = next(p for p in doc["probes"] if p["protocol"] == "TCP")
    assert tcp["lost_pairs"] == 14 and tcp["established"]
    code, out = run(capsys, "diff", *PART1, "--against", *PART2, "-o", "md")
    assert out.startswith("### sekisho diff") and "| − |" in out


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["diff", *PART1], id="no-against"),
        pytest.param(["diff", *PART1, "--against"], id="nothing-after"),
        pytest.param(["diff", "--git", "main", *PART1], id="git-not-a-range"),
    ],
)
def test_bad_input_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 2


def test_git_revisions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    (tmp_path / "cluster.yaml").write_text((SEED / "cluster.yaml").read_text())
    pol = tmp_path / "policies"
    pol.mkdir()
    (pol / "p.yaml").write_text((SEED / "part1" / "allow-tcp-80.yaml").read_text())
    git("add", ".")
    git("commit", "-q", "-m", "one")
    (pol / "p.yaml").unlink()
    for f in (SEED / "part2").iterdir():
        (pol / f.name).write_text(f.read_text())
    git("add", "-A")
    git("commit", "-q", "-m", "two")
    code, out = run(
        capsys,
        "diff",
        "--git",
        "HEAD~1..HEAD",
        str(tmp_path / "cluster.yaml"),
        str(pol),
        "--probe",
        "80/TCP",
    )
    assert code == 1
    assert "TCP/80: 0 pairs gained, 14 pairs lost" in out


def test_staged_preview(capsys: pytest.CaptureFixture[str]) -> None:
    # examples/calico stages prod/lockdown: applying it would deny prod's pods to each other.
    args = [str(SEED / "cluster.yaml"), str(SEED.parent / "calico"), "--probe", "80/TCP"]
    code, out = run(capsys, "diff", "--staged", *args)
    assert code == 1
    assert "+ StagedNetworkPolicy prod/lockdown\n" in out
    assert "TCP/80: 0 pairs gained, 6 pairs lost" in out
    assert "denied by StagedNetworkPolicy prod/lockdown ingress" in out
    assert main(["diff", "--staged"]) == 2
