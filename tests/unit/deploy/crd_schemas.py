"""Small JSON schemas of the custom resources in deploy/kubernetes, from their projects' docs.

Kubernetes' own schemas do not know KEDA's ScaledObject and TriggerAuthentication or the
Prometheus Operator's PodMonitor. These name the fields those docs define (what the
manifests use and their neighbours), and reject anything else, so that a misspelt field
fails here instead of being ignored by the cluster. KEDA's trigger metadata is a map of
strings: a YAML number or boolean there is an error.
"""

from __future__ import annotations

from typing import Any

_STRING = {"type": "string"}
_INT = {"type": "integer", "minimum": 0}
_NUMBER_TEXT = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}
_BOOL_TEXT = {"type": "string", "enum": ["true", "false"]}
_LABELS = {"type": "object", "additionalProperties": _STRING}


def _resource(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": _STRING,
                    "namespace": _STRING,
                    "labels": _LABELS,
                    "annotations": _LABELS,
                },
                "additionalProperties": False,
            },
            "spec": spec,
        },
    }


def _closed(required: list[str], **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
    }


KAFKA_METADATA = _closed(
    ["bootstrapServers", "consumerGroup", "lagThreshold"],
    bootstrapServers=_STRING,
    consumerGroup=_STRING,
    topic=_STRING,
    lagThreshold=_NUMBER_TEXT,
    activationLagThreshold=_NUMBER_TEXT,
    offsetResetPolicy={"enum": ["earliest", "latest"]},
    allowIdleConsumers=_BOOL_TEXT,
    scaleToZeroOnInvalidOffset=_BOOL_TEXT,
    excludePersistentLag=_BOOL_TEXT,
    limitToPartitionsWithLag=_BOOL_TEXT,
    partitionLimitation=_STRING,
    version=_STRING,
    sasl={"enum": ["none", "plaintext", "scram_sha256", "scram_sha512", "oauthbearer", "gssapi"]},
    tls={"enum": ["enable", "disable"]},
    unsafeSsl=_BOOL_TEXT,
)

_TRIGGER = {
    "type": "object",
    "required": ["type", "metadata"],
    "additionalProperties": False,
    "properties": {
        "type": _STRING,
        "name": _STRING,
        "metadata": {"type": "object", "additionalProperties": _STRING},
        "authenticationRef": _closed(
            ["name"],
            name=_STRING,
            kind={"enum": ["TriggerAuthentication", "ClusterTriggerAuthentication"]},
        ),
        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
        "useCachedMetrics": {"type": "boolean"},
    },
    # A kafka trigger's metadata is checked field by field.
    "if": {"properties": {"type": {"const": "kafka"}}},
    "then": {"properties": {"metadata": KAFKA_METADATA}},
}

SCALED_OBJECT = _resource(
    "keda.sh/v1alpha1",
    "ScaledObject",
    _closed(
        ["scaleTargetRef", "triggers"],
        scaleTargetRef=_closed(
            ["name"], name=_STRING, kind=_STRING, apiVersion=_STRING, envSourceContainerName=_STRING
        ),
        pollingInterval=_INT,
        cooldownPeriod=_INT,
        initialCooldownPeriod=_INT,
        idleReplicaCount=_INT,
        minReplicaCount=_INT,
        maxReplicaCount=_INT,
        fallback=_closed(
            ["failureThreshold", "replicas"], failureThreshold=_INT, replicas=_INT, behavior=_STRING
        ),
        advanced=_closed(
            [],
            restoreToOriginalReplicaCount={"type": "boolean"},
            horizontalPodAutoscalerConfig=_closed([], name=_STRING, behavior={"type": "object"}),
            scalingModifiers={"type": "object"},
        ),
        triggers={"type": "array", "minItems": 1, "items": _TRIGGER},
    ),
)

TRIGGER_AUTHENTICATION = _resource(
    "keda.sh/v1alpha1",
    "TriggerAuthentication",
    _closed(
        [],
        secretTargetRef={
            "type": "array",
            "items": _closed(
                ["parameter", "name", "key"], parameter=_STRING, name=_STRING, key=_STRING
            ),
        },
        env={"type": "array"},
        podIdentity={"type": "object"},
    ),
)

POD_MONITOR = _resource(
    "monitoring.coreos.com/v1",
    "PodMonitor",
    _closed(
        ["selector", "podMetricsEndpoints"],
        selector=_closed([], matchLabels=_LABELS, matchExpressions={"type": "array"}),
        namespaceSelector={"type": "object"},
        jobLabel=_STRING,
        podMetricsEndpoints={
            "type": "array",
            "minItems": 1,
            "items": _closed(
                [],
                port=_STRING,
                path=_STRING,
                interval=_STRING,
                scrapeTimeout=_STRING,
                scheme={"enum": ["http", "https"]},
            ),
        },
    ),
)

# kind -> schema, for every custom resource kind the manifests may hold.
CUSTOM_RESOURCES = {
    "ScaledObject": SCALED_OBJECT,
    "TriggerAuthentication": TRIGGER_AUTHENTICATION,
    "PodMonitor": POD_MONITOR,
}
