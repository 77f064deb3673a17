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
