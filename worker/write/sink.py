"""The write stage: one PostgreSQL transaction per batch, which makes ingestion exactly-once.

``PostgresSink.write(batch)`` commits everything of the batch at once, or nothing:

1. the compare-and-set of every partition's offset, first, so that a replica that lost
   its partitions writes nothing, and two replicas writing one partition serialize on it
   (the same statement finds which of the batch's ids are stored already);
2. the action events, merged into ``action_logs`` by the lifecycle rules of SCHEMA.md;
3. the audit events, of which the first stored for an id stands;
4. the rejects, into ``ingest_rejects``.

Events of ids not stored yet are COPYed straight into their table: the events of an
action id repeated in the batch as the one row they merge into (see ``merged_record``).
Only events of stored ids, and ties only PostgreSQL can break, go through a staging table
and ``INSERT ... SELECT ... ON CONFLICT``, which costs PostgreSQL about a third more.

What it raises (having written nothing):

- ``PartitionsFencedError`` naming every partition whose stored offset is not the batch's start;
- ``TransientError`` when PostgreSQL is unavailable (see ``classify``): retry the same batch;
- anything else it cannot classify (a bug, a schema mismatch) as it is.

A row PostgreSQL refuses (SQLSTATE class 22 or 23) never fails the batch: events whose tenant
was deleted since lookup become ``unknown_tenant`` rejects, and any other refused row is found
by splitting the lists in halves under savepoints and becomes a ``db_rejected`` reject;
the rest is written. The write holds one pool connection for the length of its transaction.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, NamedTuple
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from worker.errors import PartitionsFencedError, TransientError
from worker.records import (
    Accepted,
    ActionRow,
    AuditRow,
    Batch,
    OffsetRange,
    Reject,
    RejectReason,
    TopicPartition,
    WriteResult,
)
from worker.write import sql
from worker.write.codecs import use_fast_codecs

Kind = Literal["transient", "row", "fatal"]
Connection = PoolConnectionProxy

# Connection failures (08), resources such as too many connections (53), shutdown and
# cancelled statements (57), and lock waits, conflicts or a read-only failover target.
_TRANSIENT_CLASSES = frozenset({"08", "53", "57"})
_TRANSIENT_STATES = frozenset({"40001", "40P01", "55P03", "25006"})
# Data exceptions (22) and integrity constraint violations (23): the row's own fault.
_ROW_CLASSES = frozenset({"22", "23"})
_FOREIGN_KEY_VIOLATION = "23503"
REJECTS_MAX_BYTES = 64 * 1024 * 1024  # of raw values per reject statement
_RECORD = operator.attrgetter("record")


def classify(exc: BaseException) -> Kind:
    """Retry the batch (``transient``), reject the row (``row``) or stop (``fatal``).

    An error raised while cleaning up after a lost connection (the rollback finds the
    connection busy or closed) is as transient as the loss that caused it.
    """
    kind = _classify_one(exc)
    cause = exc.__cause__ or exc.__context__
    if kind == "fatal" and cause is not None and classify(cause) == "transient":
        return "transient"
    return kind


def _classify_one(exc: BaseException) -> Kind:
    if isinstance(exc, OSError):  # includes TimeoutError, which asyncio.TimeoutError is
        return "transient"
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str):
        if sqlstate[:2] in _TRANSIENT_CLASSES or sqlstate in _TRANSIENT_STATES:
            return "transient"
        if sqlstate[:2] in _ROW_CLASSES:
            return "row"
    if isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc):
        return "transient"
    if isinstance(exc, ValueError | OverflowError):  # a value the driver cannot encode
        return "row"
    if isinstance(exc, asyncpg.InternalClientError) and "another operation" in str(exc):
        # A connection the server broke mid-exchange can surface as asyncpg's protocol
        # state error; the pool discards that connection, so the retry gets a fresh one.
        return "transient"
    return "fatal"


def describe(exc: BaseException) -> str:
    """SQLSTATE, error class and constraint of an error: never the values of a row."""
    parts = [getattr(exc, "sqlstate", None) or "client", type(exc).__name__]
    for attribute in ("table_name", "constraint_name"):
        if value := getattr(exc, attribute, None):
            parts.append(f"{attribute.removesuffix('_name')}={value}")
    return " ".join(parts)


@contextmanager
def transient_as_error(doing: str) -> Iterator[None]:
    """Translate an unavailable database into TransientError; let everything else through."""
    try:
        yield
    except Exception as exc:
        if classify(exc) == "transient":
            # Messages of these classes name the server's state, never a row's values.
            message = str(exc).partition("\n")[0]
            raise TransientError(
                f"PostgreSQL unavailable while {doing}: {describe(exc)}: {message}"
            ) from exc
        raise


@dataclass(frozen=True)
class _Target:
    """A table the events of one kind go to, through their staging table."""

    stage: str
    record: Callable[[Accepted], tuple[object, ...]]
    distinct_ids: str  # the statement when every event has its own id
    repeated_ids: str  # the one that first picks or merges the events of one id

    def statement(self, events: Sequence[Accepted]) -> str:
        # Merging within the batch costs a sort: about 15% of the merge of 5000 actions.
        distinct = len({event.row.id for event in events}) == len(events)
        return self.distinct_ids if distinct else self.repeated_ids


ACTIONS = _Target(sql.STAGE_ACTIONS, lambda event: event.row, sql.UPSERT_ACTIONS, sql.MERGE_ACTIONS)
AUDITS = _Target(
    sql.STAGE_AUDITS,
    lambda event: (*event.row, event.record.topic, event.record.partition, event.record.offset),
    sql.INSERT_AUDITS,
    sql.INSERT_FIRST_AUDITS,
)


class StoredIds(NamedTuple):
    """Which of a batch's ids are stored already, per table."""

    actions: set[UUID]
    audits: set[UUID]


