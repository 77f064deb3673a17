"""The diff logic of the appliers, with a fake runner: no kernel needed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from sekisho.dataplane import IptablesApplier, NftApplier
from sekisho.dataplane.ipsets import SetState, normalize_member, parse_ipset_save, plan_sets
from sekisho.dataplane.iptables import rule_hash
from sekisho.dataplane.nftables import normalize_nft, table_blocks
from sekisho.errors import CommandFailed, DataplaneError


@dataclass(frozen=True)
class FakeSet:
    name: str
    type: str
    members: tuple[str, ...]
    family: str = "inet"


@dataclass(frozen=True)
class FakeRuleset:
    prefix: str
    sets: tuple[FakeSet, ...]
    chains: tuple[tuple[str, tuple[str, ...]], ...]
    hooks: tuple[tuple[str, str], ...]


class FakeRunner:
    """Answers read-back commands from canned text and records everything run."""

    def __init__(self, save: str = "", ipset: str = "", fail: set[str] | None = None) -> None:
        self.save = save
        self.ipset = ipset
        self.fail = fail or set()
        self.calls: list[tuple[tuple[str, ...], str | None]] = []

    def __call__(self, argv: Sequence[str], *, stdin: str | None = None) -> str:
        self.calls.append((tuple(argv), stdin))
        if argv[0] in self.fail:
            self.fail.discard(argv[0])
            raise CommandFailed(argv, 1, "boom")
        if argv[0] == "iptables-save":
            return self.save
        if list(argv[:2]) == ["ipset", "save"]:
            return self.ipset
        return ""

    def commands(self) -> list[str]:
        return [" ".join(argv) for argv, _ in self.calls]


def tagged(chain: str, spec: str, prefix: str = "sk") -> str:
    return f'-A {chain} -m comment --comment "{prefix}:{rule_hash(chain, spec)}" {spec}'


RULESET = FakeRuleset(
    "sk",
    (FakeSet("sk-s-a", "hash:net", ("10.0.0.1/32",)),),
    (("sk-FORWARD", ("-j sk-pol",)), ("sk-pol", ("-m set --match-set sk-s-a src -j ACCEPT",))),
    (("FORWARD", "-j sk-FORWARD"),),
)

IN_SYNC = "\n".join(
    [
        "*filter",
        ":FORWARD ACCEPT [0:0]",
        ":sk-FORWARD - [0:0]",
        ":sk-pol - [0:0]",
        tagged("FORWARD", "-j sk-FORWARD"),
        "-A FORWARD -j FOREIGN",
        tagged("sk-FORWARD", "-j sk-pol"),
        tagged("sk-pol", "-m set --match-set sk-s-a src -j ACCEPT"),
        "COMMIT",
    ]
)
SETS_IN_SYNC = "create sk-s-a hash:net family inet hashsize 1024\nadd sk-s-a 10.0.0.1\n"


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        pytest.param("10.0.0.1", ["10.0.0.1/32"], id="host"),
        pytest.param("10.0.0.1/32", ["10.0.0.1/32"], id="host-cidr"),
        pytest.param("10.1.2.3/16", ["10.1.0.0/16"], id="host-bits"),
        pytest.param("10.1.0.0/16 nomatch", ["10.1.0.0/16 nomatch"], id="nomatch"),
        pytest.param("10.0.0.0/24,80", ["10.0.0.0/24,tcp:80"], id="default-proto"),
        pytest.param("10.0.0.1,UDP:53", ["10.0.0.1/32,udp:53"], id="proto-case"),
        pytest.param(
            "10.0.0.0/24,tcp:80-82",
            ["10.0.0.0/24,tcp:80", "10.0.0.0/24,tcp:81", "10.0.0.0/24,tcp:82"],
            id="range-expands",
        ),
    ],
)
def test_normalize_member(member: str, expected: list[str]) -> None:
    assert normalize_member(member) == expected


def test_parse_ipset_save_keeps_only_ours() -> None:
    text = (
        "create foreign hash:net family inet\nadd foreign 1.2.3.4\n"
        "create sk-x hash:net,port family inet hashsize 1024\nadd sk-x 10.0.0.1,tcp:80\n"
    )
    assert parse_ipset_save(text, "sk") == {
        "sk-x": SetState("hash:net,port", "inet", frozenset({"10.0.0.1/32,tcp:80"}))
    }


@pytest.mark.parametrize(
    ("installed", "desired", "lines", "destroy"),
    [
        pytest.param({}, {"sk-a": ("1.1.1.1",)}, ["create sk-a", "add sk-a 1.1.1.1"], [], id="new"),
        pytest.param({"sk-a": ("1.1.1.1",)}, {"sk-a": ("1.1.1.1/32",)}, [], [], id="unchanged"),
        pytest.param(
            {"sk-a": ("1.1.1.1",)},
            {"sk-a": ("2.2.2.2",)},
            ["create sk-t-", "add sk-t-", "swap sk-t-", "destroy sk-t-"],
            [],
            id="changed-swaps",
        ),
        pytest.param({"sk-a": ("1.1.1.1",)}, {}, [], ["sk-a"], id="obsolete-after"),
    ],
)
def test_plan_sets(
    installed: dict[str, tuple[str, ...]],
    desired: dict[str, tuple[str, ...]],
    lines: list[str],
    destroy: list[str],
) -> None:
    def state(members: tuple[str, ...]) -> SetState:
        return SetState(
            "hash:net",
            "inet",
            frozenset(m + "/32" if "/" not in m else m for m in members),
            members,
        )

    got_lines, _, got_destroy = plan_sets(
        {n: state(m) for n, m in installed.items()}, {n: state(m) for n, m in desired.items()}, "sk"
    )
    assert len(got_lines) == len(lines)
    assert all(g.startswith(w) for g, w in zip(got_lines, lines, strict=True))
    assert got_destroy == destroy


def _plan_doc(save: str, ruleset: FakeRuleset = RULESET) -> list[str]:
    a = IptablesApplier(FakeRunner(), "sk")
    return a.plan(a.parse_save(save), ruleset).doc


@pytest.mark.parametrize(
    ("save", "expected"),
    [
        pytest.param(IN_SYNC, [], id="in-sync"),
        pytest.param(
            "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j FOREIGN\nCOMMIT\n",
            [
                "*filter",
                ":sk-FORWARD - [0:0]",
                ":sk-pol - [0:0]",
                tagged("sk-FORWARD", "-j sk-pol"),
                tagged("sk-pol", "-m set --match-set sk-s-a src -j ACCEPT"),
                tagged("FORWARD", "-j sk-FORWARD").replace("-A FORWARD", "-I FORWARD 1"),
                "COMMIT",
            ],
            id="fresh",
        ),
        pytest.param(
            IN_SYNC.replace(tagged("sk-pol", "-m set --match-set sk-s-a src -j ACCEPT") + "\n", ""),
            [
                "*filter",
                ":sk-pol - [0:0]",
                tagged("sk-pol", "-m set --match-set sk-s-a src -j ACCEPT"),
                "COMMIT",
            ],
            id="flushed-chain-only",
        ),
        pytest.param(
            IN_SYNC.replace(
                ":sk-pol - [0:0]", ":sk-pol - [0:0]\n:sk-old - [0:0]\n-A sk-old -j DROP"
            ),
            ["*filter", ":sk-old - [0:0]", "-X sk-old", "COMMIT"],
            id="obsolete-chain",
        ),
        pytest.param(
            IN_SYNC.replace(
                tagged("FORWARD", "-j sk-FORWARD") + "\n-A FORWARD -j FOREIGN",
                "-A FORWARD -j FOREIGN\n" + tagged("FORWARD", "-j sk-FORWARD"),
            ),
            [
                "*filter",
                tagged("FORWARD", "-j sk-FORWARD").replace("-A FORWARD", "-D FORWARD"),
                tagged("FORWARD", "-j sk-FORWARD").replace("-A FORWARD", "-I FORWARD 1"),
                "COMMIT",
            ],
            id="hook-not-first",
        ),
        pytest.param(
            IN_SYNC.replace(
                "-A FORWARD -j FOREIGN", "-A FORWARD -j FOREIGN\n-A FORWARD -j sk-FORWARD"
            ),
            [
                "*filter",
                tagged("FORWARD", "-j sk-FORWARD").replace("-A FORWARD", "-D FORWARD"),
                "-D FORWARD -j sk-FORWARD",
                tagged("FORWARD", "-j sk-FORWARD").replace("-A FORWARD", "-I FORWARD 1"),
                "COMMIT",
            ],
            id="stale-untagged-copy",
        ),
    ],
)
def test_iptables_plan(save: str, expected: list[str]) -> None:
    doc = _plan_doc(save)
    assert doc == expected
    assert not any("FOREIGN" in line for line in doc)


def test_refuses_objects_without_our_prefix() -> None:
    bad = FakeRuleset("sk", (), (("FOREIGN", ("-j DROP",)),), ())
    with pytest.raises(DataplaneError, match="FOREIGN"):
        _plan_doc(IN_SYNC, bad)


def test_apply_trusts_its_cache_and_rereads_after_a_failure() -> None:
    runner = FakeRunner(save="*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n")
    a = IptablesApplier(runner, "sk")
    first = a.apply(RULESET)
    assert first.changed
    assert runner.commands() == [
        "iptables-save",
        "ip6tables-save",
        "ipset save",
        "ipset restore",
        "iptables-restore --noflush -w 5",
    ]
    runner.calls.clear()
    assert a.apply(RULESET).changes == ()
    assert runner.calls == [], "an unchanged ruleset runs no command at all"
    # someone else changed the kernel; our cached write fails -> read back, retry once
    changed = FakeRuleset(
        "sk", RULESET.sets, (*RULESET.chains, ("sk-new", ("-j DROP",))), RULESET.hooks
    )
    runner.save, runner.ipset = IN_SYNC, SETS_IN_SYNC
    runner.fail = {"iptables-restore"}
    a.apply(changed)
    assert runner.commands() == [
        "iptables-restore --noflush -w 5",
        "iptables-save",
        "ip6tables-save",
        "ipset save",
        "iptables-restore --noflush -w 5",
    ]
    assert (
        runner.calls[-1][1] == f"*filter\n:sk-new - [0:0]\n{tagged('sk-new', '-j DROP')}\nCOMMIT\n"
    )


def test_cleanup_removes_only_ours() -> None:
    runner = FakeRunner(save=IN_SYNC, ipset=SETS_IN_SYNC + "create foreign hash:net family inet\n")
    result = IptablesApplier(runner, "sk").cleanup()
    doc = runner.calls[3][1] or ""
    assert "FOREIGN" not in doc
    assert "-X sk-FORWARD" in doc and "-X sk-pol" in doc
    assert runner.calls[4] == (("ipset", "restore"), "destroy sk-s-a\n")
    assert len(result.changes) == 4


@dataclass(frozen=True)
class FakeEarlyRuleset(FakeRuleset):
    tables: tuple[
        tuple[str, tuple[tuple[str, tuple[str, ...]], ...], tuple[tuple[str, str], ...]], ...
    ]


EARLY = FakeEarlyRuleset(
    "sk",
    RULESET.sets,
    RULESET.chains,
    RULESET.hooks,
    (("raw", (("sk-raw-PRE", ("-j NOTRACK",)),), (("PREROUTING", "-j sk-raw-PRE"),)),),
)


def test_raw_table_in_the_same_document_before_filter_and_cleaned_up() -> None:
    """doNotTrack chains (the raw table) are written in the filter table's restore
    document, before it; read back from ``iptables-save``; an unchanged raw table is not
    rewritten; cleanup removes its hook and chains too."""
    a = IptablesApplier(FakeRunner(), "sk")
    doc = a.plan(a.parse_save(IN_SYNC), EARLY).doc
    assert doc[0] == "*raw"  # the filter table is in sync: only raw is written
    assert any(line.startswith("-A sk-raw-PRE") and "NOTRACK" in line for line in doc)
    assert any(line.startswith("-I PREROUTING 1") for line in doc)
    raw_section = [
        "*raw",
        ":PREROUTING ACCEPT [0:0]",
        ":sk-raw-PRE - [0:0]",
        *(line for line in doc if line.startswith("-A sk-raw-PRE")),
        *(
            "-A PREROUTING " + line.split(" ", 3)[3]
            for line in doc
            if line.startswith("-I PREROUTING 1")
        ),
        "COMMIT",
    ]
    installed = "\n".join(raw_section) + "\n" + IN_SYNC
    assert a.plan(a.parse_save(installed), EARLY).doc == []
    assert a.plan(a.parse_save(installed), RULESET).doc[:1] == ["*raw"]  # stale: removed
    runner = FakeRunner(save=installed, ipset=SETS_IN_SYNC)
    result = IptablesApplier(runner, "sk").cleanup()
    sent = runner.calls[3][1] or ""
    assert sent.index("*raw") < sent.index("*filter")
    assert "-X sk-raw-PRE" in sent and "-D PREROUTING" in sent
    assert "raw chain sk-raw-PRE deleted" in result.changes


LISTING = """table inet sk { # handle 3
\tset s1 {
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 10.0.0.2, 10.0.0.1,
\t\t\t     10.0.0.3 }
\t}

