"""Files in, raw objects out: discovery, YAML/JSON parsing, and field-path-to-line mapping.

JSON is parsed by orjson. YAML is parsed by a Rust parser (``yaml_rs``) where it
reads exactly what libyaml reads (:func:`sekisho.model.fastyaml.fast_documents`
decides, conservatively), otherwise by libyaml (``yaml.CSafeLoader``, through
:mod:`sekisho.model.libyaml`: PyYAML is imported only then), which also counts alias expansion the way the API server does. Line numbers cost a
second pass, so they are looked up only when there are problems: the file is
re-composed by libyaml (``yaml.compose_all``) and each problem's field path is
walked down the node tree to the line of the field itself.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sekisho.errors import Problem
from sekisho.model import fastyaml
from sekisho.model.fields import API_VERSIONS, CLUSTER_SCOPED
from sekisho.records import Record, set_field

if TYPE_CHECKING:
    import yaml

PathElem = str | int
FieldPath = tuple[PathElem, ...]

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

_NOT_JSON = object()


def format_path(path: FieldPath) -> str:
    """``("spec", "ingress", 0, "from")`` -> ``spec.ingress[0].from``."""
    out: list[str] = []
    for elem in path:
        if isinstance(elem, int):
            out.append(f"[{elem}]")
        elif out:
            out.append("." + elem)
        else:
            out.append(elem)
    return "".join(out)


class Loc(Record):
    """Where one object sits: its file, document and path inside the document."""

    __slots__ = ("base", "doc", "file", "line")

    file: str
    doc: int
    """Index of the YAML document in ``file``."""
    base: FieldPath
    """Path from the document root to the object (``("items", 3)`` inside a List)."""
    line: int
    """1-based line of the object's start; 0 when unknown."""

    def __init__(self, file: str, doc: int, base: FieldPath = (), line: int = 0) -> None:
        set_field(self, "file", file)
        set_field(self, "doc", doc)
        set_field(self, "base", base)
        set_field(self, "line", line)


class Issue(Record):
    """A problem before its line is known."""

    __slots__ = ("kind", "line", "loc", "message", "name", "path")

    loc: Loc
    kind: str
    name: str
    path: FieldPath
    message: str
    line: int
    """Set when the line is already known (syntax errors); otherwise found from ``path``."""

    def __init__(
        self, loc: Loc, kind: str, name: str, path: FieldPath, message: str, line: int = 0
    ) -> None:
        set_field(self, "loc", loc)
        set_field(self, "kind", kind)
        set_field(self, "name", name)
        set_field(self, "path", path)
        set_field(self, "message", message)
        set_field(self, "line", line)


class RawObject(Record):
    """One object as parsed, before validation."""

    __slots__ = ("data", "loc")

    loc: Loc
    data: Any

    def __init__(self, loc: Loc, data: Any) -> None:
        set_field(self, "loc", loc)
        set_field(self, "data", data)


class ReadResult(Record, frozen=False):
    """What reading some files gave: their objects, the problems found, their texts."""

    __slots__ = ("files", "issues", "objects", "texts")

    objects: list[RawObject]
    issues: list[Issue]
    texts: dict[str, str]
    """File text by display name, kept to find lines when there are problems."""
    files: int

    def __init__(
        self,
        objects: list[RawObject] | None = None,
        issues: list[Issue] | None = None,
        texts: dict[str, str] | None = None,
        files: int = 0,
    ) -> None:
        self.objects = [] if objects is None else objects
        self.issues = [] if issues is None else issues
        self.texts = {} if texts is None else texts
        self.files = files


