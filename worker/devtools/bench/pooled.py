"""``log-ingest bench --pool-mode transaction``: the same drain again, behind a transaction pooler.

After the default worker's phases, in the same run and on the same pre-filled topics,
the bench empties the worker's tables (rows, chains, rejects), then drains the topics from
the start with a ``log-ingest run`` in ``DATABASE_POOL_MODE=transaction`` (a group of
its own), through a PgBouncer in transaction mode whose pool holds as many server
connections as the worker's pool (``WRITE_CONNECTIONS`` + 2: the pooler adds a hop,
never a queue). Without a pgbouncer binary, or with ``--external``, that worker connects
straight to PostgreSQL, and ``pooled_via`` says so: the figure then measures the mode
alone (no statement cache, reads in transactions, staging tables per transaction).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from worker.devtools.bench.contenders import empty_tables, settle
from worker.devtools.bench.data import Prefilled
from worker.devtools.bench.report import Steps
from worker.devtools.bench.worker_process import drain, worker_process
from worker.devtools.pgbouncer import PgBouncer, pgbouncer_binary
from worker.settings import Settings


async def pooled_drain(
    settings: Settings, filled: Prefilled, steps: Steps, *, external: bool
) -> dict[str, object]:
    """The transaction-mode worker's drain of everything pre-filled: its figures."""
    await empty_tables(settings)  # nothing of the earlier drains: rows, chains, rejects
    await settle(settings)
    direct = settings.model_copy(update={"kafka_group_id": settings.kafka_group_id + "-pooled"})
    timeout_s = max(300.0, filled.events / 500)
    step = "worker, DATABASE_POOL_MODE=transaction: drain"
    async with (
        _through_pooler(direct, external) as (pooled, via),
        worker_process(pooled) as worker,
    ):
        with steps.step(step, filled.events) as advance:
            drained = await drain(worker, direct, filled.ends, advance, timeout_s)
    rate = filled.events / drained.seconds
    return {
        "pooled_via": via,
        "pooled_worker_events_per_s": round(rate, 1),
        "pooled_worker_seconds": round(drained.seconds, 3),
        "pooled_worker_cpu_us_per_event": round(drained.cpu_seconds / filled.events * 1e6, 2),
    }


@contextlib.asynccontextmanager
async def _through_pooler(
    settings: Settings, external: bool
) -> AsyncIterator[tuple[Settings, str]]:
    """The worker's settings in transaction mode, through a PgBouncer when there is one."""
    pooled = settings.model_copy(update={"database_pool_mode": "transaction"})
    binary = pgbouncer_binary()
    if external or binary is None:
        yield pooled, "direct"
        return
    server = urlsplit(settings.database_url)
    bouncer = PgBouncer(binary, server.port or 5432, pool_size=settings.write_connections + 2)
    bouncer.start()
    try:
        database = server.path.lstrip("/")
        yield pooled.model_copy(update={"database_url": bouncer.url(database)}), "pgbouncer"
    finally:
        bouncer.stop()
