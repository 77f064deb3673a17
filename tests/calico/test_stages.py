"""Felix's stages at a host endpoint: doNotTrack (raw), then preDNAT (mangle), then the
normal policies (filter), as ``semantics/program.py`` writes them; the walk names the
stage that decided, and the matrix agrees with it pair by pair."""

from __future__ import annotations

from typing import Any, cast

import pytest

from calico.test_host_endpoints import ALLOW, Manifest, _cluster, check_matrix_equals_walk, gnp, hep
from sekisho.model.types import FlowProtocol
from sekisho.semantics import Flow, compute_matrix, pod_endpoint, resolve_endpoint, verdict


def dnt(name: str, selector: str, **spec: Any) -> Manifest:
    return gnp(name, selector, doNotTrack=True, applyOnForward=True, **spec)


def pre(name: str, selector: str, **spec: Any) -> Manifest:
    return gnp(name, selector, preDNAT=True, applyOnForward=True, **spec)


DENY_IN = gnp("deny-in", "host == 'n2'", ingress=[{"action": "Deny"}])
FWD_DENY = gnp("fwd-deny", "host == 'n2'", applyOnForward=True, ingress=[{"action": "Deny"}])

CASES = [
    # (objects, from, to, service, allowed, words)
    pytest.param(
        [hep("n2", ALLOW), dnt("dnt-deny", "host == 'n2'", ingress=[{"action": "Deny"}])],
        "a/client",
        "n2",
        "TCP/10250",
        False,
        "doNotTrack stage: GlobalNetworkPolicy dnt-deny ingress rule 0 (Deny): dropped",
        id="untracked-deny-to-node",
    ),
    pytest.param(
        [hep("n2"), DENY_IN, dnt("dnt-allow", "host == 'n2'", ingress=[{"action": "Allow"}])],
        "a/client",
        "n2",
        "TCP/10250",
        True,
        "ingress: not evaluated (doNotTrack stage: GlobalNetworkPolicy dnt-allow",
        id="untracked-allow-skips-normal-policy",
    ),
    pytest.param(
        [hep("n2", ALLOW), dnt("dnt-deny", "host == 'n2'", ingress=[{"action": "Deny"}])],
        "a/client",
        "n2",
        "TCP/22",
        True,
        "a failsafe port of Felix",
        id="failsafe-before-untracked",
    ),
    pytest.param(
        [
            hep("n2", ALLOW),
            dnt("dnt-udp", "host == 'n2'", ingress=[{"action": "Deny", "protocol": "UDP"}]),
        ],
        "a/client",
        "n2",
        "TCP/10250",
        True,
        "doNotTrack stage: no rule decided: on to the next stage",
        id="untracked-no-match-goes-on",
    ),
    pytest.param(
        [hep("n2"), pre("pre-deny", "host == 'n2'", ingress=[{"action": "Deny"}])],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "preDNAT stage: GlobalNetworkPolicy pre-deny ingress rule 0 (Deny): dropped",
        id="prednat-deny-forwarded-to-pod",
    ),
    pytest.param(
        [hep("n2"), FWD_DENY, pre("pre-allow", "host == 'n2'", ingress=[{"action": "Allow"}])],
        "a/client",
        "b/server",
        "TCP/80",
        True,
        "the endpoint's later stages are skipped",
        id="prednat-allow-skips-apply-on-forward",
    ),
    pytest.param(
        [
            hep("n2"),
            pre("pre-allow", "host == 'n2'", ingress=[{"action": "Allow"}]),
            gnp("server-deny", "app == 'server'", ingress=[{"action": "Deny"}]),
        ],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "denied by GlobalNetworkPolicy server-deny ingress rule 0 (Deny)",
        id="prednat-allow-keeps-the-pods-own-policy",
    ),
    pytest.param(
        [
            hep("n2"),
            dnt("dnt-allow", "host == 'n2'", ingress=[{"action": "Allow"}]),
            gnp("server-deny", "app == 'server'", ingress=[{"action": "Deny"}]),
        ],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "denied by GlobalNetworkPolicy server-deny ingress rule 0 (Deny)",
        id="untracked-allow-keeps-the-pods-own-policy",
    ),
    pytest.param(
        [hep("n1", ALLOW), dnt("dnt-out", "host == 'n1'", egress=[{"action": "Deny"}])],
        "n1",
        "b/server",
        "TCP/80",
        False,
        "doNotTrack stage at host endpoint n1-eth0 (egress, raw table",
        id="untracked-egress-deny",
    ),
    pytest.param(
        [hep("n1", ALLOW), dnt("dnt-out", "host == 'n1'", egress=[{"action": "Deny"}])],
        "n1",
        "a/client",
        "TCP/80",
        True,
        "traffic from the local node is never filtered",
        id="untracked-not-on-own-pods",
    ),
    pytest.param(
        [hep("n1", ALLOW), pre("pre-all", "all()", ingress=[{"action": "Deny"}])],
        "a/client",
        "b/server",
        "TCP/80",
        True,
        "verdict: ALLOWED",
        id="stages-never-apply-to-workloads",
    ),
    pytest.param(
        [
            hep("n2", ALLOW),
            pre("pre-deny", "host == 'n2'", ingress=[{"action": "Deny"}]),
            dnt("dnt-allow", "host == 'n2'", ingress=[{"action": "Allow"}]),
        ],
        "n1",
        "n2",
        "TCP/10250",
        True,
        "doNotTrack stage: GlobalNetworkPolicy dnt-allow ingress rule 0 (Allow): accepted untracked",
        id="untracked-before-prednat",
    ),
    # Replies meet the raw table too (verdict.py, _reply_stages).
    pytest.param(
        [hep("n2", ALLOW), dnt("dnt-out", "host == 'n2'", egress=[{"action": "Deny"}])],
        "a/client",
        "n2",
        "TCP/10250",
        False,
        "reply dropped in raw by GlobalNetworkPolicy dnt-out egress rule 0 (Deny)",
        id="untracked-deny-of-replies",
    ),
    pytest.param(
        [
            hep("n2", ALLOW),
            dnt(
                "dnt-out",
                "host == 'n2'",
                egress=[
                    {"action": "Deny", "protocol": "TCP", "destination": {"ports": ["1024:65535"]}}
                ],
            ),
        ],
        "a/client",
        "n2",
        "TCP/10250",
        False,
        "reply dropped in raw by GlobalNetworkPolicy dnt-out",
        id="untracked-deny-of-replies-to-every-ephemeral-port",
    ),
    pytest.param(
        [
            hep("n2"),
            DENY_IN,
            dnt(
                "dnt-server",
                "host == 'n2'",
                ingress=[{"action": "Allow", "protocol": "TCP", "destination": {"ports": [10250]}}],
                egress=[{"action": "Allow", "protocol": "TCP", "source": {"ports": [10250]}}],
            ),
        ],
        "a/client",
        "n2",
        "TCP/10250",
        True,
        "doNotTrack policies accept them untracked at every host endpoint they cross",
        id="untracked-allow-of-replies-of-untracked-requests",
    ),
    pytest.param(
        [
            hep("n2", ALLOW),
            dnt("dnt-udp-out", "host == 'n2'", egress=[{"action": "Deny", "protocol": "UDP"}]),
            dnt(
                "dnt-port-80",
                "host == 'n2'",
                egress=[{"action": "Deny", "protocol": "TCP", "destination": {"ports": [80]}}],
            ),
        ],
        "a/client",
        "n2",
        "TCP/10250",
        True,
        "doNotTrack stage: no rule decided for the reply: on past the raw table",
        id="untracked-policy-not-matching-replies",
    ),
    pytest.param(
        [
            hep("n1", ALLOW),
            dnt("dnt-in", "host == 'n1'", ingress=[{"action": "Deny", "protocol": "TCP"}]),
        ],
        "a/client",
        "b/server",
        "TCP/80",
        False,
        "reply dropped in raw by GlobalNetworkPolicy dnt-in ingress rule 0 (Deny)",
        id="untracked-deny-of-replies-forwarded-to-a-pod",
    ),
    pytest.param(
        [hep("n2", ALLOW), dnt("dnt-out", "host == 'n2'", egress=[{"action": "Deny"}])],
        "a/client",
        "n2",
        "TCP/22",
        True,
        "the reply of a failsafe port",
        id="failsafe-replies-before-untracked",
    ),
]


