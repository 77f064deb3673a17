"""One failing input per validation rule: the error line names file:line, object and field path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sekisho.errors import ManifestError
from sekisho.model import cluster_from_objects, load_cluster, load_paths


def policy(spec: str, name: str = "p", namespace: str = "dev") -> str:
    """A NetworkPolicy whose spec fields start on line 7 (``spec:`` is line 6)."""
    return (
        "apiVersion: networking.k8s.io/v1\n"
        "kind: NetworkPolicy\n"
        f"metadata:\n  name: {name}\n  namespace: {namespace}\n"
        "spec:\n" + textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ") + "\n"
    )


def pod(spec: str, name: str = "web", extra_meta: str = "") -> str:
    """A Pod whose spec fields start on line 7 (``spec:`` is line 6) unless extra_meta adds lines."""
    return (
        "apiVersion: v1\nkind: Pod\n"
        f"metadata:\n  name: {name}\n  namespace: dev\n{extra_meta}"
        "spec:\n" + textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ") + "\n"
    )


P = "m.yaml:{line}: NetworkPolicy dev/p: {path}: "
POD = "m.yaml:{line}: Pod dev/web: {path}: "

CASES = [
    # --- label keys and values -----------------------------------------------------------
    pytest.param(
        policy("podSelector:\n  matchLabels:\n    -bad: x"),
        P.format(line=9, path="spec.podSelector.matchLabels.-bad") + 'label key "-bad"',
        id="label-key-charset",
    ),
    pytest.param(
        policy("podSelector:\n  matchLabels:\n    " + "k" * 64 + ": x"),
        "name part must be at most 63 characters",
        id="label-key-name-too-long",
    ),
    pytest.param(
        policy("podSelector:\n  matchLabels:\n    Example.COM/app: x"),
        P.format(line=9, path="spec.podSelector.matchLabels.Example.COM/app") + "label key",
        id="label-key-prefix-not-dns-subdomain",
    ),
    pytest.param(
        policy("podSelector:\n  matchLabels:\n    " + "a" * 254 + "/app: x"),
        "is longer than 253 characters",
        id="label-key-prefix-too-long",
    ),
    pytest.param(
        policy("podSelector:\n  matchLabels:\n    /app: x"),
        "the prefix before '/' must not be empty",
        id="label-key-empty-prefix",
    ),
    pytest.param(
        policy("podSelector:\n  matchLabels:\n    app: -x-"),
        P.format(line=9, path="spec.podSelector.matchLabels.app") + 'label value "-x-"',
        id="label-value-charset",
    ),
    pytest.param(
        policy("podSelector:\n  matchLabels:\n    app: " + "v" * 64),
        "is longer than 63 characters",
        id="label-value-too-long",
    ),
    pytest.param(
        policy("podSelector:\n  matchLabels:\n    enabled: true"),
        P.format(line=9, path="spec.podSelector.matchLabels.enabled")
        + 'label values must be strings, got the boolean true (quote it: "true")',
        id="label-value-not-a-string",
    ),
    # --- selector operators --------------------------------------------------------------
    pytest.param(
        policy("podSelector:\n  matchExpressions:\n  - {key: app, operator: In, values: []}"),
        P.format(line=9, path="spec.podSelector.matchExpressions[0].values")
        + "values must be non-empty when operator is In",
        id="operator-in-needs-values",
    ),
    pytest.param(
        policy("podSelector:\n  matchExpressions:\n  - {key: app, operator: NotIn}"),
        "values must be non-empty when operator is NotIn",
        id="operator-notin-needs-values",
    ),
    pytest.param(
        policy("podSelector:\n  matchExpressions:\n  - {key: app, operator: Exists, values: [a]}"),
        P.format(line=9, path="spec.podSelector.matchExpressions[0].values")
        + "values must be empty when operator is Exists",
        id="operator-exists-takes-no-values",
    ),
    pytest.param(
        policy(
            "podSelector:\n  matchExpressions:\n  - key: app\n    operator: DoesNotExist\n    values: [a]"
        ),
        "m.yaml:11: NetworkPolicy dev/p: spec.podSelector.matchExpressions[0].values: "
        "values must be empty when operator is DoesNotExist",
        id="operator-doesnotexist-takes-no-values",
    ),
    pytest.param(
        policy(
            "podSelector:\n  matchExpressions:\n  - key: app\n    operator: Equals\n    values: [a]"
        ),
        "m.yaml:10: NetworkPolicy dev/p: spec.podSelector.matchExpressions[0].operator: "
        'unknown operator "Equals": expected one of In, NotIn, Exists, DoesNotExist',
        id="operator-unknown",
    ),
    pytest.param(
        policy("podSelector:\n  matchExpressions:\n  - {operator: Exists}"),
        "spec.podSelector.matchExpressions[0].key: key is required",
        id="requirement-key-required",
    ),
    # --- ipBlock -------------------------------------------------------------------------
    pytest.param(
        policy("podSelector: {}\ningress:\n- from:\n  - ipBlock:\n      cidr: 10.0.0.300/8"),
        P.format(line=11, path="spec.ingress[0].from[0].ipBlock.cidr")
        + '"10.0.0.300/8" is not a valid CIDR',
        id="ipblock-cidr-syntax",
    ),
    pytest.param(
        policy("podSelector: {}\ningress:\n- from:\n  - ipBlock:\n      cidr: 10.0.0.1"),
        "is not a CIDR: expected an address and a prefix length",
        id="ipblock-cidr-no-prefix",
    ),
    pytest.param(
        policy("podSelector: {}\ningress:\n- from:\n  - ipBlock: {}"),
        "spec.ingress[0].from[0].ipBlock.cidr: cidr is required",
        id="ipblock-cidr-required",
    ),
    pytest.param(
        policy(
            """
            podSelector: {}
            ingress:
            - from:
              - podSelector: {}
              - ipBlock:
                  cidr: 10.0.0.0/16
                  except:
                  - 192.168.0.0/24
            """
        ),
        P.format(line=14, path="spec.ingress[0].from[1].ipBlock.except[0]")
        + "192.168.0.0/24 is not inside 10.0.0.0/16",
        id="ipblock-except-outside",
    ),
    pytest.param(
        policy(
            "podSelector: {}\ningress:\n- from:\n  - ipBlock:\n      cidr: 10.0.0.0/16\n      except: [10.0.0.0/16]"
        ),
        "10.0.0.0/16 must be strictly inside 10.0.0.0/16, not equal to it",
        id="ipblock-except-equal",
    ),
    pytest.param(
        policy(
            "podSelector: {}\ningress:\n- from:\n  - ipBlock:\n      cidr: 10.0.0.0/16\n      except: ['fd00::/64']"
        ),
        "spec.ingress[0].from[0].ipBlock.except[0]: fd00::/64 is IPv6 but cidr 10.0.0.0/16 is IPv4",
        id="ipblock-except-family",
    ),
    # --- ports ---------------------------------------------------------------------------
    pytest.param(
        policy("podSelector: {}\ningress:\n- ports:\n  - port: 0"),
        P.format(line=10, path="spec.ingress[0].ports[0].port")
        + "port 0 is not between 1 and 65535",
        id="port-zero",
    ),
    pytest.param(
        policy("podSelector: {}\ningress:\n- ports:\n  - port: 65536"),
        "port 65536 is not between 1 and 65535",
        id="port-too-big",
    ),
    pytest.param(
        policy("podSelector: {}\ningress:\n- ports:\n  - port: web-server-metrics"),
        'port name "web-server-metrics" is longer than 15 characters',
        id="port-name-too-long",
    ),
    pytest.param(
        policy("podSelector: {}\ningress:\n- ports:\n  - port: Http"),
        "must consist of lower-case letters, digits and '-'",
        id="port-name-uppercase",
    ),
    pytest.param(
        policy("podSelector: {}\ningress:\n- ports:\n  - port: '8080'"),
        'port name "8080" must contain at least one letter',
        id="port-name-no-letter",
    ),
    pytest.param(
        policy("podSelector: {}\ningress:\n- ports:\n  - port: -http"),
        "starting and ending with a letter or digit",
        id="port-name-leading-dash",
    ),
    pytest.param(
        policy("podSelector: {}\ningress:\n- ports:\n  - port: http-"),
        "starting and ending with a letter or digit",
        id="port-name-trailing-dash",
    ),
    pytest.param(
        policy("podSelector: {}\ningress:\n- ports:\n  - port: my--http"),
        "must not contain '--'",
        id="port-name-double-dash",
    ),
    pytest.param(
        policy("podSelector: {}\ningress:\n- ports:\n  - port: 80\n    protocol: ICMP"),
        P.format(line=11, path="spec.ingress[0].ports[0].protocol")
        + 'unsupported protocol "ICMP": expected TCP, UDP or SCTP',
        id="port-protocol",
    ),
    pytest.param(
        policy("podSelector: {}\ningress:\n- ports:\n  - port: 80\n    protocol: udp"),
        '(protocols are upper case: "UDP")',
        id="port-protocol-lowercase",
    ),
    pytest.param(
        policy("podSelector: {}\ningress:\n- ports:\n  - port: http\n    endPort: 90"),
        P.format(line=11, path="spec.ingress[0].ports[0].endPort")
        + "endPort may only be set with a numeric port",
        id="endport-with-named-port",
    ),
    pytest.param(
        policy("podSelector: {}\ningress:\n- ports:\n  - endPort: 90"),
        "endPort may only be set with a numeric port",
        id="endport-without-port",
    ),
    pytest.param(
        policy("podSelector: {}\negress:\n- ports:\n  - port: 90\n    endPort: 80"),
        "spec.egress[0].ports[0].endPort: endPort 80 is less than port 90",
        id="endport-below-port",
    ),
    pytest.param(
        policy("podSelector: {}\negress:\n- ports:\n  - port: 90\n    endPort: 70000"),
        "endPort 70000 is not between 1 and 65535",
        id="endport-too-big",
    ),
    # --- peers, policyTypes --------------------------------------------------------------
    pytest.param(
        policy(
            """
            podSelector: {}
            ingress:
            - from:
              - podSelector: {}
                ipBlock:
                  cidr: 10.0.0.0/8
            """
        ),
        P.format(line=10, path="spec.ingress[0].from[0]")
        + "a peer sets either ipBlock or selectors (podSelector, namespaceSelector), not both",
        id="peer-ipblock-and-selector",
    ),
    pytest.param(
        policy("podSelector: {}\negress:\n- to:\n  - {}"),
        P.format(line=10, path="spec.egress[0].to[0]")
        + "a peer must set podSelector, namespaceSelector or ipBlock",
        id="peer-empty",
    ),
    pytest.param(
        policy("podSelector: {}\negress:\n- to:\n  - podSelector:"),
        P.format(line=10, path="spec.egress[0].to[0]")
        + "a peer must set podSelector, namespaceSelector or ipBlock (podSelector given as null: "
        "write {} to select everything)",
        id="peer-null-selector",
    ),
    pytest.param(
        policy("podSelector: {}\npolicyTypes: [Ingress, egress]"),
        P.format(line=8, path="spec.policyTypes[1]")
        + 'unsupported value "egress": expected "Ingress" or "Egress"',
        id="policy-types-value",
    ),
    # --- names ---------------------------------------------------------------------------
    pytest.param(
        policy("podSelector: {}", name="Web_Policy"),
        'm.yaml:4: NetworkPolicy dev/Web_Policy: metadata.name: "Web_Policy" is not a DNS-1123 subdomain',
        id="name-not-dns-subdomain",
    ),
    pytest.param(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: my.team\n",
        'm.yaml:4: Namespace my.team: metadata.name: "my.team" is not a DNS-1123 label',
        id="namespace-name-not-dns-label",
    ),
    pytest.param(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + "n" * 64 + "\n",
        "is longer than 63 characters (a DNS-1123 label)",
        id="namespace-name-too-long",
    ),
    pytest.param(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  namespace: dev\n  generateName: web-\n",
        "m.yaml:3: Pod: metadata.name: metadata.name is required (generateName cannot be used",
        id="name-required",
    ),
    pytest.param(
        policy("podSelector: {}", namespace="Dev"),
        'metadata.namespace: "Dev" is not a DNS-1123 label',
        id="namespace-field-not-dns-label",
    ),
    # --- pods ----------------------------------------------------------------------------
    pytest.param(
        pod("containers:\n- name: web\nnodeName: n1") + "status:\n  podIP: 10.244.1.300\n",
        POD.format(line=11, path="status.podIP") + '"10.244.1.300" is not a valid IP address',
        id="pod-ip-invalid",
    ),
    pytest.param(
        pod("containers:\n- name: web\n  ports:\n  - containerPort: 70000"),
        POD.format(line=10, path="spec.containers[0].ports[0].containerPort")
        + "port 70000 is not between 1 and 65535",
        id="container-port-range",
    ),
    pytest.param(
        pod("containers:\n- name: web\n  ports:\n  - name: http"),
        "spec.containers[0].ports[0].containerPort: containerPort is required",
        id="container-port-required",
    ),
    pytest.param(
        pod("containers:\n- name: web\n  ports:\n  - containerPort: 80\n    name: HTTP"),
        POD.format(line=11, path="spec.containers[0].ports[0].name") + 'port name "HTTP"',
        id="container-port-name-invalid",
    ),
    pytest.param(
        pod(
            """
            containers:
            - name: web
              ports:
              - {containerPort: 80, name: http}
            - name: sidecar
              ports:
              - {containerPort: 8080, name: http}
            """
        ),
        POD.format(line=13, path="spec.containers[1].ports[0].name")
        + 'port name "http" is already used in this pod (at spec.containers[0].ports[0])',
        id="container-port-name-unique-in-pod",
    ),
    pytest.param(
        pod("containers:\n- name: web\n  ports:\n  - {containerPort: 53, protocol: ICMP}"),
        'unsupported protocol "ICMP"',
        id="container-port-protocol",
    ),
    pytest.param(
        pod("hostNetwork: 'yes'"),
        POD.format(line=7, path="spec.hostNetwork")
        + 'expected true or false, got the string "yes"',
        id="pod-host-network-type",
    ),
    # --- unknown fields ------------------------------------------------------------------
    pytest.param(
        policy("podSelector: {}\ningres:\n- {}"),
        P.format(line=8, path="spec.ingres") + 'unknown field "ingres"; did you mean "ingress"?',
        id="unknown-field-spec",
    ),
    pytest.param(
        policy("podSelector:\n  matchLabel:\n    app: web"),
        'spec.podSelector.matchLabel: unknown field "matchLabel"; did you mean "matchLabels"?',
        id="unknown-field-selector",
    ),
    pytest.param(
        policy("podSelector: {}\ningress:\n- from:\n  - namespaceSelector: {}\n    ports: [80]"),
        'spec.ingress[0].from[0].ports: unknown field "ports"',
        id="unknown-field-peer-misindented-ports",
    ),
    pytest.param(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  lables: {app: web}\n",
        'm.yaml:5: Pod default/web: metadata.lables: unknown field "lables"; did you mean "labels"?',
        id="unknown-field-metadata",
    ),
    pytest.param(
        pod("containers:\n- name: web\n  imagePullSecret: x"),
        'spec.containers[0].imagePullSecret: unknown field "imagePullSecret"',
        id="unknown-field-container",
    ),
    pytest.param(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspek: {}\n",
        'm.yaml:5: Pod default/web: spek: unknown field "spek"; did you mean "spec"?',
        id="unknown-field-top",
    ),
    # --- kinds, apiVersions, documents ---------------------------------------------------
    pytest.param(
        policy("podSelector: {}").replace("networking.k8s.io/v1", "extensions/v1beta1"),
        'm.yaml:1: NetworkPolicy dev/p: apiVersion: "extensions/v1beta1" is not supported '
        "for NetworkPolicy: expected networking.k8s.io/v1",
        id="known-kind-unknown-api-version",
    ),
    pytest.param(
        "apiVersion: apps/v1beta2\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  template: {}\n",
        '"apps/v1beta2" is not supported for Deployment: expected apps/v1',
        id="workload-unknown-api-version",
    ),
    pytest.param(
        "apiVersion: v1\nmetadata:\n  name: x\n",
        "m.yaml:1: x: kind: missing kind",
        id="kind-missing",
    ),
    pytest.param(
        "- a\n- b\n",
        "m.yaml:1: expected a Kubernetes object (a mapping with apiVersion and kind), got a list",
        id="document-not-a-mapping",
    ),
    pytest.param(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n    labels: x\n",
        "m.yaml:5: YAML syntax error: mapping values are not allowed in this context (column 11)",
        id="yaml-syntax-error",
    ),
    pytest.param(
        policy("podSelector: {}") + "---\n" + policy("podSelector: {app: x}"),
        "m.yaml:12: NetworkPolicy dev/p: metadata.name: duplicate NetworkPolicy dev/p "
        "(first defined at m.yaml:1)",
        id="duplicate-object",
    ),
    pytest.param(
        policy("podSelector: {}\ningress: {from: []}"),
        P.format(line=8, path="spec.ingress") + "expected a list, got an object",
        id="wrong-type-list",
    ),
    # --- workloads -----------------------------------------------------------------------
    pytest.param(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  namespace: dev\n"
        "spec:\n  selector:\n    matchLabels: {app: x}\n  template:\n"
        "    metadata:\n      labels: {app: y}\n",
        "m.yaml:7: Deployment dev/d: spec.selector: selector (app=x) does not match template "
        "labels (app=y)",
        id="workload-selector-mismatch",
    ),
    pytest.param(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: s\nspec:\n  replicas: -1\n"
        "  selector: {matchLabels: {app: x}}\n  template:\n    metadata:\n      labels: {app: x}\n",
        "m.yaml:6: StatefulSet default/s: spec.replicas: replicas must be 0 or more, got -1",
        id="workload-negative-replicas",
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


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    text = policy(
        """
        podSelector:
          matchLabels: {"-a": x}
        ingress:
        - from:
          - ipBlock: {cidr: 10.0.0.300/8}
          ports:
          - port: 0
          - protocol: icmp
        """
    )
    (tmp_path / "m.yaml").write_text(text)
    result = load_paths([tmp_path / "m.yaml"])
    paths = [p.path for p in result.problems]
    assert paths == [
        "spec.podSelector.matchLabels.-a",
        "spec.ingress[0].from[0].ipBlock.cidr",
        "spec.ingress[0].ports[0].port",
        "spec.ingress[0].ports[1].protocol",
    ]


def test_load_cluster_raises_with_every_problem(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        policy("podSelector: {}\ningress:\n- ports: [{port: 0}, {port: -1}]")
    )
    with pytest.raises(ManifestError) as info:
        load_cluster([tmp_path / "m.yaml"])
    assert len(info.value.problems) == 2
    assert "(and 1 more)" in str(info.value)


def test_missing_path_is_a_problem(tmp_path: Path) -> None:
    result = load_paths([tmp_path / "nope.yaml"])
    assert result.cluster is None
    assert "nope.yaml: no such file or directory" in str(result.problems[0])


@pytest.mark.parametrize(
    ("objects", "expected"),
    [
        pytest.param(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "a"},
                    "status": {"podIP": "10.0.0.1"},
                },
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "b"},
                    "status": {"podIP": "10.0.0.1"},
                },
            ],
            "<objects>: Pod default/b: status.podIP: IP 10.0.0.1 is already used by pod default/a",
            id="duplicate-pod-ip",
        ),
        pytest.param(
            [
                {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}},
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "a"},
                    "spec": {"nodeName": "n2"},
                },
            ],
            '<objects>: Pod default/a: spec.nodeName: node "n2" is not defined (nodes: n1)',
            id="unknown-node",
        ),
        pytest.param(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": "n1"},
                    "spec": {"podCIDR": "10.244.0.0/24"},
                },
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": "n2"},
                    "spec": {"podCIDR": "10.244.0.0/23"},
                },
            ],
            "Node n2: spec.podCIDR: podCIDR 10.244.0.0/23 overlaps the podCIDR of node n1",
            id="overlapping-pod-cidrs",
        ),
        pytest.param(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": "n1"},
                    "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.1"}]},
                },
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": "n2"},
                    "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.1"}]},
                },
            ],
            "Node n2: status.addresses: InternalIP 192.168.1.1 is already used by node n1",
            id="duplicate-node-ip",
        ),
        pytest.param(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": "n1"},
                    "spec": {"taints": [{"key": "a", "effect": "NoRun"}]},
                }
            ],
            'spec.taints[0].effect: unsupported taint effect "NoRun"',
            id="taint-effect",
        ),
        pytest.param(
            [
                {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0"}},
                {
                    "apiVersion": "apps/v1",
                    "kind": "StatefulSet",
                    "metadata": {"name": "web"},
                    "spec": {
                        "selector": {"matchLabels": {"a": "b"}},
                        "template": {"metadata": {"labels": {"a": "b"}}},
                    },
                },
            ],
            "StatefulSet default/web: metadata.name: would run pod default/web-0, which is already defined at <objects>",
            id="workload-pod-collides",
        ),
    ],
)
def test_cross_object_rules(objects: list[dict[str, object]], expected: str) -> None:
    with pytest.raises(ManifestError) as info:
        cluster_from_objects(objects)
    lines = [str(p) for p in info.value.problems]
    assert any(expected in line for line in lines), "\n".join(lines)


def test_ipblock_host_bits_mean_the_network_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API server accepts them (ParseCIDRSloppy) and Calico reads the network.
    (tmp_path / "m.yaml").write_text(
        policy(
            "podSelector: {}\ningress:\n- from:\n  - ipBlock:\n"
            "      cidr: 192.168.242.213/24\n      except: [192.168.242.129/25]"
        )
    )
    monkeypatch.chdir(tmp_path)
    result = load_paths(["m.yaml"])
    assert result.cluster is not None
    block = result.cluster.policies[0].ingress[0].peers[0].ip_block  # type: ignore[index]
    assert block is not None
    assert (str(block.cidr), [str(e) for e in block.excepts]) == (
        "192.168.242.0/24",
        ["192.168.242.128/25"],
    )
    assert [str(w) for w in result.warnings] == [
        P.format(line=11, path="spec.ingress[0].from[0].ipBlock.cidr")
        + '"192.168.242.213/24" has host bits set: it means "192.168.242.0/24"',
        P.format(line=12, path="spec.ingress[0].from[0].ipBlock.except[0]")
        + '"192.168.242.129/25" has host bits set: it means "192.168.242.128/25"',
    ]
