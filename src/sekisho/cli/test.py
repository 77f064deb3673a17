"""``sekisho test``: check expectation files against the policies, offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

import click

if TYPE_CHECKING:
    from sekisho.semantics.expect import ExpectFile, Outcome

PER_CASE = 10
"""Failing pairs printed per expectation; the rest are counted."""


def read_expectations(path: str) -> ExpectFile:
    from sekisho.errors import UsageError
    from sekisho.semantics.expect import parse_expectations

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from exc
    return parse_expectations(text, path)


def failure_lines(outcomes: list[Outcome]) -> list[str]:
    """One line per failing pair (at most :data:`PER_CASE` per expectation), then the totals."""
    out: list[str] = []
    checks = failed = 0
    for o in outcomes:
        shown: dict[str, int] = {}
        hidden: dict[str, int] = {}
        for f in o.failures:
            n = shown.get(f.check.what, 0)
            if n < PER_CASE:
                out.append(str(f))
                shown[f.check.what] = n + 1
            else:
                hidden[f.check.what] = hidden.get(f.check.what, 0) + 1
        for what, n in hidden.items():
            out.append(f"{o.file}: {what}: and {n} more failing pairs")
        checks += len(o.checks)
        failed += len(o.failures)
    cases = sum(len(o.cases) for o in outcomes)
    bad = sum(1 for o in outcomes for _, _, b in o.cases if b)
    verdict = "FAIL" if failed else "ok"
    out.append(
        f"{verdict}: {cases - bad} of {cases} expectations hold "
        f"({checks - failed} of {checks} pairs)"
    )
    return out


def junit_xml(outcomes: list[Outcome], suite: str = "sekisho") -> bytes:
    """JUnit XML: one test case per expectation or snapshot, its failing pairs as the failure."""
    root = ET.Element("testsuites", name=suite)
    for o in outcomes:
        failures_of: dict[str, list[str]] = {}
        for f in o.failures:
            failures_of.setdefault(f.check.what, []).append(str(f))
        ts = ET.SubElement(
            root,
            "testsuite",
            name=o.file,
            tests=str(len(o.cases)),
            failures=str(sum(1 for _, _, b in o.cases if b)),
            errors="0",
        )
        for name, pairs, bad in o.cases:
            tc = ET.SubElement(ts, "testcase", classname=o.file, name=name)
            if bad:
                fail = ET.SubElement(
                    tc, "failure", message=f"{bad} of {pairs} pairs differ", type="expectation"
                )
                fail.text = "\n".join(failures_of.get(name, []))
    out: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return out


@click.command("test")
@click.argument("expect_file", metavar="EXPECT.yaml")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--junit", "junit", default=None, metavar="FILE", help="Also write JUnit XML to FILE."
)
@click.option(
    "--snapshot",
    "snapshots",
    multiple=True,
    metavar="PORT/PROTO",
    help="Print a snapshot of the current matrix for this probe (YAML to paste) and exit.",
)
@click.option(
    "-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def test(
    expect_file: str,
    paths: tuple[str, ...],
    junit: str | None,
    snapshots: tuple[str, ...],
    output: str,
) -> int:
    """Check the expectations of EXPECT.yaml against the policies in PATH...

    One line per failing pair: where it is written, the pair and probe, what was
    expected and what the policies do, and the side, policy and rule that
    decide. Exit 0 when every expectation holds, 1 when one fails, 2 on bad
    input. See the README for the file's form; --snapshot 80/TCP prints a
    whole-matrix snapshot to keep in it.
    """
    import yaml

    from sekisho.cli.trace import load
    from sekisho.semantics.expect import run_checks, snapshot_of
    from sekisho.semantics.probe import parse_service

    if snapshots:
        cluster = load((expect_file, *paths))
        docs = []
        for text in snapshots:
            for svc in parse_service(text):
                docs.append({"probe": str(svc), "allowed": snapshot_of(cluster, svc)})
        click.echo(
            yaml.safe_dump(
                {"snapshots": docs}, sort_keys=False, width=100, default_flow_style=None
            ),
            nl=False,
        )
        return 0
    spec = read_expectations(expect_file)
    cluster = load(paths)
    outcome = run_checks(cluster, spec)
    if junit is not None:
        Path(junit).write_bytes(junit_xml([outcome]))
    if output == "json":
        doc = {
            "ok": outcome.ok,
            "pairs": len(outcome.checks),
            "failures": [
                {
                    "file": f.check.file,
                    "line": f.check.line,
                    "expectation": f.check.what,
                    "from": f.check.flow.src.label,
                    "to": f.check.flow.dst.label,
                    "probe": f.check.flow.service,
                    "expected": "allow" if f.check.expect else "deny",
                    "allowed": f.observed.allowed,
                    "decided_by": f.decision,
                }
                for f in outcome.failures
            ],
            "cases": [{"name": n, "pairs": p, "failed": b} for n, p, b in outcome.cases],
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        for line in failure_lines([outcome]):
            click.echo(line)
    return 0 if outcome.ok else 1
