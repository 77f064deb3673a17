"""The backend registry: one object per backend, the same names everywhere."""

from __future__ import annotations

import pytest

from render.goldens import seed_part2
from sekisho.cli import options
from sekisho.dataplane.backends import backend
from sekisho.errors import UsageError
from sekisho.lab import core
from sekisho.render import (
    BACKENDS,
    IptablesRuleset,
    NodeRenderer,
    render_backend,
    render_node,
    ruleset_digest,
)
from sekisho.render.backends import BACKEND_NAMES
from sekisho.render.interpret import Packet


def test_every_list_of_backends_is_the_registry() -> None:
    assert BACKENDS == BACKEND_NAMES == tuple(options.BACKENDS) == tuple(core.BACKENDS)
    assert [backend(n).name for n in BACKEND_NAMES] == list(BACKEND_NAMES)


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_one_object_renders_interprets_writes_and_digests(name: str) -> None:
    b = backend(name)
    r = NodeRenderer("k8s-node2")
    r.update(seed_part2())
    ruleset = b.spelling.render(r)
    assert ruleset == render_node(seed_part2(), "k8s-node2", backend=name)  # type: ignore[call-overload]
    files = b.files(ruleset)
    assert files and all(text for text in files.values())
    verdict = b.spelling.interpret(ruleset.render_text()).evaluate(Packet("1.1.1.1", "1.1.1.2"))
    assert verdict.verdict == "ACCEPT"
    assert b.spelling.digest(ruleset) == ruleset_digest(ruleset)


def test_unknown_backend_names_the_known_ones() -> None:
    with pytest.raises(UsageError, match="expected one of iptables, nftables"):
        render_backend("bpf")
    with pytest.raises(UsageError, match="expected one of iptables, nftables"):
        backend("bpf")


def test_digest_sees_the_raw_and_mangle_tables() -> None:
    """The fingerprint the agent writes (and the lab waits for) changes when only a
    doNotTrack or preDNAT chain changes."""
    import dataclasses

    rs = render_node(seed_part2(), "k8s-node2")
    assert isinstance(rs, IptablesRuleset)
    raw = ("raw", (("sekisho-raw-PRE", ("-j NOTRACK",)),), (("PREROUTING", "-j sekisho-raw-PRE"),))
    other = ("raw", (("sekisho-raw-PRE", ("-j DROP",)),), (("PREROUTING", "-j sekisho-raw-PRE"),))
    digests = {
        ruleset_digest(dataclasses.replace(rs, tables=tables, tables6=six))
        for tables, six in (((), ()), ((raw,), ()), ((other,), ()), ((), (raw,)))
    }
    assert len(digests) == 4


def test_digest_memoized_by_identity_equals_a_fresh_digest() -> None:
    """The digest reuses a set's or chain's hash while the renderer hands the very same
    object; over churn of the incremental renderer it equals the digest computed with
    nothing remembered (a reuse that diverged fails here), for both backends."""
    import dataclasses

    from sekisho.agent.agent import IncrementalRenderer
    from sekisho.render import backends as backends_module

    cluster = seed_part2()
    pods = cluster.pods
    for name in ("nftables", "iptables"):
        renderer = IncrementalRenderer()
        node = next(p.node for p in pods if p.node)
        for step in range(len(pods) + 1):
            # each step leaves one more pod out, then all come back
            now = dataclasses.replace(cluster, pods=pods[step:] if step < len(pods) else pods)
            rs = renderer(now, node, name, "sekisho")  # type: ignore[arg-type]
            remembered = ruleset_digest(rs)
            backends_module._memo = ({}, {})
            assert remembered == ruleset_digest(rs)
            assert ruleset_digest(rs) == remembered  # and again from the memo
