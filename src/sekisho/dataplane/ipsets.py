"""IP sets: read back ours from ``ipset save``, normalize members, write restore documents.

Members are compared in one canonical form on both sides, because the kernel
hands back ``10.0.0.1`` for an added ``10.0.0.1/32``, ``tcp:80`` for ``80`` and
expands port ranges into single ports.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass

from sekisho.dataplane.desired import owned

__all__ = [
    "SetState",
    "normalize_member",
    "parse_ipset_save",
    "temp_set_name",
]

IPSET_NAME_MAX = 31
"""IPSET_MAXNAMELEN less the terminating NUL."""


@dataclass(frozen=True, slots=True)
class SetState:
    """One set as installed or desired, members in canonical form."""

    type: str
    family: str
    members: frozenset[str]
    raw: tuple[str, ...] = ()
    """Members as they should be written (desired side only)."""


def _norm_addr(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        return text


def _norm_port(text: str) -> list[str]:
    proto, sep, port = text.partition(":")
    if not sep:
        proto, port = "tcp", text
    proto = proto.lower()
    lo, dash, hi = port.partition("-")
    if dash and lo.isdigit() and hi.isdigit():
        return [f"{proto}:{p}" for p in range(int(lo), int(hi) + 1)]
    return [f"{proto}:{port}"]


def normalize_member(member: str) -> list[str]:
    """Canonical form(s) of one member: ``CIDR[,proto:port][ nomatch]``; ranges expand."""
    words = member.split()
    if not words:
        return []
    flags = " ".join(w for w in words[1:] if w == "nomatch")
    parts = words[0].split(",")
    addr = _norm_addr(parts[0])
    tail = " " + flags if flags else ""
    if len(parts) == 1:
        return [addr + tail]
    rest = ",".join(parts[2:])
    out = []
    for port in _norm_port(parts[1]):
        elem = f"{addr},{port}"
        if rest:
            elem += "," + _norm_addr(rest)
        out.append(elem + tail)
    return out


def normalize_members(members: Iterable[str]) -> frozenset[str]:
    return frozenset(m for member in members for m in normalize_member(member))


def parse_ipset_save(text: str, prefix: str) -> dict[str, SetState]:
    """Our sets (name starts with ``prefix``) from ``ipset save`` output."""
    types: dict[str, tuple[str, str]] = {}
    members: dict[str, list[str]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 3 or not owned(words[1], prefix):
            continue
        if words[0] == "create":
            family = "inet"
            if "family" in words:
                i = words.index("family")
                if i + 1 < len(words):
                    family = words[i + 1]
            types[words[1]] = (words[2], family)
            members.setdefault(words[1], [])
        elif words[0] == "add":
            members.setdefault(words[1], []).append(" ".join(words[2:]))
    return {
        name: SetState(type=t, family=f, members=normalize_members(members.get(name, ())))
        for name, (t, f) in types.items()
    }


def temp_set_name(name: str, prefix: str) -> str:
    """A temporary set name that keeps our prefix and fits the kernel's limit."""
    digest = hashlib.sha1(name.encode()).hexdigest()
    return (f"{prefix}-t-{digest}")[:IPSET_NAME_MAX]


def restore_lines_create(name: str, want: SetState) -> list[str]:
    lines = [f"create {name} {want.type} family {want.family}"]
    lines += [f"add {name} {m}" for m in want.raw]
    return lines


def plan_sets(
    installed: Mapping[str, SetState],
    desired: Mapping[str, SetState],
    prefix: str,
    keep: Container[str] = (),
) -> tuple[list[str], list[str], list[str]]:
    """(restore lines run before the rules change, changes described, sets to destroy after).

    New sets are created and filled; changed sets are filled as a temporary set and
    swapped in (never empty in between); sets we own that are no longer wanted are
    destroyed only after the rules stop referencing them (except those in ``keep``:
    lingering).
    """
    lines: list[str] = []
    changes: list[str] = []
    used_temps: set[str] = set()
    for name in sorted(desired):
        want = desired[name]
        have = installed.get(name)
        if have is None:
            lines += restore_lines_create(name, want)
            changes.append(f"set {name} created ({len(want.members)} members)")
            continue
        if (have.type, have.family, have.members) == (want.type, want.family, want.members):
            continue
        tmp = temp_set_name(name, prefix)
        used_temps.add(tmp)
        if tmp in installed:
            lines.append(f"destroy {tmp}")
        lines += restore_lines_create(tmp, want)
        lines += [f"swap {tmp} {name}", f"destroy {tmp}"]
        added = len(want.members - have.members)
        removed = len(have.members - want.members)
        changes.append(f"set {name} refilled (+{added} -{removed} members)")
    obsolete = sorted(
        n for n in installed if n not in desired and n not in used_temps and n not in keep
    )
    changes += [f"set {n} destroyed" for n in obsolete]
    return lines, changes, obsolete
