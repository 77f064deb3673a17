"""The backends the renderer spells a node's state in: one object each, in one registry.

A :class:`RenderBackend` is everything the pure core knows of a backend: how
to spell a :class:`~sekisho.render.node.NodeRenderer`'s state as a typed
ruleset, the interpreter that walks a packet through its text, and a digest of
a ruleset (equal in every process for equal rulesets; the agent's ready file
carries it).
:mod:`sekisho.dataplane.backends` adds each backend's applier. A new backend is
a module that spells the state, its applier, and one entry in each registry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from sekisho.errors import UsageError
from sekisho.render.interpret import IptablesProgram, NftProgram
from sekisho.render.iptables import IpSetSpec, IptablesRuleset, render_iptables
from sekisho.render.nftables import NftRuleset, NftSet, render_nftables
from sekisho.render.node import NodeRenderer

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "RenderBackend",
    "Ruleset",
    "render_backend",
    "ruleset_digest",
]

Backend = Literal["iptables", "nftables"]
Ruleset = IptablesRuleset | NftRuleset
"""A node's whole desired dataplane, as one backend spells it."""


class RenderBackend(Protocol):
    """What the pure core knows of one backend."""

    @property
    def name(self) -> Backend: ...

    def render(self, r: NodeRenderer) -> Ruleset:
        """The whole ruleset from a renderer's current state (deterministic)."""
        ...

    def interpret(self, text: str) -> IptablesProgram | NftProgram:
        """The packet interpreter over a rendered text of this backend."""
        ...

    def digest(self, ruleset: Ruleset) -> str:
        """:func:`ruleset_digest`."""
        ...


@dataclass(frozen=True, slots=True)
class _Iptables:
    name: Backend = "iptables"

    def render(self, r: NodeRenderer) -> IptablesRuleset:
        return render_iptables(r)

    def interpret(self, text: str) -> IptablesProgram:
        return IptablesProgram(text)

    def digest(self, ruleset: Ruleset) -> str:
        return ruleset_digest(ruleset)


@dataclass(frozen=True, slots=True)
class _Nftables:
    name: Backend = "nftables"

    def render(self, r: NodeRenderer) -> NftRuleset:
        return render_nftables(r)

    def interpret(self, text: str) -> NftProgram:
        return NftProgram(text)

    def digest(self, ruleset: Ruleset) -> str:
        return ruleset_digest(ruleset)


_REGISTRY: dict[str, RenderBackend] = {"iptables": _Iptables(), "nftables": _Nftables()}

BACKEND_NAMES: tuple[Backend, ...] = ("iptables", "nftables")
"""Every backend's name, in the order they are listed to users."""


def render_backend(name: str) -> RenderBackend:
    """The backend called ``name``; :class:`UsageError` naming the known ones otherwise."""
    found = _REGISTRY.get(name)
    if found is None:
        raise UsageError(f"backend {name!r}: expected one of {', '.join(BACKEND_NAMES)}")
    return found


# ------------------------------------------------------------------------- digest

_memo: tuple[dict[int, tuple[object, bytes]], dict[object, bytes]] = ({}, {})
"""From the last ruleset digested (see :func:`ruleset_digest`): id of a set or chain ->
(it, its digest); and set or chain -> its digest, for those not found by identity."""


def _element_text(item: object) -> Iterable[str]:
    """The canonical words of one set or chain of a ruleset."""
    if isinstance(item, IpSetSpec):
        return ("set", item.name, item.type, item.family, *item.members)
    if isinstance(item, NftSet):
        return (item.kind, item.name, item.type, *item.elements)
    if isinstance(item, tuple) and item and isinstance(item[0], str):
        name, *rest = item
        words = ["chain", name]
        for part in rest:
            if part is None:
                words.append("")
            elif isinstance(part, str):
                words.append(part)
            else:
                words.extend(part)
        return words
    raise TypeError(f"not a set or chain of a ruleset: {type(item).__name__}")


def ruleset_digest(ruleset: Ruleset) -> str:
    """A stable hash of a ruleset: equal in every process for equal rulesets, different
    when any set, chain, rule, hook or name differs.

    Each set and chain is hashed from its words (memoized until the next digest while
    the renderer hands the very same object: a change costs what changed), then the
    whole from those in order.
    """
    global _memo
    old_ids, old_values = _memo
    ids: dict[int, tuple[object, bytes]] = {}
    values: dict[object, bytes] = {}
    digest = hashlib.sha1(type(ruleset).__name__.encode())
    if isinstance(ruleset, IptablesRuleset):
        parts: list[tuple[str, Iterable[object]]] = [
            ("sets", ruleset.sets),
            ("chains", ruleset.chains),
            ("hooks", ruleset.hooks),
            ("chains6", ruleset.chains6),
            ("hooks6", ruleset.hooks6),
        ]
        for family, tables in (("", ruleset.tables), ("6", ruleset.tables6)):
            for name, chains, hooks in tables:
                parts += [(f"{name}{family} chains", chains), (f"{name}{family} hooks", hooks)]
        digest.update(f"\0{ruleset.prefix}".encode())
    else:
        parts = [("sets", ruleset.sets), ("chains", ruleset.chains)]
        digest.update(f"\0{ruleset.prefix}\0{ruleset.family}\0{ruleset.table}".encode())
    for label, items in parts:
        digest.update(f"\0{label}\0".encode())
        for item in items:
            # by identity first: the renderer hands what did not change as the same
            # objects, so a change costs what it touches; then by value
            entry = old_ids.get(id(item))
            if entry is not None and entry[0] is item:
                one = entry[1]
            else:
                found = old_values.get(item)
                one = (
                    hashlib.sha1("\0".join(_element_text(item)).encode()).digest()
                    if found is None
                    else found
                )
                values[item] = one
            ids[id(item)] = (item, one)
            digest.update(one)
    _memo = (ids, values)
    return digest.hexdigest()[:16]
