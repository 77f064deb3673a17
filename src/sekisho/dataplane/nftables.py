"""The nftables applier: our whole table, replaced in one ``nft -f`` transaction when it differs.

The renderer's script atomically creates-or-replaces our table (``table inet
P`` + ``delete table inet P`` + the full definition, in one file, one
transaction). Before writing, the applier lists what is installed and compares
both sides normalized (counters, handles, blank lines and element order
ignored), so an unchanged table is never rewritten. What the kernel lists back
after our own write is remembered as the installed form of that desired table,
so the comparison stays exact even where the renderer's text and the kernel's
listing differ in spelling.

An update costs what it touches: a set whose members changed gets its
elements added and deleted (``add element``/``delete element``) rather than
being flushed and refilled, and with ``linger`` a set or chain no rule refers
to any more (a policy no local pod uses now, the chain of a pod that went) is
left in the table, unreferenced, for that many seconds instead of being deleted
at once: churn that brings it back finds it there, usually unchanged. A
lingering block never decides a packet (nothing jumps to it or looks it up);
only sets, policy chains and workload endpoint chains linger.

A transaction is atomic for the rules, but not for every set lookup around its
commit (measured on Linux 6.18 by ``tests/dataplane/test_set_kind_kernel.py``:
a rule that drops what a set holds, rewritten thousands of times while packets
flow): an interval set (``flags interval``) made in the transaction that first
looks it up, and a set emptied in the transaction that moves its rules
elsewhere, each let a few packets of the moment of the commit miss the set. So
a new interval set is made in a transaction of its own before the one whose
rules use it, a set that goes is deleted without being emptied first, and a set
whose flags change (the renderer writes ``flags interval`` only on a set that
holds a network) goes through a scratch set in three transactions (see
:meth:`NftApplier._plan`). Replacing the whole table (a missing table, a change
the partial update cannot express) remakes every set at once, as before.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sekisho.dataplane.desired import NftRulesetLike, owned
from sekisho.dataplane.iptables import ApplyResult
from sekisho.dataplane.runner import CommandRunner
from sekisho.errors import CommandFailed, DataplaneError
from sekisho.render.names import churned, temp_set_name

log = logging.getLogger(__name__)

__all__ = ["NftApplier", "normalize_nft"]

_COUNTER = re.compile(r"counter packets \d+ bytes \d+")
_HANDLE = re.compile(r"\s*# handle \d+")
_ELEMENTS = re.compile(r"elements = \{([^}]*)\}", re.S)
_INLINE_SET = re.compile(r"\{ ([^{}\n]*,[^{}\n]*) \}")


def normalize_nft(text: str) -> str:
    """A canonical form of ``nft list table`` text: no counters values, handles, blanks or comments lines."""
    text = _COUNTER.sub("counter", text)
    text = _HANDLE.sub("", text)
    text = _ELEMENTS.sub(
        lambda m: (
            "elements = { "
            + ", ".join(sorted(e.strip() for e in m.group(1).split(",") if e.strip()))
            + " }"
        ),
        text,
    )
    # Anonymous sets and verdict maps are unordered: the kernel lists them in hash order.
    text = _INLINE_SET.sub(
        lambda m: "{ " + ", ".join(sorted(e.strip() for e in m.group(1).split(","))) + " }", text
    )
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return "\n".join(line for line in lines if line and not line.startswith("#"))


Block = tuple[str, str]
"""(kind, name) of one top-level object in our table: ``("chain", "sekisho-FORWARD")``."""

LIST_EACH_MAX = 4
"""Up to this many written blocks are listed one by one after a write; more: the whole table."""

LINE_MEMO_MAX = 400_000
"""Rule texts whose normalized form is remembered, at most (then forgotten at once)."""

_BLOCK_HEAD = re.compile(r"(chain|set|map) (\S+) \{")


def table_blocks(normalized: str) -> dict[Block, tuple[str, ...]] | None:
    """The sets and chains of one normalized table listing, each with its body lines.

    None when the text has a shape we do not take apart (then the whole table is replaced).
    """
    blocks: dict[Block, tuple[str, ...]] = {}
    current: Block | None = None
    body: list[str] = []
    depth = 0
    for line in normalized.splitlines():
        if depth == 0:
            if line.startswith("table ") and line.endswith("{"):
                depth = 1
                continue
            return None
        if depth == 1:
            if line == "}":
                depth = 0
                continue
            head = _BLOCK_HEAD.fullmatch(line)
            if head is None:
                return None
            current, body, depth = (head.group(1), head.group(2)), [], 2
            continue
        if depth == 2 and line == "}":
            assert current is not None
            blocks[current] = tuple(body)
            depth = 1
            continue
        depth += line.count("{") - line.count("}")
        body.append(line)
    return blocks if depth == 0 else None


def _norm_line(line: str, memo: dict[str, str]) -> str:
    """One rule (or chain header) as :func:`normalize_nft` of the renderer's normalized
    text has it ("" when it is not one line of its own), memoized by text."""
    got = memo.get(line)
    if got is None:
        got = " ".join(line.split())
        if got.count("{") != got.count("}"):
            got = ""  # not one line of its own: the caller takes the generic path
        elif "{" in got or "#" in got or "counter" in got:
            got = normalize_nft(_BRACES.sub(_sort_braces, got))
    memo[line] = got
    return got


_BRACES = re.compile(r"\{ ([^{}]*) \}")


def _sort_braces(m: re.Match[str]) -> str:
    """Elements of a ``{ ... }`` list sorted (as the renderer's normalized text has them)."""
    return "{ " + ", ".join(sorted(i.strip() for i in m.group(1).split(","))) + " }"


_ELEMENTS_LINE = "elements = { "


def _element_delta(
    have: tuple[str, ...], want: tuple[str, ...]
) -> tuple[list[str], list[str]] | None:
    """(elements to delete, elements to add) that take one set's body ``have`` to
    ``want``, or None when more than the elements differ, or when a flush and refill
    is as cheap."""

    def split(body: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]] | None:
        if body and body[-1].startswith(_ELEMENTS_LINE):
            line = body[-1]
            if not line.endswith(" }"):
                return None
            return body[:-1], line[len(_ELEMENTS_LINE) : -2].split(", ")
        return body, []

    a, b = split(have), split(want)
    if a is None or b is None or a[0] != b[0] or not b[1]:
        return None
    old, new = set(a[1]), set(b[1])
    drop, add = sorted(old - new), sorted(new - old)
    if len(drop) + len(add) >= len(new):
        return None
    return drop, add


