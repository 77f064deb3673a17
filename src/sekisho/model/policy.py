"""NetworkPolicy manifests to :class:`~sekisho.model.types.NetworkPolicy`: rules, peers, ports, selectors.

The API reference's words are quoted above the code that implements them. Every
problem is reported with its field path; a policy with any problem is dropped,
and the loader then returns no cluster at all (bad input never fails open).
"""

from __future__ import annotations

from typing import Any, cast

from sekisho.model import fields as F
from sekisho.model import names
from sekisho.model.checks import (
    IPNetwork,
    Report,
    cidr,
    integer,
    labels,
    mapping,
    sequence,
    string,
)
from sekisho.model.reader import FieldPath, describe
from sekisho.model.types import (
    PROTOCOLS,
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    Operator,
    Peer,
    PolicyPort,
    Protocol,
    Requirement,
    Rule,
    Source,
)

OPERATORS: tuple[Operator, ...] = ("In", "NotIn", "Exists", "DoesNotExist")


def network_policy(
    r: Report, spec: Any, namespace: str, name: str, source: Source
) -> NetworkPolicy | None:
    path: FieldPath = ("spec",)
    # A missing spec is an empty one, as the API server reads it: {} selects every pod of
    # the namespace for ingress, with no rule (deny all ingress). That fails closed.
    raw = mapping(r, spec, path, F.NETWORK_POLICY_SPEC)
    if raw is None:
        if spec is not None:
            return None
        raw = {}
    # podSelector is a value (not a pointer) in the Go type: missing means {} (every pod).
    pod_selector = selector(r, raw.get("podSelector"), (*path, "podSelector")) or LabelSelector()
    ingress = _rules(r, raw.get("ingress"), (*path, "ingress"), "from", F.INGRESS_RULE)
    egress = _rules(r, raw.get("egress"), (*path, "egress"), "to", F.EGRESS_RULE)
    # "If this field is not specified, it will default based on the existence of ingress or
    # egress rules; policies that contain an egress section are assumed to affect egress,
    # and all policies (whether or not they contain an ingress section) are assumed to
    # affect ingress."
    types = sequence(r, raw.get("policyTypes"), (*path, "policyTypes"))
    if types:
        affects_ingress = affects_egress = False
        for i, value in enumerate(types):
            if value == "Ingress":
                affects_ingress = True
            elif value == "Egress":
                affects_egress = True
            else:
                r.error(
                    (*path, "policyTypes", i),
                    f'unsupported value "{value}": expected "Ingress" or "Egress"',
                )
    else:
        affects_ingress, affects_egress = True, bool(egress)
    return NetworkPolicy(
        namespace=namespace,
        name=name,
        pod_selector=pod_selector,
        ingress=tuple(ingress),
        egress=tuple(egress),
        affects_ingress=affects_ingress,
        affects_egress=affects_egress,
        source=source,
    )


def _rules(
    r: Report, value: Any, path: FieldPath, peers_field: str, known: frozenset[str]
) -> list[Rule]:
    items = sequence(r, value, path)
    out: list[Rule] = []
    for i, item in enumerate(items or ()):
        rule_path = (*path, i)
        raw = mapping(r, item, rule_path, known)
        if raw is None:
            if item is None:
                out.append(Rule())  # "- {}" written as a bare "-": every peer, every port
            continue
        peers_raw = sequence(r, raw.get(peers_field), (*rule_path, peers_field))
        peers: list[Peer] = []
        for j, peer in enumerate(peers_raw or ()):
            parsed = _peer(r, peer, (*rule_path, peers_field, j))
            if parsed is not None:
                peers.append(parsed)
        ports_raw = sequence(r, raw.get("ports"), (*rule_path, "ports"))
        ports: list[PolicyPort] = []
        for j, port in enumerate(ports_raw or ()):
            parsed_port = _policy_port(r, port, (*rule_path, "ports", j))
            if parsed_port is not None:
                ports.append(parsed_port)
        # "If this field is empty or missing, this rule matches all sources/destinations
        # (traffic not restricted by source/destination)" and likewise for ports.
        out.append(
            Rule(
                peers=tuple(peers) if peers_raw else None,
                ports=tuple(ports) if ports_raw else None,
            )
        )
    return out


