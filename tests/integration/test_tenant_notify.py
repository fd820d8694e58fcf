"""Tenant changes reach the cache through NOTIFY, on the real PostgreSQL: no stale window.

A deactivation that commits while a lookup of that tenant is in flight must not
be undone by the lookup storing what it read; a tenant created after its id was
cached as unknown must be accepted within a second, not after the negative TTL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass

import asyncpg
import pytest

from tests.integration.test_migrations import alembic
from tests.streams import wait_until
from worker.ops.admin import create_tenant, hash_api_key, set_tenant_active
from worker.settings import Settings
from worker.tenants.cache import PostgresTenantSource, TenantCache, TenantListener, TenantStatus

pytestmark = pytest.mark.timeout(60)


class HeldSource:
    """The real source; while ``gate`` is set, a fetch waits for it after the query returned."""

    def __init__(self, inner: PostgresTenantSource) -> None:
        self.inner = inner
        self.gate: asyncio.Event | None = None
        self.fetched = asyncio.Event()

    async def fetch(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, bool]:
        found = await self.inner.fetch(ids)
        if self.gate is not None:
            self.fetched.set()
            await self.gate.wait()
        return found


@dataclass
class Tenants:
    settings: Settings
    pool: asyncpg.Pool
    source: HeldSource
    cache: TenantCache
    listener: TenantListener

    async def notified_beyond(self, count: int) -> None:
        """Wait until the listener has received more than ``count`` notifications."""

        async def received() -> bool:
            return self.listener.notifications > count

        await wait_until(received, 10, "the tenant_changed notification", every_s=0.01)


@pytest.fixture
async def tenants(settings: Settings) -> AsyncIterator[Tenants]:
    """A migrated database, a cache on it (TTLs far beyond the test) and its running listener."""
    await alembic(settings, "upgrade", "head")
    pool = await asyncpg.create_pool(settings.asyncpg_dsn, min_size=1, max_size=2)
    source = HeldSource(PostgresTenantSource(pool))
    cache = TenantCache(source, max_size=100, ttl_s=600, negative_ttl_s=600)
    listener = TenantListener(settings.asyncpg_dsn, cache)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.listening.wait(), 10)
        yield Tenants(settings, pool, source, cache, listener)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pool.close()


async def test_deactivation_during_a_lookup_is_not_lost(tenants: Tenants) -> None:
    """A NOTIFY received while a lookup is in flight wins: the next resolve says INACTIVE."""
    tenant = (await create_tenant(tenants.settings, "acme")).tenant_id
    seen = tenants.listener.notifications
    tenants.source.gate = gate = asyncio.Event()
    lookup = asyncio.create_task(tenants.cache.resolve([tenant]))
    await asyncio.wait_for(tenants.source.fetched.wait(), 10)  # the row read said: active
    await set_tenant_active(tenants.settings, tenant, False)
    await tenants.notified_beyond(seen)
    tenants.source.gate = None
    gate.set()
    # This batch may keep what it read: the read happened before the change committed.
    assert await lookup == {tenant: TenantStatus.ACTIVE}
    assert await tenants.cache.resolve([tenant]) == {tenant: TenantStatus.INACTIVE}


async def test_a_created_tenant_is_active_within_a_second(tenants: Tenants) -> None:
    """An id cached as unknown resolves ACTIVE within 1 s of its tenant's creation."""
    tenant = uuid.uuid4()
    assert await tenants.cache.resolve([tenant]) == {tenant: TenantStatus.UNKNOWN}
    await tenants.pool.execute(
        "INSERT INTO tenants (id, name, api_key) VALUES ($1, 'new', $2)",
        tenant, hash_api_key(str(tenant)),
    )  # fmt: skip

    async def active() -> bool:
        return await tenants.cache.resolve([tenant]) == {tenant: TenantStatus.ACTIVE}

    await wait_until(active, 1.0, "the new tenant to resolve active", every_s=0.01)
