"""The write stage against a real PostgreSQL: merge rules, rejects, offsets, refused rows."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest

from tests.integration.test_migrations import alembic
from worker.devtools.embedded import free_port
from worker.errors import PartitionsFencedError, TransientError
from worker.records import (
    Accepted,
    ActionRow,
    AuditRow,
    Batch,
    OffsetRange,
    RawRecord,
    Reject,
    RejectReason,
    TopicPartition,
)
from worker.settings import Settings
from worker.write.sink import PostgresSink, keep_session, prepare_connection

GROUP = "log-ingest-test"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ACTIONS_TP = TopicPartition("action-events", 0)
AUDITS_TP = TopicPartition("audit-events", 0)
_positions = itertools.count(100)
TABLES = ("action_logs", "audit_logs", "ingest_rejects", "ingest_offsets")


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


async def add_tenant(pool: asyncpg.Pool) -> uuid.UUID:
    tenant_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO tenants (id, name, api_key) VALUES ($1, 'acme', $2)", tenant_id, tenant_id.hex
    )
    return tenant_id


def raw(tp: TopicPartition, value: bytes | None = b"{}") -> RawRecord:
    return RawRecord(tp.topic, tp.partition, next(_positions), b"key", value, 0)


def action(
    action_id: uuid.UUID, tenant_id: uuid.UUID, *, at: int = 0, status: str = "pending",
    payload: str = '{"contact": {"email": "a@example.com"}}', execution_time_ms: int = 5,
    provider: str = "hubspot",
) -> Accepted:  # fmt: skip
    """An action event that occurred ``at`` seconds after T0."""
    row = ActionRow(action_id, tenant_id, "crm_create", provider, payload, None, status, None,
                    execution_time_ms, '{"r": 1}', T0 + timedelta(seconds=at))  # fmt: skip
    return Accepted(row, raw(ACTIONS_TP))


def audit(audit_id: uuid.UUID, tenant_id: uuid.UUID, *, action_name: str = "update",
          resource_id: str = "cfg-1", offset: int | None = None) -> Accepted:  # fmt: skip
    """An audit event, at a given offset of the audit partition if one is asked for."""
    row = AuditRow(audit_id, tenant_id, "user-1", action_name, "config", resource_id,
                   '{"before": {}, "after": {"a": 1}}', "10.0.0.1", "curl/8", None, T0)  # fmt: skip
    record = raw(AUDITS_TP)
    if offset is not None:
        record = record._replace(offset=offset)
    return Accepted(row, record)


def batch(
    *items: Accepted | Reject, offsets: dict[TopicPartition, OffsetRange] | None = None
) -> Batch:
    """A batch of these events; without offsets, as in the tests that are about rows only."""
    found = Batch(offsets=offsets or {})
    for item in items:
        if isinstance(item, Reject):
            found.rejects.append(item)
        elif isinstance(item.row, ActionRow):
            found.actions.append(item)
        else:
            found.audits.append(item)
    return found


async def action_row(pool: asyncpg.Pool, action_id: uuid.UUID) -> dict[str, Any]:
    """The stored action, without its id, for comparing rows of different ids."""
    row = await pool.fetchrow("SELECT * FROM action_logs WHERE id = $1", action_id)
    assert row is not None
    return {key: value for key, value in row.items() if key != "id"}


async def counts(pool: asyncpg.Pool) -> dict[str, int]:
    return {table: await pool.fetchval(f"SELECT count(*) FROM {table}") for table in TABLES}


async def test_pending_then_success_in_one_batch(sink: PostgresSink, pool: asyncpg.Pool,
                                                 tenant: uuid.UUID) -> None:  # fmt: skip
    """Two events of one action in a batch make one row: latest fields, earliest created_at."""
    action_id = uuid.uuid4()
    result = await sink.write(batch(
        action(action_id, tenant, at=0, status="pending"),
        action(action_id, tenant, at=3, status="success", payload='{"done": true}'),
    ))  # fmt: skip
    assert result.actions == 2
    row = await action_row(pool, action_id)
    assert (row["status"], row["request_payload"]) == ("success", '{"done": true}')
    assert (row["created_at"], row["updated_at"]) == (T0, T0 + timedelta(seconds=3))


async def test_any_order_across_batches_gives_the_same_row(
    sink: PostgresSink, pool: asyncpg.Pool, tenant: uuid.UUID
) -> None:
    """Every arrival order of a lifecycle, one event per batch, leaves the identical row."""
    lifecycle = [("pending", 0), ("retry", 2), ("success", 5)]
    rows = []
    for order in itertools.permutations(lifecycle):
        action_id = uuid.uuid4()
        for status, at in order:
            await sink.write(batch(action(action_id, tenant, at=at, status=status)))
        rows.append(await action_row(pool, action_id))
    assert all(row == rows[0] for row in rows)
    assert rows[0]["status"] == "success"
    assert (rows[0]["created_at"], rows[0]["updated_at"]) == (T0, T0 + timedelta(seconds=5))


async def test_lifecycle_in_one_batch_gives_the_row_of_separate_batches(
    sink: PostgresSink, pool: asyncpg.Pool, tenant: uuid.UUID
) -> None:
    """Every order of a lifecycle (with a duplicate) in one batch stores the row that
    one event per batch stores: the in-batch merge and PostgreSQL's agree."""
    lifecycle = [("pending", 0), ("retry", 2), ("success", 5), ("success", 5)]
    separate = uuid.uuid4()
    for status, at in lifecycle:
        await sink.write(batch(action(separate, tenant, at=at, status=status)))
    expected = await action_row(pool, separate)
    for order in set(itertools.permutations(lifecycle)):
        action_id = uuid.uuid4()
        events = [action(action_id, tenant, at=at, status=status) for status, at in order]
        result = await sink.write(batch(*events))
        assert result.actions == 4
        assert await action_row(pool, action_id) == expected
    assert expected["status"] == "success"
    assert (expected["created_at"], expected["updated_at"]) == (T0, T0 + timedelta(seconds=5))