def _peer(r: Report, value: Any, path: FieldPath) -> Peer | None:
    raw = mapping(r, value, path, F.PEER)
    if raw is None:
        if value is None:
            r.error(path, "a peer must set podSelector, namespaceSelector or ipBlock")
        return None
    pod_sel = selector(r, raw.get("podSelector"), (*path, "podSelector"))
    ns_sel = selector(r, raw.get("namespaceSelector"), (*path, "namespaceSelector"))
    block = _ip_block(r, raw.get("ipBlock"), (*path, "ipBlock"))
    # A field given as null ("podSelector:" with nothing after it) is a nil pointer to the
    # API server: absent, not {}. Reading it as {} would widen the peer (fail open).
    has_selector = raw.get("podSelector") is not None or raw.get("namespaceSelector") is not None
    has_block = raw.get("ipBlock") is not None
    if has_block and has_selector:
        r.error(
            path,
            "a peer sets either ipBlock or selectors (podSelector, namespaceSelector), not both",
        )
        return None
    if not has_selector and not has_block:
        given = [k for k in ("podSelector", "namespaceSelector", "ipBlock") if k in raw]
        hint = (
            f" ({', '.join(given)} given as null: write {{}} to select everything)" if given else ""
        )
        r.error(path, f"a peer must set podSelector, namespaceSelector or ipBlock{hint}")
        return None
    if has_block:
        return Peer(ip_block=block) if block is not None else None
    if pod_sel is None and ns_sel is None:
        return None
    return Peer(pod_selector=pod_sel, namespace_selector=ns_sel)


def _ip_block(r: Report, value: Any, path: FieldPath) -> IPBlock | None:
    raw = mapping(r, value, path, F.IP_BLOCK)
    if raw is None:
        return None
    if raw.get("cidr") is None:
        r.error((*path, "cidr"), "cidr is required")
        return None
    # "cidr is a string representing the IPBlock. Valid examples are "192.168.1.0/24" or
    # "2001:db8::/64"". The API server parses it (and except) sloppily, host bits and
    # all (IsValidCIDRForLegacyField, ParseCIDRSloppy: the network), and so does
    # Calico's converter (cnet.ParseCIDR): "192.168.242.213/24" is 192.168.242.0/24.
    # Accepted as they do, with a warning.
    net = cidr(r, raw.get("cidr"), (*path, "cidr"), host_bits=True)
    excepts: list[IPNetwork] = []
    ok = net is not None
    for i, item in enumerate(sequence(r, raw.get("except"), (*path, "except")) or ()):
        ex_path = (*path, "except", i)
        ex = cidr(r, item, ex_path, host_bits=True)
        if ex is None:
            ok = False
            continue
        if net is None:
            continue
        if ex.version != net.version:
            r.error(ex_path, f"{ex} is IPv{ex.version} but cidr {net} is IPv{net.version}")
            ok = False
        elif not ex.subnet_of(net):  # type: ignore[arg-type]  # same family checked above
            r.error(ex_path, f"{ex} is not inside {net}")
            ok = False
        elif ex == net:
            r.error(ex_path, f"{ex} must be strictly inside {net}, not equal to it")
            ok = False
        else:
            excepts.append(ex)
    if not ok or net is None:
        return None
    return IPBlock(net, tuple(excepts))


def parse_protocol(r: Report, value: Any, path: FieldPath) -> Protocol | None:
    if value is None:
        return "TCP"  # "If not specified, this field defaults to TCP."
    text = string(r, value, path)
    if text is None:
        return None
    if text not in PROTOCOLS:
        hint = f' (protocols are upper case: "{text.upper()}")' if text.upper() in PROTOCOLS else ""
        r.error(path, f'unsupported protocol "{text}": expected TCP, UDP or SCTP{hint}')
        return None
    return text


