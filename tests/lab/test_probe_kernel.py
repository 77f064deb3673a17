"""Probe classification against real kernel answers, in a small lab without agents.

The destination's node namespace gets one iptables rule per case (inside the
lab's namespaces only) that drops or rejects the probe in its FORWARD path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sekisho.lab import probe as pr
from sekisho.lab.core import Lab

from .conftest import lab_namespaces, node_object, unique_name

pytestmark = pytest.mark.privileged


def _objects() -> list[dict[str, object]]:

    def pod(name: str, ip: str, node_name: str) -> dict[str, object]:
        ports = [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 80, "protocol": "UDP"}]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "t"},
            "spec": {"nodeName": node_name, "containers": [{"name": "c", "ports": ports}]},
            "status": {"podIP": ip},
        }

    return [
        node_object("n1", "192.168.110.11", "10.244.1.0/24"),
        node_object("n2", "192.168.110.12", "10.244.2.0/24"),
        pod("src", "10.244.1.5", "n1"),
        pod("dst", "10.244.2.5", "n2"),
    ]


@pytest.fixture(scope="module")
def small_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    name = unique_name()
    lab = Lab.up(_objects(), name=name, root=Path(tmp_path_factory.mktemp("labs")), enforce="none")
    try:
        yield lab
    finally:
        lab.down()
        assert not lab_namespaces(name)


@pytest.mark.parametrize(
    ("rule", "port", "protocol", "want"),
    [
        pytest.param(None, 80, "TCP", "allowed", id="tcp-served"),
        pytest.param(None, 81, "TCP", "no-listener", id="tcp-not-served-rst"),
        pytest.param(None, 80, "UDP", "allowed", id="udp-served"),
        pytest.param(None, 81, "UDP", "no-listener", id="udp-not-served-port-unreachable"),
        pytest.param(None, None, "ICMP", "allowed", id="icmp"),
        pytest.param(None, 80, "SCTP", "unsupported", id="sctp"),
        pytest.param("-p tcp -j DROP", 80, "TCP", "dropped", id="tcp-dropped"),
        pytest.param("-p udp -j DROP", 80, "UDP", "dropped", id="udp-dropped"),
        pytest.param("-p icmp -j DROP", None, "ICMP", "dropped", id="icmp-dropped"),
        pytest.param(
            "-p tcp -j REJECT --reject-with icmp-admin-prohibited", 80, "TCP", "rejected",
            id="tcp-admin-prohibited",
        ),
        pytest.param("-p tcp -j REJECT --reject-with tcp-reset", 80, "TCP", "rejected", id="tcp-rst-on-served-port"),
        pytest.param(
            "-p udp -j REJECT --reject-with icmp-port-unreachable", 80, "UDP", "rejected",
            id="udp-port-unreachable-on-served-port",
        ),
        pytest.param(
            "-p icmp -j REJECT --reject-with icmp-host-prohibited", None, "ICMP", "rejected",
            id="icmp-host-prohibited",
        ),
    ],
)  # fmt: skip
def test_classification(
    small_lab: Lab, rule: str | None, port: int | None, protocol: str, want: str
) -> None:
    src, dst = small_lab.plan.pod("t/src"), small_lab.plan.pod("t/dst")
    assert src is not None and dst is not None
    probe = pr.Probe(
        src.netns,
        str(dst.ip),
        port or 0,
        protocol,
        served=dst.serves(port or 0, protocol),
        pod="t/dst",
    )
    if rule:
        res = small_lab.run(dst.node, ["iptables", "-I", "FORWARD", *rule.split()])
        assert res.returncode == 0, res.stderr
    try:
        [out] = pr.run([probe], timeout=0.5)
    finally:
        if rule:
            small_lab.run(dst.node, ["iptables", "-D", "FORWARD", *rule.split()])
    assert out.outcome == want, out.detail
    if want == "allowed" and protocol in ("TCP", "UDP"):
        assert out.answer is not None
        assert out.answer["pod"] == "t/dst"
        assert str(out.answer["client"]).startswith(f"{src.ip}:")