def _flow(cluster: Any, src: str, dst: str, service: str) -> Flow:
    proto, _, port = service.partition("/")
    return Flow(
        resolve_endpoint(cluster, src),
        resolve_endpoint(cluster, dst),
        cast(FlowProtocol, proto),
        int(port),
    )


@pytest.mark.parametrize(("objects", "src", "dst", "service", "allowed", "words"), CASES)
def test_stages(
    objects: list[Manifest], src: str, dst: str, service: str, allowed: bool, words: str
) -> None:
    cluster = _cluster(objects)
    v = verdict(cluster, _flow(cluster, src, dst, service))
    text = "\n".join(v.lines())
    assert v.allowed == allowed, text
    assert words in text, text
    assert v.to_json()["stages"] == [s.to_json() for s in v.stages]
    if v.untracked is not None and v.allowed:
        assert "replies are not tracked" in text, text
        assert v.to_json()["replies_allowed"] is (True if v.replies_untracked else None)
    assert v.to_json()["replies"] == [s.to_json() for s in v.replies]


@pytest.mark.parametrize("objects", [c.values[0] for c in CASES], ids=[str(c.id) for c in CASES])
def test_matrix_equals_walk_with_stages(objects: list[Manifest]) -> None:
    check_matrix_equals_walk(objects)


