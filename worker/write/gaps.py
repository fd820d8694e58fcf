"""Recording a partition resumed elsewhere than its stored offset (``ingest_gaps``).

One transaction moves the stored offset (a compare-and-set, like every write: a
replica that lost the partition records nothing), adds the gap's row, and, when
the partition goes back below its stored offset (a re-created topic, an operator
re-reading), moves the rejects at the positions to be read again into
``ingest_rejects_superseded``: rejects are keyed by position, and those of the old
log would otherwise hide the new log's.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from typing import NamedTuple

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from worker.db.errors import transient_as_error
from worker.db.failover import acquire
from worker.db.pool_mode import fetch
from worker.errors import PartitionsFencedError
from worker.records import TopicPartition

Connection = asyncpg.Connection | PoolConnectionProxy


class GapKind(enum.StrEnum):
    RETENTION = "retention"  # records deleted before they were read
    LOG_RESET = "log_reset"  # the log no longer holds the stored position
    OPERATOR = "operator"  # log-ingest offsets set


class Gap(NamedTuple):
    tp: TopicPartition
    stored: int | None  # PostgreSQL's next offset before (None: it had none)
    resumed: int  # where the partition goes on from
    kind: GapKind
    log_start: int | None = None
    log_end: int | None = None


class Recall(NamedTuple):
    """What PostgreSQL knows of the record at a position (``worker.consume.identity``)."""

    known: bool  # a row of the record's event id, or a reject of its bytes at its position
    stored_at_ms: int | None  # when the partition's position was last stored


MOVE_OFFSET = """
UPDATE ingest_offsets SET next_offset = $4, updated_at = now()
WHERE group_id = $1 AND topic = $2 AND partition = $3 AND next_offset = $5
"""
# The operator's command takes the partition's fence: the owner's next compare-and-set fails.
LOCK_OFFSET = """
SELECT next_offset FROM ingest_offsets
WHERE group_id = $1 AND topic = $2 AND partition = $3 FOR UPDATE
"""
SET_OFFSET = """
INSERT INTO ingest_offsets (group_id, topic, partition, next_offset) VALUES ($1, $2, $3, $4)
ON CONFLICT (group_id, topic, partition)
DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()
"""
INSERT_GAP = """
INSERT INTO ingest_gaps
    (group_id, topic, partition, stored_offset, resumed_offset, kind, log_start, log_end)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id
"""
SUPERSEDE_REJECTS = """
WITH moved AS (
    DELETE FROM ingest_rejects WHERE topic = $1 AND partition = $2 AND "offset" >= $3
    RETURNING *
)
INSERT INTO ingest_rejects_superseded (id, gap_id, topic, partition, "offset", key, raw,
    raw_size, reason, detail, received_at, replayed_at)
SELECT id, $4, topic, partition, "offset", key, raw, raw_size, reason, detail, received_at,
    replayed_at
FROM moved
"""
LATEST_GAPS = """
SELECT g.topic, g.partition, max(g.id) AS id
FROM ingest_gaps AS g
JOIN unnest($2::text[], $3::integer[]) AS p(topic, partition)
    ON g.topic = p.topic AND g.partition = p.partition
WHERE g.group_id = $1
GROUP BY g.topic, g.partition
"""


# What PostgreSQL knows of the record at a position: when the partition's offset was last
# stored, whether a reject there has these bytes (null: no reject there), whether a row
# of this event id exists.
RECALL = """
SELECT
    (SELECT updated_at FROM ingest_offsets
     WHERE group_id = $1 AND topic = $2 AND partition = $3) AS stored_at,
    (SELECT raw_size = $5
        AND raw IS NOT DISTINCT FROM substring($6::bytea FROM 1 FOR octet_length(raw))
     FROM ingest_rejects WHERE topic = $2 AND partition = $3 AND "offset" = $4) AS same_reject,
    EXISTS (SELECT 1 FROM action_logs WHERE id = $7)
        OR EXISTS (SELECT 1 FROM audit_logs WHERE id = $7) AS stored_row
"""


class GapLedger:
    """The gaps of one consumer group."""

    def __init__(self, pool: asyncpg.Pool, group_id: str, *, in_transaction: bool) -> None:
        self._pool = pool
        self._group_id = group_id
        self._in_transaction = in_transaction  # behind a transaction pooler (pool_mode)

    async def record(self, gap: Gap) -> None:
        """Move the partition from ``gap.stored`` to ``gap.resumed`` and record why; raise
        ``PartitionsFencedError`` (having written nothing) when it no longer stood there."""
        tp = gap.tp
        with transient_as_error("recording an offset gap"):
            async with acquire(self._pool, transaction=True) as connection:
                status = await connection.execute(
                    MOVE_OFFSET, self._group_id, tp.topic, tp.partition, gap.resumed, gap.stored
                )
                if status != "UPDATE 1":
                    raise PartitionsFencedError(frozenset({(tp.topic, tp.partition)}))
                await write_gap(connection, self._group_id, gap)

    async def recall(self, tp: TopicPartition, offset: int, value: bytes | None) -> Recall:
        """Whether the record at ``tp``/``offset`` is one this group stored (``identity``)."""
        size = 0 if value is None else len(value)
        with transient_as_error("reading what was stored"):
            [row] = await fetch(
                self._pool, RECALL, self._group_id, tp.topic, tp.partition, offset, size,
                value, _event_id(value), in_transaction=self._in_transaction,
            )  # fmt: skip
        same_reject, stored_at = row["same_reject"], row["stored_at"]
        known = bool(row["stored_row"]) if same_reject is None else bool(same_reject)
        return Recall(known, None if stored_at is None else int(stored_at.timestamp() * 1000))

    async def latest(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The id of each partition's latest gap, of those that have one."""
        wanted = list(partitions)
        topics, numbers = [tp.topic for tp in wanted], [tp.partition for tp in wanted]
        with transient_as_error("reading offset gaps"):
            rows = await fetch(
                self._pool, LATEST_GAPS, self._group_id, topics, numbers,
                in_transaction=self._in_transaction,
            )  # fmt: skip
        return {TopicPartition(row["topic"], row["partition"]): row["id"] for row in rows}


def _event_id(value: bytes | None) -> uuid.UUID | None:
    """The ``id`` of an event's JSON, if it has a valid one."""
    try:
        found = orjson.loads(value or b"")
        return uuid.UUID(found["id"]) if isinstance(found, dict) else None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


async def write_gap(connection: Connection, group_id: str, gap: Gap) -> int:
    """The gap's row, and the rejects of the positions to be read again moved aside."""
    tp = gap.tp
    gap_id: int = await connection.fetchval(
        INSERT_GAP, group_id, tp.topic, tp.partition, gap.stored, gap.resumed,
        gap.kind.value, gap.log_start, gap.log_end,
    )  # fmt: skip
    if gap.stored is not None and gap.resumed < gap.stored:
        await connection.execute(SUPERSEDE_REJECTS, tp.topic, tp.partition, gap.resumed, gap_id)
    return gap_id


async def set_offset(connection: Connection, group_id: str, gap: Gap) -> tuple[int, int | None]:
    """The operator's move, under the partition's lock: the gap's id and the offset it
    replaced (``gap.stored`` is ignored: read here)."""
    tp = gap.tp
    async with connection.transaction():
        stored = await connection.fetchval(LOCK_OFFSET, group_id, tp.topic, tp.partition)
        await connection.execute(SET_OFFSET, group_id, tp.topic, tp.partition, gap.resumed)
        return await write_gap(connection, group_id, gap._replace(stored=stored)), stored
