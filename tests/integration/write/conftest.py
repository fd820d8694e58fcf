"""Fixtures of the write stage's tests: a migrated pool prepared as the worker's, the sink."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.integration.test_migrations import alembic
from tests.integration.write.events import GROUP, add_tenant
from worker.settings import Settings
from worker.write.connection import keep_session, prepare_connection
from worker.write.sink import PostgresSink


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool on this test's database, migrated to head."""
    await alembic(settings, "upgrade", "head")
    pool = await asyncpg.create_pool(
        settings.database_url, min_size=1, max_size=4, init=prepare_connection, reset=keep_session
    )
    try:
        yield pool
    finally:
        # A test that failed holding a connection must not hang the teardown.
        try:
            await asyncio.wait_for(pool.close(), timeout=10)
        except TimeoutError:
            pool.terminate()


@pytest.fixture
def sink(pool: asyncpg.Pool) -> PostgresSink:
    """The sink under test; rejects keep at most 16 bytes of the raw message."""
    return PostgresSink(pool, group_id=GROUP, reject_raw_max_bytes=16)


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> uuid.UUID:
    """An active tenant."""
    return await add_tenant(pool)