def test_stages_are_rendered_not_refused() -> None:
    """The renderer draws the stages (raw and mangle): the agent and ``render`` take them."""
    from sekisho.sources.files import refuse_unrendered

    objects = [
        hep("n1"),
        dnt("early", "host == 'n1'", ingress=[{"action": "Deny"}]),
        pre("pre", "host == 'n1'", ingress=[{"action": "Deny"}]),
    ]
    cluster = _cluster(objects)
    assert refuse_unrendered(cluster) is cluster


@pytest.mark.parametrize("objects", [c.values[0] for c in CASES], ids=[str(c.id) for c in CASES])
def test_rendered_stages_agree_with_walk(objects: list[Manifest]) -> None:
    """Each case's rules as rendered for both backends (raw and mangle tables, nft base
    chains at the raw and mangle priorities) through the interpreter: the walk's verdict
    for every pair and probe, new and ESTABLISHED."""
    from render.test_program_differential import check
    from sekisho.semantics import compile_program

    cluster = _cluster(objects)
    check(cluster, compile_program(cluster), [(80, "TCP"), (10250, "TCP"), (22, "TCP")])


@pytest.mark.parametrize(("iface", "policed"), [("eth0", False), ("*", True)])
def test_a_node_to_itself_goes_over_lo(iface: str, policed: bool) -> None:
    """lo is policed only by a host endpoint on every interface (as the rendered rules
    match it); the matrix agrees for two hostNetwork pods of the node."""
    deny = gnp("deny-in", "host == 'n1'", ingress=[{"action": "Deny"}])
    second = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "agent2", "namespace": "a", "labels": {"app": "agent2"}},
        "spec": {"nodeName": "n1", "hostNetwork": True, "containers": [{"name": "c"}]},
    }
    cluster = _cluster([hep("n1", ALLOW, iface=iface), deny, second])
    v = verdict(cluster, _flow(cluster, "n1", "a/agent", "TCP/80"))
    text = "\n".join(v.lines())
    assert v.allowed is not policed, text
    assert ("goes over lo" in text) is not policed, text
    m = compute_matrix(cluster, [(80, "TCP")])
    keys = [p.key for p in m.pods]
    i, j = keys.index("a/agent"), keys.index("a/agent2")
    w = verdict(
        cluster, Flow(pod_endpoint(cluster, m.pods[i]), pod_endpoint(cluster, m.pods[j]), "TCP", 80)
    )
    assert bool(m.probes[0].allowed[i, j]) is w.allowed is (not policed), "\n".join(w.lines())


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_render_prints_the_early_stages(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    """``sekisho render`` prints what the applier sends (the raw and mangle sections of
    the restore document, or the nft base chains) and it says what the renderer's own
    text says, packet for packet, new and ESTABLISHED; ``trace --node`` names the table
    that dropped."""
    import json

    from sekisho.cli.main import main
    from sekisho.render import render_node
    from sekisho.render.interpret import program
    from sekisho.render.path import enforce
    from semantics_npa.test_mixed import BASE

    objects = [
        hep("n2"),
        dnt("dnt", "host == 'n2'", ingress=[{"action": "Allow", "protocol": "TCP"}]),
        dnt("dnt-udp", "host == 'n2'", order=1, ingress=[{"action": "Deny", "protocol": "UDP"}]),
        pre("pre", "host == 'n2'", ingress=[{"action": "Deny", "protocol": "TCP"}]),
    ]
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [*BASE, *objects]}))
    assert main(["render", str(path), "--node", "n2", "--backend", backend]) == 0
    printed = capsys.readouterr().out
    assert ("*raw" in printed and "*mangle" in printed) or "priority raw" in printed
    cluster = _cluster(objects)
    ours = program(render_node(cluster, "n2", backend=backend).render_text())  # type: ignore[call-overload]
    theirs = program(printed)
    for src in ("a/client", "n1"):
        for dst, service in (("n2", "TCP/10250"), ("b/server", "UDP/53"), ("b/server", "TCP/80")):
            flow = _flow(cluster, src, dst, service)
            for state in ("NEW", "ESTABLISHED"):
                a = enforce(flow, lambda _n, pkt: ours.evaluate(pkt), state)[0]  # type: ignore[arg-type]
                b = enforce(flow, lambda _n, pkt: theirs.evaluate(pkt), state)[0]  # type: ignore[arg-type]
                assert a == b, (src, dst, service, state)
    flow = _flow(cluster, "a/client", "b/server", "UDP/53")
    assert not verdict(cluster, flow).allowed
    argv = ["trace", str(path), "--from", "a/client", "--to", "b/server", "--protocol", "UDP"]
    assert main([*argv, "--port", "53", "--node", "n2", "--backend", backend]) == 1
    text = capsys.readouterr().out
    assert "DROP in raw" in text and "doNotTrack ingress" in text, text


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_trace_node_shows_the_replies_dropped_in_raw(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    """``trace --node`` walks the replies through the rendered rules too: the raw table
    drops them where the walk says so, and both say denied."""
    import json

    from sekisho.cli.main import main
    from semantics_npa.test_mixed import BASE

    objects = [hep("n2", ALLOW), dnt("dnt-out", "host == 'n2'", egress=[{"action": "Deny"}])]
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [*BASE, *objects]}))
    argv = ["trace", str(path), "--from", "a/client", "--to", "n2", "--protocol", "TCP"]
    assert main([*argv, "--port", "10250", "--node", "n2", "--backend", backend]) == 1
    text = capsys.readouterr().out
    assert "reply dropped in raw by GlobalNetworkPolicy dnt-out" in text, text
    assert "the replies are dropped" in text and "DROP in raw" in text, text
    assert "rules say: denied" in text, text
