"""The iptables + ipset applier: desired ruleset -> diff against what is installed -> one transaction.

Modelled on Calico Felix's ``table.go``: every rule we write carries a hash
comment (``-m comment --comment "PREFIX:HASH"``) so what is installed can be
read back and compared without re-implementing iptables' own normalization;
only chains whose rules differ are rewritten (so the counters of untouched
chains survive); everything we create starts with our prefix and nothing else
is ever changed.

One update is up to four steps, in this order:

1. ``ipset restore``: create new sets (both families: ``inet`` and ``inet6``);
   refill changed sets as a temporary set and ``swap`` it in, so a set is never
   empty while rules use it;
2. one ``iptables-restore --noflush`` document (one COMMIT): declare and rewrite
   the chains that changed, put our hook rules first in the builtin chains
   (removing stale copies), delete our obsolete chains;
3. the same for IPv6: one ``ip6tables-restore --noflush`` document (ip6tables has
   its own filter table, as Felix keeps one table per family);

   a ruleset with doNotTrack or preDNAT policies (``tables``/``tables6``) also has
   chains and hooks in the raw and mangle tables: they are sections of the same
   document, before filter (iptables-nft commits the whole document as one
   transaction; iptables-legacy commits each table at its ``COMMIT``, raw and mangle
   first: a moment with the new early stages and the old filter table);
4. destroy our obsolete sets, now that no rule of either family references them.

Each family's table changes in one transaction; the two are two commands (the
kernel has no transaction across them). IPv6 rules are tagged with their own
hashes (the chain is salted with the family), so the two tables never share a tag.

The applier trusts a cache of what it last wrote (as Calico does) for fast
updates, and reads the kernel back on :meth:`IptablesApplier.resync`, on
start-up and after any failure.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sekisho.dataplane.desired import IptablesRulesetLike, owned
from sekisho.dataplane.ipsets import SetState, normalize_members, parse_ipset_save, plan_sets
from sekisho.dataplane.runner import CommandRunner
from sekisho.errors import CommandFailed, DataplaneError
from sekisho.render.names import churned

log = logging.getLogger(__name__)

__all__ = ["ApplyResult", "InstalledRule", "IptablesApplier", "IptablesState"]


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What one apply (or resync, or cleanup) changed; empty when nothing differed."""

    changes: tuple[str, ...] = ()
    """One human-readable line per object changed, e.g. ``chain sekisho-tw-x rewritten``."""
    commands: int = 0
    """How many commands were run to make the changes."""

    @property
    def changed(self) -> bool:
        return bool(self.changes)


@dataclass(frozen=True, slots=True)
class InstalledRule:
    """One rule of ours: its hash tag, and the spec to name it by (``-D``)."""

    hash: str | None
    spec: str
    read: bool = True
    """True when ``spec`` is the kernel's saved form; False for what we wrote (cache)."""


@dataclass(slots=True)
class IptablesState:
    """Our part of the filter table and our sets."""

    chains: dict[str, list[InstalledRule]] = field(default_factory=dict)
    """Our chains, rules in order."""
    hooks: dict[str, list[tuple[int, InstalledRule]]] = field(default_factory=dict)
    """Builtin chain -> (position, rule) of every rule of ours in it."""
    sets: dict[str, SetState] = field(default_factory=dict)
    pinned: set[str] = field(default_factory=set)
    """Chains of ours that a foreign (user) chain jumps to: never deleted, only emptied."""
    v6: IptablesState | None = None
    """The same for ip6tables' filter table (its ``sets`` unused: IP sets are one namespace)."""
    tables: dict[str, IptablesState] = field(default_factory=dict)
    """Our part of this family's raw and mangle tables (:data:`EARLY_TABLES`)."""

    def family(self, family: int) -> IptablesState:
        if family == 4:
            return self
        if self.v6 is None:
            self.v6 = IptablesState()
        return self.v6


@dataclass(frozen=True, slots=True)
class _Want:
    hash: str
    spec: str
    """The spec we write: our hash comment, then the renderer's spec."""