\tchain c1 { # handle 1
\t\ttype filter hook forward priority filter - 1; policy accept;
\t\tiifname vmap { "b" : goto c2, "a" : goto c3 } # handle 4
\t\tcounter packets 12 bytes 3400 accept # handle 5
\t}
}
"""


def test_normalize_nft_ignores_counters_handles_and_order() -> None:
    assert normalize_nft(LISTING).splitlines() == [
        "table inet sk {",
        "set s1 {",
        "type ipv4_addr",
        "flags interval",
        "elements = { 10.0.0.1, 10.0.0.2, 10.0.0.3 }",
        "}",
        "chain c1 {",
        "type filter hook forward priority filter - 1; policy accept;",
        'iifname vmap { "a" : goto c3, "b" : goto c2 }',
        "counter accept",
        "}",
        "}",
    ]
    blocks = table_blocks(normalize_nft(LISTING))
    assert blocks is not None and set(blocks) == {("set", "s1"), ("chain", "c1")}


@dataclass(frozen=True)
class FakeNft:
    prefix: str
    table: str
    text: str
    family: str = "inet"

    def script(self) -> str:
        return f"table inet {self.table} {{}}\ndelete table inet {self.table}\n{self.text}"

    def table_text(self) -> str:
        return self.text


def test_nft_rewrites_only_the_chain_that_differs() -> None:
    runner = FakeRunner()
    installed = LISTING.replace("counter packets 12 bytes 3400 accept", "drop")

    def nft(argv: Sequence[str], *, stdin: str | None = None) -> str:
        runner.calls.append((tuple(argv), stdin))
        return installed if argv[1] == "list" else ""

    a = NftApplier(nft, "sk")
    result = a.apply(FakeNft("sk", "sk", LISTING))
    assert result.changes == ("chain c1 rewritten",)
    script = runner.calls[1][1] or ""
    assert script.startswith("flush chain inet sk c1\n")
    assert "s1" not in script and "delete table" not in script


def test_nft_blocks_per_set_and_chain_equal_the_whole_table_text() -> None:
    from sekisho.model import load_cluster
    from sekisho.render import render_node

    seed = Path(__file__).resolve().parents[2] / "examples" / "seed"
    cluster = load_cluster([str(seed)])
    for node in ("k8s-node1", "k8s-node2"):
        rs = render_node(cluster, node, backend="nftables", prefix="sekisho")
        a = NftApplier(FakeRunner(), "sekisho")
        assert a._want_blocks(rs) == table_blocks(normalize_nft(rs.table_text()))
        assert a._want_blocks(rs) == a._want_blocks(rs)  # memoized: same answer


def test_nft_blocks_spelt_directly_equal_the_table_text_taken_apart() -> None:
    """Sets and chains are spelt block by block without the whole text: the same blocks
    as the whole table's text taken apart, on a generated cluster (named ports, nets,
    port lists, both families) and after a change."""
    import dataclasses
    import importlib.util

    from sekisho.model import cluster_from_objects
    from sekisho.render import NodeRenderer
    from sekisho.render.nftables import render_nftables

    path = Path(__file__).resolve().parents[2] / "bench" / "generator.py"
    spec = importlib.util.spec_from_file_location("sekisho_bench_generator_unit", path)
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    cluster = cluster_from_objects(gen.generate(200, policies=30, seed=3))
    node = next(p.node for p in cluster.pods if p.node)
    r = NodeRenderer(node, prefix="sekisho")
    a = NftApplier(FakeRunner(), "sekisho")
    r.update(cluster)
    rs = render_nftables(r)
    assert a._want_blocks(rs) == table_blocks(normalize_nft(rs.table_text()))
    r.update(dataclasses.replace(cluster, pods=cluster.pods[::2]))
    rs = render_nftables(r)
    assert a._want_blocks(rs) == table_blocks(normalize_nft(rs.table_text()))


@pytest.mark.parametrize(
    ("have", "want", "expected"),
    [
        (
            ("type ipv4_addr", "elements = { a, b, c }"),
            ("type ipv4_addr", "elements = { a, b, d }"),
            (["c"], ["d"]),
        ),
        (("type ipv4_addr", "elements = { a, b }"), ("type ipv4_addr", "elements = { c }"), None),
        (("type ipv4_addr", "elements = { a, b, c }"), ("type ipv4_addr",), None),
        (("type ipv4_addr",), ("type ipv4_addr", "elements = { a }"), None),
        (
            ("type ipv6_addr", "elements = { a, b, c }"),
            ("type ipv4_addr", "elements = { a, b, d }"),
            None,
        ),
    ],
)
def test_element_delta(have: tuple[str, ...], want: tuple[str, ...], expected: object) -> None:
    """Only the elements differ and fewer change than the set holds: add and delete them."""
    from sekisho.dataplane.nftables import _element_delta

    assert _element_delta(have, want) == expected


def test_obsolete_chain_a_foreign_chain_jumps_to_is_emptied_not_deleted() -> None:
    save = IN_SYNC.replace(
        ":sk-pol - [0:0]",
        ":sk-pol - [0:0]\n:sk-old - [0:0]\n:FOREIGN - [0:0]\n-A FOREIGN -j sk-old\n-A sk-old -j DROP",
    )
    a = IptablesApplier(FakeRunner(), "sk")
    installed = a.parse_save(save)
    assert installed.pinned == {"sk-old"}
    assert "FOREIGN" not in installed.hooks, "only builtin chains hold hooks"
    plan = a.plan(installed, RULESET)
    assert plan.doc == ["*filter", ":sk-old - [0:0]", "COMMIT"]
    emptied = a.parse_save(save.replace("-A sk-old -j DROP\n", ""))
    assert a.plan(emptied, RULESET).doc == [], "an emptied pinned chain is left alone"


PLAIN_LISTING = """table inet sk {
\tset sk-s-a {
\t\ttype ipv4_addr
\t\telements = { 10.0.0.1, 10.0.0.2 }
\t}

\tchain sk-pi-x {
\t\tip saddr @sk-s-a accept
\t}

\tchain sk-pi-y {
\t\tip saddr @sk-s-ab accept
\t}

\tchain sk-FORWARD {
\t\ttype filter hook forward priority filter - 1; policy accept;
\t\tjump sk-pi-x
\t\tjump sk-pi-y
\t}
}
"""


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(
            PLAIN_LISTING,
            PLAIN_LISTING.replace(
                "\t\telements = { 10.0.0.1, 10.0.0.2 }",
                "\t\tflags interval\n\t\telements = { 10.0.0.1, 10.1.0.0/16 }",
            ),
            id="gains-a-network",
        ),
        pytest.param(
            PLAIN_LISTING.replace(
                "\t\telements = { 10.0.0.1, 10.0.0.2 }",
                "\t\tflags interval\n\t\telements = { 10.0.0.1, 10.1.0.0/16 }",
            ),
            PLAIN_LISTING,
            id="loses-its-network",
        ),
    ],
)
def test_nft_set_changing_kind_is_made_again_with_its_rules(before: str, after: str) -> None:
    """A set's flags cannot change in place, and a set made in the transaction whose
    rules first look it up may miss for a moment: (1) a scratch set ``sk-t-a`` with the
    new flags and elements; (2) the chain that looks the set up moved to it, the set
    deleted and made again; (3) the chain moved back, the scratch set deleted. A chain
    that does not use it (``@sk-s-ab`` is another set) and the base chain are not touched."""
    runner = FakeRunner()

    def nft(argv: Sequence[str], *, stdin: str | None = None) -> str:
        runner.calls.append((tuple(argv), stdin))
        return before if argv[1] == "list" else ""

    a = NftApplier(nft, "sk")
    result = a.apply(FakeNft("sk", "sk", after))
    assert result.changes == ("set sk-s-a rewritten",)
    first, second, third = [stdin or "" for argv, stdin in runner.calls if argv[1] == "-f"]
    flags = "flags interval\n" if "flags interval" in after else ""
    assert first.startswith(f"table inet sk {{\nset sk-t-a {{\ntype ipv4_addr\n{flags}elem")
    assert "@" not in first
    assert second.split("\n", 1)[0] == "flush chain inet sk sk-pi-x"
    order = [second.index(x) for x in ("delete set inet sk sk-s-a\n", "set sk-s-a {", "@sk-t-a")]
    assert order == sorted(order) and "@sk-s-a" not in second, second
    assert third.startswith("flush chain inet sk sk-pi-x\n")
    assert "ip saddr @sk-s-a accept" in third and third.endswith("delete set inet sk sk-t-a\n")
    for script in (first, second, third):
        assert "sk-pi-y" not in script and "sk-FORWARD" not in script
        assert "delete table" not in script and "add element" not in script


def test_nft_plan_by_identity_equals_the_plan_that_compares_every_block() -> None:
    """The applier takes a set or chain the renderer hands as the very same object as
    spelt and installed as last time, without spelling or comparing it again. Over the
    agent's incremental renderer under churn (local pods going and coming back, labels
    changed, a policy removed and put back), each plan from the cache equals the plan that
    compares every block, and the blocks taken by identity equal the whole table's text
    taken apart: a fast path that diverged from the full one fails here."""
    import dataclasses
    import importlib.util
    import random

    from sekisho.agent.agent import IncrementalRenderer
    from sekisho.model import cluster_from_objects

    path = Path(__file__).resolve().parents[2] / "bench" / "generator.py"
    spec = importlib.util.spec_from_file_location("sekisho_bench_generator_identity", path)
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    cluster = cluster_from_objects(gen.generate(200, policies=30, seed=5))
    node = next(p.node for p in cluster.pods if p.node)
    local = [p for p in cluster.pods if p.node == node and not p.host_network]
    assert len(local) >= 10
    renderer = IncrementalRenderer()
    first = renderer(cluster, node, "nftables", "sekisho")
    listing = first.table_text()

    def nft(argv: Sequence[str], *, stdin: str | None = None) -> str:
        return listing if argv[1] == "list" else ""

    clock = [1000.0]
    a = NftApplier(nft, "sekisho", linger=5.0, clock=lambda: clock[0])
    assert a.apply(first).changes == ()  # learnt from the listing: the cache from now on
    rng = random.Random(7)
    gone: set[str] = set()
    policies = cluster.policies
    for step in range(30):
        clock[0] += 1.0
        if step % 7 == 3:
            policies = cluster.policies if len(policies) < len(cluster.policies) else policies[1:]
        for p in rng.sample(local, 6):
            gone.symmetric_difference_update({p.key})
        pods = []
        for p in cluster.pods:
            if p.key in gone:
                continue
            if p.key == local[step % len(local)].key:
                p = dataclasses.replace(p, labels={**p.labels, "churn": str(step % 3)})
            pods.append(p)
        rs = renderer(
            dataclasses.replace(cluster, pods=tuple(pods), policies=policies),
            node,
            "nftables",
            "sekisho",
        )
        assert a._installed is not None
        fast = a._plan(rs, a._installed, known=True)
        full = a._plan(rs, dict(a._installed), known=True)  # not the cache: every block compared
        assert (fast.changes, fast.script, fast.lingering) == (
            full.changes,
            full.script,
            full.lingering,
        )
        assert a._want_blocks(rs) == table_blocks(normalize_nft(rs.table_text()))
        assert a.apply(rs).changes == tuple(full.changes)
