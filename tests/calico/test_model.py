"""Calico's v3 kinds as libcalico-go validates them: one failing input per rule, each
reported as ``file:line: Kind name: field.path: message``; and what valid objects read as."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest

from sekisho.model import load_paths
from sekisho.model.calico import CalicoPort, Icmp


def obj(kind: str, spec: str, name: str = "p", namespace: str | None = "dev") -> str:
    """An object whose spec fields start on line 7 (``spec:`` is line 6)."""
    ns = f"  namespace: {namespace}\n" if namespace else "  labels: {a: b}\n"
    return (
        "apiVersion: projectcalico.org/v3\n"
        f"kind: {kind}\n"
        f"metadata:\n  name: {name}\n{ns}"
        "spec:\n" + textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ") + "\n"
    )


def np(spec: str, **kw: str) -> str:
    return obj("NetworkPolicy", spec, **kw)


def gnp(spec: str, **kw: str) -> str:
    return obj("GlobalNetworkPolicy", spec, namespace=None, **kw)


N = "m.yaml:{line}: NetworkPolicy dev/p: {path}: "
G = "m.yaml:{line}: GlobalNetworkPolicy p: {path}: "


def problems(tmp_path: Path, text: str) -> list[str]:
    f = tmp_path / "m.yaml"
    f.write_text(text)
    result = load_paths([f])
    return [str(p).replace(str(tmp_path) + "/", "") for p in result.problems]


CASES = [
    pytest.param(
        np("selector: app == 'x' &&"),
        N.format(line=7, path="spec.selector")
        + "invalid selector \"app == 'x' &&\": column 14: unexpected end of selector",
        id="selector-syntax-column",
    ),
    pytest.param(
        np("selector: global()"),
        N.format(line=7, path="spec.selector")
        + '"global()": global() can only be used in a rule\'s namespaceSelector',
        id="global-in-policy-selector",
    ),
    pytest.param(
        np("tier: platform"),
        N.format(line=4, path="metadata.name")
        + '"p" is not a name of tier "platform": a policy outside the default tier is named '
        '"<tier>.<name>" (e.g. "platform.p")',
        id="tier-prefix-required",
    ),
    pytest.param(
        np("ingress:\n- action: Allow\n  http: {methods: [GET]}"),
        N.format(line=9, path="spec.ingress[0].http")
        + "HTTP matches need Calico's application layer policy (an L7 proxy); sekisho "
        "enforces L3/L4 only: remove http or keep this policy out of sekisho",
        id="http-refused",
    ),
    pytest.param(
        np("ingress:\n- action: allow"),
        N.format(line=8, path="spec.ingress[0].action")
        + 'unsupported value "allow": expected "Allow", "Deny", "Pass" or "Log" '
        '(values are case-sensitive: "Allow")',
        id="action-case",
    ),
    pytest.param(
        np("ingress:\n- {}"),
        N.format(line=8, path="spec.ingress[0].action")
        + 'action is required: "Allow", "Deny", "Pass" or "Log"',
        id="action-required",
    ),
    pytest.param(
        np("ingress:\n- action: Allow\n  destination: {ports: [80]}"),
        N.format(line=9, path="spec.ingress[0].destination.ports")
        + "rules that specify ports must set protocol to TCP, UDP, SCTP or UDPLite",
        id="ports-need-protocol",
    ),
    pytest.param(
        np("ingress:\n- action: Allow\n  protocol: TCP\n  destination: {ports: ['90:80']}"),
        N.format(line=10, path="spec.ingress[0].destination.ports[0]")
        + 'port range "90:80" is invalid: 90 is greater than 80',
        id="port-range-backwards",
    ),
    pytest.param(
        np("ingress:\n- action: Allow\n  protocol: TCP\n  destination: {ports: [0]}"),
        N.format(line=10, path="spec.ingress[0].destination.ports[0]")
        + "port 0 is not between 1 and 65535",
        id="port-zero",
    ),
    pytest.param(
        np("ingress:\n- action: Allow\n  protocol: tcp"),
        N.format(line=9, path="spec.ingress[0].protocol")
        + 'unsupported protocol "tcp": expected "TCP", "UDP", "ICMP", "ICMPv6", "SCTP" or '
        '"UDPLite" or a number 1-255 (names are case-sensitive: "TCP")',
        id="protocol-case",
    ),
    pytest.param(
        np("ingress:\n- action: Allow\n  protocol: 256"),
        N.format(line=9, path="spec.ingress[0].protocol")
        + "protocol number 256 is not between 1 and 255",
        id="protocol-number",
    ),
    pytest.param(
        np("ingress:\n- action: Allow\n  protocol: TCP\n  icmp: {type: 8}"),
        N.format(line=10, path="spec.ingress[0].icmp")
        + "rules that specify ICMP fields must set protocol to ICMP or ICMPv6",
        id="icmp-needs-protocol",
    ),
    pytest.param(
        np("ingress:\n- action: Allow\n  protocol: ICMP\n  icmp: {type: 255}"),
        N.format(line=10, path="spec.ingress[0].icmp.type")
        + "ICMP type 255 is not between 0 and 254",
        id="icmp-type-range",
    ),
    pytest.param(
        np("ingress:\n- action: Allow\n  protocol: ICMP\n  ipVersion: 6"),
        N.format(line=10, path="spec.ingress[0].ipVersion")
        + "must set ipVersion to 4 with protocol ICMP",
        id="icmp-ipversion",
    ),
    pytest.param(
        np(
            "ingress:\n- action: Allow\n  source: {nets: [10.0.0.0/8]}\n  destination: {nets: ['fd00::/8']}"
        ),
        N.format(line=8, path="spec.ingress[0]") + "rule contains both IPv4 and IPv6 CIDRs",
        id="mixed-families",
    ),
    pytest.param(
        np("ingress:\n- action: Allow\n  source: {namespaceSelector: \"global() && a == 'b'\"}"),
        N.format(line=9, path="spec.ingress[0].source.namespaceSelector")
        + "\"global() && a == 'b'\": global() cannot be combined with other selectors",
        id="global-combined",
    ),
    pytest.param(
        np("types: [Ingress, Ingress]"),
        N.format(line=7, path="spec.types[1]") + "'Ingress' type specified more than once",
        id="types-twice",
    ),
    pytest.param(
        gnp("preDNAT: true\napplyOnForward: true\ntypes: [Ingress]\negress:\n- action: Allow"),
        G.format(line=10, path="spec.egress") + "a preDNAT policy cannot have egress rules",
        id="predNAT-egress",
    ),
    pytest.param(
        gnp("doNotTrack: true"),
        G.format(line=6, path="spec.applyOnForward")
        + "applyOnForward must be true if either preDNAT or doNotTrack is true",
        id="donottrack-needs-applyonforward",
    ),
    pytest.param(
        obj("Tier", "order: 5", name="default", namespace=None),
        "m.yaml:7: Tier default: spec.order: the default tier's order must be 1e+06",
        id="default-tier-order",
    ),
    pytest.param(
        obj("Tier", "defaultAction: Allow", name="t", namespace=None),
        'm.yaml:7: Tier t: spec.defaultAction: unsupported value "Allow": expected "Deny" or "Pass"',
        id="tier-default-action",
    ),
    pytest.param(
        obj("StagedNetworkPolicy", "stagedAction: Delete\nselector: all()"),
        "m.yaml:8: StagedNetworkPolicy dev/p: spec.selector: must be left out when stagedAction "
        "is Delete (only tier may be given)",
        id="staged-delete-empty",
    ),
    pytest.param(
        obj("HostEndpoint", "node: n1", name="h", namespace=None),
        "m.yaml:6: HostEndpoint h: spec.interfaceName: no interface or expected IPs have been "
        "specified",
        id="hep-needs-interface",
    ),
    pytest.param(
        np("tier: nope", name="nope.p"),
        'm.yaml:7: NetworkPolicy dev/nope.p: spec.tier: tier "nope" is not defined (tiers: '
        "default, kube-admin, kube-baseline): add a Tier object",
        id="tier-must-exist",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_invalid(tmp_path: Path, text: str, expected: str) -> None:
    assert problems(tmp_path, text) == [expected]


def test_default_and_prefixed_names_are_one_policy(tmp_path: Path) -> None:
    got = problems(tmp_path, np("{}", name="x") + "---\n" + np("{}", name="default.x"))
    assert len(got) == 1 and "is the same policy" in got[0], got


def test_valid_list(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(
        textwrap.dedent(
            """\
            apiVersion: projectcalico.org/v3
            kind: NetworkPolicyList
            items:
            - apiVersion: projectcalico.org/v3
              kind: NetworkPolicy
              metadata: {name: platform.a, namespace: dev}
              spec:
                tier: platform
                egress:
                - action: Deny
                  protocol: ICMP
                  icmp: {type: 8, code: 0}
                  destination:
                    ports: []
                - action: Allow
                  protocol: 6
                  destination: {ports: [80, "8000:8080", http]}
            - apiVersion: projectcalico.org/v3
              kind: Tier
              metadata: {name: platform}
              spec: {order: 100, defaultAction: Pass}
            - apiVersion: projectcalico.org/v3
              kind: GlobalNetworkSet
              metadata: {name: ext, labels: {role: ext}}
              spec: {nets: [192.0.2.1, 198.51.100.0/24]}
            - apiVersion: v1
              kind: ServiceAccount
              metadata: {name: api, namespace: dev, labels: {team: a}}
              automountServiceAccountToken: false
            """
        )
    )
    result = load_paths([f])
    assert result.problems == ()
    c = result.cluster
    assert c is not None and c.calico is not None
    (pol,) = c.calico.policies
    assert pol.tier == "platform" and pol.order is None
    # "Policy has egress rules but no ingress rules, so apply this policy to egress only."
    assert pol.types == frozenset({"Egress"})
    assert pol.egress[0].icmp == Icmp(8, 0)
    assert pol.egress[1].protocol == 6
    assert pol.egress[1].destination.ports == (
        CalicoPort(80, 80),
        CalicoPort(8000, 8080),
        CalicoPort(name="http"),
    )
    (tier,) = c.calico.tiers
    assert (tier.order, tier.default_action) == (100.0, "Pass")
    (ns,) = c.calico.network_sets
    assert ns.nets == (
        ipaddress.ip_network("192.0.2.1/32"),
        ipaddress.ip_network("198.51.100.0/24"),
    )
    assert c.calico.service_accounts[0].labels == {"team": "a"}


def test_types_default_ingress_when_no_rules(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(np("selector: all()"))
    c = load_paths([f]).cluster
    assert c is not None and c.calico is not None
    assert c.calico.policies[0].types == frozenset({"Ingress"})