def _head(body: tuple[str, ...]) -> tuple[str, ...]:
    """A set's body without its elements: its type and flags."""
    return tuple(line for line in body if not line.startswith(_ELEMENTS_LINE))


def _lookup(sets: dict[str, str]) -> re.Pattern[str]:
    """``@NAME`` of a set named by a key of ``sets`` (not the start of a longer name)."""
    return re.compile(r"@(" + "|".join(re.escape(n) for n in sorted(sets)) + r")(?![\w.-])")


def _users(blocks: dict[Block, tuple[str, ...]], sets: dict[str, str]) -> list[Block]:
    """The chains of ``blocks`` with a rule that looks up a set named by a key of ``sets``."""
    found = _lookup(sets)
    return [
        b for b, body in blocks.items() if b[0] == "chain" and any(found.search(x) for x in body)
    ]


def _renamed(body: tuple[str, ...], sets: dict[str, str]) -> tuple[str, ...]:
    """``body`` with every lookup of a set named by a key of ``sets`` turned to its value."""
    found = _lookup(sets)
    return tuple(found.sub(lambda m: "@" + sets[m.group(1)], x) for x in body)


@dataclass(slots=True)
class _Plan:
    changes: list[str]
    script: str | None
    """Partial script (only what differs), or None: replace the whole table (or nothing)."""
    touched: list[Block]
    """Blocks the partial script writes (read back afterwards to learn their form)."""
    gone: list[Block]
    blocks: list[Block]
    """The block each entry of ``changes`` is about."""
    want: dict[Block, tuple[str, ...]] = field(default_factory=dict)
    lingering: list[Block] = field(default_factory=list)
    """Blocks no longer wanted that stay (unreferenced) until ``linger`` runs out."""
    pre: str | None = None
    """A transaction before ``script``: sets made before any rule looks them up."""
    post: str | None = None
    """A transaction after ``script``: rules moved back from scratch sets, which go."""


