"""The label table, whom a compiled policy applies to and which pods a peer's set holds,
and endpoint resolution."""

from __future__ import annotations

import pytest

import sekisho.selectors
import sekisho.semantics
from sekisho.errors import UsageError
from sekisho.model.types import LabelSelector, NetworkPolicy, Peer, Requirement
from sekisho.selectors import LabelTable
from sekisho.semantics import resolve_endpoint, resolve_endpoints, universe_of
from sekisho.semantics.kubernetes import compile_policy
from sekisho.semantics.verdict import applies

from .builders import block, cluster, namespaces, node, pod, sel

NODES = [node("n1", "192.168.0.1", "10.0.1.0/24")]
PODS = [
    pod("a/web-1", "10.0.1.2", "n1", app="web", tier="fe"),
    pod("a/web-2", "10.0.1.3", "n1", app="web", tier="fe"),
    pod("a/db", "10.0.1.4", "n1", app="db"),
    pod("b/web-1", "10.0.1.5", "n1", app="web"),
    pod("b/hn", "192.168.0.1", "n1", host_network=True, app="web"),
]
C = cluster(PODS, [], NODES, namespaces(a={"team": "x"}, b={"team": "y"}))
LABELS = [{"app": "web", "tier": "fe"}, {"app": "db"}, {}, {"tier": "be"}]


def req(key: str, op: str, *values: str) -> LabelSelector:
    return LabelSelector(match_expressions=(Requirement(key, op, values),))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param(LabelSelector(), [True, True, True, True], id="empty-selects-all"),
        pytest.param(sel(app="web"), [True, False, False, False], id="match-labels"),
        pytest.param(req("app", "In", "web", "db"), [True, True, False, False], id="in"),
        pytest.param(
            req("app", "NotIn", "web"), [False, True, True, True], id="notin-includes-absent"
        ),
        pytest.param(req("tier", "Exists"), [True, False, False, True], id="exists"),
        pytest.param(req("tier", "DoesNotExist"), [False, True, True, False], id="doesnotexist"),
        pytest.param(req("zone", "In", "x"), [False, False, False, False], id="unknown-key-in"),
        pytest.param(req("zone", "NotIn", "x"), [True, True, True, True], id="unknown-key-notin"),
        pytest.param(req("app", "In", "nope"), [False, False, False, False], id="unknown-value"),
        pytest.param(
            LabelSelector((("app", "web"),), (Requirement("tier", "In", ("be",)),)),
            [False] * 4,
            id="and",
        ),
    ],
)
def test_label_table_matches_scalar_semantics(
    selector: LabelSelector, expected: list[bool]
) -> None:
    table = LabelTable(LABELS)
    assert table.select(selector).tolist() == expected
    assert [selector.matches(lbl) for lbl in LABELS] == expected
    assert table.select(selector) is table.select(selector)  # cached


def targets(policy: NetworkPolicy) -> list[str]:
    compiled = compile_policy(policy)
    u = universe_of(C)
    return [e.key for e in u.entities if applies(compiled, e, "ingress")]


def test_policy_targets_exclude_hostnetwork_and_other_namespaces() -> None:
    assert targets(NetworkPolicy("a", "p", sel(app="web"))) == ["a/web-1", "a/web-2"]
    assert targets(NetworkPolicy("b", "q", LabelSelector())) == ["b/web-1"]


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        pytest.param(
            Peer(pod_selector=sel(app="web")),
            ["a/web-1", "a/web-2"],
            id="pod-selector-own-namespace",
        ),
        pytest.param(Peer(namespace_selector=sel(team="y")), ["b/web-1"], id="namespace-selector"),
        pytest.param(
            Peer(namespace_selector=LabelSelector(), pod_selector=sel(app="web")),
            ["a/web-1", "a/web-2", "b/web-1"],
            id="both",
        ),
        pytest.param(
            Peer(ip_block=block("10.0.1.0/24", "10.0.1.2/31")),
            ["a/db", "b/web-1"],
            id="ipblock-pod-ips",
        ),
        pytest.param(Peer(ip_block=block("192.168.0.0/24")), [], id="ipblock-never-hostnetwork"),
    ],
)
def test_peer_pods(peer: Peer, expected: list[str]) -> None:
    from sekisho.model.types import Rule

    pol = compile_policy(NetworkPolicy("a", "p", LabelSelector(), ingress=(Rule(peers=(peer,)),)))
    (rule,) = pol.ingress
    u = universe_of(C)
    got = []
    for p in C.pods:
        if p.host_network or p.ip is None:
            continue
        side = rule.src
        ok = (side.nets is None or side.nets.contains(p.ip)) and (
            side.not_nets is None or not side.not_nets.contains(p.ip)
        )
        if side.selector is not None:
            ok = ok and u.in_selector(side.selector, p.ip)
        if ok:
            got.append(p.key)
    assert got == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a/db", [("pod", "a/db")], id="pod"),
        pytest.param("a/web", [("pod", "a/web-1"), ("pod", "a/web-2")], id="workload-prefix"),
        pytest.param("n1", [("node", "n1")], id="node"),
        pytest.param("10.0.1.4", [("pod", "a/db")], id="pod-ip"),
        pytest.param("192.168.0.1", [("node", "n1")], id="node-ip-not-hostnetwork-pod"),
        pytest.param("1.1.1.1", [("external", "1.1.1.1")], id="external"),
        pytest.param("b/hn", [("pod", "b/hn")], id="hostnetwork-pod"),
    ],
)
def test_resolve_endpoints(text: str, expected: list[tuple[str, str]]) -> None:
    assert [(e.kind, e.label) for e in resolve_endpoints(C, text)] == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("a/web", "ambiguous: it names 2 pods: a/web-1, a/web-2", id="ambiguous"),
        pytest.param("a/nope", "expected one of: a/db, a/web-1, a/web-2", id="unknown-pod"),
        pytest.param("nowhere", "nodes: n1", id="unknown-node"),
    ],
)
def test_resolve_endpoint_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=None) as err:
        resolve_endpoint(C, text)
    assert message in str(err.value)


def test_hostnetwork_endpoint_is_its_node() -> None:
    e = resolve_endpoint(C, "b/hn")
    assert e.is_node_like and not e.is_workload and e.node_name == "n1"


@pytest.mark.parametrize(
    "module", [sekisho.semantics, sekisho.selectors], ids=["semantics", "selectors"]
)
def test_public_surface_is_sorted_and_complete(module: object) -> None:
    names = module.__all__  # type: ignore[attr-defined]
    assert names == sorted(names)
    assert all(hasattr(module, n) for n in names)