@dataclass
class _Work:
    """What is left to write of one batch; rows move to ``rejects`` as PostgreSQL refuses them."""

    actions: list[Accepted]
    audits: list[Accepted]
    rejects: list[Reject]
    offsets: dict[TopicPartition, OffsetRange]
    isolate: bool = False  # write under savepoints, splitting lists to find refused rows


async def prepare_connection(connection: asyncpg.Connection) -> None:
    """Pool ``init``: the staging tables, once per connection (emptied at each commit),
    and the faster codecs of ``worker.write.codecs``."""
    await connection.execute(sql.CREATE_STAGING)
    await use_fast_codecs(connection)


async def keep_session(_connection: asyncpg.Connection) -> None:
    """Pool ``reset``: nothing beyond asyncpg's own rollback of a transaction left open.

    The default reset (RESET ALL, CLOSE ALL, UNLISTEN *, advisory unlocks) costs a
    round trip after every write, for session state these connections never take.
    """


class PostgresSink:
    """Writes batches into PostgreSQL; see the module docstring.

    The pool must be created with ``init=prepare_connection, reset=keep_session``.
    """

    def __init__(self, pool: asyncpg.Pool, *, group_id: str, reject_raw_max_bytes: int) -> None:
        self._pool = pool
        self._group_id = group_id
        self._raw_max = reject_raw_max_bytes

    async def write(self, batch: Batch) -> WriteResult:
        """Store the whole batch in one transaction; see the module docstring for the errors."""
        # Audits in Kafka order, so that halves split off to isolate a row keep first-wins.
        # A RawRecord sorts by topic, partition, offset: an offset is unique in its partition.
        audits = sorted(batch.audits, key=_RECORD)
        work = _Work(list(batch.actions), audits, list(batch.rejects), batch.offsets)
        with transient_as_error("writing a batch"):
            while True:
                try:
                    return await self._attempt(work)
                except Exception as exc:
                    if classify(exc) != "row" or work.isolate:
                        raise
                    if not await self._reject_unknown_tenants(work, exc):
                        work.isolate = True

    async def load_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The stored next offset of those of the partitions that have one."""
        wanted = list(partitions)
        if not wanted:
            return {}
        topics, numbers = [tp.topic for tp in wanted], [tp.partition for tp in wanted]
        with transient_as_error("loading offsets"):
            rows = await self._pool.fetch(sql.LOAD_OFFSETS, self._group_id, topics, numbers)
        return {TopicPartition(row["topic"], row["partition"]): row["next_offset"] for row in rows}

    async def _attempt(self, work: _Work) -> WriteResult:
        refused: list[Reject] = []
        written: list[int] = []
        async with self._pool.acquire() as connection, connection.transaction():
            if work.isolate:
                await self._compare_and_set(connection, work.offsets)
                for target, events in ((ACTIONS, work.actions), (AUDITS, work.audits)):
                    lost = await _load_isolating(connection, target, events)
                    refused += lost
                    written.append(len(events) - len(lost))
            else:
                await self._store_new_first(connection, work)
                written = [len(work.actions), len(work.audits)]
            await self._store_rejects(connection, [*work.rejects, *refused])
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
                sql.CLAIM_OFFSETS, self._group_id, *_columns(claim, with_start=False)
            )
            moved.update((row["topic"], row["partition"]) for row in rows)
        if advance or action_ids or audit_ids:
            rows = await connection.fetch(
                sql.ADVANCE_OFFSETS,
                self._group_id,
                *_columns(advance, with_start=True),
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

    async def _store_new_first(self, connection: Connection, work: _Work) -> None:
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
        await _copy(connection, "action_logs", sql.ACTION_COLUMNS, new_rows)
        await _load(connection, ACTIONS, to_merge)
        records = first_audits(work.audits, stored.audits)
        await _copy(connection, "audit_logs", sql.AUDIT_COLUMNS, records)

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

    async def _reject_unknown_tenants(self, work: _Work, exc: BaseException) -> bool:
        """After a foreign key violation, reject the events of tenants deleted since lookup."""
        if getattr(exc, "sqlstate", None) != _FOREIGN_KEY_VIOLATION:
            return False
        wanted = list({event.row.tenant_id for event in (*work.actions, *work.audits)})
        rows = await self._pool.fetch(sql.EXISTING_TENANTS, wanted)
        existing: set[UUID] = {row["id"] for row in rows}
        missing = [e for e in (*work.actions, *work.audits) if e.row.tenant_id not in existing]
        detail = "tenant_id not in tenants (deleted since lookup)"
        work.rejects += [Reject(e.record, RejectReason.UNKNOWN_TENANT, detail) for e in missing]
        work.actions = [e for e in work.actions if e.row.tenant_id in existing]
        work.audits = [e for e in work.audits if e.row.tenant_id in existing]
        return bool(missing)


def parts_within(max_bytes: int, rejects: Sequence[Reject], raw_max: int) -> Iterator[list[Reject]]:
    """The rejects in parts whose stored raw values stay within ``max_bytes`` (one at least).

    A statement's parameters travel in one message, which PostgreSQL caps at 1 GB;
    a batch of large rejected messages could exceed that, one part of it cannot.
    """
    part: list[Reject] = []
    size = 0
    for reject in rejects:
        length = min(len(reject.record.value or b""), raw_max)
        if part and size + length > max_bytes:
            yield part
            part, size = [], 0
        part.append(reject)
        size += length
    if part:
        yield part


def _columns(
    ranges: list[tuple[TopicPartition, OffsetRange]], *, with_start: bool
) -> list[list[object]]:
    """Parallel arrays for ``unnest``: topics, partitions, [starts,] nexts."""
    columns: list[list[object]] = [
        [tp.topic for tp, _ in ranges],
        [tp.partition for tp, _ in ranges],
    ]
    if with_start:
        columns.append([r.start for _, r in ranges])
    columns.append([r.next for _, r in ranges])
    return columns


async def _load(
    connection: Connection, target: _Target, events: Sequence[Accepted]
) -> list[Reject]:
    """COPY the events into the target's staging table, then merge them into the table."""
    if events:
        records = [target.record(event) for event in events]
        await connection.copy_records_to_table(target.stage, records=records)
        await connection.execute(target.statement(events))
    return []


