"""``log-ingest retention run``: delete log rows past their age, in small transactions.

Every transaction deletes at most ``batch_rows`` rows, and the run pauses ``pause_s``
between transactions, so that the worker's writes (which take row locks only on the rows
they merge, and never wait on a delete of other rows) are not held up. Each step commits
on its own: a run stopped at any moment leaves every chain verifiable, and the next run
goes on from there. The cut-offs are fixed once, from PostgreSQL's clock, at the start.

- ``action_logs``: rows whose ``created_at`` is older than the cut-off, one action type at a
  time (``ix_action_logs_action_type_created``).
- ``audit_logs`` with a chain entry: per chain, the longest prefix of entries whose rows are
  all older than the cut-off. A step deletes the next entries of that prefix and their rows,
  and moves the chain's seal (``audit_chain_seals``) to the last one deleted, in the same
  transaction: ``verify`` then starts the chain from the seal. A row older than the cut-off
  that follows a newer one in its chain (an event that arrived late) is deleted alone,
  its entry kept and its digest written to ``audit_chain_pruned`` in the same transaction,
  so that the chain still verifies; the entry goes when the chain is cut past it.
- ``audit_logs`` with no chain entry (written before the chain began): by ``created_at``,
  one tenant at a time (``ix_audit_logs_tenant_created``).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
import structlog

from worker.audit import retention_sql as sql
from worker.audit.chain import GENESIS, entry_hash, row_digest
from worker.audit.heads import ChainKey, Head
from worker.errors import IngestError

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Policy:
    """What to delete, and how gently. ``None`` days: keep that table's rows."""

    action_logs_days: int | None
    audit_logs_days: int | None
    batch_rows: int = 1000
    pause_s: float = 0.05
    dry_run: bool = False


@dataclass
class Summary:
    """What a run deleted (or, dry, would delete), per table; its transactions and time."""

    deleted: Counter[str] = field(default_factory=Counter)
    chains_sealed: int = 0
    transactions: int = 0
    seconds: float = 0.0


