"""Typed access to raw manifest values, reporting every wrong value with its field path.

Each helper takes the raw value and its path, returns the typed value (or
``None`` when it is missing or wrong) and records a problem for anything wrong.
Callers keep going after a problem so that one run reports every problem.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sekisho.model import names
from sekisho.model.reader import FieldPath, Issue, Loc, describe
from sekisho.records import Record

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Report(Record, frozen=False):
    """Collects the problems of one object."""

    __slots__ = ("kind", "loc", "name", "notes", "sink")

    loc: Loc
    kind: str
    name: str
    sink: list[Issue]
    notes: list[Issue] | None
    """Where warnings go (valid, but worth saying); None: they are dropped."""

    def __init__(
        self, loc: Loc, kind: str, name: str, sink: list[Issue], notes: list[Issue] | None = None
    ) -> None:
        self.loc = loc
        self.kind = kind
        self.name = name
        self.sink = sink
        self.notes = notes

    def error(self, path: FieldPath, message: str) -> None:
        self.sink.append(Issue(self.loc, self.kind, self.name, path, message))

    def warn(self, path: FieldPath, message: str) -> None:
        if self.notes is not None:
            self.notes.append(Issue(self.loc, self.kind, self.name, path, message))


def unknown_field_message(key: str, known: frozenset[str]) -> str:
    import difflib  # only for a misspelt field

    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    hint = f'; did you mean "{close[0]}"?' if close else ""
    return f'unknown field "{key}"{hint}'


def mapping(
    r: Report, value: Any, path: FieldPath, known: frozenset[str] | None = None
) -> dict[str, Any] | None:
    """An object; with ``known``, every field not in it is reported as unknown."""
    if value is None:
        return None
    if not isinstance(value, dict):
        r.error(path, f"expected an object, got {describe(value)}")
        return None
    if known is not None and not known.issuperset(value):
        for key in value:
            if key not in known:
                if isinstance(key, str):
                    r.error((*path, key), unknown_field_message(key, known))
                else:
                    r.error(path, f"field names must be strings, got {describe(key)}")
    return value


def sequence(r: Report, value: Any, path: FieldPath) -> list[Any] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        r.error(path, f"expected a list, got {describe(value)}")
        return None
    return value


def string(r: Report, value: Any, path: FieldPath) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        r.error(path, f"expected a string, got {describe(value)}")
        return None
    return value


def integer(r: Report, value: Any, path: FieldPath) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        r.error(path, f"expected an integer, got {describe(value)}")
        return None
    return value


def boolean(r: Report, value: Any, path: FieldPath) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        r.error(path, f"expected true or false, got {describe(value)}")
        return None
    return value


def labels(r: Report, value: Any, path: FieldPath) -> dict[str, str]:
    """A label map (also ``matchLabels`` and ``nodeSelector``): keys and values checked."""
    raw = mapping(r, value, path)
    if raw is None:
        return {}
    out: dict[str, str] = {}
    for key, val in raw.items():
        if not isinstance(key, str):
            r.error(path, f"label keys must be strings, got {describe(key)}")
            continue
        err = names.label_key_error(key)
        if err is not None:
            r.error((*path, key), err)
            continue
        if not isinstance(val, str):
            hint = ""
            if isinstance(val, bool | int | float):
                hint = f' (quote it: "{str(val).lower() if isinstance(val, bool) else val}")'
            r.error((*path, key), f"label values must be strings, got {describe(val)}{hint}")
            continue
        err = names.label_value_error(val)
        if err is not None:
            r.error((*path, key), err)
            continue
        out[key] = val
    return out


def string_map(r: Report, value: Any, path: FieldPath) -> None:
    """Annotations: strings to strings, otherwise unchecked."""
    raw = mapping(r, value, path)
    if raw is None:
        return
    for key, val in raw.items():
        if not isinstance(key, str) or not isinstance(val, str):
            r.error((*path, str(key)), f"expected a string value, got {describe(val)}")


_IP_CACHE: dict[str, IPAddress] = {}
"""Parsed addresses by text: a pod's ``podIP`` repeats in ``podIPs``, a node's IP in ``hostIP``."""


def _ipv4(text: str) -> ipaddress.IPv4Address | None:
    """A plain dotted quad without leading zeros, built from its integer (3x faster);
    None for anything else, which ``ipaddress.ip_address`` then reads (or rejects)."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        if (
            not part.isascii()
            or not part.isdigit()
            or len(part) > 3
            or (part[0] == "0" and part != "0")
        ):
            return None
        octet = int(part)
        if octet > 255:
            return None
        value = value << 8 | octet
    return ipaddress.IPv4Address(value)


def ip_address(r: Report, value: Any, path: FieldPath) -> IPAddress | None:
    text = string(r, value, path)
    if text is None:
        return None
    ip = _IP_CACHE.get(text)
    if ip is not None:
        return ip
    try:
        ip = _ipv4(text) or ipaddress.ip_address(text)
    except ValueError:
        r.error(path, f'"{text}" is not a valid IP address')
        return None
    if len(_IP_CACHE) > 100_000:
        _IP_CACHE.clear()
    _IP_CACHE[text] = ip
    return ip


def cidr(r: Report, value: Any, path: FieldPath, *, host_bits: bool = False) -> IPNetwork | None:
    """A CIDR. Host bits set are an error that suggests the canonical form, unless
    ``host_bits``: then the CIDR means its network, with a warning that says so."""
    text = string(r, value, path)
    if text is None:
        return None
    if "/" not in text:
        r.error(
            path, f'"{text}" is not a CIDR: expected an address and a prefix length (a.b.c.d/n)'
        )
        return None
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        r.error(path, f'"{text}" is not a valid CIDR')
        return None
    if net.network_address != ipaddress.ip_interface(text).ip:
        if host_bits:
            r.warn(path, f'"{text}" has host bits set: it means "{net}"')
            return net
        r.error(path, f'"{text}" has host bits set: did you mean "{net}"?')
        return None
    return net
