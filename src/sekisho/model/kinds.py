"""Which kinds sekisho reads, which it knowingly skips, and everything else: one registry.

Every object falls under exactly one rule, decided by its ``apiVersion`` and ``kind``:

1. **read**: the kinds in :data:`READ`, at the one apiVersion each is read at. A
   new policy kind is one :class:`KindInfo` line here (plus its parser, dispatched
   in :func:`sekisho.model.parse.parse_object`).
2. **wrong version**: a kind of :data:`READ` named with another version of a
   Kubernetes API group (``extensions/v1beta1`` NetworkPolicy, ``apps/v1beta2``
   Deployment): a problem, as the API server of today rejects it.
3. **skipped**: Kubernetes built-in kinds (:data:`SKIPPED`) that neither say which
   traffic is allowed nor run pods (Service, ConfigMap, RBAC, ...), and CronJob,
   whose pods exist only while one of its Jobs runs (Jobs are read when given).
   ``validate -v`` lists them; they change no verdict.
4. **unsupported**: anything else, custom resources included (Cilium's policies,
   Calico's storage CRDs ``crd.projectcalico.org/v1``, a ReplicationController whose pods sekisho would not
   expand, a kind of a group it has never heard of). sekisho cannot tell whether
   such an object changes what traffic is allowed, so it never ignores it in
   silence: every command warns, naming the object, the JSON outputs carry the
   warning, and the agent refuses to enforce such a source (it keeps its last
   good state and says why).
"""

from __future__ import annotations

from typing import Literal

from sekisho.records import Record, set_field


class KindInfo(Record):
    """A kind sekisho reads."""

    __slots__ = ("api_version", "cluster_scoped", "kind")

    api_version: str
    """The one apiVersion it is read at."""
    kind: str
    cluster_scoped: bool

    def __init__(self, api_version: str, kind: str, cluster_scoped: bool = False) -> None:
        set_field(self, "api_version", api_version)
        set_field(self, "kind", kind)
        set_field(self, "cluster_scoped", cluster_scoped)

    @property
    def group(self) -> str:
        return group_of(self.api_version)


READ: tuple[KindInfo, ...] = (
    KindInfo("v1", "Namespace", cluster_scoped=True),
    KindInfo("v1", "Node", cluster_scoped=True),
    KindInfo("v1", "Pod"),
    KindInfo("networking.k8s.io/v1", "NetworkPolicy"),
    KindInfo("apps/v1", "Deployment"),
    KindInfo("apps/v1", "ReplicaSet"),
    KindInfo("apps/v1", "StatefulSet"),
    KindInfo("apps/v1", "DaemonSet"),
    KindInfo("batch/v1", "Job"),
    KindInfo("policy.networking.k8s.io/v1alpha2", "ClusterNetworkPolicy", cluster_scoped=True),
    KindInfo("policy.networking.k8s.io/v1alpha1", "AdminNetworkPolicy", cluster_scoped=True),
    KindInfo(
        "policy.networking.k8s.io/v1alpha1", "BaselineAdminNetworkPolicy", cluster_scoped=True
    ),
    # Calico's own kinds (sekisho.model.calico); Calico's NetworkPolicy is told apart
    # from Kubernetes' by its apiVersion. ServiceAccounts are read for
    # serviceAccountSelector.
    KindInfo("projectcalico.org/v3", "NetworkPolicy"),
    KindInfo("projectcalico.org/v3", "GlobalNetworkPolicy", cluster_scoped=True),
    KindInfo("projectcalico.org/v3", "GlobalNetworkSet", cluster_scoped=True),
    KindInfo("projectcalico.org/v3", "HostEndpoint", cluster_scoped=True),
    KindInfo("projectcalico.org/v3", "NetworkSet"),
    KindInfo("projectcalico.org/v3", "StagedGlobalNetworkPolicy", cluster_scoped=True),
    KindInfo("projectcalico.org/v3", "StagedKubernetesNetworkPolicy"),
    KindInfo("projectcalico.org/v3", "StagedNetworkPolicy"),
    KindInfo("projectcalico.org/v3", "Tier", cluster_scoped=True),
    KindInfo("v1", "ServiceAccount"),
)
"""The kinds sekisho reads (a policy kind added here is no longer reported unsupported)."""

