"""Calico's own policies (``projectcalico.org/v3``) compiled into the policy program.

As libcalico-go's update processors hand them to Felix
(``lib/backend/syncersv1/updateprocessors``) and as Felix orders them:

* a Tier is a program tier with its ``order`` (none: last) and its
  ``defaultAction`` (Deny, or Pass: "the next tier"); the ``default`` tier
  (order 1,000,000) holds Kubernetes NetworkPolicies and every Calico policy
  that names no tier;
* a NetworkPolicy is the program policy ``ns/<tier>.<name>`` (Felix's v1 name)
  whose selector is "(selector) && projectcalico.org/namespace == 'ns'", plus
  the ``serviceAccountSelector`` over ``pcsa.`` labels; a GlobalNetworkPolicy is
  ``<tier>.<name>`` with its ``namespaceSelector`` over ``pcns.`` labels
  ("all()" becomes "has(projectcalico.org/namespace)") and its service account
  selector; both are ordered by ``order`` ("If the order is omitted, it is
  applied last"), then by name;
* each v3 rule is one program rule with its action (Allow, Deny, Pass, Log)
  and every match field: ``protocol``/``notProtocol``, ``icmp``/``notICMP``,
  ``ipVersion``, and per side ``nets``/``notNets``, ``selector`` (scoped as
  ``GetEntityRuleSelector`` scopes it, quoted below), ``notSelector`` (not
  scoped), ``namespaceSelector``, ``serviceAccounts``, ``ports``/``notPorts``
  (ranges and named ports);
* staged policies become program policies kept beside the tiers
  (:attr:`Program.staged`): ``staged:`` names that preview setting or deleting
  the enforced policy of the same name; they are never enforced;
* NetworkSets (namespaced) and GlobalNetworkSets are labelled nets that rule
  selectors select (their entities come from :mod:`sekisho.semantics.universe`);
* HostEndpoints are entities of kind ``host`` with their expected IPs and
  named ports; a policy that selects one polices the node's own traffic
  (:mod:`sekisho.semantics.verdict`).
"""

from __future__ import annotations

from sekisho.model.calico import (
    CalicoPolicy,
    CalicoPort,
    CalicoResources,
    CalicoRule,
    EntityRule,
    Icmp,
)
from sekisho.selectors.expr import Compare, Expr, conj
from sekisho.semantics import kubernetes
from sekisho.semantics.labels import (
    NAMESPACE,
    entity_selector,
    namespace_selector,
    service_account_selector,
    service_accounts,
)
from sekisho.semantics.program import (
    CALICO_UNIVERSE,
    DEFAULT_TIER,
    DEFAULT_TIER_ORDER,
    Action,
    Direction,
    EntityMatch,
    IcmpMatch,
    NamedPortSet,
    PortMatch,
    SelectorSet,
    Tier,
    net_set,
)
from sekisho.semantics.program import Policy as ProgramPolicy
from sekisho.semantics.program import Rule as ProgramRule

_ACTIONS: dict[str, Action] = {"Allow": "allow", "Deny": "deny", "Pass": "pass", "Log": "log"}
STAGED = "staged:"
"""Felix's prefix of a staged policy's name (``model.PolicyNamePrefixStaged``)."""


def tiers(resources: CalicoResources) -> list[Tier]:
    """The Tier objects as program tiers (the default tier's own defaults when not given)."""
    out: list[Tier] = []
    for t in resources.tiers:
        order = t.order if t.name != DEFAULT_TIER else DEFAULT_TIER_ORDER
        out.append(Tier(t.name, order, "deny" if t.default_action == "Deny" else "pass"))
    return out


def policy_key(policy: CalicoPolicy, *, staged: bool = False) -> str:
    """Felix's name: ``ns/<tier>.<name>`` or ``<tier>.<name>`` (``staged:`` before the name)."""
    name = (STAGED if staged else "") + policy.tiered_name
    return f"{policy.namespace}/{name}" if policy.namespace else name


_compiled: dict[int, tuple[CalicoPolicy, ProgramPolicy]] = {}
"""id(Calico policy) -> (that policy, its program policy), for the last call's policies: a
snapshot that shares policy objects with the last one (the agent's patched loads)
compiles only the policies that changed. Holding the object keeps its id."""


def compile_resources(
    resources: CalicoResources,
) -> tuple[list[ProgramPolicy], list[ProgramPolicy], list[str]]:
    """(enforced policies, staged policies, notes) of a cluster's Calico objects."""
    global _compiled
    enforced: list[ProgramPolicy] = []
    staged: list[ProgramPolicy] = []
    notes: list[str] = []
    known, memo = _compiled, {}
    for p in resources.policies:
        hit = known.get(id(p))
        if hit is None or hit[0] is not p:
            hit = (p, compile_policy(p))
        memo[id(p)] = hit
        (enforced if p.staged_action is None else staged).append(hit[1])
    _compiled = memo
    for s in resources.staged_kubernetes:
        base = kubernetes.compile_policy(s.policy)
        ns, name = s.policy.namespace, s.policy.name
        staged.append(
            ProgramPolicy(
                key=f"{ns}/{STAGED}knp.default.{name}",
                label=f"StagedKubernetesNetworkPolicy {ns}/{name}",
                kind="StagedKubernetesNetworkPolicy",
                tier=DEFAULT_TIER,
                order=base.order,
                selector=base.selector,
                types=base.types,
                ingress=base.ingress,
                egress=base.egress,
                namespace=ns,
                staged="set" if s.action == "Set" else "delete",
                stages=base.key,
                source=s.policy.source,
            )
        )
    return enforced, staged, notes


