"""The chain at ingest: the entries of a batch's new audit rows, in the batch's transaction.

``AuditChain`` is the write stage's one handle on the chain. Per batch:

1. ``begin(offsets)``: a ``Pending`` view of the heads valid at the batch's start;
2. after the audit rows are stored (and the offsets compare-and-set, which fences the
   partitions' chains exactly as it fences their rows): ``append`` loads the heads not
   known, asks PostgreSQL for the digests of the rows it just stored (``ROW_DIGEST``: the
   stored values, as a verifier reads them), and COPYs one entry per row into ``audit_chain``;
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

DIGEST_SIZE: Final = 32
ROW_DIGESTS: Final = f"""
SELECT string_agg({ROW_DIGEST}, ''::bytea ORDER BY u.at)
FROM unnest($1::uuid[]) WITH ORDINALITY AS u(wanted, at) JOIN audit_logs AS a ON a.id = u.wanted
"""
# Parallel arrays, and the hashes end to end in one bytea each: a round trip, and less for
# the driver to encode than a COPY of one record per entry.
INSERT_ENTRIES: Final = """
INSERT INTO audit_chain (tenant_id, topic, partition, seq, audit_id, prev_hash, hash)
SELECT e.tenant_id, e.topic, e.partition, e.seq, e.audit_id,
    substring($6::bytea FROM e.at::integer * 32 - 31 FOR 32),
    substring($7::bytea FROM e.at::integer * 32 - 31 FOR 32)
FROM unnest($1::uuid[], $2::text[], $3::integer[], $4::bigint[], $5::uuid[])
    WITH ORDINALITY AS e(tenant_id, topic, partition, seq, audit_id, at)
"""
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
        ids = [event.row.id for event in events]
        keys: list[ChainKey] = [
            (event.row.tenant_id, event.record.topic, event.record.partition) for event in events
        ]
        await pending.load(connection, keys)
        # One bytea of the digests end to end, in the order of ids: what asyncpg decodes fastest.
        digests: bytes | None = await connection.fetchval(ROW_DIGESTS, ids)
        if digests is None or len(digests) != DIGEST_SIZE * len(ids):
            raise RuntimeError("audit rows just stored are missing: no digest for some")
        heads = {key: pending.get(key) or (0, b"") for key in set(keys)}
        seqs: list[int] = []
        prevs: list[bytes] = []
        hashes: list[bytes] = []
        for at, key in enumerate(keys):
            seq, prev = heads[key]
            digest = _sha256(prev + digests[at * DIGEST_SIZE : (at + 1) * DIGEST_SIZE]).digest()
            heads[key] = (seq + 1, digest)
            seqs.append(seq + 1)
            prevs.append(prev)
            hashes.append(digest)
        for key, head in heads.items():
            pending.set(key, head)
        tenants, topics, partitions = zip(*keys, strict=True)
        try:
            await connection.execute(
                INSERT_ENTRIES, tenants, topics, partitions, seqs, ids,
                b"".join(prevs), b"".join(hashes),
            )  # fmt: skip
        except asyncpg.UniqueViolationError as exc:
            self._heads.forget()
            raise TransientError("audit chain heads were stale; reloading them") from exc
