"""Rows a real PostgreSQL refuses: each becomes a reject, the rest of the batch is written."""

from __future__ import annotations

import uuid

import asyncpg

from tests.integration.write.events import (
    ACTIONS_TP,
    action,
    add_tenant,
    audit,
    batch,
    counts,
    stored_and_rejected,
)
from worker.records import OffsetRange, RejectReason
from worker.write.sink import PostgresSink


async def test_row_refused_by_a_check_is_rejected_alone(
    sink: PostgresSink, pool: asyncpg.Pool, tenant: uuid.UUID
) -> None:
    """A negative execution time hits the CHECK: that event is rejected, the rest is written."""
    events = [action(uuid.uuid4(), tenant) for _ in range(20)]
    bad = action(uuid.uuid4(), tenant, execution_time_ms=-1)
    long_resource = audit(uuid.uuid4(), tenant, resource_id="r" * 300)
    fine_audit = audit(uuid.uuid4(), tenant)
    result = await sink.write(batch(*events[:7], bad, *events[7:], long_resource, fine_audit,
                                    offsets={ACTIONS_TP: OffsetRange(None, 50)}))  # fmt: skip
    assert (result.actions, result.audits) == (20, 1)
    assert result.rejects == {RejectReason.DB_REJECTED: 2}
    assert await counts(pool) == {"action_logs": 20, "audit_logs": 1, "ingest_rejects": 2,
                                  "ingest_offsets": 1}  # fmt: skip
    rows = await pool.fetch('SELECT "offset", detail FROM ingest_rejects')
    details = {row["offset"]: row["detail"] for row in rows}
    assert details[bad.record.offset] == (
        "23514 CheckViolationError table=action_logs constraint=ck_action_logs_execution_time_ms"
    )
    assert details[long_resource.record.offset].startswith("22001 ")


async def test_value_the_driver_cannot_send_is_rejected_alone(
    sink: PostgresSink, pool: asyncpg.Pool, tenant: uuid.UUID
) -> None:
    """A NUL character (refused by COPY) and integers out of range become db_rejected."""
    good = action(uuid.uuid4(), tenant)
    nul = action(uuid.uuid4(), tenant, provider="hub\x00spot")
    over_int4 = action(uuid.uuid4(), tenant, execution_time_ms=2**40)  # refused by the cast
    over_int8 = action(uuid.uuid4(), tenant, execution_time_ms=2**70)  # by the driver
    result = await sink.write(batch(nul, good, over_int4, over_int8))
    assert result.rejects == {RejectReason.DB_REJECTED: 3}
    assert await pool.fetchval("SELECT array_agg(id) FROM action_logs") == [good.row.id]


async def test_tenant_deleted_since_lookup_becomes_unknown_tenant(
    sink: PostgresSink, pool: asyncpg.Pool, tenant: uuid.UUID
) -> None:
    """Events of a tenant deleted since lookup are unknown_tenant rejects; nothing is lost."""
    doomed = await add_tenant(pool)
    events = [
        action(uuid.uuid4(), tenant), action(uuid.uuid4(), doomed),
        audit(uuid.uuid4(), doomed), audit(uuid.uuid4(), tenant),
    ]  # fmt: skip
    await pool.execute("DELETE FROM tenants WHERE id = $1", doomed)
    result = await sink.write(batch(*events, offsets={ACTIONS_TP: OffsetRange(None, 1)}))
    assert result.rejects == {RejectReason.UNKNOWN_TENANT: 2}
    assert (result.actions, result.audits) == (1, 1)
    stored, rejected = await stored_and_rejected(pool)
    for event in events:
        assert (event.row.id in stored) != (event.record.offset in rejected)
    details = await pool.fetch("SELECT DISTINCT detail FROM ingest_rejects")
    assert [row["detail"] for row in details] == ["tenant_id not in tenants (deleted since lookup)"]


async def test_unknown_tenant_and_refused_row_in_one_batch(
    sink: PostgresSink, pool: asyncpg.Pool, tenant: uuid.UUID
) -> None:
    """A CHECK violation and a missing tenant together: each event gets its own reason."""
    events = [action(uuid.uuid4(), tenant) for _ in range(6)]
    events += [
        action(uuid.uuid4(), uuid.uuid4()),
        action(uuid.uuid4(), tenant, execution_time_ms=-5),
    ]
    result = await sink.write(batch(*events))
    assert result.rejects == {RejectReason.UNKNOWN_TENANT: 1, RejectReason.DB_REJECTED: 1}
    assert result.actions == 6
    stored, rejected = await stored_and_rejected(pool)
    for event in events:
        assert (event.row.id in stored) != (event.record.offset in rejected)
