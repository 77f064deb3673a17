"""What the dataplane needs from a rendered ruleset, as structural types.

The renderer (:mod:`sekisho.render`) returns frozen dataclasses with these
attributes; the appliers depend only on the shape, so tests can hand-build
small rulesets and the two layers can evolve without importing each other's
internals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["IpSetLike", "IptablesRulesetLike", "NftRulesetLike", "owned"]


def owned(name: str, prefix: str) -> bool:
    """Whether an object is ours: named ``PREFIX`` or ``PREFIX-...``.

    A bare ``startswith(prefix)`` would also claim ``sekisho_lab_nat`` or
    ``sekishoX``, which belong to someone else.
    """
    return name == prefix or name.startswith(prefix + "-")


class IpSetLike(Protocol):
    """One IP set: ``hash:net``, ``hash:net,port`` or ``hash:ip,port`` with ipset-syntax members."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def members(self) -> Sequence[str]: ...
    @property
    def family(self) -> str: ...


class IptablesRulesetLike(Protocol):
    """Our chains (rule specs after ``-A CHAIN``), our sets, and the hook rules; a
    ruleset may also have ``chains6`` and ``hooks6``, the same for ip6tables, and
    ``tables``/``tables6``: (``raw`` or ``mangle``, chains, hooks) of the tables before
    filter (doNotTrack and preDNAT policies)."""

    @property
    def prefix(self) -> str: ...
    @property
    def sets(self) -> Sequence[IpSetLike]: ...
    @property
    def chains(self) -> Sequence[tuple[str, Sequence[str]]]: ...
    @property
    def hooks(self) -> Sequence[tuple[str, str]]: ...


class NftRulesetLike(Protocol):
    """Our nftables table: a script that creates-or-replaces it, and its listing."""

    @property
    def prefix(self) -> str: ...
    @property
    def table(self) -> str: ...
    @property
    def family(self) -> str: ...
    def script(self) -> str: ...
    def table_text(self) -> str: ...