async def test_exact_duplicate_changes_nothing(
    sink: PostgresSink, pool: asyncpg.Pool, tenant: uuid.UUID
) -> None:
    """The same event again, alone or twice in a batch, writes no new row version."""
    action_id = uuid.uuid4()
    await sink.write(batch(action(action_id, tenant, at=1, status="success")))
    version = await pool.fetchval("SELECT xmin::text FROM action_logs WHERE id = $1", action_id)
    duplicate = action(action_id, tenant, at=1, status="success")
    result = await sink.write(batch(duplicate, action(action_id, tenant, at=1, status="success")))
    assert result.actions == 2
    assert (
        await pool.fetchval("SELECT xmin::text FROM action_logs WHERE id = $1", action_id)
        == version
    )
    assert await pool.fetchval("SELECT count(*) FROM action_logs") == 1


async def test_equal_occurred_at_tie_does_not_depend_on_order(
    sink: PostgresSink, pool: asyncpg.Pool, tenant: uuid.UUID
) -> None:
    """Two different events at the same instant: one wins by content, whatever the order."""
    first, second, together = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    def rivals(action_id: uuid.UUID) -> list[Accepted]:
        return [action(action_id, tenant, at=4, status="success", payload='{"x": 1}'),
                action(action_id, tenant, at=4, status="failure", payload='{"x": 2}')]  # fmt: skip

    for event in rivals(first):
        await sink.write(batch(event))
    for event in reversed(rivals(second)):
        await sink.write(batch(event))
    await sink.write(batch(*rivals(together)))
    rows = [await action_row(pool, action_id) for action_id in (first, second, together)]
    assert rows[0] == rows[1] == rows[2]


async def test_audit_first_stored_wins(
    sink: PostgresSink, pool: asyncpg.Pool, tenant: uuid.UUID
) -> None:
    """An audit id keeps its first stored event; in a batch, the lowest offset wins."""
    stored, in_batch = uuid.uuid4(), uuid.uuid4()
    await sink.write(batch(audit(stored, tenant, action_name="create")))
    result = await sink.write(batch(
        audit(stored, tenant, action_name="delete"),
        audit(in_batch, tenant, action_name="later", offset=9),
        audit(in_batch, tenant, action_name="earlier", offset=3),
    ))  # fmt: skip
    assert result.audits == 3
    rows = await pool.fetch("SELECT id, action, created_at, updated_at FROM audit_logs")
    assert {row["id"]: row["action"] for row in rows} == {stored: "create", in_batch: "earlier"}
    assert {(row["created_at"], row["updated_at"]) for row in rows} == {(T0, T0)}