SKIPPED: dict[str, frozenset[str]] = {
    "": frozenset(
        {
            "Binding",
            "ComponentStatus",
            "ConfigMap",
            "Endpoints",
            "Event",
            "LimitRange",
            "PersistentVolume",
            "PersistentVolumeClaim",
            "PodTemplate",
            "ResourceQuota",
            "Secret",
            "Service",
        }
    ),
    "admissionregistration.k8s.io": frozenset(
        {
            "MutatingAdmissionPolicy",
            "MutatingAdmissionPolicyBinding",
            "MutatingWebhookConfiguration",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
            "ValidatingWebhookConfiguration",
        }
    ),
    "apiextensions.k8s.io": frozenset({"CustomResourceDefinition"}),
    "apiregistration.k8s.io": frozenset({"APIService"}),
    "apps": frozenset({"ControllerRevision"}),
    "autoscaling": frozenset({"HorizontalPodAutoscaler"}),
    "batch": frozenset({"CronJob"}),
    "certificates.k8s.io": frozenset({"CertificateSigningRequest", "ClusterTrustBundle"}),
    "coordination.k8s.io": frozenset({"Lease"}),
    "discovery.k8s.io": frozenset({"EndpointSlice"}),
    "events.k8s.io": frozenset({"Event"}),
    "flowcontrol.apiserver.k8s.io": frozenset({"FlowSchema", "PriorityLevelConfiguration"}),
    "networking.k8s.io": frozenset({"Ingress", "IngressClass", "IPAddress", "ServiceCIDR"}),
    "node.k8s.io": frozenset({"RuntimeClass"}),
    "policy": frozenset({"PodDisruptionBudget", "PodSecurityPolicy"}),
    "rbac.authorization.k8s.io": frozenset(
        {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    ),
    "scheduling.k8s.io": frozenset({"PriorityClass"}),
    "storage.k8s.io": frozenset(
        {"CSIDriver", "CSINode", "CSIStorageCapacity", "StorageClass", "VolumeAttachment"}
    ),
}
"""Built-in kinds, by API group, that change no verdict: neither policy nor pods."""

_BY_VERSION: dict[tuple[str, str], KindInfo] = {(k.api_version, k.kind): k for k in READ}
_BY_NAME: dict[str, list[KindInfo]] = {}
for _k in READ:
    _BY_NAME.setdefault(_k.kind, []).append(_k)


def group_of(api_version: str) -> str:
    """``apps/v1`` -> ``apps``; ``v1`` -> ``""`` (the core group)."""
    return api_version.rpartition("/")[0]


def is_kubernetes_group(group: str) -> bool:
    """The core group, the dotless built-in groups (``apps``, ``batch``, ``extensions``,
    ``policy``, ``autoscaling``) and ``*.k8s.io``; not a custom resource's group."""
    return "." not in group or group == "k8s.io" or group.endswith(".k8s.io")


Verdict = Literal["read", "wrong-version", "skipped", "unsupported"]


class Classified(Record):
    """What :func:`classify` made of an object's apiVersion and kind."""

    __slots__ = ("info", "verdict")

    verdict: Verdict
    info: KindInfo | None
    """The kind as read (``read``), or the version expected (``wrong-version``)."""

    def __init__(self, verdict: Verdict, info: KindInfo | None = None) -> None:
        set_field(self, "verdict", verdict)
        set_field(self, "info", info)


def classify(api_version: object, kind: str) -> Classified:
    """Which of the four rules of this module applies to an object."""
    version = api_version if isinstance(api_version, str) and api_version else None
    if version is not None:
        info = _BY_VERSION.get((version, kind))
        if info is not None:
            return Classified("read", info)
    group = group_of(version) if version is not None else None
    for info in _BY_NAME.get(kind, ()):
        # A kind sekisho reads, with no apiVersion, at another version of its group,
        # or at a built-in group of old (extensions/v1beta1 for NetworkPolicy): the
        # API server would reject it, so it is a problem, not a foreign kind.
        if (
            group is None
            or group == info.group
            or (is_kubernetes_group(group) and is_kubernetes_group(info.group))
        ):
            return Classified("wrong-version", info)
    if group is None:
        skipped = any(kind in kinds for kinds in SKIPPED.values())
    else:
        skipped = kind in SKIPPED.get(group, ())
    return Classified("skipped" if skipped else "unsupported")


def read_info(kind: str) -> KindInfo | None:
    """The first read kind of that name (for display: scope and default namespace)."""
    infos = _BY_NAME.get(kind)
    return infos[0] if infos else None


def unsupported_message(api_version: object, kind: str) -> str:
    version = api_version if isinstance(api_version, str) and api_version else "no apiVersion"
    hint = ""
    if isinstance(api_version, str) and group_of(api_version) == "crd.projectcalico.org":
        # Calico's storage CRDs, as kubectl shows them: not the v3 API Calico validates.
        hint = "; export Calico's objects with calicoctl get -o yaml (projectcalico.org/v3)"
    return (
        f"unsupported kind {kind} ({version}): sekisho does not read it, so what it says "
        f"is missing from every verdict (the agent refuses to enforce without it){hint}"
    )


def is_calico(kind: str, api_version: object) -> bool:
    """Whether an object of a read kind is one :mod:`sekisho.model.calico` reads (its
    NetworkPolicy only at Calico's apiVersion). Told here, so a cluster without Calico
    objects never imports that module."""
    if kind == "NetworkPolicy":
        info = _BY_VERSION.get((api_version, kind)) if isinstance(api_version, str) else None
        return info is not None and info.group == "projectcalico.org"
    return kind in CALICO_KINDS


def _versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for k in READ:
        out.setdefault(k.kind, k.api_version)
    return out


API_VERSIONS: dict[str, str] = _versions()
"""Kind name -> apiVersion of the read kinds (NetworkPolicy: Kubernetes' own, listed first)."""
CALICO_KINDS = frozenset(
    k.kind for k in READ if k.group == "projectcalico.org" and k.kind != "NetworkPolicy"
) | {"ServiceAccount"}
"""The kinds :mod:`sekisho.model.calico` reads besides Calico's NetworkPolicy."""
CLUSTER_WIDE_POLICY_KINDS = frozenset(k.kind for k in READ if k.group == "policy.networking.k8s.io")
"""The kinds :mod:`sekisho.model.npa` reads (cluster-wide policies)."""
CLUSTER_SCOPED = frozenset(k.kind for k in READ if k.cluster_scoped)
"""Names of the read kinds that are cluster-scoped."""
