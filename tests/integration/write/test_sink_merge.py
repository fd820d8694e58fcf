"""The sink's merge against a real PostgreSQL: lifecycles, duplicates, ties, first-wins audits."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta, timezone

import asyncpg

from tests.integration.write.events import T0, action, action_row, audit, batch
from worker.records import Accepted
from worker.settings import Settings
from worker.write.sink import PostgresSink


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