class NftApplier:
    """Keeps our nftables table equal to a desired ruleset; touches no other table.

    When the table exists, only the sets and chains that differ are rewritten, in
    one ``nft -f`` transaction (a set's elements added and deleted, a chain flushed
    and refilled), so untouched chains keep their rules, handles and counters; a
    missing table, or a change the partial update cannot express, is one atomic
    replace of the whole table. Like the iptables applier it trusts a cache of
    what it wrote for updates and reads the whole table back on :meth:`resync`.

    ``linger``: seconds a set, policy chain or workload endpoint chain that is no
    longer wanted stays in the table before it is deleted (0: at once; host endpoint
    and base chains always go at once). Nothing refers to it meanwhile,
    so it decides no packet; when it is wanted again it is compared like any other
    block, and rewritten only if it differs. It is deleted by the first apply or
    resync after its time runs out (blocks go in the order they were left, so a
    lingering chain always goes with or before the sets and chains it refers to).
    """

    def __init__(
        self,
        runner: CommandRunner,
        prefix: str = "sekisho",
        family: str = "inet",
        *,
        linger: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        deltas: bool = True,
    ) -> None:
        if not prefix or not re.fullmatch(r"[A-Za-z0-9_.-]+", prefix):
            raise ValueError(f"prefix {prefix!r}: expected letters, digits, '_', '.' or '-'")
        self.runner = runner
        self.prefix = prefix
        self.family = family
        self.linger = linger
        self.clock = clock
        self.deltas = deltas
        """Change a set by adding and deleting elements (False: flush and refill it; the
        benchmarks' baseline)."""
        self._forms: dict[tuple[Block, tuple[str, ...]], tuple[str, ...]] = {}
        """(block, desired body) -> the body the kernel lists back for it (learned)."""
        self._installed: dict[Block, tuple[str, ...]] | None = None
        """Our table's blocks as the kernel lists them (cache), None when unknown."""
        self._last: object | None = None
        """The desired ruleset installed according to the cache (the very object)."""
        self._block_memo: tuple[
            dict[str, tuple[Any, tuple[Block, tuple[str, ...]]]],
            dict[str, tuple[Any, Any, Any, tuple[Block, tuple[str, ...]]]],
        ] = ({}, {})
        """Normalized blocks of the last desired table's sets by name (with the set object)
        and chains by name (with the chain, its rules and header), reused while the
        renderer hands the very same objects again (a change costs what it touches, not a
        walk of every rule or element)."""
        self._agreed: dict[Block, tuple[str, ...]] | None = None
        """The desired blocks of the last apply that left the cache equal to them (the
        very body objects): a block whose desired body is still that object needs no
        comparison. None when the cache was not left equal (failure, a read-back)."""
        self._line_memo: dict[str, str] = {}
        """A rule's text -> its normalized form (emptied when it outgrows LINE_MEMO_MAX)."""
        self._unverified: set[Block] = set()
        """Blocks written from the cache and not yet listed back (checked on resync)."""
        self._gone_at: dict[Block, float] = {}
        """Lingering blocks (installed, no longer wanted) -> when they were left."""

    def read_back(self, table: str | None = None, family: str | None = None) -> str | None:
        """``nft list table`` of our table, or None when it does not exist."""
        try:
            return self.runner(
                ["nft", "list", "table", family or self.family, table or self.prefix]
            )
        except CommandFailed as exc:
            if "No such file" in exc.stderr or "does not exist" in exc.stderr:
                return None
            raise

    def _check(self, ruleset: NftRulesetLike) -> None:
        if not owned(ruleset.table, self.prefix):
            raise DataplaneError(
                f"table {ruleset.table!r} is not ours (not named {self.prefix}-...); refusing to touch it"
            )

    def _lingers(self, block: Block, body: tuple[str, ...], now: float, known: bool) -> bool:
        """Whether an installed block no longer wanted stays for now (see ``linger``)."""
        if self.linger <= 0 or not churned(self.prefix, block[1]):
            return False
        if block[0] == "chain" and body and body[0].startswith("type ") and " hook " in body[0]:
            return False
        since = self._gone_at.get(block)
        if since is None:
            return known  # from our own cache: it was ours and wanted until now
        return now - since < self.linger

    def _plan(
        self,
        ruleset: NftRulesetLike,
        have: dict[Block, tuple[str, ...]] | None,
        *,
        known: bool = False,
    ) -> _Plan:
        """What takes ``have`` (None: no table) to ``ruleset``. ``known``: ``have`` is our
        cache (a block in it that is no longer wanted may start lingering)."""
        where = f"table {ruleset.family} {ruleset.table}"
        if have is None:
            return _Plan([f"{where} was missing"], None, [], [], [("table", where)])
        want = self._want_blocks(ruleset)
        if want is None:
            return _Plan(
                [f"{where} replaced (desired text not taken apart)"],
                None,
                [],
                [],
                [("table", where)],
            )
        forms = self._forms
        agreed = self._agreed if known and have is self._installed else None
        if agreed is None:
            changed = [b for b, w in want.items() if b in have and have[b] != forms.get((b, w), w)]
        else:
            # The cache equals the last apply's desired blocks (we wrote it): a body that is
            # still the same object is installed as wanted; only others are compared.
            get = agreed.get
            changed = [
                b
                for b, w in want.items()
                if get(b) is not w and b in have and have[b] != forms.get((b, w), w)
            ]
        new = [b for b in want if b not in have]
        now = self.clock()
        gone: list[Block] = []
        lingering: list[Block] = []
        if len(have) > len(want) - len(new):
            since_of, linger = self._gone_at.get, self.linger
            for b, body in have.items():
                if b not in want:
                    since = since_of(b)  # lingering already (it passed _lingers' other checks)
                    if since is not None and now - since < linger:
                        lingering.append(b)
                    else:
                        (lingering if self._lingers(b, body, now, known) else gone).append(b)
        changes = [f"{k} {n} rewritten" for k, n in changed]
        changes += [f"{k} {n} created" for k, n in new]
        changes += [f"{k} {n} deleted" for k, n in gone]
        if not changes:
            return _Plan([], None, [], [], [], want, lingering)
        t = f"{ruleset.family} {ruleset.table}"
        lines: list[str] = []
        pre: list[str] = []
        post: list[str] = []

        def define(kind: str, name: str, body: tuple[str, ...] | None = None, to: str = "") -> None:
            text = "\n".join(want[(kind, name)] if body is None else body)
            (pre if to == "pre" else post if to == "post" else lines).append(
                f"table {t} {{\n{kind} {name} {{\n{text}\n}}\n}}"
            )

        remade = [
            b
            for b in changed
            if b[0] == "set" and _head(have[b]) != _head(forms.get((b, want[b]), want[b]))
        ]  # sets whose flags (or type) change: they cannot change in place
        temp = {name: temp_set_name(name, self.prefix) for _, name in remade}
        for kind, name in new:  # sets and chains exist before any rule refers to them
            if kind != "chain":
                # a new interval set is committed before a rule looks it up (module docstring)
                define(kind, name, to="pre" if "flags interval" in want[(kind, name)] else "")
            else:
                header = [x for x in want[(kind, name)] if x.startswith("type ")]
                lines.append(f"add chain {t} {name}" + (f" {{ {header[0]} }}" if header else ""))
        flushed: list[Block] = []
        for b in changed:
            if b in remade:
                continue
            delta = _element_delta(have[b], want[b]) if b[0] != "chain" and self.deltas else None
            if delta is None:
                flushed.append(b)
                continue
            drop, add = delta
            if drop:
                lines.append(f"delete element {t} {b[1]} {{ {', '.join(drop)} }}")
            if add:
                lines.append(f"add element {t} {b[1]} {{ {', '.join(add)} }}")
        moved: list[Block] = []  # wanted chains that look up a remade set
        if remade:
            # (1) a scratch set with the new flags and the elements; (2) the rules that look
            # the set up moved to the scratch set, the set deleted and made again; (3) the
            # rules moved back, the scratch set deleted. Each step is one transaction, no
            # rule looks up an interval set made in its own transaction, and every
            # rule always finds a set that holds the elements. A lingering chain that uses
            # the set goes at (2).
            for b in remade:
                spec = "\n".join(want[b])
                pre.append(f"table {t} {{\nset {temp[b[1]]} {{\n{spec}\n}}\n}}")
            for b in _users(have, temp):
                if b not in want and b not in gone:
                    gone.append(b)
                    lingering.remove(b)
                    changes.append(f"{b[0]} {b[1]} deleted")
            moved = _users(want, temp)
            for b in moved:
                post.append(f"flush chain {t} {b[1]}")
                define(*b, to="post")
            post += [f"delete set {t} {name}" for name in temp.values()]
        refill = [b for b in moved if b not in new and b not in flushed]
        for kind, name in flushed + refill + gone:
            # a set that goes is deleted whole: emptied first, a rule of the generation
            # before the commit that still looks it up would miss
            if kind != "set" or (kind, name) in flushed:
                lines.append(f"flush {kind} {t} {name}")
        for kind, name in remade:
            lines.append(f"delete {kind} {t} {name}")
            define(kind, name)
        for kind, name in flushed + new + refill:
            if kind == "chain" or (kind, name) in flushed:
                body = want[(kind, name)]
                define(kind, name, _renamed(body, temp) if (kind, name) in moved else body)
        lines += [f"delete {kind} {t} {name}" for kind, name in gone if kind == "chain"]
        lines += [f"delete {kind} {t} {name}" for kind, name in gone if kind != "chain"]
        return _Plan(
            changes,
            "\n".join(lines) + "\n",
            changed + new + refill,
            gone,
            changed + new + gone,
            want,
            lingering,
            "\n".join(pre) + "\n" if pre else None,
            "\n".join(post) + "\n" if post else None,
        )

    def _want_blocks(self, ruleset: NftRulesetLike) -> dict[Block, tuple[str, ...]] | None:
        """The desired table's blocks in normalized form.

        A renderer dataclass with ``sets`` and ``chains`` is taken apart block by
        block, memoized while the renderer hands the very same set object or chain
        rules, so a change costs only what changed (the walk itself aside): a set's
        body is spelt from its type and sorted elements, a chain's from its rules,
        each rule normalized once while rules use it (:meth:`_block`; a test holds
        it equal to the whole table's text taken apart).
        """
        rs: Any = ruleset
        if not all(hasattr(rs, a) for a in ("__dataclass_fields__", "sets", "chains")):
            return table_blocks(normalize_nft(ruleset.table_text()))
        old_sets, old_chains = self._block_memo
        sets: dict[str, tuple[Any, tuple[Block, tuple[str, ...]]]] = {}
        chains: dict[str, tuple[Any, Any, Any, tuple[Block, tuple[str, ...]]]] = {}
        if len(self._line_memo) > LINE_MEMO_MAX:
            self._line_memo = {}
        lines = self._line_memo
        out: dict[Block, tuple[str, ...]] = {}
        get_set, get_chain = old_sets.get, old_chains.get
        # By identity: the renderer hands an unchanged set, or an unchanged chain (or its
        # rules), as the same object; anything else is spelt again (:meth:`_block`).
        try:
            for item in rs.sets:
                name = item.name
                entry = get_set(name)
                if entry is not None and entry[0] is item:
                    got = entry[1]
                else:
                    made = self._block(rs, "set", item, lines)
                    if made is None:
                        return table_blocks(normalize_nft(ruleset.table_text()))
                    got = made
                sets[name] = (item, got)
                out[got[0]] = got[1]
            for item in rs.chains:
                name, head, rules = item
                chain = get_chain(name)
                if chain is not None and (
                    chain[0] is item or (chain[1] is rules and chain[2] == head)
                ):
                    got = chain[3]
                else:
                    made = self._block(rs, "chain", item, lines)
                    if made is None:
                        return table_blocks(normalize_nft(ruleset.table_text()))
                    got = made
                chains[name] = (item, rules, head, got)
                out[got[0]] = got[1]
        except (TypeError, ValueError, AttributeError):
            # not a renderer's sets and (name, header, rules) chains: the whole text it is
            return table_blocks(normalize_nft(ruleset.table_text()))
        self._block_memo = (sets, chains)
        return out

    @staticmethod
    def _block(
        rs: Any, kind: str, item: Any, lines: dict[str, str]
    ) -> tuple[Block, tuple[str, ...]] | None:
        """One set's or chain's normalized block, or None when it has a shape not known here."""
        if kind == "set" and isinstance(getattr(item, "elements", None), tuple):
            block = (str(getattr(item, "kind", "set")), item.name)
            body = [f"type {' '.join(str(item.type).split())}"]
            if getattr(item, "interval", False):
                body.append("flags interval")
            if item.elements:
                elements = sorted(item.elements)
                text = "".join(elements)
                if not any(c in text for c in (",", "{", "}", "  ", "\t", "\n")):
                    body.append("elements = { " + ", ".join(elements) + " }")
                    return block, tuple(body)
            else:
                return block, tuple(body)
        elif kind == "chain" and isinstance(item, tuple) and len(item) == 3:
            name, header, rules = item
            body = [] if header is None else [_norm_line(header, lines)]
            body += [_norm_line(rule, lines) for rule in rules]
            if all(line and "\n" not in line for line in body):
                return (kind, name), tuple(body)
        one = dataclasses.replace(
            rs,
            sets=(item,) if kind == "set" else (),
            chains=(item,) if kind == "chain" else (),
        )
        blocks = table_blocks(normalize_nft(one.table_text()))
        if blocks is None or len(blocks) != 1:
            return None
        return next(iter(blocks.items()))

    def _read_blocks(self, ruleset: NftRulesetLike) -> dict[Block, tuple[str, ...]] | None:
        listed = self.read_back(ruleset.table, ruleset.family)
        if listed is None:
            return None
        blocks = table_blocks(normalize_nft(listed))
        if blocks is None:  # a shape we do not take apart: compare nothing, replace all
            raise DataplaneError(f"cannot parse `nft list table {ruleset.family} {ruleset.table}`")
        return blocks

    def drift(self, ruleset: NftRulesetLike) -> tuple[str, ...]:
        """How the installed table differs from ``ruleset`` (reads the kernel; changes nothing;
        a block still lingering is not drift)."""
        self._check(ruleset)
        return tuple(self._plan(ruleset, self._read_blocks(ruleset)).changes)

    def apply(self, ruleset: NftRulesetLike, *, refresh: bool = False) -> ApplyResult:
        """Make our table equal ``ruleset`` in one transaction, if it differs.

        From the cache (the fast path) nothing is listed before or after the write;
        blocks written that way are verified by the next read-back (:meth:`resync`).
        """
        self._check(ruleset)
        if not refresh and self._last is ruleset and self._installed is not None:
            return ApplyResult()
        commands = 0
        cached = not refresh and self._installed is not None
        if cached:
            have = self._installed
        else:
            have = self._read_blocks(ruleset)
            commands += 1
        self._last = None
        plan = self._plan(ruleset, have, known=cached)
        try:
            commands += self._execute(ruleset, plan, have, learn=not cached)
        except CommandFailed as exc:
            self._installed = None
            self._agreed = None
            if not cached:
                raise
            log.warning("apply from cache failed (%s); reading back and retrying once", exc)
            have = self._read_blocks(ruleset)
            plan = self._plan(ruleset, have)
            commands += 1 + self._execute(ruleset, plan, have, learn=True)
        self._last = ruleset
        changes = plan.changes
        if not cached and have is not None and self._installed is not None:
            # A block we wrote unverified that the kernel lists the same before and after
            # rewriting it differed only in spelling from our text: not drift.
            spelling = {
                b
                for b in plan.touched
                if b in self._unverified and have.get(b) == self._installed.get(b)
            }
            changes = [
                c for c, b in zip(plan.changes, plan.blocks, strict=True) if b not in spelling
            ]
            self._unverified.clear()
        return ApplyResult(tuple(changes), commands)

    def _settle(self, plan: _Plan) -> None:
        """Record which blocks linger after ``plan`` was written."""
        now = self.clock()
        for b in plan.gone:
            self._gone_at.pop(b, None)
        for b in plan.touched:
            self._gone_at.pop(b, None)
        for b in plan.lingering:
            self._gone_at.setdefault(b, now)
        if len(self._gone_at) > len(plan.lingering):
            keep = set(plan.lingering)
            self._gone_at = {b: t for b, t in self._gone_at.items() if b in keep}

    def _execute(
        self,
        ruleset: NftRulesetLike,
        plan: _Plan,
        have: dict[Block, tuple[str, ...]] | None,
        *,
        learn: bool,
    ) -> int:
        want = plan.want or self._want_blocks(ruleset) or {}
        self._agreed = None
        if not plan.changes:
            if learn:
                self._learn(want, have or {}, list(want))
            self._agreed = want
            self._installed = have
            self._settle(plan)
            return 0
        if plan.script is not None:
            try:
                for script in (plan.pre, plan.script, plan.post):
                    if script is not None:
                        self.runner(["nft", "-f", "-"], stdin=script)
            except CommandFailed as exc:
                log.warning("partial update refused (%s); replacing the table", exc.stderr.strip())
            else:
                if not learn:
                    # the cache is ours alone: update it in place (a copy per apply would
                    # cost the whole table)
                    installed = have if have is not None else {}
                    for b in plan.gone:
                        installed.pop(b, None)
                    for b in plan.touched:
                        known = self._forms.get((b, want[b]))
                        installed[b] = known if known is not None else want[b]
                        if known is None:
                            self._unverified.add(b)
                    self._agreed = want
                    self._installed = installed
                    self._settle(plan)
                    return 1
                installed = {b: body for b, body in (have or {}).items() if b not in plan.gone}
                # Learn how the kernel lists what we wrote. One `nft list` per block:
                # nft 1.0 lists a chain wrongly when other lists share its batch.
                got: dict[Block, tuple[str, ...]] | None = {}
                if len(plan.touched) <= LIST_EACH_MAX:
                    for kind, name in plan.touched:
                        text = self.runner(
                            ["nft", "list", kind, ruleset.family, ruleset.table, name]
                        )
                        more = table_blocks(normalize_nft(text))
                        if more is not None and got is not None:
                            got.update(more)
                else:
                    got = self._read_blocks(ruleset)
                installed.update(got or {})
                self._learn(want, installed, plan.touched)
                self._agreed = want
                self._installed = installed
                self._settle(plan)
                return 1 + min(len(plan.touched), LIST_EACH_MAX + 1)
        self.runner(["nft", "-f", "-"], stdin=ruleset.script())
        full = self._read_blocks(ruleset)
        if full is None:
            raise DataplaneError(f"table {ruleset.family} {ruleset.table} is missing after nft -f")
        self._forms = {}
        self._unverified.clear()
        self._gone_at = {}
        self._learn(want, full, list(want))
        self._agreed = want
        self._installed = full
        return 2

    def _learn(
        self,
        want: dict[Block, tuple[str, ...]],
        installed: dict[Block, tuple[str, ...]],
        blocks: list[Block],
    ) -> None:
        forms = {
            (b, want[b]): self._forms[(b, want[b])] for b in want if (b, want[b]) in self._forms
        }
        for b in blocks:
            if b in want and b in installed:
                forms[(b, want[b])] = installed[b]
        self._forms = forms

    def resync(self, ruleset: NftRulesetLike) -> ApplyResult:
        """Read back our table and rewrite whatever drifted."""
        return self.apply(ruleset, refresh=True)

    def tables(self) -> list[tuple[str, str]]:
        """(family, name) of every table of ours (name starts with the prefix)."""
        out = self.runner(["nft", "list", "tables"])
        found = []
        for line in out.splitlines():
            words = line.split()
            if len(words) == 3 and words[0] == "table" and owned(words[2], self.prefix):
                found.append((words[1], words[2]))
        return found

    def first_documents(self, ruleset: NftRulesetLike) -> list[tuple[str, str]]:
        """(tool, document) that :meth:`apply` sends when our table is missing (one script
        that creates or replaces it): what ``sekisho render`` prints, byte for byte."""
        return [("nft -f", ruleset.script())]

    def cleanup(self) -> ApplyResult:
        """Delete every table of ours (and nothing else) in one transaction."""
        ours = self.tables()
        self._last = None
        self._gone_at = {}
        self._installed = None
        self._agreed = None
        self._unverified.clear()
        if not ours:
            return ApplyResult()
        self.runner(["nft", "-f", "-"], stdin="".join(f"delete table {f} {t}\n" for f, t in ours))
        return ApplyResult(tuple(f"table {f} {t} deleted" for f, t in ours), 2)
