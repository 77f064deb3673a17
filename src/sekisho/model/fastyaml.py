"""libyaml parsing with a lean Python side: memoized scalar resolution and a direct constructor.

With ``yaml.CSafeLoader`` the parser and composer run in C, but every scalar is
resolved by a Python regex loop and every node is built by PyYAML's generic
constructor. Manifests repeat the same keys and values thousands of times, and
use only plain maps, lists, strings, integers, booleans and nulls, so:

- :class:`Loader` memoizes the tag of each plain scalar by its text;
- :func:`construct` builds dicts, lists and the common scalars directly, and hands
  anything else (floats, timestamps, merge keys ``<<``, explicit tags) to PyYAML's
  own constructor, so the result is the same as ``yaml.load`` with ``CSafeLoader``;
- duplicate keys in a mapping, which PyYAML silently collapses (the last wins) but
  the API server rejects, are collected as ``(key node, path)`` so they can be reported.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
import yaml_rs
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
BOOL = "tag:yaml.org,2002:bool"
NULL = "tag:yaml.org,2002:null"
MAP = "tag:yaml.org,2002:map"
SEQ = "tag:yaml.org,2002:seq"
MERGE = "tag:yaml.org,2002:merge"

_TRUE = frozenset({"yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"})

_RESOLVED: dict[str, str] = {}
"""Tag of each plain scalar seen so far (bounded; a plain scalar's tag depends only on its text)."""
_RESOLVED_MAX = 200_000


class Loader(yaml.CSafeLoader):
    """``CSafeLoader`` whose scalar resolution is memoized."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is ScalarNode:
            if not implicit[0]:
                return STR  # quoted: always a string
            tag = _RESOLVED.get(value)
            if tag is None:
                tag = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
                if len(_RESOLVED) < _RESOLVED_MAX:
                    _RESOLVED[value] = tag
            return tag
        return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]


class _Fallback(Exception):
    """A node the direct constructor does not handle: build the document the slow way."""


def construct(loader: yaml.CSafeLoader, node: Node, duplicates: list[Node]) -> Any:
    """The Python value of a document node, as ``loader.construct_document`` would give."""
    try:
        return _build(loader, node, duplicates)
    except (_Fallback, RecursionError):
        del duplicates[:]
        return loader.construct_document(node)


def _build(loader: yaml.CSafeLoader, node: Node, duplicates: list[Node]) -> Any:
    cls = node.__class__
    if cls is ScalarNode:
        tag = node.tag
        value: str = node.value
        if tag == STR:
            return value
        if tag == INT and value.isdigit() and (value[0] != "0" or value == "0"):
            return int(value)
        if tag == NULL:
            return None
        if tag == BOOL:
            return value in _TRUE
        return loader.construct_object(node, deep=True)
    if cls is MappingNode:
        if node.tag != MAP:
            raise _Fallback
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE:
                raise _Fallback
            key = _build(loader, key_node, duplicates)
            try:
                if key in out:
                    duplicates.append(key_node)
            except TypeError:
                raise _Fallback from None  # an unhashable key: PyYAML reports it
            out[key] = _build(loader, value_node, duplicates)
        return out
    if cls is SequenceNode:
        if node.tag != SEQ:
            raise _Fallback
        return [_build(loader, item, duplicates) for item in node.value]
    raise _Fallback


def path_to(root: Node, target: Node) -> tuple[str | int, ...] | None:
    """The field path from ``root`` to the key node ``target`` (used only for rare problems)."""
    stack: list[tuple[Node, tuple[str | int, ...]]] = [(root, ())]
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for key, value in node.value:
                key_path = (*path, str(key.value))
                if key is target:
                    return key_path
                stack.append((value, key_path))
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                stack.append((item, (*path, i)))
    return None


# --- hostile input: alias expansion ("billion laughs") ---------------------------------------

ALIAS_RATIO_LOW = 400_000
"""Up to this many decoded nodes, 99% of them may come from alias expansion."""
ALIAS_RATIO_HIGH = 4_000_000
"""From this many on, 10%; in between the allowance falls linearly."""


def allowed_alias_ratio(decoded: int) -> float:
    """The share of a document's decoded nodes that may come from aliases.

    The API server decodes YAML with go-yaml, which stops a document whose
    decoding is mostly alias expansion with "document contains excessive
    aliasing" (the fix of CVE-2019-11253, "billion laughs"): it counts every node
    decoded and every node decoded inside an alias, and fails once more than 100
    nodes came from aliases, more than 1,000 were decoded, and the alias share
    exceeds 99% (up to 400,000 decoded nodes), falling linearly to 10% (from
    4,000,000 on). sekisho counts the same way, so a document the API server
    takes is read and one it refuses is refused, within milliseconds.
    """
    if decoded <= ALIAS_RATIO_LOW:
        return 0.99
    if decoded >= ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (decoded - ALIAS_RATIO_LOW) / (ALIAS_RATIO_HIGH - ALIAS_RATIO_LOW)


class AliasError(Exception):
    """A document whose aliases the API server would refuse to expand."""

    def __init__(self, message: str, node: Node) -> None:
        super().__init__(message)
        self.message = message
        self.line = node.start_mark.line + 1
        self.column = node.start_mark.column + 1


def check_aliases(root: Node) -> None:
    """Raise :class:`AliasError` when expanding the aliases of ``root`` is excessive.

    Walks the node graph in document order as a decoder would, counting an alias
    as a node and the nodes of its target as decoded inside an alias, and stops
    at the first node past the limit of :func:`allowed_alias_ratio`, so the walk
    costs at most about a hundred times the document's own nodes. An anchor whose
    value contains an alias of itself (which libyaml composes into a cycle) is
    refused as go-yaml refuses it.
    """
    decoded = from_aliases = 0
    seen: set[int] = set()
    open_nodes: set[int] = set()
    # (node, inside an alias, leaving): the leaving entry closes a node's subtree.
    stack: list[tuple[Node, Node | None, bool]] = [(root, None, False)]
    while stack:
        node, alias_of, leaving = stack.pop()
        key = id(node)
        if leaving:
            open_nodes.discard(key)
            continue
        decoded += 1  # this node, or the alias node that leads to it
        if alias_of is not None:
            from_aliases += 1
        if key in seen:  # a second visit of a node is an alias of its anchor
            if key in open_nodes:
                raise AliasError("an anchor's value contains an alias of itself", node)
            if alias_of is None:
                alias_of = node
            decoded += 1  # the target, decoded inside the alias
            from_aliases += 1
        seen.add(key)
        if alias_of is not None and (
            from_aliases > 100
            and decoded > 1000
            and from_aliases / decoded > allowed_alias_ratio(decoded)
        ):
            raise AliasError(
                f"excessive aliasing: {from_aliases:,} of the first {decoded:,} nodes "
                "come from expanding aliases of the anchor on this line (the API server "
                'refuses such a document: "document contains excessive aliasing")',
                alias_of,
            )
        cls = node.__class__
        if cls is ScalarNode:
            continue
        open_nodes.add(key)
        stack.append((node, alias_of, True))
        if cls is MappingNode:
            for key_node, value_node in reversed(node.value):
                stack.append((value_node, alias_of, False))
                stack.append((key_node, alias_of, False))
        else:
            for item in reversed(node.value):
                stack.append((item, alias_of, False))


# --- the fast path: a Rust parser where it reads exactly what libyaml reads -----------------

_LEADING_ZERO = re.compile(r"(?<![\w.:/'\"-])[-+]?0(?:[0-9_]+|[oO][0-7_]+)(?![\w.:-])")
"""A number with a leading zero: 0755 is 493 in YAML 1.1 (octal) and 755 in 1.2."""
_ZERO = re.compile(r"0[0-9_oO]")
_INDICATORS = (
    ("?", (" ? ", "\n? ", "- ? ")),
    (" :", (" : ", " :\n")),
    ("\n:", ("\n: ", "\n:\n")),
    ("<", ("<<",)),
    ("%", ("\n%",)),
    ("\n...", ("\n...",)),
)
"""Explicit keys and values, merge keys, directives and document ends: left to libyaml;
grouped by a shorter text each contains, searched first (rare in manifests)."""
_TYPED_IN_1_1 = frozenset(
    {"yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF", "=", "<<"}
)
"""Strings for YAML 1.2 that YAML 1.1 reads as booleans (or as the value and merge keys)."""
_DIGITS_OR_SIGN = frozenset("0123456789+-")


def _text_agrees(text: str) -> bool:
    """No anchor, tag, directive, explicit indicator, tab, control character or
    leading-zero number: nothing the two parsers could read differently in the text."""
    if "&" in text or "!" in text or text.startswith(("%", "...", "? ", ": ")):
        return False
    for guard, indicators in _INDICATORS:
        if guard in text and any(indicator in text for indicator in indicators):
            return False
    # Flow collections other than the empty {} and [] are left to libyaml: the two
    # parsers part on odd flow content (an indicator starting a scalar, empty keys).
    if text.count("{") != text.count("{}") or text.count("[") != text.count("[]"):
        return False
    if not text.replace("\n", "").isprintable():  # tabs, CR, control, BOM, line separators
        return False
    # Scan for a zero before a digit or "o" (fast, a few thousand hits a megabyte: 8080,
    # 10.0.0.1), then check each hit as a whole token.
    for hit in _ZERO.finditer(text):
        at = hit.start()
        if _LEADING_ZERO.match(text, at) or (
            at and text[at - 1] in "+-" and _LEADING_ZERO.match(text, at - 1)
        ):
            return False
    return True


def _values_agree(root: Any) -> bool:
    """No value or key the two parsers may type differently: a float (1e3 is a string
    for YAML 1.1), a 1.1 boolean word, a sexagesimal-looking string (1:30 is 90)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if type(node) is dict:
            for key in node:
                if type(key) is str:
                    if key in _TYPED_IN_1_1 or (":" in key and key[:1] in _DIGITS_OR_SIGN):
                        return False
                elif type(key) is float:
                    return False
            children: Any = node.values()
        else:
            children = node
        for child in children:
            kind = type(child)
            if kind is str:
                if child in _TYPED_IN_1_1 or (":" in child and child[:1] in _DIGITS_OR_SIGN):
                    return False
            elif kind is dict or kind is list:
                stack.append(child)
            elif kind is float:
                return False
    return True


_MARKER = re.compile(r"^---(?=[ \t\r\n]|$)", re.MULTILINE)
_CONTENT = re.compile(r"^[ \t]*[^\s#]", re.MULTILINE)


def fast_documents(text: str) -> list[tuple[int, Any]] | None:
    """``(line, value)`` of each document, as libyaml + :func:`construct` would give them,
    or None when this text must go the libyaml way.

    ``yaml_rs`` (a Rust YAML parser) builds the Python values several times faster
    than libyaml's node tree. It reads YAML 1.2 where PyYAML (and the API server's
    go-yaml) read YAML 1.1, so a text in which a scalar could be read differently
    (``yes``, ``0755``, ``1:30``, ``1e3``: any float, any 1.1 boolean word, any
    leading-zero number, quoted or not), or that uses anchors, tags, merge keys,
    directives, explicit keys, flow collections (but ``{}`` and ``[]``), tabs or unusual
    characters, is left to libyaml, and so is
    anything the Rust parser refuses (syntax errors and duplicate keys, which the
    libyaml path locates), a document that is not a mapping, and a ``List``
    (whose items' lines libyaml gives). The line of each document is its first
    content line, as libyaml marks it. A test holds both paths equal on every
    manifest of the repository and on random mutations of them.
    """
    if not _text_agrees(text):
        return None
    markers = [0] if _MARKER.match(text) else []
    at = text.find("\n---")
    while at >= 0:
        if _MARKER.match(text, at + 1):
            markers.append(at + 1)
        at = text.find("\n---", at + 4)
    starts = list(markers)
    first = _CONTENT.search(text, 0, markers[0] if markers else len(text))
    if first is not None:
        starts.insert(0, 0)
    try:
        loaded = yaml_rs.loads(text)
    except (yaml_rs.YAMLDecodeError, ValueError, TypeError, OverflowError):
        return None
    if len(starts) > 1:
        if not isinstance(loaded, list) or len(loaded) != len(starts):
            return None
        values: list[Any] = loaded
    else:
        values = [loaded]
    out: list[tuple[int, Any]] = []
    counted, line = 0, 1  # newlines before ``counted``, counted once in all
    for begin, value in zip(starts, values, strict=False):
        if value is None:
            out.append((0, None))
            continue
        if type(value) is not dict or not _values_agree(value):
            return None
        kind = value.get("kind")
        if isinstance(kind, str) and kind.endswith("List"):
            return None
        end = text.find("\n", begin)
        rest = text[begin + 3 : end if end >= 0 else None].strip()
        if text.startswith("---", begin) and rest and not rest.startswith("#"):
            line_at = begin
        else:
            content = _CONTENT.search(text, begin + (3 if text.startswith("---", begin) else 0))
            if content is None:
                return None
            line_at = content.start()
        line += text.count("\n", counted, line_at)
        counted = line_at
        out.append((line, value))
    if len(starts) <= 1 and not starts and loaded is not None:
        return None
    return out
