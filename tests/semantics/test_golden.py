"""Whole ``sekisho trace`` and ``sekisho matrix`` outputs for the seed, compared with files.

Regenerate after an intended change with ``SEKISHO_UPDATE_GOLDEN=1 pytest tests/semantics``
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sekisho.cli.main import main

GOLDEN = Path(__file__).resolve().parent / "golden"
SEED = Path(__file__).resolve().parents[2] / "examples" / "seed"
ROOT = SEED.parent.parent


@pytest.mark.parametrize(
    ("name", "argv"),
    [
        pytest.param(
            "trace-blue-red-icmp",
            ["trace", "part2", "--from", "dev/blue", "--to", "dev/red", "--protocol", "ICMP"],
            id="trace-blue-red-icmp",
        ),
        pytest.param(
            "trace-green-red-80",
            ["trace", "part2", "--from", "dev/green", "--to", "dev/red", "--port", "80"],
            id="trace-green-red-80",
        ),
        pytest.param(
            "trace-red-green-80",
            ["trace", "part2", "--from", "dev/red", "--to", "dev/green", "--port", "80"],
            id="trace-red-green-80",
        ),
        pytest.param(
            "trace-dev-blue-prod-green-80",
            ["trace", "part2", "--from", "dev/blue", "--to", "prod/green", "--port", "80"],
            id="trace-dev-blue-prod-green-80",
        ),
        pytest.param(
            "trace-node-own-pod",
            ["trace", "part1", "--from", "k8s-node1", "--to", "prod/blue", "--port", "22"],
            id="trace-node-own-pod",
        ),
        pytest.param("matrix-part2", ["matrix", "part2"], id="matrix-part2"),
    ],
)
def test_golden(
    name: str, argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(ROOT)
    stage = argv[1]
    args = [argv[0], "examples/seed/cluster.yaml", f"examples/seed/{stage}", *argv[2:]]
    main(args)
    got = f"$ sekisho {' '.join(args)}\n" + capsys.readouterr().out
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("SEKISHO_UPDATE_GOLDEN"):
        path.write_text(got)
    assert got == path.read_text()
