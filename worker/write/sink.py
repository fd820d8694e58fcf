"""The write stage: one PostgreSQL transaction per batch, which makes ingestion exactly-once.

``PostgresSink.write(batch)`` commits everything of the batch at once, or nothing:

1. the compare-and-set of every partition's offset, first, so that a replica that lost
   its partitions writes nothing, and two replicas writing one partition serialize on it
   (the same statement finds which of the batch's ids are stored already);
2. the action events, merged into ``action_logs`` by the lifecycle rules of docs/contract.md;
3. the audit events, of which the first stored for an id stands, and their entries in the
   audit chain (``worker.audit.ingest``: the heads advance only once the batch committed);
4. the rejects, into ``ingest_rejects``.

Events of ids not stored yet are COPYed straight into their table: the events of an
action id repeated in the batch as the one row they merge into (``worker.write.plan``).
Only events of stored ids, and ties only PostgreSQL can break, go through a staging table
and ``INSERT ... SELECT ... ON CONFLICT``, which costs PostgreSQL about a third more.

What it raises (having written nothing):

- ``PartitionsFencedError`` naming every partition whose stored offset is not the batch's start;
- ``TransientError`` when PostgreSQL is unavailable (``worker.db.errors.classify``): retry
  the same batch;
- anything else it cannot classify (a bug, a schema mismatch) as it is.

A row PostgreSQL refuses (SQLSTATE class 22 or 23) never fails the batch: events whose tenant
was deleted since lookup become ``unknown_tenant`` rejects, and any other refused row is found
by splitting the lists in halves under savepoints (``worker.write.isolate``) and becomes a
``db_rejected`` reject; the rest is written. The write holds one pool connection for the
length of its transaction, prepared by ``worker.write.connection``; a connection that can
no longer write (a failover, a read-only server) is dropped, not reused (``worker.db.failover``).
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import NamedTuple
from uuid import UUID

import asyncpg

from worker.audit.heads import Pending
from worker.audit.ingest import AuditChain, new_audits
from worker.db.errors import classify, transient_as_error
from worker.db.failover import acquire
from worker.db.pool_mode import fetch
from worker.errors import PartitionsFencedError
from worker.records import Batch, OffsetRange, Reject, TopicPartition, WriteResult
from worker.write import sql
from worker.write.connection import Connection, copy, load
from worker.write.isolate import load_isolating, reject_unknown_tenants
from worker.write.plan import (
    ACTIONS,
    AUDITS,
    REJECTS_MAX_BYTES,
    Work,
    first_audits,
    offset_columns,
    parts_within,
    plan_actions,
)

_RECORD = operator.attrgetter("record")


class StoredIds(NamedTuple):
    """Which of a batch's ids are stored already, per table."""

    actions: set[UUID]
    audits: set[UUID]


