"""PostgreSQL crashes, drops connections, goes silent or holds a lock: the worker waits, resumes."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.checker import Sent, check_exactly_once
from tests.conftest import with_database
from tests.faults.conftest import new_tenants, prepare_stream, start_proxy
from tests.faults.harness import (
    WorkerProcess,
    Workers,
    wait_drained,
    wait_progress_beyond,
)
from tests.faults.proxy import FaultProxy
from tests.services import Services
from tests.streams import produce, wait_until, worker_env
from worker.devtools.embedded import EmbeddedPostgres
from worker.devtools.eventgen import EventFactory
from worker.settings import Settings


async def hold_for(seconds: float, *alive: WorkerProcess) -> None:
    """Let a timed fault last ``seconds``, checking every half second that the workers live."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        for worker in alive:
            assert worker.alive, f"worker exited with {worker.process.returncode} during the fault"
        await asyncio.sleep(min(0.5, left))


async def finish(
    stream: Settings, sent: list[Sent], worker: WorkerProcess, within_s: float
) -> None:
    """Drain, stop with SIGTERM (exit 0), and prove exactly-once."""
    await wait_drained(stream, sent, within_s, worker)
    worker.terminate()
    assert await worker.wait(30) == 0
    await check_exactly_once(stream.database_url, sent, stream.kafka_group_id)


def through(url: str, port: int) -> str:
    """The same database URL, via 127.0.0.1:``port``."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{port}"))


@pytest.mark.timeout(150)
async def test_postgres_crashes_for_ten_seconds(
    own_postgres: EmbeddedPostgres, own_database: str, services: Services, workers: Workers
) -> None:
    """PostgreSQL stopped (-m immediate) for 10 s mid-run: the worker waits, stays up, resumes."""
    base = Settings(_env_file=None, database_url=own_database,
                    kafka_bootstrap_servers=services.kafka_bootstrap)  # fmt: skip
    stream = await prepare_stream(base)
    factory = EventFactory(await new_tenants(stream, 3), seed=301)
    sent = await produce(stream, factory.mixed(8000, 0.02, stream.max_event_bytes))
    worker = await workers.start(worker_env(stream))
    await wait_progress_beyond(stream, 0, 60)
    await asyncio.to_thread(own_postgres.stop, "immediate")
    try:
        sent += await produce(stream, factory.mixed(8000, 0.02, stream.max_event_bytes))
        await hold_for(10, worker)
    finally:
        await asyncio.to_thread(own_postgres.start)
    await wait_drained(stream, sent, 90, worker)
    assert '"event": "transient_failure"' in worker.stderr
    await finish(stream, sent, worker, 10)


@pytest.mark.timeout(120)
async def test_connections_terminated_in_a_loop(stream: Settings, workers: Workers) -> None:
    """pg_terminate_backend on every worker connection, twenty times a second for 10 s."""
    factory = EventFactory(await new_tenants(stream, 3), seed=302)
    sent = await produce(stream, factory.mixed(8000, 0.02, stream.max_event_bytes))
    worker = await workers.start(worker_env(stream))
    await wait_progress_beyond(stream, 0, 60)
    database = stream.database_url.rpartition("/")[2]
    killer = await asyncpg.connect(with_database(stream.database_url, "postgres"))
    producing = asyncio.create_task(
        produce(stream, factory.mixed(8000, 0.02, stream.max_event_bytes))
    )
    terminated = 0
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            terminated += await killer.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
            await hold_for(0.05, worker)
        sent += await producing
    finally:
        producing.cancel()
        await killer.close()
    assert terminated >= 10
    await finish(stream, sent, worker, 90)


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_postgres_black_holed_for_thirty_seconds(
    stream: Settings, workers: Workers, proxy_factory: list[FaultProxy]
) -> None:
    """PostgreSQL silent for 30 s: noticed within the 5 s timeouts, no hang, all written after."""
    proxy = await start_proxy(proxy_factory, urlsplit(stream.database_url).port or 5432)
    proxied = stream.model_copy(update={"database_url": through(stream.database_url, proxy.port)})
    env = worker_env(proxied, DATABASE_COMMAND_TIMEOUT_S="5", DATABASE_CONNECT_TIMEOUT_S="5")
    factory = EventFactory(await new_tenants(stream, 3), seed=303)
    sent = await produce(stream, factory.mixed(5000, 0.02, stream.max_event_bytes))
    worker = await workers.start(env)
    await wait_progress_beyond(stream, 0, 60)
    before = worker.stderr.count('"event": "transient_failure"')
    await proxy.set_mode("blackhole")
    try:
        sent += await produce(stream, factory.mixed(5000, 0.02, stream.max_event_bytes))

        async def noticed() -> bool:
            assert worker.alive
            return worker.stderr.count('"event": "transient_failure"') > before

        started = time.monotonic()
        await wait_until(noticed, 15, "the worker to notice the silent database")
        noticed_after = time.monotonic() - started
        await hold_for(30 - noticed_after, worker)
    finally:
        await proxy.set_mode("pass")
    await finish(stream, sent, worker, 60)
    assert noticed_after < 5 + 5 + 2  # command timeout, plus a batch wait, plus slack


@pytest.mark.slow
@pytest.mark.timeout(200)
async def test_batch_blocked_longer_than_a_minute_by_a_table_lock(
    stream: Settings, workers: Workers
) -> None:
    """action_logs locked ACCESS EXCLUSIVE for 60 s: the worker keeps its group and resumes."""
    factory = EventFactory(await new_tenants(stream, 3), seed=308)
    sent = await produce(stream, factory.mixed(5000, 0.02, stream.max_event_bytes))
    worker = await workers.start(worker_env(stream))
    await wait_progress_beyond(stream, 0, 60)
    holder = await asyncpg.connect(stream.database_url)
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE action_logs IN ACCESS EXCLUSIVE MODE")
        sent += await produce(stream, factory.mixed(5000, 0.02, stream.max_event_bytes))
        await hold_for(60, worker)
        waiting = await holder.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
        await transaction.commit()
    finally:
        await holder.close()
    assert waiting >= 1  # the batch was stuck on the lock all along
    await finish(stream, sent, worker, 90)
    assert worker.stderr.count('"event": "partitions_assigned"') == 1  # never left the group