def discover(paths: Sequence[str | Path]) -> tuple[list[tuple[str, Path | None]], list[Issue]]:
    """Expand files, directories and ``-`` (stdin, as ``None``) into ``(display name, path)``.

    A directory is read recursively: ``*.yaml``, ``*.yml`` and ``*.json`` files in
    sorted order, leaving out hidden files and directories (``.git``, ``.github``...).
    A file reached twice (given twice, or also inside a given directory) is read once.
    """
    out: list[tuple[str, Path | None]] = []
    issues: list[Issue] = []
    seen: set[Path] = set()

    def add(display: str, path: Path) -> None:
        real = path.resolve()
        if real not in seen:
            seen.add(real)
            out.append((display, path))

    for given in paths:
        text = str(given)
        if text == "-":
            out.append(("<stdin>", None))
            continue
        path = Path(given)
        if path.is_dir():
            found = sorted(
                (
                    p
                    for p in path.rglob("*")
                    if p.suffix in MANIFEST_SUFFIXES
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)
                    and p.is_file()
                ),
                key=lambda p: p.relative_to(path).parts,
            )
            for p in found:
                add(os.path.join(text, str(p.relative_to(path))), p)
        elif path.is_file():
            add(text, path)
        elif path.exists():
            issues.append(Issue(Loc(text, 0), "", "", (), "not a regular file or directory"))
        else:
            issues.append(Issue(Loc(text, 0), "", "", (), "no such file or directory"))
    return out, issues


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection while loading.

    Loading allocates hundreds of thousands of dicts and lists that all stay alive,
    so every collection the allocations trigger walks a growing heap and finds
    nothing: in a process that already holds a large heap (the agent, a bench) that
    doubled the load time. The loader makes no reference cycles worth collecting.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_paths(paths: Sequence[str | Path], stdin: TextIO | None = None) -> ReadResult:
    """Read and parse every manifest file (no validation yet)."""
    with paused_gc():
        return _read_paths(paths, stdin)


def _read_paths(paths: Sequence[str | Path], stdin: TextIO | None) -> ReadResult:
    result = ReadResult()
    found, result.issues = discover(paths)
    read_found(found, stdin, result)
    return result


def read_found(
    found: Sequence[tuple[str, Path | None]], stdin: TextIO | None, result: ReadResult
) -> None:
    """Read and parse the files :func:`discover` found, in order, into ``result``."""
    for display, path in found:
        try:
            if path is None:
                if stdin is None:
                    import sys

                    stdin = sys.stdin
                text = stdin.read()
            else:
                raw = path.read_bytes()
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    result.files += 1
                    result.issues.append(_not_utf8(display, raw, exc))
                    continue
        except (OSError, UnicodeDecodeError) as exc:
            result.issues.append(Issue(Loc(display, 0), "", "", (), f"cannot read: {exc}"))
            continue
        result.files += 1
        result.texts[display] = text
        read_text(text, display, result, is_json=display.endswith(".json"))


def _not_utf8(file: str, raw: bytes, exc: UnicodeDecodeError) -> Issue:
    """Binary or mis-encoded input: where its first byte that is not UTF-8 sits."""
    line = raw.count(b"\n", 0, exc.start) + 1
    column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
    return Issue(
        Loc(file, 0),
        "",
        "",
        (),
        f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at column {column} cannot be decoded "
        "(manifests are UTF-8 YAML or JSON)",
        line,
    )


def _looks_like_json(text: str) -> bool:
    stripped = text.lstrip()
    return stripped.startswith("{") or stripped.startswith("[")


