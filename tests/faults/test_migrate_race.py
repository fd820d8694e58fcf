"""Deploy jobs racing each other while a worker runs: both succeed, the worker never notices."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.conftest import new_tenants
from tests.faults.harness import Workers, run_cli, wait_progress_beyond
from tests.faults.test_database import finish
from tests.streams import produce, worker_env
from worker.devtools.eventgen import EventFactory
from worker.settings import Settings


@pytest.mark.timeout(150)
async def test_two_migrate_jobs_race_while_a_worker_runs(
    stream: Settings, workers: Workers
) -> None:
    """Two `log-ingest migrate` at once beside a busy worker: both exit 0, nothing lost."""
    factory = EventFactory(await new_tenants(stream, 3), seed=1001)
    sent = await produce(stream, factory.mixed(5000, 0.02, stream.max_event_bytes))
    env = worker_env(stream)
    worker = await workers.start(env)
    await wait_progress_beyond(stream, 0, 60)
    producing = asyncio.create_task(
        produce(stream, factory.mixed(5000, 0.02, stream.max_event_bytes))
    )
    try:
        jobs = await asyncio.gather(run_cli("migrate", env=env), run_cli("migrate", env=env))
        sent += await producing
    finally:
        producing.cancel()
    assert [code for code, _ in jobs] == [0, 0], [stderr[-500:] for _, stderr in jobs]
    assert all("already at head" in stderr for _, stderr in jobs)
    assert worker.alive
    await finish(stream, sent, worker, 90)
