"""The seed's two usage examples, with `worker` in place of `src`."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tests.integration.test_migrations import alembic
from worker.db import engine as database
from worker.settings import Settings


@pytest.fixture
async def migrated(settings: Settings) -> Settings:
    await alembic(settings, "upgrade", "head")
    database.configure(settings)
    yield settings  # type: ignore[misc]
    await database.dispose()


async def test_database_session_and_get_db(migrated: Settings) -> None:
    """A tenant added in DatabaseSession is committed and seen through get_db."""
    from worker.db.engine import DatabaseSession, get_db
    from worker.db.models import Tenant

    tenant_id = uuid.uuid4()
    async with DatabaseSession() as db:
        db.add(Tenant(id=tenant_id, name="Acme", api_key=hashlib.sha256(b"k").hexdigest()))

    dependency = get_db()
    db: AsyncSession = await anext(dependency)
    result = await db.execute(select(Tenant))
    tenants = result.scalars().all()
    await dependency.aclose()

    assert [(t.id, t.name, t.is_active, t.provider_configs) for t in tenants] == [
        (tenant_id, "Acme", True, {})
    ]


async def test_database_session_rolls_back_on_error(migrated: Settings) -> None:
    """An exception inside DatabaseSession leaves nothing behind."""
    from worker.db.engine import DatabaseSession
    from worker.db.models import Tenant

    async def add_then_fail() -> None:
        async with DatabaseSession() as db:
            db.add(Tenant(id=uuid.uuid4(), name="Gone", api_key="x"))
            await db.flush()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await add_then_fail()
    async with DatabaseSession() as db:
        assert (await db.execute(select(Tenant))).scalars().all() == []
