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


Block = tuple[str, str]
"""(kind, name) of one top-level object in our table: ``("chain", "sekisho-FORWARD")``."""

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


class NftApplier:
    """Keeps our nftables table equal to a desired ruleset; touches no other table.

    When the table exists, only the sets and chains that differ are rewritten, in
    one ``nft -f`` transaction (flush + refill), so untouched chains keep their
    rules, handles and counters; a missing table, or a change the partial update
    cannot express, is one atomic replace of the whole table.
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
        self._cache: str | None = None
        """Fingerprint of the desired ruleset we last installed and read back."""

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

    def _plan(self, ruleset: NftRulesetLike, listed: str | None) -> tuple[list[str], str | None]:
        """(changes, partial script or None for "replace the whole table"); ([], None): in sync."""
        where = f"table {ruleset.family} {ruleset.table}"
        if listed is None:
            return [f"{where} was missing"], None
        want_text = normalize_nft(ruleset.table_text())
        have = table_blocks(normalize_nft(listed))
        want = table_blocks(want_text)
        if have is None or want is None:
            if normalize_nft(listed) == want_text:
                return [], None
            return [f"{where} differed"], None
        changed = [
            b for b in want if b in have and have[b] != self._forms.get((b, want[b]), want[b])
        ]
        new = [b for b in want if b not in have]
        gone = [b for b in have if b not in want]
        changes = [f"{k} {n} rewritten" for k, n in changed]
        changes += [f"{k} {n} created" for k, n in new]
        changes += [f"{k} {n} deleted" for k, n in gone]
        if not changes:
            return [], None
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
        return changes, "\n".join(lines) + "\n"

    def drift(self, ruleset: NftRulesetLike) -> tuple[str, ...]:
        """How the installed table differs from ``ruleset`` (reads the kernel; changes nothing)."""
        self._check(ruleset)
        return tuple(self._plan(ruleset, self.read_back(ruleset.table, ruleset.family))[0])

    def apply(self, ruleset: NftRulesetLike, *, refresh: bool = False) -> ApplyResult:
        """Make our table equal ``ruleset`` in one transaction, if it differs."""
        self._check(ruleset)
        fp = _fingerprint(ruleset)
        if not refresh and self._cache == fp:
            return ApplyResult()
        self._cache = None
        changes, partial = self._plan(ruleset, self.read_back(ruleset.table, ruleset.family))
        commands = 1
        if changes:
            commands += 1
            if partial is not None:
                try:
                    self.runner(["nft", "-f", "-"], stdin=partial)
                except CommandFailed as exc:
                    log.warning(
                        "partial update refused (%s); replacing the table", exc.stderr.strip()
                    )
                    partial = None
                    commands += 1
            if partial is None:
                self.runner(["nft", "-f", "-"], stdin=ruleset.script())
        listed = self.read_back(ruleset.table, ruleset.family)
        commands += 1
        if listed is None:
            raise DataplaneError(f"table {ruleset.family} {ruleset.table} is missing after nft -f")
        self._learn(ruleset, listed)
        self._cache = fp
        return ApplyResult(tuple(changes), commands)

    def _learn(self, ruleset: NftRulesetLike, listed: str) -> None:
        have = table_blocks(normalize_nft(listed))
        want = table_blocks(normalize_nft(ruleset.table_text()))
        if have is None or want is None:
            return
        self._forms = {(b, body): have[b] for b, body in want.items() if b in have}

    def resync(self, ruleset: NftRulesetLike) -> ApplyResult:
        """Read back our table and rewrite whatever drifted."""
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
