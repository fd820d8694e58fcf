"""What the write stage sends where: pure planning, no I/O.

- ``plan_actions``: the ``action_logs`` records COPYed straight into the table (ids not
  stored yet, the events of one id merged in Python by ``merged_record``), and the events
  left to PostgreSQL's merge (stored ids, ties only PostgreSQL can break);
- ``first_audits``: the ``audit_logs`` records COPYed, the first event of each new id;
- ``ACTIONS`` and ``AUDITS``: a staging table each, with the statement that merges it,
  chosen by whether the events' ids repeat (``Target.statement``);
- ``parts_within``: the rejects in parts of bounded size, one statement each;
- ``offset_columns``: offset ranges as the parallel arrays the compare-and-set unnests.
- ``Work``: what is left to write of a batch, as refused rows move to its rejects.

Nothing here raises on what the sink passes: ``plan_actions`` expects every action's id
counted in ``events_per_id`` (``KeyError`` otherwise), ``merged_record`` at least one row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from uuid import UUID

from worker.records import (
    Accepted,
    ActionRow,
    AuditRow,
    OffsetRange,
    Reject,
    TopicPartition,
)
from worker.write import sql

REJECTS_MAX_BYTES = 64 * 1024 * 1024  # of raw values per reject statement


@dataclass(frozen=True)
class Target:
    """A table the events of one kind go to, through their staging table."""

    stage: str
    record: Callable[[Accepted], tuple[object, ...]]
    distinct_ids: str  # the statement when every event has its own id
    repeated_ids: str  # the one that first picks or merges the events of one id

    def statement(self, events: Sequence[Accepted]) -> str:
        # Merging within the batch costs a sort: about 15% of the merge of 5000 actions.
        distinct = len({event.row.id for event in events}) == len(events)
        return self.distinct_ids if distinct else self.repeated_ids


ACTIONS = Target(sql.STAGE_ACTIONS, lambda event: event.row, sql.UPSERT_ACTIONS, sql.MERGE_ACTIONS)
AUDITS = Target(
    sql.STAGE_AUDITS,
    lambda event: (*event.row, event.record.topic, event.record.partition, event.record.offset),
    sql.INSERT_AUDITS,
    sql.INSERT_FIRST_AUDITS,
)


@dataclass
class Work:
    """What is left to write of one batch; rows move to ``rejects`` as PostgreSQL refuses them."""

    actions: list[Accepted]
    audits: list[Accepted]
    rejects: list[Reject]
    offsets: dict[TopicPartition, OffsetRange]
    isolate: bool = False  # write under savepoints, splitting lists to find refused rows


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


def offset_columns(
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