class Retention:
    """One run of a policy on one connection; see the module docstring."""

    def __init__(self, connection: asyncpg.Connection, policy: Policy) -> None:
        self._db = connection
        self._policy = policy
        self.summary = Summary()

    async def run(self) -> Summary:
        started = time.perf_counter()
        if self._policy.action_logs_days is not None:
            cutoff = await self._db.fetchval(sql.CUTOFF, self._policy.action_logs_days)
            await self._actions(cutoff)
        if self._policy.audit_logs_days is not None:
            cutoff = await self._db.fetchval(sql.CUTOFF, self._policy.audit_logs_days)
            for chain in await self._db.fetch(sql.CHAINS):
                await self._chain((chain[0], chain[1], chain[2]), cutoff)
            await self._unchained(cutoff)
        self.summary.seconds = time.perf_counter() - started
        log.info("retention_done", **self.summary.deleted, transactions=self.summary.transactions)
        return self.summary

    async def _actions(self, cutoff: object) -> None:
        for action_type in await self._db.fetch(sql.ACTION_TYPES):
            if self._policy.dry_run:
                count = await self._db.fetchval(sql.COUNT_ACTIONS, action_type[0], cutoff)
                self.summary.deleted["action_logs"] += count
                continue
            while await self._step("action_logs", sql.DELETE_ACTIONS, action_type[0], cutoff):
                pass

    async def _unchained(self, cutoff: object) -> None:
        for tenant in await self._db.fetch(sql.TENANTS):
            if self._policy.dry_run:
                count = await self._db.fetchval(sql.COUNT_UNCHAINED, tenant[0], cutoff)
                self.summary.deleted["audit_logs"] += count
                continue
            while await self._step("audit_logs", sql.DELETE_UNCHAINED, tenant[0], cutoff):
                pass

    async def _step(self, table: str, statement: str, key: object, cutoff: object) -> int:
        """One transaction of at most batch_rows deletions; the pause after it."""
        status = await self._db.execute(statement, key, cutoff, self._policy.batch_rows)
        deleted = int(status.rsplit(" ", 1)[1])
        if deleted:
            self._counted(table, deleted)
            await asyncio.sleep(self._policy.pause_s)  # leave the writers the database
        return deleted

    async def _chain(self, chain: ChainKey, cutoff: object) -> None:
        """Delete the chain's old prefix step by step, checking each step's entries against
        their rows first and sealing the chain at the step's last entry."""
        cut = await self._db.fetchval(sql.CHAIN_CUT, *chain, cutoff)
        seal = await self._db.fetchrow(sql.SEAL_OF, *chain)
        head: Head = (seal[0], seal[1]) if seal is not None else (0, GENESIS)
        if cut is None or cut <= head[0]:
            await self._prune(chain, max(head[0], cut or 0), cutoff)
            return
        self.summary.chains_sealed += 1
        if self._policy.dry_run:
            self.summary.deleted["audit_logs"] += cut - head[0]
        while head[0] < cut and not self._policy.dry_run:
            upto = min(head[0] + self._policy.batch_rows, cut)
            async with self._db.transaction():
                segment = await self._db.fetch(sql.SEGMENT, *chain, head[0], upto)
                ids, end = checked(chain, segment, head)
                await self._db.execute(sql.DELETE_ENTRIES, *chain, head[0], upto)
                await self._db.execute(sql.DELETE_PRUNED, *chain, head[0], upto)
                await self._db.execute(sql.DELETE_CHAINED_ROWS, ids)
                await self._db.execute(sql.SEAL, *chain, *end)
            self._counted("audit_logs", len(ids))
            head = end
            await asyncio.sleep(self._policy.pause_s)
        await self._prune(chain, cut, cutoff)

    async def _prune(self, chain: ChainKey, cut: int, cutoff: object) -> None:
        """Delete the old rows past the cut (each follows a newer one in its chain), keeping
        their entries and, in ``audit_chain_pruned``, their digests: the chain still verifies."""
        while True:
            rows = await self._db.fetch(
                sql.STRAGGLERS, *chain, cut, cutoff, self._policy.batch_rows
            )
            if not rows:
                return
            if self._policy.dry_run:
                self.summary.deleted["audit_logs"] += len(rows)
                return  # at most batch_rows counted: a dry run does not page on
            digests = [row_digest(row[4:]) for row in rows]
            for row, digest in zip(rows, digests, strict=True):
                if entry_hash(row[1], digest) != row[2]:
                    where = f"{chain[0]} {chain[1]}[{chain[2]}] at seq {row[0]}"
                    raise ChainBrokenError(f"audit chain {where} does not verify: run audit verify")
            async with self._db.transaction():
                await self._db.execute(sql.PRUNE, *chain, [row[0] for row in rows], digests)
                await self._db.execute(sql.DELETE_CHAINED_ROWS, [row[3] for row in rows])
            self._counted("audit_logs", len(rows))
            await asyncio.sleep(self._policy.pause_s)

    def _counted(self, table: str, deleted: int) -> None:
        self.summary.deleted[table] += deleted
        self.summary.transactions += 1
        if self.summary.transactions % 100 == 0:
            log.info("retention_progress", **self.summary.deleted)


class ChainBrokenError(IngestError):
    """A chain retention was about to cut does not verify: nothing of it was deleted."""


def checked(
    chain: ChainKey, segment: Sequence[asyncpg.Record], head: Head
) -> tuple[list[UUID], Head]:
    """The audit ids of a segment that follows ``head`` intact, and its last (seq, hash).

    Sealing over a break would hide it for good: ``ChainBrokenError`` instead.
    """
    seq, prev = head
    ids: list[UUID] = []
    for row in segment:
        digest = row_digest(row[6:]) if row[4] else row[5]  # row[5]: digest of a pruned row
        intact = row[0] == seq + 1 and digest is not None and row[1] == prev
        if not intact or entry_hash(prev, digest) != row[2]:
            where = f"{chain[0]} {chain[1]}[{chain[2]}] after seq {seq}"
            raise ChainBrokenError(f"audit chain {where} does not verify: run audit verify")
        seq, prev = row[0], row[2]
        ids.append(row[3])
    return ids, (seq, prev)
