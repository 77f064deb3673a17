"""Calico's selector language: the parser, the tree, and evaluation over one or many label sets.

Every selection in the policy program is one of these expressions, as in Felix:
a Kubernetes label selector is converted into one (:func:`from_label_selector`),
Calico's own selectors are parsed from text (:func:`parse`). The grammar and
its quirks follow ``libcalico-go/lib/selector`` (tokenizer and parser):

* ``all()``, ``global()``, ``has(k)``, ``k == "v"``, ``k != "v"``,
  ``k in {"a", "b"}``, ``k not in {...}``, ``k contains "s"``,
  ``k starts with "s"``, ``k ends with "s"`` (``startswith``/``endswith`` in one
  word too); ``!`` (any number, collapsed), ``&&`` binds tighter than ``||``,
  parentheses; strings in double or single quotes (no escapes).
* A label key is ``[a-zA-Z0-9_./-]`` characters; the empty selector means ``all()``.
* ``k != "v"`` and ``k not in {...}`` match when ``k`` is absent; ``==``, ``in``,
  ``contains``, ``starts with`` and ``ends with`` need the key present.

A syntax error is a :class:`SelectorSyntaxError` that names the column (1-based).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Literal

from sekisho.records import Record, set_field

if TYPE_CHECKING:
    from sekisho.model.types import LabelSelector
    from sekisho.selectors.labels import BoolArray, JoinedTable, LabelTable

Op = Literal["==", "!=", "in", "not in", "contains", "starts with", "ends with"]


class SelectorSyntaxError(ValueError):
    """A selector that does not parse; ``column`` is 1-based."""

    def __init__(self, text: str, column: int, message: str) -> None:
        self.text = text
        self.column = column
        self.message = message
        super().__init__(f"column {column}: {message}")


# ---------------------------------------------------------------------------------- the tree


class All(Record):
    """``all()`` (and the empty selector): every label set."""

    __slots__ = ()

    def canonical(self) -> str:
        return "all()"


class Global(Record):
    """``global()``: true as an expression; a namespaceSelector of ``global()`` means
    non-namespaced entities, which the policy compiler decides, not this node."""

    __slots__ = ()

    def canonical(self) -> str:
        return "global()"


class Has(Record):
    """``has(key)``: the label is present, whatever its value."""

    __slots__ = ("key",)

    key: str

    def __init__(self, key: str) -> None:
        set_field(self, "key", key)

    def canonical(self) -> str:
        return f"has({self.key})"


class Compare(Record, uncompared=("text",), unshown=("text",)):
    """``key OP value`` or ``key [not] in {values}`` (``values`` sorted, de-duplicated)."""

    __slots__ = ("key", "op", "text", "values")

    key: str
    op: Op
    values: tuple[str, ...]
    text: str
    """The canonical text, computed once (every enclosing node and set key reads it)."""

    def __init__(self, key: str, op: Op, values: tuple[str, ...]) -> None:
        set_field(self, "key", key)
        set_field(self, "op", op)
        set_field(self, "values", values)
        if op in ("in", "not in"):
            inner = ", ".join(_quote(v) for v in values)
            text = f"{key} {op} {{{inner}}}"
        else:
            text = f"{key} {op} {_quote(values[0])}"
        set_field(self, "text", text)

    def canonical(self) -> str:
        return self.text


class Not(Record, uncompared=("text",), unshown=("text",)):
    """``!operand``."""

    __slots__ = ("operand", "text")

    operand: Expr
    text: str
    """The canonical text, computed once (composite nodes are shared and keyed often)."""

    def __init__(self, operand: Expr) -> None:
        set_field(self, "operand", operand)
        set_field(self, "text", "!" + _wrap(operand))

    def canonical(self) -> str:
        return self.text


class And(Record, uncompared=("text",), unshown=("text",)):
    """``a && b && ...``."""

    __slots__ = ("operands", "text")

    operands: tuple[Expr, ...]
    text: str

    def __init__(self, operands: tuple[Expr, ...]) -> None:
        set_field(self, "operands", operands)
        set_field(self, "text", " && ".join(sorted({_wrap(o) for o in operands})))

    def canonical(self) -> str:
        return self.text


class Or(Record, uncompared=("text",), unshown=("text",)):
    """``a || b || ...``."""

    __slots__ = ("operands", "text")

    operands: tuple[Expr, ...]
    text: str

    def __init__(self, operands: tuple[Expr, ...]) -> None:
        set_field(self, "operands", operands)
        set_field(self, "text", " || ".join(sorted({_wrap(o) for o in operands})))

    def canonical(self) -> str:
        return self.text


Expr = All | Global | Has | Compare | Not | And | Or
ALL = All()

# Tuples, not ``A | B`` unions: a union in ``isinstance`` is built anew on every call.
_COMPOSITE = (And, Or)
_LEAF = (Has, Compare)
_TRUE = (All, Global)


def _quote(value: str) -> str:
    return f"'{value}'" if '"' in value else f'"{value}"'


def _wrap(e: Expr) -> str:
    text = e.canonical()
    return f"({text})" if isinstance(e, _COMPOSITE) else text


def canonical(e: Expr) -> str:
    """A stable text, equal for expressions that differ only in operand order or duplicates."""
    return e.canonical()


def conj(*parts: Expr) -> Expr:
    """The AND of ``parts``: ``all()`` terms dropped, nested ANDs flattened."""
    flat: list[Expr] = []
    for p in parts:
        if isinstance(p, All):
            continue
        flat.extend(p.operands if isinstance(p, And) else (p,))
    if not flat:
        return ALL
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def disj(*parts: Expr) -> Expr:
    """The OR of ``parts`` (at least one)."""
    flat: list[Expr] = []
    for p in parts:
        flat.extend(p.operands if isinstance(p, Or) else (p,))
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


_KEYS: dict[str, frozenset[str]] = {}


def keys(e: Expr) -> frozenset[str]:
    """Every label key the expression looks at (what policy can see of a label set)."""
    text = e.canonical()
    got = _KEYS.get(text)
    if got is None:
        got = _keys(e)
        if len(_KEYS) < 65536:
            _KEYS[text] = got
    return got


def _keys(e: Expr) -> frozenset[str]:
    if isinstance(e, _LEAF):
        return frozenset((e.key,))
    if isinstance(e, Not):
        return keys(e.operand)
    if isinstance(e, _COMPOSITE):
        out: frozenset[str] = frozenset()
        for o in e.operands:
            out |= keys(o)
        return out
    return frozenset()


def prefix_keys(e: Expr, prefix: str) -> Expr:
    """The same expression over ``prefix + key`` (Calico's ``pcns.`` namespace labels)."""
    if isinstance(e, Has):
        return Has(prefix + e.key)
    if isinstance(e, Compare):
        return Compare(prefix + e.key, e.op, e.values)
    if isinstance(e, Not):
        return Not(prefix_keys(e.operand, prefix))
    if isinstance(e, And):
        return And(tuple(prefix_keys(o, prefix) for o in e.operands))
    if isinstance(e, Or):
        return Or(tuple(prefix_keys(o, prefix) for o in e.operands))
    return e


# ------------------------------------------------------------------------------- evaluation

_STRING_OPS: dict[str, Callable[[str, str], bool]] = {
    "contains": lambda have, want: want in have,
    "starts with": lambda have, want: have.startswith(want),
    "ends with": lambda have, want: have.endswith(want),
}


def matches(e: Expr, labels: Mapping[str, str]) -> bool:
    """Whether one label set satisfies the expression."""
    if isinstance(e, _TRUE):
        return True
    if isinstance(e, Has):
        return e.key in labels
    if isinstance(e, Compare):
        have = labels.get(e.key)
        if e.op == "==" or e.op == "in":
            return have is not None and have in e.values
        if e.op == "!=" or e.op == "not in":
            return have is None or have not in e.values
        return have is not None and _STRING_OPS[e.op](have, e.values[0])
    if isinstance(e, Not):
        return not matches(e.operand, labels)
    if isinstance(e, And):
        return all(matches(o, labels) for o in e.operands)
    return any(matches(o, labels) for o in e.operands)


def select(e: Expr, table: LabelTable | JoinedTable) -> BoolArray:
    """Which of a table's label sets satisfy the expression (a few vector operations)."""
    import numpy as np  # here: parsing and validating selectors need no numpy

    if isinstance(e, _TRUE):
        return np.ones(table.size, dtype=np.bool_)
    if isinstance(e, Has):
        return table.present(e.key)
    if isinstance(e, Compare):
        if e.op in ("==", "in"):
            return table.value_in(e.key, e.values)
        if e.op in ("!=", "not in"):
            return ~table.value_in(e.key, e.values)
        test = _STRING_OPS[e.op]
        want = e.values[0]
        return table.value_where(e.key, lambda v: test(v, want))
    if isinstance(e, Not):
        out: BoolArray = ~select(e.operand, table)
        return out
    if isinstance(e, And):
        acc = np.ones(table.size, dtype=np.bool_)
        for o in e.operands:
            acc &= select(o, table)
        return acc
    acc = np.zeros(table.size, dtype=np.bool_)
    for o in e.operands:
        acc |= select(o, table)
    return acc


def explain(e: Expr, labels: Mapping[str, str]) -> str | None:
    """None when ``labels`` satisfy ``e``, else the first failing term as written."""
    if matches(e, labels):
        return None
    if isinstance(e, And):
        for o in e.operands:
            why = explain(o, labels)
            if why is not None:
                return why
    return e.canonical()


# ------------------------------------------------------------------------------- conversion


_FROM_LABEL_SELECTOR: dict[LabelSelector, Expr] = {}


def from_label_selector(sel: LabelSelector) -> Expr:
    """A Kubernetes label selector as an expression (Calico's converter does the same).

    ``matchLabels`` ``k: v`` is ``k == "v"``; ``In`` is ``k in {...}``; ``NotIn``
    is ``k not in {...}`` (which also matches when ``k`` is absent, as Kubernetes
    defines it); ``Exists`` is ``has(k)``; ``DoesNotExist`` is ``!has(k)``; the
    empty selector is ``all()``.
    """
    # The same few selectors recur across thousands of policies and peers: convert each
    # once (expressions are immutable, so sharing them is safe).
    hit = _FROM_LABEL_SELECTOR.get(sel)
    if hit is None:
        hit = _from_label_selector(sel)
        if len(_FROM_LABEL_SELECTOR) < 65536:
            _FROM_LABEL_SELECTOR[sel] = hit
    return hit


def _from_label_selector(sel: LabelSelector) -> Expr:
    parts: list[Expr] = [Compare(k, "==", (v,)) for k, v in sel.match_labels]
    for req in sel.match_expressions:
        if req.operator == "In":
            parts.append(Compare(req.key, "in", req.values))
        elif req.operator == "NotIn":
            parts.append(Compare(req.key, "not in", req.values))
        elif req.operator == "Exists":
            parts.append(Has(req.key))
        else:
            parts.append(Not(Has(req.key)))
    return conj(*parts)


def equal(key: str, value: str) -> Compare:
    return Compare(key, "==", (value,))


# ---------------------------------------------------------------------------------- parsing

_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-")
_WS = " \t"
KEY_MAX = 512

TokKind = Literal[
    "label", "string", "{", "}", ",", "==", "!=", "in", "not in", "!", "contains",
    "starts with", "ends with", "all", "global", "has", "(", ")", "&&", "||", "eof",
]  # fmt: skip


class _Tok(Record):
    """One token of a selector's text, with its column."""

    __slots__ = ("column", "kind", "value")

    kind: TokKind
    value: str
    column: int

    def __init__(self, kind: TokKind, value: str, column: int) -> None:
        set_field(self, "kind", kind)
        set_field(self, "value", value)
        set_field(self, "column", column)


def _identifier(text: str, i: int) -> int:
    """End of the label key starting at ``i`` (``i`` when there is none)."""
    j = i
    while j < len(text) and text[j] in _KEY_CHARS:
        j += 1
    return j


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)

    def fail(at: int, message: str) -> SelectorSyntaxError:
        return SelectorSyntaxError(text, at + 1, message)

    while True:
        while i < n and text[i] in _WS:
            i += 1
        if i >= n:
            toks.append(_Tok("eof", "", n + 1))
            return toks
        c = text[i]
        start = i
        last = toks[-1].kind if toks else None
        if c in "(){},":
            toks.append(_Tok(c, c, start + 1))  # type: ignore[arg-type]
            i += 1
        elif c in "\"'":
            end = text.find(c, i + 1)
            if end < 0:
                raise fail(start, "unterminated string")
            toks.append(_Tok("string", text[i + 1 : end], start + 1))
            i = end + 1
        elif c == "=":
            if text.startswith("==", i):
                toks.append(_Tok("==", "==", start + 1))
                i += 2
            else:
                raise fail(start, "expected ==")
        elif c == "!":
            if text.startswith("!=", i):
                toks.append(_Tok("!=", "!=", start + 1))
                i += 2
            else:
                toks.append(_Tok("!", "!", start + 1))
                i += 1
        elif c in "&|":
            if text.startswith(c * 2, i):
                toks.append(_Tok("&&" if c == "&" else "||", c * 2, start + 1))
                i += 2
            else:
                raise fail(start, f"expected {c * 2}")
        elif last == "label":
            # After a label: an operator word, not another label.
            rest = text[i:]
            if rest.startswith("contains"):
                toks.append(_Tok("contains", "contains", start + 1))
                i += len("contains")
                continue
            for word, kind in (("starts", "starts with"), ("ends", "ends with"), ("not", "not in")):
                if rest.startswith(word):
                    j = i + len(word)
                    while j < n and text[j] in _WS:
                        j += 1
                    second = "in" if word == "not" else "with"
                    if not text.startswith(second, j):
                        raise fail(start, f"expected an operator after label {toks[-1].value!r}")
                    toks.append(_Tok(kind, kind, start + 1))  # type: ignore[arg-type]
                    i = j + len(second)
                    break
            else:
                if rest.startswith("in"):
                    toks.append(_Tok("in", "in", start + 1))
                    i += 2
                else:
                    raise fail(start, f"expected an operator after label {toks[-1].value!r}")
        elif text.startswith(("has(", "all(", "global("), i):
            word = text[i : text.index("(", i)]
            i += len(word) + 1
            while i < n and text[i] in _WS:
                i += 1
            ident = ""
            if word == "has":
                end = _identifier(text, i)
                # Calico's tokenizer finds no identifier that runs to the end of the input.
                if end == i or end >= n:
                    raise fail(start, "no label name in has( expression")
                ident = text[i:end]
                i = end
                while i < n and text[i] in _WS:
                    i += 1
            if i >= n or text[i] != ")":
                raise fail(start, f"no closing ')' after {word}(")
            i += 1
            toks.append(_Tok(word, ident, start + 1))  # type: ignore[arg-type]
        else:
            end = _identifier(text, i)
            if end == i or end >= n:
                raise fail(start, "unexpected characters")
            toks.append(_Tok("label", text[i:end], start + 1))
            i = end


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.pos = 0

    def peek(self) -> _Tok:
        return self.toks[self.pos]

    def take(self) -> _Tok:
        tok = self.toks[self.pos]
        if tok.kind != "eof":
            self.pos += 1
        return tok

    def fail(self, tok: _Tok, message: str) -> SelectorSyntaxError:
        return SelectorSyntaxError(self.text, tok.column, message)

    def parse(self) -> Expr:
        if self.peek().kind == "eof":
            return ALL
        e = self.or_expr()
        tok = self.peek()
        if tok.kind != "eof":
            raise self.fail(tok, f"unexpected {_show(tok)} at end of selector")
        return e

    def or_expr(self) -> Expr:
        parts = [self.and_expr()]
        while self.peek().kind == "||":
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def and_expr(self) -> Expr:
        parts = [self.operation()]
        while self.peek().kind == "&&":
            self.take()
            parts.append(self.operation())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def operation(self) -> Expr:
        negated = False
        while self.peek().kind == "!":
            self.take()
            negated = not negated
        tok = self.take()
        e: Expr
        if tok.kind == "has":
            e = Has(tok.value)
        elif tok.kind == "all":
            e = ALL
        elif tok.kind == "global":
            e = Global()
        elif tok.kind == "label":
            e = self.comparison(tok)
        elif tok.kind == "(":
            e = self.or_expr()
            close = self.take()
            if close.kind != ")":
                raise self.fail(close, f"expected ) but found {_show(close)}")
        else:
            raise self.fail(tok, f"unexpected {_show(tok)}")
        return Not(e) if negated else e

    def comparison(self, label: _Tok) -> Expr:
        if len(label.value) > KEY_MAX:
            raise self.fail(label, f"label key longer than {KEY_MAX} characters")
        op = self.take()
        if op.kind in ("==", "!=", "contains", "starts with", "ends with"):
            value = self.take()
            if value.kind != "string":
                raise self.fail(value, f"expected a quoted string after {op.kind}")
            return Compare(label.value, op.kind, (value.value,))
        if op.kind in ("in", "not in"):
            brace = self.take()
            if brace.kind != "{":
                raise self.fail(brace, f"expected {{ after {op.kind}")
            values: list[str] = []
            while self.peek().kind == "string":
                values.append(self.take().value)
                if self.peek().kind != ",":
                    break
                self.take()
            close = self.take()
            if close.kind != "}":
                raise self.fail(close, f"expected }} but found {_show(close)}")
            return Compare(label.value, op.kind, tuple(sorted(set(values))))
        raise self.fail(op, f"expected an operator after label {label.value!r}")


def _show(tok: _Tok) -> str:
    if tok.kind == "eof":
        return "end of selector"
    if tok.kind == "label":
        return f"label {tok.value!r}"
    if tok.kind == "string":
        return f"string {_quote(tok.value)}"
    return repr(tok.kind)


_CACHE: dict[str, Expr] = {}


def parse(text: str) -> Expr:
    """Parse a Calico selector (cached by text); :class:`SelectorSyntaxError` names the column."""
    hit = _CACHE.get(text)
    if hit is None:
        hit = _Parser(text).parse()
        if len(_CACHE) < 65536:
            _CACHE[text] = hit
    return hit


def describe_labels(labels: Iterable[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(labels)) + "}"