def read_text(
    text: str, file: str, into: ReadResult, *, is_json: bool = False, fast: bool = True
) -> None:
    """Parse one file's text into raw objects (one per document; List items unpacked).

    JSON goes through orjson; YAML through the Rust parser where it reads what
    libyaml reads (:func:`~sekisho.model.fastyaml.fast_documents`), otherwise (or
    with ``fast=False``) through libyaml.
    """
    if is_json or _looks_like_json(text):
        import orjson  # for JSON only: it imports dataclasses, json, uuid... (start-up)

        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            import json  # on this path only (its decoder's regexes are built at import)

            try:  # orjson refuses some JSON the standard parser reads (integers past 64 bits)
                data = json.loads(text)
            except (ValueError, RecursionError):
                data = _NOT_JSON
        # Not JSON after all (or YAML flow style, or too deep): the YAML parser reports it.
        if data is not _NOT_JSON:
            _add_document(data, file, 0, 1, None, into)
            return
    anchors = "&" in text  # no anchor, no alias: nothing to count
    if fast and not anchors:
        docs = fastyaml.fast_documents(text)
        if docs is not None:
            for doc, (line, data) in enumerate(docs):
                _add_document(data, file, doc, line, None, into)
            return
    # PyYAML is loaded only here (and to find lines when there are problems).
    import yaml

    from sekisho.model import libyaml

    loader = libyaml.Loader(text)
    doc = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            if anchors:
                try:
                    libyaml.check_aliases(node)
                except libyaml.AliasError as exc:
                    into.issues.append(
                        Issue(
                            Loc(file, doc),
                            "",
                            "",
                            (),
                            f"YAML error: {exc.message} (column {exc.column})",
                            exc.line,
                        )
                    )
                    doc += 1
                    continue
            duplicates: list[yaml.Node] = []
            data = libyaml.construct(loader, node, duplicates)
            item_lines: list[int] | None = None
            if isinstance(data, dict) and isinstance(data.get("items"), list):
                item_lines = _item_lines(node)
            _add_document(data, file, doc, node.start_mark.line + 1, item_lines, into)
            for key_node in duplicates:
                _duplicate_key(node, key_node, data, file, doc, into)
            doc += 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        col = mark.column + 1 if mark is not None else 0
        what = exc.problem or exc.context or "invalid YAML"
        into.issues.append(
            Issue(Loc(file, doc), "", "", (), f"YAML syntax error: {what} (column {col})", line)
        )
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (binary input)
        pos = exc.position
        line = text.count("\n", 0, pos) + 1
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        what = f"unacceptable character #x{exc.character:04x}: {exc.reason}"
        if isinstance(exc.character, bytes):
            what = f"unacceptable byte #x{exc.character[0]:02x}: {exc.reason}"
        into.issues.append(
            Issue(Loc(file, doc), "", "", (), f"YAML error: {what} (column {col})", line)
        )
    except yaml.YAMLError as exc:
        into.issues.append(Issue(Loc(file, doc), "", "", (), f"YAML error: {exc}"))
    finally:
        loader.dispose()


def _duplicate_key(
    root: yaml.Node, key_node: yaml.Node, data: Any, file: str, doc: int, into: ReadResult
) -> None:
    """A key given twice in one mapping: the API server's strict decoding rejects it."""
    from sekisho.model import libyaml

    path = libyaml.path_to(root, key_node) or ()
    base: FieldPath = ()
    obj = data
    if (
        len(path) > 2
        and path[0] == "items"
        and isinstance(path[1], int)
        and isinstance(data, dict)
        and isinstance(data.get("items"), list)
    ):
        index = path[1]
        base, path = path[:2], path[2:]
        obj = data["items"][index]
    kind = obj.get("kind") if isinstance(obj, dict) else None
    kind = kind if isinstance(kind, str) else ""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    ns = meta.get("namespace") if isinstance(meta, dict) else None
    if not ns and kind in API_VERSIONS and kind not in CLUSTER_SCOPED:
        ns = "default"
    shown = f"{ns}/{name}" if isinstance(ns, str) and isinstance(name, str) else name
    into.issues.append(
        Issue(
            Loc(file, doc, base),
            kind if isinstance(kind, str) else "",
            shown if isinstance(shown, str) else "",
            path,
            f'duplicate field "{path[-1] if path else key_node.value}" (the last one would win)',
            key_node.start_mark.line + 1,
        )
    )


def _item_lines(node: yaml.Node) -> list[int] | None:
    import yaml

    if not isinstance(node, yaml.MappingNode):
        return None
    for key, value in node.value:
        if key.value == "items" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return None


