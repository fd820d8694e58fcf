"""The sink chains the audit rows it stores, in the batch's transaction, on real PostgreSQL."""

from __future__ import annotations

import itertools
import uuid

import asyncpg
import pytest

from tests.integration.write.events import AUDITS_TP, audit, batch
from worker.audit.chain import GENESIS, entry_hash, row_bytes, row_digest
from worker.audit.verify import verify
from worker.errors import PartitionsFencedError
from worker.records import Accepted, OffsetRange
from worker.write.sink import PostgresSink

pytestmark = pytest.mark.timeout(60)


async def chain_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM audit_chain ORDER BY tenant_id, topic, partition, seq")


async def test_stored_audits_are_chained_in_kafka_order(
    sink: PostgresSink, pool: asyncpg.Pool, tenant: uuid.UUID
) -> None:
    """Each new audit gets the next seq of its chain; a duplicate id adds nothing."""
    first = [audit(uuid.uuid4(), tenant, offset=o) for o in range(3)]
    again = audit(first[1].row.id, tenant, action_name="delete", offset=3)
    await sink.write(batch(*first, again, offsets={AUDITS_TP: OffsetRange(None, 4)}))
    later = audit(uuid.uuid4(), tenant, offset=4)
    await sink.write(batch(later, again, offsets={AUDITS_TP: OffsetRange(4, 5)}))
    rows = await chain_rows(pool)
    assert [(r["seq"], r["audit_id"]) for r in rows] == [
        (1, first[0].row.id), (2, first[1].row.id), (3, first[2].row.id), (4, later.row.id)
    ]  # fmt: skip
    assert rows[0]["prev_hash"] == GENESIS
    assert all(r["prev_hash"] == p["hash"] for p, r in itertools.pairwise(rows))
    async with pool.acquire() as connection:
        report = await verify(connection)
    assert (report.intact, report.chains, report.entries) == (True, 1, 4)


async def test_postgres_and_python_compute_the_same_digest(
    sink: PostgresSink, pool: asyncpg.Pool, tenant: uuid.UUID
) -> None:
    """Each entry's hash is SHA-256(prev || digest of the row as PostgreSQL prints it),
    whatever the row holds: NULLs, non-ASCII, quotes, JSON that jsonb rewrites, a
    timestamp on a whole second."""
    plain = audit(uuid.uuid4(), tenant, offset=0)
    awkward = plain.row._replace(
        id=uuid.uuid4(),
        user_id=None,
        action='créé "x"\n',
        resource_id="ü:1~",
        changes='{"b":1.50, "a": [1e2, -0, "\\u00e9\\n"], "a": {"z": null}}',
        ip_address=None,
        user_agent="",
        metadata='{"nested": {"long key": true, "k": 0.0001}}',
        occurred_at=plain.row.occurred_at.replace(microsecond=0),
    )
    events = [plain, Accepted(awkward, plain.record._replace(offset=1))]
    await sink.write(batch(*events, offsets={AUDITS_TP: OffsetRange(None, 2)}))
    prev = GENESIS
    for event, entry in zip(events, await chain_rows(pool), strict=True):
        fields = await pool.fetchrow(
            f"SELECT {', '.join(row_bytes())} FROM audit_logs WHERE id = $1", event.row.id
        )
        assert fields is not None
        assert entry["audit_id"] == event.row.id
        assert entry["hash"] == entry_hash(prev, row_digest(list(fields.values())))
        prev = entry["hash"]


async def test_refused_audit_is_not_chained(
    sink: PostgresSink, pool: asyncpg.Pool, tenant: uuid.UUID
) -> None:
    """On the isolation path only the rows inserted are chained; the chain stays intact."""
    good = [audit(uuid.uuid4(), tenant, offset=o) for o in range(2)]
    bad = audit(uuid.uuid4(), tenant, resource_id="r" * 300, offset=2)
    await sink.write(batch(good[0], bad, good[1], offsets={AUDITS_TP: OffsetRange(None, 3)}))
    assert [r["audit_id"] for r in await chain_rows(pool)] == [e.row.id for e in good]
    async with pool.acquire() as connection:
        assert (await verify(connection)).intact


async def test_a_fenced_write_leaves_the_heads_and_another_replica_continues(
    pool: asyncpg.Pool, tenant: uuid.UUID
) -> None:
    """Replica A is fenced after B took the partition; B's chain goes on from A's entries."""
    a = PostgresSink(pool, group_id="g", reject_raw_max_bytes=16)
    b = PostgresSink(pool, group_id="g", reject_raw_max_bytes=16)
    await a.write(
        batch(audit(uuid.uuid4(), tenant, offset=0), offsets={AUDITS_TP: OffsetRange(None, 1)})
    )
    await b.write(
        batch(audit(uuid.uuid4(), tenant, offset=1), offsets={AUDITS_TP: OffsetRange(1, 2)})
    )
    with pytest.raises(PartitionsFencedError):
        await a.write(
            batch(audit(uuid.uuid4(), tenant, offset=1), offsets={AUDITS_TP: OffsetRange(1, 2)})
        )
    await a.write(
        batch(audit(uuid.uuid4(), tenant, offset=2), offsets={AUDITS_TP: OffsetRange(2, 3)})
    )
    assert [r["seq"] for r in await chain_rows(pool)] == [1, 2, 3]
    async with pool.acquire() as connection:
        assert (await verify(connection)).intact
