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


# --- plain block YAML without a node tree ---------------------------------------------------------
#
# Manifests as ``kubectl`` and ``yaml.safe_dump`` write them use a small part of YAML: block
# mappings and sequences indented with spaces, one ``key: value`` per line, plain or simply
# quoted one-line scalars, ``{}`` and ``[]``, full-line comments and ``---`` between documents.
# :func:`plain_documents` reads exactly that part line by line (no libyaml node per scalar,
# which is most of the cost of a big file) and gives up, returning None, at the first line
# outside it; the caller then parses the whole text with libyaml. Plain scalars are resolved
# by PyYAML's own resolver (memoized) and only str, int, bool and null are accepted, so a
# result is always the value ``yaml.load`` with ``CSafeLoader`` gives.

_ENTRY = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_./-]*):(?: +|$)")
"""A mapping entry's key (group 1), its colon and the spaces before the value."""
_OUTSIDE = re.compile(r"[^\x20-\x7e\n]| #|\t")
"""Anything that sends a text to libyaml: non-printable or non-ASCII, a tab, an inline comment."""
_RESOLVER = yaml.resolver.Resolver()


class _GiveUp(Exception):
    """A line outside the plain subset: parse the text with libyaml instead."""


_VALUES: dict[str, Any] = {}
"""Value of each one-line scalar text seen so far (only immutable values: str, int, bool, None)."""
_MISSING = object()


def _scalar(text: str) -> Any:
    value = _VALUES.get(text, _MISSING)
    if value is not _MISSING:
        return value
    value = _scalar_value(text)
    if not isinstance(value, (dict, list)) and len(_VALUES) < _RESOLVED_MAX:
        _VALUES[text] = value
    return value


def _scalar_value(text: str) -> Any:
    first = text[0]
    if first == "'" or first == '"':
        if len(text) < 2 or text[-1] != first or first in text[1:-1] or "\\" in text:
            raise _GiveUp
        return text[1:-1]
    if text == "{}":
        return {}
    if text == "[]":
        return []
    if first in "-?:,[]{}#&*!|>%@`" and not (first == "-" and len(text) > 1 and text[1] != " "):
        raise _GiveUp
    if ": " in text or text[-1] == ":":
        raise _GiveUp
    tag = _RESOLVED.get(text)
    if tag is None:
        tag = _RESOLVER.resolve(ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
        if len(_RESOLVED) < _RESOLVED_MAX:
            _RESOLVED[text] = tag
    if tag == STR:
        return text
    if tag == INT and text.isdigit() and (text[0] != "0" or text == "0"):
        return int(text)
    if tag == NULL:
        return None
    if tag == BOOL:
        return text in _TRUE
    raise _GiveUp  # floats, timestamps, signed or based integers: PyYAML's constructor


def plain_documents(text: str) -> list[tuple[Any, int]] | None:
    """``(value, 1-based line of the document's first content line)`` per document, or None.

    None means the text uses YAML beyond the plain block subset (or is invalid,
    or has a duplicate key): parse it with libyaml, which also reports problems.
    """
    if _OUTSIDE.search(text) or text.startswith("\ufeff"):
        return None
    indents: list[int] = []
    contents: list[str] = []
    numbers: list[int] = []
    docs: list[tuple[int, int]] = []  # (first, end) index ranges into the lists
    start = 0
    saw_separator = False
    for number, line in enumerate(text.split("\n"), 1):
        body = line.lstrip(" ")
        if not body or body[0] == "#":
            continue
        indent = len(line) - len(body)
        if body[-1] == " ":
            body = body.rstrip(" ")
        if indent == 0 and ((body[0] in "-." and body[:3] in ("---", "...")) or body[0] == "%"):
            if body != "---":
                return None
            if len(contents) == start and (saw_separator or start):
                return None  # an empty document
            if len(contents) > start:
                docs.append((start, len(contents)))
            start = len(contents)
            saw_separator = True
            continue
        indents.append(indent)
        contents.append(body)
        numbers.append(number)
    if len(contents) > start:
        docs.append((start, len(contents)))
    elif saw_separator and start:
        return None  # a trailing empty document
    out: list[tuple[Any, int]] = []
    try:
        for first, end in docs:
            if indents[first] != 0:
                return None
            parser = _Block(indents, contents, end)
            value, at = parser.node(first, 0)
            if at != end:
                return None
            if isinstance(value, dict) and isinstance(value.get("items"), list):
                return None  # a List: its item lines come from the node tree
            out.append((value, numbers[first]))
    except (_GiveUp, IndexError, RecursionError):
        return None
    return out


class _Block:
    """Recursive descent over one document's content lines (indent, text)."""

    __slots__ = ("contents", "end", "indents")

    def __init__(self, indents: list[int], contents: list[str], end: int) -> None:
        self.indents = indents
        self.contents = contents
        self.end = end

    def node(self, i: int, indent: int) -> tuple[Any, int]:
        """The block node whose first line is ``i`` (at ``indent``); the next line index."""
        body = self.contents[i]
        if body == "-" or body.startswith("- "):
            return self.sequence(i, indent)
        return self.mapping(i, indent)

    def _value(self, rest: str, i: int, indent: int) -> tuple[Any, int]:
        """The value after ``key:`` or ``-`` on line ``i - 1``, at ``indent``."""
        if rest:
            return _scalar(rest), i
        if i < self.end:
            nxt = self.indents[i]
            if nxt > indent:
                return self.node(i, nxt)
        raise _GiveUp  # an empty value: rare in manifests, left to libyaml

    def sequence(self, i: int, indent: int) -> tuple[list[Any], int]:
        out: list[Any] = []
        indents, contents, end = self.indents, self.contents, self.end
        while i < end and indents[i] == indent:
            body = contents[i]
            if body == "-":
                value, i = self._value("", i + 1, indent)
            elif body.startswith("- "):
                rest = body[2:].lstrip(" ")
                inner = indent + len(body) - len(rest)
                if rest.startswith("- ") or rest == "-" or _entry(rest):
                    # a block node that starts on the dash's line: parse it in place
                    indents[i], contents[i] = inner, rest
                    value, i = self.node(i, inner)
                else:
                    value, i = _scalar(rest), i + 1
            else:
                break  # the parent mapping's next key (its sequence value was not indented)
            out.append(value)
        if i < end and indents[i] > indent:
            raise _GiveUp
        return out, i

    def mapping(self, i: int, indent: int) -> tuple[dict[Any, Any], int]:
        out: dict[Any, Any] = {}
        indents, contents, end = self.indents, self.contents, self.end
        entry, values, missing = _ENTRY.match, _VALUES.get, _MISSING
        while i < end and indents[i] == indent:
            body = contents[i]
            found = entry(body)
            if found is None:
                raise _GiveUp
            key = values(found[1], missing)
            if key is missing:
                key = _scalar(found[1])
            if key in out:
                raise _GiveUp  # a duplicate key: libyaml's path reports it
            rest = body[found.end() :]
            if rest:
                value = values(rest, missing)
                out[key] = _scalar(rest) if value is missing else value
                i += 1
            elif (
                i + 1 < end
                and indents[i + 1] == indent
                and contents[i + 1][0] == "-"
                and (contents[i + 1] == "-" or contents[i + 1][1] == " ")
            ):
                out[key], i = self.sequence(i + 1, indent)
            else:
                out[key], i = self._value("", i + 1, indent)
        if i < end and indents[i] > indent:
            raise _GiveUp
        return out, i


def _entry(text: str) -> bool:
    """Whether a line's text starts a mapping entry (``key:`` or ``key: value``)."""
    return _ENTRY.match(text) is not None