def _add_document(
    data: Any, file: str, doc: int, line: int, item_lines: list[int] | None, into: ReadResult
) -> None:
    if data is None:
        return  # an empty document
    if not isinstance(data, dict):
        into.issues.append(
            Issue(
                Loc(file, doc, (), line),
                "",
                "",
                (),
                f"expected a Kubernetes object (a mapping with apiVersion and kind), got {describe(data)}",
            )
        )
        return
    kind = data.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and "items" in data:
        items = data["items"]
        if items is None:
            return
        if not isinstance(items, list):
            into.issues.append(
                Issue(Loc(file, doc, (), line), kind, "", ("items",), "expected a list of objects")
            )
            return
        extra = sorted(set(data) - {"apiVersion", "kind", "metadata", "items"})
        for name in extra:
            into.issues.append(
                Issue(Loc(file, doc, (), line), kind, "", (name,), f'unknown field "{name}"')
            )
        # A typed list as a REST call returns it (PodList, NetworkPolicyList: what
        # `kubectl get --raw` prints) leaves kind and apiVersion out of its items:
        # they are the list's kind without "List" and the list's apiVersion.
        item_kind = kind[: -len("List")] if kind != "List" else None
        list_version = data.get("apiVersion")
        for i, item in enumerate(items):
            item_line = item_lines[i] if item_lines is not None and i < len(item_lines) else 0
            loc = Loc(file, doc, ("items", i), item_line)
            if isinstance(item, dict):
                if item_kind and "kind" not in item:
                    item = {"kind": item_kind, **item}
                    if "apiVersion" not in item and isinstance(list_version, str):
                        item["apiVersion"] = list_version
                into.objects.append(RawObject(loc, item))
            elif item is not None:
                into.issues.append(
                    Issue(loc, "", "", (), f"expected a Kubernetes object, got {describe(item)}")
                )
        return
    into.objects.append(RawObject(Loc(file, doc, (), line), data))


def describe(value: Any) -> str:
    """How a wrong value is named in messages: ``a list``, ``the string "x"``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f'the string "{value}"'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# --- lines, found only when there are problems ---------------------------------------------


def _compose(text: str) -> list[yaml.Node]:
    import yaml

    nodes: list[yaml.Node] = []
    try:
        for node in yaml.compose_all(text, Loader=yaml.CSafeLoader):
            nodes.append(node)
    except yaml.YAMLError:
        pass  # lines of documents after a syntax error stay unknown
    return nodes


def _line_of(node: yaml.Node | None, path: FieldPath) -> int:
    """The line of the field at ``path`` (of its key for a mapping field); deepest match wins."""
    if node is None:
        return 0
    import yaml

    line = node.start_mark.line + 1
    for elem in path:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(elem):
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(elem, int):
            if elem >= len(node.value):
                return line
            node = node.value[elem]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def resolve(issues: Sequence[Issue], texts: Mapping[str, str]) -> list[Problem]:
    """Turn issues into problems with the line of each field (composing only files with issues)."""
    composed: dict[str, list[yaml.Node]] = {}
    problems: list[Problem] = []
    file_order: dict[str, int] = {}
    for issue in issues:
        line = issue.line
        loc = issue.loc
        if not line:
            text = texts.get(loc.file)
            if text is not None and not _looks_like_json_unindentable(text):
                nodes = composed.get(loc.file)
                if nodes is None:
                    nodes = composed[loc.file] = _compose(text)
                node = nodes[loc.doc] if loc.doc < len(nodes) else None
                line = _line_of(node, loc.base + issue.path)
            line = line or loc.line
        file_order.setdefault(loc.file, len(file_order))
        problems.append(
            Problem(
                file=loc.file,
                line=line,
                kind=issue.kind,
                name=issue.name,
                path=format_path(issue.path),
                message=issue.message.replace("\n", "\\n"),  # one problem, one line
            )
        )
    problems.sort(key=lambda p: (file_order[p.file], p.line))
    return problems


def _looks_like_json_unindentable(text: str) -> bool:
    """JSON indented with tabs does not compose as YAML; its lines stay unknown."""
    return _looks_like_json(text) and "\t" in text


def iter_objects(
    objects: Iterator[Mapping[str, Any]] | Sequence[Mapping[str, Any]], source: str
) -> ReadResult:
    """Raw objects from dicts built in code (no text, so no lines)."""
    result = ReadResult()
    for i, obj in enumerate(objects):
        _add_document(obj if isinstance(obj, dict) else dict(obj), source, i, 0, None, result)
    return result