def plan_actions(
    actions: Sequence[Accepted], events_per_id: Mapping[UUID, int], stored: set[UUID]
) -> tuple[list[tuple[object, ...]], list[Accepted]]:
    """The ``action_logs`` records to COPY, and the events left to PostgreSQL's merge.

    An id not stored is a plain insert: of its one event, or of the record its events
    in the batch merge into (``merged_record``). Stored ids, and ties only PostgreSQL
    can break, are merged.
    """
    new_rows: list[tuple[object, ...]] = []
    to_merge: list[Accepted] = []
    repeated: dict[UUID, list[ActionRow | AuditRow]] = {}
    for event in actions:
        row = event.row
        if stored and row.id in stored:
            to_merge.append(event)
        elif events_per_id[row.id] == 1:
            new_rows.append((*row, row.occurred_at))  # created_at = updated_at = occurred_at
        else:
            repeated.setdefault(row.id, []).append(row)
    tied: set[UUID] = set()
    for action_id, rows in repeated.items():
        merged = merged_record(rows)
        if merged is None:
            tied.add(action_id)
        else:
            new_rows.append(merged)
    if tied:
        to_merge += [event for event in actions if event.row.id in tied]
    return new_rows, to_merge


def first_audits(audits: Sequence[Accepted], stored: set[UUID]) -> list[tuple[object, ...]]:
    """The ``audit_logs`` records to COPY: the first event (in Kafka order) of each id not
    stored; later ones of its id are no-ops under first-wins."""
    seen = set(stored)
    records: list[tuple[object, ...]] = []
    for event in audits:
        if event.row.id not in seen:
            seen.add(event.row.id)
            records.append((*event.row, event.row.occurred_at))
    return records


