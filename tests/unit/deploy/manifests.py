"""The Kubernetes manifests of deploy/kubernetes, loaded for the tests (no cluster needed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy" / "kubernetes"
BASE = DEPLOY / "base"
OVERLAY = DEPLOY / "overlays" / "example"
KUSTOMIZATION = "kustomization.yaml"
# The oldest Kubernetes the manifests claim (podFailurePolicy and
# unhealthyPodEvictionPolicy are GA from 1.31) and the newest whose schemas are pinned.
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
PARTITIONS_ANNOTATION = "log-ingest/topic-partitions"

Manifest = dict[str, Any]


def manifest_files() -> list[Path]:
    """Every YAML file of deploy/kubernetes that holds resources (not kustomizations)."""
    return sorted(p for p in DEPLOY.rglob("*.yaml") if p.name != KUSTOMIZATION)


def kustomizations() -> list[Path]:
    return sorted(DEPLOY.rglob(KUSTOMIZATION))


def documents(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def all_documents() -> list[tuple[Path, Manifest]]:
    return [(path, doc) for path in manifest_files() for doc in documents(path)]


def find(kind: str, directory: Path = BASE) -> Manifest:
    """The one resource of ``kind`` in the files of ``directory`` (not below it)."""
    found = [
        doc
        for path in sorted(directory.glob("*.yaml"))
        if path.name != KUSTOMIZATION
        for doc in documents(path)
        if doc["kind"] == kind
    ]
    assert len(found) == 1, f"{len(found)} {kind} in {directory.relative_to(ROOT)}"
    return found[0]


def kustomization(directory: Path) -> Manifest:
    loaded: Manifest = yaml.safe_load((directory / KUSTOMIZATION).read_text())
    return loaded


def patches(directory: Path) -> list[Manifest]:
    """The inline patches of a kustomization or component, parsed."""
    return [yaml.safe_load(entry["patch"]) for entry in kustomization(directory)["patches"]]


def secrets() -> dict[str, dict[str, str]]:
    """The example overlay's Secrets: name -> their keys and values."""
    found = [doc for doc in documents(OVERLAY / "secret.yaml") if doc["kind"] == "Secret"]
    return {doc["metadata"]["name"]: doc["stringData"] for doc in found}


def config() -> dict[str, str]:
    """The ConfigMap's data and the workers' Secret: the environment of a worker."""
    data: dict[str, str] = find("ConfigMap")["data"]
    return data | secrets()["log-ingest"]


def pod_spec(kind: str) -> Manifest:
    spec: Manifest = find(kind)["spec"]["template"]["spec"]
    return spec


def partitions() -> int:
    return int(find("Deployment")["metadata"]["annotations"][PARTITIONS_ANNOTATION])


def render(directory: Path) -> list[Manifest]:
    """``kubectl kustomize directory``: what kustomize makes of it (skipped without kubectl)."""
    import pytest

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]
