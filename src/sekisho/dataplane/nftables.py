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

import hashlib
import logging
import re

from sekisho.dataplane.desired import NftRulesetLike
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


class NftApplier:
    """Keeps our nftables table equal to a desired ruleset; touches no other table."""

    def __init__(
        self, runner: CommandRunner, prefix: str = "sekisho", family: str = "inet"
    ) -> None:
        if not prefix or not re.fullmatch(r"[A-Za-z0-9_.-]+", prefix):
            raise ValueError(f"prefix {prefix!r}: expected letters, digits, '_', '.' or '-'")
        self.runner = runner
        self.prefix = prefix
        self.family = family
        self._learned: dict[str, str] = {}
        """fingerprint of a desired ruleset -> the kernel's normalized listing of it."""
        self._cache: tuple[str, str] | None = None
        """(fingerprint, normalized listing) of what we last installed and listed."""

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
        if not ruleset.table.startswith(self.prefix):
            raise DataplaneError(
                f"table {ruleset.table!r} does not start with our prefix {self.prefix!r}; refusing to touch it"
            )

    def _differs(self, ruleset: NftRulesetLike, listed: str | None) -> str | None:
        if listed is None:
            return f"table {ruleset.family} {ruleset.table} was missing"
        have = normalize_nft(listed)
        want = self._learned.get(_fingerprint(ruleset)) or normalize_nft(ruleset.table_text())
        if have == want:
            return None
        return f"table {ruleset.family} {ruleset.table} differed ({_first_difference(have, want)})"

    def drift(self, ruleset: NftRulesetLike) -> tuple[str, ...]:
        """How the installed table differs from ``ruleset`` (reads the kernel; changes nothing)."""
        self._check(ruleset)
        why = self._differs(ruleset, self.read_back(ruleset.table, ruleset.family))
        return (why,) if why else ()

    def apply(self, ruleset: NftRulesetLike, *, refresh: bool = False) -> ApplyResult:
        """Make our table equal ``ruleset`` in one transaction, if it differs."""
        self._check(ruleset)
        fp = _fingerprint(ruleset)
        if not refresh and self._cache is not None and self._cache[0] == fp:
            return ApplyResult()
        why = self._differs(ruleset, self.read_back(ruleset.table, ruleset.family))
        commands = 1
        if why is not None:
            try:
                self.runner(["nft", "-f", "-"], stdin=ruleset.script())
            except CommandFailed:
                self._cache = None
                raise
            commands += 1
        listed = self.read_back(ruleset.table, ruleset.family)
        if listed is None:
            self._cache = None
            raise DataplaneError(f"table {ruleset.family} {ruleset.table} is missing after nft -f")
        self._learned = {fp: normalize_nft(listed)}
        self._cache = (fp, self._learned[fp])
        return ApplyResult((why,) if why else (), commands + 1)

    def resync(self, ruleset: NftRulesetLike) -> ApplyResult:
        """Read back our table and replace it if anything drifted."""
        return self.apply(ruleset, refresh=True)

    def tables(self) -> list[tuple[str, str]]:
        """(family, name) of every table of ours (name starts with the prefix)."""
        out = self.runner(["nft", "list", "tables"])
        found = []
        for line in out.splitlines():
            words = line.split()
            if len(words) == 3 and words[0] == "table" and words[2].startswith(self.prefix):
                found.append((words[1], words[2]))
        return found

    def cleanup(self) -> ApplyResult:
        """Delete every table of ours (and nothing else) in one transaction."""
        ours = self.tables()
        self._cache = None
        if not ours:
            return ApplyResult()
        self.runner(["nft", "-f", "-"], stdin="".join(f"delete table {f} {t}\n" for f, t in ours))
        return ApplyResult(tuple(f"table {f} {t} deleted" for f, t in ours), 2)


def _first_difference(have: str, want: str) -> str:
    a, b = have.splitlines(), want.splitlines()
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"line {i + 1}: installed {x!r}, wanted {y!r}"
    if len(a) < len(b):
        return f"installed lacks {b[len(a)]!r}"
    return f"installed has extra {a[len(b)]!r}"