@dataclass(slots=True)
class _Desired:
    chains: dict[str, list[_Want]]
    hooks: dict[str, list[_Want]]
    sets: dict[str, SetState]
    chains6: dict[str, list[_Want]] = field(default_factory=dict)
    hooks6: dict[str, list[_Want]] = field(default_factory=dict)
    early: dict[tuple[int, str], tuple[dict[str, list[_Want]], dict[str, list[_Want]]]] = field(
        default_factory=dict
    )
    """(family, raw or mangle) -> (chains, hooks) of that table."""


TOOLS = {4: "iptables", 6: "ip6tables"}
EARLY_TABLES = ("raw", "mangle")
"""The tables before filter that hold our chains for doNotTrack and preDNAT policies;
read back, planned and cleaned up like filter (the restore document lists them first)."""


def rule_hash(chain: str, spec: str) -> str:
    """A short, stable hash of one rule in its chain."""
    return hashlib.sha1(f"{chain}\0{spec}".encode()).hexdigest()[:16]


class IptablesApplier:
    """Keeps our chains, hook rules and IP sets equal to a desired ruleset.

    ``iptables-restore`` waits up to 5 s for the xtables lock (``-w 5``): with
    iptables-legacy, kube-proxy and others hold it while they write.

    ``linger``: seconds an IP set, policy chain or workload endpoint chain that is no
    longer wanted stays (unreferenced: it decides no packet) before it is destroyed
    or deleted, as :class:`~sekisho.dataplane.nftables.NftApplier` does; a chain a
    foreign rule jumps to never lingers (it is emptied).
    """

    def __init__(
        self,
        runner: CommandRunner,
        prefix: str = "sekisho",
        *,
        linger: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not prefix or not re.fullmatch(r"[A-Za-z0-9_.-]+", prefix):
            raise ValueError(f"prefix {prefix!r}: expected letters, digits, '_', '.' or '-'")
        self.runner = runner
        self.prefix = prefix
        self._hash_re = re.compile(
            r'--comment "?' + re.escape(prefix) + r':([0-9a-f]{16})(?:"|\s|$)'
        )
        self._jump_re = re.compile(r"(?:^|\s)-[jg]\s+" + re.escape(prefix) + r"(?:-\S*)?(?=\s|$)")
        self._cache: IptablesState | None = None
        self._texts: dict[str, str] = {}
        """hash -> the kernel's saved text of that rule, learned on read-back."""
        self._wants: dict[tuple[str, str, int, str], _Want] = {}
        """(chain, spec, family, table) -> tagged rule, kept from the last plan (hashing is most of
        a plan)."""
        self.linger = linger
        self.clock = clock
        self._gone_at: dict[tuple[str, str], float] = {}
        """Lingering objects (("set"|"chain4"|"chain6", name)) -> when they were left."""
        self._members: dict[tuple[str, ...], frozenset[str]] = {}

    # ---- read back ---------------------------------------------------------------

    def read_back(self) -> IptablesState:
        """What is installed now: our chains and hooks in every table (``iptables-save``,
        ``ip6tables-save``: the tables that exist) and sets (``ipset save``)."""
        saved = self.runner(["iptables-save"])
        state = self.parse_save(saved)
        state.v6 = self.parse_save(self.runner(["ip6tables-save"]))
        state.sets = parse_ipset_save(self.runner(["ipset", "save"]), self.prefix)
        return state

    def parse_save(self, text: str) -> IptablesState:
        """Our chains and hook rules from ``iptables-save`` output: table filter, and in
        :attr:`IptablesState.tables` raw and mangle (other tables are not ours)."""
        top = IptablesState()
        state: IptablesState | None = None
        positions: dict[str, int] = {}
        builtin: set[str] = set()
        for line in text.splitlines():
            if line.startswith("*"):
                name = line.strip()[1:]
                state = top if name == "filter" else None
                if name in EARLY_TABLES:
                    state = top.tables.setdefault(name, IptablesState())
                positions, builtin = {}, set()
                continue
            if state is None:
                continue
            if line.startswith("["):  # counters from `iptables-save -c`
                line = line.split("] ", 1)[-1]
            if line.startswith(":"):
                words = line[1:].split()
                if owned(words[0], self.prefix):
                    state.chains.setdefault(words[0], [])
                elif len(words) > 1 and words[1] != "-":  # a policy: a builtin chain
                    builtin.add(words[0])
            elif line.startswith("-A "):
                parts = line.split(" ", 2)
                chain, spec = parts[1], parts[2] if len(parts) > 2 else ""
                found = self._hash_re.search(spec)
                rule = InstalledRule(found.group(1) if found else None, spec)
                if owned(chain, self.prefix):
                    state.chains.setdefault(chain, []).append(rule)
                else:
                    pos = positions.get(chain, 0)
                    positions[chain] = pos + 1
                    jump = self._jump_re.search(spec)
                    if chain in builtin and (found or jump):
                        state.hooks.setdefault(chain, []).append((pos, rule))
                    elif jump:  # someone else's chain uses ours: leave their rule alone
                        state.pinned.add(jump.group(0).split()[-1])
        return top

    # ---- desired -------------------------------------------------------------------

    def _desired(self, ruleset: IptablesRulesetLike) -> _Desired:
        def own(name: str, what: str) -> None:
            if not owned(name, self.prefix):
                raise DataplaneError(
                    f"{what} {name!r} is not ours (not named {self.prefix}-...); refusing to touch it"
                )

        old_wants, wants = self._wants, {}

        def want(chain: str, spec: str, family: int, table: str) -> _Want:
            key = (chain, spec, family, table)
            w = old_wants.get(key)
            if w is None:
                w = self._want(chain, spec, family, table)
            wants[key] = w
            return w

        tables: dict[tuple[int, str], tuple[dict[str, list[_Want]], dict[str, list[_Want]]]] = {}
        todo = [
            (4, "filter", ruleset.chains, ruleset.hooks),
            (6, "filter", getattr(ruleset, "chains6", ()), getattr(ruleset, "hooks6", ())),
        ]
        for family, attr in ((4, "tables"), (6, "tables6")):
            todo += [(family, t, c, h) for t, c, h in getattr(ruleset, attr, ())]
        for family, table, chain_specs, hook_specs in todo:
            if table not in ("filter", *EARLY_TABLES):
                raise DataplaneError(f"table {table!r}: sekisho writes only filter, raw and mangle")
            chains: dict[str, list[_Want]] = {}
            for name, specs in chain_specs:
                own(name, "chain")
                chains[name] = [want(name, spec, family, table) for spec in specs]
            hooks: dict[str, list[_Want]] = {}
            for builtin, spec in hook_specs:
                if owned(builtin, self.prefix):
                    raise DataplaneError(
                        f"hook chain {builtin!r} is one of ours, not a builtin chain"
                    )
                hooks.setdefault(builtin, []).append(want(builtin, spec, family, table))
            tables[(family, table)] = (chains, hooks)
        self._wants = wants
        old_members, members = self._members, {}
        sets: dict[str, SetState] = {}
        for s in ruleset.sets:
            own(s.name, "set")
            raw = tuple(s.members)
            norm = old_members.get(raw)
            if norm is None:
                norm = normalize_members(raw)
            members[raw] = norm
            sets[s.name] = SetState(s.type, s.family, norm, raw)
        self._members = members
        early = {k: v for k, v in tables.items() if k[1] != "filter"}
        return _Desired(*tables[(4, "filter")], sets, *tables[(6, "filter")], early)

    def _want(self, chain: str, spec: str, family: int = 4, table: str = "filter") -> _Want:
        where = chain if table == "filter" else f"{table}:{chain}"
        h = rule_hash(where if family == 4 else f"ip6:{where}", spec)
        return _Want(h, f'-m comment --comment "{self.prefix}:{h}" {spec}'.rstrip())

    # ---- compare -------------------------------------------------------------------

    def _same_rule(self, have: InstalledRule, want: _Want) -> bool:
        if have.hash != want.hash:
            return False
        if have.read:
            known = self._texts.get(want.hash)
            if known is None:
                self._texts[want.hash] = have.spec
            elif known != have.spec:
                return False
        return True

    def _chain_diff(self, have: list[InstalledRule] | None, want: list[_Want]) -> str | None:
        if have is None:
            return "created"
        if len(have) == len(want) and all(map(self._same_rule, have, want)):
            return None
        if not have and want:
            return f"rewritten (was flushed; {len(want)} rules)"
        if len(have) < len(want):
            return f"rewritten ({len(want) - len(have)} of {len(want)} rules missing)"
        return f"rewritten ({len(want)} rules; installed {len(have)} differ)"

    def _hook_diff(self, have: list[tuple[int, InstalledRule]], want: list[_Want]) -> str | None:
        if len(have) == len(want) and all(
            pos == i and self._same_rule(rule, w)
            for i, ((pos, rule), w) in enumerate(zip(have, want, strict=True))
        ):
            return None
        if not have:
            return "our jump was missing"
        if not want:
            return "stale jump removed"
        if len(have) > len(want):
            return "duplicate or stale jumps removed"
        if any(pos != i for i, (pos, _) in enumerate(have)):
            return "our jump was not first"
        return "our jump was altered"

    def _lingers(self, key: tuple[str, str], now: float, known: bool) -> bool:
        if self.linger <= 0 or not churned(self.prefix, key[1]):
            return False
        since = self._gone_at.get(key)
        if since is None:
            return known
        return now - since < self.linger

    def plan(
        self, installed: IptablesState, ruleset: IptablesRulesetLike, *, known: bool = False
    ) -> _Plan:
        """The commands that take ``installed`` to ``ruleset`` (nothing run yet); ``known``:
        ``installed`` is our cache (what is no longer wanted may start lingering)."""
        desired = self._desired(ruleset)
        now = self.clock()
        v6 = installed.v6 or IptablesState()
        keep_sets = {
            n
            for n in installed.sets
            if n not in desired.sets and self._lingers(("set", n), now, known)
        }
        keep4 = {
            c
            for c in installed.chains
            if c not in desired.chains
            and c not in installed.pinned
            and self._lingers(("chain4", c), now, known)
        }
        keep6 = {
            c
            for c in v6.chains
            if c not in desired.chains6
            and c not in v6.pinned
            and self._lingers(("chain6", c), now, known)
        }
        set_lines, changes, destroy = plan_sets(
            installed.sets, desired.sets, self.prefix, keep_sets
        )
        early: dict[int, tuple[list[str], dict[str, IptablesState]]] = {}
        for family, tag in ((4, ""), (6, "ip6 ")):
            have = installed if family == 4 else v6
            docs: list[str] = []
            states: dict[str, IptablesState] = {}
            for table in EARLY_TABLES:
                chains, hooks = desired.early.get((family, table), ({}, {}))
                part, states[table] = self._plan_table(
                    have.tables.get(table, IptablesState()),
                    chains,
                    hooks,
                    changes,
                    f"{tag}{table} ",
                    table,
                )
                docs += part
            early[family] = (docs, states)
        doc, after = self._plan_table(
            installed, desired.chains, desired.hooks, changes, "", keep=keep4
        )
        after.sets = {n: SetState(s.type, s.family, s.members) for n, s in desired.sets.items()}
        after.sets.update((n, installed.sets[n]) for n in keep_sets)
        doc6, after.v6 = self._plan_table(
            v6, desired.chains6, desired.hooks6, changes, "ip6 ", keep=keep6
        )
        after.tables, after.v6.tables = early[4][1], early[6][1]
        lingering = [("set", n) for n in keep_sets]
        lingering += [("chain4", c) for c in keep4] + [("chain6", c) for c in keep6]
        return _Plan(
            tuple(changes),
            set_lines,
            early[4][0] + doc,
            destroy,
            after,
            early[6][0] + doc6,
            lingering,
        )

    def _settle(self, plan: _Plan) -> None:
        """Record which objects linger after ``plan`` was carried out."""
        now = self.clock()
        self._gone_at = {k: self._gone_at.get(k, now) for k in plan.lingering}

    def _plan_table(
        self,
        installed: IptablesState,
        desired_chains: dict[str, list[_Want]],
        desired_hooks: dict[str, list[_Want]],
        changes: list[str],
        tag: str,
        table: str = "filter",
        keep: set[str] | None = None,
    ) -> tuple[list[str], IptablesState]:
        """One family's restore document of one table and the state after it (changes
        appended); ``keep``: obsolete chains that stay (lingering)."""
        keep = keep or set()
        desired = _Desired(desired_chains, desired_hooks, {})
        write: list[str] = []
        for name, want in desired.chains.items():
            why = self._chain_diff(installed.chains.get(name), want)
            if why is not None:
                write.append(name)
                changes.append(f"{tag}chain {name} {why}")
        obsolete = sorted(c for c in installed.chains if c not in desired.chains and c not in keep)
        delete = [c for c in obsolete if c not in installed.pinned]
        changes += [f"{tag}chain {c} deleted" for c in delete]
        emptied = [c for c in obsolete if c in installed.pinned and installed.chains[c]]
        for c in emptied:
            log.warning("chain %s is obsolete but a foreign rule jumps to it: emptied, kept", c)
            changes.append(f"{tag}chain {c} emptied (a foreign rule still jumps to it)")
        fix: list[str] = []
        for builtin in sorted(set(desired.hooks) | set(installed.hooks)):
            why = self._hook_diff(installed.hooks.get(builtin, []), desired.hooks.get(builtin, []))
            if why is not None:
                fix.append(builtin)
                changes.append(f"{tag}hook {builtin}: {why}")
        doc: list[str] = []
        if write or delete or emptied or fix:
            doc.append(f"*{table}")
            doc += [f":{c} - [0:0]" for c in write + delete + emptied]
            for c in write:
                doc += [f"-A {c} {w.spec}" for w in desired.chains[c]]
            for builtin in fix:
                doc += [f"-D {builtin} {r.spec}" for _, r in installed.hooks.get(builtin, [])]
                doc += [
                    f"-I {builtin} 1 {w.spec}" for w in reversed(desired.hooks.get(builtin, []))
                ]
            doc += [f"-X {c}" for c in delete]
            doc.append("COMMIT")
        after = IptablesState(
            chains={
                name: (
                    [InstalledRule(w.hash, w.spec, read=False) for w in want]
                    if name in write
                    else installed.chains[name]
                )
                for name, want in desired.chains.items()
            },
            hooks={
                b: [(i, InstalledRule(w.hash, w.spec, read=False)) for i, w in enumerate(ws)]
                for b, ws in desired.hooks.items()
            },
            pinned=set(installed.pinned),
        )
        for c in obsolete:
            if c not in delete:
                after.chains[c] = []
        for c in keep:
            after.chains[c] = installed.chains[c]
        return doc, after

    def first_documents(self, ruleset: IptablesRulesetLike) -> list[tuple[str, str]]:
        """(tool, document) that :meth:`apply` sends to a node that has nothing of ours:
        what ``sekisho render`` prints, byte for byte."""
        plan = self.plan(IptablesState(), ruleset)
        docs = [
            ("ipset restore", "".join(line + "\n" for line in plan.set_lines)),
            ("iptables-restore --noflush", "".join(line + "\n" for line in plan.doc)),
        ]
        if plan.doc6:
            docs.append(("ip6tables-restore --noflush", "".join(ln + "\n" for ln in plan.doc6)))
        return docs

    # ---- act -----------------------------------------------------------------------

    def drift(self, ruleset: IptablesRulesetLike) -> tuple[str, ...]:
        """How what is installed now differs from ``ruleset`` (reads the kernel; changes nothing)."""
        return self.plan(self.read_back(), ruleset).changes

    def apply(self, ruleset: IptablesRulesetLike, *, refresh: bool = False) -> ApplyResult:
        """Make the installed state equal ``ruleset``; with ``refresh`` read the kernel first."""
        cached = self._cache is not None and not refresh
        installed = self._cache if cached and self._cache is not None else self.read_back()
        try:
            return self._execute(self.plan(installed, ruleset, known=cached))
        except CommandFailed:
            self._cache = None
            if not cached:
                raise
            log.warning("apply from cache failed; reading back and retrying once")
            return self._execute(self.plan(self.read_back(), ruleset))

    def resync(self, ruleset: IptablesRulesetLike) -> ApplyResult:
        """Read back what is installed and repair every difference (drift)."""
        return self.apply(ruleset, refresh=True)

    def _execute(self, plan: _Plan) -> ApplyResult:
        commands = 0
        if plan.set_lines:
            self.runner(["ipset", "restore"], stdin="\n".join(plan.set_lines) + "\n")
            commands += 1
        for tool, doc in (("iptables", plan.doc), ("ip6tables", plan.doc6)):
            if doc:
                self.runner(
                    [f"{tool}-restore", "--noflush", "-w", "5"], stdin="\n".join(doc) + "\n"
                )
                commands += 1
        self._cache = plan.after
        self._settle(plan)
        if plan.destroy:
            commands += self._destroy_sets(plan.destroy)
        return ApplyResult(plan.changes, commands)

    def _destroy_sets(self, names: Sequence[str]) -> int:
        try:
            self.runner(["ipset", "restore"], stdin="".join(f"destroy {n}\n" for n in names))
            return 1
        except CommandFailed:
            pass
        count = 0
        for name in names:  # one by one, so one set still in use does not keep the rest
            count += 1
            try:
                self.runner(["ipset", "destroy", name])
            except CommandFailed as exc:
                log.warning("could not destroy set %s: %s", name, exc.stderr.strip())
                self._cache = None
        return count

    def cleanup(self) -> ApplyResult:
        """Remove every object of ours (hook rules, chains, sets) and nothing else."""
        self._gone_at = {}
        installed = self.read_back()
        changes: list[str] = []
        commands = 0
        for family, ftag in ((4, ""), (6, "ip6 ")):
            top = installed.family(family)
            document: list[str] = []
            for name in (*EARLY_TABLES, "filter"):
                table = top if name == "filter" else top.tables.get(name, IptablesState())
                tag = ftag if name == "filter" else f"{ftag}{name} "
                doc: list[str] = []
                for builtin, rules in sorted(table.hooks.items()):
                    doc += [f"-D {builtin} {r.spec}" for _, r in rules]
                    changes.append(f"{tag}hook {builtin}: {len(rules)} jump(s) removed")
                chains = sorted(table.chains)
                gone = [c for c in chains if c not in table.pinned]
                doc += [f":{c} - [0:0]" for c in chains] + [f"-X {c}" for c in gone]
                changes += [f"{tag}chain {c} deleted" for c in gone]
                changes += [
                    f"{tag}chain {c} emptied (a foreign rule jumps to it)"
                    for c in chains
                    if c not in gone
                ]
                if doc:
                    document += [f"*{name}", *doc, "COMMIT"]
            if document:
                self.runner(
                    [f"{TOOLS[family]}-restore", "--noflush", "-w", "5"],
                    stdin="\n".join(document) + "\n",
                )
                commands += 1
        if installed.sets:
            commands += self._destroy_sets(sorted(installed.sets))
            changes += [f"set {s} destroyed" for s in sorted(installed.sets)]
        self._cache = None
        return ApplyResult(tuple(changes), commands)


@dataclass(frozen=True, slots=True)
class _Plan:
    changes: tuple[str, ...]
    set_lines: list[str]
    doc: list[str]
    destroy: list[str]
    after: IptablesState
    doc6: list[str] = field(default_factory=list)
    """The ``ip6tables-restore`` document."""
    lingering: list[tuple[str, str]] = field(default_factory=list)
    """Objects no longer wanted that stay until ``linger`` runs out."""
