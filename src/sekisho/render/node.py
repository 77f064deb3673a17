"""One node's dataplane state from the policy program, kept incrementally: :class:`NodeRenderer`.

The renderer reads the compiled program (:func:`sekisho.semantics.compile_program`)
and the entities its sets hold (pods, nodes, network sets). A policy's chain
depends only on the policy, an endpoint's chains only on which policies of
which tiers apply to it, and a set's members only on the entities. So when one
pod changes, only the sets that could hold it and (if it is local) its own
endpoint chains are recomputed, and only their text is rendered again; when a
policy changes, its chain and the endpoints' tier lists.

A node renders only the policies that apply to at least one of its local
pods or to its host endpoint, and only the sets those policies use (as Felix's
calculation graph does).

A node with a host endpoint (the one the walk picks:
:func:`~sekisho.semantics.universe.node_host_endpoint`) also gets that endpoint's
four chains, as Felix's ``cali-fh-``/``cali-th-`` (the node's own traffic: what
it receives, what it sends; Felix's failsafe ports first; with no policy, or
every tier passed, only the ``projectcalico-default-allow`` profile allows) and
``cali-fhfw-``/``cali-thfw-`` (traffic forwarded through it: the
``applyOnForward`` policies; with none deciding, allowed), and, when its
``doNotTrack`` or ``preDNAT`` policies apply to it, the early chains of the raw and
mangle tables (:data:`STAGE_CHAINS`, :meth:`HostEndpointRef.stage_steps`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Literal, Protocol, TypeVar, cast

import numpy as np
import numpy.typing as npt

from sekisho.model.calico import (
    DEFAULT_ALLOW_PROFILE,
    FAILSAFE_INBOUND,
    FAILSAFE_OUTBOUND,
    CalicoResources,
    HostEndpoint,
)
from sekisho.model.reader import paused_gc
from sekisho.model.types import Cluster, Pod, endpoint_interface
from sekisho.render import names
from sekisho.render.compile import (
    DIRECTIONS,
    Direction,
    Member,
    PolicyRule,
    SetDef,
    compile_rules,
    networks,
)
from sekisho.selectors.expr import select
from sekisho.selectors.labels import LabelTable
from sekisho.semantics.compiler import compile_program, program_inputs
from sekisho.semantics.labels import namespace_part
from sekisho.semantics.program import (
    EndAction,
    NamedPortSet,
    Policy,
    Program,
    SelectorSet,
    Stage,
    protocol_name,
)
from sekisho.semantics.universe import Entity, Universe, node_host_endpoint, pod_entity
from sekisho.semantics.verdict import STAGE_NAMES, applies


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


_K = TypeVar("_K", bound=_Keyed)
IntArray = npt.NDArray[np.int64]
_T = TypeVar("_T")


# ---------------------------------------------------------------------- endpoints


EndpointAction = Literal[
    "replies",
    "invalid",
    "clear",
    "tier",
    "policy",
    "allowed",
    "end-of-tier",
    "profile",
    "open",
    "failsafe-in",
    "failsafe-out",
    "failsafe-in-reply",
    "failsafe-out-reply",
    "no-profile",
    "notrack",
]
EndpointStep = tuple[EndpointAction, str, str | None]
"""(action, comment, policy key for ``policy``). ``failsafe-in``/``failsafe-out``:
accept Felix's failsafe ports (:data:`FAILSAFE`, destination ports); the ``-reply``
ones accept the other direction's failsafe ports as source ports (the raw table, before
conntrack: replies of a failsafe connection); ``no-profile``: drop (a host endpoint
without an allowing profile); ``notrack``: a packet whose accept mark is set is not
tracked (the untracked stage's allow)."""

FAILSAFE: dict[str, tuple[tuple[str, int], ...]] = {
    "failsafe-in": FAILSAFE_INBOUND,
    "failsafe-out": FAILSAFE_OUTBOUND,
    "failsafe-in-reply": FAILSAFE_OUTBOUND,
    "failsafe-out-reply": FAILSAFE_INBOUND,
}
"""(protocol, port) each failsafe step accepts (Felix's defaults, from the model)."""

FAILSAFE_REPLY = frozenset(("failsafe-in-reply", "failsafe-out-reply"))
"""The failsafe steps that match source ports (the rest match destination ports)."""


def failsafe_groups(action: str) -> list[tuple[str, tuple[int, ...]]]:
    """(lower-case protocol, sorted ports) of a failsafe step, one entry per protocol."""
    by: dict[str, set[int]] = {}
    for proto, port in FAILSAFE[action]:
        by.setdefault(proto.lower(), set()).add(port)
    return [(proto, tuple(sorted(ports))) for proto, ports in sorted(by.items())]


@dataclass(frozen=True, slots=True)
class TierRef:
    """One tier as an endpoint meets it: the policies of it that apply, in order."""

    name: str
    end: EndAction
    policies: tuple[tuple[str, str], ...]
    """(key, label) of each applying policy, in the tier's order."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A local pod's two chains: the tiers that apply to it in each direction, in order."""

    pod: str
    iface: str
    ingress: tuple[TierRef, ...]
    egress: tuple[TierRef, ...]

    def tiers(self, direction: Direction) -> tuple[TierRef, ...]:
        return self.ingress if direction == "ingress" else self.egress

    def policies(self, direction: Direction) -> tuple[str, ...]:
        return tuple(k for t in self.tiers(direction) for k, _ in t.policies)

    def steps(self, direction: Direction) -> tuple[EndpointStep, ...]:
        """The decisions of this endpoint's chain in ``direction``, in order, for any backend.

        As Felix's endpoint chains (``felix/rules/endpoints.go``): replies pass,
        invalid packets drop, the accept and pass marks are cleared; per tier the
        pass mark is cleared, each applying policy runs unless a policy of the tier
        passed the packet, and a set accept mark returns at once; a tier whose end
        action is deny drops what no policy passed; after the last tier (or with
        none) the profile allows: the accept mark is set. Each backend only spells
        these steps (with the comment).
        """
        what = f"endpoint {self.pod} {direction}"
        out = [*_head(what), *_tier_steps(what, self.tiers(direction))]
        if self.tiers(direction):
            out.append(("profile", f"{what}: every tier passed: the profile allows", None))
        else:
            out.append(("open", f"{what}: not isolated", None))
        return tuple(out)


def _head(what: str) -> list[EndpointStep]:
    return [
        ("replies", f"{what}: replies and related", None),
        ("invalid", f"{what}: invalid state", None),
    ]


def _tier_steps(
    what: str, tiers: tuple[TierRef, ...], stage: Stage = "normal"
) -> list[EndpointStep]:
    """Clear the marks; per tier, its policies in order and its end (Felix's layout).

    In the untracked and preDNAT stages a tier that decides nothing does not drop (the
    normal policies may still decide), and the untracked stage's allow is also not
    tracked (Felix's "NOTRACK and ALLOW")."""
    out: list[EndpointStep] = [("clear", f"{what}: clear the accept and pass marks", None)]
    for t in tiers:
        out.append(("tier", f"{what}: start of tier {t.name}", None))
        for key, label in t.policies:
            out.append(("policy", f"{what}: tier {t.name} policy {label}", key))
            if stage == "untracked":
                out.append(("notrack", f"{what}: allowed by policy {label}: not tracked", None))
            out.append(("allowed", f"{what}: allowed by policy {label}", None))
        if t.end == "deny" and stage == "normal":
            out.append(("end-of-tier", f"{what}: end of tier {t.name}: no policy passed it", None))
    return out


HostChain = Literal["fh", "th", "fhfw", "thfw"]
"""Felix's host endpoint chains: from the host endpoint (what the node receives: its
ingress), to it (what the node sends: its egress), and the same for traffic forwarded
through it (``applyOnForward`` policies)."""

HOST_CHAINS: dict[HostChain, tuple[Direction, bool]] = {
    "fh": ("ingress", False),
    "th": ("egress", False),
    "fhfw": ("ingress", True),
    "thfw": ("egress", True),
}
"""Each host chain's direction and whether it polices forwarded traffic."""

StageChain = Literal["rfh", "rth", "mfh"]
"""The host endpoint's chains of the early stages (``felix/rules/endpoints.go``: the same
``cali-fh-``/``cali-th-`` chains in the raw and mangle tables): its ``doNotTrack``
policies on what arrives on it (raw PREROUTING) and what the node sends out of it
(raw OUTPUT), its ``preDNAT`` policies on what arrives on it (mangle PREROUTING)."""

STAGE_CHAINS: dict[StageChain, tuple[Direction, Stage]] = {
    "rfh": ("ingress", "untracked"),
    "rth": ("egress", "untracked"),
    "mfh": ("ingress", "prednat"),
}
"""Each early chain's direction and stage (:class:`~sekisho.semantics.program.Program`)."""


@dataclass(frozen=True, slots=True)
class HostEndpointRef:
    """The node's host endpoint: the tiers that apply to it, for its own traffic and for
    forwarded traffic, per direction."""

    name: str
    iface: str | None
    """The interface it names; None: every interface that is not a workload's (``*``, or
    only ``expectedIPs``: sekisho's nodes have one interface, as the walk assumes)."""
    allow_profile: bool
    """It names ``projectcalico-default-allow`` (else "drop if no profiles matched")."""
    tiers: Mapping[HostChain | StageChain, tuple[TierRef, ...]] = field(hash=False)
    """Per chain (the four of the filter table and the early ones), the applying tiers."""

    def policies(self, chain: HostChain | StageChain) -> tuple[str, ...]:
        return tuple(k for t in self.tiers.get(chain, ()) for k, _ in t.policies)

    def stage_chains(self) -> tuple[StageChain, ...]:
        """The early chains some policy applies to (the others are not rendered)."""
        return tuple(c for c in STAGE_CHAINS if self.tiers.get(c))

    @property
    def early_in(self) -> bool:
        """Some doNotTrack or preDNAT policy applies to what arrives on it: the raw
        PREROUTING chain (which clears our marks first) is rendered."""
        return bool(self.tiers.get("rfh") or self.tiers.get("mfh"))

    @property
    def early_out(self) -> bool:
        """Some doNotTrack policy applies to what the node sends out of it (raw OUTPUT)."""
        return bool(self.tiers.get("rth"))

    def stage_steps(self, chain: StageChain) -> tuple[EndpointStep, ...]:
        """The decisions of one early chain, in order (Felix's untracked and preDNAT
        endpoint chains): the failsafe ports (and, in the raw table, before conntrack,
        their replies: the other direction's failsafe ports as source ports), the tiers
        (no drop at the end of a tier, an untracked allow also NOTRACKs), no profile:
        what no policy decided goes on to the next stage."""
        direction, stage = STAGE_CHAINS[chain]
        what = f"host endpoint {self.name} {STAGE_NAMES[stage]} {direction}"
        ingress = direction == "ingress"
        which = "Inbound" if ingress else "Outbound"
        out: list[EndpointStep] = [
            (
                "failsafe-in" if ingress else "failsafe-out",
                f"{what}: a failsafe port of Felix (Failsafe{which}HostPorts)",
                None,
            )
        ]
        if stage == "untracked":
            other = "Outbound" if ingress else "Inbound"
            out.append(
                (
                    "failsafe-in-reply" if ingress else "failsafe-out-reply",
                    f"{what}: replies of a failsafe port of Felix (Failsafe{other}HostPorts)",
                    None,
                )
            )
        out += _tier_steps(what, self.tiers[chain], stage)
        return tuple(out)

    def steps(self, chain: HostChain) -> tuple[EndpointStep, ...]:
        """The decisions of one host endpoint chain, in order (see :meth:`Endpoint.steps`).

        Felix's failsafe ports are accepted first on the node's own traffic
        (``FailsafeInboundHostPorts`` into it, ``FailsafeOutboundHostPorts`` out of it);
        after the tiers, the node's own traffic is allowed only by the
        ``projectcalico-default-allow`` profile, forwarded traffic always ("forwarded
        traffic is allowed by default if no policies apply to the endpoint and
        direction").
        """
        direction, forward = HOST_CHAINS[chain]
        what = f"host endpoint {self.name} {'forwarded ' if forward else ''}{direction}"
        out = _head(what)
        if not forward:
            which = "Inbound" if direction == "ingress" else "Outbound"
            action: EndpointAction = "failsafe-in" if direction == "ingress" else "failsafe-out"
            out.append(
                (action, f"{what}: a failsafe port of Felix (Failsafe{which}HostPorts)", None)
            )
        tiers = self.tiers[chain]
        out += _tier_steps(what, tiers)
        head = "every tier passed" if tiers else "no policy applies"
        if forward:
            out.append(("profile", f"{what}: {head}: forwarded, the profile allows", None))
        elif self.allow_profile:
            out.append(
                ("profile", f"{what}: {head}: {DEFAULT_ALLOW_PROFILE}, the profile allows", None)
            )
        else:
            out.append(("no-profile", f"{what}: {head}: no profile allows it: denied", None))
        return tuple(out)


@dataclass(slots=True)
class Delta:
    """What changed since the previous render: set and chain names (backend independent)."""

    sets: set[str] = field(default_factory=set)
    """Keys of sets whose members changed or that appeared."""
    removed_sets: set[str] = field(default_factory=set)
    policies: set[tuple[str, Direction]] = field(default_factory=set)
    """(policy key, direction) whose chain changed or appeared."""
    removed_policies: set[tuple[str, Direction]] = field(default_factory=set)
    endpoints: set[str] = field(default_factory=set)
    """Pod keys whose endpoint chains changed or appeared."""
    removed_endpoints: set[str] = field(default_factory=set)
    dispatch: bool = False
    """The set of local endpoints changed (dispatch chains / verdict maps)."""
    host: bool = False
    """The node's host endpoint chains changed (or it appeared, or went)."""

    @property
    def empty(self) -> bool:
        return not (
            self.host
            or self.sets
            or self.removed_sets
            or self.policies
            or self.removed_policies
            or self.endpoints
            or self.removed_endpoints
            or self.dispatch
        )


APPLIES_MEMO_MAX = 50_000
"""Distinct label sets whose applying policies are remembered, at most."""

TEXT_KEEP = 1024
"""Endpoints whose chain texts are kept after their pod left the node, beyond twice the
node's endpoints (churn brings pods back)."""

BATCH = 8
"""From this many changed pods in one update on, sets and policies are matched against
a table of the changed pods (a few vector operations each) rather than pod by pod."""

_POD_FIELDS = ("pods", "policies", "cluster_policies")
"""Cluster fields the incremental path follows; a change in any other one rebuilds."""


class NodeRenderer:
    """One node's desired dataplane, kept up to date incrementally.

    ``update(cluster)`` diffs the new snapshot against the last one (objects that
    are the same Python object are skipped without comparing), recomputes only
    what a change can affect, and returns the :class:`Delta`. The backends read
    the state through the attributes below.
    """

    def __init__(
        self,
        node: str,
        *,
        prefix: str = "sekisho",
        iface_prefix: str = "cali",
        log_group: int | None = None,
    ) -> None:
        self.node = node
        self.prefix = names.check_prefix(prefix)
        self.log_group = names.check_log_group(log_group)
        """Where Log rules write: None, the kernel log (``LOG``/``log``); a number, that
        nfnetlink_log group (``NFLOG``/``log group``), read by a listener in the node."""
        self.iface_prefix = iface_prefix
        self.cluster = Cluster()
        self.program = Program()
        self._inputs: tuple[object, ...] | None = None
        self._given: Program | None = None
        self.pods: dict[str, Pod] = {}
        self.entities: dict[str, Entity] = {}
        """Workload entities by pod key."""
        self._others: list[Entity] = []
        """Entities that are not pods (nodes, network sets)."""
        self.policies: dict[str, Policy] = {}
        """Enforced policies of the program by key."""
        self._position: dict[str, int] = {}
        self._tier_of: dict[str, int] = {}
        self._tiers: list[tuple[str, EndAction]] = []
        self._applies: dict[str, dict[Direction, set[str]]] = {}
        """Local pod key -> direction -> keys of the policies that apply to it."""
        self.endpoints: dict[str, Endpoint] = {}
        """Local endpoints by pod key."""
        self.host: HostEndpointRef | None = None
        """The node's host endpoint, when it has one."""
        self._host_model: tuple[HostEndpoint, Entity] | None = None
        self.chains: dict[tuple[str, Direction], tuple[PolicyRule, ...]] = {}
        """Active policy chains (a policy applying to at least one local pod), IPv4 rules."""
        self.chains6: dict[tuple[str, Direction], tuple[PolicyRule, ...]] = {}
        """The same chains' IPv6 rules (same keys as :attr:`chains`)."""
        self._chain_sets: dict[tuple[str, Direction], tuple[tuple[str, str], ...]] = {}
        """(set key, the description that chain gives it) of each active chain's sets."""
        self._descriptions: dict[str, dict[str, int]] = {}
        """Set key -> description -> how many chains give it; a set shows the least one,
        so its text does not depend on which chain came first."""
        self._policy_refs: dict[tuple[str, Direction], int] = {}
        self.set_defs: dict[str, SetDef] = {}
        self.members: dict[str, dict[Member, int]] = {}
        """Set key -> member -> how many entities hold it."""
        self._set_refs: dict[str, int] = {}
        self._tab: tuple[list[Entity], LabelTable] | None = None
        self._ports: dict[tuple[str, str], IntArray] | None = None
        self._ns_parts: dict[str, dict[str, str]] = {}
        self._label_maps: dict[tuple[object, ...], Mapping[str, str]] = {}
        """Label maps of pods, shared by pods with equal labels (:func:`pod_entity`); like
        :attr:`_ns_parts`, for one snapshot of the namespaces and accounts."""
        self._accounts: Mapping[tuple[str, str], Mapping[str, str]] = {}
        self._delta = Delta()
        self.text_cache: dict[tuple[str, ...], dict[str, object]] = {}
        self._compiled: dict[
            tuple[str, Direction],
            tuple[Policy, tuple[PolicyRule, ...], tuple[PolicyRule, ...], dict[str, SetDef]],
        ] = {}
        """A policy chain's compiled rules, kept while its policy is the same object (a
        chain that churn deactivates and activates again is not compiled again)."""
        self._applies_memo: dict[tuple[tuple[str, str], ...], dict[Direction, frozenset[str]]] = {}
        """A pod's labels -> the keys of the policies that select them, per direction (for
        the current policies)."""
        self._epoch = 0
        """Updates so far (:meth:`update`)."""
        self.member_moves: dict[str, tuple[int, list[tuple[Member, bool]]]] = {}
        """Sets whose members dict changed in place in the last update: key -> (the
        update of its change before, the members that came (True) or went (False), in
        order). A backend that spelt a set as of that earlier update may apply the moves
        instead of spelling it again (a dict replaced whole is another object)."""
        self._moved_at: dict[str, int] = {}
        """Set key -> the last update in which its members dict changed in place."""
        self.spelt: dict[str, dict[str, object]] = {}
        """Set key -> the backends' own memo of its spelling (see :attr:`member_moves`);
        dropped with the set."""
        self._select_memo: dict[tuple[tuple[str, str], ...], tuple[set[str], set[str]]] = {}
        """A label set -> (keys of the set selectors evaluated on it, those it satisfies);
        a selector's key is its canonical text, so an answer holds for good."""
        self._text_ep: dict[str, Endpoint] = {}
        """Pod key -> the endpoint its cached chain texts were spelt for (kept a while
        after the pod went: churn brings pods back)."""
        """Rendered text per (kind, key) and backend; entries are dropped when they change."""

    # ---------------------------------------------------------------- public

    def update(self, cluster: Cluster, *, program: Program | None = None) -> Delta:
        """Move to ``cluster``; return what changed (everything, the first time).

        ``program``: render this program over the cluster's entities instead of the
        cluster's own (:func:`~sekisho.semantics.compile_program`); tests build
        programs directly."""
        # Thousands of small objects and no cycles: a collection they trigger would only
        # walk the caller's heap (the cluster) for nothing, as in compute_matrix.
        with paused_gc():
            return self._update(cluster, program)

    def _update(self, cluster: Cluster, program: Program | None) -> Delta:
        self._epoch += 1
        self.member_moves = {}
        old = self.cluster
        self.cluster = cluster
        self._given = program
        if self._inputs is None or self._structural(old, cluster):
            return self._rebuild(cluster)
        inputs = self._program_inputs(cluster)
        changed: set[str] = set()
        if len(inputs) != len(self._inputs) or any(
            a is not b and a != b for a, b in zip(inputs, self._inputs, strict=False)
        ):
            changed = self._program_changed(cluster)
        self._inputs = inputs
        if old.nodes is not cluster.nodes and old.nodes != cluster.nodes:
            self._nodes_changed(old, cluster)
        pod_changes = _diff(old.pods, cluster.pods)
        relabelled = _relabelled(old, cluster)
        if relabelled:
            # Their pods' entities carry the namespace's labels: each is a changed pod.
            for ns in relabelled:
                self._ns_parts.pop(ns, None)
            self._label_maps = {k: v for k, v in self._label_maps.items() if k[0] not in relabelled}
            moved = {key for key, _, _ in pod_changes}
            pod_changes += [
                (key, pod, pod)
                for key, pod in self.pods.items()
                if pod.namespace in relabelled and key not in moved and not pod.host_network
            ]
        if len(pod_changes) >= BATCH:
            self._pods_changed(pod_changes)
        else:
            for key, old_pod, new_pod in pod_changes:
                self._pod_changed(key, old_pod, new_pod)
        if changed:
            for key in list(self.endpoints):  # the local pods' (not a walk of every pod)
                self._refresh_endpoint(key, changed)
            self._refresh_host()
        return self._take_delta()

    def cached(self, backend: str, key: tuple[str, ...], make: Callable[[], _T]) -> _T:
        """Text of one set or chain for ``backend``, computed once until it changes."""
        entry = self.text_cache.setdefault(key, {})
        if backend not in entry:
            entry[backend] = make()
        return cast(_T, entry[backend])

    def notes(self) -> tuple[str, ...]:
        """What this node's rules leave out: the program's own notes (both IP families
        are rendered)."""
        return tuple(self.program.notes)

    def set_name(self, key: str, family: int = 4) -> str:
        return names.set_name(self.prefix, key, family)

    def set_families(self) -> list[tuple[str, int]]:
        """(set key, family) of every set a backend writes: a set per family, except a net
        set without a net of that family (no rule of that family refers to it)."""
        out: list[tuple[str, int]] = []
        for key, sd in self.set_defs.items():
            for family in (4, 6):
                if sd.static and not any(
                    not isinstance(m, tuple) and m.version == family for m in self.members[key]
                ):
                    continue
                out.append((key, family))
        return out

    def rules(self, ref: tuple[str, Direction], family: int) -> tuple[PolicyRule, ...]:
        """A policy chain's rules of one family."""
        return (self.chains if family == 4 else self.chains6)[ref]

    def policy_chain(self, key: str, direction: Direction) -> str:
        return names.policy_chain(self.prefix, key, direction)

    def endpoint_chain(self, iface: str, direction: Direction) -> str:
        return names.endpoint_chain(self.prefix, iface, direction)

    def stage(self, key: str) -> Stage:
        """The stage of an active policy chain's policy (which table it lives in)."""
        return self.policies[key].stage

    def host_chain(self, chain: HostChain | StageChain) -> str:
        assert self.host is not None
        return names.host_chain(self.prefix, self.host.iface or self.host.name, chain)

    # -------------------------------------------------------------- internals

    def _program_inputs(self, cluster: Cluster) -> tuple[object, ...]:
        if self._given is not None:
            return (self._given,)
        return program_inputs(cluster)

    def _compile(self, cluster: Cluster) -> Program:
        return self._given if self._given is not None else compile_program(cluster)

    def _structural(self, old: Cluster, new: Cluster) -> bool:
        """Whether a change needs :meth:`_rebuild`: one of a field the incremental path does
        not follow. Calico's tiers and policies are read only by the program (followed
        through :func:`program_inputs`), a namespace's labels only by its pods' entities
        (:meth:`_update` takes them as pod changes) unless a NetworkSet is in it, and
        another node only by its own entity (:meth:`_nodes_changed`); this node's host
        endpoint is found by its address, so a change of this node rebuilds."""
        for f in dataclasses.fields(Cluster):
            if f.name in _POD_FIELDS:
                continue
            a, b = getattr(old, f.name), getattr(new, f.name)
            if a is b or a == b:
                continue
            if f.name == "calico" and _same_entities(a, b):
                continue
            if f.name == "nodes" and old.node(self.node) == new.node(self.node):
                continue
            if f.name == "namespaces":
                moved = _relabelled(old, new)
                sets = new.calico.network_sets if new.calico else ()
                if not any(n.namespace in moved for n in sets):
                    continue
            return True
        return False

    def _rebuild(self, cluster: Cluster) -> Delta:
        """Everything from scratch; the delta is the difference to the state before."""
        before_chains = {k: (v, self.chains6.get(k)) for k, v in self.chains.items()}
        before_eps = dict(self.endpoints)
        before_host = self.host
        before_members = {k: set(v) for k, v in self.members.items()}
        before_defs = dict(self.set_defs)
        self.pods, self.entities, self.policies = {}, {}, {}
        self._applies, self.endpoints, self.chains, self.chains6 = {}, {}, {}, {}
        self.host = None
        self._chain_sets, self._policy_refs = {}, {}
        self.set_defs, self.members, self._set_refs = {}, {}, {}
        self.spelt = {}
        self._descriptions = {}
        self._tab = self._ports = None
        self._delta = Delta()
        self._others = [Entity("node", n.name, n.labels, n.labels, n.ips) for n in cluster.nodes]
        universe = Universe(cluster)
        self._others += universe.hosts + universe.netsets
        node = cluster.node(self.node)
        hep = node_host_endpoint(cluster, self.node, None if node is None else node.internal_ip)
        self._host_model = None
        if hep is not None:
            entity = next(e for e in universe.hosts if e.key == hep.name)
            self._host_model = (hep, entity)
        self._accounts = cluster.calico.service_account_labels() if cluster.calico else {}
        self._inputs = self._program_inputs(cluster)
        self._set_program(self._compile(cluster))
        self._ns_parts = {}
        self._label_maps = {}
        for pod in cluster.pods:
            self._add_pod(pod)
        self._refresh_all_endpoints()
        self._refresh_host()
        d = Delta()
        d.host = before_host != self.host
        d.sets = {
            k
            for k in self.set_defs
            if before_defs.get(k) != self.set_defs[k]
            or before_members.get(k) != set(self.members[k])
        }
        d.removed_sets = set(before_defs) - set(self.set_defs)
        d.policies = {
            k for k, v in self.chains.items() if before_chains.get(k) != (v, self.chains6.get(k))
        }
        d.removed_policies = set(before_chains) - set(self.chains)
        d.endpoints = {k for k, v in self.endpoints.items() if before_eps.get(k) != v}
        d.removed_endpoints = set(before_eps) - set(self.endpoints)
        d.dispatch = {k: e.iface for k, e in before_eps.items()} != {
            k: e.iface for k, e in self.endpoints.items()
        } or not before_eps
        self._delta = d
        return self._take_delta()

    def _take_delta(self) -> Delta:
        delta, self._delta = self._delta, Delta()
        # forget the text of what changed; everything else is reused by the next render.
        # A policy chain's text is a function of its compiled rules: it is forgotten when
        # they are compiled again (_activate, _program_changed), not when churn
        # deactivates the chain; an endpoint's text is kept for the value it was made
        # for, so a pod that goes and comes back the same is not spelt again.
        for key in delta.sets | delta.removed_sets:
            self.text_cache.pop(("set", key), None)
        for pod in delta.endpoints:
            ep = self.endpoints.get(pod)
            if self._text_ep.get(pod) != ep:
                for d in DIRECTIONS:
                    self.text_cache.pop(("endpoint", pod, d), None)
                if ep is not None:
                    self._text_ep[pod] = ep
        if len(self._text_ep) > 2 * len(self.endpoints) + TEXT_KEEP:
            for pod in [p for p in self._text_ep if p not in self.endpoints]:
                del self._text_ep[pod]
                for d in DIRECTIONS:
                    self.text_cache.pop(("endpoint", pod, d), None)
        return delta

    def _set_program(self, program: Program) -> None:
        self.program = program
        self.policies = {}
        self._applies_memo = {}
        self._position, self._tier_of, self._tiers = {}, {}, []
        # The early stages' tiers after the normal ones: a chain only ever holds the
        # policies of one stage, so their positions only need to be in order per stage.
        for tier in (*program.tiers, *program.untracked, *program.pre_dnat):
            ti = len(self._tiers)
            self._tiers.append((tier.name, tier.default_action))
            for p in tier.policies:
                self._position[p.key] = len(self._position)
                self._tier_of[p.key] = ti
                self.policies[p.key] = p

    def _program_changed(self, cluster: Cluster) -> set[str]:
        """Take the new program; recompile changed active chains; return the changed keys."""
        old = self.policies
        old_tiers = self._tiers
        old_pos = self._position
        self._set_program(self._compile(cluster))
        changed = {
            k
            for k in old.keys() | self.policies.keys()
            if old.get(k) is not self.policies.get(k) and old.get(k) != self.policies.get(k)
        }
        for key in changed:
            for d in DIRECTIONS:
                self._compiled.pop((key, d), None)
                self.text_cache.pop(("policy", key, d), None)
        if self._tiers != old_tiers or self._position != old_pos:
            # the order moved: every endpoint's tier list is rebuilt (membership is kept)
            changed |= {""}
        for key in sorted(k for k in changed if k in old):
            for d in DIRECTIONS:
                ref = (key, d)
                if ref in self.chains and key in self.policies:
                    self._deactivate(ref, keep_refs=True)
                    self._activate(ref)
        return changed

    def _table(self) -> tuple[list[Entity], LabelTable]:
        """Every entity and a label table over them (kept until a pod changes), so a new
        set's members cost a few vector operations rather than a walk over every pod."""
        if self._tab is None:
            entities = [*self.entities.values(), *self._others]
            self._tab = (entities, LabelTable([e.labels for e in entities]))
        return self._tab

    def _port_index(self) -> dict[tuple[str, str], IntArray]:
        """Positions in :meth:`_table` of the entities that declare each (port name,
        protocol) (kept like the table)."""
        if self._ports is None:
            index: dict[tuple[str, str], list[int]] = {}
            for i, e in enumerate(self._table()[0]):
                for cp in e.ports:
                    if cp.name is not None:
                        index.setdefault((cp.name, cp.protocol), []).append(i)
            self._ports = {k: np.asarray(v, dtype=np.int64) for k, v in index.items()}
        return self._ports

    def _is_local(self, pod: Pod) -> bool:
        return pod.node == self.node and not pod.host_network

    def _add_pod(self, pod: Pod) -> None:
        self.pods[pod.key] = pod
        if not pod.host_network:
            ns = pod.namespace
            part = self._ns_parts.get(ns)
            labels = self.cluster.namespace_labels(ns)
            if part is None:
                part = self._ns_parts[ns] = namespace_part(ns, labels)
            accounts = self._accounts.get((ns, pod.service_account))
            self.entities[pod.key] = pod_entity(
                pod, labels, accounts, ns_part=part, shared=self._label_maps
            )

    def _refresh_all_endpoints(self) -> None:
        """Which policies apply to every local pod: each policy's selector once over a
        table of the local pods."""
        self._refresh_endpoints([k for k, p in self.pods.items() if self._is_local(p)])

    def _refresh_endpoints(self, local: list[str]) -> None:
        """Which policies apply to these local pods: each policy's selector once over a
        table of them."""
        if not local:
            return
        memo = self._applies_memo
        if len(memo) > APPLIES_MEMO_MAX:
            memo.clear()
        keys = [tuple(sorted(self.entities[k].labels.items())) for k in local]
        # Which policies select a label set is asked once per distinct label set while
        # the policies stay (replicas share labels; churn brings the same pods back).
        unknown = {k: self.entities[pod].labels for k, pod in zip(keys, local, strict=True)}
        for k in [k for k in unknown if k in memo]:
            del unknown[k]
        if unknown:
            table = LabelTable(list(unknown.values()))
            found: list[dict[Direction, set[str]]] = [
                {d: set() for d in DIRECTIONS} for _ in unknown
            ]
            for pkey, pol in self.policies.items():
                if "workload" not in pol.selector.kinds or not pol.types or pol.stage != "normal":
                    continue
                for i in np.flatnonzero(select(pol.selector.selector, table)).tolist():
                    for d in pol.types:
                        found[i][d].add(pkey)
            for k, f in zip(unknown, found, strict=True):
                memo[k] = {d: frozenset(v) for d, v in f.items()}
        for key, k in zip(local, keys, strict=True):
            self._applies[key] = {d: set(memo[k][d]) for d in DIRECTIONS}
            self._refresh_endpoint(key, set())

    def _pods_changed(self, changes: list[tuple[str, Pod | None, Pod | None]]) -> None:
        """Many pods at once (a burst of endpoint churn): what :meth:`_pod_changed` does for
        each, with each set's and each policy's selector evaluated once over a table of
        the changed pods instead of once per pod."""
        self._tab = self._ports = None
        before: list[Entity] = []
        after: list[Entity] = []
        for key, _old, new in changes:
            was = self.entities.get(key)
            self.pods.pop(key, None)
            self.entities.pop(key, None)
            if was is not None:
                before.append(was)
            if new is not None:
                self._add_pod(new)
                now = self.entities.get(key)
                if now is not None:
                    after.append(now)
        ents = before + after
        steps = [-1] * len(before) + [1] * len(after)
        every: list[tuple[str, SetDef]] = []  # sets without a selector: each entity asked
        by_selector: dict[str, tuple[SelectorSet, list[tuple[str, SetDef]]]] = {}
        for skey, sd in self.set_defs.items():
            if sd.static:
                continue
            sel = sd.selector
            if sel is None:
                every.append((skey, sd))
            else:
                got = by_selector.get(sel.key)
                if got is None:
                    by_selector[sel.key] = (sel, [(skey, sd)])
                else:
                    got[1].append((skey, sd))
        outs: dict[str, list[tuple[Member, int]]] = {}
        for i, sel_keys in enumerate(self._selected(ents, by_selector)):
            ent, step = ents[i], steps[i]
            for sel_key in sel_keys:
                for skey, sd in by_selector[sel_key][1]:
                    held = sd.holds(ent, True)
                    if held:
                        outs.setdefault(skey, []).extend([(m, step) for m in held])
            for skey, sd in every:
                held = sd.holds(ent, None)
                if held:
                    outs.setdefault(skey, []).extend([(m, step) for m in held])
        for skey, out in outs.items():
            members = self.members[skey]
            net: dict[Member, int] = {}
            for m, step in out:
                net[m] = net.get(m, 0) + step
            moves = None
            for m, step in net.items():
                if not step:
                    continue
                had = members.get(m, 0)
                left = had + step
                if left:
                    members[m] = left
                else:
                    del members[m]
                if not had or not left:
                    if moves is None:
                        moves = self._moves(skey)
                    moves.append((m, not had))
                self._delta.sets.add(skey)
        added: list[str] = []
        for key, old, new in changes:
            if old is not None and self._is_local(old) and (new is None or not self._is_local(new)):
                self._drop_endpoint(key)
            if new is not None and self._is_local(new):
                added.append(key)
        self._refresh_endpoints(added)

    def moved_at(self, skey: str) -> int:
        """The last update in which ``skey``'s members dict changed in place (-1: never)."""
        return self._moved_at.get(skey, -1)

    def _moves(self, skey: str) -> list[tuple[Member, bool]]:
        """The journal of ``skey``'s members in this update (see :attr:`member_moves`)."""
        got = self.member_moves.get(skey)
        if got is None:
            got = self.member_moves[skey] = (self._moved_at.get(skey, -1), [])
            self._moved_at[skey] = self._epoch
        return got[1]

    def _selected(
        self,
        ents: list[Entity],
        by_selector: Mapping[str, tuple[SelectorSet, list[tuple[str, SetDef]]]],
    ) -> list[set[str]]:
        """For each entity, the keys of the selectors of ``by_selector`` its labels satisfy.

        Remembered per distinct label set and selector (a selector's key is its canonical
        text: the answer never changes), so endpoint churn, which brings back the same
        labels, costs set operations; what is not known yet is evaluated once over a table
        of the label sets that need it."""
        memo = self._select_memo
        if len(memo) > APPLIES_MEMO_MAX:
            memo.clear()
        wanted = set(by_selector)
        rows: list[tuple[set[str], set[str]]] = []
        unknown: set[str] = set()  # selectors some label set is not known for
        first: dict[tuple[tuple[str, str], ...], int] = {}  # label set -> its first entity
        for i, e in enumerate(ents):
            k = tuple(sorted(e.labels.items()))
            row = memo.get(k)
            if row is None:
                row = memo[k] = (set(), set())
            rows.append(row)
            if k not in first:
                first[k] = i
                unknown |= wanted - row[0]
        if unknown:
            # one table of the distinct label sets; each selector not known for some of
            # them is evaluated over all of them (what is learnt is kept)
            idx = list(first.values())
            table = LabelTable([ents[i].labels for i in idx])
            for sel_key in unknown:
                hit = select(by_selector[sel_key][0].selector, table).tolist()
                for i, yes in zip(idx, hit, strict=True):
                    known, true = rows[i]
                    known.add(sel_key)
                    if yes:
                        true.add(sel_key)
        return [row[1] & wanted for row in rows]

    def _pod_changed(self, key: str, old: Pod | None, new: Pod | None) -> None:
        self._tab = self._ports = None
        before = self.entities.get(key)
        self.pods.pop(key, None)
        self.entities.pop(key, None)
        if new is not None:
            self._add_pod(new)
        self._entity_changed(before, self.entities.get(key))
        if old is not None and self._is_local(old) and (new is None or not self._is_local(new)):
            self._drop_endpoint(key)
        if new is not None and self._is_local(new):
            self._refresh_endpoint(key, None)

    def _entity_changed(self, before: Entity | None, after: Entity | None) -> None:
        """The sets' members of one entity that changed (came, went, or another one)."""
        for skey, sd in self.set_defs.items():
            if sd.static:
                continue
            was = sd.holds(before) if before is not None else ()
            now = sd.holds(after) if after is not None else ()
            if was != now:
                members = self.members[skey]
                moves = self._moves(skey)
                for m in was:
                    left = members[m] - 1
                    if left:
                        members[m] = left
                    else:
                        del members[m]
                        moves.append((m, False))
                for m in now:
                    count = members.get(m, 0)
                    members[m] = count + 1
                    if not count:
                        moves.append((m, True))
                self._delta.sets.add(skey)

    def _nodes_changed(self, old: Cluster, new: Cluster) -> None:
        """Other nodes came, went or changed (this one is the same: :meth:`_structural`):
        their entities, first in :attr:`_others` in the cluster's order as
        :meth:`_rebuild` puts them, and the sets' members they hold."""
        self._tab = self._ports = None
        n_old = len(old.nodes)
        was = {e.key: e for e in self._others[:n_old]}
        entities: list[Entity] = []
        for n in new.nodes:
            e = was.pop(n.name, None)
            if e is None or e.labels != n.labels or e.ips != n.ips:
                after = Entity("node", n.name, n.labels, n.labels, n.ips)
                self._entity_changed(e, after)
                e = after
            entities.append(e)
        for e in was.values():
            self._entity_changed(e, None)
        self._others = entities + self._others[n_old:]

    def _refresh_endpoint(self, key: str, changed: set[str] | None) -> None:
        """Recompute which policies apply to a local pod (all, or only ``changed`` keys)."""
        pod = self.pods[key]
        entity = self.entities[key]
        have = self._applies.get(key)
        if have is None or changed is None:
            have = {d: set() for d in DIRECTIONS}
            candidates: Sequence[str] = list(self.policies)
        else:
            candidates = [k for k in changed if k]
            for d in DIRECTIONS:
                have[d] -= set(candidates)
        for pkey in candidates:
            pol = self.policies.get(pkey)
            if pol is None or pol.stage != "normal":
                continue
            for d in DIRECTIONS:
                if applies(pol, entity, d):
                    have[d].add(pkey)
        self._applies[key] = have
        tiers: dict[Direction, tuple[TierRef, ...]] = {}
        for d in DIRECTIONS:
            tiers[d] = self._tier_refs(list(have[d]))
        ep = Endpoint(
            key,
            endpoint_interface(pod.namespace, pod.name, self.iface_prefix),
            tiers["ingress"],
            tiers["egress"],
        )
        old = self.endpoints.get(key)
        if old == ep:
            return
        if old is None or old.iface != ep.iface:
            self._delta.dispatch = True
        self.endpoints[key] = ep
        self._delta.endpoints.add(key)
        self._delta.removed_endpoints.discard(key)
        for d in DIRECTIONS:
            for pkey in ep.policies(d):
                self._ref_policy((pkey, d), +1)
            if old is not None:
                for pkey in old.policies(d):
                    self._ref_policy((pkey, d), -1)

    def _refresh_host(self) -> None:
        """Which policies apply to the node's host endpoint, per chain."""
        old = self.host
        new: HostEndpointRef | None = None
        if self._host_model is not None:
            hep, entity = self._host_model
            tiers: dict[HostChain | StageChain, tuple[TierRef, ...]] = {}
            for chain, (d, forward) in HOST_CHAINS.items():
                keys = [
                    k
                    for k, pol in self.policies.items()
                    if pol.stage == "normal"
                    and (pol.forward or not forward)
                    and applies(pol, entity, d)
                ]
                tiers[chain] = self._tier_refs(keys)
            for early, (d, stage) in STAGE_CHAINS.items():
                keys = [
                    k
                    for k, pol in self.policies.items()
                    if pol.stage == stage and applies(pol, entity, d)
                ]
                if keys:
                    tiers[early] = self._tier_refs(keys)
            iface = hep.interface if hep.interface not in (None, "*") else None
            new = HostEndpointRef(hep.name, iface, DEFAULT_ALLOW_PROFILE in hep.profiles, tiers)
        if new == old:
            return
        self.host = new
        self._delta.host = True
        for ref, step in ((new, +1), (old, -1)):
            if ref is None:
                continue
            chains: list[tuple[HostChain | StageChain, Direction]] = [
                (c, d) for c, (d, _forward) in HOST_CHAINS.items()
            ]
            chains += [(c, d) for c, (d, _stage) in STAGE_CHAINS.items()]
            for which, d in chains:
                for pkey in ref.policies(which):
                    self._ref_policy((pkey, d), step)

    def _tier_refs(self, keys: Sequence[str]) -> tuple[TierRef, ...]:
        """The applying policies ``keys`` grouped into their tiers, in program order."""
        refs: list[TierRef] = []
        for pkey in sorted(keys, key=self._position.__getitem__):
            name, end = self._tiers[self._tier_of[pkey]]
            label = self.policies[pkey].label
            if refs and refs[-1].name == name:
                last = refs[-1]
                refs[-1] = TierRef(name, end, (*last.policies, (pkey, label)))
            else:
                refs.append(TierRef(name, end, ((pkey, label),)))
        return tuple(refs)

    def _drop_endpoint(self, key: str) -> None:
        self._applies.pop(key, None)
        old = self.endpoints.pop(key, None)
        if old is None:
            return
        self._delta.dispatch = True
        self._delta.endpoints.discard(key)
        self._delta.removed_endpoints.add(key)
        for d in DIRECTIONS:
            for pkey in old.policies(d):
                self._ref_policy((pkey, d), -1)

    def _ref_policy(self, ref: tuple[str, Direction], step: int) -> None:
        count = self._policy_refs.get(ref, 0) + step
        if count > 0:
            self._policy_refs[ref] = count
        else:
            self._policy_refs.pop(ref, None)
        if count == 1 and step > 0:
            self._activate(ref)
        elif count == 0:
            self._deactivate(ref)

    def _activate(self, ref: tuple[str, Direction]) -> None:
        policy = self.policies[ref[0]]
        known = self._compiled.get(ref)
        if known is None or known[0] is not policy:
            self.text_cache.pop(("policy", *ref), None)
            rules, sets = compile_rules(policy, ref[1], 4)
            rules6, sets6 = compile_rules(policy, ref[1], 6)
            sets.update(sets6)
            known = self._compiled[ref] = (policy, rules, rules6, sets)
        _, rules, rules6, sets = known
        if self.chains.get(ref) != rules or self.chains6.get(ref) != rules6:
            self._delta.policies.add(ref)
        self.chains[ref] = rules
        self.chains6[ref] = rules6
        self._chain_sets[ref] = tuple((k, sets[k].description) for k in sorted(sets))
        for sd in sets.values():
            self._acquire_set(sd)
        self._delta.removed_policies.discard(ref)

    def _deactivate(self, ref: tuple[str, Direction], *, keep_refs: bool = False) -> None:
        if ref not in self.chains:
            return
        if not keep_refs:
            del self.chains[ref]
            del self.chains6[ref]
            self._delta.policies.discard(ref)
            self._delta.removed_policies.add(ref)
        for skey, description in self._chain_sets.pop(ref):
            self._release_set(skey, description)

    def _describe(self, key: str, description: str, step: int) -> None:
        """Count one chain's description of a set; show the least one."""
        counts = self._descriptions.setdefault(key, {})
        left = counts.get(description, 0) + step
        if left > 0:
            counts[description] = left
        else:
            counts.pop(description, None)
        current = self.set_defs.get(key)
        if counts and current is not None:
            least = min(counts)
            if current.description != least:
                self.set_defs[key] = dataclasses.replace(current, description=least)
                self._delta.sets.add(key)

    def _acquire_set(self, sd: SetDef) -> None:
        count = self._set_refs.get(sd.key, 0)
        self._set_refs[sd.key] = count + 1
        if count:
            self._describe(sd.key, sd.description, +1)
            return
        self.set_defs[sd.key] = sd
        self._describe(sd.key, sd.description, +1)
        members: dict[Member, int] = {}
        if sd.static:
            for m in sd.static_members():
                members[m] = 1
        else:
            entities, table = self._table()
            sel = sd.selector
            if isinstance(sd.source, NamedPortSet):
                # only the entities that declare a port of that name can hold one
                want = (sd.source.name, protocol_name(sd.source.protocol))
                declare = self._port_index().get(want)
                if declare is not None and sel is not None:
                    declare = declare[select(sel.selector, table)[declare]]
                for i in declare.tolist() if declare is not None else ():
                    for m in sd.holds(entities[i], None if sel is None else True):
                        members[m] = members.get(m, 0) + 1
            elif sel is None:
                for entity in entities:
                    for m in sd.holds(entity):
                        members[m] = members.get(m, 0) + 1
            elif isinstance(sd.source, SelectorSet):
                # the common case inline: addresses of the selected entities of its kinds,
                # counted in one pass (an address hashes in Python: once each, not twice)
                kinds = sd.source.kinds
                found: list[Member] = []
                for i in np.flatnonzero(select(sel.selector, table)).tolist():
                    entity = entities[i]
                    if entity.kind not in kinds:
                        continue
                    for ip in entity.ips:
                        if type(ip) is IPv4Address or type(ip) is IPv6Address:
                            found.append(ip)
                    if entity.nets:
                        found += networks(entity.nets)
                members = dict(Counter(found))

        self.members[sd.key] = members
        self._delta.sets.add(sd.key)
        self._delta.removed_sets.discard(sd.key)

    def _release_set(self, skey: str, description: str) -> None:
        count = self._set_refs[skey] - 1
        if count:
            self._set_refs[skey] = count
            self._describe(skey, description, -1)
            return
        del self._set_refs[skey]
        self._descriptions.pop(skey, None)
        del self.set_defs[skey]
        del self.members[skey]
        self.spelt.pop(skey, None)
        self._delta.sets.discard(skey)
        self._delta.removed_sets.add(skey)


_ENTITY_FIELDS = ("network_sets", "host_endpoints", "service_accounts")
"""Calico's objects the renderer's entities are made of (the others only the program reads)."""


def _same_entities(a: CalicoResources | None, b: CalicoResources | None) -> bool:
    for name in _ENTITY_FIELDS:
        x, y = getattr(a, name, ()), getattr(b, name, ())
        if x is not y and x != y:
            return False
    return True


def _relabelled(old: Cluster, new: Cluster) -> set[str]:
    """Namespaces whose labels (as pods see them) differ between two snapshots."""
    a, b = old.namespaces, new.namespaces
    if a is b:
        return set()
    return {n for n in a.keys() | b.keys() if old.namespace_labels(n) != new.namespace_labels(n)}


def _diff(old_seq: Sequence[_K], new_seq: Sequence[_K]) -> list[tuple[str, _K | None, _K | None]]:
    """(key, old, new) for objects that differ between two sorted snapshots.

    Same Python object => unchanged without comparing; equal length and keys in
    the same places (the usual case: one object replaced) => one pass, no dicts.
    """
    out: list[tuple[str, _K | None, _K | None]] = []
    if len(old_seq) == len(new_seq):
        for a, b in zip(old_seq, new_seq, strict=True):
            if a is b:
                continue
            if a.key != b.key:
                break
            if a != b:
                out.append((a.key, a, b))
        else:
            return out
        out = []
    # Objects in both snapshots are skipped by identity; only the others are keyed.
    old_ids = {id(a) for a in old_seq}
    new_ids = {id(b) for b in new_seq}
    gone = {a.key: a for a in old_seq if id(a) not in new_ids}
    for b in new_seq:
        if id(b) in old_ids:
            continue
        prev = gone.pop(b.key, None)
        if prev is None or prev != b:
            out.append((b.key, prev, b))
    out.extend((k, a, None) for k, a in gone.items())
    return out
