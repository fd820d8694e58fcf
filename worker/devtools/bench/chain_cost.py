"""Phases of ``log-ingest bench`` about the audit chain: its cost, verify's speed, and the
worker's rate while retention runs.

- ``drain_variant``: the worker drains the pre-filled backlog under a group of its own,
  with the chain on or off (``worker.devtools.bench.no_chain``), measuring its CPU and
  PostgreSQL's (``worker.devtools.bench.pgcpu``); ``empty_tables`` then resets the rows so
  that the next drain inserts the same ones;
- ``verify_rate``: ``audit verify`` over the chains the drain wrote, rows per second;
- ``append_cost``: the chain's step alone (``AuditChain.append``) on rows the drain stored,
  the bench's thread's CPU and the wall time per row: the worker's share directly, where
  the drains' difference drowns a few microseconds in their noise;
- ``beside_retention``: a fresh backlog (events of today) drained by the worker while
  ``retention run`` deletes the previous drain's rows (older than a day).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import structlog

from worker.audit.ingest import AuditChain
from worker.audit.retention import Policy, Retention, Summary
from worker.audit.verify import verify
from worker.devtools.bench.contenders import empty_tables
from worker.devtools.bench.data import Advance, Prefilled, prefill
from worker.devtools.bench.pgcpu import postgres_cpu_seconds, postmaster_pid
from worker.devtools.bench.report import Steps
from worker.devtools.bench.worker_process import drain, worker_process
from worker.devtools.eventgen import EventFactory
from worker.records import Accepted, AuditRow, RawRecord
from worker.settings import Settings
from worker.write.codecs import use_fast_codecs
from worker.write.connection import Connection


@dataclass(frozen=True)
class Measured:
    """One drain: wall time, the worker's CPU, PostgreSQL's CPU (None: not measurable)."""

    seconds: float
    worker_cpu_s: float
    postgres_cpu_s: float | None


async def drain_variant(
    settings: Settings, filled: Prefilled, advance: Advance, *, chain: bool, group: str
) -> Measured:
    """The worker drains the whole backlog under ``group``, chain on or off."""
    variant = settings.model_copy(update={"kafka_group_id": group})
    connection = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        postmaster = await postmaster_pid(connection)
    finally:
        await connection.close()
    async with worker_process(variant, chain=chain) as worker:
        pg_before = postgres_cpu_seconds(postmaster)
        timeout_s = max(300.0, filled.events / 500)
        drained = await drain(worker, variant, filled.ends, advance, timeout_s)
        pg_after = postgres_cpu_seconds(postmaster)
    pg = None if pg_before is None or pg_after is None else pg_after - pg_before
    return Measured(drained.seconds, drained.cpu_seconds, pg)


async def verify_rate(settings: Settings) -> float:
    """Chain entries ``audit verify`` checks per second here."""
    connection = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        report = await verify(connection)
    finally:
        await connection.close()
    if not report.intact:
        raise RuntimeError(f"the bench's chains do not verify: {report.breaks[:3]}")
    return report.entries / report.seconds


async def append_cost(
    settings: Settings, rows: int = 5000, runs: int = 5
) -> dict[str, float | None]:
    """The chain's step for ``rows`` stored audit rows, each run rolled back: medians of
    this thread's CPU (the worker's share) and of the wall time (PostgreSQL's, nearly
    all of it), per row. The rows are chained again after their stored chains."""
    pool = await asyncpg.create_pool(
        settings.asyncpg_dsn, min_size=1, max_size=1, init=use_fast_codecs
    )
    try:
        async with pool.acquire() as connection:
            events = await _stored_audits(connection, settings.kafka_audit_topic, rows)
            if not events:
                return {}
            cpu: list[float] = []
            wall: list[float] = []
            for _ in range(runs):
                chain, transaction = AuditChain(), connection.transaction()
                await transaction.start()
                try:
                    started, started_cpu = time.perf_counter(), time.thread_time()
                    await chain.append(connection, chain.begin({}), events)
                    cpu.append(time.thread_time() - started_cpu)
                    wall.append(time.perf_counter() - started)
                finally:
                    await transaction.rollback()
    finally:
        await pool.close()
    return {
        "chain_append_worker_cpu_us_per_audit": _per(statistics.median(cpu), len(events)),
        "chain_append_us_per_audit": _per(statistics.median(wall), len(events)),
    }


async def _stored_audits(connection: Connection, topic: str, rows: int) -> list[Accepted]:
    """Up to ``rows`` stored audit rows as the events the worker decoded, in 4 partitions."""
    stored = await connection.fetch(
        "SELECT id, tenant_id, user_id, action, resource_type, resource_id, changes::text,"
        " ip_address, user_agent, metadata::text, created_at FROM audit_logs LIMIT $1",
        rows,
    )
    # Decoded events hold uuid.UUID (not the driver's own UUID, which is faster).
    return [
        Accepted(
            AuditRow(UUID(bytes=row[0].bytes), UUID(bytes=row[1].bytes), *row[2:]),
            RawRecord(topic, at % 4, at, None, None, 0),
        )
        for at, row in enumerate(stored)
    ]


async def beside_retention(
    settings: Settings, factory: EventFactory, events: int, steps: Steps
) -> dict[str, float]:
    """Drain ``events`` new events while retention deletes every row older than a day."""
    factory.start = datetime.now(UTC)
    # Retention logs its progress; stdout is the bench's JSON.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    with steps.step("pre-fill for the retention phase", events) as advance:
        filled = await prefill(settings, factory, events, advance)
    connection = await asyncpg.connect(settings.asyncpg_dsn)
    try:
        with steps.step("worker: drain while retention runs", filled.events) as advance:
            async with worker_process(settings) as worker:

                async def retention() -> Summary:
                    await worker.assigned.wait()  # it starts with the drain's clock
                    return await Retention(connection, Policy(1, 1)).run()

                task = asyncio.create_task(retention())
                try:
                    drained = await drain(worker, settings, filled.ends, advance, 300.0)
                finally:
                    if not worker.assigned.is_set():
                        task.cancel()
                summary = await task
    finally:
        await connection.close()
    deleted = sum(summary.deleted.values())
    return {
        "worker_beside_retention_events_per_s": round(filled.events / drained.seconds, 1),
        "retention_rows_deleted": deleted,
        "retention_rows_per_s": round(deleted / summary.seconds, 1),
        "retention_seconds": round(summary.seconds, 1),
    }


async def chain_on_and_off(
    settings: Settings, filled: Prefilled, steps: Steps
) -> dict[str, float | None]:
    """The backlog drained with the chain off, then on (tables emptied after each): the
    chain's cost per stored audit row, in the worker's CPU and in PostgreSQL's."""
    runs: dict[bool, Measured] = {}
    for chain in (False, True):
        label = f"worker, chain {'on' if chain else 'off'}: drain"
        with steps.step(label, filled.events) as advance:
            group = f"{settings.kafka_group_id}-chain-{'on' if chain else 'off'}"
            runs[chain] = await drain_variant(settings, filled, advance, chain=chain, group=group)
        await empty_tables(settings)
    audits, events = len(filled.audits), filled.events
    off, on = runs[False], runs[True]
    return {
        "chain_off_events_per_s": round(events / off.seconds, 1),
        "chain_on_events_per_s": round(events / on.seconds, 1),
        "chain_off_worker_cpu_us_per_event": round(off.worker_cpu_s / events * 1e6, 2),
        "chain_on_worker_cpu_us_per_event": round(on.worker_cpu_s / events * 1e6, 2),
        "chain_worker_cpu_us_per_audit": _per(on.worker_cpu_s - off.worker_cpu_s, audits),
        "chain_off_postgres_cpu_us_per_event": _per(off.postgres_cpu_s, events),
        "chain_on_postgres_cpu_us_per_event": _per(on.postgres_cpu_s, events),
        "chain_postgres_cpu_us_per_audit": _per(
            None if on.postgres_cpu_s is None or off.postgres_cpu_s is None
            else on.postgres_cpu_s - off.postgres_cpu_s, audits),
    }  # fmt: skip


def _per(seconds: float | None, count: int) -> float | None:
    return None if seconds is None else round(seconds / count * 1e6, 2)
