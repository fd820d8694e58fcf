"""``log-ingest audit verify``: recompute every audit chain from the stored rows.

Reads in one REPEATABLE READ, read-only transaction (one snapshot of rows, chain and
seals), streaming the chain entries with their rows in chain order through a cursor, so
memory stays bounded whatever the table's size. Per chain it reports the first break:

- ``changed``: an entry's hash is not SHA-256(prev_hash || digest of its row as stored),
  or its prev_hash is not the previous entry's hash (a row or an entry was altered);
- ``deleted``: a sequence number is missing, or an entry's audit row is gone (and not
  pruned by retention, which keeps the digest of such a row in ``audit_chain_pruned``);
- ``truncated``: the chain ends before the head exported earlier (``--heads``), or the
  entry at that head's sequence differs from it (a restored older copy that went on);

and, over the whole table, audit rows with no chain entry: ``inserted`` when created at or
after the chain began (``audit_chain_start``), ``before_chain`` (not a break) otherwise.
Each chain starts from its seal when retention cut it. Verification reads the rows as
PostgreSQL prints them and hashes them here (``worker.audit.chain``): it does not trust
any function of the database it checks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from worker.audit.chain import GENESIS, entry_hash, row_bytes, row_digest
from worker.audit.heads import ChainKey, Head

_ENTRIES = f"""
SELECT c.tenant_id, c.topic, c.partition, c.seq, c.prev_hash, c.hash, c.audit_id,
    a.id IS NOT NULL AS present, p.digest, {", ".join(row_bytes("a."))}
FROM audit_chain AS c LEFT JOIN audit_logs AS a ON a.id = c.audit_id
LEFT JOIN audit_chain_pruned AS p ON (p.tenant_id, p.topic, p.partition, p.seq)
    = (c.tenant_id, c.topic, c.partition, c.seq)
WHERE $1::uuid IS NULL OR c.tenant_id = $1
ORDER BY c.tenant_id, c.topic, c.partition, c.seq
"""
_SEALS = """
SELECT tenant_id, topic, partition, seq, hash FROM audit_chain_seals
WHERE $1::uuid IS NULL OR tenant_id = $1
"""
# Audit rows no chain entry names, per tenant: after the chain began, and before it.
_UNCHAINED = """
SELECT a.tenant_id, count(*) FILTER (WHERE a.created_at >= s.began_at) AS inserted,
    count(*) FILTER (WHERE a.created_at < s.began_at) AS before_chain,
    min(a.id::text) FILTER (WHERE a.created_at >= s.began_at) AS example
FROM audit_logs AS a CROSS JOIN audit_chain_start AS s
WHERE ($1::uuid IS NULL OR a.tenant_id = $1)
    AND NOT EXISTS (SELECT FROM audit_chain AS c WHERE c.audit_id = a.id)
