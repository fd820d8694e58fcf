"""The migrated ingest state the write stage relies on: the tenant trigger, the downgrade."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.integration.test_migrations import alembic
from tests.integration.write.events import add_tenant
from worker.settings import Settings


async def next_notification(queue: asyncio.Queue[str]) -> str:
    return await asyncio.wait_for(queue.get(), timeout=10)


async def test_tenant_trigger_notifies_on_deactivate_and_delete(pool: asyncpg.Pool) -> None:
    """UPDATE of is_active or api_key and DELETE notify tenant_changed; other updates do not."""
    renamed, changed = await add_tenant(pool), await add_tenant(pool)
    queue: asyncio.Queue[str] = asyncio.Queue()

    def received(*args: object) -> None:
        queue.put_nowait(str(args[3]))  # (connection, pid, channel, payload)

    async with pool.acquire() as listener:
        await listener.add_listener("tenant_changed", received)
        try:
            # Notifications arrive in commit order: a notify for the rename would come first.
            await pool.execute("UPDATE tenants SET name = 'renamed' WHERE id = $1", renamed)
            await pool.execute("UPDATE tenants SET is_active = false WHERE id = $1", changed)
            assert await next_notification(queue) == str(changed)
            await pool.execute("UPDATE tenants SET api_key = 'rotated' WHERE id = $1", changed)
            assert await next_notification(queue) == str(changed)
            await pool.execute("DELETE FROM tenants WHERE id = $1", renamed)
            assert await next_notification(queue) == str(renamed)
        finally:
            await listener.remove_listener("tenant_changed", received)


async def test_downgrade_removes_ingest_state(settings: Settings, pool: asyncpg.Pool) -> None:
    """Downgrading to 001 drops both tables, the trigger and its function."""
    await alembic(settings, "downgrade", "001")
    tables = {row[0] for row in await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE tablename LIKE 'ingest_%' "
        "AND schemaname = 'public'")}  # fmt: skip
    functions = await pool.fetchval(
        "SELECT count(*) FROM pg_proc WHERE proname = 'notify_tenant_changed'"
    )
    triggers = await pool.fetchval("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal")
    assert (tables, functions, triggers) == (set(), 0, 0)