class PostgresSink:
    """Writes batches into PostgreSQL; see the module docstring.

    The pool must be created with ``init=prepare_connection, reset=keep_session``
    (``worker.write.connection``).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        group_id: str,
        reject_raw_max_bytes: int,
        transaction_pooling: bool = False,
    ) -> None:
        self._pool = pool
        self._group_id = group_id
        self._raw_max = reject_raw_max_bytes
        # Behind a transaction-mode pooler: no state across transactions (worker.db.pool_mode).
        self._pooled = transaction_pooling
        self._chain = AuditChain()  # the audit chains' heads of the partitions written here

    async def write(self, batch: Batch) -> WriteResult:
        """Store the whole batch in one transaction; see the module docstring for the errors."""
        # Audits in Kafka order, so that halves split off to isolate a row keep first-wins.
        # A RawRecord sorts by topic, partition, offset: an offset is unique in its partition.
        audits = sorted(batch.audits, key=_RECORD)
        work = Work(list(batch.actions), audits, list(batch.rejects), batch.offsets)
        with transient_as_error("writing a batch"):
            while True:
                try:
                    return await self._attempt(work)
                except Exception as exc:
                    if classify(exc) != "row" or work.isolate:
                        raise
                    if not await reject_unknown_tenants(
                        self._pool, work, exc, in_transaction=self._pooled
                    ):
                        work.isolate = True

    async def load_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The stored next offset of those of the partitions that have one."""
        wanted = list(partitions)
        if not wanted:
            return {}
        topics, numbers = [tp.topic for tp in wanted], [tp.partition for tp in wanted]
        with transient_as_error("loading offsets"):
            rows = await fetch(
                self._pool, sql.LOAD_OFFSETS, self._group_id, topics, numbers,
                in_transaction=self._pooled,
            )  # fmt: skip
        return {TopicPartition(row["topic"], row["partition"]): row["next_offset"] for row in rows}

    async def _attempt(self, work: Work) -> WriteResult:
        refused: list[Reject] = []
        written: list[int] = []
        chain = self._chain.begin(work.offsets)
        # A connection that can no longer write (a failover) is dropped, not reused.
        async with acquire(self._pool, transaction=True) as connection:
            if work.isolate:
                await self._compare_and_set(connection, work.offsets)
                stored = await self._chain.stored(connection, work.audits)
                for target, events in ((ACTIONS, work.actions), (AUDITS, work.audits)):
                    lost = await load_isolating(connection, target, events, make_stage=self._pooled)
                    refused += lost
                    written.append(len(events) - len(lost))
                lost_audits = {reject.record for reject in refused}
                chained = new_audits(work.audits, stored, lost_audits)
                await self._chain.append(connection, chain, chained)
            else:
                await self._store_new_first(connection, work, chain)
                written = [len(work.actions), len(work.audits)]
            await self._store_rejects(connection, [*work.rejects, *refused])
        self._chain.commit(chain, work.offsets)
        reasons = Counter(reject.reason for reject in (*work.rejects, *refused))
        return WriteResult(actions=written[0], audits=written[1], rejects=dict(reasons))

    async def _compare_and_set(
        self,
        connection: Connection,
        offsets: dict[TopicPartition, OffsetRange],
        action_ids: Sequence[UUID] = (),
        audit_ids: Sequence[UUID] = (),
    ) -> StoredIds:
        """Move every partition's offset, or raise naming those fenced; and, in the same
        round trip, find which of the ids are stored already."""
        advance = [(tp, r) for tp, r in offsets.items() if r.start is not None]
        claim = [(tp, r) for tp, r in offsets.items() if r.start is None]
        moved: set[tuple[str, int]] = set()
        stored = StoredIds(set(), set())
        if claim:
            rows = await connection.fetch(
                sql.CLAIM_OFFSETS, self._group_id, *offset_columns(claim, with_start=False)
            )
            moved.update((row["topic"], row["partition"]) for row in rows)
        if advance or action_ids or audit_ids:
            rows = await connection.fetch(
                sql.ADVANCE_OFFSETS,
                self._group_id,
                *offset_columns(advance, with_start=True),
                action_ids,
                audit_ids,
            )
            for kind, topic, partition, stored_id in rows:
                if kind == "offset":
                    moved.add((topic, partition))
                else:
                    (stored.actions if kind == "action" else stored.audits).add(stored_id)
        fenced = {(tp.topic, tp.partition) for tp in offsets} - moved
        if fenced:
            raise PartitionsFencedError(frozenset(fenced))
        return stored

    async def _store_new_first(self, connection: Connection, work: Work, chain: Pending) -> None:
        """COPY the events of new ids straight into the tables; merge only the others.

        A refused row, or an id another writer stores meanwhile, fails the COPY like the
        merge would: the batch is then isolated.
        """
        events_per_id = Counter(event.row.id for event in work.actions)
        audit_ids = list({event.row.id for event in work.audits})
        stored = await self._compare_and_set(
            connection, work.offsets, list(events_per_id), audit_ids
        )
        new_rows, to_merge = plan_actions(work.actions, events_per_id, stored.actions)
        await copy(connection, "action_logs", sql.ACTION_COLUMNS, new_rows)
        await load(connection, ACTIONS, to_merge, make_stage=self._pooled)
        records = first_audits(work.audits, stored.audits)
        await copy(connection, "audit_logs", sql.AUDIT_COLUMNS, records)
        await self._chain.append(connection, chain, new_audits(work.audits, stored.audits))

    async def _store_rejects(self, connection: Connection, rejects: Sequence[Reject]) -> None:
        for part in parts_within(REJECTS_MAX_BYTES, rejects, self._raw_max):
            records = [self._reject_record(reject) for reject in part]
            await connection.execute(sql.INSERT_REJECTS, *map(list, zip(*records, strict=True)))

    def _reject_record(self, reject: Reject) -> tuple[object, ...]:
        record, value = reject.record, reject.record.value
        raw = None if value is None else value[: self._raw_max]
        size = 0 if value is None else len(value)
        return (record.topic, record.partition, record.offset, record.key, raw, size,
                reject.reason.value, _storable(reject.detail))  # fmt: skip


def _storable(text: str) -> str:
    """Text PostgreSQL accepts (no NUL, no lone surrogate), so a detail cannot fail the batch."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
