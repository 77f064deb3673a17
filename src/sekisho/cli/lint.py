"""``sekisho lint``: pitfalls in valid policies, with stable codes, locations and fixes."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from sekisho.semantics.pitfalls import Finding

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_INDEX = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def field_line(file: str, object_line: int, path: str, cache: dict[str, list[Any]]) -> int:
    """The line of ``path`` (``spec.ingress[0].from[1]``) inside the object that starts at
    ``object_line`` of ``file``; the object's line when the file cannot be read again."""
    import yaml

    if not path or not object_line or file.startswith("<"):
        return object_line
    if file not in cache:
        try:
            text = Path(file).read_text(encoding="utf-8")
            cache[file] = list(yaml.compose_all(text, Loader=yaml.CSafeLoader))
        except (OSError, yaml.YAMLError):
            cache[file] = []
    node = _object_at(cache[file], object_line)
    if node is None:
        return object_line
    line = object_line
    for name, index in _INDEX.findall(path):
        if name and isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == name:
                    line, node = key.start_mark.line + 1, value
                    break
            else:
                return line
        elif index and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
            node = node.value[int(index)]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _object_at(docs: list[Any], line: int) -> Any:
    """The mapping node of the object starting at ``line`` (a document or a List item)."""
    import yaml

    for doc in docs:
        if doc is None:
            continue
        if isinstance(doc, yaml.MappingNode):
            for key, value in doc.value:
                if key.value == "items" and isinstance(value, yaml.SequenceNode):
                    for item in value.value:
                        if item.start_mark.line + 1 == line:
                            return item
            if doc.start_mark.line + 1 <= line <= doc.end_mark.line + 1:
                first = doc.value[0][0].start_mark.line + 1 if doc.value else 0
                if first == line or doc.start_mark.line + 1 == line:
                    return doc
    return None


def located(findings: list[Finding]) -> list[Finding]:
    """Findings with the line of their field (not only of their object)."""
    import dataclasses

    cache: dict[str, list[Any]] = {}
    out = [dataclasses.replace(f, line=field_line(f.file, f.line, f.path, cache)) for f in findings]
    return sorted(out, key=lambda f: (f.file, f.line, f.code, f.path, f.message))


def text_lines(findings: list[Finding], width: int = 80) -> list[str]:
    """Per finding: ``FILE:LINE: CODE KIND NAME FIELD`` (one line to grep), then what is
    wrong and the fix, wrapped to ``width`` columns."""
    import textwrap

    out: list[str] = []
    for f in findings:
        where = f"{f.file}:{f.line}" if f.line else f.file
        out.append(f"{where}: {f.code} {f.kind} {f.name}" + (f" {f.path}" if f.path else ""))
        for text, first in ((f.message, "  "), ("fix: " + f.hint, "  ")):
            out += textwrap.wrap(
                text,
                width,
                initial_indent=first,
                subsequent_indent="    ",
                break_long_words=False,
                break_on_hyphens=False,
            )
    return out


def sarif(findings: list[Finding]) -> dict[str, object]:
    from sekisho import __version__
    from sekisho.semantics.pitfalls import CODES

    levels = {"error": "error", "warning": "warning", "note": "note"}
    rules = [
        {
            "id": code,
            "name": name,
            "shortDescription": {"text": name.replace("-", " ")},
            "help": {"text": hint},
            "defaultConfiguration": {"level": levels[severity]},
        }
        for code, (name, severity, hint) in CODES.items()
    ]
    results = [
        {
            "ruleId": f.code,
            "level": levels[f.severity],
            "message": {"text": f"{f.kind} {f.name} {f.path}: {f.message}. Fix: {f.hint}"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.file},
                        "region": {"startLine": max(f.line, 1)},
                    },
                    "logicalLocations": [{"name": f"{f.kind} {f.name}", "kind": "object"}],
                }
            ],
        }
        for f in findings
    ]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "sekisho",
                        "version": __version__,
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }


@click.command("lint")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif"]),
    default="text",
    show_default=True,
)
@click.option(
    "--service-cidr",
    default="10.96.0.0/12",
    show_default=True,
    help="The cluster's service range (for SK007).",
)
@click.option("--only", multiple=True, metavar="CODE", help="Only these codes (or names).")
@click.option(
    "--fail-on",
    type=click.Choice(["warning", "note", "never"]),
    default="warning",
    show_default=True,
    help="Exit 1 when a finding of this severity or worse is found.",
)
def lint(
    paths: tuple[str, ...], fmt: str, service_cidr: str, only: tuple[str, ...], fail_on: str
) -> int:
    """Find the pitfalls policy authors hit in the valid manifests of PATH...

    \b
    SK001 egress-without-dns       SK006 ipblock-covers-pods
    SK002 policy-selects-nothing   SK007 ipblock-covers-services
    SK003 peer-selects-nothing     SK008 named-port-undeclared
    SK004 split-peer               SK009 shadowed-rule
    SK005 joined-peer              SK010 node-traffic-unfiltered (note)

    One line per finding (FILE:LINE: CODE KIND NAME FIELD: what) and its fix.
    Exit 0 clean, 1 findings at --fail-on or worse, 2 bad input.
    """
    from sekisho.cli.trace import load
    from sekisho.errors import UsageError
    from sekisho.semantics.pitfalls import CODES, lint_cluster

    try:
        cidr = ipaddress.ip_network(service_cidr)
    except ValueError as exc:
        raise UsageError(f"--service-cidr {service_cidr}: {exc}") from exc
    known = set(CODES) | {v[0] for v in CODES.values()}
    for code in only:
        if code not in known:
            raise UsageError(f"--only {code}: expected one of {', '.join(CODES)}")
    findings = located(lint_cluster(load(paths), service_cidr=cidr, only=only))
    if fmt == "json":
        click.echo(json.dumps({"findings": [f.to_json() for f in findings]}, indent=2))
    elif fmt == "sarif":
        click.echo(json.dumps(sarif(findings), indent=2))
    else:
        for line in text_lines(findings):
            click.echo(line)
        counts: dict[str, int] = {}
        for f in findings:
            counts[f.severity] = counts.get(f.severity, 0) + 1
        if findings:
            click.echo(", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items()))
        else:
            click.echo("ok: no findings")
    worst = {"warning": ("error", "warning"), "note": ("error", "warning", "note"), "never": ()}
    return 1 if any(f.severity in worst[fail_on] for f in findings) else 0
