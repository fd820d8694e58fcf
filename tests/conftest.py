"""Session-wide real services and a clean database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.faults.conftest import prepare_stream
from tests.faults.harness import Workers
from tests.services import Services, choose, log
from worker.settings import Settings

# "which of the three ways" of each pytest process that started services: under xdist the
# workers hand theirs to the controller, which lists them all at the end of the run.
_SERVICES_USED = "test_services_used"
_services_used: list[str] = []


@pytest.fixture(scope="session")
def services(request: pytest.FixtureRequest) -> Iterator[Services]:
    """PostgreSQL and Kafka for the whole session; says which of the three ways it used."""
    with choose()() as found:
        line = f"{found.source}; postgres {found.postgres_url}; kafka {found.kafka_bootstrap}"
        log.warning("test services: %s", line)
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        _services_used.append(f"{worker}: {line}" if worker else line)
        workeroutput = getattr(request.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[_SERVICES_USED] = list(_services_used)
        yield found


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """xdist's controller: note what a worker that finished used."""
    _services_used.extend(getattr(node, "workeroutput", {}).get(_SERVICES_USED, []))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _services_used and not hasattr(terminalreporter.config, "workerinput"):
        terminalreporter.write_sep("-", "test services")
        for line in sorted(_services_used):
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow scenarios first, the rest in collection order: as xdist hands each test to the
    first process free (`make test`), the longest start at once instead of last."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


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
    ).model_copy(update=services.group_timings)


@pytest.fixture
async def stream(settings: Settings) -> Settings:
    """A migrated database of the test's own, with topics of three partitions and a group."""
    return await prepare_stream(settings)


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[Workers]:
    """Starts `log-ingest run` processes; kills (by PID) whatever still runs at the end."""
    started = Workers(tmp_path)
    try:
        yield started
    finally:
        await started.stop_all()
