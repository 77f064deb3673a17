"""libyaml parsing with a lean Python side: memoized scalar resolution and a direct constructor.

Imported only when a text goes the libyaml way (:mod:`sekisho.model.fastyaml` decides):
a file the Rust parser reads loads no PyYAML.

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
