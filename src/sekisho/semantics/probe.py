"""What is probed: one value type, parsed once, and one rule for the default probes.

A :class:`Service` is a protocol and a destination port (a number, or a port
name resolved on each destination pod, as a NetworkPolicy rule resolves it),
or ICMP (an echo request). ``matrix``, ``trace`` and the lab all take their
probes from :func:`services_from_flags` and :func:`default_services`, so they
agree on what ``--probe``, ``--port`` and ``--protocol`` mean and on what is
probed when nothing is asked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from sekisho.errors import UsageError
from sekisho.model.types import Cluster, FlowProtocol, Pod, cluster_families, in_family
from sekisho.records import Record, set_field

PORT_PROTOCOLS: tuple[FlowProtocol, ...] = ("TCP", "UDP", "SCTP")
RANGE_MAX = 64
"""A probed range ``a-b`` becomes one probe per port; at most this many."""

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")


class Service(Record):
    """A probe: ``TCP/80``, ``UDP/dns`` (a port name) or ``ICMP``."""

    __slots__ = ("name", "port", "protocol")

    protocol: FlowProtocol
    port: int | None
    """The destination port; None for ICMP and for a named port."""
    name: str | None
    """A container port name, resolved on each destination pod (see :meth:`port_on`)."""

    def __init__(
        self, protocol: FlowProtocol, port: int | None = None, name: str | None = None
    ) -> None:
        set_field(self, "protocol", protocol)
        set_field(self, "port", port)
        set_field(self, "name", name)
        self._check()

    def _check(self) -> None:
        if self.protocol == "ICMP":
            if self.port is not None or self.name is not None:
                raise UsageError(f"ICMP has no port (got {self.port or self.name})")
        elif (self.port is None) == (self.name is None):
            raise UsageError(f"{self.protocol} needs a port number or a port name")
        elif self.port is not None and not 1 <= self.port <= 65535:
            raise UsageError(f"port {self.port}: expected 1-65535")

    def __str__(self) -> str:
        if self.protocol == "ICMP":
            return "ICMP"
        return f"{self.protocol}/{self.port if self.port is not None else self.name}"

    @property
    def kind(self) -> Literal["number", "name", "icmp"]:
        if self.protocol == "ICMP":
            return "icmp"
        return "number" if self.port is not None else "name"

    def port_on(self, pod: Pod | None) -> int | None:
        """The port this probe reaches on ``pod``: the number, or the number the pod declares
        for the name (None when it declares none: nothing to probe there)."""
        if self.name is None:
            return self.port
        if pod is None:
            return None
        return pod.named_port(self.name, self.protocol)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"port": self.port, "protocol": self.protocol}
        if self.name is not None:
            out["name"] = self.name
        return out


def parse_service(text: str) -> list[Service]:
    """``80/TCP``, ``53/udp``, ``80`` (TCP), ``metrics/TCP`` (a port name), ``8000-8002/TCP``
    (one probe per port) or ``ICMP``; also written ``TCP/80``."""
    value = text.strip()
    if value.upper() == "ICMP":
        return [Service("ICMP")]
    left, _, right = value.partition("/")
    if left.upper() in PORT_PROTOCOLS and right:
        left, right = right, left
    proto = (right or "TCP").upper()
    if proto == "ICMP":
        raise UsageError(f"--probe {text}: ICMP has no port")
    if proto not in PORT_PROTOCOLS:
        raise UsageError(
            f"--probe {text}: expected PORT/PROTOCOL (80/TCP, 53/UDP, 9000/SCTP), "
            "NAME/PROTOCOL (metrics/TCP), FIRST-LAST/PROTOCOL or ICMP"
        )
    p: FlowProtocol = "TCP" if proto == "TCP" else "UDP" if proto == "UDP" else "SCTP"
    if left.isdigit():
        return [_number(text, int(left), p)]
    first, dash, last = left.partition("-")
    if dash and first.isdigit() and last.isdigit():
        a, b = int(first), int(last)
        if a > b or b - a + 1 > RANGE_MAX:
            raise UsageError(f"--probe {text}: a range FIRST-LAST of at most {RANGE_MAX} ports")
        return [_number(text, n, p) for n in range(a, b + 1)]
    if _NAME.match(left) and any(c.isalpha() for c in left):
        return [Service(p, name=left)]
    raise UsageError(f"--probe {text}: {left!r} is neither a port number nor a port name")


def _number(text: str, port: int, proto: FlowProtocol) -> Service:
    if not 1 <= port <= 65535:
        raise UsageError(f"--probe {text}: port must be 1-65535")
    return Service(proto, port)


def services_from_flags(
    probes: Sequence[str], port: int | None, protocol: str | None
) -> list[Service] | None:
    """The probes the flags ask for (``--probe`` repeated, or ``--port``/``--protocol``);
    None: the default probes (:func:`default_services`)."""
    if probes and (port is not None or protocol is not None):
        raise UsageError("use either --probe or --port/--protocol, not both")
    if probes:
        out: list[Service] = []
        for text in probes:
            out.extend(s for s in parse_service(text) if s not in out)
        return out
    if protocol is not None and protocol.upper() == "ICMP":
        if port is not None:
            raise UsageError("--port makes no sense with --protocol ICMP")
        return [Service("ICMP")]
    if port is not None:
        return parse_service(f"{port}/{protocol or 'TCP'}")
    if protocol is not None:
        raise UsageError(f"--protocol {protocol.upper()} needs --port (only ICMP has no port)")
    return None


def default_services(cluster: Cluster) -> list[Service]:
    """Every declared container port (by protocol, then number), then ICMP."""
    seen = {(p.protocol, p.port) for pod in cluster.pods for p in pod.ports}
    out = [Service(proto, port) for proto, port in sorted(seen)]
    out.append(Service("ICMP"))
    return out


FAMILIES = (4, 6)
"""IP families a probe can use: a probe over IPv6 is its own probe (its own addresses,
ICMPv6 for ICMP, the rules of that family)."""


def family_view(cluster: Cluster, family: int | None) -> Cluster:
    """The cluster as probes over ``family`` see it (:func:`sekisho.model.types.in_family`);
    None: each pod's first address, as the cluster gives it. A family no pod has an
    address of is refused, not probed empty."""
    if family is None:
        return cluster
    if family not in FAMILIES:
        raise UsageError(f"--family {family}: expected 4 or 6")
    if family not in cluster_families(cluster):
        have = ", ".join(f"IPv{f}" for f in cluster_families(cluster)) or "none"
        raise UsageError(
            f"--family {family}: no pod has an IPv{family} address (pods have: {have})"
        )
    return in_family(cluster, family)


def probe_families(cluster: Cluster, family: int | None) -> tuple[int | None, ...]:
    """The families to probe: the one asked for; else, for a dual-stack cluster, each
    family (a probe per family); else None (the cluster's only family, as given)."""
    if family is not None:
        return (family,)
    families = cluster_families(cluster)
    return families if len(families) > 1 else (None,)
