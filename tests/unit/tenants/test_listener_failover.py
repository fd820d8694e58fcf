"""The tenant listener rides out a failover: no writable host, an old primary, a broken exchange."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.unit.tenants.test_cache import Clock
from tests.unit.tenants.test_invalidation import HeldSource, make_cache
from worker.db.timeline import StalePrimaryError
from worker.tenants.cache import TenantListener

FAILOVER_ERRORS = [
    ConnectionRefusedError(111, "Connection refused"),
    asyncpg.TargetServerAttributeNotMatched("None of the hosts match 'read-write'"),
    StalePrimaryError("every host accepting writes is an old primary"),
    asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
]


async def test_listener_keeps_reconnecting_through_a_failover() -> None:
    """Each failover error is one more attempt, never the end of the listener (and the worker)."""
    attempts: list[str] = []
    all_tried = asyncio.Event()

    async def connect(_dsn: str) -> asyncpg.Connection:
        error = FAILOVER_ERRORS[len(attempts) % len(FAILOVER_ERRORS)]
        attempts.append(type(error).__name__)
        if len(attempts) > len(FAILOVER_ERRORS):
            all_tried.set()
        raise error

    listener = TenantListener(
        "postgresql://h1,h2/db", make_cache(HeldSource({}), Clock()), retry_s=0, connect=connect
    )
    task = asyncio.create_task(listener.run())
    tried = asyncio.create_task(all_tried.wait())
    try:
        await asyncio.wait({task, tried}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        assert tried.done()
        assert not task.done(), f"the listener ended: {task.exception()!r}"
    finally:
        task.cancel()
        tried.cancel()
    assert attempts[: len(FAILOVER_ERRORS)] == [type(e).__name__ for e in FAILOVER_ERRORS]