def merged_record(rows: Sequence[ActionRow | AuditRow]) -> tuple[object, ...] | None:
    """The ``action_logs`` record that events of one new id make, by the lifecycle rules.

    The fields of the latest event, created_at the earliest occurred_at. None when
    events that differ share the latest instant: PostgreSQL's merge breaks that tie
    by content (a hash of the typed values), which Python cannot reproduce exactly.
    """
    latest = max(row.occurred_at for row in rows)
    winners = [row for row in rows if row.occurred_at == latest]
    if any(row[1:-1] != winners[0][1:-1] for row in winners[1:]):
        return None
    earliest = min(row.occurred_at for row in rows)
    return (*winners[0][:-1], earliest, latest)


async def _copy(
    connection: Connection, table: str, columns: Sequence[str], records: list[tuple[object, ...]]
) -> None:
    if records:
        await connection.copy_records_to_table(table, records=records, columns=columns)


async def _load_isolating(
    connection: Connection, target: _Target, events: Sequence[Accepted]
) -> list[Reject]:
    """Load under a savepoint; on a refused row split in halves until it stands alone."""
    if not events:
        return []
    try:
        async with connection.transaction():  # nested: a savepoint
            await _load(connection, target, events)
            await connection.execute(f"TRUNCATE {target.stage}")
    except Exception as exc:
        if classify(exc) != "row":
            raise
        if len(events) == 1:
            return [_refused(events[0], exc)]
        half = len(events) // 2
        first = await _load_isolating(connection, target, events[:half])
        return first + await _load_isolating(connection, target, events[half:])
    return []


def _storable(text: str) -> str:
    """Text PostgreSQL accepts (no NUL, no lone surrogate), so a detail cannot fail the batch."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _refused(event: Accepted, exc: BaseException) -> Reject:
    if getattr(exc, "sqlstate", None) == _FOREIGN_KEY_VIOLATION:
        return Reject(event.record, RejectReason.UNKNOWN_TENANT, describe(exc))
    return Reject(event.record, RejectReason.DB_REJECTED, describe(exc))
