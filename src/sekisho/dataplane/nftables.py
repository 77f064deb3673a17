"""The nftables applier: our whole table, replaced in one ``nft -f`` transaction when it differs.

The renderer's script atomically creates-or-replaces our table (``table inet
P`` + ``delete table inet P`` + the full definition, in one file, one
transaction). Before writing, the applier lists what is installed and compares
both sides normalized (counters, handles, blank lines and element order
ignored), so an unchanged table is never rewritten. What the kernel lists back
after our own write is remembered as the installed form of that desired table,
so the comparison stays exact even where the renderer's text and the kernel's
listing differ in spelling.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from sekisho.dataplane.desired import NftRulesetLike, owned
from sekisho.dataplane.iptables import ApplyResult
from sekisho.dataplane.runner import CommandRunner
from sekisho.errors import CommandFailed, DataplaneError

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


def _fingerprint(ruleset: NftRulesetLike) -> str:
    return hashlib.sha1(ruleset.script().encode()).hexdigest()


Block = tuple[str, str]
"""(kind, name) of one top-level object in our table: ``("chain", "sekisho-FORWARD")``."""

LIST_EACH_MAX = 4
"""Up to this many written blocks are listed one by one after a write; more: the whole table."""

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


class NftApplier:
    """Keeps our nftables table equal to a desired ruleset; touches no other table.

    When the table exists, only the sets and chains that differ are rewritten, in
    one ``nft -f`` transaction (flush + refill), so untouched chains keep their
    rules, handles and counters; a missing table, or a change the partial update
    cannot express, is one atomic replace of the whole table. Like the iptables
    applier it trusts a cache of what it wrote for updates and reads the whole
    table back on :meth:`resync`.
    """

    def __init__(
        self, runner: CommandRunner, prefix: str = "sekisho", family: str = "inet"
    ) -> None:
        if not prefix or not re.fullmatch(r"[A-Za-z0-9_.-]+", prefix):
            raise ValueError(f"prefix {prefix!r}: expected letters, digits, '_', '.' or '-'")
        self.runner = runner
        self.prefix = prefix
        self.family = family
        self._forms: dict[tuple[Block, tuple[str, ...]], tuple[str, ...]] = {}
        """(block, desired body) -> the body the kernel lists back for it (learned)."""
        self._installed: dict[Block, tuple[str, ...]] | None = None
        """Our table's blocks as the kernel lists them (cache), None when unknown."""
        self._cache: str | None = None
        """Fingerprint of the desired ruleset installed according to the cache."""
        self._block_memo: dict[tuple[str, Any], tuple[Block, tuple[str, ...]]] = {}
        self._unverified: set[Block] = set()
        """Blocks written from the cache and not yet listed back (checked on resync)."""

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

    def _plan(self, ruleset: NftRulesetLike, have: dict[Block, tuple[str, ...]] | None) -> _Plan:
        """What takes ``have`` (None: no table) to ``ruleset``."""
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
        changed = [b for b in want if b in have and have[b] != forms.get((b, want[b]), want[b])]
        new = [b for b in want if b not in have]
        gone = [b for b in have if b not in want]
        changes = [f"{k} {n} rewritten" for k, n in changed]
        changes += [f"{k} {n} created" for k, n in new]
        changes += [f"{k} {n} deleted" for k, n in gone]
        if not changes:
            return _Plan([], None, [], [], [])
        t = f"{ruleset.family} {ruleset.table}"
        lines: list[str] = []

        def define(kind: str, name: str) -> None:
            body = "\n".join(want[(kind, name)])
            lines.append(f"table {t} {{\n{kind} {name} {{\n{body}\n}}\n}}")

        for kind, name in new:  # sets and chains exist before any rule refers to them
            if kind != "chain":
                define(kind, name)
            else:
                header = [x for x in want[(kind, name)] if x.startswith("type ")]
                lines.append(f"add chain {t} {name}" + (f" {{ {header[0]} }}" if header else ""))
        for kind, name in changed + gone:
            lines.append(f"flush {kind} {t} {name}")
        for kind, name in changed + new:
            if kind == "chain" or (kind, name) in changed:
                define(kind, name)
        lines += [f"delete {kind} {t} {name}" for kind, name in gone if kind == "chain"]
        lines += [f"delete {kind} {t} {name}" for kind, name in gone if kind != "chain"]
        return _Plan(changes, "\n".join(lines) + "\n", changed + new, gone, changed + new + gone)

    def _want_blocks(self, ruleset: NftRulesetLike) -> dict[Block, tuple[str, ...]] | None:
        """The desired table's blocks in normalized form.

        A renderer dataclass with ``sets`` and ``chains`` is taken apart block by
        block (each block's text from the renderer's own ``table_text`` of a
        one-block copy), memoized by content, so a change costs only what changed.
        """
        rs: Any = ruleset
        if not all(hasattr(rs, a) for a in ("__dataclass_fields__", "sets", "chains")):
            return table_blocks(normalize_nft(ruleset.table_text()))
        old, memo = self._block_memo, {}
        out: dict[Block, tuple[str, ...]] = {}
        try:
            for kind, items in (("set", rs.sets), ("chain", rs.chains)):
                for item in items:
                    key = (kind, item)
                    got = old.get(key)
                    if got is None:
                        one = dataclasses.replace(
                            rs,
                            sets=(item,) if kind == "set" else (),
                            chains=(item,) if kind == "chain" else (),
                        )
                        blocks = table_blocks(normalize_nft(one.table_text()))
                        if blocks is None or len(blocks) != 1:
                            return table_blocks(normalize_nft(ruleset.table_text()))
                        got = next(iter(blocks.items()))
                    memo[key] = got
                    out[got[0]] = got[1]
        except TypeError:  # unhashable or not replaceable: the whole text it is
            return table_blocks(normalize_nft(ruleset.table_text()))
        self._block_memo = memo
        return out

    def _read_blocks(self, ruleset: NftRulesetLike) -> dict[Block, tuple[str, ...]] | None:
        listed = self.read_back(ruleset.table, ruleset.family)
        if listed is None:
            return None
        blocks = table_blocks(normalize_nft(listed))
        if blocks is None:  # a shape we do not take apart: compare nothing, replace all
            raise DataplaneError(f"cannot parse `nft list table {ruleset.family} {ruleset.table}`")
        return blocks

    def drift(self, ruleset: NftRulesetLike) -> tuple[str, ...]:
        """How the installed table differs from ``ruleset`` (reads the kernel; changes nothing)."""
        self._check(ruleset)
        return tuple(self._plan(ruleset, self._read_blocks(ruleset)).changes)

    def apply(self, ruleset: NftRulesetLike, *, refresh: bool = False) -> ApplyResult:
        """Make our table equal ``ruleset`` in one transaction, if it differs.

        From the cache (the fast path) nothing is listed before or after the write;
        blocks written that way are verified by the next read-back (:meth:`resync`).
        """
        self._check(ruleset)
        fp = _fingerprint(ruleset)
        if not refresh and self._cache == fp and self._installed is not None:
            return ApplyResult()
        commands = 0
        cached = not refresh and self._installed is not None
        if cached:
            have = self._installed
        else:
            have = self._read_blocks(ruleset)
            commands += 1
        self._cache = None
        plan = self._plan(ruleset, have)
        try:
            commands += self._execute(ruleset, plan, have, learn=not cached)
        except CommandFailed as exc:
            self._installed = None
            if not cached:
                raise
            log.warning("apply from cache failed (%s); reading back and retrying once", exc)
            have = self._read_blocks(ruleset)
            plan = self._plan(ruleset, have)
            commands += 1 + self._execute(ruleset, plan, have, learn=True)
        self._cache = fp
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

    def _execute(
        self,
        ruleset: NftRulesetLike,
        plan: _Plan,
        have: dict[Block, tuple[str, ...]] | None,
        *,
        learn: bool,
    ) -> int:
        want = self._want_blocks(ruleset) or {}
        if not plan.changes:
            if learn:
                self._learn(want, have or {}, list(want))
            self._installed = have
            return 0
        if plan.script is not None:
            try:
                self.runner(["nft", "-f", "-"], stdin=plan.script)
            except CommandFailed as exc:
                log.warning("partial update refused (%s); replacing the table", exc.stderr.strip())
            else:
                installed = {b: body for b, body in (have or {}).items() if b not in plan.gone}
                if not learn:
                    for b in plan.touched:
                        known = self._forms.get((b, want[b]))
                        installed[b] = known if known is not None else want[b]
                        if known is None:
                            self._unverified.add(b)
                    self._installed = installed
                    return 1
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
                self._installed = installed
                return 1 + min(len(plan.touched), LIST_EACH_MAX + 1)
        self.runner(["nft", "-f", "-"], stdin=ruleset.script())
        full = self._read_blocks(ruleset)
        if full is None:
            raise DataplaneError(f"table {ruleset.family} {ruleset.table} is missing after nft -f")
        self._forms = {}
        self._unverified.clear()
        self._learn(want, full, list(want))
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
        self._cache = None
        self._installed = None
        self._unverified.clear()
        if not ours:
            return ApplyResult()
        self.runner(["nft", "-f", "-"], stdin="".join(f"delete table {f} {t}\n" for f, t in ours))
        return ApplyResult(tuple(f"table {f} {t} deleted" for f, t in ours), 2)