GROUP BY a.tenant_id
"""
PREFETCH = 5000


@dataclass(frozen=True)
class Break:
    """The first place a chain (or, for ``inserted``, a tenant's rows) stops being intact."""

    kind: str  # changed, deleted, inserted, truncated
    tenant_id: str
    topic: str | None
    partition: int | None
    seq: int | None
    detail: str


@dataclass
class Report:
    """What ``verify`` found; intact when there is no break."""

    chains: int = 0
    entries: int = 0
    before_chain: int = 0  # audit rows written before the chain began (not a break)
    breaks: list[Break] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def intact(self) -> bool:
        return not self.breaks


@dataclass
class _Chain:
    """The chain being walked: where it must go on, and what was seen of the exported head."""

    key: ChainKey
    next_seq: int
    prev: bytes
    broken: bool = False
    last_seq: int = 0
    at_head: bytes | None = None  # the stored hash at the exported head's seq


async def verify(
    connection: asyncpg.Connection,
    tenant: UUID | None = None,
    heads: Mapping[ChainKey, Head] | None = None,
) -> Report:
    """Check every chain (of one tenant), against exported ``heads`` when given."""
    started = time.perf_counter()
    report = Report()
    heads = heads or {}
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        seals: dict[ChainKey, Head] = {
            (row[0], row[1], row[2]): (row[3], row[4])
            for row in await connection.fetch(_SEALS, tenant)
        }
        walked: dict[ChainKey, _Chain] = {}
        chain: _Chain | None = None
        cursor = await connection.cursor(_ENTRIES, tenant)
        # A list at a time (no await per row), the next one read while this one is checked.
        ahead = asyncio.ensure_future(cursor.fetch(PREFETCH))
        while rows := await ahead:
            ahead = asyncio.ensure_future(cursor.fetch(PREFETCH))
            for row in rows:
                key: ChainKey = (row[0], row[1], row[2])
                if chain is None or chain.key != key:
                    chain = walked[key] = _start(key, seals.get(key), heads.get(key))
                _step(chain, row, heads.get(key), report)
            report.entries += len(rows)
        await _unchained(connection, tenant, report)
    for key, seal in seals.items():
        walked.setdefault(key, _start(key, seal, heads.get(key)))
    report.chains = len(walked)
    _against_heads(walked, heads, report)
    report.seconds = time.perf_counter() - started
    return report


def _start(key: ChainKey, seal: Head | None, head: Head | None) -> _Chain:
    """A chain starts after its seal (retention's cut), or from GENESIS."""
    seq, prev = seal if seal is not None else (0, GENESIS)
    sealed_head = prev if seal is not None and head is not None and head[0] == seq else None
    return _Chain(key, seq + 1, prev, last_seq=seq, at_head=sealed_head)


def _step(chain: _Chain, row: asyncpg.Record, head: Head | None, report: Report) -> None:
    """Check one entry against the chain so far; note the chain's first break."""
    seq, prev_hash, stored_hash = row[3], row[4], row[5]
    chain.last_seq = seq
    if head is not None and seq == head[0]:
        chain.at_head = stored_hash
    if chain.broken:
        return
    # A row retention deleted past the seal left its digest in audit_chain_pruned.
    digest = row_digest(row[9:]) if row[7] else row[8]
    problem = None
    if seq != chain.next_seq:
        problem = ("deleted", f"entries {chain.next_seq}..{seq - 1} are missing")
    elif digest is None:
        problem = ("deleted", f"its audit row {row[6]} is gone")
    elif prev_hash != chain.prev:
        problem = ("changed", "its prev_hash is not the previous entry's hash")
    elif entry_hash(prev_hash, digest) != stored_hash:
        problem = ("changed", f"audit row {row[6]} differs from what was chained")
    if problem is not None:
        chain.broken = True
        report.breaks.append(_break(problem[0], chain.key, seq, problem[1]))
    chain.next_seq = seq + 1
    chain.prev = stored_hash


async def _unchained(connection: asyncpg.Connection, tenant: UUID | None, report: Report) -> None:
    for row in await connection.fetch(_UNCHAINED, tenant):
        report.before_chain += row["before_chain"]
        if row["inserted"]:
            detail = f"{row['inserted']} audit rows have no chain entry (one: {row['example']})"
            report.breaks.append(Break("inserted", str(row["tenant_id"]), None, None, None, detail))


def _against_heads(
    walked: Mapping[ChainKey, _Chain], heads: Mapping[ChainKey, Head], report: Report
) -> None:
    """Every exported head must still be in its chain, with the hash exported."""
    for key, (seq, digest) in heads.items():
        chain = walked.get(key)
        if chain is None or chain.last_seq < seq:
            last = 0 if chain is None else chain.last_seq
            detail = f"ends at {last}, the exported head is at {seq}"
            report.breaks.append(_break("truncated", key, last + 1, detail))
        elif chain.at_head is not None and chain.at_head != digest:
            detail = f"entry {seq} differs from the exported head (an older copy went on)"
            report.breaks.append(_break("truncated", key, seq, detail))


def _break(kind: str, key: ChainKey, seq: int | None, detail: str) -> Break:
    return Break(kind, str(key[0]), key[1], key[2], seq, detail)
