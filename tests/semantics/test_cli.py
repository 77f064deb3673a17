"""``sekisho trace`` and ``sekisho matrix`` on the seed scenario: exit codes and output shapes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from sekisho.cli.main import main
from sekisho.cli.matrix import MIXED, table_lines
from sekisho.semantics import compute_matrix

from .builders import NetworkPolicy, cluster, pod, sel

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed"
PART2 = [str(SEED / "cluster.yaml"), str(SEED / "part2")]
PART1 = [str(SEED / "cluster.yaml"), str(SEED / "part1")]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


TRACE_CASES = [
    pytest.param(
        PART2,
        ["--from", "dev/blue", "--to", "dev/red", "--port", "80"],
        0,
        "verdict: ALLOWED (policy)",
        id="allowed-exit-0",
    ),
    pytest.param(
        PART2,
        ["--from", "dev/blue", "--to", "dev/red", "--protocol", "ICMP"],
        1,
        "protocol ICMP is not TCP",
        id="denied-exit-1",
    ),
    pytest.param(
        PART2,
        ["--from", "dev/green", "--to", "dev/red", "--port", "80"],
        1,
        'do not satisfy app in {"blue"}',
        id="denied-peer-why",
    ),
    pytest.param(
        PART2,
        ["--from", "dev/red", "--to", "dev/green", "--port", "80"],
        0,
        "allowed by dev/allow-tcp-80-from-blue-to-green egress rule 0",
        id="egress-rule-named",
    ),
    pytest.param(
        PART2,
        ["--from", "dev/red", "--to", "dev/blue", "--port", "80"],
        1,
        "egress-denied",
        id="egress-denied",
    ),
    pytest.param(
        PART1,
        ["--from", "k8s-node1", "--to", "prod/blue", "--protocol", "icmp"],
        0,
        "same-node",
        id="finding-2-own-node",
    ),
    pytest.param(
        PART1,
        ["--from", "prod/blue", "--to", "8.8.8.8", "--protocol", "ICMP"],
        0,
        "replies of this connection are allowed",
        id="finding-3-stateful",
    ),
    pytest.param(
        PART2,
        ["--from", "10.244.3.8", "--to", "prod/green", "--port", "80"],
        0,
        "allowed by prod/allow-ingresscontroller-traffic",
        id="source-by-ip",
    ),
    pytest.param(
        PART2,
        ["--from", "dev/nope", "--to", "dev/red", "--port", "80"],
        2,
        "no pod or workload 'dev/nope'",
        id="unknown-pod-exit-2",
    ),
    pytest.param(
        PART2,
        ["--from", "dev/blue", "--to", "dev/red"],
        2,
        "needs --port",
        id="missing-port-exit-2",
    ),
    pytest.param(
        PART2,
        ["--from", "dev/blue", "--to", "dev/red", "--protocol", "ICMP", "--port", "80"],
        2,
        "ICMP",
        id="icmp-with-port-exit-2",
    ),
    pytest.param(
        [str(SEED / "missing.yaml")],
        ["--from", "a/b", "--to", "c/d", "--port", "80"],
        2,
        "missing.yaml",
        id="bad-path-exit-2",
    ),
]


@pytest.mark.parametrize(("paths", "args", "code", "text"), TRACE_CASES)
def test_trace(
    capsys: pytest.CaptureFixture[str], paths: list[str], args: list[str], code: int, text: str
) -> None:
    got, out, err = run(capsys, "trace", *paths, *args)
    assert got == code, out + err
    assert text in out + err


def test_trace_shows_policy_file_and_line(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(
        capsys, "trace", *PART2, "--from", "dev/blue", "--to", "dev/red", "--port", "80"
    )
    assert "allow-tcp-80-from-blue-to-green.yaml:" in out


def test_trace_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "trace",
        *PART2,
        "--from",
        "dev/green",
        "--to",
        "dev/red",
        "--port",
        "80",
        "-o",
        "json",
    )
    assert code == 1
    doc = json.loads(out)
    assert doc["allowed"] is False
    (v,) = doc["verdicts"]
    assert {k: v[k] for k in ("from", "to", "protocol", "port", "allowed", "reason")} == {
        "from": "dev/green",
        "to": "dev/red",
        "protocol": "TCP",
        "port": 80,
        "allowed": False,
        "reason": "ingress-denied",
    }
    assert v["egress"]["isolated"] is False
    assert v["ingress"]["policies"][0]["name"] == "dev/allow-tcp-80-from-blue-to-green"
    (rule,) = v["ingress"]["tiers"][0]["policies"][0]["rules"]
    assert rule["origin"] == "ingress rule 0 peer 0 TCP/80" and rule["matched"] is False
    assert rule["reasons"] == [
        'source dev/green: labels {app: green, environment: dev} do not satisfy app in {"blue"}'
    ]


def test_trace_workload_traces_every_pod(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "d.yaml").write_text(
        """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: nginx, ports: [{containerPort: 80}]}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: default}
