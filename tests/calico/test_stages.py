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


ALLOW_ALL = {"action": "Allow"}
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
        [
            hep("n2"),
            DENY_IN,
            dnt("dnt-allow", "host == 'n2'", ingress=[ALLOW_ALL], egress=[ALLOW_ALL]),
        ],
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
            dnt("dnt-allow", "host == 'n2'", ingress=[ALLOW_ALL], egress=[ALLOW_ALL]),
        ],
        "n1",
        "n2",
        "TCP/10250",
        True,
        "doNotTrack stage: GlobalNetworkPolicy dnt-allow ingress rule 0 (Allow): accepted untracked",
        id="untracked-before-prednat",
    ),
    # Replies meet the raw table too (verdict.py, _replies).
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


# Each node keeps its own conntrack (semantics/conntrack.py): where a doNotTrack policy
# accepted one direction untracked and not the other, the other is judged there as a
# packet of no known connection. n1 runs a/client (and a/agent, hostNetwork), n2 runs
# b/server; the node itself is the endpoint "n1" or "n2".
IN_N2 = dnt("in-n2", "host == 'n2'", ingress=[ALLOW_ALL])
OUT_N2 = dnt("out-n2", "host == 'n2'", egress=[ALLOW_ALL])
BOTH_N2 = dnt("both-n2", "host == 'n2'", ingress=[ALLOW_ALL], egress=[ALLOW_ALL])
IN_N1 = dnt("in-n1", "host == 'n1'", ingress=[ALLOW_ALL])
OUT_N1 = dnt("out-n1", "host == 'n1'", egress=[ALLOW_ALL])
NEW_DENIED = gnp("udp-out", "host == 'n2'", egress=[{"action": "Deny", "protocol": "UDP"}])
SERVER_UDP_OUT = gnp(
    "server-udp-out", "app == 'server'", egress=[{"action": "Deny", "protocol": "UDP"}]
)
INVALID_REPLY = "reply dropped as INVALID at node"
INVALID_NEXT = "the client's next packets dropped as INVALID at node"
NEW_FLOW = "a new flow there (the request was accepted untracked, so the UDP reply is NEW"

CONNTRACK_CASES = [
    # (objects, from, to, service, allowed, words)
    # Untracked one way (the request), into the node itself.
    *(
        pytest.param([hep("n2", ALLOW), IN_N2], "a/client", "n2", svc, ok, words, id=name)
        for svc, ok, words, name in (
            ("TCP/10250", False, f"{INVALID_REPLY} n2", "request-untracked-tcp"),
            (
                "ICMP/0",
                False,
                "an ICMP echo reply with no conntrack entry",
                "request-untracked-icmp",
            ),
            ("UDP/53", True, NEW_FLOW, "request-untracked-udp-reply-new"),
        )
    ),
    pytest.param(
        [hep("n2", ALLOW), IN_N2, NEW_DENIED],
        "a/client",
        "n2",
        "UDP/53",
        False,
        "denied by GlobalNetworkPolicy udp-out egress rule 0 (Deny)",
        id="request-untracked-udp-reply-new-denied",
    ),
    # Untracked both ways: no state anywhere, both directions' rules decide.
    *(
        pytest.param([hep("n2"), BOTH_N2], "a/client", "n2", svc, True, words, id=name)
        for svc, words, name in (
            ("TCP/10250", "accept them untracked at every host endpoint", "both-untracked-tcp"),
            ("UDP/53", "accept them untracked at every host endpoint", "both-untracked-udp"),
            ("ICMP/0", "accept them untracked at every host endpoint", "both-untracked-icmp"),
        )
    ),
    # Untracked one way (the replies): TCP's next packets are INVALID where the request
    # was tracked.
    *(
        pytest.param([hep("n2", ALLOW), OUT_N2], "a/client", "n2", svc, ok, words, id=name)
        for svc, ok, words, name in (
            ("TCP/10250", False, f"{INVALID_NEXT} n2", "replies-untracked-tcp"),
            ("UDP/53", True, "reply accepted untracked in raw", "replies-untracked-udp"),
            ("ICMP/0", True, "reply accepted untracked in raw", "replies-untracked-icmp"),
        )
    ),
    # A workload server, the request forwarded in untracked: its reply leaves by FORWARD,
    # past no raw table (tracked, so INVALID or NEW there).
    *(
        pytest.param([hep("n2", ALLOW), IN_N2], "a/client", "b/server", svc, ok, words, id=name)
        for svc, ok, words, name in (
            ("TCP/80", False, f"{INVALID_REPLY} n2", "forwarded-in-untracked-tcp"),
            ("UDP/53", True, NEW_FLOW, "forwarded-in-untracked-udp"),
        )
    ),
    pytest.param(
        [hep("n2", ALLOW), IN_N2, SERVER_UDP_OUT],
        "a/client",
        "b/server",
        "UDP/53",
        False,
        "denied by GlobalNetworkPolicy server-udp-out egress rule 0 (Deny)",
        id="forwarded-in-untracked-udp-reply-denied-by-the-server-pod",
    ),
    # A workload client, its replies accepted untracked into its node: its request was
    # tracked there.
    *(
        pytest.param([hep("n1", ALLOW), IN_N1], "a/client", "b/server", svc, ok, words, id=name)
        for svc, ok, words, name in (
            ("TCP/80", False, f"{INVALID_NEXT} n1", "replies-untracked-to-a-pod-tcp"),
            ("UDP/5353", True, "reply: ingress of a/client", "replies-untracked-to-a-pod-udp"),
        )
    ),
    # The node itself as client, its request untracked out of it.
    *(
        pytest.param([hep("n1", ALLOW), OUT_N1], "n1", "b/server", svc, ok, words, id=name)
        for svc, ok, words, name in (
            ("TCP/80", False, f"{INVALID_REPLY} n1", "client-node-untracked-tcp"),
            ("UDP/5353", True, NEW_FLOW, "client-node-untracked-udp"),
            ("ICMP/0", False, f"{INVALID_REPLY} n1", "client-node-untracked-icmp"),
        )
    ),
    pytest.param(
        [hep("n1", ALLOW), OUT_N1, pre("pre-n1", "host == 'n1'", ingress=[ALLOW_ALL])],
        "n1",
        "b/server",
        "TCP/80",
        True,
        "reply at the preDNAT stage at host endpoint n1-eth0",
        id="client-node-untracked-reply-accepted-by-prednat",
    ),
    pytest.param(
        [hep("n2", ALLOW), OUT_N2, pre("pre-n2", "host == 'n2'", ingress=[ALLOW_ALL])],
        "a/client",
        "n2",
        "TCP/10250",
        True,
        "reply accepted untracked in raw",
        id="replies-untracked-next-packets-accepted-by-prednat",
    ),
]
CASES += CONNTRACK_CASES


def _flow(cluster: Any, src: str, dst: str, service: str) -> Flow:
    proto, _, port = service.partition("/")
    return Flow(
        resolve_endpoint(cluster, src),
        resolve_endpoint(cluster, dst),
        cast(FlowProtocol, proto),
        None if proto == "ICMP" else int(port),
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
    assert v.to_json()["replies_allowed"] is v.allowed
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
