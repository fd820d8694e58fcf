"""The chain at ingest: the entries of a batch's new audit rows, in the batch's transaction.

``AuditChain`` is the write stage's one handle on the chain. Per batch:

1. ``begin(offsets)``: a ``Pending`` view of the heads valid at the batch's start;
2. after the audit rows are stored (and the offsets compare-and-set, which fences the
   partitions' chains exactly as it fences their rows): ``append`` loads the heads not
   known, asks PostgreSQL for the digests of the rows it just stored (``ROW_DIGEST``: the
   stored values, as a verifier reads them), and COPYs one entry per row into ``audit_chain``;
3. ``commit(pending, offsets)`` only once the transaction committed.

Only the audits the transaction inserted are chained: the first event of each id not
stored before (a duplicate adds nothing), and not refused by PostgreSQL. An entry that
collides with a stored one means the heads were stale (an operator moved an offset back
under this replica): every head is dropped and ``TransientError`` raised, so the batch is
retried with heads loaded from PostgreSQL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from typing import Final
from uuid import UUID

import asyncpg

from worker.audit.chain import ROW_DIGEST
from worker.audit.heads import ChainHeads, ChainKey, Pending
from worker.errors import TransientError
from worker.records import Accepted, OffsetRange, RawRecord, TopicPartition
from worker.write.connection import Connection

CHAIN_COLUMNS: Final = ("tenant_id", "topic", "partition", "seq", "audit_id", "prev_hash", "hash")
ROW_DIGESTS: Final = f"SELECT id, {ROW_DIGEST} FROM audit_logs WHERE id = ANY($1::uuid[])"
STORED_IDS: Final = "SELECT id FROM audit_logs WHERE id = ANY($1::uuid[])"
_sha256 = hashlib.sha256


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
        keys: list[ChainKey] = [
            (event.row.tenant_id, event.record.topic, event.record.partition) for event in events
        ]
        await pending.load(connection, keys)
        rows = await connection.fetch(ROW_DIGESTS, [event.row.id for event in events])
        digests: dict[UUID, bytes] = {row[0]: row[1] for row in rows}
        records: list[tuple[object, ...]] = []
        for event, key in zip(events, keys, strict=True):
            seq, prev = pending.get(key) or (0, b"")
            digest = _sha256(prev + digests[event.row.id]).digest()
            records.append((*key, seq + 1, event.row.id, prev, digest))
            pending.set(key, (seq + 1, digest))
        try:
            await connection.copy_records_to_table(
                "audit_chain", records=records, columns=CHAIN_COLUMNS
            )
        except asyncpg.UniqueViolationError as exc:
            self._heads.forget()
            raise TransientError("audit chain heads were stale; reloading them") from exc
