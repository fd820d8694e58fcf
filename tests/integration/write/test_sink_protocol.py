"""The sink's transaction against a real PostgreSQL: offsets, fencing, rejects, availability."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from tests.integration.write.events import (
    ACTIONS_TP,
    AUDITS_TP,
    GROUP,
    action,
    audit,
    batch,
    counts,
    raw,
    stored_and_rejected,
)
from worker.devtools.embedded import free_port
from worker.errors import PartitionsFencedError, TransientError
from worker.records import OffsetRange, Reject, RejectReason, TopicPartition
from worker.settings import Settings
from worker.write.connection import keep_session, prepare_connection
from worker.write.sink import PostgresSink


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
