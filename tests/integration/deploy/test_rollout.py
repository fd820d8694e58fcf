"""A newer release's migration meets this build's workers: they run on, or refuse clearly.

The newer release is simulated by test-only migrations on top of this build's
head (``migrations/``), applied with the same ``migrate`` code as the deploy job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from tests.faults.conftest import new_tenants
from tests.faults.harness import Workers, run_cli, wait_progress_beyond
from tests.faults.test_database import finish
from tests.integration.deploy.schema import (
    CONTRACT,
    EXPAND,
    HEAD,
    fetch,
    migrate_newer,
    records,
    version,
)
from tests.streams import produce, worker_env
from worker.devtools.eventgen import EventFactory
from worker.settings import Settings

LOCK_TIMEOUT_S = 3.0
# Sessions waiting for a lock right now: the pid, and the query start that tells waits apart.
WAITING = (
    "SELECT pid, query_start FROM pg_stat_activity "
    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
)


@pytest.mark.timeout(150)
async def test_old_worker_starts_against_an_expanded_schema(
    stream: Settings, workers: Workers
) -> None:
    """One additive migration ahead: the worker starts, ingests, and exactly-once holds."""
    before = await records(stream.database_url)
    result = await migrate_newer(stream, EXPAND)
    assert (result.before, result.after) == ((HEAD,), (EXPAND,))
    assert await records(stream.database_url) == {**before, EXPAND: "001"}
    factory = EventFactory(await new_tenants(stream, 3), seed=2001)
    sent = await produce(stream, factory.mixed(3000, 0.02, stream.max_event_bytes))
    worker = await workers.start(worker_env(stream))
    await worker.wait_for_log("schema_newer_compatible", 30)
    await finish(stream, sent, worker, 90)
    assert EXPAND in worker.stderr


@pytest.mark.timeout(120)
async def test_worker_refuses_a_contracted_schema(stream: Settings) -> None:
    """A contracting migration ahead: `log-ingest run` exits 3 naming both revisions."""
    before = await records(stream.database_url)
    await migrate_newer(stream, CONTRACT)
    assert await records(stream.database_url) == {**before, CONTRACT: CONTRACT}
    code, stderr = await run_cli("run", env=worker_env(stream), timeout_s=60)
    assert code == 3, stderr[-2000:]
    assert f"database is at revision {CONTRACT}, incompatible with this build (head {HEAD})" in (
        stderr
    )
    assert f"deploy a build at least at {CONTRACT}" in stderr
    assert "Traceback" not in stderr


@asynccontextmanager
async def lock_waits(url: str) -> AsyncIterator[dict[tuple[int, object], list[float]]]:
    """Watch every lock wait in the database: (pid, query_start) -> [first seen, last seen]."""
    seen: dict[tuple[int, object], list[float]] = {}
    db = await asyncpg.connect(url)

    async def watch() -> None:
        while True:
            now = time.monotonic()
            for pid, started in await db.fetch(WAITING):
                seen.setdefault((pid, started), [now, now])[1] = now
            await asyncio.sleep(0.02)

    task = asyncio.create_task(watch())
    try:
        yield seen
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await db.close()


@pytest.mark.timeout(180)
async def test_worker_ingests_on_while_an_expand_migration_is_applied(
    stream: Settings, workers: Workers
) -> None:
    """Migrating under load: no lock wait reaches the lock timeout, the worker loses nothing."""
    factory = EventFactory(await new_tenants(stream, 3), seed=2002)
    sent = await produce(stream, factory.mixed(4000, 0.02, stream.max_event_bytes))
    worker = await workers.start(worker_env(stream))
    floor = await wait_progress_beyond(stream, 0, 60)
    producing = asyncio.create_task(
        produce(stream, factory.mixed(4000, 0.02, stream.max_event_bytes))
    )
    deploy = stream.model_copy(update={"migration_lock_timeout_s": LOCK_TIMEOUT_S})
    try:
        async with lock_waits(stream.database_url) as waits:
            result = await migrate_newer(deploy, EXPAND)
            sent += await producing
    finally:
        producing.cancel()
    assert result.after == (EXPAND,)
    longest = max((last - first for first, last in waits.values()), default=0.0)
    assert longest < LOCK_TIMEOUT_S, waits
    assert worker.alive
    await wait_progress_beyond(stream, floor, 60)
    columns = await fetch(
        stream.database_url,
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'action_logs' AND column_name = 'deploy_note'",
    )
    assert columns == [("deploy_note",)]
    await finish(stream, sent, worker, 120)
    assert await version(stream.database_url) == [(EXPAND,)]
