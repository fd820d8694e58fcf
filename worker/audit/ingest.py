"""The chain at ingest: the entries of a batch's new audit rows, in the batch's transaction.

``AuditChain`` is the write stage's one handle on the chain. Per batch:

1. ``begin(offsets)``: a ``Pending`` view of the heads valid at the batch's start;
2. after the audit rows are stored (and the offsets compare-and-set, which fences the
   partitions' chains exactly as it fences their rows): ``append`` hands PostgreSQL the
   rows' ids in chain order and the heads it holds, and ``audit_chain_append`` (migration
   007) reads the heads not known, computes each stored row's digest (from the stored
   values, as a verifier reads them) and its entry's hash, inserts the entries and
   returns the new heads: one round trip, and no hashing in the worker;
3. ``commit(pending, offsets)`` only once the transaction committed.

Only the audits the transaction inserted are chained: the first event of each id not
stored before (a duplicate adds nothing), and not refused by PostgreSQL. (On the isolation
path, which inserts with ON CONFLICT DO NOTHING, an id another partition's writer stores
between the lookup and the insert is chained here too, from the row as stored: it then
appears in two chains, each of which verifies.) An entry that
collides with a stored one means the heads were stale (an operator moved an offset back
under this replica): every head is dropped and ``TransientError`` raised, so the batch is
retried with heads loaded from PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Final
from uuid import UUID

import asyncpg

from worker.audit.heads import ChainHeads, ChainKey, Pending
from worker.errors import TransientError
from worker.records import Accepted, OffsetRange, RawRecord, TopicPartition
from worker.write.connection import Connection

# Each row's chain goes as the text of an array: half the driver's time for an integer[]
# (which checks every element for nesting), and less for PostgreSQL to read.
APPEND: Final = """
SELECT chain, seq, hash FROM audit_chain_append($1, $2::text::integer[], $3, $4, $5, $6, $7)
"""
STORED_IDS: Final = "SELECT id FROM audit_logs WHERE id = ANY($1::uuid[])"


def new_audits(
    audits: Sequence[Accepted], stored: Collection[UUID], refused: Collection[RawRecord] = ()
) -> list[Accepted]:
    """The events whose rows the transaction inserts: first-wins, as ``first_audits``."""
    seen = set(stored)
    chained: list[Accepted] = []
    for event in audits:
        if event.row.id not in seen:
            seen.add(event.row.id)
            if not refused or event.record not in refused:
                chained.append(event)
    return chained


class AuditChain:
    """Appends a batch's chain entries and keeps the heads; see the module docstring."""

    def __init__(self) -> None:
        self._heads = ChainHeads()

    def begin(self, offsets: Mapping[TopicPartition, OffsetRange]) -> Pending:
        return self._heads.pending(offsets)

    def commit(self, pending: Pending, offsets: Mapping[TopicPartition, OffsetRange]) -> None:
        self._heads.commit(pending, offsets)

    async def stored(self, connection: Connection, audits: Sequence[Accepted]) -> set[UUID]:
        """Which of the audits' ids are stored already (the isolation path's first-wins)."""
        if not audits:
            return set()
        rows = await connection.fetch(STORED_IDS, list({event.row.id for event in audits}))
        return {row[0] for row in rows}

    async def append(
        self, connection: Connection, pending: Pending, events: Sequence[Accepted]
    ) -> None:
        """Chain the rows just stored for ``events`` (see ``new_audits``), in their order."""
        if not events:
            return
        # A chain's index in the arrays (theirs start at 1), keyed by the tenant's int: every
        # event has its own UUID object, whose __hash__ and __eq__ are Python code (2x slower).
        number: dict[tuple[int, str, int], int] = {}
        chain_of = [
            number.setdefault(
                (event.row.tenant_id.int, event.record.topic, event.record.partition),
                len(number) + 1,
            )
            for event in events
        ]
        chains: list[ChainKey] = [(UUID(int=tenant), topic, part) for tenant, topic, part in number]
        heads = [pending.get(key) for key in chains]
        tenants, topics, partitions = zip(*chains, strict=True)
        try:
            rows = await connection.fetch(
                APPEND, [event.row.id for event in events], _array_text(chain_of),
                tenants, topics, partitions,
                [head and head[0] for head in heads], [head and head[1] for head in heads],
            )  # fmt: skip
        except asyncpg.UniqueViolationError as exc:
            self._heads.forget()
            raise TransientError("audit chain heads were stale; reloading them") from exc
        for chain, seq, head_hash in rows:
            pending.set(chains[chain - 1], (seq, head_hash))


def _array_text(numbers: list[int]) -> str:
    """An integer[] as PostgreSQL reads it from text: ``{1,2,3}``."""
    return "{" + ",".join(map(str, numbers)) + "}"