async def test_timestamps_are_stored_to_the_microsecond_at_any_offset(
    sink: PostgresSink, pool: asyncpg.Pool, tenant: uuid.UUID, settings: Settings
) -> None:
    """The connections' own timestamptz codec stores the instant sent, on every path."""
    at = datetime(2026, 3, 1, 23, 30, 0, 654321, tzinfo=timezone(timedelta(hours=-5, minutes=-30)))

    def occurring_at(event: Accepted) -> Accepted:
        return Accepted(event.row._replace(occurred_at=at), event.record)

    new, merged, audited = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await sink.write(batch(action(merged, tenant)))  # stored first: the next one merges
    await sink.write(batch(
        occurring_at(action(new, tenant)),
        occurring_at(action(merged, tenant, status="success")),
        occurring_at(audit(audited, tenant)),
    ))  # fmt: skip
    # Read as text in UTC on a connection of asyncpg's defaults: no codec of ours involved.
    connection = await asyncpg.connect(settings.database_url, server_settings={"TimeZone": "UTC"})
    try:
        stored = await connection.fetch(
            "SELECT id, updated_at::text FROM action_logs UNION ALL "
            "SELECT id, updated_at::text FROM audit_logs"
        )
    finally:
        await connection.close()
    expected = "2026-03-02 05:00:00.654321+00"
    assert {row["id"]: row["updated_at"] for row in stored} == dict.fromkeys(
        (new, merged, audited), expected
    )


async def test_rejects_are_truncated_and_idempotent(sink: PostgresSink, pool: asyncpg.Pool) -> None:
    """A reject keeps 16 raw bytes and the full size; the same position again adds nothing."""
    long = Reject(raw(ACTIONS_TP, b"x" * 40), RejectReason.INVALID_JSON, "line 1 column 3")
    empty = Reject(raw(ACTIONS_TP, None), RejectReason.EMPTY, "no value")
    result = await sink.write(batch(long, empty))
    await sink.write(batch(long))
    assert result.rejects == {RejectReason.INVALID_JSON: 1, RejectReason.EMPTY: 1}
    rows = await pool.fetch(
        'SELECT "offset", key, raw, raw_size, reason, detail FROM ingest_rejects ORDER BY "offset"'
    )
    assert [tuple(row) for row in rows] == [
        (long.record.offset, b"key", b"x" * 16, 40, "invalid_json", "line 1 column 3"),
        (empty.record.offset, b"key", None, 0, "empty", "no value"),
    ]


async def test_offsets_claim_then_advance(sink: PostgresSink, tenant: uuid.UUID) -> None:
    """A first batch claims the partition from None; the next advances from the stored value."""
    await sink.write(
        batch(action(uuid.uuid4(), tenant), offsets={ACTIONS_TP: OffsetRange(None, 5)})
    )
    assert await sink.load_offsets([ACTIONS_TP]) == {ACTIONS_TP: 5}
    await sink.write(batch(action(uuid.uuid4(), tenant), offsets={ACTIONS_TP: OffsetRange(5, 9)}))
    assert await sink.load_offsets([ACTIONS_TP]) == {ACTIONS_TP: 9}


