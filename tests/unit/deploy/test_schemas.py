"""Every manifest of deploy/kubernetes validates: Kubernetes' schemas (pinned), or the CRDs'."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest

from tests.unit.deploy.crd_schemas import CUSTOM_RESOURCES
from tests.unit.deploy.manifests import (
    BASE,
    DEPLOY,
    KUBERNETES_VERSIONS,
    OVERLAY,
    Manifest,
    all_documents,
    find,
    kustomization,
    kustomizations,
    render,
)

DOCUMENTS = all_documents()
BUILT_IN = [(p, d) for p, d in DOCUMENTS if d["kind"] not in CUSTOM_RESOURCES]
CUSTOM = [(p, d) for p, d in DOCUMENTS if d["kind"] in CUSTOM_RESOURCES]


def _id(entry: tuple[Path, Manifest]) -> str:
    path, doc = entry
    return f"{path.relative_to(DEPLOY)}:{doc['kind']}"


def validate(doc: Manifest) -> None:
    """Kubernetes' schemas (strict: unknown fields fail) or the custom resource's schema."""
    if doc["kind"] in CUSTOM_RESOURCES:
        jsonschema.Draft202012Validator(CUSTOM_RESOURCES[doc["kind"]]).validate(doc)
        return
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("entry", BUILT_IN, ids=_id)
def test_manifest_validates_against_kubernetes(entry: tuple[Path, Manifest], version: str) -> None:
    """The resource matches the API schema of the pinned Kubernetes version, strictly."""
    kubernetes_validate.validate(entry[1], version, strict=True)


@pytest.mark.parametrize("entry", CUSTOM, ids=_id)
def test_custom_resource_validates_against_its_schema(entry: tuple[Path, Manifest]) -> None:
    """ScaledObject, TriggerAuthentication and PodMonitor match the fields their docs define."""
    jsonschema.Draft202012Validator(CUSTOM_RESOURCES[entry[1]["kind"]]).validate(entry[1])


def test_every_kind_has_a_schema() -> None:
    """No manifest escapes validation: Kubernetes knows its kind, or the tests have a schema."""
    unknown = []
    for path, doc in BUILT_IN:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[-1], strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            unknown.append(_id((path, doc)))
    assert unknown == []
    assert {doc["kind"] for _, doc in CUSTOM} == set(CUSTOM_RESOURCES)


def test_strict_validation_rejects_an_unknown_field() -> None:
    """A misspelt field fails validation instead of being ignored by the API server."""
    deployment = copy.deepcopy(find("Deployment"))
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 70
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize(
    ("field", "value"),
    [("lagThreshold", 450000), ("lagthreshold", "450000"), ("allowIdleConsumers", False)],
)
def test_keda_schema_rejects_bad_trigger_metadata(field: str, value: object) -> None:
    """A number or boolean where KEDA wants a string, or an unknown key, fails."""
    scaled = copy.deepcopy(find("ScaledObject"))
    scaled["spec"]["triggers"][0]["metadata"][field] = value
    with pytest.raises(jsonschema.ValidationError):
        validate(scaled)


@pytest.mark.parametrize("missing", ["bootstrapServers", "consumerGroup", "lagThreshold"])
def test_keda_schema_requires_the_kafka_fields(missing: str) -> None:
    """A kafka trigger without its broker, group or threshold fails."""
    scaled = copy.deepcopy(find("ScaledObject"))
    del scaled["spec"]["triggers"][0]["metadata"][missing]
    with pytest.raises(jsonschema.ValidationError):
        validate(scaled)


@pytest.mark.parametrize("directory", kustomizations(), ids=lambda p: str(p.parent.name))
def test_kustomization_lists_every_file_beside_it(directory: Path) -> None:
    """Each kustomization names every manifest of its folder, and only files that exist."""
    folder = directory.parent
    listed = [r for r in kustomization(folder).get("resources", []) if not r.startswith("..")]
    assert all((folder / name).is_file() for name in listed), listed
    beside = {p.name for p in folder.glob("*.yaml") if p.name != directory.name}
    assert set(listed) == beside


def test_the_hpa_alternative_stays_out_of_the_base() -> None:
    """The base scales with KEDA only; the HPA lives in a component that removes KEDA's objects."""
    base_kinds = {doc["kind"] for path, doc in DOCUMENTS if path.parent == BASE}
    assert "ScaledObject" in base_kinds
    assert "HorizontalPodAutoscaler" not in base_kinds
    assert {doc["kind"] for path, doc in DOCUMENTS if path.parent == OVERLAY} == {"Secret"}


def test_example_overlay_renders_valid_manifests() -> None:
    """kustomize builds the example: the released image, 3 replicas, and valid resources."""
    rendered = render(OVERLAY)
    for doc in rendered:
        validate(doc)
    kinds = sorted(doc["kind"] for doc in rendered)
    assert "ScaledObject" in kinds
    assert "HorizontalPodAutoscaler" not in kinds
    deployment = next(doc for doc in rendered if doc["kind"] == "Deployment")
    job = next(doc for doc in rendered if doc["kind"] == "Job")
    assert deployment["spec"]["replicas"] == 3
    images = {
        c["image"] for w in (deployment, job) for c in w["spec"]["template"]["spec"]["containers"]
    }
    assert images == {"registry.example.com/log-ingest:0.1.0"}


def test_components_apply_to_the_example(tmp_path: Path) -> None:
    """With every component: the HPA instead of KEDA, the PodMonitor, static membership."""
    # kustomize takes relative paths only; it may climb out of the overlay's folder.
    root = Path(os.path.relpath(DEPLOY, tmp_path))
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{root / 'overlays' / 'example'}]\n"
        f"components: [{root / 'alternatives'}, {root / 'optional'}, "
        f"{root / 'static-membership'}]\n"
    )
    rendered = render(tmp_path)
    for doc in rendered:
        validate(doc)
    kinds = {doc["kind"] for doc in rendered}
    assert {"HorizontalPodAutoscaler", "PodMonitor", "Deployment", "Job"} <= kinds
    assert not kinds & {"ScaledObject", "TriggerAuthentication"}
    deployment = next(doc for doc in rendered if doc["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert [e["name"] for e in container["env"]] == ["KAFKA_GROUP_INSTANCE_ID"]
    assert container["envFrom"]  # the merge kept the ConfigMap and the Secret
