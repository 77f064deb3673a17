"""``sekisho matrix -o summary`` and the grouped table agree with the full pod-by-pod matrix.

The summary is expanded back to ordered pod pairs from its text alone (plus
the nodes of hostNetwork groups, which its legend names) and compared with
``compute_matrix``'s ``allowed`` table, off the diagonal, for every probe.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from sekisho.cli.main import main
from sekisho.cli.matrix import cell_marks, groups, summary_lines
from sekisho.model import cluster_from_objects
from sekisho.model.types import Cluster
from sekisho.semantics import Matrix, compute_matrix, default_probes

from .builders import NetworkPolicy, cluster, pod, sel
from .test_matrix_property import PROBES, clusters

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import generator

_GROUP = re.compile(
    r"^  (g\d+) (\S+) \{[^}]*\} \[[^\]]*\]( hostNetwork node=(\S+) .*?)? (\d+) pods?: (.*)$"
)
_PROBE = re.compile(r"^(\S+): (\d+) of (\d+) ordered pod pairs allowed")


def expand(text: str, matrix: Matrix) -> dict[str, np.ndarray]:
    """Probe name -> (n, n) allowed table rebuilt from the summary text (diagonal False)."""
    keys = {p.key: i for i, p in enumerate(matrix.pods)}
    node_of = {p.key: p.node for p in matrix.pods}
    hn = {p.key for p in matrix.pods if p.host_network}
    n = len(keys)
    members: dict[str, list[int]] = {}
    ns_groups: dict[str, list[str]] = {}
    host: dict[str, str] = {}
    tables: dict[str, np.ndarray] = {}
    totals: dict[str, int] = {}
    current = ""
    for line in text.splitlines():
        if m := _GROUP.match(line):
            name, ns, node, count, names = m[1], m[2], m[4], int(m[5]), m[6].split()
            assert len(names) == count
            members[name] = [keys[f"{ns}/{x}"] for x in names]
            ns_groups.setdefault(ns, []).append(name)
            if node is not None:
                host[name] = node
        elif m := _PROBE.match(line):
            current = m[1]
            tables[current] = np.zeros((n, n), dtype=bool)
            totals[current] = int(m[2])
            assert int(m[3]) == n * (n - 1)
        elif line.startswith("  same connections as "):
            tables[current] = tables[line.split()[-1]].copy()
        elif current and " -> " in line:
            left, right = line.strip().split(" -> ")

            def spell(words: str) -> list[str]:
                out: list[str] = []
                for w in words.split():
                    if w == "*":
                        out += list(members)
                    elif w.endswith("/*"):
                        out += ns_groups[w[:-2]]
                    else:
                        out.append(w)
                return out

            if right == "nothing":
                dst: list[str] = []
            elif right.startswith("* except "):
                gone = set(spell(right[len("* except ") :]))
                dst = [g for g in members if g not in gone]
            else:
                dst = spell(right)
            rows = [i for g in spell(left) for i in members[g]]
            cols = [j for g in dst for j in members[g]]
            tables[current][np.ix_(rows, cols)] = True
    # the legend's one exception: hostNetwork pods reach the pods of their own node
    for name, node in host.items():
        cols = [i for k, i in keys.items() if node_of[k] == node and k not in hn]
        for table in tables.values():
            table[np.ix_(members[name], cols)] = True
    for name, table in tables.items():
        np.fill_diagonal(table, False)
        assert int(table.sum()) == totals[name], name
    assert sorted(i for ms in members.values() for i in ms) == list(range(n))
    return tables


def check(matrix: Matrix) -> None:
    text = "\n".join(summary_lines(matrix))
    assert text == "\n".join(summary_lines(matrix))  # deterministic
    tables = expand(text, matrix)
    n = len(matrix.pods)
    off = ~np.eye(n, dtype=bool)
    for probe in matrix.probes:
        name = probe.protocol if probe.port is None else f"{probe.protocol}/{probe.port}"
        assert (tables[name] == (probe.allowed & off)).all(), name
        # the grouped table's marks come from the same identity-level counts
        for which in ("ingress", "egress", "allowed"):
            full = getattr(probe, which)
            counts = probe.pair_counts(which)
            assert probe.pair_total(which) == counts.sum() == (full & off).sum()
            for a in range(len(matrix.identities)):
                rows = np.flatnonzero(matrix.pod_identity == a)
                for b in range(len(matrix.identities)):
                    cols = np.flatnonzero(matrix.pod_identity == b)
                    block = full[np.ix_(rows, cols)] & off[np.ix_(rows, cols)]
                    assert counts[a, b] == block.sum()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_summary_expands_to_the_matrix_on_random_clusters(c: Cluster) -> None:
    check(compute_matrix(c, PROBES))


def test_summary_expands_to_the_matrix_on_a_generated_cluster() -> None:
    c = cluster_from_objects(generator.generate(120, replicas=3, seed=1))
    m = compute_matrix(c, default_probes(c))
    check(m)
    text = "\n".join(summary_lines(m))
    assert "/* ->" in text or "-> *" in text  # collapsed lines appear on a realistic cluster


def test_grouped_table_marks_match_the_pod_table() -> None:
    c = cluster_from_objects(generator.generate(120, replicas=3, seed=2))
    m = compute_matrix(c, default_probes(c))
    members = [ms for _, ms in groups(m.pods)]
    off = ~np.eye(len(m.pods), dtype=bool)
    for probe in m.probes:
        for which in ("ingress", "egress", "allowed"):
            table = getattr(probe, which) & off
            marks = cell_marks(probe, which, m.pod_identity, members)
            for a, rows in enumerate(members):
                for b, cols in enumerate(members):
                    block = table[np.ix_(rows, cols)]
                    pairs = len(rows) * len(cols) - (len(rows) if a == b else 0)
                    want = "-" if pairs == 0 else "." if block.sum() == pairs else "X"
                    if 0 < block.sum() < pairs:
                        want = "~"
                    assert marks[a][b] == want


def test_summary_reads_well_on_a_small_cluster() -> None:
    pods = [pod(f"a/web-{i}", f"10.0.1.{i + 2}", "n1", app="web") for i in range(3)]
    pods += [pod(f"b/db-{i}", f"10.0.2.{i + 2}", "n2", app="db") for i in range(2)]
    c = cluster(pods, [NetworkPolicy("b", "deny", sel())])
    lines = list(summary_lines(compute_matrix(c, [(5432, "TCP")])))
    assert lines[0] == "# 5 pods in 2 groups; 1 probe"
    # only what policy looks at is shown: no selector reads app, no rule names http
    assert "  g1 a {} [] 3 pods: web-0 web-1 web-2" in lines
    start = lines.index("TCP/5432: 12 of 20 ordered pod pairs allowed (60.0%), 8 denied")
    assert lines[start + 1 :] == ["  * -> g1"]


def test_summary_cli_on_the_seed(capsys: pytest.CaptureFixture[str]) -> None:
    seed = Path(__file__).resolve().parents[2] / "examples" / "seed"
    code = main(["matrix", str(seed / "cluster.yaml"), str(seed / "part2"), "-o", "summary"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "# 7 pods in 7 groups; 2 probes"
    start = lines.index("TCP/80: 28 of 42 ordered pod pairs allowed (66.7%), 14 denied")
    # dev/red (g3) may reach only dev/green (g2): the seed's part 2
    assert "  g3 -> g2" in lines[start:]
