"""Session-wide real services and a clean database per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from tests.services import Services, choose, log
from worker.settings import Settings


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """PostgreSQL and Kafka for the whole session; says which of the three ways it used."""
    with choose()() as found:
        log.warning("test services: %s; postgres %s; kafka %s",
                    found.source, found.postgres_url, found.kafka_bootstrap)  # fmt: skip
        yield found


def with_database(url: str, database: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture
async def database_url(services: Services) -> AsyncIterator[str]:
    """A fresh empty database for one test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(services.postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(services.postgres_url, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def settings(database_url: str, services: Services) -> Settings:
    """Settings pointing at this test's database and the session's broker."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        kafka_bootstrap_servers=services.kafka_bootstrap,
    )
