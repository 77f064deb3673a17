"""The fast path: a Rust parser (``yaml_rs``) where it reads exactly what libyaml reads.

:func:`fast_documents` decides, conservatively, and returns None for a text that must
go the libyaml way (:mod:`sekisho.model.libyaml`, imported only then: a file read
here loads no PyYAML).
"""

from __future__ import annotations

import re
from typing import Any

import yaml_rs

# --- the fast path: a Rust parser where it reads exactly what libyaml reads -----------------

_LEADING_ZERO = re.compile(r"(?<![\w.:/'\"-])[-+]?0(?:[0-9_]+|[oO][0-7_]+)(?![\w.:-])")
"""A number with a leading zero: 0755 is 493 in YAML 1.1 (octal) and 755 in 1.2."""
_ZERO = re.compile(r"0(?<![\w.:/'\"]0)(?<![\w.:/'\"-]-0)[0-9_oO]")
"""Where :data:`_LEADING_ZERO` may match, found by a scan for "0" (fast): a zero before a
digit or "o", unless what precedes it rules both of the checks below out (a word
character, ``.:/'"`` or, after a "-", one of those or "-" before that), so
that 8080, 10.0.0.1 or node-000 are not each checked."""
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
_PRINTABLE_ASCII = bytes(range(0x20, 0x7F)) + b"\n"
"""What ``str.isprintable`` accepts among ASCII characters (" " to "~"), and the newline."""


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
    # Every "{" must be followed by "}" (the same as counting both; a jump from one
    # "{" to the next instead of two counts over the whole text).
    for opening, empty in (("{", "{}"), ("[", "[]")):
        at = text.find(opening)
        while at >= 0:
            if not text.startswith(empty, at):
                return False
            at = text.find(opening, at + 2)
    # Tabs, CR, control characters, BOM, line separators: anything not printable but
    # the newline. For an ASCII text (a manifest nearly always) the printable characters
    # are " " to "~", and deleting them and the newlines from its bytes leaves nothing;
    # that is C's byte table instead of str.isprintable's per-character lookup.
    if text.isascii():
        if text.encode("ascii").translate(None, _PRINTABLE_ASCII):
            return False
    elif not text.replace("\n", "").isprintable():
        return False
    return not _has_leading_zero(text)


def _has_leading_zero(text: str) -> bool:
    """Whether a number with a leading zero (:data:`_LEADING_ZERO`) is in the text: a
    scan for a zero before a digit or "o" where a number could start, then each hit
    checked as a whole token."""
    for hit in _ZERO.finditer(text):
        at = hit.start()
        if _LEADING_ZERO.match(text, at) or (
            at and text[at - 1] in "+-" and _LEADING_ZERO.match(text, at - 1)
        ):
            return True
    return False


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