def _policy_port(r: Report, value: Any, path: FieldPath) -> PolicyPort | None:
    raw = mapping(r, value, path, F.POLICY_PORT)
    if raw is None:
        if value is None:
            return PolicyPort()
        return None
    protocol = parse_protocol(r, raw.get("protocol"), (*path, "protocol"))
    port_value = raw.get("port")
    port: int | str | None = None
    ok = protocol is not None
    if isinstance(port_value, bool) or not isinstance(port_value, int | str | None):
        r.error(
            (*path, "port"), f"expected a port number or name, got a {type(port_value).__name__}"
        )
        ok = False
    elif isinstance(port_value, int):
        err = names.port_number_error(port_value)
        if err:
            r.error((*path, "port"), err)
            ok = False
        port = port_value
    elif isinstance(port_value, str):
        err = names.port_name_error(port_value)
        if err:
            r.error((*path, "port"), err)
            ok = False
        port = port_value
    end_port = integer(r, raw.get("endPort"), (*path, "endPort"))
    if raw.get("endPort") is not None and end_port is None:
        ok = False
    if end_port is not None:
        if not isinstance(port_value, int) or isinstance(port_value, bool):
            r.error((*path, "endPort"), "endPort may only be set with a numeric port")
            ok = False
        elif end_port < port_value:
            r.error((*path, "endPort"), f"endPort {end_port} is less than port {port_value}")
            ok = False
        elif not 1 <= end_port <= 65535:
            r.error((*path, "endPort"), f"endPort {end_port} is not between 1 and 65535")
            ok = False
    if not ok or protocol is None:
        return None
    return PolicyPort(protocol, port, end_port)


def selector(r: Report, value: Any, path: FieldPath) -> LabelSelector | None:
    """A ``LabelSelector``: ``matchLabels`` AND ``matchExpressions``; None when missing or wrong."""
    raw = mapping(r, value, path, F.LABEL_SELECTOR)
    if raw is None:
        return None
    match_labels = labels(r, raw.get("matchLabels"), (*path, "matchLabels"))
    reqs: list[Requirement] = []
    ok = True
    exprs = sequence(r, raw.get("matchExpressions"), (*path, "matchExpressions"))
    for i, item in enumerate(exprs or ()):
        req = _requirement(r, item, (*path, "matchExpressions", i))
        if req is None:
            ok = False
        else:
            reqs.append(req)
    if not ok:
        return None
    return LabelSelector(tuple(sorted(match_labels.items())), tuple(reqs))


def _requirement(r: Report, value: Any, path: FieldPath) -> Requirement | None:
    raw = mapping(r, value, path, F.SELECTOR_REQUIREMENT)
    if raw is None:
        if value is None:
            r.error(path, "expected a requirement {key, operator, values}")
        return None
    ok = True
    key = string(r, raw.get("key"), (*path, "key"))
    if key is None:
        if raw.get("key") is None:
            r.error((*path, "key"), "key is required")
        ok = False
    else:
        err = names.label_key_error(key)
        if err:
            r.error((*path, "key"), err)
            ok = False
    op = string(r, raw.get("operator"), (*path, "operator"))
    if op is None:
        if raw.get("operator") is None:
            r.error((*path, "operator"), "operator is required: In, NotIn, Exists or DoesNotExist")
        return None
    values_raw = sequence(r, raw.get("values"), (*path, "values"))
    values: list[str] = []
    for i, v in enumerate(values_raw or ()):
        if not isinstance(v, str):
            r.error(
                (*path, "values", i), f"label values must be strings, got {describe(v)} (quote it)"
            )
            ok = False
            continue
        err = names.label_value_error(v)
        if err:
            r.error((*path, "values", i), err)
            ok = False
        values.append(v)
    if op in ("In", "NotIn"):
        if not values_raw:
            r.error((*path, "values"), f"values must be non-empty when operator is {op}")
            ok = False
    elif op in ("Exists", "DoesNotExist"):
        if values_raw:
            r.error((*path, "values"), f"values must be empty when operator is {op}")
            ok = False
    else:
        r.error(
            (*path, "operator"),
            f'unknown operator "{op}": expected one of {", ".join(OPERATORS)}',
        )
        return None
    if not ok or key is None:
        return None
    return Requirement(key, cast(Operator, op), tuple(sorted(set(values))))