spec: {podSelector: {}}
"""
    )
    code, out, _ = run(
        capsys,
        "trace",
        str(tmp_path),
        "--from",
        "default/web",
        "--to",
        "default/web",
        "--port",
        "80",
    )
    assert code == 1
    assert "3 of 9 pairs allowed" in out


def test_matrix_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "matrix", *PART2, "-o", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["pods"][0] == "dev/blue" and len(doc["pods"]) == 7
    assert [(p["port"], p["protocol"]) for p in doc["probes"]] == [(80, "TCP"), (None, "ICMP")]
    tcp = doc["probes"][0]
    blue, red = doc["pods"].index("dev/blue"), doc["pods"].index("dev/red")
    assert tcp["allowed"][blue][red] is True and tcp["allowed"][red][blue] is False
    assert tcp["egress"][red][blue] is False and tcp["ingress"][red][blue] is True


def test_matrix_csv_one_row_per_pair(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "matrix", *PART2, "--probe", "80/TCP", "--probe", "ICMP", "-o", "csv"
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 2 * 49
    row = next(
        r for r in rows if r["from"] == "dev/green" and r["to"] == "dev/red" and r["port"] == "80"
    )
    assert (row["ingress"], row["egress"], row["allowed"]) == ("false", "true", "false")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        pytest.param(["--probe", "80/TCP", "--port", "80"], 2, id="probe-and-port"),
        pytest.param(["--probe", "eighty"], 2, id="bad-probe"),
        pytest.param(["--protocol", "UDP"], 2, id="protocol-without-port"),
        pytest.param(["--port", "80", "-o", "md"], 0, id="markdown"),
        pytest.param(["--protocol", "ICMP"], 0, id="icmp-only"),
    ],
)
def test_matrix_flags(capsys: pytest.CaptureFixture[str], args: list[str], code: int) -> None:
    assert run(capsys, "matrix", *PART2, *args)[0] == code


def test_matrix_table_view(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    code, out, _ = run(capsys, "matrix", *PART2, "--port", "80")
    assert code == 0
    assert "\x1b[" not in out
    lines = out.splitlines()
    start = lines.index("TCP/80 allowed")
    # row 2 is dev/red: it may reach only dev/green (column 1) and itself
    assert lines[start + 5] == "2 | X . - X X X X"


def test_large_matrix_is_grouped_by_identity() -> None:
    pods = [pod(f"a/web-{i}", f"10.0.1.{i + 2}", "n1", app="web") for i in range(30)]
    pods += [pod(f"b/db-{i}", f"10.0.2.{i + 2}", "n2", app="db") for i in range(15)]
    c = cluster(pods, [NetworkPolicy("b", "deny", sel())])
    text = "\n".join(t.plain for t in table_lines(compute_matrix(c, [(5432, "TCP")])))
    assert "a {app=web} x30" in text and "b {app=db} x15" in text
    allowed = text.split("TCP/5432 allowed")[1].splitlines()
    # web -> web and db -> web allowed (web is not isolated); nothing reaches db (default deny)
    assert allowed[3:5] == ["0 | . X", "1 | . X"]
    assert MIXED not in "".join(allowed)
