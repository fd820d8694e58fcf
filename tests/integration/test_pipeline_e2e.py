"""End to end: events produced with plain aiokafka end up exactly once in PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import orjson
import pytest

from tests.checker import check_exactly_once
from tests.streams import produce, wait_drained
from worker.devtools.eventgen import EventFactory
from worker.ops.admin import create_tenant, set_tenant_active
from worker.service.app import run_worker
from worker.settings import Settings

pytestmark = pytest.mark.timeout(240)


async def make_tenants(
    settings: Settings, active: int, inactive: int
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    made = [
        (await create_tenant(settings, f"tenant-{i}")).tenant_id for i in range(active + inactive)
    ]
    for tenant_id in made[active:]:
        await set_tenant_active(settings, tenant_id, False)
    return made[:active], made[active:]


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[asyncio.Task[object]]:
    """The worker in this process, stopped (as by SIGTERM) on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop))
    try:
        yield task  # type: ignore[misc]
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def test_twenty_thousand_mixed_events_exactly_once(stream: Settings) -> None:
    """Every offset is a row (merged by id) equal to the reference, or a reject with its reason."""
    active, inactive = await make_tenants(stream, active=5, inactive=1)
    factory = EventFactory(active, seed=11, inactive_tenants=inactive)
    generated = factory.mixed(20_000, invalid_ratio=0.02, max_event_bytes=stream.max_event_bytes)
    reasons = {g.expected_reject for g in generated} - {None}
    assert reasons == set(factory.bad_reasons())  # every reason is exercised
    sent = await produce(stream, generated)
    async with running_worker(stream):
        await wait_drained(stream, sent)
    await check_exactly_once(stream.database_url, sent, stream.kafka_group_id)


async def test_lifecycle_merges_in_any_order_and_across_batches(stream: Settings) -> None:
    """success-then-pending, duplicates, and a later restart give the row of the latest event."""
    (tenant,), _ = await make_tenants(stream, active=1, inactive=0)
    factory = EventFactory([tenant], seed=3)
    first = [factory.valid("action", e) for e in reversed(factory.lifecycle())]
    first.append(first[0])
    sent = await produce(stream, first)
    async with running_worker(stream):
        await wait_drained(stream, sent)
    pending, done = factory.lifecycle()
    late = [factory.valid("action", done), factory.valid("action", pending)]
    sent += await produce(stream, [*late, first[1]])
    async with running_worker(stream):
        await wait_drained(stream, sent)
    await check_exactly_once(stream.database_url, sent, stream.kafka_group_id)


async def reject_reason_at(url: str, topic: str, partition: int, offset: int) -> str | None:
    db = await asyncpg.connect(url)
    try:
        return await db.fetchval(
            'SELECT reason FROM ingest_rejects WHERE topic = $1 AND "partition" = $2 '
            'AND "offset" = $3', topic, partition, offset,
        )  # fmt: skip
    finally:
        await db.close()


async def test_tenant_deactivated_while_running(stream: Settings) -> None:
    """Within a second of deactivation the tenant's events are rejected as inactive_tenant."""
    (tenant,), _ = await make_tenants(stream, active=1, inactive=0)
    factory = EventFactory([tenant], seed=5)
    async with running_worker(stream):
        sent = await produce(stream, [factory.valid("audit", factory.audit())])
        await wait_drained(stream, sent)  # the tenant is now cached as active
        await set_tenant_active(stream, tenant, False)
        deactivated_at = time.monotonic()
        while True:
            produced_at = time.monotonic()
            sent += await produce(stream, [factory.valid("audit", factory.audit())])
            await wait_drained(stream, sent)
            last = sent[-1]
            reason = await reject_reason_at(
                stream.database_url, last.topic, last.partition, last.offset
            )
            if reason == "inactive_tenant":
                break
            assert produced_at - deactivated_at < 1.0, (
                "events still accepted 1 s after deactivation"
            )


async def test_bad_event_payload_never_reaches_the_logs(
    stream: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    """A rejected event's values appear in ingest_rejects.raw only, never in log output."""
    (tenant,), _ = await make_tenants(stream, active=1, inactive=0)
    secret = "TOPSECRET-" + uuid.uuid4().hex
    factory = EventFactory([tenant], seed=9)
    bad = factory.valid("action", factory.action(provider_name=secret * 20))
    sent = await produce(stream, [bad])
    async with running_worker(stream):
        await wait_drained(stream, sent)
    captured = capfd.readouterr()
    assert secret not in captured.out + captured.err
    db = await asyncpg.connect(stream.database_url)
    try:
        row = await db.fetchrow("SELECT reason, detail, raw FROM ingest_rejects")
    finally:
        await db.close()
    assert row is not None
    assert row["reason"] == "schema_violation"
    assert "provider_name" in row["detail"]
    assert secret not in row["detail"]
    assert orjson.loads(row["raw"])["provider_name"].startswith(secret)
