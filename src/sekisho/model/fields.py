"""The field names of the Kubernetes objects sekisho reads, for strict field validation.

``kubectl apply`` with strict field validation rejects a field the schema does
not know; so does sekisho. Fields sekisho does not use (``image``, ``resources``,
``affinity``...) are accepted by name and not looked into; the fields it uses are
type-checked where they are read. The sets follow the Kubernetes 1.30 API.
"""

from __future__ import annotations

from sekisho.model import kinds as _kinds

TOP = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})

METADATA = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
        "clusterName",
    }
)

LABEL_SELECTOR = frozenset({"matchLabels", "matchExpressions"})
SELECTOR_REQUIREMENT = frozenset({"key", "operator", "values"})

NETWORK_POLICY_SPEC = frozenset({"podSelector", "policyTypes", "ingress", "egress"})
INGRESS_RULE = frozenset({"from", "ports"})
EGRESS_RULE = frozenset({"to", "ports"})
PEER = frozenset({"podSelector", "namespaceSelector", "ipBlock"})
IP_BLOCK = frozenset({"cidr", "except"})
POLICY_PORT = frozenset({"protocol", "port", "endPort"})

POD_SPEC = frozenset(
    {
        "activeDeadlineSeconds",
        "affinity",
        "automountServiceAccountToken",
        "containers",
        "dnsConfig",
        "dnsPolicy",
        "enableServiceLinks",
        "ephemeralContainers",
        "hostAliases",
        "hostIPC",
        "hostNetwork",
        "hostPID",
        "hostUsers",
        "hostname",
        "imagePullSecrets",
        "initContainers",
        "nodeName",
        "nodeSelector",
        "os",
        "overhead",
        "preemptionPolicy",
        "priority",
        "priorityClassName",
        "readinessGates",
        "resourceClaims",
        "resources",
        "restartPolicy",
        "runtimeClassName",
        "schedulerName",
        "schedulingGates",
        "securityContext",
        "serviceAccount",
        "serviceAccountName",
        "setHostnameAsFQDN",
        "shareProcessNamespace",
        "subdomain",
        "terminationGracePeriodSeconds",
        "tolerations",
        "topologySpreadConstraints",
        "volumes",
    }
)

CONTAINER = frozenset(
    {
        "args",
        "command",
        "env",
        "envFrom",
        "image",
        "imagePullPolicy",
        "lifecycle",
        "livenessProbe",
        "name",
        "ports",
        "readinessProbe",
        "resizePolicy",
        "resources",
        "restartPolicy",
        "securityContext",
        "startupProbe",
        "stdin",
        "stdinOnce",
        "terminationMessagePath",
        "terminationMessagePolicy",
        "tty",
        "volumeDevices",
        "volumeMounts",
        "workingDir",
    }
)

CONTAINER_PORT = frozenset({"containerPort", "hostIP", "hostPort", "name", "protocol"})

POD_STATUS = frozenset(
    {
        "conditions",
        "containerStatuses",
        "ephemeralContainerStatuses",
        "hostIP",
        "hostIPs",
        "initContainerStatuses",
        "message",
        "nominatedNodeName",
        "phase",
        "podIP",
        "podIPs",
        "qosClass",
        "reason",
        "resize",
        "resourceClaimStatuses",
        "startTime",
    }
)
POD_IP = frozenset({"ip"})

NODE_SPEC = frozenset(
    {"configSource", "externalID", "podCIDR", "podCIDRs", "providerID", "taints", "unschedulable"}
)
TAINT = frozenset({"key", "value", "effect", "timeAdded"})
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
NODE_STATUS = frozenset(
    {
        "addresses",
        "allocatable",
        "capacity",
        "conditions",
        "config",
        "daemonEndpoints",
        "features",
        "images",
        "nodeInfo",
        "phase",
        "runtimeHandlers",
        "volumesAttached",
        "volumesInUse",
    }
)
NODE_ADDRESS = frozenset({"type", "address"})

NAMESPACE_SPEC = frozenset({"finalizers"})

POD_TEMPLATE = frozenset({"metadata", "spec"})

WORKLOAD_SPEC: dict[str, frozenset[str]] = {
    "Deployment": frozenset(
        {
            "minReadySeconds",
            "paused",
            "progressDeadlineSeconds",
            "replicas",
            "revisionHistoryLimit",
            "selector",
            "strategy",
            "template",
        }
    ),
    "ReplicaSet": frozenset({"minReadySeconds", "replicas", "selector", "template"}),
    "StatefulSet": frozenset(
        {
            "minReadySeconds",
            "ordinals",
            "persistentVolumeClaimRetentionPolicy",
            "podManagementPolicy",
            "replicas",
            "revisionHistoryLimit",
            "selector",
            "serviceName",
            "template",
            "updateStrategy",
            "volumeClaimTemplates",
        }
    ),
    "DaemonSet": frozenset(
        {"minReadySeconds", "revisionHistoryLimit", "selector", "template", "updateStrategy"}
    ),
    "Job": frozenset(
        {
            "activeDeadlineSeconds",
            "backoffLimit",
            "backoffLimitPerIndex",
            "completionMode",
            "completions",
            "managedBy",
            "manualSelector",
            "maxFailedIndexes",
            "parallelism",
            "podFailurePolicy",
            "podReplacementPolicy",
            "selector",
            "successPolicy",
            "suspend",
            "template",
            "ttlSecondsAfterFinished",
        }
    ),
}

# The registry of kinds is sekisho.model.kinds; these names stay for the modules that read them.
API_VERSIONS = _kinds.API_VERSIONS
CLUSTER_SCOPED = _kinds.CLUSTER_SCOPED
CALICO_KINDS = _kinds.CALICO_KINDS
