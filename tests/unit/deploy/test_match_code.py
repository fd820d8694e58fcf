"""The manifests agree with the code: ports, routes, settings, grace period, CLI, user, scaling."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from typer.testing import CliRunner

from tests.unit.deploy.manifests import (
    DEPLOY,
    OVERLAY,
    ROOT,
    Manifest,
    config,
    find,
    kustomization,
    partitions,
    patches,
    pod_spec,
    secrets,
)
from worker.cli import app
from worker.consume.consumer import COMMIT_TIMEOUT_S, STOP_TIMEOUT_S
from worker.service.health import HealthServer, Readiness
from worker.service.metrics import Metrics
from worker.service.stopping import DRAIN_MARGIN_S, POOL_CLOSE_S
from worker.settings import Settings

SETTINGS = {name.upper() for name in Settings.model_fields}
WORKLOADS = ("Deployment", "Job")
# KAFKA_SASL_MECHANISM -> the sasl mode of KEDA's kafka scaler.
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}


def containers() -> Iterator[Manifest]:
    for kind in WORKLOADS:
        yield from pod_spec(kind)["containers"]


def worker() -> Manifest:
    (container,) = pod_spec("Deployment")["containers"]
    return container


def configured() -> Settings:
    """The worker's settings as the ConfigMap and the example Secret make them."""
    values = {name.lower(): value for name, value in config().items()}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def get(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: probe\r\n\r\n".encode())
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    writer.close()
    await writer.wait_closed()
    return status


async def test_probes_hit_the_worker_routes_and_liveness_survives_outages() -> None:
    """Every probe path is served; during a PostgreSQL and broker outage only /readyz fails."""
    container = worker()
    probes = {name: container[name]["httpGet"] for name in
              ("startupProbe", "livenessProbe", "readinessProbe")}  # fmt: skip
    assert {p["port"] for p in probes.values()} == {"http"}
    readiness = Readiness()
    server = HealthServer(readiness, Metrics(), "127.0.0.1", 0)
    await server.start()
    try:
        readiness.clear(Readiness.STARTING)
        for reason in (Readiness.DATABASE, Readiness.BROKER):
            readiness.fail(reason)
        statuses = {name: await get(server.port, p["path"]) for name, p in probes.items()}
        metrics_path = pod_spec_annotations()["prometheus.io/path"]
        assert await get(server.port, metrics_path) == 200
    finally:
        await server.stop()
    assert statuses == {"startupProbe": 200, "livenessProbe": 200, "readinessProbe": 503}


def pod_spec_annotations() -> dict[str, str]:
    annotations: dict[str, str] = find("Deployment")["spec"]["template"]["metadata"]["annotations"]
    return annotations


def test_ports_are_the_worker_http_port() -> None:
    """Container port, scrape annotation, NetworkPolicy ingress and HTTP_PORT are one port."""
    port = Settings.model_fields["http_port"].default
    assert configured().http_port == port
    assert [(p["name"], p["containerPort"]) for p in worker()["ports"]] == [("http", port)]
    assert pod_spec_annotations()["prometheus.io/port"] == str(port)
    ingress = find("NetworkPolicy")["spec"]["ingress"]
    assert [p["port"] for rule in ingress for p in rule["ports"]] == [port]


def test_every_environment_variable_is_a_setting() -> None:
    """ConfigMap keys, Secret keys, env entries and secret references all name Settings fields."""
    names = set(find("ConfigMap")["data"]).union(*secrets().values())
    for container in containers():
        names |= {entry["name"] for entry in container.get("env", [])}
        names |= {
            entry["valueFrom"]["secretKeyRef"]["key"]
            for entry in container.get("env", [])
            if "secretKeyRef" in entry.get("valueFrom", {})
        }
    names |= {ref["key"] for ref in find("TriggerAuthentication")["spec"]["secretTargetRef"]}
    names |= {entry["name"] for entry in static_membership_env()}
    assert names - SETTINGS == set()
    assert set(secrets()["log-ingest"]) == {"DATABASE_URL", "KAFKA_SASL_USERNAME",
                                            "KAFKA_SASL_PASSWORD"}  # fmt: skip
    assert set(secrets()["log-ingest-migrate"]) == {"DATABASE_URL"}


def test_configuration_is_valid_for_the_worker() -> None:
    """The ConfigMap and Secret load as Settings (no variable rejected)."""
    settings = configured()
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_sasl_password is not None


def static_membership_env() -> list[Manifest]:
    """The env entries the static-membership component adds to the worker container."""
    (patch,) = patches(DEPLOY / "static-membership")
    assert (patch["kind"], patch["metadata"]["name"]) == ("Deployment", "log-ingest")
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    assert container["name"] == worker()["name"]
    env: list[Manifest] = container["env"]
    return env


def test_static_membership_is_opt_in_and_comes_from_the_pod_name() -> None:
    """The base is dynamic; the component sets KAFKA_GROUP_INSTANCE_ID to the pod's name."""
    assert "KAFKA_GROUP_INSTANCE_ID" not in {e["name"] for e in worker().get("env", [])}
    (entry,) = static_membership_env()
    assert entry["name"] == "KAFKA_GROUP_INSTANCE_ID"
    assert entry["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def shutdown_budget_s(settings: Settings) -> float:
    """The longest shutdown of worker/service/app.py, from the settings and the code's bounds."""
    return (
        settings.batch_max_wait_ms / 1000  # the batch being gathered closes
        + settings.shutdown_grace_s  # the batch in hand is written
        + DRAIN_MARGIN_S  # then the loop is cancelled
        + COMMIT_TIMEOUT_S  # the last offsets are told to Kafka
        + STOP_TIMEOUT_S  # LeaveGroup and close, abandoned when the coordinator does not answer
        + POOL_CLOSE_S  # the pool's connections are closed, or dropped
    )


def test_grace_period_covers_the_shutdown_budget() -> None:
    """terminationGracePeriodSeconds is at least the worker's longest shutdown."""
    grace = pod_spec("Deployment")["terminationGracePeriodSeconds"]
    budget = shutdown_budget_s(configured())
    assert budget <= grace
    assert shutdown_budget_s(Settings(_env_file=None)) <= grace  # type: ignore[call-arg]
    assert grace - budget < 15, "a grace period far above the budget hides a wrong derivation"


def test_commands_exist_in_the_cli() -> None:
    """The Job runs `migrate` and the Deployment `run`, through the image's entrypoint."""
    assert [c["args"] for c in pod_spec("Job")["containers"]] == [["migrate"]]
    assert worker()["args"] == ["run"]
    for container in containers():
        assert "command" not in container  # the image's ENTRYPOINT (log-ingest) stays
        result = CliRunner().invoke(app, [*container["args"], "--help"])
        assert result.exit_code == 0, result.output


def test_pods_run_as_the_image_user_with_no_privileges() -> None:
    """runAsUser is the Dockerfile's uid; root filesystem read-only, no capabilities."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid = int(re.search(r"useradd .*--uid (\d+)", dockerfile)[1])  # type: ignore[index]
    user = re.search(r"useradd .* (\w+)\s*$", dockerfile, re.MULTILINE)[1]  # type: ignore[index]
    assert re.search(rf"^USER {user}$", dockerfile, re.MULTILINE)
    for kind in WORKLOADS:
        context = pod_spec(kind)["securityContext"]
        assert (context["runAsUser"], context["runAsNonRoot"]) == (uid, True), kind
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod_spec(kind)["automountServiceAccountToken"] is False
    for container in containers():
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
        }


def test_replicas_never_exceed_the_partitions() -> None:
    """Replica counts and autoscaler maxima stay at or below the partition count."""
    scaled = find("ScaledObject")["spec"]
    hpa = find("HorizontalPodAutoscaler", DEPLOY / "alternatives")["spec"]
    (overlay,) = kustomization(OVERLAY)["replicas"]
    counts = [find("Deployment")["spec"]["replicas"], overlay["count"]]
    assert scaled["maxReplicaCount"] <= partitions()
    assert hpa["maxReplicas"] <= partitions()
    assert all(scaled["minReplicaCount"] <= n <= scaled["maxReplicaCount"] for n in counts)
    strategy = find("Deployment")["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxSurge"] == 0  # a surge pod past the partition count never turns ready


def test_keda_trigger_matches_the_worker_configuration() -> None:
    """KEDA watches the workers' group on their broker, with their security settings."""
    settings = configured()
    (trigger,) = find("ScaledObject")["spec"]["triggers"]
    metadata = trigger["metadata"]
    assert metadata["consumerGroup"] == settings.kafka_group_id
    assert metadata["bootstrapServers"] == settings.kafka_bootstrap_servers
    assert metadata.get("topic") in (None, settings.kafka_action_topic, settings.kafka_audit_topic)
    assert metadata["sasl"] == KEDA_SASL[settings.kafka_sasl_mechanism or "PLAIN"]
    assert (metadata["tls"] == "enable") == settings.kafka_security_protocol.endswith("SSL")
    hpa = find("HorizontalPodAutoscaler", DEPLOY / "alternatives")["spec"]
    assert hpa["metrics"][0]["external"]["target"]["averageValue"] == metadata["lagThreshold"]


def test_hpa_scales_on_a_metric_the_worker_exports() -> None:
    """The HPA's external metric is the worker's lag gauge, by its Prometheus name."""
    hpa = find("HorizontalPodAutoscaler", DEPLOY / "alternatives")["spec"]
    (metric,) = hpa["metrics"]
    exported = {family.name for family in Metrics().registry.collect()}
    assert metric["external"]["metric"]["name"] in exported


def test_network_policy_reaches_the_configured_servers() -> None:
    """Egress opens DNS, the broker port of KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL's port."""
    settings = configured()
    egress = {
        (p["protocol"], p["port"]) for rule in find("NetworkPolicy")["spec"]["egress"]
        for p in rule["ports"]
    }  # fmt: skip
    broker_ports = {int(s.rsplit(":", 1)[1]) for s in settings.kafka_bootstrap_servers.split(",")}
    database_port = urlsplit(settings.database_url).port or 5432
    wanted = {("UDP", 53), ("TCP", 53), ("TCP", database_port)}
    assert egress == wanted | {("TCP", port) for port in broker_ports}


@pytest.mark.parametrize("kind", WORKLOADS)
def test_workloads_read_the_configmap_and_the_secret(kind: str) -> None:
    """Settings come from the ConfigMap; secrets from the Secret, never inline values."""
    (container,) = pod_spec(kind)["containers"]
    sources = [next(iter(s.values()))["name"] for s in container.get("envFrom", [])]
    assert find("ConfigMap")["metadata"]["name"] in sources
    for entry in container.get("env", []):
        assert "value" not in entry, entry["name"]
        ref = entry["valueFrom"].get("secretKeyRef")
        assert ref is None or ref["key"] in secrets()[ref["name"]]
    assert set(sources) - {"log-ingest"} == set()


def test_the_job_migrates_as_the_schema_owner() -> None:
    """The Job's DATABASE_URL is the migrator's; the workers' is the worker role's."""
    (container,) = pod_spec("Job")["containers"]
    (entry,) = container["env"]
    ref = entry["valueFrom"]["secretKeyRef"]
    assert (entry["name"], ref["name"], ref["key"]) == (
        "DATABASE_URL", "log-ingest-migrate", "DATABASE_URL",
    )  # fmt: skip
    assert "log_ingest_migrator" in secrets()["log-ingest-migrate"]["DATABASE_URL"]
    assert "log_ingest_worker" in secrets()["log-ingest"]["DATABASE_URL"]
    for name in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"):  # the Job needs no Kafka secret
        assert name not in {e["name"] for e in container["env"]}
