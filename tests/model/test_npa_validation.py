"""ClusterNetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy as their CRDs
validate them: one failing input per schema or CEL rule, each reported as
``file:line: Kind name: field.path: message``; and what a valid object reads as."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest

from sekisho.model import load_paths
from sekisho.model.npa import ClusterPeer, ClusterPort, NamespacedPods
from sekisho.model.types import LabelSelector


def obj(kind: str, spec: str, name: str = "p", version: str = "") -> str:
    """An object whose spec fields start on line 6 (``spec:`` is line 5)."""
    version = version or ("v1alpha2" if kind == "ClusterNetworkPolicy" else "v1alpha1")
    return (
        f"apiVersion: policy.networking.k8s.io/{version}\n"
        f"kind: {kind}\n"
        f"metadata:\n  name: {name}\n"
        "spec:\n" + textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ") + "\n"
    )


def cnp(spec: str, **kw: str) -> str:
    return obj("ClusterNetworkPolicy", spec, **kw)


def anp(spec: str, **kw: str) -> str:
    return obj("AdminNetworkPolicy", spec, **kw)


def banp(spec: str, **kw: str) -> str:
    return obj("BaselineAdminNetworkPolicy", spec, name=kw.pop("name", "default"), **kw)


HEAD = "tier: Admin\npriority: 5\nsubject: {namespaces: {}}\n"
"""Lines 6-8 of a valid ClusterNetworkPolicy; rules start on line 9."""
ANP_HEAD = "priority: 5\nsubject: {namespaces: {}}\n"
"""Lines 6-7 of a valid AdminNetworkPolicy; rules start on line 8."""

C = "m.yaml:{line}: ClusterNetworkPolicy p: {path}: "
A = "m.yaml:{line}: AdminNetworkPolicy p: {path}: "
B = "m.yaml:{line}: BaselineAdminNetworkPolicy default: {path}: "


def egress(rule: str) -> str:
    return "egress:\n- " + textwrap.indent(textwrap.dedent(rule).strip("\n"), "  ")[2:]


CASES = [
    # --- top level -----------------------------------------------------------------------
    pytest.param(
        cnp(HEAD, version="v1alpha1"),
        'm.yaml:1: ClusterNetworkPolicy p: apiVersion: "policy.networking.k8s.io/v1alpha1" '
        "is not supported for ClusterNetworkPolicy: expected policy.networking.k8s.io/v1alpha2",
        id="cnp-api-version",
    ),
    pytest.param(
        "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\n"
        "metadata:\n  name: p\n",
        "m.yaml:1: ClusterNetworkPolicy p: spec: missing spec",
        id="spec-required",
    ),
    pytest.param(
        cnp("tiers: Admin\npriority: 5\nsubject: {namespaces: {}}"),
        C.format(line=6, path="spec.tiers") + 'unknown field "tiers"; did you mean "tier"?',
        id="unknown-field",
    ),
    pytest.param(
        cnp("priority: 5\nsubject: {namespaces: {}}"),
        C.format(line=5, path="spec.tier") + 'tier is required: "Admin" or "Baseline"',
        id="tier-required",
    ),
    pytest.param(
        cnp("tier: admin\npriority: 5\nsubject: {namespaces: {}}"),
        C.format(line=6, path="spec.tier")
        + 'unsupported value "admin": expected "Admin" or "Baseline" '
        '(values are case-sensitive: "Admin")',
        id="tier-enum",
    ),
    pytest.param(
        cnp("tier: Admin\nsubject: {namespaces: {}}"),
        C.format(line=5, path="spec.priority") + "priority is required",
        id="priority-required",
    ),
    pytest.param(
        cnp("tier: Admin\npriority: 1001\nsubject: {namespaces: {}}"),
        C.format(line=7, path="spec.priority") + "1001 is not between 0 and 1000",
        id="priority-maximum",
    ),
    pytest.param(
        cnp("tier: Admin\npriority: -1\nsubject: {namespaces: {}}"),
        "-1 is not between 0 and 1000",
        id="priority-minimum",
    ),
    pytest.param(
        cnp('tier: Admin\npriority: "5"\nsubject: {namespaces: {}}'),
        C.format(line=7, path="spec.priority") + 'expected an integer, got the string "5"',
        id="priority-type",
    ),
    # --- subject -------------------------------------------------------------------------
    pytest.param(
        cnp("tier: Admin\npriority: 5"),
        C.format(line=5, path="spec.subject") + "subject is required: namespaces or pods",
        id="subject-required",
    ),
    pytest.param(
        cnp("tier: Admin\npriority: 5\nsubject: {}"),
        C.format(line=8, path="spec.subject")
        + 'subject must set exactly one of "namespaces" or "pods"',
        id="subject-min-properties",
    ),
    pytest.param(
        cnp("tier: Admin\npriority: 5\nsubject:\n  namespaces: {}\n  pods: {podSelector: {}}"),
        'subject must set exactly one of "namespaces" or "pods", not namespaces and pods',
        id="subject-max-properties",
    ),
    pytest.param(
        cnp("tier: Admin\npriority: 5\nsubject:\n  namespaces:"),
        "(namespaces given as null: write {} to select everything)",
        id="subject-null-selector",
    ),
    pytest.param(
        cnp("tier: Admin\npriority: 5\nsubject:\n  pods: {namespaceSelector: {}}"),
        C.format(line=9, path="spec.subject.pods.podSelector") + "podSelector is required",
        id="subject-pods-podselector-required",
    ),
    pytest.param(
        cnp(
            "tier: Admin\npriority: 5\nsubject:\n  namespaces:\n    matchExpressions:\n"
            "    - {key: a, operator: Has}"
        ),
        'unknown operator "Has": expected one of In, NotIn, Exists, DoesNotExist',
        id="subject-selector-operator",
    ),
    # --- rules ---------------------------------------------------------------------------
    pytest.param(
        cnp(HEAD + "ingress:\n" + "- {action: Deny, from: [{namespaces: {}}]}\n" * 26),
        C.format(line=9, path="spec.ingress") + "ingress has 26 items: at most 25 are allowed",
        id="cnp-max-25-rules",
    ),
    pytest.param(
        cnp(HEAD + "ingress:\n- from: [{namespaces: {}}]"),
        C.format(line=10, path="spec.ingress[0].action")
        + 'action is required: "Accept", "Deny" or "Pass"',
        id="action-required",
    ),
    pytest.param(
        cnp(HEAD + "ingress:\n- {action: Allow, from: [{namespaces: {}}]}"),
        'unsupported value "Allow": expected "Accept", "Deny" or "Pass"',
        id="cnp-action-enum",
    ),
    pytest.param(
        cnp(HEAD + "ingress:\n- {action: Deny}"),
        C.format(line=10, path="spec.ingress[0].from")
        + "from is required: a list of at least one peer",
        id="from-required",
    ),
    pytest.param(
        cnp(HEAD + "ingress:\n- {action: Deny, from: []}"),
        C.format(line=10, path="spec.ingress[0].from") + "from must have at least 1 item",
        id="from-min-items",
    ),
    pytest.param(
        cnp(HEAD + "egress:\n- action: Deny\n  to:\n" + "  - {namespaces: {}}\n" * 26),
        "to has 26 items: at most 25 are allowed",
        id="to-max-items",
    ),
    pytest.param(
        cnp(
            HEAD + f"ingress:\n- {{name: {'n' * 101}, action: Deny, from: [{{namespaces: {{}}}}]}}"
        ),
        C.format(line=10, path="spec.ingress[0].name") + "is 101 characters long: at most 100",
        id="rule-name-max-length",
    ),
    # --- peers ---------------------------------------------------------------------------
    pytest.param(
        cnp(HEAD + "ingress:\n- {action: Deny, from: [{nodes: {}}]}"),
        C.format(line=10, path="spec.ingress[0].from[0].nodes") + 'unknown field "nodes"',
        id="ingress-peer-has-no-nodes",
    ),
    pytest.param(
        cnp(HEAD + egress("action: Deny\nto:\n- {namespaces: {}, networks: [10.0.0.0/8]}")),
        C.format(line=12, path="spec.egress[0].to[0]")
        + 'a peer must set exactly one of "domainNames", "namespaces", "networks", "nodes" '
        'or "pods", not namespaces and networks',
        id="peer-max-properties",
    ),
    pytest.param(
        cnp(HEAD + egress("action: Deny\nto:\n- {}")),
        "a peer must set exactly one of",
        id="peer-min-properties",
    ),
    pytest.param(
        cnp(HEAD + egress("action: Deny\nto:\n- networks: [10.0.0.0]")),
        C.format(line=12, path="spec.egress[0].to[0].networks[0]")
        + '"10.0.0.0": invalid CIDR format provided',
        id="networks-is-cidr",
    ),
    pytest.param(
        cnp(HEAD + egress("action: Deny\nto:\n- networks: [10.0.0.0/8, 10.0.0.0/8]")),
        'duplicate value "10.0.0.0/8" (networks is a set)',
        id="networks-set",
    ),
    pytest.param(
        cnp(HEAD + egress("action: Deny\nto:\n- networks: []")),
        "networks must have at least 1 item",
        id="networks-min-items",
    ),
    pytest.param(
        cnp(
            HEAD
            + egress(
                "action: Deny\nto:\n- networks: ["
                + ", ".join(f"10.{i}.0.0/16" for i in range(26))
                + "]"
            )
        ),
        "networks has 26 items: at most 25 are allowed",
        id="networks-max-items",
    ),
    pytest.param(
        cnp(
            HEAD
            + egress(
                "action: Deny\nto:\n- networks: ['1111:2222:3333:4444:5555:6666:7777:8888/1280']"
            )
        ),
        "is 44 characters long: at most 43",
        id="networks-max-length",
    ),
    pytest.param(
        cnp(HEAD + egress("action: Deny\nto:\n- domainNames: [example.com]")),
        C.format(line=12, path="spec.egress[0].to[0].domainNames")
        + "domainNames peers are only supported in Accept rules, not Deny",
        id="domain-names-accept-only",
    ),
    pytest.param(
        cnp(HEAD + egress("action: Accept\nto:\n- domainNames: ['-bad-.com']")),
        '"-bad-.com" is not a domain name',
        id="domain-names-pattern",
    ),
    pytest.param(
        cnp(HEAD + egress("action: Accept\nto:\n- pods: {namespaceSelector: {}}")),
        "podSelector is required",
        id="peer-pods-podselector-required",
    ),
    # --- protocols -----------------------------------------------------------------------
    pytest.param(
        cnp(HEAD + egress("action: Deny\nto: [{namespaces: {}}]\nprotocols: []")),
        C.format(line=12, path="spec.egress[0].protocols") + "protocols must have at least 1 item",
        id="protocols-min-items",
    ),
    pytest.param(
        cnp(HEAD + egress("action: Deny\nto: [{namespaces: {}}]\nprotocols:\n- tcp: {}")),
        C.format(line=13, path="spec.egress[0].protocols[0].tcp.destinationPort")
        + "destinationPort is required: number or range",
        id="tcp-min-properties",
    ),
    pytest.param(
        cnp(
            HEAD
            + egress(
                "action: Deny\nto: [{namespaces: {}}]\nprotocols:\n"
                "- {tcp: {destinationPort: {number: 80}}, udp: {destinationPort: {number: 53}}}"
            )
        ),
        'a protocol must set exactly one of "destinationNamedPort", "sctp", "tcp" or "udp", '
        "not tcp and udp",
        id="protocol-max-properties",
    ),
    pytest.param(
        cnp(
            HEAD
            + egress(
                "action: Deny\nto: [{namespaces: {}}]\nprotocols:\n"
                "- udp: {destinationPort: {number: 0}}"
            )
        ),
        C.format(line=13, path="spec.egress[0].protocols[0].udp.destinationPort.number")
        + "0 is not between 1 and 65535",
        id="port-number-minimum",
    ),
    pytest.param(
        cnp(
            HEAD
            + egress(
                "action: Deny\nto: [{namespaces: {}}]\nprotocols:\n"
                "- sctp: {destinationPort: {number: 80, range: {start: 1, end: 2}}}"
            )
        ),
        'destinationPort must set exactly one of "number" or "range", not number and range',
        id="port-max-properties",
    ),
    pytest.param(
        cnp(
            HEAD
            + egress(
                "action: Deny\nto: [{namespaces: {}}]\nprotocols:\n"
                "- tcp: {destinationPort: {range: {start: 80, end: 80}}}"
            )
        ),
        C.format(line=13, path="spec.egress[0].protocols[0].tcp.destinationPort.range")
        + "start port must be less than end port (start 80, end 80)",
        id="range-cel-start-less-than-end",
    ),
    pytest.param(
        cnp(
            HEAD
            + egress(
                "action: Deny\nto: [{namespaces: {}}]\nprotocols:\n"
                "- tcp: {destinationPort: {range: {start: 80}}}"
            )
        ),
        "end is required: a port from 1 to 65535",
        id="range-end-required",
    ),
    pytest.param(
        cnp(
            HEAD
            + egress(
                "action: Deny\nto: [{networks: [10.0.0.0/8]}]\nprotocols:\n"
                "- destinationNamedPort: web"
            )
        ),
        C.format(line=13, path="spec.egress[0].protocols[0]")
        + "networks/nodes/domainNames peer (to[0]) cannot be set with namedPorts since there "
        "are no namedPorts for networks/nodes/domainNames",
        id="named-port-cel",
    ),
    pytest.param(
        cnp(
            HEAD
            + egress("action: Deny\nto: [{namespaces: {}}]\nprotocols:\n- destinationNamedPort: ''")
        ),
        "expected the name of a container port, got an empty string",
        id="named-port-empty",
    ),
    # --- AdminNetworkPolicy (v1alpha1) ---------------------------------------------------
    pytest.param(
        anp("subject: {namespaces: {}}"),
        A.format(line=5, path="spec.priority") + "priority is required",
        id="anp-priority-required",
    ),
    pytest.param(
        anp(ANP_HEAD + "tier: Admin"),
        A.format(line=8, path="spec.tier") + 'unknown field "tier"',
        id="anp-has-no-tier",
    ),
    pytest.param(
        anp(ANP_HEAD + "ingress:\n- {action: Accept, from: [{namespaces: {}}]}"),
        'unsupported value "Accept": expected "Allow", "Deny" or "Pass"',
        id="anp-action-enum",
    ),
    pytest.param(
        anp(ANP_HEAD + "ingress:\n" + "- {action: Deny, from: [{namespaces: {}}]}\n" * 101),
        "ingress has 101 items: at most 100 are allowed",
        id="anp-max-100-rules",
    ),
    pytest.param(
        anp(ANP_HEAD + "ingress:\n- action: Deny\n  from:\n  - pods: {podSelector: {}}"),
        A.format(line=11, path="spec.ingress[0].from[0].pods.namespaceSelector")
        + "namespaceSelector is required",
        id="anp-pods-namespaceselector-required",
    ),
    pytest.param(
        anp(
            ANP_HEAD + "ingress:\n- action: Deny\n  from: [{namespaces: {}}]\n  ports:\n"
            "  - portNumber: {protocol: ICMP, port: 1}"
        ),
        A.format(line=12, path="spec.ingress[0].ports[0].portNumber.protocol")
        + 'unsupported protocol "ICMP": expected TCP, UDP or SCTP',
        id="anp-port-protocol",
    ),
    pytest.param(
        anp(
            ANP_HEAD + "ingress:\n- action: Deny\n  from: [{namespaces: {}}]\n  ports:\n"
            "  - portNumber: {protocol: TCP}"
        ),
        "port is required: a port from 1 to 65535",
        id="anp-port-number-required",
    ),
    pytest.param(
        anp(
            ANP_HEAD + "ingress:\n- action: Deny\n  from: [{namespaces: {}}]\n  ports:\n"
            "  - portRange: {start: 90, end: 80}"
        ),
        A.format(line=12, path="spec.ingress[0].ports[0].portRange")
        + "start 90 is greater than end 80",
        id="anp-port-range-backwards",
    ),
    pytest.param(
        anp(
            ANP_HEAD + "ingress:\n- action: Deny\n  from: [{namespaces: {}}]\n  ports:\n"
            "  - {namedPort: web, portNumber: {port: 80}}"
        ),
        'a port must set exactly one of "namedPort", "portNumber" or "portRange", '
        "not namedPort and portNumber",
        id="anp-port-max-properties",
    ),
    pytest.param(
        anp(
            ANP_HEAD + "egress:\n- action: Allow\n  to: [{nodes: {}}]\n  ports:\n  - namedPort: web"
        ),
        "networks/nodes/domainNames peer (to[0]) cannot be set with namedPorts",
        id="anp-named-port-cel",
    ),
    # --- BaselineAdminNetworkPolicy (v1alpha1) -------------------------------------------
    pytest.param(
        banp("subject: {namespaces: {}}", name="other"),
        'm.yaml:4: BaselineAdminNetworkPolicy other: metadata.name: "other": only one baseline '
        'admin network policy with metadata.name="default" can be created in the cluster',
        id="banp-name-cel",
    ),
    pytest.param(
        banp("priority: 5\nsubject: {namespaces: {}}"),
        B.format(line=6, path="spec.priority") + 'unknown field "priority"',
        id="banp-has-no-priority",
    ),
    pytest.param(
        banp("subject: {namespaces: {}}\ningress:\n- {action: Pass, from: [{namespaces: {}}]}"),
        'unsupported value "Pass": expected "Allow" or "Deny"',
        id="banp-no-pass",
    ),
    pytest.param(
        banp("subject: {namespaces: {}}\negress:\n- {action: Allow, to: [{domainNames: [a.io]}]}"),
        B.format(line=8, path="spec.egress[0].to[0].domainNames") + 'unknown field "domainNames"',
        id="banp-has-no-domain-names",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_invalid_input_is_reported_with_file_line_and_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    (tmp_path / "m.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    result = load_paths(["m.yaml"])
    lines = [str(p) for p in result.problems]
    assert result.cluster is None
    assert any(expected in line for line in lines), "\n".join(lines)
    assert all("\n" not in line for line in lines)


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    text = cnp(
        """
        tier: Middle
        priority: 2000
        subject: {namespaces: {}}
        egress:
        - action: Deny
          to: [{networks: [10.0.0.0]}]
          protocols: [{tcp: {destinationPort: {number: 0}}}]
        """
    )
    (tmp_path / "m.yaml").write_text(text)
    result = load_paths([tmp_path / "m.yaml"])
    assert [p.path for p in result.problems] == [
        "spec.tier",
        "spec.priority",
        "spec.egress[0].to[0].networks[0]",
        "spec.egress[0].protocols[0].tcp.destinationPort.number",
    ]


def test_a_valid_cluster_network_policy_reads_as_written(tmp_path: Path) -> None:
    text = cnp(
        """
        tier: Baseline
        priority: 0
        subject:
          pods:
            podSelector: {matchLabels: {app: db}}
        egress:
        - name: out
          action: Pass
          to:
          - networks: [10.1.2.3/8, "::/0"]
          - nodes: {}
          protocols:
          - tcp: {destinationPort: {range: {start: 1000, end: 2000}}}
          - sctp: {destinationPort: {number: 9}}
        - action: Accept
          to: [{pods: {namespaceSelector: {}, podSelector: {}}}]
          protocols: [{destinationNamedPort: web}]
        """
    )
    (tmp_path / "m.yaml").write_text(text)
    result = load_paths([tmp_path / "m.yaml"])
    assert result.cluster is not None, [str(p) for p in result.problems]
    (p,) = result.cluster.cluster_policies
    assert (p.kind, p.name, p.tier, p.priority) == ("ClusterNetworkPolicy", "p", "Baseline", 0)
    # NamespacedPod.namespaceSelector is optional in v1alpha2: left out, it is {}.
    assert p.subject_pods == NamespacedPods(LabelSelector(), LabelSelector((("app", "db"),)))
    out, accept = p.egress
    assert out.name == "out" and out.action == "Pass"
    # isCIDR accepts host bits; they are cleared, as Calico does.
    assert out.peers[0] == ClusterPeer(
        networks=(ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::/0"))
    )
    assert out.peers[1] == ClusterPeer(nodes=LabelSelector())
    assert out.ports == (ClusterPort("TCP", 1000, 2000), ClusterPort("SCTP", 9, 9))
    assert accept.ports == (ClusterPort(None, name="web"),)
    assert result.summary()["policies"] == 1


def test_anp_ports_default_to_tcp_and_banp_has_no_priority(tmp_path: Path) -> None:
    text = (
        anp(
            ANP_HEAD + "ingress:\n- action: Allow\n  from: [{namespaces: {}}]\n"
            "  ports: [{portNumber: {port: 80}}, {portRange: {start: 5, end: 5}}]"
        )
        + "---\n"
        + banp("subject: {namespaces: {}}\negress:\n- {action: Deny, to: [{nodes: {}}]}")
    )
    (tmp_path / "m.yaml").write_text(text)
    result = load_paths([tmp_path / "m.yaml"])
    assert result.cluster is not None, [str(p) for p in result.problems]
    a, b = result.cluster.cluster_policies
    assert (a.kind, a.tier, a.priority) == ("AdminNetworkPolicy", "Admin", 5)
    assert a.ingress[0].ports == (ClusterPort("TCP", 80, 80), ClusterPort("TCP", 5, 5))
    assert (b.kind, b.tier, b.priority) == ("BaselineAdminNetworkPolicy", "Baseline", None)


def test_same_priority_in_one_tier_is_a_warning(tmp_path: Path) -> None:
    text = (
        cnp(HEAD, name="a")
        + "---\n"
        + anp(ANP_HEAD, name="b")
        + "---\n"
        + cnp("tier: Baseline\npriority: 5\nsubject: {namespaces: {}}", name="c")
    )
    (tmp_path / "m.yaml").write_text(text)
    result = load_paths([tmp_path / "m.yaml"])
    assert result.valid
    (warning,) = result.warnings
    assert str(warning).endswith(
        "m.yaml:7: ClusterNetworkPolicy a: spec.priority: same priority 5 as AdminNetworkPolicy b in the "
        "Admin tier: the API leaves their order to the implementation (Calico and sekisho "
        "order them by name)"
    )