def compile_policy(policy: CalicoPolicy) -> ProgramPolicy:
    """One Calico policy (enforced or staged) as a program policy."""
    is_staged = policy.staged_action is not None
    types: set[Direction] = set()
    if "Ingress" in policy.types:
        types.add("ingress")
    if "Egress" in policy.types:
        types.add("egress")
    ns = policy.namespace
    return ProgramPolicy(
        key=policy_key(policy, staged=is_staged),
        label=f"{policy.kind} {policy.display}",
        kind=policy.kind,
        tier=policy.tier,
        order=policy.order,
        selector=SelectorSet(_subject(policy), CALICO_UNIVERSE, _describe_subject(policy)),
        types=frozenset(types),
        ingress=tuple(_rule(r, i, "ingress", ns) for i, r in enumerate(policy.ingress)),
        egress=tuple(_rule(r, i, "egress", ns) for i, r in enumerate(policy.egress)),
        namespace=ns,
        staged=None
        if policy.staged_action is None
        else ("set" if policy.staged_action == "Set" else "delete"),
        stages=policy_key(policy) if is_staged else None,
        forward=policy.apply_on_forward,
        # Felix's stages (program.py): doNotTrack in the raw table, preDNAT in mangle.
        stage="untracked" if policy.do_not_track else "prednat" if policy.pre_dnat else "normal",
        source=policy.source,
    )


def _subject(policy: CalicoPolicy) -> Expr:
    parts: list[Expr] = [policy.selector.expr]
    if policy.namespace is not None:
        # networkpolicyprocessor: the selector "&& projectcalico.org/namespace == 'ns'".
        parts.append(Compare(NAMESPACE, "==", (policy.namespace,)))
    elif policy.namespace_selector is not None:
        parts.append(namespace_selector(policy.namespace_selector.expr))
    if policy.service_account_selector is not None:
        parts.append(service_account_selector(policy.service_account_selector.expr))
    return conj(*parts)


def _describe_subject(policy: CalicoPolicy) -> str:
    what = f"endpoints matching {policy.selector}"
    if policy.namespace is not None:
        what += f" in namespace {policy.namespace}"
    elif policy.namespace_selector is not None:
        what += f" in namespaces matching {policy.namespace_selector}"
    if policy.service_account_selector is not None:
        what += f" with service accounts matching {policy.service_account_selector}"
    return what


def _side_text(er: EntityRule, namespace: str | None) -> str:
    parts: list[str] = []
    if er.selector is not None:
        parts.append(f"selector {er.selector}")
    if er.namespace_selector is not None:
        parts.append(f"namespaceSelector {er.namespace_selector}")
    elif namespace is not None and (er.selector is not None or er.not_selector is not None):
        parts.append(f"in namespace {namespace}")
    if er.service_accounts is not None:
        sam = er.service_accounts
        if sam.names:
            parts.append(f"service accounts {', '.join(sam.names)}")
        if sam.selector is not None:
            parts.append(f"service accounts matching {sam.selector}")
    return " ".join(parts) or "every endpoint"


def _ports(
    ports: tuple[CalicoPort, ...], protocol: int | None, scope: SelectorSet | None
) -> PortMatch | None:
    if not ports:
        return None
    ranges = sorted({(p.start, p.end) for p in ports if p.name is None})
    # A named port is the set of (address, port) of the endpoints the side's selector
    # selects (every endpoint when it has none) that declare it for the rule's protocol.
    named = tuple(NamedPortSet(p.name, protocol or 6, scope) for p in ports if p.name is not None)
    return PortMatch(tuple(ranges), named)


def _side(er: EntityRule, namespace: str | None, protocol: int | None) -> EntityMatch:
    sam = er.service_accounts
    expr = entity_selector(
        namespace,
        None if er.selector is None else er.selector.expr,
        None if er.namespace_selector is None else er.namespace_selector.expr,
        has_not_selector=er.not_selector is not None,
        accounts=None
        if sam is None
        else service_accounts(sam.names, None if sam.selector is None else sam.selector.expr),
    )
    selector = (
        None if expr is None else SelectorSet(expr, CALICO_UNIVERSE, _side_text(er, namespace))
    )
    not_selector = (
        None
        if er.not_selector is None
        # NotSrcSelector/NotDstSelector: the rule's notSelector as written (not scoped).
        else SelectorSet(er.not_selector.expr, CALICO_UNIVERSE, f"notSelector {er.not_selector}")
    )
    return EntityMatch(
        nets=net_set(list(er.nets)) if er.nets else None,
        not_nets=net_set(list(er.not_nets)) if er.not_nets else None,
        selector=selector,
        not_selector=not_selector,
        ports=_ports(er.ports, protocol, selector),
        not_ports=_ports(er.not_ports, protocol, selector),
    )


def _icmp(m: Icmp | None) -> IcmpMatch | None:
    return None if m is None else IcmpMatch(m.type, m.code)


def _rule(rule: CalicoRule, index: int, direction: Direction, namespace: str | None) -> ProgramRule:
    return ProgramRule(
        action=_ACTIONS[rule.action],
        origin=f"{direction} rule {index} ({rule.action})",
        protocol=rule.protocol,
        not_protocol=rule.not_protocol,
        icmp=_icmp(rule.icmp),
        not_icmp=_icmp(rule.not_icmp),
        ip_version=rule.ip_version,
        src=_side(rule.source, namespace, rule.protocol),
        dst=_side(rule.destination, namespace, rule.protocol),
    )