async def test_stale_start_is_fenced_and_writes_nothing(
    sink: PostgresSink, pool: asyncpg.Pool, tenant: uuid.UUID
) -> None:
    """Any partition moved by another replica fails the whole batch, naming all such partitions."""
    other = TopicPartition("action-events", 1)
    fine = TopicPartition("action-events", 2)
    await sink.write(batch(offsets={ACTIONS_TP: OffsetRange(None, 5), other: OffsetRange(None, 7),
                                    fine: OffsetRange(None, 1)}))  # fmt: skip
    before = await counts(pool)
    stale = batch(
        action(uuid.uuid4(), tenant), audit(uuid.uuid4(), tenant),
        Reject(raw(ACTIONS_TP), RejectReason.INVALID_JSON, "bad"),
        offsets={ACTIONS_TP: OffsetRange(3, 10), other: OffsetRange(None, 9),
                 fine: OffsetRange(1, 2)},
    )  # fmt: skip
    with pytest.raises(PartitionsFencedError) as raised:
        await sink.write(stale)
    assert raised.value.partitions == {("action-events", 0), ("action-events", 1)}
    assert await counts(pool) == before
    assert await sink.load_offsets([ACTIONS_TP, other, fine]) == {
        ACTIONS_TP: 5, other: 7, fine: 1,
    }  # fmt: skip


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


async def stored_and_rejected(pool: asyncpg.Pool) -> tuple[set[uuid.UUID], set[int]]:
    """The ids in action_logs and audit_logs, and the offsets in ingest_rejects."""
    rows = await pool.fetch("SELECT id FROM action_logs UNION ALL SELECT id FROM audit_logs")
    rejected = await pool.fetch('SELECT "offset" FROM ingest_rejects')
    return {row["id"] for row in rows}, {row["offset"] for row in rejected}


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


@pytest.mark.parametrize("start", [None, 5])
async def test_racing_replicas_store_one_batch(
    settings: Settings, pool: asyncpg.Pool, tenant: uuid.UUID, start: int | None
) -> None:
    """Two replicas writing a partition from the same start: one commits, the other is fenced."""
    if start is not None:
        await PostgresSink(pool, group_id=GROUP, reject_raw_max_bytes=16).write(
            batch(offsets={ACTIONS_TP: OffsetRange(None, start)})
        )
    other_pool = await asyncpg.create_pool(
        settings.database_url, min_size=1, max_size=1, init=prepare_connection, reset=keep_session
    )
    try:
        replicas = [PostgresSink(p, group_id=GROUP, reject_raw_max_bytes=16)
                    for p in (pool, other_pool)]  # fmt: skip
        offsets = {ACTIONS_TP: OffsetRange(start, 100)}
        batches = [batch(*(action(uuid.uuid4(), tenant) for _ in range(50)), offsets=offsets)
                   for _ in replicas]  # fmt: skip
        outcomes = await asyncio.gather(
            *(replica.write(b) for replica, b in zip(replicas, batches, strict=True)),
            return_exceptions=True,
        )
    finally:
        await other_pool.close()
    assert sum(isinstance(o, PartitionsFencedError) for o in outcomes) == 1, outcomes
    (winner,) = [b for b, o in zip(batches, outcomes, strict=True) if not isinstance(o, Exception)]
    stored, _ = await stored_and_rejected(pool)
    assert stored == {event.row.id for event in winner.actions}


async def test_load_offsets_returns_only_stored_partitions(sink: PostgresSink,
                                                           pool: asyncpg.Pool) -> None:  # fmt: skip
    """Partitions without a stored offset, and other groups' offsets, are left out."""
    await sink.write(batch(offsets={ACTIONS_TP: OffsetRange(None, 42)}))
    other_group = PostgresSink(pool, group_id="other", reject_raw_max_bytes=16)
    await other_group.write(batch(offsets={AUDITS_TP: OffsetRange(None, 7)}))
    assert await sink.load_offsets([ACTIONS_TP, AUDITS_TP]) == {ACTIONS_TP: 42}
    assert await sink.load_offsets([]) == {}


async def test_unreachable_database_is_transient() -> None:
    """No server at the pool's address: write and load_offsets raise TransientError."""
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    pool = await asyncpg.create_pool(url, min_size=0, init=prepare_connection, reset=keep_session)
    try:
        sink = PostgresSink(pool, group_id=GROUP, reject_raw_max_bytes=16)
        with pytest.raises(TransientError, match="PostgreSQL unavailable"):
            await sink.write(batch(offsets={ACTIONS_TP: OffsetRange(None, 1)}))
        with pytest.raises(TransientError):
            await sink.load_offsets([ACTIONS_TP])
    finally:
        await pool.close()


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
